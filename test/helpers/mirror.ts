/**
 * Test mirror layouts: Debian (signed InRelease -> SHA256SUMS -> netboot files),
 * Fedora (.treeinfo [checksums]), openSUSE (CHECKSUMS + detached CHECKSUMS.asc),
 * and an Alpine-like per-file `.sha256` tree, all served by LocalMirror on
 * 127.0.0.1. Also writes a matching catalog and pxe.yaml-shaped config.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import { LocalMirror, startLocalMirror } from '../../src/sync/localmirror.js';
import type { SyncConfig } from '../../src/sync/engine.js';

export { LocalMirror, startLocalMirror };

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface TestKey {
  privateKey: openpgp.PrivateKey;
  publicArmored: string;
}

export async function makeTestKey(name = 'pxe test archive key'): Promise<TestKey> {
  const { privateKey, publicKey } = await openpgp.generateKey({ userIDs: [{ name, email: 'test@example.invalid' }], format: 'object' });
  return { privateKey, publicArmored: publicKey.armor() };
}

export async function clearsign(text: string, key: TestKey): Promise<string> {
  const message = await openpgp.createCleartextMessage({ text });
  return openpgp.sign({ message, signingKeys: key.privateKey, format: 'armored' });
}

export async function detachSign(data: Buffer, key: TestKey): Promise<string> {
  const message = await openpgp.createMessage({ binary: new Uint8Array(data) });
  return (await openpgp.sign({ message, signingKeys: key.privateKey, detached: true, format: 'armored' })) as string;
}

/** Deterministic-but-distinct content for a file of `size` bytes. */
export function content(tag: string, size = 64 * 1024): Buffer {
  const b = Buffer.alloc(size);
  const seed = Buffer.from(sha(tag), 'hex');
  for (let i = 0; i < size; i += 32) seed.copy(b, i, 0, Math.min(32, size - i));
  b.write(`${tag}\n`, 0);
  return b;
}

export interface Pair {
  kernel: Buffer;
  initrd: Buffer;
}

export const DEBIAN = {
  base: 'debian',
  dir: (codename: string, uarch: string) => `debian/dists/${codename}/main/installer-${uarch}/current/images`,
  kernel: (codename: string, uarch: string) =>
    `debian/dists/${codename}/main/installer-${uarch}/current/images/netboot/debian-installer/${uarch}/linux`,
  initrd: (codename: string, uarch: string) =>
    `debian/dists/${codename}/main/installer-${uarch}/current/images/netboot/debian-installer/${uarch}/initrd.gz`,
  sums: (codename: string, uarch: string) => `debian/dists/${codename}/main/installer-${uarch}/current/images/SHA256SUMS`,
  inrelease: (codename: string) => `debian/dists/${codename}/InRelease`,
};

/** Debian: files, SHA256SUMS with "./" paths, and an InRelease clearsigned by `key` listing SHA256SUMS. */
export async function publishDebian(m: LocalMirror, p: Pair, key: TestKey, codename = 'bookworm', uarch = 'amd64'): Promise<void> {
  m.put(DEBIAN.kernel(codename, uarch), p.kernel);
  m.put(DEBIAN.initrd(codename, uarch), p.initrd);
  const sums =
    `${sha('unrelated')}  ./cdrom/vmlinuz\n` +
    `${sha(p.initrd)}  ./netboot/debian-installer/${uarch}/initrd.gz\n` +
    `${sha(p.kernel)}  ./netboot/debian-installer/${uarch}/linux\n`;
  m.put(DEBIAN.sums(codename, uarch), sums);
  const rel = `main/installer-${uarch}/current/images/SHA256SUMS`;
  const release =
    `Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: ${codename}\nDate: Sat, 01 Jan 2024 00:00:00 UTC\n` +
    `Architectures: ${uarch}\nComponents: main\nMD5Sum:\n ${'0'.repeat(32)} ${sums.length} ${rel}\n` +
    `SHA256:\n ${sha('x')} 123 main/binary-${uarch}/Packages\n ${sha(sums)} ${sums.length} ${rel}\n`;
  m.put(DEBIAN.inrelease(codename), await clearsign(release, key));
}

export const FEDORA = {
  tree: (v: string, arch: string) => `fedora/releases/${v}/Everything/${arch}/os`,
};

