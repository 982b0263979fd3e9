/**
 * worker_threads entry: one TransferRunner per worker (see runner.ts for why). The
 * main thread keeps the listeners and hands accepted transfers over by message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TransferRunner, type RunnerOptions, type ToRunner } from './runner.js';

const port = parentPort;
if (port) {
  const runner = new TransferRunner((m) => port.postMessage(m), workerData as RunnerOptions);
  port.on('message', (m: ToRunner) => runner.handle(m));
}
