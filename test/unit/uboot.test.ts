/**
 * What pxe serves U-Boot (src/catalog/uboot.ts): pxelinux configs its `pxe` command can
 * run, and the boot.scr.uimg its distro boot fetches. The image is checked against
 * u-boot-tools' own mkimage, byte for byte. The real boards run in test/e2e/uboot.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog/load.js';
import { catalogFileProvider } from '../../src/boot/files.js';
import type { RenderContext } from '../../src/catalog/render.js';
import type { Arch } from '../../src/catalog/schema.js';
import { renderUbootHost, renderUbootMenu, UBOOT_SCRIPT, ubootScriptImage } from '../../src/catalog/uboot.js';
import { parseHosts } from '../../src/hosts/load.js';

const catalog = loadCatalog(resolve(__dirname, '../../distros'));
const tmp = mkdtempSync(join(tmpdir(), `pxe-uboot-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** synced: Debian 12 on both architectures, memtest (x86 only), FreeBSD (memdisk, x86 only) */
const SYNCED = new Set(['debian/12/x86_64', 'debian/12/aarch64', 'fedora/42/aarch64', 'freebsd/14.3/x86_64']);
const ctx: RenderContext = {
  catalog,
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  isInstalled: (id: string, v: string, a: Arch) => SYNCED.has(`${id}/${v}/${a}`),
};

const hosts = parseHosts(
  'hosts.yaml',
  [
    'hosts:',
    '  "52:54:00:0b:00:01": { hostname: board1, entry: debian, version: "12", arch: aarch64 }',
    '  "52:54:00:0b:00:02": { hostname: pc1, entry: debian, version: "12" }',
    '  "52:54:00:0b:00:03": { hostname: board-done, entry: debian, version: "12", arch: aarch64, install_once: true }',
    '',
  ].join('\n'),
  catalog,
);
const host = (mac: string) => hosts.byMac.get(mac)!;

/** labels with their body lines, as U-Boot's parser groups them */
function labels(cfg: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of cfg.split('\n')) {
    const m = /^LABEL (\S+)$/.exec(line);
    if (m) out.set(m[1]!, (cur = []));
    else if (cur && /^\s+\S/.test(line)) cur.push(line.trim());
    else cur = undefined;
  }
  return out;
}

describe('U-Boot menu (pxelinux.cfg/default-arm)', () => {
  const menu = renderUbootMenu(ctx);

  it('lists only aarch64 entries, flat, with no syslinux-only lines; local boot is the default', () => {
    expect(menu).not.toMatch(/^\s*(UI|COM32|KERNEL memdisk|LINUX memdisk)\b/m);
    expect(menu).not.toMatch(/MENU (BEGIN|END|EXIT)/);
    expect(menu).not.toContain('x86_64');
    const l = labels(menu);
    expect([...l.keys()]).toEqual(['local', 'debian-12-aarch64', 'fedora-42-aarch64']);
    expect(l.get('local')).toEqual(['MENU LABEL Boot from local disk', 'LOCALBOOT 0']);
    expect(l.get('debian-12-aarch64')).toEqual([
      'MENU LABEL Debian 12 (bookworm)',
      'LINUX images/debian/12/aarch64/linux',
      'INITRD images/debian/12/aarch64/initrd.gz',
      'APPEND --- quiet',
      'IPAPPEND 2',
    ]);
    expect(menu).toMatch(/^DEFAULT local$/m);
    // a MENU line turns U-Boot's prompt on: it then waits TIMEOUT (tenths) for a choice
    expect(menu).toMatch(/^MENU TITLE PXE boot menu$/m);
    expect(menu).toMatch(/^TIMEOUT 100$/m);
  });

  it('menu.default picks the synced aarch64 entry; a 0 s timeout renders no MENU line (U-Boot would wait forever)', () => {
    const m = renderUbootMenu({ ...ctx, menu: { default: 'debian', timeoutSeconds: 0 } });
    expect(m).toMatch(/^DEFAULT debian-12-aarch64$/m);
    expect(m).not.toMatch(/^MENU /m);
    expect(m).toMatch(/^TIMEOUT 0$/m);
  });

  it('a default U-Boot cannot run (x86-only entry) keeps local boot: a failing default would make U-Boot try every label', () => {
    expect(renderUbootMenu({ ...ctx, menu: { default: 'freebsd' } })).toMatch(/^DEFAULT local$/m);
  });

  it('entries with more than one initrd are left out (U-Boot INITRD loads one file)', () => {
    const two: RenderContext = {
      ...ctx,
      catalog: {
        ...catalog,
        entries: catalog.entries.map((e) =>
          e.id === 'fedora' && e.boot.method === 'linux'
            ? { ...e, boot: { ...e.boot, initrd: [String(e.boot.initrd), String(e.boot.initrd).replace('initrd.img', 'extra.img')] } }
            : e,
        ),
      },
    };
    expect([...labels(renderUbootMenu(two)).keys()]).toEqual(['local', 'debian-12-aarch64']);
  });
});

