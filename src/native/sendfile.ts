/**
 * Typed face of src/native/sendfile.c: an HTTP response body sent from a file with
 * sendfile(2) on the socket Node owns. Why and how: the header of sendfile.c.
 *
 * When the addon is missing (a build without a compiler) or PXE_HTTP_SENDFILE=0 is
 * set, /files/ streams through Node instead (src/http/files.ts): slower, same bytes,
 * same headers. `nativeSendfileStatus()` says which and why; `pxe serve` logs it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_DIR } from '../config.js';

interface SendfileAddon {
  start(socketFd: number, fileFd: number, offset: number, length: number, cb: (status: number, endOffset: number) => void): unknown;
  cancel(handle: unknown): void;
}

export const NATIVE_SENDFILE_PATH = join(PACKAGE_DIR, 'src', 'native', 'build', 'Release', 'sendfile.node');

let addon: SendfileAddon | undefined;
let status: { native: boolean; reason: string };

if (process.env.PXE_HTTP_SENDFILE === '0') status = { native: false, reason: 'PXE_HTTP_SENDFILE=0' };
else if (!existsSync(NATIVE_SENDFILE_PATH)) status = { native: false, reason: `${NATIVE_SENDFILE_PATH} not built (npm run build:native)` };
else {
  try {
    addon = createRequire(import.meta.url)(NATIVE_SENDFILE_PATH) as SendfileAddon;
    status = { native: true, reason: NATIVE_SENDFILE_PATH };
  } catch (err) {
    status = { native: false, reason: `load failed: ${(err as Error).message}` };
  }
}

export function nativeSendfileStatus(): { native: boolean; reason: string } {
  return status;
}

/** Outcome of a sendfile job: 0 (all sent) or a negative errno; `sent` bytes went out either way. */
export interface SendfileEnd {
  status: number;
  sent: number;
}

export interface SendfileJob {
  /** stops the job; its onEnd is not called */
  cancel(): void;
}

/**
 * Sends `length` bytes of `fileFd` from `offset` on `socketFd` (not blocking: the
 * native side waits for writability on the loop). `onProgress` runs at most once a
 * second while bytes move; `onEnd` exactly once unless cancelled. The caller keeps both
 * fds open until then.
 */
export function sendfileToSocket(
  socketFd: number,
  fileFd: number,
  offset: number,
  length: number,
  onEnd: (end: SendfileEnd) => void,
  onProgress?: () => void,
): SendfileJob {
  if (!addon) throw new Error(`native sendfile unavailable: ${status.reason}`);
  const a = addon;
  let done = false;
  const handle = a.start(socketFd, fileFd, offset, length, (st, endOffset) => {
    if (st === 1) {
      onProgress?.();
      return;
    }
    done = true;
    onEnd({ status: st, sent: endOffset - offset });
  });
  return {
    cancel() {
      if (done) return;
      done = true;
      a.cancel(handle);
    },
  };
}
