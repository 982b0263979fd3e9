import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DhcpBootDecision } from '../../src/boot/types.js';
import { decode, encode, makeRequest, type DhcpPacket } from '../../src/dhcp/codec.js';
import { buildReply, classify, toDhcpClient, type ClassifyOptions } from '../../src/dhcp/pxe.js';
import { mutate, prng } from '../../bench/fuzz/mutate.js';
import { MAX_TEMPLATES, ReplyTemplates } from '../../src/dhcp/template.js';

const FIX = join(import.meta.dirname, '../fixtures/dhcp');
const SERVER = '10.77.0.10';
type Boot = Extract<DhcpBootDecision, { action: 'boot' }>;

/** Encode a request the way a client would send it and decode it the way the proxy does. */
function wire(p: DhcpPacket): { raw: Buffer; req: DhcpPacket } {
  const e = encode(p, { maxSize: 1472 });
  if (!e.ok) throw new Error(e.detail);
  const d = decode(e.data);
  if (!d.ok) throw new Error(d.detail);
  return { raw: e.data, req: d.packet };
}

function request(o: {
  arch?: number;
  vendor?: string;
  mt?: number;
  xid: number;
  mac: number;
  flags?: number;
  ciaddr?: string;
  giaddr?: string;
  uuid?: Buffer;
  ipxe?: boolean;
  item?: Buffer;
}): { raw: Buffer; req: DhcpPacket } {
  const p = makeRequest({
    xid: o.xid,
    chaddr: Buffer.from([0x52, 0x54, 0, 1, (o.mac >> 8) & 255, o.mac & 255]),
    flags: o.flags ?? 0x8000,
    ciaddr: o.ciaddr ?? '0.0.0.0',
    giaddr: o.giaddr ?? '0.0.0.0',
  });
  p.options.set(53, Buffer.from([o.mt ?? 1]));
  const vendor = o.vendor ?? 'PXEClient';
  p.options.set(60, Buffer.from(o.arch === undefined ? vendor : `${vendor}:Arch:${String(o.arch).padStart(5, '0')}:UNDI:003016`));
  if (o.arch !== undefined) p.options.set(93, Buffer.from([o.arch >> 8, o.arch & 255]));
  if (o.uuid) p.options.set(97, o.uuid);
  if (o.ipxe) p.options.set(77, Buffer.from('iPXE'));
  if (o.item) p.options.set(43, Buffer.from([71, 4, ...o.item, 255]));
  return wire(p);
}

/** Slow path vs template path for one request; returns the template bytes. */
function both(t: ReplyTemplates, x: { raw: Buffer; req: DhcpPacket }, port: 'dhcp' | 'pxe', d: Boot, allowHttp = false): Buffer {
  const opts: ClassifyOptions = { port, allowHttpClient: allowHttp, isOwnAddress: (ip) => ip === SERVER };
  const c = classify(x.req, opts);
  if (!c.answer) throw new Error(`not answered: ${c.reason}`);
  const ctx = { reply: c.reply, vendor: c.vendor, client: toDhcpClient(x.req, '0.0.0.0', SERVER), serverId: SERVER };
  const slow = encode(buildReply(x.req, d, ctx), { maxSize: 1472 });
  const fast = t.encodeReply(x.raw, x.req, d, ctx, 1472);
  expect(fast.ok).toBe(true);
  expect(slow.ok).toBe(true);
  if (!fast.ok || !slow.ok) throw new Error('encode failed');
  expect(fast.data.toString('hex')).toBe(slow.data.toString('hex'));
  return fast.data;
}

const BOOT: Boot = { action: 'boot', bootFile: 'pxelinux.0', nextServer: SERVER, reason: 't' };
const uuidA = Buffer.from('00' + '11'.repeat(16), 'hex');
const uuidB = Buffer.from('00' + 'a5'.repeat(16), 'hex');