describe('U-Boot per-board config (pxelinux.cfg/01-<mac>)', () => {
  it('boots the assignment directly, no prompt', () => {
    const cfg = renderUbootHost(ctx, host('52:54:00:0b:00:01'));
    expect(cfg).toMatch(/^DEFAULT install$/m);
    expect(cfg).toMatch(/^TIMEOUT 0$/m);
    expect(cfg).not.toMatch(/^(MENU|UI|PROMPT)/m);
    const install = labels(cfg).get('install')!;
    expect(install[0]).toBe('LINUX images/debian/12/aarch64/linux');
    expect(install[1]).toBe('INITRD images/debian/12/aarch64/initrd.gz');
    expect(install[2]).toMatch(
      /^APPEND auto=true priority=critical url=http:\/\/10\.9\.0\.1:8080\/unattended\/52-54-00-0b-00-01\/\S*preseed\.cfg /,
    );
  });

  it('an installed install_once board returns to its boot sequence (LOCALBOOT 0 ends `pxe boot`)', () => {
    const cfg = renderUbootHost({ ...ctx, hostInstalled: () => true }, host('52:54:00:0b:00:03'));
    expect(labels(cfg).get('local')).toEqual(['LOCALBOOT 0']);
    expect(cfg).toMatch(/^DEFAULT local$/m);
  });
});

describe('boot.scr.uimg', () => {
  it('is the image mkimage -T script builds from the same text (checked by u-boot-tools)', () => {
    const text = join(tmp, 'boot.txt');
    const ref = join(tmp, 'ref.scr');
    writeFileSync(text, UBOOT_SCRIPT);
    execFileSync('mkimage', ['-A', 'arm', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'pxe boot script', '-d', text, ref], {
      env: { ...process.env, SOURCE_DATE_EPOCH: '0' },
      stdio: 'pipe',
    });
    const ours = ubootScriptImage(UBOOT_SCRIPT);
    expect(ours.equals(readFileSync(ref))).toBe(true);
    expect(UBOOT_SCRIPT).toContain('if pxe get; then pxe boot; fi');
    // mkimage -l verifies the header CRC and lists the one script part
    writeFileSync(join(tmp, 'ours.scr'), ours);
    expect(execFileSync('mkimage', ['-l', join(tmp, 'ours.scr')], { encoding: 'utf8' })).toMatch(
      /Script \(uncompressed\)[\s\S]*Image 0: \d+ Bytes/,
    );
  });
});

describe('virtual-file provider for U-Boot', () => {
  const provider = (staticFiles: string[] = []) =>
    catalogFileProvider(
      () => ctx,
      () => hosts,
      undefined,
      { hasStaticFile: async (rel) => staticFiles.includes(rel) },
    );
  const text = async (p: ReturnType<typeof provider>, rel: string, mac?: string) =>
    (await p.virtualFile(rel, { address: '10.9.0.60', ...(mac ? { mac } : {}) }))?.content.toString() ?? null;

  it('serves the script, default-arm and default-arm-<soc>, and a board config for an aarch64 host', async () => {
    const p = provider();
    expect((await p.virtualFile('boot.scr.uimg', { address: '10.9.0.60' }))!.content.equals(ubootScriptImage(UBOOT_SCRIPT))).toBe(true);
    expect(await text(p, 'pxelinux.cfg/default-arm')).toContain('LABEL debian-12-aarch64');
    expect(await text(p, 'pxelinux.cfg/default-arm-sunxi')).toContain('LABEL debian-12-aarch64');
    expect(await text(p, 'pxelinux.cfg/01-52-54-00-0b-00-01')).toContain('templates/uboot-host.njk');
    // an x86 host keeps the pxelinux rendering (UI-free host file, x86 kernel)
    expect(await text(p, 'pxelinux.cfg/01-52-54-00-0b-00-02')).toContain('LINUX images/debian/12/x86_64/linux');
    // pxelinux's own default stays the x86 menu
    expect(await text(p, 'pxelinux.cfg/default')).toMatch(/^UI menu\.c32$/m);
  });

  it("a site's own files at those paths win", async () => {
    const p = provider(['boot.scr.uimg', 'pxelinux.cfg/default-arm']);
    expect(await p.virtualFile('boot.scr.uimg', { address: '10.9.0.60' })).toBeNull();
    expect(await p.virtualFile('pxelinux.cfg/default-arm', { address: '10.9.0.60' })).toBeNull();
  });
});
