/**
 * The rest of `pxe sync`'s contract against the local mirror: dry runs write
 * nothing, archives made by real GNU tar / Info-ZIP are verified then extracted,
 * bootloaders come byte-identical from the Debian packages, static menus offer only
 * what is installed, and two syncs never run at once.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSync, type SyncOptions } from '../../src/sync/engine.js';
import { extractTarGz } from '../../src/sync/archive.js';
import { acquireLock } from '../../src/sync/state.js';
import {
  content,
  FEDORA,
  makeSite,
  makeTestKey,
  publishAll,
  publishFedora,
  startLocalMirror,
  TextSink,
  type LocalMirror,
  type Pair,
  type TestKey,
  type TestSite,
} from '../helpers/mirror.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let mirror: LocalMirror;
let keys: { debian: TestKey; opensuse: TestKey };
let base: string;
let gen = 0;
const pair = (tag: string): Pair => ({
  kernel: content(`${tag}-k-${++gen}`, 30_000 + gen),
  initrd: content(`${tag}-i-${gen}`, 70_000 + gen),
});

const quiet = (site: TestSite, extra: Partial<SyncOptions> = {}): SyncOptions => ({
  config: site.config,
  progress: 'plain',
  out: new TextSink(),
  bootloaders: false,
  render: false,
  fetch: { timeoutMs: 2000, retries: 1, backoffMs: 10 },
  ...extra,
});

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), `pxe-sync-extras-${process.pid}-`));
  mirror = await startLocalMirror();
  keys = { debian: await makeTestKey(), opensuse: await makeTestKey() };
});

afterAll(async () => {
  await mirror?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('dry run', () => {
  it('reports what would change, downloads no image bodies and writes nothing', async () => {
    await publishAll(mirror, keys, pair);
    const site = makeSite(base, mirror, keys);
    const out = new TextSink();
    mirror.resetStats();
    const r = await runSync(quiet(site, { dryRun: true, out }));
    expect(r.targets.map((t) => t.status)).toEqual(['would-install', 'would-install', 'would-install', 'would-install', 'would-install']);
    // signatures are still checked in a dry run (so it can say which trust it would get)
    expect(r.targets.find((t) => t.id === 'debian')!.trust).toBe('signed');
    expect(mirror.bodyBytesFor(`${FEDORA.tree('40', 'x86_64')}/images/pxeboot/vmlinuz`)).toBe(0);
    expect(existsSync(site.config.tftp.root)).toBe(false);
    expect(existsSync(site.config.stateDir)).toBe(false);
    expect(out.text).toMatch(/fedora 40 x86_64: would install/);

    await runSync(quiet(site));
    publishFedora(mirror, pair('fedora'));
    const before = readFileSync(join(site.config.stateDir, 'sync', 'state.json'));
    const r2 = await runSync(quiet(site, { dryRun: true }));
    expect(r2.targets.map((t) => [t.id, t.status])).toEqual([
      ['debian', 'unchanged'],
      ['fedora', 'would-update'],
      ['opensuse', 'unchanged'],
      ['alpine', 'unchanged'],
      ['plain', 'unchanged'],
    ]);
    expect(readFileSync(join(site.config.stateDir, 'sync', 'state.json')).equals(before)).toBe(true);
  });
});

describe('archives (Ubuntu netboot tarball, memtest86+ zip)', () => {
  it('verifies the archive against SHA256SUMS, then installs only the named members', async () => {
    // Build the archives with the real tools; a long member path exercises GNU tar's long-name records.
    const src = join(base, 'archive-src');
    const deep = `${'deep/'.repeat(25)}amd64`;
    mkdirSync(join(src, deep), { recursive: true });
    const kernel = content(`ubuntu-linux-${++gen}`, 123_456);
    const initrd = content(`ubuntu-initrd-${gen}`, 234_567);
    writeFileSync(join(src, deep, 'linux'), kernel);
    writeFileSync(join(src, deep, 'initrd'), initrd);
    writeFileSync(join(src, 'evil'), 'x');
    const tgz = join(base, 'netboot.tar.gz');
    // pax format: long names travel in 'x' extended headers (GNU tar's default uses 'L' records)
    await run('tar', ['--format=pax', '-C', src, '-czf', tgz, `./${deep}/linux`, `./${deep}/initrd`, 'evil']);
    const memtest = content(`memtest-${gen}`, 150_000);
    writeFileSync(join(src, 'memtest64.bin'), memtest);
    const zipFile = join(base, 'mt.zip');
    rmSync(zipFile, { force: true });
    await run('zip', ['-q', '-j', '-9', zipFile, join(src, 'memtest64.bin'), join(src, 'evil')]);
    // the GNU format ('L' long-name records) extracts the same members
    const gnu = join(base, 'gnu.tar.gz');
    await run('tar', ['--format=gnu', '-C', src, '-czf', gnu, `./${deep}/linux`, 'evil']);
    await extractTarGz(gnu, new Map([[`${deep}/linux`, join(base, 'gnu-linux')]]));
    expect(sha(readFileSync(join(base, 'gnu-linux')))).toBe(sha(kernel));
    await expect(extractTarGz(gnu, new Map([['missing/member', join(base, 'nope')]]))).rejects.toThrow(/not found/);
    const tgzBody = readFileSync(tgz);
    const zipBody = readFileSync(zipFile);
    mirror.put('ubuntu/noble/netboot.tar.gz', tgzBody);
    mirror.put('ubuntu/noble/SHA256SUMS', `${sha(tgzBody)} *netboot.tar.gz\n`);
    mirror.put('memtest/v7/mt.zip', zipBody);

    const site = makeSite(base, mirror, keys);
    writeFileSync(
      join(site.config.catalogDir, 'test.yaml'),
      `entries:
  - id: ubuntu
    label: Ubuntu
    group: Linux
    mirror: https://releases.ubuntu.com
    versions: [{ version: "24.04", codename: noble }]
    archive: { path: "{{ codename }}/netboot.tar.gz", format: tar.gz }
    boot: { method: linux, kernel: "${deep}/linux", initrd: "${deep}/initrd" }
    checksum: { kind: sha256sums, path: "{{ codename }}/SHA256SUMS" }
    trust: checksum
  - id: memtest
    label: memtest86+
    group: Tools
    mirror: https://memtest.org/download
    versions: [{ version: "7" }]
    archive: { path: "v{{ version }}/mt.zip", format: zip }
    boot: { method: linux, kernel: memtest64.bin }
    trust: unverified
`,
    );
    site.config.mirrors = { ubuntu: mirror.url('ubuntu'), memtest: mirror.url('memtest') };
    const r = await runSync(quiet(site));
    expect(r.targets.map((t) => [t.id, t.status, t.trust])).toEqual([
      ['ubuntu', 'installed', 'checksum'],
      ['memtest', 'installed', 'unverified'],
    ]);
    const root = site.config.tftp.root;
    expect(sha(readFileSync(join(root, 'images/ubuntu/24.04/x86_64/linux')))).toBe(sha(kernel));
    expect(sha(readFileSync(join(root, 'images/ubuntu/24.04/x86_64/initrd')))).toBe(sha(initrd));
    expect(readdirSync(join(root, 'images/ubuntu/24.04/x86_64')).sort()).toEqual(['initrd', 'linux']);
    expect(sha(readFileSync(join(root, 'images/memtest/7/x86_64/memtest64.bin')))).toBe(sha(memtest));
    expect(readdirSync(join(root, 'images/memtest/7/x86_64'))).toEqual(['memtest64.bin']);

    // The manifest is the authority: while SHA256SUMS still lists the installed archive,
    // nothing is re-downloaded even if the mirror's copy changed under the same name.
    mirror.put('ubuntu/noble/netboot.tar.gz', Buffer.concat([tgzBody, Buffer.from('junk')]));
    mirror.resetStats();
    const same = await runSync(quiet(site, { only: 'ubuntu' }));
    expect(same.targets[0]!.status).toBe('unchanged');
    expect(mirror.bodyBytesFor('ubuntu/noble/netboot.tar.gz')).toBe(0);
    // A new release is announced but the mirror serves other bytes: refused before
    // extraction, and the installed members stay.
    mirror.put('ubuntu/noble/SHA256SUMS', `${sha(content('the real new tarball', 1000))} *netboot.tar.gz\n`);
    const r2 = await runSync(quiet(site, { only: 'ubuntu' }));
    expect(r2.exitCode).toBe(1);
    expect(r2.targets[0]!.error).toMatch(/does not match/);
    expect(sha(readFileSync(join(root, 'images/ubuntu/24.04/x86_64/initrd')))).toBe(sha(initrd));
  });
});

describe('bootloaders and menus', () => {
  it('copies syslinux files byte-identical from the Debian packages, once, and renders menus of what is installed', async () => {
    await publishAll(mirror, keys, pair);
    const site = makeSite(base, mirror, keys);
    site.config.serverAddress = '10.9.8.7';
    site.config.http = { port: 8080 };
    // pxe.yaml `menu` reaches the static files as it reaches pxe serve's rendered ones
    site.config.menu = { title: 'Lab menu', timeoutSeconds: 3 };
    // make one entry fail so the menu must leave it out
    mirror.fault('plain/boot/initrd', { status: 404 });
    const r = await runSync(quiet(site, { bootloaders: true, render: true, writeMenus: true }));
    expect(r.exitCode).toBe(1);
    const root = site.config.tftp.root;
    const pairs: Array<[string, string]> = [
      ['pxelinux.0', '/usr/lib/PXELINUX/pxelinux.0'],
      ['ldlinux.c32', '/usr/lib/syslinux/modules/bios/ldlinux.c32'],
      ['vesamenu.c32', '/usr/lib/syslinux/modules/bios/vesamenu.c32'],
      ['libcom32.c32', '/usr/lib/syslinux/modules/bios/libcom32.c32'],
      ['memdisk', '/usr/lib/syslinux/memdisk'],
      ['syslinux.efi', '/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi'],
      ['efi64/ldlinux.e64', '/usr/lib/syslinux/modules/efi64/ldlinux.e64'],
      ['efi64/vesamenu.c32', '/usr/lib/syslinux/modules/efi64/vesamenu.c32'],
      // iPXE for sites that chain into it (Debian's ipxe package)
      ['ipxe/snponly.efi', '/usr/lib/ipxe/snponly.efi'],
      ['ipxe/undionly.kpxe', '/usr/lib/ipxe/undionly.kpxe'],
      // the Secure Boot chain: signed shim, and the signed network GRUB under the name shim loads
      ['shimx64.efi', '/usr/lib/shim/shimx64.efi.signed'],
      ['grubx64.efi', '/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed'],
    ];
    for (const [dest, src] of pairs) expect(sha(readFileSync(join(root, dest))), dest).toBe(sha(readFileSync(src)));
    // the ARM64 loaders are optional (their packages do not install on amd64): missing is no failure
    const absent = r.bootloaders.filter((b) => b.status === 'missing');
    expect(
      absent.every((b) => b.dest.endsWith('aa64.efi')),
      JSON.stringify(absent),
    ).toBe(true);
    expect(r.bootloaders.filter((b) => b.status !== 'missing').every((b) => b.status === 'installed')).toBe(true);

    expect(r.menus).toBe('bios 4 item(s) -> pxelinux.cfg/default, efi 4 item(s) -> efi64/pxelinux.cfg/default');
    const menu = readFileSync(join(root, 'pxelinux.cfg/default'), 'utf8');
    expect(menu).toContain('MENU TITLE Lab menu');
    expect(menu).toMatch(/^TIMEOUT 30$/m);
    expect(readFileSync(join(root, 'efi64/pxelinux.cfg/default'), 'utf8')).toContain('MENU TITLE Lab menu');
    expect(menu).toContain('images/debian/12/x86_64/linux');
    expect(menu).toContain('images/fedora/40/x86_64/vmlinuz');
    expect(menu).not.toContain('images/plain/');

    mirror.clearFaults();
    const r2 = await runSync(quiet(site, { bootloaders: true, render: true, writeMenus: true }));
    expect(r2.exitCode).toBe(0);
    expect(r2.bootloaders.filter((b) => b.status !== 'missing').every((b) => b.status === 'unchanged')).toBe(true);
    expect(readFileSync(join(root, 'pxelinux.cfg/default'), 'utf8')).toContain('images/plain/1/x86_64/vmlinuz');

    // By default no static menu is written: it would shadow the per-request menu of pxe serve.
    const plain = makeSite(base, mirror, keys);
    const r3 = await runSync(quiet(plain, { render: true }));
    expect(r3.menus).toBe('bios 5 item(s), efi 5 item(s) (rendered per request by pxe serve)');
    expect(existsSync(join(plain.config.tftp.root, 'pxelinux.cfg'))).toBe(false);
  });
});

describe('progress output', () => {
  it('draws cli-progress bars on a terminal and still prints one line per file and per entry', async () => {
    await publishAll(mirror, keys, pair);
    const site = makeSite(base, mirror, keys);
    const tty = Object.assign(new TextSink(), { isTTY: true, columns: 120 });
    const r = await runSync(quiet(site, { progress: 'auto', out: tty, only: 'fedora' }));
    expect(r.exitCode).toBe(0);
    expect(tty.text).toMatch(/\u2588|\u2591/); // bar glyphs of the shades_classic preset
    expect(tty.text).toContain('overall');
    expect(tty.text).toMatch(/fedora 40 x86_64 vmlinuz: .* sha256 ok/);
    expect(tty.text).toMatch(/fedora 40 x86_64: installed/);
    const plain = new TextSink();
    await runSync(quiet(makeSite(base, mirror, keys), { progress: 'auto', out: plain, only: 'fedora' }));
    // eslint-disable-next-line no-control-regex -- no ANSI escape (ESC, 0x1b) may reach a non-TTY
    expect(plain.text).not.toMatch(/\u2588|\u2591|\x1b\[/);
  });
});

describe('locking', () => {
  it("refuses to run while another sync holds the lock, and takes over a dead holder's lock", async () => {
    await publishAll(mirror, keys, pair);
    const site = makeSite(base, mirror, keys);
    const release = await acquireLock(site.config.stateDir);
    await expect(runSync(quiet(site))).rejects.toThrow(/another pxe sync is running/);
    await release();
    // a lock naming a pid that no longer exists (kill -9) is stale
    writeFileSync(join(site.config.stateDir, 'sync', 'lock'), '2147483646');
    const r = await runSync(quiet(site));
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(site.config.stateDir, 'sync', 'lock'))).toBe(false);
  });
});