describe('reply templates are byte-identical to buildReply + encode', () => {
  const cases: Array<{ name: string; arch?: number; vendor?: string; ipxe?: boolean; http?: boolean }> = [
    { name: 'bios (93 = 0)', arch: 0 },
    { name: 'PXE 2.0 ROM without 93', arch: undefined },
    { name: 'efi-ia32 (93 = 6)', arch: 6 },
    { name: 'efi-x64 (93 = 7)', arch: 7 },
    { name: 'efi-x64 EFI BC (93 = 9)', arch: 9 },
    { name: 'efi-arm64 (93 = 11)', arch: 11 },
    { name: 'iPXE (77)', arch: 7, ipxe: true },
    { name: 'UEFI HTTP boot (60 HTTPClient, 93 = 16)', arch: 16, vendor: 'HTTPClient', http: true },
  ];
  for (const c of cases) {
    it(`${c.name}: OFFER on 67, with and without 97, relayed and not`, () => {
      const t = new ReplyTemplates();
      const base = { arch: c.arch, vendor: c.vendor, ipxe: c.ipxe };
      // The first request of each shape builds the template; the following ones are patched from it.
      const reqs = [
        request({ ...base, xid: 0x01020304, mac: 1 }),
        request({ ...base, xid: 0xfedcba98, mac: 2, flags: 0 }),
        request({ ...base, xid: 0x7fffffff, mac: 3, uuid: uuidA }),
        request({ ...base, xid: 0x80000001, mac: 4, uuid: uuidB, giaddr: '10.1.2.3' }),
        request({ ...base, xid: 5, mac: 5, giaddr: '10.9.8.7', ciaddr: '10.9.8.100', flags: 0 }),
      ];
      const outs = reqs.map((r) => both(t, r, 'dhcp', BOOT, c.http));
      expect(t.hits).toBe(3);
      expect(t.misses).toBe(2);
      // Patched, not stale: each reply carries its own request's xid and MAC.
      expect(outs[1]?.readUInt32BE(4)).toBe(0xfedcba98);
      expect(outs[1]?.[33]).toBe(2);
    });

    if (!c.http) {
      it(`${c.name}: ACK on 4011, echoing the boot item or the default one`, () => {
        const t = new ReplyTemplates();
        const base = { arch: c.arch, vendor: c.vendor, ipxe: c.ipxe, mt: 3, flags: 0 };
        const reqs = [
          request({ ...base, xid: 11, mac: 1, ciaddr: '10.77.0.50', uuid: uuidA }),
          request({ ...base, xid: 0xdeadbeef, mac: 2, ciaddr: '10.77.0.51', uuid: uuidB, item: Buffer.from([0x80, 0x01, 0, 0]) }),
          request({ ...base, xid: 13, mac: 3, ciaddr: '10.77.0.52', uuid: uuidA, item: Buffer.from([0, 7, 0, 1]) }),
          request({ ...base, xid: 14, mac: 4, ciaddr: '10.77.0.53', uuid: uuidB }),
        ];
        for (const r of reqs) both(t, r, 'pxe', BOOT);
        expect(t.hits).toBe(3);
      });
    }
  }

  it('long boot file (option 67), server name, other next-server: one template each', () => {
    const t = new ReplyTemplates();
    const long: Boot = { ...BOOT, bootFile: `http://10.77.0.10/boot.ipxe?mac=${'x'.repeat(140)}` };
    const named: Boot = { ...BOOT, serverName: 'tftp1', nextServer: '10.77.0.11' };
    for (const d of [long, named, long, named, BOOT, BOOT])
      both(t, request({ arch: 0, xid: Math.floor(Math.random() * 2 ** 32), mac: 9 }), 'dhcp', d);
    expect(t.misses).toBe(3);
    expect(t.hits).toBe(3);
  });

  it('the captured firmware requests (iPXE, OVMF) give identical replies from the template', () => {
    const t = new ReplyTemplates();
    const files = readdirSync(FIX).filter((f) => /-(discover|request|pxebs).*\.bin$/.test(f));
    expect(files.length).toBeGreaterThan(3);
    let answered = 0;
    for (let round = 0; round < 2; round++) {
      for (const f of files) {
        const raw = readFileSync(join(FIX, f));
        const d = decode(raw);
        if (!d.ok) throw new Error(d.detail);
        for (const port of ['dhcp', 'pxe'] as const) {
          const c = classify(d.packet, { port, allowHttpClient: true, isOwnAddress: (ip) => ip === SERVER });
          if (!c.answer) continue;
          answered++;
          both(t, { raw, req: d.packet }, port, BOOT, true);
        }
      }
    }
    expect(answered).toBeGreaterThan(4);
    expect(t.hits).toBeGreaterThan(0);
  });

  it("mutated captures (the fuzzer's mutations, fixed seed): every answered mutant gets the slow path's bytes", () => {
    const t = new ReplyTemplates();
    const bases = readdirSync(FIX)
      .filter((f) => /-(discover|request|pxebs).*\.bin$/.test(f))
      .map((f) => readFileSync(join(FIX, f)));
    const rnd = prng(4011);
    let answered = 0;
    for (let i = 0; i < 3000; i++) {
      const base = bases[i % bases.length];
      if (!base) continue;
      const { data } = mutate(base, rnd);
      const d = decode(data);
      if (!d.ok) continue;
      for (const port of ['dhcp', 'pxe'] as const) {
        const c = classify(d.packet, { port, allowHttpClient: true, isOwnAddress: (ip) => ip === SERVER });
        if (!c.answer) continue;
        const ctx = { reply: c.reply, vendor: c.vendor, client: toDhcpClient(d.packet, '0.0.0.0', SERVER), serverId: SERVER };
        const slow = encode(buildReply(d.packet, BOOT, ctx), { maxSize: 1472 });
        const fast = t.encodeReply(data, d.packet, BOOT, ctx, 1472);
        expect(fast.ok).toBe(slow.ok);
        if (fast.ok && slow.ok) expect(fast.data.toString('hex')).toBe(slow.data.toString('hex'));
        answered++;
      }
    }
    expect(answered).toBeGreaterThan(500);
    expect(t.hits).toBeGreaterThan(100);
  });

  it('stays bounded with many shapes (per-host boot files)', () => {
    const t = new ReplyTemplates();
    for (let i = 0; i < MAX_TEMPLATES * 3; i++) {
      both(t, request({ arch: 0, xid: i + 1, mac: i }), 'dhcp', { ...BOOT, bootFile: `host-${i}.0` });
    }
    // Every shape was new: all misses, and the (private) list never exceeded the bound.
    expect(t.misses).toBe(MAX_TEMPLATES * 3);
    expect((t as unknown as { list: unknown[] }).list.length).toBe(MAX_TEMPLATES);
  });
});
