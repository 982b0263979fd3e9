import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadCatalog } from '../../src/catalog/load.js';
import {
  CatalogRenderError,
  grubArgs,
  parseUnattendedPath,
  renderGrubConfig,
  renderGrubDispatch,
  grubDefaultPath,
  buildMenuModel,
  renderHostPxelinux,
  renderIpxeScript,
  renderMainMenu,
  renderUnattended,
  unattendedFileNames,
  type RenderContext,
} from '../../src/catalog/render.js';
import { expandEntry, type Arch } from '../../src/catalog/schema.js';
import { parseHosts } from '../../src/hosts/load.js';
import type { Host } from '../../src/hosts/schema.js';
import { InstallState } from '../../src/hosts/state.js';
import { InstallTokens, NO_TOKEN } from '../../src/hosts/tokens.js';

const catalog = loadCatalog(resolve(__dirname, '../../distros'));
const tmp = mkdtempSync(join(tmpdir(), `pxe-render-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example';
const HASH = '$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/';

/** One host per catalog entry that has an unattended install, plus a few special ones. */
function hostsYaml(): string {
  let i = 0;
  const lines = ['defaults:', `  ssh_keys: ["${KEY}"]`, `  password_hash: "${HASH}"`, '  user: ops', 'hosts:'];
  for (const e of catalog.entries) {
    const mac = `52:54:00:00:00:${(++i).toString(16).padStart(2, '0')}`;
    lines.push(`  "${mac}": { hostname: host-${e.id}, entry: ${e.id}, disk: /dev/vdb, domain: lab.example }`);
  }
  lines.push('  "52:54:00:00:01:01": { hostname: once, entry: debian, install_once: true }');
  lines.push('  "52:54:00:00:01:02": { hostname: arm, entry: fedora, arch: aarch64 }');
  return `${lines.join('\n')}\n`;
}
const hosts = parseHosts('hosts.yaml', hostsYaml(), catalog);
const hostFor = (entryId: string): Host => [...hosts.byMac.values()].find((h) => h.entry === entryId && h.hostname === `host-${entryId}`)!;

/** A fake tftproot where only some targets are synced (their files exist). */
const root = join(tmp, 'tftproot');
const SYNCED = new Set([
  'debian/12/x86_64',
  'ubuntu/24.04.3/x86_64',
  'rocky/9/x86_64',
  'archlinux/2025.08.01/x86_64',
  'freebsd/14.3/x86_64',
  'alpine/3.22/x86_64',
  'fedora/42/aarch64',
  'fedora-coreos/42.20250803.3.0/x86_64',
  'opensuse-leap/15.6/x86_64',
  'flatcar/4230.2.2/x86_64',
]);
for (const e of catalog.entries)
  for (const t of expandEntry(e))
    if (SYNCED.has(`${t.entryId}/${t.version}/${t.arch}`))
      for (const f of t.files) {
        mkdirSync(dirname(join(root, f.relPath)), { recursive: true });
        writeFileSync(join(root, f.relPath), 'x');
      }
const isInstalled = (id: string, version: string, arch: Arch): boolean => {
  const e = catalog.entries.find((x) => x.id === id)!;
  const t = expandEntry(e).find((x) => x.version === version && x.arch === arch);
  return !!t && t.files.every((f) => existsSync(join(root, f.relPath)));
};
const state = new InstallState(join(tmp, 'state', 'installed.json'));
const tokens = InstallTokens.inDir(join(tmp, 'state'));
const tok = (mac: string) => tokens.current(mac);
const ctx: RenderContext = {
  catalog,
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  isInstalled,
  hostInstalled: (m) => state.isInstalled(m),
  installToken: tok,
};
/** every synced target, for hosts that boot all entries */
const ctxAll: RenderContext = { ...ctx, isInstalled: () => true };

describe('pxelinux menus', () => {
  const menu = renderMainMenu(ctx);

  it('defaults to local boot with a timeout', () => {
    expect(menu).toMatch(/^UI menu\.c32$/m);
    expect(menu).toMatch(/^TIMEOUT 100$/m);
    expect(menu).toMatch(/^ONTIMEOUT local$/m);
    expect(menu).toMatch(/LABEL local\n {2}MENU LABEL Boot from local disk\n {2}MENU DEFAULT\n {2}LOCALBOOT 0/);
  });

  it('references only files that exist in tftproot, and lists only synced entries', () => {
    const refs = [...menu.matchAll(/^\s*(?:LINUX|INITRD) (.+)$/gm)].flatMap((m) => m[1]!.split(','));
    expect(refs.length).toBeGreaterThan(10);
    for (const r of refs) if (r !== 'memdisk') expect(existsSync(join(root, r)), r).toBe(true);
    expect(menu).toContain('LABEL debian-12-x86_64');
    expect(menu).not.toContain('debian-13'); // not synced
    expect(menu).not.toContain('fedora-42'); // synced for aarch64 only; this menu is x86_64
    expect(menu).toContain(
      'LABEL freebsd-14.3-x86_64\n  MENU LABEL FreeBSD 14.3 (bootonly)\n  LINUX memdisk\n  INITRD images/freebsd/14.3/x86_64/FreeBSD-14.3-RELEASE-amd64-bootonly.iso\n  APPEND iso raw',
    );
    // groups are submenus, each closed
    expect(menu.match(/^MENU BEGIN/gm)!.length).toBe(menu.match(/^MENU END/gm)!.length);
    const arm = renderMainMenu(ctx, { arch: 'aarch64' });
    expect(arm).toContain('LABEL fedora-42-aarch64');
    expect(arm).not.toContain('debian-12');
  });

  it('pxe.yaml menu.default picks a synced entry as ONTIMEOUT; an unsynced or unknown one keeps local boot', () => {
    const m = renderMainMenu({ ...ctx, menu: { default: 'debian', timeoutSeconds: 3 } });
    expect(m).toMatch(/^ONTIMEOUT debian-12-x86_64$/m);
    expect(m).toMatch(/^TIMEOUT 30$/m);
    expect(m).toContain('LABEL debian-12-x86_64\n');
    // fedora is synced for aarch64 only, so this x86_64 menu does not offer it
    expect(renderMainMenu({ ...ctx, menu: { default: 'fedora' } })).toMatch(/^ONTIMEOUT local$/m);
    expect(renderMainMenu({ ...ctx, menu: { default: 'no-such-entry' } })).toMatch(/^ONTIMEOUT local$/m);
    // memdisk cannot run under UEFI: the EFI menu falls back to local boot
    expect(renderMainMenu({ ...ctx, menu: { default: 'freebsd' } })).toMatch(/^ONTIMEOUT freebsd-14\.3-x86_64$/m);
    expect(renderMainMenu({ ...ctx, menu: { default: 'freebsd' } }, { firmware: 'efi' })).toMatch(/^ONTIMEOUT local$/m);
  });

  it('has no installer automation in the shared menu (unknown clients install interactively)', () => {
    expect(menu).not.toContain('/unattended/');
    expect(menu).toContain('APPEND --- quiet');
  });

  it('01-<mac> boots the host entry directly with its automation URL and extra append', () => {
    const h = hostFor('debian');
    const cfg = renderHostPxelinux(ctx, { ...h, version: '12', append: 'console=ttyS0' });
    expect(cfg).toMatch(/^DEFAULT install$/m);
    expect(cfg).not.toMatch(/^UI /m);
    expect(cfg).toContain('  LINUX images/debian/12/x86_64/linux\n  INITRD images/debian/12/x86_64/initrd.gz\n');
    expect(cfg).toContain(
      `  APPEND auto=true priority=critical url=http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/preseed.cfg netcfg/get_hostname=host-debian netcfg/choose_interface=auto --- quiet console=ttyS0\n`,
    );
  });

  it('without an install token (pxe which, pxe render) URLs carry no-token and nothing is issued', () => {
    const h = hostFor('rocky');
    const bare: RenderContext = { ...ctx, installToken: undefined };
    expect(renderHostPxelinux(bare, h)).toContain(`/unattended/${h.mac.replace(/:/g, '-')}/${NO_TOKEN}/kickstart.ks`);
    expect(tokens.get(h.mac)).toBeUndefined();
  });

  it('install_once: after the installer reported done, 01-<mac> boots locally', () => {
    const once = [...hosts.byMac.values()].find((h) => h.hostname === 'once')!;
    expect(renderHostPxelinux(ctx, once)).toContain('LABEL install');
    const f = renderUnattended(ctx, once, 'preseed.cfg', tok(once.mac));
    // the answers end by reporting back with the token
    expect(f.body).toContain(
      `wget -q -O /dev/null 'http://10.9.0.1:8080/unattended/${once.mac.replace(/:/g, '-')}/${tok(once.mac)}/done' || true`,
    );
    state.markInstalled(once.mac, f.entryId, f.version);
    const cfg = renderHostPxelinux(ctx, once);
    expect(cfg).toMatch(/DEFAULT local\n[\s\S]*LOCALBOOT 0/);
    expect(cfg).not.toContain('images/');
    expect(renderIpxeScript(ctx, once)).toMatch(/^exit 0$/m);
    expect(renderGrubConfig(ctx, once)).toMatch(/^\s+exit$/m);
    state.clear(once.mac);
    expect(renderHostPxelinux(ctx, once)).toContain('LABEL install');
  });

  it('a host whose entry is not synced gets a 404-typed error, not a broken config', () => {
    const h = hostFor('almalinux');
    expect(() => renderHostPxelinux(ctx, h)).toThrowError(CatalogRenderError);
    try {
      renderHostPxelinux(ctx, h);
    } catch (err) {
      expect((err as CatalogRenderError).status).toBe(404);
    }
  });
});

describe('iPXE scripts', () => {
  it('names every initrd on the kernel line (iPXE-EFI) in load order, fetched over HTTP', () => {
    const s = renderIpxeScript(ctxAll, hostFor('archlinux'));
    expect(s.startsWith('#!ipxe\n')).toBe(true);
    const base = 'http://10.9.0.1:8080/files/images/archlinux/2025.08.01/x86_64';
    expect(s).toMatch(
      new RegExp(
        `^kernel ${base}/vmlinuz-linux initrd=amd-ucode.img initrd=intel-ucode.img initrd=initramfs-linux.img archisobasedir=arch `,
        'm',
      ),
    );
    expect(s.match(/^initrd .+$/gm)).toEqual([
      `initrd ${base}/amd-ucode.img`,
      `initrd ${base}/intel-ucode.img`,
      `initrd ${base}/initramfs-linux.img`,
    ]);
    expect(s).toMatch(/^boot$/m);
  });

  it('menu for unknown clients: local default with timeout, a label per synced entry', () => {
    const s = renderIpxeScript(ctx, null);
    expect(s).toMatch(/^choose --default local --timeout 10000 target && goto \$\{target\} \|\| goto local$/m);
    const items = [...s.matchAll(/^item (\S+) /gm)].map((m) => m[1]!).filter((l) => l !== '--gap');
    for (const label of items) expect(s, label).toMatch(new RegExp(`^:${label.replace(/[.]/g, '\\.')}$`, 'm'));
    expect(items).toContain('ubuntu-24.04.3-x86_64');
    expect(s).toContain(
      'kernel http://10.9.0.1:8080/files/memdisk iso raw\ninitrd http://10.9.0.1:8080/files/images/freebsd/14.3/x86_64/FreeBSD-14.3-RELEASE-amd64-bootonly.iso\nboot',
    );
  });
});

describe('GRUB configs', () => {
  it('quotes the nocloud ";" for GRUB (cobbler#1777) but not for pxelinux', () => {
    const h = hostFor('ubuntu');
    const dir = `http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/`;
    const grub = renderGrubConfig(ctx, h);
    expect(grub).toContain(`'ds=nocloud-net;s=${dir}'`);
    expect(grub).not.toMatch(/[^']ds=nocloud-net;s=/);
    expect(renderHostPxelinux(ctx, h)).toContain(` ds=nocloud-net;s=${dir} `);
    expect(grubArgs(`a=1 b=x;y c='q'`)).toBe(`a=1 'b=x;y' 'c='\\''q'\\'''`);
  });

  it('menu leaves out memdisk (BIOS-only) entries', () => {
    const grub = renderGrubConfig(ctx, null);
    expect(grub).toMatch(/^set default=local$/m);
    expect(grub).not.toContain('freebsd');
    expect(grub).toContain('--id debian-12-x86_64');
  });

  it('names a default inside a submenu by its path "<submenu id>><entry id>" (GRUB 2.06 falls back to entry 0 otherwise)', () => {
    const withDefault = { ...ctxAll, menu: { default: 'debian' } };
    const m = buildMenuModel(withDefault, { firmware: 'efi' });
    const g = m.groups.find((x) => x.items.some((i) => i.label === 'debian-12-x86_64'))!;
    expect(grubDefaultPath(m)).toBe(`${g.tag}>debian-12-x86_64`);
    expect(renderGrubConfig(withDefault, null)).toMatch(new RegExp(`^set default='${g.tag}>debian-12-x86_64'$`, 'm'));
    // a top-level default stays a bare id
    expect(grubDefaultPath(buildMenuModel(ctxAll, { firmware: 'efi' }))).toBe('local');
  });

  it('passes grub-script-check (GRUB 2 parser) for the menu and every host', () => {
    const check = spawnSync('grub-script-check', ['--version']);
    expect(check.error, 'grub-script-check missing: apt-get install grub-common').toBeUndefined();
    const files: Array<[string, string]> = [
      ['menu', renderGrubConfig(ctxAll, null)],
      ['menu-default', renderGrubConfig({ ...ctxAll, menu: { default: 'debian' } }, null, { arch: 'aarch64' })],
      ['dispatch', renderGrubDispatch(ctxAll)],
    ];
    for (const h of hosts.byMac.values()) {
      const e = catalog.entries.find((x) => x.id === h.entry)!;
      if (e.boot.method === 'memdisk') continue;
      files.push([h.hostname, renderGrubConfig(ctxAll, h)]);
    }
    for (const [name, text] of files) {
      const f = join(tmp, `grub-${name}.cfg`);
      writeFileSync(f, text);
      const r = spawnSync('grub-script-check', [f], { encoding: 'utf8' });
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });
});

describe('every shipped entry renders', () => {
  it('in menus (all targets synced) and for a host in pxelinux, iPXE and GRUB form', () => {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      expect(renderMainMenu(ctxAll, { arch })).toContain('LABEL local');
      expect(renderIpxeScript(ctxAll, null, { arch })).toContain('#!ipxe');
      expect(renderGrubConfig(ctxAll, null, { arch })).toContain('menuentry');
    }
    for (const e of catalog.entries) {
      const h = hostFor(e.id);
      const px = renderHostPxelinux(ctxAll, h);
      expect(px).toMatch(e.boot.method === 'localboot' ? /LOCALBOOT 0/ : /^DEFAULT install$/m);
      expect(renderIpxeScript(ctxAll, h)).toContain('#!ipxe');
      if (e.boot.method !== 'memdisk') expect(renderGrubConfig(ctxAll, h)).toContain('menuentry');
      if (e.unattended !== 'none') expect(px, e.id).toContain(`/unattended/${h.mac.replace(/:/g, '-')}/`);
      for (const name of unattendedFileNames(ctxAll, h)) expect(renderUnattended(ctxAll, h, name).body.length).toBeGreaterThan(10);
    }
  });
});

describe('unattended files carry the host values and are well-formed', () => {
  it('preseed: debconf-set-selections --checkonly accepts it', () => {
    const h = hostFor('debian');
    const f = renderUnattended(ctx, h, 'preseed.cfg');
    expect(f.contentType).toMatch(/^text\/plain/);
    expect(f.body).toContain('d-i netcfg/get_hostname string host-debian');
    expect(f.body).toContain('d-i partman-auto/disk string /dev/vdb');
    expect(f.body).toContain('d-i passwd/username string ops');
    expect(f.body).toContain(`d-i passwd/user-password-crypted password ${HASH}`);
    expect(f.body).toContain(KEY);
    expect(f.body).toContain('d-i mirror/suite string bookworm');
    const file = join(tmp, 'preseed.cfg');
    writeFileSync(file, f.body);
    const r = spawnSync('debconf-set-selections', ['--checkonly', file], { encoding: 'utf8' });
    expect(r.error, 'debconf-set-selections missing (package debconf)').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
  });

  it('kickstart: host values and the install tree', () => {
    const h = hostFor('rocky');
    const body = renderUnattended(ctx, h, 'kickstart.ks').body;
    expect(body).toContain('url --url="https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/"');
    expect(body).toContain('network --bootproto=dhcp --device=link --activate --hostname=host-rocky.lab.example');
    expect(body).toContain(`user --name=ops --groups=wheel --iscrypted --password=${HASH}`);
    expect(body).toContain(`sshkey --username=ops "${KEY}"`);
    expect(body).toMatch(/^ignoredisk --only-use=vdb$/m);
    expect(body.match(/^%(?:packages|post\b.*)$/gm)!.length).toBe(body.match(/^%end$/gm)!.length);
    expect(body).toContain(
      `%post --nochroot\ncurl -fsS -X POST 'http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/done' || true\n%end`,
    );
  });

  it('AutoYaST: xmllint parses it and the XPath values are the host values', () => {
    const h = hostFor('opensuse-leap');
    const f = renderUnattended(ctx, h, 'autoyast.xml');
    expect(f.contentType).toMatch(/^application\/xml/);
    const file = join(tmp, 'autoyast.xml');
    writeFileSync(file, f.body);
    const x = (xpath: string): string => execFileSync('xmllint', ['--xpath', `string(${xpath})`, file], { encoding: 'utf8' }).trim();
    expect(x("//*[local-name()='dns']/*[local-name()='hostname']")).toBe('host-opensuse-leap');
    expect(x("//*[local-name()='drive']/*[local-name()='device']")).toBe('/dev/vdb');
    expect(x("//*[local-name()='user']/*[local-name()='username']")).toBe('ops');
    expect(x("//*[local-name()='user']/*[local-name()='user_password']")).toBe(HASH);
    expect(x("//*[local-name()='authorized_keys']/*[local-name()='listentry']")).toBe(KEY);
    expect(x("//*[local-name()='chroot-scripts']/*[local-name()='script']/*[local-name()='source']")).toBe(
      `curl -fsS -X POST 'http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/done' || true`,
    );
  });

  it('AutoYaST escapes XML metacharacters (autoescape on)', () => {
    const tdir = join(tmp, 'tpl-xml');
    cpSync(resolve(__dirname, '../../templates'), tdir, { recursive: true });
    const h = { ...hostFor('opensuse-leap'), hostname: 'a<b>&"c' };
    const f = renderUnattended({ ...ctx, templatesDir: tdir }, h, 'autoyast.xml');
    const file = join(tmp, 'autoyast-esc.xml');
    writeFileSync(file, f.body);
    expect(
      execFileSync('xmllint', ['--xpath', "string(//*[local-name()='dns']/*[local-name()='hostname'])", file], { encoding: 'utf8' }).trim(),
    ).toBe('a<b>&"c');
  });

  it('autoinstall: user-data and meta-data parse as YAML with the host values', () => {
    const h = hostFor('ubuntu');
    const ud = renderUnattended(ctx, h, 'user-data');
    expect(ud.body.startsWith('#cloud-config\n')).toBe(true);
    const doc = parseYaml(ud.body) as { autoinstall: Record<string, unknown> };
    expect(doc.autoinstall).toMatchObject({
      version: 1,
      identity: { hostname: 'host-ubuntu', username: 'ops', password: HASH },
      ssh: { 'install-server': true, 'authorized-keys': [KEY] },
      storage: { layout: { name: 'lvm', match: { path: '/dev/vdb' } } },
    });
    const md = parseYaml(renderUnattended(ctx, h, 'meta-data').body) as Record<string, string>;
    expect(md).toEqual({ 'instance-id': `pxe-${h.mac.replace(/:/g, '-')}`, 'local-hostname': 'host-ubuntu' });
    expect((doc.autoinstall['late-commands'] as string[]).at(-1)).toBe(
      `curl -fsS -X POST 'http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/done' || true`,
    );
  });

  it('Ignition: valid JSON (spec 3.3.0) with the host values', () => {
    for (const id of ['fedora-coreos', 'flatcar']) {
      const h = hostFor(id);
      const f = renderUnattended(ctx, h, 'config.ign');
      expect(f.contentType).toBe('application/vnd.coreos.ignition+json');
      const j = JSON.parse(f.body) as {
        ignition: { version: string };
        passwd: { users: Array<{ name: string; sshAuthorizedKeys: string[]; passwordHash: string }> };
        storage: { files: Array<{ path: string; contents: { source: string } }> };
        systemd: { units: Array<{ name: string; enabled: boolean; contents: string }> };
      };
      expect(j.systemd.units[0]).toMatchObject({ name: 'pxe-install-done.service', enabled: true });
      expect(j.systemd.units[0]!.contents).toContain(
        `ExecStart=/usr/bin/curl -fsS -X POST http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/done\n`,
      );
      expect(j.ignition.version).toBe('3.3.0');
      expect(j.passwd.users[0]).toMatchObject({ name: 'ops', sshAuthorizedKeys: [KEY], passwordHash: HASH });
      expect(j.storage.files[0]).toEqual({
        path: '/etc/hostname',
        mode: 420,
        overwrite: true,
        contents: { source: `data:,host-${id}.lab.example` },
      });
    }
    // FCOS installs to the host's disk with the per-host Ignition URL
    const h = hostFor('fedora-coreos');
    expect(renderHostPxelinux(ctx, h)).toContain(
      `coreos.inst.install_dev=/dev/vdb coreos.inst.ignition_url=http://10.9.0.1:8080/unattended/${h.mac.replace(/:/g, '-')}/${tok(h.mac)}/config.ign`,
    );
  });
});

