import { describe, expect, it } from 'vitest';
import {
  ackBlock,
  decodePacket,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  negotiateOptions,
  oackEntries,
  toNetascii,
} from '../../src/tftp/packet.js';

const limits = { maxBlksize: 1468, maxWindowsize: 64 };
const raw = (...parts: Array<number[] | string>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

describe('tftp packet decode', () => {
  it('decodes an RRQ with options, lower-casing names and keeping the first duplicate', () => {
    const r = decodePacket(raw([0, 1], 'boot/File.0\0OCTET\0BLKSIZE\x001468\0tsize\x000\0blksize\x00512\0'));
    expect(r.ok).toBe(true);
    if (!r.ok || r.packet.op !== 'rrq') throw new Error('not rrq');
    expect(r.packet.filename).toBe('boot/File.0');
    expect(r.packet.mode).toBe('octet');
    expect([...r.packet.options]).toEqual([
      ['blksize', '1468'],
      ['tsize', '0'],
    ]);
  });

  it('tolerates trailing NUL padding after a request', () => {
    const r = decodePacket(raw([0, 1], 'a\0octet\0', [0, 0, 0, 0]));
    expect(r.ok && r.packet.op === 'rrq' && r.packet.options.size === 0).toBe(true);
  });

  it('decodes WRQ, DATA, ACK, ERROR, OACK', () => {
    const w = decodePacket(encodeRequest('wrq', 'x', 'octet'));
    expect(w.ok && w.packet.op).toBe('wrq');
    const d = decodePacket(encodeData(65535, Buffer.from('hi')));
    expect(d.ok && d.packet.op === 'data' && d.packet.block === 65535 && d.packet.data.toString() === 'hi').toBe(true);
    const a = decodePacket(encodeAck(70000));
    expect(a.ok && a.packet.op === 'ack' && a.packet.block).toBe(70000 & 0xffff);
    const e = decodePacket(encodeError(1, 'file not found'));
    expect(e.ok && e.packet.op === 'error' && e.packet.code === 1 && e.packet.message).toBe('file not found');
    const o = decodePacket(
      encodeOack([
        ['blksize', '1468'],
        ['tsize', '42'],
      ]),
    );
    expect(o.ok && o.packet.op === 'oack' && o.packet.options.get('tsize')).toBe('42');
  });

  it.each([
    ['empty', Buffer.alloc(0), 'empty'],
    ['1 byte', Buffer.from([0]), 'short'],
    ['bad opcode 0', Buffer.from([0, 0, 1, 2]), 'bad-opcode'],
    ['bad opcode 7', Buffer.from([0, 7]), 'bad-opcode'],
    ['bad opcode 0xffff', Buffer.from([0xff, 0xff, 0, 0]), 'bad-opcode'],
    ['unterminated filename', raw([0, 1], 'abc'), 'unterminated'],
    ['unterminated mode', raw([0, 1], 'abc\0oct'), 'unterminated'],
    ['missing mode', raw([0, 1], 'abc\0'), 'unterminated'],
    ['unterminated option', raw([0, 1], 'abc\0octet\0blksize\x001468'), 'unterminated'],
    ['empty filename', raw([0, 1], '\0octet\0'), 'empty-filename'],
    ['bad mode', raw([0, 1], 'abc\0binary\0'), 'bad-mode'],
    ['opcode only RRQ', Buffer.from([0, 1]), 'empty-filename'],
    ['short ACK', Buffer.from([0, 4, 0]), 'short'],
    ['short DATA', Buffer.from([0, 3, 1]), 'short'],
    ['short ERROR', Buffer.from([0, 5]), 'short'],
    ['too long request', raw([0, 1], 'a'.repeat(2000) + '\0octet\0'), 'too-long'],
    ['huge option list', raw([0, 1], 'a\0octet\0', 'x\0y\0'.repeat(40)), 'too-many-options'],
    ['odd OACK', raw([0, 6], 'blksize\0'), 'bad-length'],
  ])('rejects %s without throwing', (_name, buf, kind) => {
    const r = decodePacket(buf);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.kind).toBe(kind);
  });

  it('survives random garbage (never throws)', () => {
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 5000; i++) {
      const len = Math.floor(rnd() * 80);
      const buf = Buffer.alloc(len);
      for (let j = 0; j < len; j++) buf[j] = rnd() < 0.3 ? 0 : Math.floor(rnd() * 256);
      if (len >= 2 && rnd() < 0.5) buf[1] = 1 + Math.floor(rnd() * 6);
      if (len >= 1 && rnd() < 0.5) buf[0] = 0;
      expect(() => decodePacket(buf)).not.toThrow();
      expect(() => ackBlock(buf)).not.toThrow();
    }
  });

  it('ackBlock fast path', () => {
    expect(ackBlock(encodeAck(513))).toBe(513);
    expect(ackBlock(Buffer.from([0, 4, 0]))).toBe(-1);
    expect(ackBlock(encodeData(1, Buffer.alloc(0)))).toBe(-1);
  });
});

describe('tftp option negotiation', () => {
  const opts = (o: Record<string, string>): Map<string, string> => new Map(Object.entries(o));

  it('clamps blksize and windowsize to the server limits', () => {
    const r = negotiateOptions(opts({ blksize: '65464', windowsize: '65535', tsize: '0', timeout: '3' }), limits);
    expect(r).toEqual({ ok: true, options: { blksize: 1468, windowsize: 64, tsize: true, timeout: 3 } });
    if (r.ok)
      expect(oackEntries(r.options, 1234)).toEqual([
        ['blksize', '1468'],
        ['tsize', '1234'],
        ['timeout', '3'],
        ['windowsize', '64'],
      ]);
  });

  it('accepts in-range values as sent and ignores unknown options', () => {
    const r = negotiateOptions(opts({ blksize: '8', windowsize: '1', multicast: '', rollover: '0' }), limits);
    expect(r).toEqual({ ok: true, options: { blksize: 8, windowsize: 1, tsize: false, timeout: undefined } });
  });

  it('no accepted options means no OACK entries', () => {
    const r = negotiateOptions(opts({ foo: 'bar' }), limits);
    expect(r.ok && oackEntries(r.options, 5)).toEqual([]);
  });

  it.each([
    ['blksize', '0'],
    ['blksize', '7'],
    ['blksize', '999999'],
    ['blksize', '-1'],
    ['blksize', '1e3'],
    ['windowsize', '0'],
    ['windowsize', '65536'],
    ['tsize', 'abc'],
    ['tsize', ''],
    ['timeout', '0'],
    ['timeout', '256'],
    ['timeout', '99999999999999999999'],
  ])('refuses %s=%s with error 8', (k, v) => {
    const r = negotiateOptions(opts({ [k]: v }), limits);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(8);
  });
});

describe('netascii', () => {
  it('maps LF to CR LF and CR to CR NUL', () => {
    expect(toNetascii(Buffer.from('a\nb\rc\r\n')).toString('latin1')).toBe('a\r\nb\r\0c\r\0\r\n');
    const plain = Buffer.from('plain');
    expect(toNetascii(plain)).toBe(plain);
  });
});
