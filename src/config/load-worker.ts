// The worker side of readConfigFileAsync: one read, one message, then exit.
import { parentPort, workerData } from 'node:worker_threads';
import { readConfigFile } from './load.ts';
import type { WorkerReply, WorkerRequest } from './load-async.ts';

const { file, env } = workerData as WorkerRequest;
let reply: WorkerReply;
try {
  reply = { kind: 'read', result: readConfigFile(file, env) };
} catch (err) {
  reply = { kind: 'crashed', message: (err as Error).message ?? String(err) };
}
parentPort?.postMessage(reply);
