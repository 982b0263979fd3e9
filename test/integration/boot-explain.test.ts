/**
 * `pxe which` and a running `pxe serve` agree: for a BIOS, an EFI and an iPXE client,
 * the boot file the proxyDHCP offers (a real DISCOVER) and the config file the client
 * ends up with when it walks pxelinux's lookup list (TFTP with curl; over HTTP /files/
 * for iPXE, as pxelinux.0 loaded over HTTP does). One namespace pair:
 *   pxe-<pid>-expl-srv  s0 10.72.1.1/24   pxe serve (default ports)
 *   pxe-<pid>-expl-cli  c0 10.72.1.2/24   probe.js, curl
 * Needs root, iproute2 and curl.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, makeRequest } from '../../src/dhcp/codec.js';
import { CLI, REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab, run } from '../helpers/netns.js';

const execFileP = promisify(execFile);
const PROBE = join(REPO_ROOT, 'dist-bench/bench/fuzz/probe.js');
const SRV = '10.72.1.1';
const CLIENT_IP = '10.72.1.2';
const lab = new NetnsLab('expl');
let srv = '';
let cli = '';
let dir = '';
let cfg = '';
let serve: ServeChild;

function discoverHex(mac: string, xid: number, arch: number, ipxe: boolean): string {
  const p = makeRequest({ xid, chaddr: Buffer.from(mac.replaceAll(':', ''), 'hex'), flags: 0x8000 });
  p.options.set(53, Buffer.from([1]));
  p.options.set(93, Buffer.from([0, arch]));
  p.options.set(94, Buffer.from([1, 2, 1]));
  p.options.set(60, Buffer.from(`PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:002001`));
  if (ipxe) p.options.set(77, Buffer.from('iPXE'));
  const r = encode(p);
  if (!r.ok) throw new Error(r.detail);
  return r.data.toString('hex');
}

/** The boot file of the OFFER the running server sends to this DISCOVER. */
async function offeredFile(mac: string, xid: number, arch: number, ipxe: boolean): Promise<string> {
  const r = await lab.exec(
    cli,
    [
      'node',
      PROBE,
      '--port',
      '68',
      '--to',
      '255.255.255.255:67',
      '--hex',
      discoverHex(mac, xid, arch, ipxe),
      '--expect',
      '1',
      '--wait-ms',
      '5000',
    ],
    15_000,
  );
  const line = r.stdout.split('\n').find(Boolean);
  if (!line) throw new Error(`no OFFER for ${mac}: ${r.stderr}\n${serve.stdout.slice(-2000)}`);
  const d = decode(Buffer.from((JSON.parse(line) as { hex: string }).hex, 'hex'));
  if (!d.ok) throw new Error(d.detail);
  return d.packet.file;
}

/** Fetches `path` from the running server as the client would; its bytes, or null when refused. */
async function fetch(path: string, over: 'tftp' | 'http'): Promise<Buffer | null> {
  const out = join(dir, `got-${Math.random().toString(36).slice(2)}`);
  const url = over === 'tftp' ? `tftp://${SRV}/${path}` : `http://${SRV}:8080/files/${path}`;
  const r = await lab.exec(cli, ['curl', '-s', '-f', '--max-time', '5', '-o', out, url], 10_000);
  return r.code === 0 && existsSync(out) ? readFileSync(out) : null;
}

interface Which {
  dhcp: Array<{ firmware: string; ipxe: boolean; action: string; bootFile?: string }>;
  steps: Array<{ path: string; result: string; bytes?: number }>;
  served: { path: string; result: string; bytes?: number } | undefined;
}

async function which(mac: string, firmware: string): Promise<Which> {
  const { stdout } = await execFileP(
    process.execPath,
    [CLI, 'which', mac, '--ip', CLIENT_IP, '--firmware', firmware, '--config', cfg, '--json'],
    { timeout: 30_000 },
  );
  return JSON.parse(stdout) as Which;
}

/** Walks the lookup list in order against the running server; the first path it serves. */
async function walk(paths: string[], over: 'tftp' | 'http'): Promise<{ path: string; content: Buffer } | undefined> {
  for (const path of paths) {
    const content = await fetch(path, over);
    if (content) return { path, content };
  }
  return undefined;
}

