/**
 * Running as a daemon: the shipped systemd unit passes `systemd-analyze verify`, and
 * `pxe serve` as a non-root user holding only CAP_NET_BIND_SERVICE (what the unit
 * grants) binds 67, 69, 4011 and 80 in a fresh network namespace and serves a real
 * tftp-hpa client and curl; /metrics moves with real traffic and /healthz answers.
 */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab, run } from '../helpers/netns.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const UNIT = join(REPO_ROOT, 'contrib/systemd/pxe.service');

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `pxe-daemon-${process.pid}-`));
  chmodSync(dir, 0o755);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('systemd unit', () => {
  it('systemd-analyze verify accepts contrib/systemd/pxe.service (and rejects a broken copy)', async () => {
    const unitText = readFileSync(UNIT, 'utf8');
    for (const want of [
      /^User=pxe$/m,
      /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m,
      /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m,
      /^NoNewPrivileges=yes$/m,
      /^ProtectSystem=strict$/m,
      /^ProtectHome=yes$/m,
      /^PrivateTmp=yes$/m,
      /^ReadWritePaths=.*\/srv\/tftp/m,
      /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m,
    ])
      expect(unitText).toMatch(want);
    const ok = await run(['systemd-analyze', 'verify', '--man=no', UNIT], 30_000);
    expect(ok.code, ok.stderr).toBe(0);
    // verify prints one line per problem found in the unit file
    expect(ok.stderr.split('\n').filter((l) => l.includes('pxe.service'))).toEqual([]);

    // negative control: the same check does see mistakes in a unit file
    const bad = join(dir, 'pxe-broken.service');
    copyFileSync(UNIT, bad);
    writeFileSync(bad, readFileSync(bad, 'utf8').replace('ProtectSystem=strict', 'ProtectSystem=strictly'));
    appendFileSync(bad, 'Frobnicate=yes\n');
    const ko = await run(['systemd-analyze', 'verify', '--man=no', bad], 30_000);
    expect(ko.stderr).toMatch(/pxe-broken\.service:\d+: Failed to parse protect system value/);
    expect(ko.stderr).toMatch(/Unknown key 'Frobnicate'/);
  });
});

describe('non-root with only CAP_NET_BIND_SERVICE', () => {
  const lab = new NetnsLab('cap');
  let server: ServeChild | undefined;
  let ns = '';
  const FILE = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) & 255));

  beforeAll(async () => {
    ns = await lab.netns('srv');
    const site = join(dir, 'site');
    mkdirSync(join(site, 'tftproot'), { recursive: true });
    mkdirSync(join(site, 'state'), { recursive: true });
    mkdirSync(join(site, 'distros'), { recursive: true }); // an empty catalog: this test serves a plain file
    writeFileSync(join(site, 'tftproot', 'f.bin'), FILE);
    writeFileSync(
      join(site, 'pxe.yaml'),
      ['tftp: { root: ./tftproot }', 'stateDir: ./state', 'catalogDir: ./distros', 'hostsFile: ./hosts.yaml', ''].join('\n'),
    );
    chmodSync(site, 0o755);
    chownSync(join(site, 'state'), 65534, 65534); // the boot-event log is written here
    server = new ServeChild({
      netns: ns,
      cwd: site,
      prefix: [
        'setpriv',
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        '--inh-caps=-all,+net_bind_service',
        '--ambient-caps=-all,+net_bind_service',
        '--bounding-set=-all,+net_bind_service',
      ],
      args: [
        '--config',
        join(site, 'pxe.yaml'),
        '--listen',
        '0.0.0.0',
        '--server-address',
        '127.0.0.1',
        '--tftp-port',
        '69',
        '--dhcp-port',
        '67',
        '--pxe-port',
        '4011',
        '--http-port',
        '80',
      ],
    });
    await server.ready();
  });

  afterAll(async () => {
    await server?.stop();
    await lab.cleanup();
  });

  it('runs as nobody with exactly CAP_NET_BIND_SERVICE and holds 67, 69, 4011 and 80', async () => {
    const status = readFileSync(`/proc/${server!.pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    // CAP_NET_BIND_SERVICE is bit 10: 0x400, and nothing else, effective and bounding
    expect(status).toMatch(/^CapEff:\s+0000000000000400$/m);
    expect(status).toMatch(/^CapBnd:\s+0000000000000400$/m);
    const udp = await lab.exec(ns, ['ss', '-Hunlp'], 5_000);
    const tcp = await lab.exec(ns, ['ss', '-Htnlp'], 5_000);
    for (const port of [67, 69, 4011]) expect(udp.stdout).toMatch(new RegExp(`:${port}\\s.*pid=${server!.pid}`));
    expect(tcp.stdout).toMatch(new RegExp(`:80\\s.*pid=${server!.pid}`));
  });

  it('serves a file to tftp-hpa on port 69 and /healthz on port 80; /metrics moves with the traffic', async () => {
    const scrape = async () => {
      const r = await lab.exec(ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:80/metrics'], 10_000);
      expect(r.code).toBe(0);
      return r.stdout;
    };
    const value = (text: string, name: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${name} `))
          ?.split(' ')[1] ?? NaN,
      );
    const before = await scrape();
    const out = join(dir, 'got.bin');
    const g = await lab.exec(ns, ['tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', 'f.bin', out], 30_000);
    expect(g.code, g.stderr).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(FILE));
    const missing = await lab.exec(
      ns,
      ['tftp', '-m', 'binary', '127.0.0.1', '69', '-c', 'get', 'missing.bin', join(dir, 'missing.bin')],
      30_000,
    );
    expect(`${missing.stdout}${missing.stderr}`).toMatch(/not found/i);
    const h = await lab.exec(ns, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:80/healthz'], 10_000);
    expect(JSON.parse(h.stdout)).toMatchObject({ status: 'ok', tftp: 'up', dhcp: 'up' });

    const after = await scrape();
    // names follow Prometheus conventions: counters end in _total and are typed counter
    expect(after).toMatch(/^# TYPE pxe_tftp_transfers_ok_total counter$/m);
    expect(after).toMatch(/^# TYPE pxe_tftp_active gauge$/m);
    expect(after).toMatch(/^# TYPE pxe_dhcp_offers_total counter$/m);
    expect(after).toMatch(/^pxe_tftp_drops_total\{reason="denied"\} 0$/m);
    for (const line of after.split('\n'))
      if (line && !line.startsWith('#')) expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+$/);
    expect(value(after, 'pxe_tftp_transfers_ok_total') - value(before, 'pxe_tftp_transfers_ok_total')).toBe(1);
    expect(value(after, 'pxe_tftp_transfers_failed_total') - value(before, 'pxe_tftp_transfers_failed_total')).toBe(1);
    expect(value(after, 'pxe_tftp_bytes_sent_total') - value(before, 'pxe_tftp_bytes_sent_total')).toBe(FILE.length);
    expect(value(after, 'pxe_http_requests_total')).toBeGreaterThan(value(before, 'pxe_http_requests_total'));
  });
});
