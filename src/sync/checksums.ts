/**
 * Parsers for the checksum files upstream mirrors publish next to their netboot
 * images (the formats are listed in docs/catalog.md). Every parser returns a map from a
 * normalised relative path (no leading "./" or "/") to a lower-case SHA-256 hex
 * digest, and never throws on junk lines: a malformed line is skipped, because a
 * mirror file with one odd line must not hide the entries we actually need (the
 * lookup of the one key we need fails loudly instead).
 */

/** The catalog's checksum kinds (src/catalog/schema.ts), minus 'none'. */
export type ChecksumKind = 'sha256sums' | 'treeinfo' | 'suse-checksums' | 'sha256-per-file';

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** "./netboot/x" -> "netboot/x"; "/boot/x" -> "boot/x"; "*file" (binary-mode marker) -> "file". */
export function normaliseChecksumPath(p: string): string {
  let s = p.trim();
  if (s.startsWith('*')) s = s.slice(1); // GNU coreutils binary-mode marker ("<hex> *file")
  while (s.startsWith('./')) s = s.slice(2);
  while (s.startsWith('/')) s = s.slice(1);
  return s;
}

/**
 * coreutils `sha256sum` output, as in Debian's `…/images/SHA256SUMS`:
 * `<hex>  ./netboot/debian-installer/amd64/linux`. Also accepts the BSD tag form
 * `SHA256 (path) = <hex>` used by Fedora's `*-CHECKSUM` files.
 */
export function parseSha256Sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bsd = /^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$/.exec(line);
    if (bsd) {
      out.set(normaliseChecksumPath(bsd[1]!), bsd[2]!.toLowerCase());
      continue;
    }
    const m = /^([0-9a-fA-F]{64})\s+(.+)$/.exec(line);
    if (m) out.set(normaliseChecksumPath(m[2]!), m[1]!.toLowerCase());
  }
  return out;
}

/**
 * `.treeinfo` (productmd INI) `[checksums]` section, as published by Fedora/EL:
 * `images/pxeboot/vmlinuz = sha256:<hex>`. Other sections and other digest kinds
 * (md5/sha1 in very old trees) are ignored: we only trust SHA-256.
 */
export function parseTreeinfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!.trim().toLowerCase();
      continue;
    }
    if (section !== 'checksums') continue;
    const m = /^(.+?)\s*=\s*sha256:([0-9a-fA-F]{64})$/.exec(line);
    if (m) out.set(normaliseChecksumPath(m[1]!), m[2]!.toLowerCase());
  }
  return out;
}

/**
 * openSUSE repomd `CHECKSUMS` (the file `CHECKSUMS.asc` signs): sha256sum-style
 * lines, sometimes wrapped in a PGP clearsign envelope. Lines whose digest is not
 * 64 hex chars (older sha1 lists) are skipped.
 */
export function parseSuseChecksums(text: string): Map<string, string> {
  return parseSha256Sums(stripClearsignEnvelope(text));
}

/**
 * A per-file `<name>.sha256`: either a bare digest or `<hex>  <name>`. The digest
 * applies to `fileName` whatever name the file itself mentions.
 */
export function parseSha256File(text: string, fileName: string): Map<string, string> {
  const out = new Map<string, string>();
  const first = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (first === undefined) return out;
  const token = first.split(/\s+/)[0] ?? '';
  const bsd = /^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$/.exec(first);
  const hex = bsd ? bsd[2]! : token;
  if (HEX64.test(hex)) out.set(normaliseChecksumPath(fileName), hex.toLowerCase());
  return out;
}

export function parseChecksums(kind: ChecksumKind, text: string, key: string): Map<string, string> {
  switch (kind) {
    case 'sha256sums':
      return parseSha256Sums(text);
    case 'treeinfo':
      return parseTreeinfo(text);
    case 'suse-checksums':
      return parseSuseChecksums(text);
    case 'sha256-per-file':
      return parseSha256File(text, key);
  }
}

/** Look `key` up after the same normalisation the parsers apply. */
export function lookupChecksum(map: Map<string, string>, key: string): string | undefined {
  return map.get(normaliseChecksumPath(key));
}

/** Remove a `-----BEGIN PGP SIGNED MESSAGE-----` envelope (and dash-escaping, RFC 4880 §7.1) if present. */
export function stripClearsignEnvelope(text: string): string {
  if (!text.includes('-----BEGIN PGP SIGNED MESSAGE-----')) return text;
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => l.startsWith('-----BEGIN PGP SIGNED MESSAGE-----'));
  let i = start + 1;
  while (i < lines.length && lines[i] !== '') i++; // armor headers ("Hash: SHA256") end at a blank line
  const body: string[] = [];
  for (i++; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('-----BEGIN PGP SIGNATURE-----')) break;
    body.push(l.startsWith('- ') ? l.slice(2) : l);
  }
  return body.join('\n');
}

/** One line of a Debian `Release` file's `SHA256:` field. */
export interface ReleaseEntry {
  sha256: string;
  size: number;
}

/**
 * The `SHA256:` multi-line field of a Debian `Release`/`InRelease` file
 * (Debian Policy / "DebianRepository/Format": ` <hex> <size> <path>` continuation
 * lines). Paths are relative to `dists/<suite>/`.
 */
export function parseReleaseSha256(text: string): Map<string, ReleaseEntry> {
  const out = new Map<string, ReleaseEntry>();
  let inField = false;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\S/.test(raw)) {
      inField = /^SHA256:\s*$/i.test(raw.trim());
      continue;
    }
    if (!inField) continue;
    const m = /^\s+([0-9a-fA-F]{64})\s+(\d+)\s+(\S+)\s*$/.exec(raw);
    if (m) out.set(normaliseChecksumPath(m[3]!), { sha256: m[1]!.toLowerCase(), size: Number(m[2]) });
  }
  return out;
}