beforeAll(async () => {
  expect(existsSync(PROBE) && existsSync(CLI), 'npm run build first').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'pxe-expl-'));
  const root = join(dir, 'tftproot');
  mkdirSync(join(root, 'pxelinux.cfg'), { recursive: true });
  // Debian 12 x86_64 "synced": the host's config and the menu entries render
  mkdirSync(join(root, 'images', 'debian', '12', 'x86_64'), { recursive: true });
  // and a memdisk entry, which only a BIOS menu offers
  mkdirSync(join(root, 'images', 'freebsd', '14.3', 'x86_64'), { recursive: true });
  writeFileSync(
    join(dir, 'hosts.yaml'),
    'hosts:\n  "52:54:00:72:00:01": { hostname: web1, entry: debian, version: "12", disk: /dev/vda }\n',
  );
  cfg = join(dir, 'pxe.yaml');
  writeFileSync(
    cfg,
    [
      `serverAddress: ${SRV}`,
      `tftp: { root: ${root} }`,
      `catalogDir: ${join(REPO_ROOT, 'distros')}`,
      `templatesDir: ${join(REPO_ROOT, 'templates')}`,
      `hostsFile: ${join(dir, 'hosts.yaml')}`,
      `stateDir: ${join(dir, 'state')}`,
      '',
    ].join('\n'),
  );
  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  await lab.veth(srv, 's0', `${SRV}/24`, cli, 'c0', `${CLIENT_IP}/24`);
  await run(['ip', '-n', cli, 'route', 'add', 'default', 'dev', 'c0']);
  serve = new ServeChild({ netns: srv, cwd: dir, args: ['--config', cfg] });
  await serve.ready(30_000);
  await lab.waitForUdpPort(srv, 67);
}, 90_000);

afterAll(async () => {
  await serve?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pxe which agrees with the running server', () => {
  it('on the boot file and the config file picked, for a BIOS, an EFI and an iPXE client', async () => {
    const cases = [
      { name: 'BIOS (in hosts.yaml)', mac: '52:54:00:72:00:01', arch: 0, ipxe: false, firmware: 'bios', over: 'tftp' as const },
      { name: 'x64 UEFI', mac: '52:54:00:72:00:02', arch: 7, ipxe: false, firmware: 'efi-x64', over: 'tftp' as const },
      { name: 'iPXE on BIOS', mac: '52:54:00:72:00:03', arch: 0, ipxe: true, firmware: 'bios', over: 'http' as const },
    ];
    const served: Record<string, { path: string; content: Buffer }> = {};
    for (const [i, c] of cases.entries()) {
      const w = await which(c.mac, c.firmware);
      const expected = w.dhcp.find((d) => d.firmware === c.firmware && d.ipxe === c.ipxe);
      expect(expected?.action, c.name).toBe('boot');
      expect(await offeredFile(c.mac, 0x7200 + i, c.arch, c.ipxe), c.name).toBe(expected?.bootFile);

      const got = await walk(
        w.steps.map((s) => s.path),
        c.over,
      );
      expect(got, c.name).toBeDefined();
      expect(got?.path, c.name).toBe(w.served?.path);
      expect(w.served?.result, c.name).toBe('virtual');
      served[c.name] = got!;
      // menus are byte for byte what `pxe which` rendered (a host's config carries the
      // install token the server issued, which `pxe which` leaves out)
      if (w.served?.path.endsWith('/default')) expect(got?.content.length, c.name).toBe(w.served.bytes);
    }
    expect(served['BIOS (in hosts.yaml)']?.path).toBe('pxelinux.cfg/01-52-54-00-72-00-01');
    expect(served['x64 UEFI']?.path).toBe('pxelinux.cfg/default');
    expect(served['iPXE on BIOS']?.path).toBe('pxelinux.cfg/default');
    // the EFI client's menu is not the BIOS one (no memdisk entry), and both agreed
    expect(served['iPXE on BIOS']?.content.toString()).toMatch(/freebsd/i);
    expect(served['x64 UEFI']?.content.toString()).not.toMatch(/freebsd/i);
  });
});
