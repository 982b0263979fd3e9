/**
 * Who may ask: the `allow:` list applied to DHCP, TFTP and HTTP of a real `pxe serve`
 * child (inside a network namespace, so it can bind 67/69/4011/8080 and [::]),
 * exercised by real clients (tftp-hpa, curl over IPv4 and IPv6) from allowed and
 * denied source addresses; and the amplification bounds measured by the bench.
 *
 * "Nothing at all" is shown by behaviour: a denied client asking for a file that does
 * not exist times out (curl exit 28) where an allowed one gets TFTP error 1 at once
 * (curl exit 68); a denied HTTP client gets the connection closed with no status line
 * (curl exit 52); every drop is visible in /metrics.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAmplificationBench, type AmplificationResult } from '../../bench/amplification.js';
import { REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab } from '../helpers/netns.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const lab = new NetnsLab('hard');
let srv = '';
let cli = '';
let dir = '';
let server: ServeChild | undefined;
const FILE = Buffer.alloc(300_000);
for (let i = 0; i < FILE.length; i += 4) FILE.writeUInt32BE((i * 2654435761) >>> 0, i);

/** Parses the Prometheus text into name{labels} -> value. */
async function scrape(ns: string): Promise<Map<string, number>> {
  const r = await lab.exec(ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:8080/metrics'], 10_000);
  expect(r.code).toBe(0);
  const m = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-hard-${process.pid}-`));
  mkdirSync(join(dir, 'tftproot'));
  writeFileSync(join(dir, 'tftproot', 'f.bin'), FILE);
  writeFileSync(
    join(dir, 'pxe.yaml'),
    [
      'allow:',
      '  - 127.0.0.1/32',
      '  - ::1/128',
      '  - 10.77.0.2/32',
      'tftp: { root: ./tftproot }',
      'stateDir: ./state',
      'logLevel: info',
      '',
    ].join('\n'),
  );
  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  await lab.veth(srv, 's0', '10.77.0.1/24', cli, 'c0', '10.77.0.2/24');
  await lab.exec(cli, ['ip', 'addr', 'add', '10.77.0.3/24', 'dev', 'c0']);
  // a second IPv6 source on the server's loopback, outside the allow list
  const v6 = await lab.exec(srv, ['ip', 'addr', 'add', 'fd77::3/128', 'dev', 'lo', 'nodad']);
  expect(v6.code, v6.stderr).toBe(0);
  server = new ServeChild({
    netns: srv,
    cwd: dir,
    args: [
      '--config',
      join(dir, 'pxe.yaml'),
      '--listen',
      '0.0.0.0',
      '--server-address',
      '10.77.0.1',
      '--tftp-port',
      '69',
      '--http-port',
      '8080',
      '--dhcp-port',
      '67',
      '--pxe-port',
      '4011',
    ],
  });
  await server.ready();
});

afterAll(async () => {
  await server?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('allow list', () => {
  it('TFTP over IPv4: 127.0.0.1 is served by tftp-hpa, 127.0.0.2 gets no packet at all', async () => {
    const out = join(dir, 'v4.bin');
    const ok = await lab.exec(srv, ['tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', 'f.bin', out], 30_000);
    expect(ok.code, ok.stderr).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(FILE));

    // allowed + missing file: an ERROR packet comes back at once (curl: 68 "file not found")
    const missingOk = await lab.exec(srv, ['curl', '-s', '--max-time', '4', '-o', '/dev/null', 'tftp://127.0.0.1:69/nope'], 10_000);
    expect(missingOk.code).toBe(68);
    // denied: not even that error; curl waits until it gives up (28 = timeout)
    const before = (await scrape(srv)).get('pxe_tftp_drops_total{reason="denied"}') ?? 0;
    const denied = await lab.exec(
      srv,
      ['curl', '-s', '--interface', '127.0.0.2', '--max-time', '3', '-o', '/dev/null', 'tftp://127.0.0.1:69/nope'],
      10_000,
    );
    expect(denied.code).toBe(28);
    const deniedFile = await lab.exec(
      srv,
      ['curl', '-s', '--interface', '127.0.0.2', '--max-time', '3', '-o', join(dir, 'denied.bin'), 'tftp://127.0.0.1:69/f.bin'],
      10_000,
    );
    expect(deniedFile.code).toBe(28);
    expect(existsSync(join(dir, 'denied.bin')) ? readFileSync(join(dir, 'denied.bin')).length : 0).toBe(0);
    const after = (await scrape(srv)).get('pxe_tftp_drops_total{reason="denied"}') ?? 0;
    expect(after).toBeGreaterThanOrEqual(before + 2);
  });

  it('TFTP and HTTP over IPv6: ::1 is served by curl, fd77::3 gets nothing', async () => {
    const out = join(dir, 'v6.bin');
    const ok = await lab.exec(srv, ['curl', '-s', '-S', '--max-time', '20', '-o', out, 'tftp://[::1]:69/f.bin'], 30_000);
    expect(ok.code, ok.stderr).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(FILE));
    const health = await lab.exec(srv, ['curl', '-s', '--max-time', '5', 'http://[::1]:8080/healthz'], 10_000);
    expect(health.code).toBe(0);
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'ok', tftp: 'up', dhcp: 'up' });

    const denied = await lab.exec(
      srv,
      ['curl', '-s', '--interface', 'fd77::3', '--max-time', '3', '-o', '/dev/null', 'tftp://[::1]:69/nope'],
      10_000,
    );
    expect(denied.code).toBe(28);
    const deniedHttp = await lab.exec(
      srv,
      ['curl', '-s', '-i', '--interface', 'fd77::3', '--max-time', '5', 'http://[::1]:8080/healthz'],
      10_000,
    );
    expect(deniedHttp.code).toBe(52); // connection closed, no status line
    expect(deniedHttp.stdout).toBe('');
  });

  it('HTTP over IPv4: 127.0.0.2 gets the connection closed without a response, and it is counted', async () => {
    const before = (await scrape(srv)).get('pxe_http_denied_total') ?? 0;
    const ok = await lab.exec(
      srv,
      ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', 'http://127.0.0.1:8080/files/f.bin'],
      10_000,
    );
    expect(ok.stdout).toBe('200');
    const denied = await lab.exec(
      srv,
      ['curl', '-s', '-i', '--interface', '127.0.0.2', '--max-time', '5', 'http://127.0.0.1:8080/files/f.bin'],
      10_000,
    );
    expect(denied.code).toBe(52);
    expect(denied.stdout).toBe('');
    const after = (await scrape(srv)).get('pxe_http_denied_total') ?? 0;
    expect(after).toBeGreaterThanOrEqual(before + 1);
  });

  it('DHCP (67 and 4011): 10.77.0.2 gets OFFER and ACK, 10.77.0.3 gets nothing, drops counted', async () => {
    // The client side runs inside the client namespace; it uses the real captures.
    const script = join(dir, 'dhcp-client.mjs');
    writeFileSync(
      script,
      `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { decode, encode } from ${JSON.stringify(join(REPO_ROOT, 'dist/dhcp/codec.js'))};
const fx = (n) => { const d = decode(readFileSync(${JSON.stringify(join(REPO_ROOT, 'test/fixtures/dhcp'))} + '/' + n)); if (!d.ok) throw new Error(n); return d.packet; };
const bind = (port, addr) => new Promise((res) => { const s = dgram.createSocket({ type: 'udp4', reuseAddr: true }); s.bind(port, addr, () => res(s)); });
const got = {};
async function one(addr, label) {
  const s68 = await bind(68, addr);
  const s4011 = await bind(0, addr);
  got[label] = { offer: 0, ack: 0 };
  s68.on('message', (m) => { const d = decode(m); if (d.ok && d.packet.op === 2) got[label].offer++; });
  s4011.on('message', (m) => { const d = decode(m); if (d.ok && d.packet.op === 2) got[label].ack++; });
  const disc = fx('ipxe-bios-discover.bin'); disc.ciaddr = addr; disc.flags = 0; disc.chaddr = Buffer.from([2,0,0,0,0,label === 'allowed' ? 2 : 3]);
  const req = fx('ovmf-pxe-request-4011.bin'); req.ciaddr = addr; req.chaddr = Buffer.from([2,0,0,0,1,label === 'allowed' ? 2 : 3]);
  s68.send(encode(disc, { maxSize: 1472 }).data, 67, '10.77.0.1');
  s4011.send(encode(req, { maxSize: 1472 }).data, 4011, '10.77.0.1');
  return [s68, s4011];
}
// denied first: the server handles each port's datagrams in order, so once the
// allowed client's replies are in, the denied requests were already processed
const a = await one('10.77.0.3', 'denied');
const b = await one('10.77.0.2', 'allowed');
for (let i = 0; i < 100 && !(got.allowed.offer && got.allowed.ack); i++) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 200));
for (const s of [...a, ...b]) s.close();
process.stdout.write(JSON.stringify(got));
`,
    );
    const before = (await scrape(srv)).get('pxe_dhcp_denied_total') ?? 0;
    const r = await lab.exec(cli, [process.execPath, script], 20_000);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as Record<'allowed' | 'denied', { offer: number; ack: number }>;
    expect(got.allowed).toEqual({ offer: 1, ack: 1 });
    expect(got.denied).toEqual({ offer: 0, ack: 0 });
    const after = (await scrape(srv)).get('pxe_dhcp_denied_total') ?? 0;
    expect(after).toBe(before + 2);
  });
});

describe('amplification bounds (spoofed source that never ACKs)', () => {
  let res: AmplificationResult;
  const get = (prefix: string) => {
    const c = res.cases.find((x) => x.name.startsWith(prefix));
    if (!c) throw new Error(`no case ${prefix}`);
    return c;
  };

  beforeAll(async () => {
    res = await runAmplificationBench(false);
  }, 120_000);

  it('TFTP RRQ with blksize 1468 windowsize 64: only OACKs (no DATA before an ACK), at most 1 + maxRetriesBeforeAck of them', () => {
    const c = get('tftp RRQ blksize=1468');
    expect(c.detail.data).toBe(0);
    expect(c.detail.oacks).toBeGreaterThanOrEqual(1);
    expect(c.detail.oacks).toBeLessThanOrEqual(1 + res.settings.maxRetriesBeforeAck);
    expect(c.factor).toBeLessThan(4);
  });

  it('TFTP RRQ without options: DATA 1 at most 1 + maxRetriesBeforeAck times (factor < 100)', () => {
    const c = get('tftp RRQ without options');
    expect(c.detail.data).toBeGreaterThanOrEqual(1);
    expect(c.detail.data).toBeLessThanOrEqual(1 + res.settings.maxRetriesBeforeAck);
    expect(c.factor).toBeLessThan(100);
  });

  it('after the OACK is acknowledged: one window, retransmitted at most maxRetries times', () => {
    const c = get('tftp OACK acknowledged');
    expect(c.detail.data! % 64).toBe(0);
    expect(c.detail.windows).toBeGreaterThanOrEqual(1);
    expect(c.detail.windows).toBeLessThanOrEqual(1 + 5);
  });

  it('one address cannot open more than maxTransfersPerClient transfers', () => {
    const c = get('tftp 200 RRQs');
    expect(c.detail.transfersStarted).toBe(res.settings.maxTransfersPerClient);
    expect(c.detail.busyErrors).toBe(200 - res.settings.maxTransfersPerClient);
    expect(c.factor).toBeLessThan(12);
  });

  it('DHCP DISCOVER storm from one MAC: OFFERs bounded by the per-MAC rate limit (factor < 0.05)', () => {
    const c = get('dhcp DISCOVER storm');
    expect(c.detail.received).toBe(c.detail.sent);
    expect(c.detail.offers).toBeGreaterThanOrEqual(1);
    expect(c.detail.offers).toBeLessThanOrEqual(c.detail.allowedByLimiter!);
    expect(c.packetsOut).toBe(c.detail.offers);
    expect(c.factor).toBeLessThan(0.05);
  });
});
