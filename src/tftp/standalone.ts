/**
 * Minimal entry running only the TFTP server, for benchmarks (measured as a separate
 * process, like the C servers it is compared with) and quick manual tests:
 *   node dist/tftp/standalone.js --root DIR --port N [--host 127.0.0.1] [--workers N] [--io native|dgram] [--log-level warn]
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { TftpServer } from './server.js';

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    port: { type: 'string', default: '69' },
    host: { type: 'string', multiple: true },
    'max-blksize': { type: 'string' },
    'max-windowsize': { type: 'string' },
    'max-transfers': { type: 'string' },
    'max-transfers-per-client': { type: 'string' },
    workers: { type: 'string' },
    io: { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
if (!values.root) {
  process.stderr.write('usage: standalone --root DIR [--port N] [--host ADDR]...\n');
  process.exit(2);
}
const logger = pino({ level: values['log-level'] }, pino.destination(2));
const port = Number(values.port);
const hosts = values.host && values.host.length > 0 ? values.host : ['0.0.0.0'];
const server = new TftpServer({
  root: values.root,
  listen: hosts.map((host) => ({ host, port })),
  maxBlksize: values['max-blksize'] ? Number(values['max-blksize']) : undefined,
  maxWindowsize: values['max-windowsize'] ? Number(values['max-windowsize']) : undefined,
  maxTransfers: values['max-transfers'] ? Number(values['max-transfers']) : undefined,
  maxTransfersPerClient: values['max-transfers-per-client'] ? Number(values['max-transfers-per-client']) : undefined,
  workers: values.workers !== undefined ? Number(values.workers) : undefined,
  io: values.io === 'dgram' || values.io === 'native' ? values.io : undefined,
  logger,
});
await server.start();
process.stdout.write(`ready ${JSON.stringify(server.addresses())}\n`);
const stop = (): void => {
  server.close(2000).then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
