import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ReadResult } from './load.ts';
import { deepFreeze } from './load.ts';

/** What the loading thread is given. */
export interface WorkerRequest {
  readonly file: string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** What it answers: what the read gave, or an error that is not about the config. */
export type WorkerReply = { readonly kind: 'read'; readonly result: ReadResult } | { readonly kind: 'crashed'; readonly message: string };

// The worker module sits beside this one, as .ts in a checkout and .js once compiled.
const here = fileURLToPath(import.meta.url);
const workerFile = path.join(path.dirname(here), `load-worker${path.extname(here)}`);

/**
 * readConfigFile on a worker thread, so a reload of a large file never stalls
 * the proxy's event loop. Same result, every issue and the versions read;
 * aborting the signal stops the thread and rejects with the signal's reason.
 */
export function readConfigFileAsync(file: string, env: NodeJS.ProcessEnv = process.env, signal?: AbortSignal): Promise<ReadResult> {
  if (signal?.aborted === true) return Promise.reject(signal.reason);
  const request: WorkerRequest = { file, env: { ...env } };
  return new Promise<ReadResult>((resolve, reject) => {
    const worker = new Worker(workerFile, { workerData: request, env: {} });
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      outcome();
    };
    const onAbort = (): void => settle(() => reject(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: WorkerReply) => {
      settle(() => {
        if (reply.kind === 'crashed') return reject(new Error(`loading ${file} failed: ${reply.message}`));
        const { result } = reply;
        // Structured cloning thaws what the thread froze.
        resolve(result.ok ? { ...result, value: { ...result.value, config: deepFreeze(result.value.config) } } : result);
      });
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) => settle(() => reject(new Error(`loading ${file} failed: the loading thread exited with code ${code} before answering`))));
  });
}
