#!/usr/bin/env node
/**
 * Standalone proxyDHCP entry for namespace tests, the benchmark and lab checks:
 *   node dist/dhcp/standalone.js [--server-address A] [--bios F] [--efi F] [--ipxe F|URL]
 *        [--bind A] [--dhcp-port 67] [--pxe-port 4011] [--http-client] [--rate N]
 *        [--log-level info]
 * Uses the project's real policy (PolicyBooter) with a boot-file table from the flags.
 * Logs JSON lines to stdout; prints a {"msg":"ready"} line once bound, a
 * {"msg":"stats"} line on SIGUSR1, exits 0 on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { configSchema } from '../config.js';
import { createLogger } from '../log.js';
import { PolicyBooter } from '../boot/booter.js';
import { ProxyDhcpServer } from './proxy.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bind: { type: 'string', default: '0.0.0.0' },
      io: { type: 'string' },
      'dhcp-port': { type: 'string', default: '67' },
      'pxe-port': { type: 'string', default: '4011' },
      'server-address': { type: 'string' },
      bios: { type: 'string', default: 'pxelinux.0' },
      efi: { type: 'string', default: 'syslinux.efi' },
      ipxe: { type: 'string' },
      'http-client': { type: 'boolean', default: false },
      'http-url': { type: 'string' },
      rate: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  const level = values['log-level'] as 'info';
  const logger = createLogger(level, false);
  const cfg = configSchema.parse({
    dhcp: {
      httpClient: values['http-client'],
      bootFiles: {
        bios: values.bios,
        'efi-x64': values.efi,
        'efi-ia32': values.efi,
        'efi-arm64': values.efi,
        'efi-x64-http': values['http-url'] ?? null,
        ipxe: values.ipxe ?? null,
      },
    },
  });
  const server = new ProxyDhcpServer({
    booter: new PolicyBooter({ dhcp: cfg.dhcp }),
    logger,
    io: values.io === 'dgram' || values.io === 'native' ? values.io : undefined,
    bindAddress: values.bind,
    dhcpPort: Number(values['dhcp-port']),
    pxePort: values['pxe-port'] === 'none' ? null : Number(values['pxe-port']),
    serverAddress: values['server-address'],
    allowHttpClient: values['http-client'],
    ratePerMacPerSecond: values.rate ? Number(values.rate) : undefined,
  });
  await server.start();
  logger.info({ ports: server.ports }, 'ready');
  process.on('SIGUSR1', () => logger.info({ stats: server.stats }, 'stats'));
  const stop = (): void => {
    logger.info({ stats: server.stats }, 'stats');
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