describe('errors are typed and nothing half-rendered is returned', () => {
  it('unknown host and unknown file are 404', () => {
    const e1 = (() => {
      try {
        renderUnattended(ctx, undefined, 'preseed.cfg');
      } catch (e) {
        return e;
      }
    })();
    expect(e1).toBeInstanceOf(CatalogRenderError);
    expect((e1 as CatalogRenderError).status).toBe(404);
    const e2 = (() => {
      try {
        renderUnattended(ctx, hostFor('debian'), 'kickstart.ks');
      } catch (e) {
        return e;
      }
    })();
    expect((e2 as CatalogRenderError).status).toBe(404);
    const e3 = (() => {
      try {
        renderUnattended(ctx, hostFor('alpine'), 'preseed.cfg');
      } catch (e) {
        return e;
      }
    })();
    expect((e3 as CatalogRenderError).status).toBe(404);
  });

  it('a template referencing an undefined variable is a 500, not a file with a hole', () => {
    const tdir = join(tmp, 'tpl-broken');
    cpSync(resolve(__dirname, '../../templates'), tdir, { recursive: true });
    writeFileSync(
      join(tdir, 'unattended', 'kickstart.ks.njk'),
      'text\nurl --url="{{ repo }}"\nrootpw --iscrypted {{ host.root_hash }}\nreboot\n',
    );
    let err: unknown;
    let out: unknown;
    try {
      out = renderUnattended({ ...ctx, templatesDir: tdir }, hostFor('rocky'), 'kickstart.ks');
    } catch (e) {
      err = e;
    }
    expect(out).toBeUndefined();
    expect(err).toBeInstanceOf(CatalogRenderError);
    expect((err as CatalogRenderError).status).toBe(500);
    expect((err as Error).message).toMatch(/kickstart\.ks\.njk/);
  });

  it('an Ignition template producing invalid JSON is a 500', () => {
    const tdir = join(tmp, 'tpl-badjson');
    cpSync(resolve(__dirname, '../../templates'), tdir, { recursive: true });
    writeFileSync(join(tdir, 'unattended', 'config.ign.njk'), '{ "ignition": { "version": "3.3.0" }, "user": {{ host.user }} }');
    expect(() => renderUnattended({ ...ctx, templatesDir: tdir }, hostFor('flatcar'), 'config.ign')).toThrowError(/invalid output/);
  });

  it('parses /unattended/<mac>/<token>/<file> paths', () => {
    expect(parseUnattendedPath('/unattended/52-54-00-AA-bb-01/0123abcd/user-data')).toEqual({
      mac: '52:54:00:aa:bb:01',
      token: '0123abcd',
      file: 'user-data',
    });
    expect(parseUnattendedPath('/unattended/52-54-00-aa-bb-01/0123abcd/../x')).toBeNull();
    expect(parseUnattendedPath('/unattended/52-54-00-aa-bb-01/0123abcd/..')).toBeNull();
    expect(parseUnattendedPath('/images/x')).toBeNull();
  });
});

