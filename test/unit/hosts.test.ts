import { configError } from '../helpers/errors.js';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog/load.js';
import { findHost, hostAccess, loadHosts, parseHosts } from '../../src/hosts/load.js';
import { InstallState } from '../../src/hosts/state.js';
import { InstallTokens, NO_TOKEN, TOKEN_RE, startInstall } from '../../src/hosts/tokens.js';

const catalog = loadCatalog(resolve(__dirname, '../../distros'));
const tmp = mkdtempSync(join(tmpdir(), `pxe-hosts-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example';
const GOOD = `unknown: ignore
defaults:
  user: ops
  timezone: Europe/Paris
  ssh_keys: ["${KEY}"]
hosts:
  "52:54:00:AA:BB:01":
    hostname: web1
    entry: debian
    version: "12"
    disk: /dev/vda
    install_once: true
  52-54-00-aa-bb-02:
    hostname: db1
    domain: lab.example
    entry: rocky
    password_hash: "$6$rounds=4096$saltsalt$3MEaFIoQ0j8nT2S1Iq0K2Qe7Nn8vGnV0oNfPq0e6n5X3eM5x5w0QyKx1s0rS9xqP3G8yOe0bQ6eF4y4tq1wQ1"
    append: console=ttyS0
  "52:54:00:aa:bb:03":
    hostname: evil
    entry: local
    allow: false
`;

describe('hosts.yaml', () => {
  it('parses hosts, normalises MACs and applies defaults', () => {
    const hosts = parseHosts('hosts.yaml', GOOD, catalog);
    expect(hosts.unknown).toBe('ignore');
    expect([...hosts.byMac.keys()]).toEqual(['52:54:00:aa:bb:01', '52:54:00:aa:bb:02', '52:54:00:aa:bb:03']);
    const web1 = findHost(hosts, '52-54-00-AA-BB-01')!;
    expect(web1).toMatchObject({
      hostname: 'web1',
      entry: 'debian',
      version: '12',
      disk: '/dev/vda',
      user: 'ops',
      timezone: 'Europe/Paris',
      install_once: true,
      password_hash: '',
    });
    expect(web1.ssh_keys).toEqual([KEY]);
    const db1 = findHost(hosts, '52:54:00:aa:bb:02')!;
    expect(db1).toMatchObject({ disk: '/dev/sda', domain: 'lab.example', append: 'console=ttyS0', locale: 'en_US.UTF-8' });
    expect(hostAccess(hosts, '52:54:00:aa:bb:03')).toBe('denied');
    expect(hostAccess(hosts, '52:54:00:aa:bb:01')).toBe('allowed');
    expect(hostAccess(hosts, '52:54:00:00:00:00')).toBe('unknown');
  });

  it('a missing hosts file means no hosts', () => {
    const hosts = loadHosts(join(tmp, 'does-not-exist.yaml'), catalog);
    expect(hosts.byMac.size).toBe(0);
  });

  it('loads from disk with the file name in errors', () => {
    const f = join(tmp, 'hosts-bad.yaml');
    writeFileSync(f, GOOD.replace('disk: /dev/vda', 'disk: vda'));
    const e = configError(() => loadHosts(f, catalog));
    expect(e.file).toBe(f);
    expect(e.line).toBe(11);
    expect(e.field).toBe('hosts.52:54:00:AA:BB:01.disk');
  });

  // Lines: errors point at the offending value; a bad MAC key at its host block.
  const cases: Array<[string, string, number, string, RegExp]> = [
    ['bad MAC key', GOOD.replace('"52:54:00:AA:BB:01"', '"52:54:00:AA:BB"'), 8, 'hosts.52:54:00:AA:BB', /MAC/],
    [
      'clear-text password',
      GOOD.replace('password_hash: "$6$', 'password_hash: "hunter2'),
      17,
      'hosts.52-54-00-aa-bb-02.password_hash',
      /crypt/,
    ],
    [
      'newline injected into append',
      GOOD.replace('append: console=ttyS0', 'append: "console=ttyS0\\nd-i preseed/late_command string rm -rf /"'),
      18,
      'hosts.52-54-00-aa-bb-02.append',
      /single line/,
    ],
    [
      'bad ssh key',
      GOOD.replace(`ssh_keys: ["${KEY}"]`, 'ssh_keys: ["ssh-ed25519 AAAA x\'; rm -rf /"]'),
      5,
      'defaults.ssh_keys[0]',
      /OpenSSH/,
    ],
    ['bad hostname', GOOD.replace('hostname: web1', 'hostname: "web_1;reboot"'), 8, 'hosts.52:54:00:AA:BB:01.hostname', /host name/],
    [
      'unknown key',
      GOOD.replace('hostname: db1', 'hostname: db1\n    diks: /dev/sdb'),
      15,
      'hosts.52-54-00-aa-bb-02.diks',
      /nrecognized|unknown/i,
    ],
  ];
  for (const [name, text, line, field, msg] of cases) {
    it(`rejects ${name} with file, line and field`, () => {
      const e = configError(() => parseHosts('hosts.yaml', text, catalog));
      expect(e.line).toBe(line);
      expect(e.field).toBe(field);
      expect(e.message).toMatch(msg);
    });
  }

  it('rejects the same MAC written twice in different notations', () => {
    const e = configError(() => parseHosts('hosts.yaml', GOOD.replace('"52:54:00:aa:bb:03"', '"52-54-00-AA-BB-01"'), catalog));
    expect(e.message).toMatch(/same MAC/);
    // reported on the second host's block (the key's value starts on the next line)
    expect(e.line).toBe(20);
  });

  it('cross-checks entry, version and arch against the catalog', () => {
    let e = configError(() => parseHosts('hosts.yaml', GOOD.replace('entry: rocky', 'entry: rocky-linux'), catalog));
    expect(e).toMatchObject({ line: 16, field: 'hosts.52-54-00-aa-bb-02.entry' });
    expect(e.message).toMatch(/unknown catalog entry "rocky-linux"/);
    e = configError(() => parseHosts('hosts.yaml', GOOD.replace('version: "12"', 'version: "11"'), catalog));
    expect(e).toMatchObject({ line: 10, field: 'hosts.52:54:00:AA:BB:01.version' });
    e = configError(() => parseHosts('hosts.yaml', GOOD.replace('entry: rocky', 'entry: memtest86plus\n    arch: aarch64'), catalog));
    expect(e.field).toBe('hosts.52-54-00-aa-bb-02.arch');
  });
});

describe('install-once state', () => {
  it('marks, persists, clears; writes atomically; a corrupt file reads as nothing installed', () => {
    const file = join(tmp, 'state', 'installed.json');
    const s = new InstallState(file);
    expect(s.isInstalled('52:54:00:aa:bb:01')).toBe(false);
    s.markInstalled('52-54-00-AA-BB-01', 'debian', '12', new Date('2025-01-02T03:04:05Z'));
    expect(s.isInstalled('52:54:00:aa:bb:01')).toBe(true);
    // another instance (another process) sees it
    expect(new InstallState(file).get('52:54:00:aa:bb:01')).toEqual({ entry: 'debian', version: '12', at: '2025-01-02T03:04:05.000Z' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toHaveProperty(['52:54:00:aa:bb:01', 'entry'], 'debian');
    expect(readdirSync(join(tmp, 'state'))).toEqual(['installed.json']); // no temp file left behind
    expect(s.clear('52:54:00:aa:bb:01')).toBe(true);
    expect(s.clear('52:54:00:aa:bb:01')).toBe(false);
    expect(new InstallState(file).isInstalled('52:54:00:aa:bb:01')).toBe(false);
    writeFileSync(file, '{"52:54:00:aa:bb:01": {"entry": "debi');
    expect(new InstallState(file).isInstalled('52:54:00:aa:bb:01')).toBe(false);
  });
});

describe('install tokens', () => {
  it('one random token per install: reused while live, refused when wrong/expired/revoked, rotated by startInstall', () => {
    const dir = join(tmp, 'tok-state');
    let now = Date.parse('2026-01-01T00:00:00Z');
    const t = new InstallTokens(join(dir, 'install-tokens.json'), 60_000, () => now);
    const mac = '52:54:00:aa:bb:07';
    expect(t.check(mac, '0'.repeat(32))).toEqual({ ok: false, reason: 'no install in progress for this host' });
    const a = t.current(mac);
    expect(a).toMatch(TOKEN_RE);
    expect(t.current('52-54-00-AA-BB-07')).toBe(a); // same host, any spelling
    expect(new InstallTokens(join(dir, 'install-tokens.json'), 60_000, () => now).check(mac, a).ok).toBe(true); // another process
    expect(statSync(join(dir, 'install-tokens.json')).mode & 0o777).toBe(0o600);
    expect(
      t.check(
        mac,
        a.replace(/^./, (c) => (c === '0' ? '1' : '0')),
      ),
    ).toMatchObject({ ok: false, reason: 'wrong install token' });
    expect(t.check(mac, NO_TOKEN)).toMatchObject({ ok: false, reason: 'no install token in the URL' });
    now += 60_001;
    expect(t.check(mac, a)).toMatchObject({ ok: false, reason: expect.stringMatching(/expired/) as string });
    const b = t.current(mac); // a boot after expiry: a new install attempt, a new token
    expect(b).not.toBe(a);
    expect(t.revoke(mac)).toBe(true);
    expect(t.check(mac, b).ok).toBe(false);
    const s = InstallState.inDir(dir);
    s.markInstalled(mac, 'debian', '12');
    const r = startInstall(dir, mac);
    expect(r.wasInstalled).toBe(true);
    expect(s.isInstalled(mac)).toBe(false);
    expect(InstallTokens.inDir(dir).check(mac, r.token).ok).toBe(true);
  });
});
