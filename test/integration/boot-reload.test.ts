/**
 * A reload (SIGHUP) in the middle of a boot keeps what `pxe serve` learnt from the
 * client's DHCP exchange (boot/clients.ts), against a real `pxe serve` in a network
 * namespace with two segments, clients in two others (probe.js for DHCP, curl for
 * TFTP/HTTP):
 *   pxe-<pid>-hup-srv   s0 10.71.1.1/24   s1 10.71.2.1/24   pxe serve (all defaults ports)
 *   pxe-<pid>-hup-cli   c0 10.71.1.2/24   (segment 1)
 *   pxe-<pid>-hup-cli2  c1 10.71.2.2/24   (segment 2)
 * Needs root, iproute2 and curl.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, makeRequest } from '../../src/dhcp/codec.js';
import { REPO_ROOT, ServeChild } from '../../bench/fuzz/child.js';
import { NetnsLab, run } from '../helpers/netns.js';

const PROBE = join(REPO_ROOT, 'dist-bench/bench/fuzz/probe.js');
const SEG1 = '10.71.1.1';
const SEG2 = '10.71.2.1';
const lab = new NetnsLab('hup');
let srv = '';
let cli = '';
let cli2 = '';
let dir = '';
let serve: ServeChild;

/** A PXE ROM's DISCOVER (broadcast flag set), option 93 = arch. */
function discoverHex(mac: string, xid: number, arch: number): string {
  const p = makeRequest({ xid, chaddr: Buffer.from(mac.replaceAll(':', ''), 'hex'), flags: 0x8000 });
  p.options.set(53, Buffer.from([1]));
  p.options.set(93, Buffer.from([0, arch]));
  p.options.set(94, Buffer.from([1, 2, 1]));
  p.options.set(60, Buffer.from(`PXEClient:Arch:${String(arch).padStart(5, '0')}:UNDI:003016`));
  const r = encode(p);
  if (!r.ok) throw new Error(r.detail);
  return r.data.toString('hex');
}

/** Broadcasts the DISCOVER from a client namespace; returns the OFFER's siaddr and file. */
async function discover(ns: string, mac: string, xid: number, arch: number): Promise<{ siaddr: string; file: string }> {
  const r = await lab.exec(
    ns,
    [
      'node',
      PROBE,
      '--port',
      '68',
      '--to',
      '255.255.255.255:67',
      '--hex',
      discoverHex(mac, xid, arch),
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
  return { siaddr: d.packet.siaddr, file: d.packet.file };
}

async function reload(): Promise<void> {
  const mark = serve.lines.length;
  serve.signal('SIGHUP');
  const line = await serve.waitLine((l) => l.msg === 'reloaded configuration, catalog and hosts', 15_000, mark);
  expect(line, serve.stdout.slice(-2000)).toBeDefined();
}

/** TFTP get from a client namespace (curl); the file's text, or null when the server refused it. */
async function tftpText(ns: string, path: string): Promise<string | null> {
  const out = join(dir, `got-${Math.random().toString(36).slice(2)}`);
  const r = await lab.exec(ns, ['curl', '-s', '--max-time', '5', '-o', out, `tftp://${SEG1}/${path}`], 10_000);
  return r.code === 0 && existsSync(out) ? readFileSync(out, 'utf8') : null;
}

/** The distinct http://address:port prefixes in the iPXE script rendered for `mac`. */
async function scriptAddresses(ns: string, server: string, mac: string): Promise<string[]> {
  const r = await lab.exec(ns, ['curl', '-s', '--max-time', '5', `http://${server}:8080/boot.ipxe?mac=${mac}`], 10_000);
  expect(r.code, r.stderr).toBe(0);
  return [...new Set(r.stdout.match(/http:\/\/[0-9.]+:\d+/g) ?? [])];
}

beforeAll(async () => {
  expect(existsSync(PROBE), 'npm run build first').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'pxe-hup-'));
  const root = join(dir, 'tftproot');
  // the two builds of a COM32 module, told apart by content
  mkdirSync(join(root, 'efi64'), { recursive: true });
  writeFileSync(join(root, 'menu.c32'), 'BIOS menu.c32\n');
  writeFileSync(join(root, 'efi64', 'menu.c32'), 'EFI64 menu.c32\n');
  // one "synced" entry, so the iPXE script carries kernel URLs with the server address
  mkdirSync(join(root, 'images', 'debian', '12', 'x86_64'), { recursive: true });
  writeFileSync(
    join(dir, 'pxe.yaml'),
    [
      `tftp: { root: ${root} }`,
      `catalogDir: ${join(REPO_ROOT, 'distros')}`,
      `templatesDir: ${join(REPO_ROOT, 'templates')}`,
      `stateDir: ${join(dir, 'state')}`,
      '',
    ].join('\n'),
  );

  srv = await lab.netns('srv');
  cli = await lab.netns('cli');
  cli2 = await lab.netns('cli2');
  await lab.veth(srv, 's0', `${SEG1}/24`, cli, 'c0', '10.71.1.2/24');
  await lab.veth(srv, 's1', `${SEG2}/24`, cli2, 'c1', '10.71.2.2/24');
  // the clients need a route for 255.255.255.255 to send their DISCOVER
  await run(['ip', '-n', cli, 'route', 'add', 'default', 'dev', 'c0']);
  await run(['ip', '-n', cli2, 'route', 'add', 'default', 'dev', 'c1']);
  serve = new ServeChild({ netns: srv, cwd: dir, args: ['--config', join(dir, 'pxe.yaml')] });
  await serve.ready(30_000);
  await lab.waitForUdpPort(srv, 67);
}, 90_000);

afterAll(async () => {
  await serve?.stop();
  await lab.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a reload during a boot', () => {
  it('a UEFI client (DISCOVER arch 7) still gets the efi64/ menu.c32 after a SIGHUP', async () => {
    const X = '52:54:00:71:00:07';
    const offer = await discover(cli, X, 0x7107, 7);
    expect(offer).toEqual({ siaddr: SEG1, file: 'syslinux.efi' });
    await reload();
    // syslinux.efi asks for its per-MAC config first (which names its MAC), then the UI module
    await tftpText(cli, `pxelinux.cfg/01-${X.replace(/:/g, '-')}`);
    expect(await tftpText(cli, 'menu.c32')).toBe('EFI64 menu.c32\n');
    // a client DHCP never saw as UEFI gets the root (BIOS) build
    expect(await tftpText(cli, `pxelinux.cfg/01-52-54-00-71-00-08`)).toBeNull();
    expect(await tftpText(cli, 'menu.c32')).toBe('BIOS menu.c32\n');
  });

  it('a client on the second segment keeps the address it was advertised after a SIGHUP', async () => {
    const Y = '52:54:00:71:00:02';
    const offer = await discover(cli2, Y, 0x7102, 0);
    expect(offer).toEqual({ siaddr: SEG2, file: 'pxelinux.0' });
    // files rendered for a client nobody advertised to carry the default (first) address:
    // without the per-client memory Y would get that one too
    const fallback = await scriptAddresses(cli2, SEG2, '52:54:00:71:00:99');
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).not.toBe(`http://${SEG2}:8080`);
    expect(await scriptAddresses(cli2, SEG2, Y)).toEqual([`http://${SEG2}:8080`]);
    await reload();
    expect(await scriptAddresses(cli2, SEG2, Y)).toEqual([`http://${SEG2}:8080`]);
  });
});
