// The worker side of loadConfigFileAsync: one load, one message, then exit.
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from './issues.ts';
import { loadConfigFile } from './load.ts';
import type { WorkerReply, WorkerRequest } from './load-async.ts';

const { file, env } = workerData as WorkerRequest;
let reply: WorkerReply;
try {
  reply = { kind: 'loaded', loaded: loadConfigFile(file, env) };
} catch (err) {
  reply = err instanceof ConfigError ? { kind: 'invalid', issues: err.issues } : { kind: 'crashed', message: (err as Error).message ?? String(err) };
}
parentPort?.postMessage(reply);