export function publishFedora(m: LocalMirror, p: Pair, v = '40', arch = 'x86_64'): void {
  const t = FEDORA.tree(v, arch);
  m.put(`${t}/images/pxeboot/vmlinuz`, p.kernel);
  m.put(`${t}/images/pxeboot/initrd.img`, p.initrd);
  m.put(
    `${t}/.treeinfo`,
    `[header]\ntype = productmd.treeinfo\nversion = 1.2\n\n[release]\nname = Fedora\nversion = ${v}\n\n` +
      `[checksums]\nimages/efiboot.img = sha256:${sha('efiboot')}\nimages/pxeboot/initrd.img = sha256:${sha(p.initrd)}\n` +
      `images/pxeboot/vmlinuz = sha256:${sha(p.kernel)}\n\n[images-${arch}]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n`,
  );
}

export const SUSE = {
  repo: (v: string) => `opensuse/distribution/leap/${v}/repo/oss`,
};

export async function publishSuse(m: LocalMirror, p: Pair, key: TestKey, v = '15.6', arch = 'x86_64'): Promise<void> {
  const r = SUSE.repo(v);
  m.put(`${r}/boot/${arch}/loader/linux`, p.kernel);
  m.put(`${r}/boot/${arch}/loader/initrd`, p.initrd);
  const sums = Buffer.from(
    `${sha(p.initrd)}  boot/${arch}/loader/initrd\n${sha(p.kernel)}  boot/${arch}/loader/linux\n${sha('m')}  media.1/media\n`,
  );
  m.put(`${r}/CHECKSUMS`, sums);
  m.put(`${r}/CHECKSUMS.asc`, await detachSign(sums, key));
}

export const ALPINE = {
  dir: (v: string, arch: string) => `alpine/v${v}/releases/${arch}/netboot`,
};

/** Alpine-like: one `<file>.sha256` per file (`<hex>  <name>`), unsigned. */
export function publishAlpine(m: LocalMirror, p: Pair, v = '3.20', arch = 'x86_64'): void {
  const d = ALPINE.dir(v, arch);
  m.put(`${d}/vmlinuz-lts`, p.kernel);
  m.put(`${d}/initramfs-lts`, p.initrd);
  m.put(`${d}/vmlinuz-lts.sha256`, `${sha(p.kernel)}  vmlinuz-lts\n`);
  m.put(`${d}/initramfs-lts.sha256`, `${sha(p.initrd)}  initramfs-lts\n`);
}

/** An upstream with no checksums at all (trust: unverified): conditional GETs are all we have. */
export function publishPlain(m: LocalMirror, p: Pair): void {
  m.put('plain/boot/vmlinuz', p.kernel);
  m.put('plain/boot/initrd', p.initrd);
}

/** The catalog the layouts above match (one file, like distros/*.yaml). */
export const TEST_CATALOG = `entries:
  - id: debian
    label: Debian
    group: Linux
    mirror: http://deb.debian.org/debian
    versions:
      - { version: "12", codename: bookworm }
    architectures: [x86_64]
    arch_names: { x86_64: amd64 }
    boot:
      method: linux
      kernel: dists/{{ codename }}/main/installer-{{ uarch }}/current/images/netboot/debian-installer/{{ uarch }}/linux
      initrd: dists/{{ codename }}/main/installer-{{ uarch }}/current/images/netboot/debian-installer/{{ uarch }}/initrd.gz
    checksum: { kind: sha256sums, path: "dists/{{ codename }}/main/installer-{{ uarch }}/current/images/SHA256SUMS" }
    signature: { kind: debian-release, inrelease: "dists/{{ codename }}/InRelease", keyring: debian }
    trust: signed
  - id: fedora
    label: Fedora
    group: Linux
    mirror: https://dl.fedoraproject.org/pub/fedora/linux
    versions: [{ version: "40" }]
    boot:
      method: linux
      kernel: releases/{{ version }}/Everything/{{ arch }}/os/images/pxeboot/vmlinuz
      initrd: releases/{{ version }}/Everything/{{ arch }}/os/images/pxeboot/initrd.img
    checksum: { kind: treeinfo, path: "releases/{{ version }}/Everything/{{ arch }}/os/.treeinfo" }
    trust: checksum
  - id: opensuse
    label: openSUSE Leap
    group: Linux
    mirror: https://download.opensuse.org
    versions: [{ version: "15.6" }]
    boot:
      method: linux
      kernel: distribution/leap/{{ version }}/repo/oss/boot/{{ arch }}/loader/linux
      initrd: distribution/leap/{{ version }}/repo/oss/boot/{{ arch }}/loader/initrd
    checksum: { kind: suse-checksums, path: "distribution/leap/{{ version }}/repo/oss/CHECKSUMS" }
    signature: { kind: gpg-detached, path: "distribution/leap/{{ version }}/repo/oss/CHECKSUMS.asc", keyring: opensuse }
    trust: signed
  - id: alpine
    label: Alpine
    group: Linux
    mirror: https://dl-cdn.alpinelinux.org/alpine
    versions: [{ version: "3.20" }]
    boot:
      method: linux
      kernel: v{{ version }}/releases/{{ arch }}/netboot/vmlinuz-lts
      initrd: v{{ version }}/releases/{{ arch }}/netboot/initramfs-lts
    checksum: { kind: sha256-per-file }
    trust: checksum
  - id: plain
    label: Plain (no checksums)
    group: Tools
    mirror: https://plain.example.invalid
    versions: [{ version: "1" }]
    boot:
      method: linux
      kernel: boot/vmlinuz
      initrd: boot/initrd
    trust: unverified
  - id: local
    label: Boot from local disk
    group: Tools
    default: true
    boot: { method: localboot }
    trust: unverified
`;

