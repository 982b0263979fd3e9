/**
 * The hosts file drives the proxyDHCP through `pxe serve`: a listed MAC gets an
 * OFFER, a MAC with `allow: false` and an unlisted MAC (with `unknown: ignore`) get
 * nothing, and `pxe events` says why for each. Runs in network namespaces the test
 * creates; the client sends real captured iPXE DISCOVERs with their MAC rewritten.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { runCommand } from '../../src/proc.js';
import { NetnsLab } from '../helpers/netns.js';

const lab = new NetnsLab('hosts');
let srv = '';
let cli = '';
let dir = '';
let server: ServeChild | undefined;

const LISTED = '02:00:00:00:00:0a';
const DENIED = '02:00:00:00:00:0b';
const UNKNOWN = '02:00:00:00:00:0c';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-hosts-${process.pid}-`));
  mkdirSync(join(dir, 'tftproot'));
  writeFileSync(
    join(dir, 'hosts.yaml'),
    [
      'unknown: ignore',
      'hosts:',
      `  "${LISTED}":`,
      '    hostname: listed1',
      '    entry: local',
      `  "${DENIED}":`,
      '    hostname: denied1',
      '    entry: local',
      '    allow: false',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'pxe.yaml'), ['tftp: { root: ./tftproot }', 'hostsFile: ./hosts.yaml', 'stateDir: ./state', ''].join('\n'));
  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  await lab.veth(srv, 's0', '10.78.0.1/24', cli, 'c0', '10.78.0.2/24');
  server = new ServeChild({
    netns: srv,
    cwd: dir,
    args: ['--config', join(dir, 'pxe.yaml'), '--server-address', '10.78.0.1', '--http-port', '8080', '--no-tftp'],
  });
  await server.ready();
});

afterAll(async () => {
  await server?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('hosts.yaml policy through pxe serve', () => {
  it('answers the listed MAC only; the denied and the unknown MAC get no reply', async () => {
    const script = join(dir, 'client.mjs');
    writeFileSync(
      script,
      `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { decode, encode } from ${JSON.stringify(join(REPO_ROOT, 'dist/dhcp/codec.js'))};
const d = decode(readFileSync(${JSON.stringify(join(REPO_ROOT, 'test/fixtures/dhcp/ipxe-bios-discover.bin'))}));
if (!d.ok) throw new Error('fixture');
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
await new Promise((r) => s.bind(68, '10.78.0.2', r));
const offers = {};
s.on('message', (m) => { const p = decode(m); if (p.ok && p.packet.op === 2) { const mac = [...p.packet.chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':'); offers[mac] = (offers[mac] ?? 0) + 1; } });
for (const mac of ${JSON.stringify([DENIED, UNKNOWN, LISTED])}) {
  // unicast from a configured address with ciaddr set: the reply comes back to ciaddr:68
  const pkt = { ...d.packet, ciaddr: '10.78.0.2', flags: 0, xid: Math.floor(Math.random() * 2 ** 32), chaddr: Buffer.from(mac.split(':').map((h) => parseInt(h, 16))) };
  s.send(encode(pkt, { maxSize: 1472 }).data, 67, '10.78.0.1');
}
// each request is handled in order: once the listed MAC's offer is in, the others were decided
for (let i = 0; i < 100 && !offers[${JSON.stringify(LISTED)}]; i++) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300));
s.close();
process.stdout.write(JSON.stringify(offers));
`,
    );
    const r = await lab.exec(cli, [process.execPath, script], 20_000);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ [LISTED]: 1 });

    // the boot-event log says why each MAC was (not) answered; it is flushed every 200 ms
    const events = async (mac: string) => {
      for (let i = 0; i < 20; i++) {
        const e = await runCommand([process.execPath, join(REPO_ROOT, 'dist/cli.js'), 'events', mac, '--config', join(dir, 'pxe.yaml')], {
          timeoutMs: 20_000,
        });
        if (e.code === 0 && !e.stdout.startsWith('no boot events')) return e.stdout;
        await new Promise((res) => setTimeout(res, 200));
      }
      return '';
    };
    // the fixture is an iPXE BIOS DISCOVER and HTTP is on: pxelinux.0 as an HTTP URL (dhcp.ipxeHttp)
    expect(await events(LISTED)).toMatch(
      /dhcp\s+02:00:00:00:00:0a\s+.*offer http:\/\/10\.78\.0\.1:8080\/files\/pxelinux\.0 via 10\.78\.0\.1/,
    );
    expect(await events(DENIED)).toMatch(/no reply: host 02:00:00:00:00:0b is denied in the hosts file/);
    expect(await events(UNKNOWN)).toMatch(/no reply: host 02:00:00:00:00:0c is not in the hosts file and unknownClients is "ignore"/);
  });
});
