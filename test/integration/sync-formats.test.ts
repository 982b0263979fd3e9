/**
 * Upstream manifest formats and signatures as real tools produce them: GnuPG
 * (`gpg --clearsign`, `--detach-sign`, binary `--export` keyrings like
 * /usr/share/keyrings/debian-archive-keyring.gpg) against our OpenPGP checks, and
 * coreutils `sha256sum` output against the parsers. (Pure parsing cases are here
 * too, next to the real-tool ones, so one file documents every accepted format.)
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  lookupChecksum,
  parseReleaseSha256,
  parseSha256File,
  parseSha256Sums,
  parseSuseChecksums,
  parseTreeinfo,
} from '../../src/sync/checksums.js';
import { loadKeyring, SignatureError, verifyClearsigned, verifyDetached } from '../../src/sync/pgp.js';

const run = promisify(execFile);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let home: string;
const gpg = (...args: string[]) =>
  run('gpg', ['--homedir', home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { timeout: 60_000 });

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), `pxe-sync-gpg-${process.pid}-`));
  await gpg('--quick-gen-key', 'pxe test archive <archive@example.invalid>', 'ed25519', 'sign', 'never');
  await gpg('--quick-gen-key', 'someone else <other@example.invalid>', 'ed25519', 'sign', 'never');
  await gpg('--output', join(home, 'archive.gpg'), '--export', 'archive@example.invalid');
  await gpg('--armor', '--output', join(home, 'other.asc'), '--export', 'other@example.invalid');
}, 120_000);

afterAll(async () => {
  if (home) {
    await run('gpgconf', ['--homedir', home, '--kill', 'all']).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
});

describe('OpenPGP against GnuPG', () => {
  it('verifies a gpg-clearsigned InRelease with a binary keyring and returns only the signed text', async () => {
    const release = `Origin: Debian\nCodename: bookworm\nSHA256:\n ${sha('sums')} 4 main/installer-amd64/current/images/SHA256SUMS\n- dash line\n`;
    writeFileSync(join(home, 'Release'), release);
    await gpg(
      '--local-user',
      'archive@example.invalid',
      '--digest-algo',
      'SHA256',
      '--output',
      join(home, 'InRelease'),
      '--clearsign',
      join(home, 'Release'),
    );
    const inrelease = readFileSync(join(home, 'InRelease'), 'utf8');
    const keys = await loadKeyring(join(home, 'archive.gpg'));
    expect(keys).toHaveLength(1);
    const text = await verifyClearsigned(inrelease, keys);
    expect(parseReleaseSha256(text).get('main/installer-amd64/current/images/SHA256SUMS')).toEqual({ sha256: sha('sums'), size: 4 });
    expect(text).toContain('- dash line'); // dash-escaping (RFC 4880 §7.1) undone

    // another key, or a changed byte in the signed text, is refused
    await expect(verifyClearsigned(inrelease, await loadKeyring(join(home, 'other.asc')))).rejects.toBeInstanceOf(SignatureError);
    await expect(verifyClearsigned(inrelease.replace('bookworm', 'bookwork'), keys)).rejects.toThrow(/bad signature/);
    await expect(verifyClearsigned(release, keys)).rejects.toThrow(/not a clearsigned message/);
    await expect(verifyClearsigned(inrelease, [])).rejects.toThrow(/no verification keys/);
  });

  it('verifies detached signatures (armored CHECKSUMS.asc and binary .gpg)', async () => {
    const body = Buffer.from(`${sha('k')}  boot/x86_64/loader/linux\n`);
    writeFileSync(join(home, 'CHECKSUMS'), body);
    await gpg(
      '--local-user',
      'archive@example.invalid',
      '--armor',
      '--output',
      join(home, 'CHECKSUMS.asc'),
      '--detach-sign',
      join(home, 'CHECKSUMS'),
    );
    await gpg('--local-user', 'archive@example.invalid', '--output', join(home, 'CHECKSUMS.gpg'), '--detach-sign', join(home, 'CHECKSUMS'));
    const keys = await loadKeyring(join(home, 'archive.gpg'));
    await verifyDetached(body, readFileSync(join(home, 'CHECKSUMS.asc')), keys);
    await verifyDetached(body, readFileSync(join(home, 'CHECKSUMS.gpg')), keys);
    await expect(verifyDetached(Buffer.concat([body, Buffer.from('\n')]), readFileSync(join(home, 'CHECKSUMS.asc')), keys)).rejects.toThrow(
      /bad signature/,
    );
    await expect(verifyDetached(body, Buffer.from('garbage'), keys)).rejects.toThrow(/unreadable signature/);
  });
});

describe('checksum manifests', () => {
  it('reads coreutils sha256sum output (text and binary mode, ./ prefixes)', async () => {
    const dir = mkdtempSync(join(tmpdir(), `pxe-sync-sums-${process.pid}-`));
    try {
      writeFileSync(join(dir, 'linux'), 'kernel');
      writeFileSync(join(dir, 'initrd.gz'), 'initrd');
      const text =
        (await run('sha256sum', ['./linux'], { cwd: dir })).stdout + (await run('sha256sum', ['-b', 'initrd.gz'], { cwd: dir })).stdout;
      const m = parseSha256Sums(text);
      expect(lookupChecksum(m, 'linux')).toBe(sha('kernel'));
      expect(lookupChecksum(m, './initrd.gz')).toBe(sha('initrd'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses BSD tags, .treeinfo [checksums], openSUSE CHECKSUMS (clearsigned or not), per-file .sha256', () => {
    expect(
      parseSha256Sums(`SHA256 (FreeBSD-14.3-RELEASE-amd64-mini-memstick.img) = ${sha('a')}\njunk line\n`).get(
        'FreeBSD-14.3-RELEASE-amd64-mini-memstick.img',
      ),
    ).toBe(sha('a'));
    const tree = `[general]\nversion = 42\n[checksums]\nimages/pxeboot/vmlinuz = sha256:${sha('v').toUpperCase()}\nimages/boot.iso = md5:0123\n[stage2]\nmainimage = images/install.img\n`;
    const t = parseTreeinfo(tree);
    expect(t.get('images/pxeboot/vmlinuz')).toBe(sha('v'));
    expect(t.has('images/boot.iso')).toBe(false);
    expect(t.has('mainimage')).toBe(false);
    const suse = `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${sha('l')}  boot/x86_64/loader/linux\n${'ab'.repeat(20)}  media.1/media\n-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n`;
    const s = parseSuseChecksums(suse);
    expect(s.get('boot/x86_64/loader/linux')).toBe(sha('l'));
    expect(s.size).toBe(1); // the sha1-length line is not a sha256
    expect(parseSha256File(`${sha('x')}  vmlinuz-lts\n`, 'vmlinuz-lts').get('vmlinuz-lts')).toBe(sha('x'));
    expect(parseSha256File(`${sha('y')}\n`, 'initramfs-lts').get('initramfs-lts')).toBe(sha('y'));
    expect(parseSha256File('not a digest\n', 'f').size).toBe(0);
    const rel = `Origin: Debian\nMD5Sum:\n ${'0'.repeat(32)} 1 a\nSHA256:\n ${sha('a')} 10 main/a\n ${sha('b')} 20 main/b\nSHA512:\n ${'f'.repeat(128)} 1 main/a\n`;
    const r = parseReleaseSha256(rel);
    expect([...r.keys()]).toEqual(['main/a', 'main/b']);
    expect(r.get('main/b')).toEqual({ sha256: sha('b'), size: 20 });
  });
});