export interface TestSite {
  root: string;
  config: SyncConfig;
}

/** A temp site: tftproot, state, distros/, keyrings, config pointing every entry at `m`. */
export function makeSite(base: string, m: LocalMirror, keys: { debian: TestKey; opensuse: TestKey }): TestSite {
  const root = join(base, `site-${randomBytes(3).toString('hex')}`);
  const distros = join(root, 'distros');
  mkdirSync(distros, { recursive: true });
  mkdirSync(join(root, 'keys'), { recursive: true });
  writeFileSync(join(distros, 'test.yaml'), TEST_CATALOG);
  writeFileSync(join(root, 'keys', 'debian.asc'), keys.debian.publicArmored);
  writeFileSync(join(root, 'keys', 'opensuse.asc'), keys.opensuse.publicArmored);
  const mirrors = {
    debian: m.url('debian'),
    fedora: m.url('fedora'),
    opensuse: m.url('opensuse'),
    alpine: m.url('alpine'),
    plain: m.url('plain'),
  };
  const config: SyncConfig = {
    tftp: { root: join(root, 'tftproot') },
    stateDir: join(root, 'state'),
    catalogDir: distros,
    mirrors,
    keyrings: { debian: join(root, 'keys', 'debian.asc'), opensuse: join(root, 'keys', 'opensuse.asc') },
  };
  // a pxe.yaml too, for the CLI child process
  const yaml = [
    `tftp: { root: ./tftproot }`,
    `stateDir: ./state`,
    `catalogDir: ./distros`,
    `mirrors:`,
    ...Object.entries(mirrors).map(([k, v]) => `  ${k}: ${v}`),
    `keyrings:`,
    `  debian: ./keys/debian.asc`,
    `  opensuse: ./keys/opensuse.asc`,
    '',
  ].join('\n');
  writeFileSync(join(root, 'pxe.yaml'), yaml);
  return { root, config };
}

/** Collects what `pxe sync` prints (its `out` stream) for assertions. */
export class TextSink extends Writable {
  text = '';
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += c.toString();
    cb();
  }
}

/** Publishes a fresh pair for each upstream layout the sync tests use (Debian signed, Fedora, openSUSE signed, Alpine, plain). */
export async function publishAll(
  mirror: LocalMirror,
  keys: { debian: TestKey; opensuse: TestKey },
  pair: (tag: string) => Pair,
): Promise<Record<'debian' | 'fedora' | 'opensuse' | 'alpine' | 'plain', Pair>> {
  const p = { debian: pair('debian'), fedora: pair('fedora'), opensuse: pair('opensuse'), alpine: pair('alpine'), plain: pair('plain') };
  await publishDebian(mirror, p.debian, keys.debian);
  publishFedora(mirror, p.fedora);
  await publishSuse(mirror, p.opensuse, keys.opensuse);
  publishAlpine(mirror, p.alpine);
  publishPlain(mirror, p.plain);
  return p;
}
