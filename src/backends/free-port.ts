import { createServer } from 'node:net';

/**
 * A port free on loopback right now, for a server berth tells where to listen
 * (a local child serving HTTP, a container on the host network). Another
 * process could take it before the server binds; the server then fails to
 * start and is started again with a fresh port.
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