describe('virtual-file provider', () => {
  it('serves 01-<mac> for known hosts only, the menu as default, and grub.cfg per MAC', async () => {
    const { catalogFileProvider } = await import('../../src/boot/files.js');
    const p = catalogFileProvider(
      () => ctx,
      () => hosts,
    );
    const h = hostFor('debian');
    const host = await p.virtualFile(`pxelinux.cfg/01-${h.mac.replace(/:/g, '-')}`, { address: '10.9.0.50' });
    expect(host!.content.toString()).toContain('LINUX images/debian/12/x86_64/linux');
    expect(await p.virtualFile('pxelinux.cfg/01-aa-bb-cc-dd-ee-ff', { address: '10.9.0.50' })).toBeNull();
    // not synced: no half-valid config, pxelinux falls back to default
    expect(await p.virtualFile(`pxelinux.cfg/01-${hostFor('almalinux').mac.replace(/:/g, '-')}`, { address: '10.9.0.50' })).toBeNull();
    expect((await p.virtualFile('pxelinux.cfg/default', { address: '10.9.0.50' }))!.content.toString()).toMatch(/^ONTIMEOUT local$/m);
    expect(await p.virtualFile('images/debian/12/x86_64/linux', { address: '10.9.0.50' })).toBeNull();
  });

  it("GRUB: one grub/grub.cfg for all, then grub/client/<$grub_cpu>/<$net_default_mac>.cfg: the host (arch from the path) or that arch's menu", async () => {
    const { catalogFileProvider } = await import('../../src/boot/files.js');
    const p = catalogFileProvider(
      () => ctxAll,
      () => hosts,
    );
    const text = async (path: string, mac?: string) =>
      (await p.virtualFile(path, { address: '10.9.0.50', ...(mac ? { mac } : {}) }))?.content.toString();
    // the same for every client, known MAC or not: GRUB itself names MAC and CPU next
    const dispatch = await text('grub/grub.cfg', hostFor('ubuntu').mac);
    expect(dispatch).toBe(await text('grub/grub.cfg'));
    expect(dispatch).toContain('configfile "$prefix/client/$grub_cpu/$net_default_mac.cfg"');
    expect(dispatch).toContain('configfile "$prefix/$grub_cpu-$grub_platform/grub.cfg"');
    // a listed host without arch: gets the architecture GRUB announced in the path
    const h = { ...hostFor('debian'), arch: undefined };
    const hostsNoArch = { ...hosts, byMac: new Map([[h.mac, h]]) };
    const p2 = catalogFileProvider(
      () => ctxAll,
      () => hostsNoArch,
    );
    const x86 = (await p2.virtualFile(`grub/client/x86_64/${h.mac}.cfg`, { address: '10.9.0.50' }))!.content.toString();
    const arm = (await p2.virtualFile(`grub/client/arm64/${h.mac}.cfg`, { address: '10.9.0.50' }))!.content.toString();
    expect(x86).toContain('images/debian/12/x86_64/linux');
    expect(arm).toContain('images/debian/12/aarch64/');
    expect(arm).not.toContain('x86_64');
    // an unlisted MAC gets the menu of its CPU: no entry of the other architecture
    const menuArm = (await text('grub/client/arm64/aa:bb:cc:dd:ee:ff.cfg'))!;
    const menuX86 = (await text('grub/client/x86_64/aa:bb:cc:dd:ee:ff.cfg'))!;
    expect(menuArm).toContain('aarch64/');
    expect(menuArm).not.toMatch(/\/x86_64\//);
    expect(menuX86).not.toMatch(/\/aarch64\//);
    // the per-platform names GRUB's embedded config knows serve the same menus
    expect(await text('grub/arm64-efi/grub.cfg')).toBe(menuArm);
    expect(await text('grub/x86_64-efi/grub.cfg')).toBe(menuX86);
    // a denied host gets nothing; malformed names are not ours
    const denied = { ...hostFor('debian'), allow: false };
    const p3 = catalogFileProvider(
      () => ctxAll,
      () => ({ ...hosts, byMac: new Map([[denied.mac, denied]]) }),
    );
    expect(await p3.virtualFile(`grub/client/x86_64/${denied.mac}.cfg`, { address: '10.9.0.50' })).toBeNull();
    expect(await text('grub/client/sparc/aa:bb:cc:dd:ee:ff.cfg')).toBeUndefined();
    expect(await text('grub/client/x86_64/aa:bb:cc:dd:ee.cfg')).toBeUndefined();
  });

  it('gives an EFI client the efi64/ build of a root .c32 module; BIOS and unknown clients get the root file', async () => {
    const { catalogFileProvider } = await import('../../src/boot/files.js');
    const efiMac = '52:54:00:00:00:e1';
    const asked: string[] = [];
    const p = catalogFileProvider(
      () => ctx,
      () => hosts,
      undefined,
      {
        firmwareOf: (mac) => (mac === efiMac ? 'efi-x64' : 'bios'),
        efiModule: async (name) => {
          asked.push(name);
          return name === 'menu.c32' ? Buffer.from('EFI MENU') : null;
        },
      },
    );
    const efi = await p.virtualFile('Menu.C32', { address: '10.9.0.50', mac: efiMac });
    expect(efi!.content.toString()).toBe('EFI MENU');
    expect(efi!.origin).toContain('efi64/menu.c32');
    // not in efi64/: the request falls through to the file on disk
    expect(await p.virtualFile('libcom32.c32', { address: '10.9.0.50', mac: efiMac })).toBeNull();
    // only bare root names: efi64/menu.c32 itself and other directories are plain files
    expect(await p.virtualFile('efi64/menu.c32', { address: '10.9.0.50', mac: efiMac })).toBeNull();
    expect(await p.virtualFile('../menu.c32', { address: '10.9.0.50', mac: efiMac })).toBeNull();
    expect(asked).toEqual(['menu.c32', 'libcom32.c32']);
    expect(await p.virtualFile('menu.c32', { address: '10.9.0.50', mac: '52:54:00:00:00:b1' })).toBeNull();
    expect(await p.virtualFile('menu.c32', { address: '10.9.0.50' })).toBeNull();
    expect(asked).toHaveLength(2);
  });
});
