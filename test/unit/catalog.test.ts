import { configError } from '../helpers/errors.js';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCatalog, parseCatalogFile } from '../../src/catalog/load.js';
import { expandCatalog, expandEntry } from '../../src/catalog/schema.js';

const DISTROS = resolve(__dirname, '../../distros');
const tmp = mkdtempSync(join(tmpdir(), `pxe-catalog-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function catalogDir(files: Record<string, string>): string {
  const dir = join(tmp, `c${n++}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const GOOD_ENTRY = `entries:
  - id: demo
    label: Demo
    group: Test
    mirror: http://mirror.example/demo
    versions:
      - { version: "1" }
    boot:
      method: linux
      kernel: v{{ version }}/linux
      initrd: v{{ version }}/initrd.gz
    checksum: { kind: sha256sums, path: "v{{ version }}/SHA256SUMS" }
    trust: checksum
`;

describe('shipped catalog', () => {
  const catalog = loadCatalog(DISTROS);

  it('validates every distros/*.yaml and ships at least 12 entries with unique ids', () => {
    expect(catalog.entries.length).toBeGreaterThanOrEqual(12);
    const ids = catalog.entries.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [
      'debian',
      'ubuntu',
      'fedora',
      'rocky',
      'almalinux',
      'centos-stream',
      'opensuse-leap',
      'opensuse-tumbleweed',
      'alpine',
      'archlinux',
      'memtest86plus',
      'freebsd',
      'mfsbsd',
      'openbsd',
      'fedora-coreos',
      'flatcar',
      'local',
    ])
      expect(ids).toContain(id);
    expect(catalog.entries.find((e) => e.default)?.boot.method).toBe('localboot');
  });

  it('expands Debian to the d-i netboot paths, SHA256SUMS keys and the InRelease chain', () => {
    const debian = catalog.entries.find((e) => e.id === 'debian')!;
    expect(debian.versions.map((v) => v.codename)).toEqual(['bookworm', 'trixie']);
    const t = expandEntry(debian).find((x) => x.version === '12' && x.arch === 'x86_64')!;
    expect(t.dir).toBe('images/debian/12/x86_64');
    expect(t.trust).toBe('signed');
    const kernel = t.files.find((f) => f.role === 'kernel')!;
    expect(kernel.url).toBe(
      'https://deb.debian.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/linux',
    );
    expect(kernel.relPath).toBe('images/debian/12/x86_64/linux');
    expect(kernel.checksum).toEqual({
      kind: 'sha256sums',
      url: 'https://deb.debian.org/debian/dists/bookworm/main/installer-amd64/current/images/SHA256SUMS',
      key: 'netboot/debian-installer/amd64/linux',
    });
    expect(t.signature).toEqual({
      kind: 'debian-release',
      url: 'https://deb.debian.org/debian/dists/bookworm/InRelease',
      keyring: 'debian',
      key: 'main/installer-amd64/current/images/SHA256SUMS',
    });
  });

  it('expands EL/Fedora to images/pxeboot with .treeinfo keys, openSUSE to CHECKSUMS keys', () => {
    const all = expandCatalog(catalog);
    const rocky = all.find((t) => t.entryId === 'rocky' && t.arch === 'x86_64')!;
    expect(rocky.files.map((f) => [f.role, f.checksum])).toEqual([
      [
        'kernel',
        { kind: 'treeinfo', url: 'https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/.treeinfo', key: 'images/pxeboot/vmlinuz' },
      ],
      [
        'initrd',
        { kind: 'treeinfo', url: 'https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os/.treeinfo', key: 'images/pxeboot/initrd.img' },
      ],
    ]);
    const leap = all.find((t) => t.entryId === 'opensuse-leap')!;
    expect(leap.files[0]!.checksum).toMatchObject({ kind: 'suse-checksums', key: 'boot/x86_64/loader/linux' });
    const arch = all.find((t) => t.entryId === 'archlinux')!;
    // microcode first: the kernel applies early microcode only from the first cpio
    expect(arch.files.filter((f) => f.role === 'initrd').map((f) => f.relPath.split('/').pop())).toEqual([
      'amd-ucode.img',
      'intel-ucode.img',
      'initramfs-linux.img',
    ]);
    const ubuntu = all.find((t) => t.entryId === 'ubuntu')!;
    expect(ubuntu.files[0]).toMatchObject({
      url: 'https://releases.ubuntu.com/24.04/ubuntu-24.04.3-netboot-amd64.tar.gz',
      extract: { format: 'tar.gz', member: 'amd64/linux' },
    });
    expect(ubuntu.files[0]!.checksum).toMatchObject({ key: 'ubuntu-24.04.3-netboot-amd64.tar.gz' });
    for (const t of all) {
      if (t.trust === 'unverified') continue;
      for (const f of t.files) expect(f.checksum.kind, `${t.entryId} ${f.relPath}`).not.toBe('none');
    }
  });

  it('applies pxe.yaml mirror overrides to file, checksum and signature URLs', () => {
    const [t] = expandCatalog(catalog, { only: 'debian', mirrors: { debian: 'http://127.0.0.1:9/deb/' } });
    expect(t!.mirror).toBe('http://127.0.0.1:9/deb');
    expect(t!.files[0]!.url.startsWith('http://127.0.0.1:9/deb/dists/bookworm/')).toBe(true);
    expect(t!.signature!.url).toBe('http://127.0.0.1:9/deb/dists/bookworm/InRelease');
  });
});

describe('broken catalog files name file, line and field', () => {
  it('wrong type', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY.replace('label: Demo', 'label: [1, 2]') });
    const e = configError(() => loadCatalog(dir));
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.line).toBe(3);
    expect(e.field).toBe('entries[0].label');
    expect(e.message).toMatch(/^.*a\.yaml:3:\d+: field "entries\[0\]\.label": /);
  });

  it('missing required field (trust)', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY.replace('    trust: checksum\n', '') });
    const e = configError(() => loadCatalog(dir));
    expect(e.field).toBe('entries[0].trust');
    expect(e.line).toBe(2); // reported on the entry that lacks it
  });

  it('unknown key points at the key', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY.replace('    trust: checksum\n', '    trust: checksum\n    kernal: oops\n') });
    const e = configError(() => loadCatalog(dir));
    expect(e.field).toBe('entries[0].kernal');
    expect(e.line).toBe(14);
  });

  it('inconsistent trust: checksum "none" cannot claim "checksum"', () => {
    const dir = catalogDir({
      'a.yaml': GOOD_ENTRY.replace('checksum: { kind: sha256sums, path: "v{{ version }}/SHA256SUMS" }', 'checksum: { kind: none }'),
    });
    const e = configError(() => loadCatalog(dir));
    expect(e.field).toBe('entries[0].trust');
    expect(e.line).toBe(13);
  });

  it('duplicate id across files names both files', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY, 'b.yaml': `# second file\n${GOOD_ENTRY}` });
    const e = configError(() => loadCatalog(dir));
    expect(e.file).toBe(join(dir, 'b.yaml'));
    expect(e.line).toBe(3);
    expect(e.message).toContain('duplicate id "demo"');
    expect(e.message).toContain(join(dir, 'a.yaml'));
  });

  it('YAML syntax error', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY.replace('    group: Test\n', '    group: [Test\n') });
    const e = configError(() => loadCatalog(dir));
    expect(e.file).toBe(join(dir, 'a.yaml'));
    expect(e.line).toBeGreaterThanOrEqual(4);
    expect(e.message).toMatch(/YAML syntax/);
  });

  it('undefined template variable in a path is caught at load time', () => {
    const dir = catalogDir({ 'a.yaml': GOOD_ENTRY.replace('kernel: v{{ version }}/linux', 'kernel: v{{ verison }}/linux') });
    const e = configError(() => loadCatalog(dir));
    expect(e.message).toMatch(/verison|undefined|null/);
    expect(e.line).toBe(10);
    expect(e.field).toBe('entries[0].boot.kernel');
  });

  it('a file outside its checksum directory is rejected (its key would be ambiguous)', () => {
    expect(() =>
      expandEntry(parseCatalogFile('x.yaml', GOOD_ENTRY.replace('path: "v{{ version }}/SHA256SUMS"', 'path: "other/SHA256SUMS"'))[0]!),
    ).toThrow(/not below the directory/);
  });
});
