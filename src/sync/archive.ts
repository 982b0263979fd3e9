/**
 * Extract single members from a verified archive (Ubuntu's netboot tarball,
 * memtest86+'s zip). Only what the catalog names is extracted, to a path we choose:
 * member names inside the archive never become paths on disk, so a hostile archive
 * ("../../etc/x", symlink members) cannot write outside the staging directory.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { createGunzip, inflateRawSync } from 'node:zlib';
import { normaliseChecksumPath } from './checksums.js';

/**
 * Writes one extracted member: SHA-256 of exactly the bytes written (the snapshot
 * records it, so the file is never read back to hash it), writes batched into >= 1 MiB
 * write(2) calls, and fdatasync before close: the member is published without a
 * second pass (see HashingFileSink in fetch.ts for why fdatasync suffices).
 */
class MemberWriter {
  private readonly hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private constructor(private readonly fh: FileHandle) {}
  static async create(path: string): Promise<MemberWriter> {
    return new MemberWriter(await open(path, 'w', 0o644));
  }
  async write(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    this.hash.update(b);
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes >= 1024 * 1024) await this.flush();
  }
  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // FileHandle.writeFile loops until every byte is written (short writes included)
    if (batch.length > 0) await this.fh.writeFile(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
  }
  /** flush, fdatasync, close; the member's sha256 */
  async finish(): Promise<string> {
    await this.flush();
    await this.fh.datasync();
    await this.fh.close();
    return this.hash.digest('hex');
  }
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

const norm = (n: string) => normaliseChecksumPath(n);

function cstr(b: Buffer): string {
  const i = b.indexOf(0);
  return b.subarray(0, i < 0 ? b.length : i).toString('utf8');
}

function octal(b: Buffer): number {
  // POSIX ustar numeric fields are octal ASCII; GNU base-256 (high bit set) for > 8 GiB.
  if (b[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = cstr(b).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/**
 * Stream a .tar.gz and write the wanted members (name -> destination path).
 * Throws if a wanted member is missing or is not a regular file.
 * Returns destination path -> sha256 of what was written (members are durable).
 */
export async function extractTarGz(archive: string, wanted: Map<string, string>): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  const want = new Map([...wanted].map(([k, v]) => [norm(k), v]));
  const done = new Set<string>();
  let buf: Buffer = Buffer.alloc(0);
  let longName: string | undefined;
  // current member being copied
  let remaining = 0;
  let padding = 0;
  let out: MemberWriter | null = null;
  let outPath = '';
  let skipping = false;
  let finished = false;

  // big reads and inflate chunks: a netboot tarball is tens of MiB
  const gunzip = createReadStream(archive, { highWaterMark: 1024 * 1024 }).pipe(createGunzip({ chunkSize: 256 * 1024 }));
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      if (finished) continue;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        if (remaining > 0) {
          const n = Math.min(remaining, buf.length);
          if (n === 0) break;
          if (out && !skipping) await out.write(buf.subarray(0, n));
          buf = buf.subarray(n);
          remaining -= n;
          if (remaining > 0) break;
          if (out) {
            digests.set(outPath, await out.finish());
            out = null;
          }
          continue;
        }
        if (padding > 0) {
          const n = Math.min(padding, buf.length);
          buf = buf.subarray(n);
          padding -= n;
          if (padding > 0) break;
          continue;
        }
        if (buf.length < 512) break;
        const h = buf.subarray(0, 512);
        buf = buf.subarray(512);
        if (h.every((x) => x === 0)) {
          finished = true; // end-of-archive marker (two zero blocks; one is enough to stop)
          break;
        }
        const size = octal(h.subarray(124, 136));
        const type = String.fromCharCode(h[156]!);
        const prefix = cstr(h.subarray(345, 500));
        let name = cstr(h.subarray(0, 100));
        if (prefix && h.subarray(257, 262).toString('latin1') === 'ustar') name = `${prefix}/${name}`;
        if (longName !== undefined) {
          name = longName;
          longName = undefined;
        }
        padding = (512 - (size % 512)) % 512;
        if (type === 'L' || type === 'x') {
          // GNU long name ('L': the data is the next member's name) or POSIX pax extended
          // header ('x': "<len> path=<name>\n" records; other keys are ignored)
          if (buf.length < size) {
            // rare: wait for more data by putting the header back
            buf = Buffer.concat([h, buf]);
            padding = 0;
            break;
          }
          const data = buf.subarray(0, size);
          if (type === 'L') longName = cstr(data);
          else {
            const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
            if (m) longName = m[1]!;
          }
          buf = buf.subarray(size);
          continue;
        }
        const key = norm(name);
        const dest = want.get(key);
        remaining = size;
        skipping = true;
        if (dest !== undefined && (type === '0' || type === '\0')) {
          out = await MemberWriter.create(dest);
          outPath = dest;
          skipping = false;
          done.add(key);
        }
        if (size === 0 && out) {
          digests.set(outPath, await out.finish());
          out = null;
        }
      }
    }
  } finally {
    if (out) await out.abort();
  }
  const missing = [...want.keys()].filter((k) => !done.has(k));
  if (missing.length > 0) {
    for (const k of done) await rm(want.get(k)!, { force: true });
    throw new Error(`archive ${archive}: member(s) not found as regular files: ${missing.join(', ')}`);
  }
  return digests;
}

/**
 * Extract members of a zip (stored or deflated) via its central directory (APPNOTE §4.3.16).
 * Returns destination path -> sha256 of what was written (members are durable).
 */
export async function extractZip(archive: string, wanted: Map<string, string>): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  const want = new Map([...wanted].map(([k, v]) => [norm(k), v]));
  const z = await readFile(archive);
  let eocd = -1;
  for (let i = z.length - 22; i >= Math.max(0, z.length - 22 - 65535); i--) {
    if (z.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`archive ${archive}: not a zip file`);
  const count = z.readUInt16LE(eocd + 10);
  let p = z.readUInt32LE(eocd + 16);
  const done = new Set<string>();
  for (let i = 0; i < count; i++) {
    if (p + 46 > z.length || z.readUInt32LE(p) !== 0x02014b50) throw new Error(`archive ${archive}: corrupt central directory`);
    const method = z.readUInt16LE(p + 10);
    const csize = z.readUInt32LE(p + 20);
    const nlen = z.readUInt16LE(p + 28);
    const elen = z.readUInt16LE(p + 30);
    const clen = z.readUInt16LE(p + 32);
    const local = z.readUInt32LE(p + 42);
    const name = z.subarray(p + 46, p + 46 + nlen).toString('utf8');
    p += 46 + nlen + elen + clen;
    const dest = want.get(norm(name));
    if (dest === undefined) continue;
    const lnlen = z.readUInt16LE(local + 26);
    const lelen = z.readUInt16LE(local + 28);
    const start = local + 30 + lnlen + lelen;
    const data = z.subarray(start, start + csize);
    let content: Buffer;
    if (method === 0) content = Buffer.from(data);
    else if (method === 8) content = inflateRawSync(data);
    else throw new Error(`archive ${archive}: member ${name}: unsupported compression method ${method}`);
    const w = await MemberWriter.create(dest);
    try {
      await w.write(content);
      digests.set(dest, await w.finish());
    } catch (e) {
      await w.abort();
      throw e;
    }
    done.add(norm(name));
  }
  const missing = [...want.keys()].filter((k) => !done.has(k));
  if (missing.length > 0) throw new Error(`archive ${archive}: member(s) not found: ${missing.join(', ')}`);
  return digests;
}
