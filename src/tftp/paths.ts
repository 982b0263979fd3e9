/**
 * Request-path normalisation and confinement to the TFTP root.
 *
 * TFTP clients send DOS-style paths (PXE ROMs and Windows WDS clients use '\'), absolute
 * paths (pxelinux asks for "/pxelinux.cfg/..." when the boot file had a leading '/'),
 * and attackers send "../". Everything is mapped to a root-relative path or refused
 * with error 2 (access violation), and the final file is re-checked with realpath so
 * symlinks cannot leave the root.
 */
import fs, { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { ErrorCode, type TftpErrorCode } from './packet.js';

export type PathResult = { ok: true; rel: string } | { ok: false; code: TftpErrorCode; reason: string };

export const DEFAULT_MAX_NAME_BYTES = 255;

/**
 * Normalises a requested name into a root-relative path with '/' separators.
 * Refuses NUL bytes, names longer than `maxNameBytes`, and '..' segments that would
 * climb above the root (a '..' that stays inside, "a/../b", is resolved).
 */
export function normalizeRequestPath(name: string, maxNameBytes = DEFAULT_MAX_NAME_BYTES): PathResult {
  if (Buffer.byteLength(name, 'latin1') > maxNameBytes) return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'name too long' };
  if (name.includes('\0')) return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'NUL in name' };
  const segments = name.replace(/\\/g, '/').split('/');
  const out: string[] = [];
  for (const seg of segments) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'path escapes root' };
      out.pop();
      continue;
    }
    out.push(seg);
  }
  if (out.length === 0) return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'empty path' };
  return { ok: true, rel: out.join('/') };
}

export interface OpenedFile {
  fd: number;
  realPath: string;
  size: number;
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
}

function openFd(p: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fstatBig(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

export type OpenResult = { ok: true; file: OpenedFile } | { ok: false; code: TftpErrorCode; reason: string };

function isInside(realRoot: string, real: string): boolean {
  return real === realRoot || real.startsWith(realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep);
}

/**
 * Opens `rel` under `realRoot` (which must already be a realpath). Symlinks are
 * allowed only when they resolve inside the root. The fd stays open for the whole
 * transfer so a file renamed over mid-transfer keeps serving the version opened.
 */
export async function openInRoot(realRoot: string, rel: string): Promise<OpenResult> {
  const full = path.join(realRoot, rel);
  let real: string;
  try {
    real = await fsp.realpath(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, code: ErrorCode.FILE_NOT_FOUND, reason: 'file not found' };
    if (code === 'ELOOP') return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'symlink loop' };
    if (code === 'EACCES') return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'permission denied' };
    return { ok: false, code: ErrorCode.NOT_DEFINED, reason: `realpath: ${code ?? 'error'}` };
  }
  if (!isInside(realRoot, real)) return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'symlink escapes root' };
  let fd: number;
  try {
    // O_NOFOLLOW: the realpath has no symlink in its last component; if one was swapped
    // in between realpath and open, refuse rather than follow it. A raw fd (not a
    // FileHandle) because transfers read it with the callback API and close it themselves.
    fd = await openFd(real, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, code: ErrorCode.FILE_NOT_FOUND, reason: 'file not found' };
    if (code === 'EACCES' || code === 'ELOOP' || code === 'EPERM')
      return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'permission denied' };
    return { ok: false, code: ErrorCode.NOT_DEFINED, reason: `open: ${code ?? 'error'}` };
  }
  try {
    const st = await fstatBig(fd);
    if (!st.isFile()) {
      fs.close(fd, () => undefined);
      return { ok: false, code: ErrorCode.ACCESS_VIOLATION, reason: 'not a regular file' };
    }
    return { ok: true, file: { fd, realPath: real, size: Number(st.size), dev: st.dev, ino: st.ino, mtimeNs: st.mtimeNs } };
  } catch (err) {
    fs.close(fd, () => undefined);
    return { ok: false, code: ErrorCode.NOT_DEFINED, reason: `stat: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
}
