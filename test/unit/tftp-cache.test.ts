import { describe, expect, it } from 'vitest';
import { ChunkCache, MemorySource } from '../../src/tftp/source.js';

/** A fake file: chunk reads fill the buffer with the chunk index and are counted. */
function fakeRead(counter: { reads: number }) {
  return async (buf: Buffer, position: number): Promise<number> => {
    counter.reads++;
    buf.fill(position / 1024);
    return buf.length;
  };
}

describe('ChunkCache', () => {
  it('shares one read between concurrent acquirers of the same chunk', async () => {
    const cache = new ChunkCache(1024, 4096);
    const c = { reads: 0 };
    const a = cache.acquire('f', 3, 1024, fakeRead(c));
    const b = cache.acquire('f', 3, 1024, fakeRead(c));
    const [ba, bb] = await Promise.all([a, b]);
    expect(ba).toBe(bb);
    expect(ba[0]).toBe(3);
    expect(c.reads).toBe(1);
    // loaded: a third acquirer gets it synchronously
    expect(Buffer.isBuffer(cache.acquire('f', 3, 1024, fakeRead(c)))).toBe(true);
    expect(c.reads).toBe(1);
  });

  it('different file identities never share chunks (a replaced file is a new key)', async () => {
    const cache = new ChunkCache(1024, 4096);
    const c = { reads: 0 };
    await cache.acquire('dev:ino1:mtime', 0, 1024, fakeRead(c));
    await cache.acquire('dev:ino2:mtime', 0, 1024, fakeRead(c));
    expect(c.reads).toBe(2);
  });

  it('keeps unreferenced chunks only up to the budget, never evicts referenced ones', async () => {
    const cache = new ChunkCache(1024, 2048);
    const c = { reads: 0 };
    for (let i = 0; i < 8; i++) await cache.acquire('f', i, 1024, fakeRead(c));
    expect(cache.cachedBytes).toBe(8 * 1024); // all referenced
    for (let i = 0; i < 8; i++) cache.release('f', i);
    expect(cache.cachedBytes).toBe(2048);
    // the two most recently released chunks are still cached
    expect(Buffer.isBuffer(cache.acquire('f', 7, 1024, fakeRead(c)))).toBe(true);
    expect(Buffer.isBuffer(cache.acquire('f', 0, 1024, fakeRead(c)))).toBe(false);
  });

  it('recycled buffers carry the new chunk content, and a short last chunk has its own length', async () => {
    const cache = new ChunkCache(1024, 0);
    const c = { reads: 0 };
    const first = await cache.acquire('f', 1, 1024, fakeRead(c));
    cache.release('f', 1); // budget 0: evicted and recycled at once
    const second = await cache.acquire('f', 2, 1024, fakeRead(c));
    expect(second[0]).toBe(2);
    expect(second.buffer).toBe(first.buffer);
    const last = await cache.acquire('f', 5, 100, fakeRead(c));
    expect(last.length).toBe(100);
  });

  it('a short read (file truncated under us) rejects and is not cached', async () => {
    const cache = new ChunkCache(1024, 4096);
    const short = async (): Promise<number> => 10;
    await expect(cache.acquire('f', 0, 1024, short)).rejects.toThrow(/short read/);
    const c = { reads: 0 };
    await cache.acquire('f', 0, 1024, fakeRead(c));
    expect(c.reads).toBe(1);
  });
});

describe('MemorySource', () => {
  it('serves content as a single chunk', () => {
    const s = new MemorySource(Buffer.from('abc'));
    expect(s.size).toBe(3);
    expect(s.acquire().toString()).toBe('abc');
    expect(new MemorySource(Buffer.alloc(0)).chunkSize).toBe(1);
  });
});
