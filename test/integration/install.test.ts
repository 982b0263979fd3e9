/**
 * pxe installed like any daemon: `npm pack` of this tree, `npm i -g` of the tarball
 * into a temporary prefix, then the installed `pxe` command (a symlink in
 * <prefix>/bin, as npm link and npx make too) is run from another directory:
 * --version, list, and serve on loopback with the kernel picking the ports, checked
 * with curl and tftp-hpa. The dependencies come from the npm cache `npm ci` filled
 * (--prefer-offline), else the registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/netns.js';

const REPO = resolve(__dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
let dir = '';
let tarball = '';
let files: string[] = [];
let pxe = '';
let server: ChildProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-install-${process.pid}-`));
  // prepack rebuilds dist/ from scratch, so the tarball never carries stale files.
  const pack = await run(['npm', 'pack', '--json', '--pack-destination', dir], 300_000);
  expect(pack.code, pack.stderr).toBe(0);
  const out = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(dir, out[0]!.filename);
  files = out[0]!.files.map((f) => f.path);
  const inst = await run(
    ['npm', 'i', '-g', '--prefix', join(dir, 'prefix'), '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=pxe', tarball],
    300_000,
  );
  expect(inst.code, `${inst.stdout}\n${inst.stderr}`).toBe(0);
  pxe = join(dir, 'prefix', 'bin', 'pxe');
}, 600_000);

afterAll(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the built program, templates, catalog and native source, and nothing else', () => {
    for (const want of [
      'bin/pxe.js',
      'dist/cli.js',
      'dist/serve.js',
      'templates/pxelinux-menu.njk',
      'templates/unattended/preseed.cfg.njk',
      'distros/debian.yaml',
      'src/native/udp.c',
      'src/native/binding.gyp',
      'package.json',
      'contrib/systemd/pxe.service',
    ])
      expect(files, want).toContain(want);
    const allowed =
      /^(?:bin\/pxe\.js|dist\/.+\.js|templates\/.+|distros\/.+\.yaml|src\/native\/(?:udp\.c|sendfile\.c|binding\.gyp)|schemas\/.+\.json|contrib\/systemd\/.+|docs\/operations\.md|package\.json|README\.md)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files.filter((f) => /^(?:test|src\/(?!native\/))|\.map$|\.ts$/.test(f))).toEqual([]);
  });
});

describe('the installed pxe command', () => {
  it('is a symlink, and --version prints the package version', async () => {
    expect(readlinkSync(pxe)).toMatch(/node_modules\/pxe\/bin\/pxe\.js$/);
    const r = await run([pxe, '--version'], 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
    const help = await run([pxe, '--help'], 30_000);
    expect(help.stdout).toMatch(/Usage: pxe/);
    expect(help.stdout).toMatch(/serve/);
  });

  it('pxe list reads the catalog shipped in the package', async () => {
    const site = join(dir, 'site');
    mkdirSync(join(site, 'tftproot'), { recursive: true });
    writeFileSync(join(site, 'pxe.yaml'), 'tftp: { root: ./tftproot }\nstateDir: ./state\nhostsFile: ./hosts.yaml\n');
    const r = await run([pxe, 'list', '--config', join(site, 'pxe.yaml')], 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^debian\s+12\s+x86_64\s+missing/m);
  });

  it('pxe serve answers HTTP and TFTP on loopback (ports picked by the kernel)', async () => {
    const site = join(dir, 'site');
    writeFileSync(join(site, 'tftproot', 'hello.txt'), 'hello from the installed pxe\n');
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    server = spawn(
      pxe,
      [
        'serve',
        '--config',
        join(site, 'pxe.yaml'),
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
      ],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buf = '';
    server.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          /* not a log line */
        }
      }
    });
    server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!lines.some((l) => l.msg === 'pxe serving') && server.exitCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(
      lines.some((l) => l.msg === 'pxe serving'),
      `serve did not start: ${stderr}`,
    ).toBe(true);

    const http = lines.find((l) => l.msg === 'http server listening') as { addresses: string[] };
    const httpPort = Number(http.addresses[0]!.split(':').pop());
    const tftp = lines.find((l) => l.msg === 'tftp server listening') as { listen: Array<{ port: number }>; io: string };
    // the native datagram module was built when the package was installed (g++ is there)
    expect(tftp.io).toBe('native');

    const body = await run(['curl', '-sf', `http://127.0.0.1:${httpPort}/files/hello.txt`], 20_000);
    expect(body.stdout).toBe('hello from the installed pxe\n');
    const health = await run(['curl', '-sf', `http://127.0.0.1:${httpPort}/healthz`], 20_000);
    expect(JSON.parse(health.stdout)).toMatchObject({ tftp: 'up', dhcp: 'up' });
    const got = join(dir, 'got.txt');
    const t = await run(['tftp', '127.0.0.1', String(tftp.listen[0]!.port), '-m', 'octet', '-c', 'get', 'hello.txt', got], 20_000);
    expect(t.code, t.stderr).toBe(0);
    expect(readFileSync(got, 'utf8')).toBe('hello from the installed pxe\n');

    server.kill('SIGTERM');
    const code = await new Promise<number | null>((r) =>
      server!.exitCode !== null ? r(server!.exitCode) : server!.on('exit', (c) => r(c)),
    );
    expect(code).toBe(0);
  }, 120_000);
});
