/**
 * Host lifecycle from the CLI (bug 4: there was no way back from install-once but
 * editing state/installed.json by hand): pxe host add / list / reinstall / rm edit
 * hosts.yaml keeping its comments and order, refuse what pxe serve would refuse,
 * and a running pxe serve picks the change up without a restart (it watches the
 * file). pxe render prints a rendered file and writes nothing.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/proc.js';
import { InstallState } from '../../src/hosts/state.js';
import { InstallTokens } from '../../src/hosts/tokens.js';
import { ServeChild } from '../../bench/fuzz/child.js';

const CLI = resolve(__dirname, '../../dist/cli.js');
let dir = '';
let cfg = '';
let hostsFile = '';
const ORIGINAL = [
  '# Lab hosts: keep this comment',
  'defaults:',
  '  user: ops # the admin account',
  'hosts:',
  '  # the web server',
  '  "52:54:00:00:00:01":',
  '    hostname: web1',
  '    entry: debian',
  '  "52:54:00:00:00:02": { hostname: db1, entry: debian, version: "13" }',
  '',
].join('\n');

const pxe = (...args: string[]) => runCommand(['node', CLI, ...args, '--config', cfg], { timeoutMs: 60_000, cwd: dir });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `pxe-hosts-${process.pid}-`));
  mkdirSync(join(dir, 'tftproot', 'images', 'debian', '12', 'x86_64'), { recursive: true });
  cfg = join(dir, 'pxe.yaml');
  hostsFile = join(dir, 'hosts.yaml');
  writeFileSync(cfg, 'serverAddress: 10.9.0.1\ntftp: { root: ./tftproot }\nstateDir: ./state\nhostsFile: ./hosts.yaml\n');
  writeFileSync(hostsFile, ORIGINAL);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pxe host', () => {
  it('add appends the host and keeps every comment and the order of the others', async () => {
    const r = await pxe('host', 'add', '52-54-00-00-00-03', '--entry', 'debian', '--hostname', 'app1', '--install-once');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('added 52:54:00:00:00:03 (app1) -> debian');
    const text = readFileSync(hostsFile, 'utf8');
    // the file as it was, plus the new host at the end of hosts:
    expect(text.startsWith(ORIGINAL.trimEnd())).toBe(true);
    expect(text.slice(ORIGINAL.trimEnd().length)).toBe(
      '\n  "52:54:00:00:00:03":\n    hostname: app1\n    entry: debian\n    install_once: true\n',
    );
    // no temporary file left next to it
    expect(readdirSync(dir).filter((n) => n.includes('.tmp'))).toEqual([]);
  });

  it('refuses what pxe serve would refuse, and leaves the file untouched', async () => {
    const before = readFileSync(hostsFile, 'utf8');
    const unknown = await pxe('host', 'add', '52:54:00:00:00:04', '--entry', 'debain');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown catalog entry "debain"/);
    const dup = await pxe('host', 'add', '52:54:00:00:00:01', '--entry', 'debian');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/52:54:00:00:00:01 is already in/);
    const badName = await pxe('host', 'add', '52:54:00:00:00:05', '--entry', 'debian', '--hostname', 'bad_name!');
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/hostname/);
    const badMac = await pxe('host', 'add', 'nope', '--entry', 'debian');
    expect(badMac.stderr).toMatch(/not a MAC address: nope/);
    expect(readFileSync(hostsFile, 'utf8')).toBe(before);
  });

  it('list shows entry, install state and the last boot seen', async () => {
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(
      join(dir, 'state', 'boot-events.jsonl'),
      [
        JSON.stringify({
          time: '2026-12-01T09:00:00.000Z',
          proto: 'dhcp',
          mac: '52:54:00:00:00:01',
          what: 'DISCOVER -> offered pxelinux.0',
        }),
        JSON.stringify({
          time: '2026-12-01T09:00:05.000Z',
          proto: 'tftp',
          mac: '52:54:00:00:00:01',
          what: 'RRQ pxelinux.cfg/01-52-54-00-00-00-01 -> ok',
        }),
        '',
      ].join('\n'),
    );
    new InstallState(join(dir, 'state', 'installed.json')).markInstalled(
      '52:54:00:00:00:03',
      'debian',
      '12',
      new Date('2026-12-01T10:00:00Z'),
    );
    const r = await pxe('host', 'list', '--json');
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((x) => x.mac)).toEqual(['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03']);
    expect(rows[0]).toMatchObject({
      hostname: 'web1',
      entry: 'debian',
      install: 'always',
      lastSeen: { time: '2026-12-01T09:00:05.000Z', what: 'tftp RRQ pxelinux.cfg/01-52-54-00-00-00-01 -> ok' },
    });
    expect(rows[1]).toMatchObject({ hostname: 'db1', version: '13' });
    expect(rows[1]!.lastSeen).toBeUndefined();
    expect(rows[2]).toMatchObject({ hostname: 'app1', installOnce: true, install: 'installed', installedAt: '2026-12-01T10:00:00.000Z' });
    const table = await pxe('host', 'list');
    expect(table.stdout).toMatch(/^52:54:00:00:00:03\s+app1\s+debian\s+installed 2026-12-01T10:00:00\.000Z\s+never$/m);
  });

  it('render prints the host config and answer file, writing nothing', async () => {
    const stateBefore = readdirSync(join(dir, 'state')).sort();
    const px = await pxe('render', '52:54:00:00:00:01', 'pxelinux');
    expect(px.code, px.stderr).toBe(0);
    expect(px.stdout).toMatch(/^DEFAULT install$/m);
    expect(px.stdout).toContain('/unattended/52-54-00-00-00-01/no-token/preseed.cfg');
    const preseed = await pxe('render', '52:54:00:00:00:01', 'preseed.cfg');
    expect(preseed.code, preseed.stderr).toBe(0);
    expect(preseed.stdout).toMatch(/^d-i passwd\/username string ops$/m);
    expect(preseed.stdout).toMatch(/^d-i netcfg\/hostname string web1$/m);
    const menu = await pxe('render', '52:54:00:00:00:99', 'menu');
    expect(menu.stdout).toMatch(/^ONTIMEOUT local$/m);
    const bad = await pxe('render', '52:54:00:00:00:01', 'kickstart.ks');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no file "kickstart.ks"/);
    // no install token issued, no marker, no event written
    expect(readdirSync(join(dir, 'state')).sort()).toEqual(stateBefore);
  });

  it('reinstall clears the install-once marker and replaces the install token', async () => {
    const tokens = new InstallTokens(join(dir, 'state', 'install-tokens.json'), 3_600_000);
    const old = tokens.issue('52:54:00:00:00:03');
    const r = await pxe('host', 'reinstall', '52:54:00:00:00:03');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('52:54:00:00:00:03: was installed; installs again at its next network boot');
    expect(new InstallState(join(dir, 'state', 'installed.json')).isInstalled('52:54:00:00:00:03')).toBe(false);
    expect(tokens.check('52:54:00:00:00:03', old).ok).toBe(false);
    const unknown = await pxe('host', 'reinstall', '52:54:00:00:00:77');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/52:54:00:00:00:77 is not in/);
  });

  it('rm removes just that host; comments of the others stay', async () => {
    const r = await pxe('host', 'rm', '52:54:00:00:00:02');
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(hostsFile, 'utf8');
    expect(text).not.toContain('52:54:00:00:00:02');
    for (const keep of [
      '# Lab hosts: keep this comment',
      'user: ops # the admin account',
      '# the web server',
      '"52:54:00:00:00:01":',
      '"52:54:00:00:00:03":',
    ])
      expect(text).toContain(keep);
    expect((await pxe('host', 'rm', '52:54:00:00:00:02')).stderr).toMatch(/is not in/);
  });
});

describe('a running pxe serve picks up host changes without a restart', () => {
  let server: ServeChild | undefined;
  afterAll(async () => server?.stop());

  it('pxe host add, then rm: the per-host config appears and goes over HTTP, same process', async () => {
    server = new ServeChild({
      cwd: dir,
      args: [
        '--config',
        cfg,
        '--listen',
        '127.0.0.1',
        '--server-address',
        '127.0.0.1',
        '--tftp-port',
        '0',
        '--http-port',
        '0',
        '--dhcp-port',
        '0',
        '--pxe-port',
        '0',
        '--no-dhcp',
      ],
    });
    await server.ready(60_000);
    const http = server.lines.find((l) => l.msg === 'http server listening') as unknown as { addresses: string[] };
    const port = Number(http.addresses[0]!.split(':').pop());
    const url = `http://127.0.0.1:${port}/files/pxelinux.cfg/01-52-54-00-00-00-42`;
    const get = () => runCommand(['curl', '-s', '-o', '-', '-w', '\n%{http_code}', url], { timeoutMs: 10_000 });
    expect((await get()).stdout.split('\n').pop()).toBe('404');
    const pid = server.pid;

    expect((await pxe('host', 'add', '52:54:00:00:00:42', '--entry', 'debian', '--hostname', 'new1')).code).toBe(0);
    let body = '';
    for (let i = 0; i < 100 && !body.includes('new1'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      body = (await get()).stdout;
    }
    expect(body).toMatch(/netcfg\/get_hostname=new1/);
    expect(server.lines.some((l) => l.msg === 'hosts file changed: reloading')).toBe(true);

    expect((await pxe('host', 'rm', '52:54:00:00:00:42')).code).toBe(0);
    let code = '';
    for (let i = 0; i < 100 && code !== '404'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      code = (await get()).stdout.split('\n').pop()!;
    }
    expect(code).toBe('404');
    expect(server.pid).toBe(pid);
    expect(existsSync(hostsFile)).toBe(true);
  }, 120_000);
});
