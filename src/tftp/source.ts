/**
 * Where DATA payloads come from: disk files read in large chunks through a shared,
 * bounded, ref-counted cache, or in-memory content (virtual files, netascii).
 *
 * Why a shared cache: PXE labs boot many machines at once and they all fetch the same
 * kernel/initrd. Chunks are keyed by (dev, ino, mtime, size) so concurrent transfers of
 * one file share memory, while a file replaced on disk (new inode) gets new entries and
 * in-flight transfers keep the chunks of the version they opened.
 */
import fs from 'node:fs';

export interface BlockSource {
  readonly size: number;
  readonly chunkSize: number;
  /** Takes a reference on chunk `idx`; the caller must call `release(idx)` exactly once. */
  acquire(idx: number): Buffer | Promise<Buffer>;
  release(idx: number): void;
  /** Called once when the transfer ends (after releasing its chunks). */
  close(): void;
}

export class MemorySource implements BlockSource {
  readonly size: number;
  readonly chunkSize: number;
  constructor(private readonly content: Buffer) {
    this.size = content.length;
    this.chunkSize = Math.max(1, content.length);
  }
  acquire(): Buffer {
    return this.content;
  }
  release(): void {}
  close(): void {}
}

interface ChunkEntry {
  key: string;
  refs: number;
  /** full-size pooled buffer backing `buf` (recycled when the entry is evicted) */
  backing: Buffer;
  buf: Buffer | undefined;
  promise: Promise<Buffer> | undefined;
  bytes: number;
}

/**
 * Ref-counted chunk cache. Referenced chunks are never evicted; unreferenced ones are
 * kept (LRU) while the total stays under `budgetBytes`, so a second client fetching the
 * same initrd right after the first reads from memory.
 */
export class ChunkCache {
  private readonly entries = new Map<string, ChunkEntry>();
  /** unreferenced, loaded entries in LRU order (Map keeps insertion order) */
  private readonly idle = new Map<string, ChunkEntry>();
  private bytes = 0;
  /**
   * Evicted chunk buffers, reused for the next reads. Without this, a 64 MiB transfer
   * leaves 256 dead 256-KiB buffers for the GC, which V8 collects late (they are
   * external memory), and RSS balloons far above the cache budget.
   */
  private readonly free: Buffer[] = [];
  private readonly maxFree = 32;

  constructor(
    readonly chunkSize: number,
    readonly budgetBytes: number,
  ) {}

  get cachedBytes(): number {
    return this.bytes;
  }

  acquire(
    fileKey: string,
    idx: number,
    length: number,
    read: (buf: Buffer, position: number) => Promise<number>,
  ): Buffer | Promise<Buffer> {
    const key = fileKey + '#' + idx;
    const e = this.entries.get(key);
    if (e) {
      if (e.refs === 0) this.idle.delete(key);
      e.refs++;
      return e.buf ?? (e.promise as Promise<Buffer>);
    }
    const backing = this.free.pop() ?? Buffer.allocUnsafe(this.chunkSize);
    const buf = length === backing.length ? backing : backing.subarray(0, length);
    const entry: ChunkEntry = { key, refs: 1, backing, buf: undefined, promise: undefined, bytes: length };
    this.entries.set(key, entry);
    this.bytes += length;
    entry.promise = read(buf, idx * this.chunkSize).then(
      (n) => {
        if (n !== length) {
          this.drop(entry);
          throw new Error(`short read (${n} of ${length}): file changed on disk`);
        }
        entry.buf = buf;
        entry.promise = undefined;
        if (entry.refs === 0) this.makeIdle(entry);
        return buf;
      },
      (err: unknown) => {
        this.drop(entry);
        throw err;
      },
    );
    entry.promise.catch(() => undefined); // the acquirer handles it; avoid unhandled rejections
    return entry.promise;
  }

  release(fileKey: string, idx: number): void {
    const key = fileKey + '#' + idx;
    const e = this.entries.get(key);
    if (!e || e.refs === 0) return;
    e.refs--;
    if (e.refs === 0 && e.buf) this.makeIdle(e);
  }

  private makeIdle(e: ChunkEntry): void {
    if (e.buf === undefined) {
      // a failed short read leaves no buffer: forget it entirely
      this.drop(e);
      return;
    }
    this.idle.set(e.key, e);
    this.evict();
  }

  private drop(e: ChunkEntry): void {
    if (this.entries.get(e.key) === e) {
      this.entries.delete(e.key);
      this.idle.delete(e.key);
      this.bytes -= e.bytes;
      // only an unreferenced, settled chunk can be recycled: nobody can still read it
      if (e.refs === 0 && e.promise === undefined && this.free.length < this.maxFree) this.free.push(e.backing);
    }
  }

  private evict(): void {
    for (const e of this.idle.values()) {
      if (this.bytes <= this.budgetBytes) break;
      this.drop(e);
    }
  }
}

/**
 * A file on disk, read through the shared cache using this transfer's own fd (so a
 * rename over the file does not change what this transfer sends). The fd is closed
 * only after the transfer ended and no read on it is pending.
 */
export class FileSource implements BlockSource {
  readonly chunkSize: number;
  private readonly fileKey: string;
  private pendingReads = 0;
  private closed = false;
  private fdClosed = false;

  constructor(
    private readonly cache: ChunkCache,
    private readonly fd: number,
    readonly size: number,
    identity: { dev: bigint | string; ino: bigint | string; mtimeNs: bigint | string },
  ) {
    this.chunkSize = cache.chunkSize;
    this.fileKey = `${identity.dev}:${identity.ino}:${identity.mtimeNs}:${size}`;
  }

  acquire(idx: number): Buffer | Promise<Buffer> {
    const start = idx * this.chunkSize;
    const length = Math.max(0, Math.min(this.chunkSize, this.size - start));
    return this.cache.acquire(this.fileKey, idx, length, (buf, position) => this.readFully(buf, position));
  }

  release(idx: number): void {
    this.cache.release(this.fileKey, idx);
  }

  close(): void {
    this.closed = true;
    this.maybeCloseFd();
  }

  private maybeCloseFd(): void {
    if (this.closed && this.pendingReads === 0 && !this.fdClosed) {
      this.fdClosed = true;
      fs.close(this.fd, () => undefined);
    }
  }

  private readFully(buf: Buffer, position: number): Promise<number> {
    if (this.fdClosed) return Promise.reject(new Error('file closed'));
    this.pendingReads++;
    return new Promise<number>((resolve, reject) => {
      let done = 0;
      const step = (): void => {
        fs.read(this.fd, buf, done, buf.length - done, position + done, (err, n) => {
          if (err) return finish(err, done);
          done += n;
          if (n === 0 || done >= buf.length) return finish(null, done);
          step();
        });
      };
      const finish = (err: Error | null, n: number): void => {
        this.pendingReads--;
        this.maybeCloseFd();
        if (err) reject(err);
        else resolve(n);
      };
      step();
    });
  }
}
