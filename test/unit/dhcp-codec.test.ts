import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOTP_MIN_LEN, decode, encode, makeRequest, type DhcpPacket } from '../../src/dhcp/codec.js';
import * as o from '../../src/dhcp/options.js';

const FIX = join(import.meta.dirname, '../fixtures/dhcp');
const captures = readdirSync(FIX)
  .filter((f) => f.endsWith('.bin'))
  .map((f) => f.slice(0, -4));

interface Expected {
  header: Record<string, unknown>;
  options: Record<string, string>;
  typed: Record<string, unknown>;
}

function mustDecode(b: Buffer): DhcpPacket {
  const r = decode(b);
  if (!r.ok) throw new Error(`decode failed: ${r.error} ${r.detail}`);
  return r.packet;
}

describe('codec on real captures (QEMU iPXE BIOS/EFI, OVMF native PXE, dnsmasq replies)', () => {
  it('has the captures', () => {
    expect(captures.length).toBeGreaterThanOrEqual(15);
  });

  for (const name of captures) {
    it(`decodes ${name} as recorded`, () => {
      const raw = readFileSync(join(FIX, `${name}.bin`));
      const exp = JSON.parse(readFileSync(join(FIX, `${name}.json`), 'utf8')) as Expected;
      const p = mustDecode(raw);
      expect({
        op: p.op,
        htype: p.htype,
        hlen: p.hlen,
        hops: p.hops,
        xid: p.xid,
        secs: p.secs,
        flags: p.flags,
        ciaddr: p.ciaddr,
        yiaddr: p.yiaddr,
        siaddr: p.siaddr,
        giaddr: p.giaddr,
        chaddr: p.chaddr.toString('hex'),
        sname: p.sname,
        file: p.file,
      }).toEqual(exp.header);
      expect(Object.fromEntries([...p.options].map(([k, v]) => [String(k), v.toString('hex')]))).toEqual(exp.options);
      expect({
        messageType: o.messageType(p) ?? null,
        serverId: o.serverId(p) ?? null,
        vendorClass: o.vendorClass(p) ?? null,
        arch: o.clientArch(p) ?? null,
        ndi: o.clientNdi(p) ?? null,
        uuid: o.clientUuid(p) ?? null,
        isIpxe: o.isIpxeUserClass(p),
        ipxeVersion: o.ipxeVersion(p) ?? null,
        discoveryControl: o.pxeDiscoveryControl(p) ?? null,
        bootItem: o.pxeBootItem(p) ?? null,
      }).toEqual(exp.typed);
    });

    it(`round-trips ${name}: decode(encode(decode(x))) == decode(x)`, () => {
      const p = mustDecode(readFileSync(join(FIX, `${name}.bin`)));
      const enc = encode(p, { maxSize: 1500 });
      if (!enc.ok) throw new Error(enc.detail);
      expect(enc.data.length).toBeGreaterThanOrEqual(BOOTP_MIN_LEN);
      expect(mustDecode(enc.data)).toEqual(p);
    });
  }

  it('reads the iPXE 175 encapsulation and the raw (non-RFC 3004) option 77', () => {
    const p = mustDecode(readFileSync(join(FIX, 'ipxe-bios-discover.bin')));
    const enc = o.ipxeEncapsulated(p);
    expect(enc?.get(177)?.toString('hex')).toBe('011af41000'); // bus id: PCI 1af4:1000 (virtio-net)
    expect(o.userClass(p)).toEqual({ raw: 'iPXE', classes: undefined });
    expect(o.paramRequestList(p)).toContain(175);
  });

  it('dnsmasq menu offer: option 43 sub-options parse', () => {
    const p = mustDecode(readFileSync(join(FIX, 'dnsmasq-bios-offer.bin')));
    const sub = o.pxeVendorOptions(p);
    expect(sub?.get(6)?.toString('hex')).toBe('03');
    expect(sub?.get(10)?.toString('latin1', 1)).toBe('PXE');
    expect(sub?.get(9)?.toString('latin1', 3)).toBe('Network boot');
  });
});

/** Hand-built packets for the edge cases real clients rarely produce. */
function rawPacket(opts: number[], patch?: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(240 + opts.length);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  b.writeUInt32BE(0x01020304, 4);
  Buffer.from('525400aabbcc', 'hex').copy(b, 28);
  b.writeUInt32BE(0x63825363, 236);
  Buffer.from(opts).copy(b, 240);
  patch?.(b);
  return b;
}

describe('codec edge cases', () => {
  it('skips pad bytes anywhere (a pad is 1 byte, not a TLV)', () => {
    const p = mustDecode(rawPacket([0, 0, 53, 1, 1, 0, 60, 3, 0x41, 0x42, 0x43, 0, 255]));
    expect(o.messageType(p)).toBe(1);
    expect(o.vendorClass(p)).toBe('ABC');
    expect([...p.options.keys()]).toEqual([53, 60]);
  });

  it('ignores everything after the end option', () => {
    const p = mustDecode(rawPacket([53, 1, 1, 255, 60, 200, 1, 2]));
    expect([...p.options.keys()]).toEqual([53]);
  });

  it('tolerates a missing end option when TLVs fill the area exactly', () => {
    const p = mustDecode(rawPacket([53, 1, 3]));
    expect(o.messageType(p)).toBe(3);
  });

  it('concatenates repeated options in order (RFC 3396)', () => {
    const p = mustDecode(rawPacket([60, 3, 0x50, 0x58, 0x45, 53, 1, 1, 60, 6, 0x43, 0x6c, 0x69, 0x65, 0x6e, 0x74, 255]));
    expect(o.vendorClass(p)).toBe('PXEClient');
  });

  it('encodes long options as several instances and decodes them back (RFC 3396 §7)', () => {
    const big = Buffer.alloc(600, 0x61);
    const p = makeRequest({ xid: 7, chaddr: Buffer.from('525400000001', 'hex') });
    p.options.set(53, Buffer.from([1]));
    p.options.set(224, big);
    const enc = encode(p, { maxSize: 1500 });
    if (!enc.ok) throw new Error(enc.detail);
    // 600 bytes need three instances: 255 + 255 + 90
    expect(enc.data.subarray(243, 245)).toEqual(Buffer.from([224, 255]));
    expect(mustDecode(enc.data).options.get(224)).toEqual(big);
  });

  it('option overload 52 = 3: options continue in file then sname', () => {
    const b = rawPacket([53, 1, 1, 52, 1, 3, 255], (buf) => {
      // file (offset 108): option 60 "PXE"
      Buffer.from([60, 3, 0x50, 0x58, 0x45, 255]).copy(buf, 108);
      // sname (offset 44): more of option 60 ("Client") then option 93 = 7
      Buffer.from([60, 6, 0x43, 0x6c, 0x69, 0x65, 0x6e, 0x74, 93, 2, 0, 7, 255]).copy(buf, 44);
    });
    const p = mustDecode(b);
    expect(o.vendorClass(p)).toBe('PXEClient');
    expect(o.clientArch(p)).toBe(7);
    expect(p.file).toBe('');
    expect(p.sname).toBe('');
  });

  it('option overload 52 = 1 uses file only; sname stays a string', () => {
    const b = rawPacket([52, 1, 1, 53, 1, 1, 255], (buf) => {
      Buffer.from('myserver').copy(buf, 44);
      Buffer.from([93, 2, 0, 0, 255]).copy(buf, 108);
    });
    const p = mustDecode(b);
    expect(o.clientArch(p)).toBe(0);
    expect(p.sname).toBe('myserver');
    expect(p.file).toBe('');
  });

  it('rejects a bad overload value', () => {
    const r = decode(rawPacket([52, 1, 4, 53, 1, 1, 255]));
    expect(r).toMatchObject({ ok: false, error: 'bad-overload' });
  });

  it('rejects a truncated TLV inside an overloaded file field', () => {
    const r = decode(
      rawPacket([52, 1, 1, 255], (buf) => {
        buf[108 + 126] = 60;
        buf[108 + 127] = 9; // declares 9 bytes, the field ends here
      }),
    );
    expect(r).toMatchObject({ ok: false, error: 'truncated-option' });
  });

  it('rejects a TLV whose length runs past the datagram', () => {
    expect(decode(rawPacket([53, 1, 1, 60, 200, 0x50, 0x58]))).toMatchObject({ ok: false, error: 'truncated-option' });
  });

  it('rejects an option code with no length byte', () => {
    expect(decode(rawPacket([53, 1, 1, 60]))).toMatchObject({ ok: false, error: 'truncated-option' });
  });

  it('rejects hlen 17', () => {
    expect(decode(rawPacket([53, 1, 1, 255], (b) => (b[2] = 17)))).toMatchObject({ ok: false, error: 'bad-hlen' });
  });

  it('accepts hlen 16 and 0 and slices chaddr by hlen', () => {
    const p16 = mustDecode(rawPacket([255], (b) => (b[2] = 16)));
    expect(p16.chaddr.length).toBe(16);
    const p0 = mustDecode(rawPacket([255], (b) => (b[2] = 0)));
    expect(p0.chaddr.length).toBe(0);
  });

  it('rejects a bad magic cookie', () => {
    expect(decode(rawPacket([255], (b) => b.writeUInt32BE(0xdeadbeef, 236)))).toMatchObject({
      ok: false,
      error: 'bad-cookie',
    });
  });

  it('rejects short packets (0, 6, 235, 239 bytes) without throwing', () => {
    for (const n of [0, 6, 235, 239]) {
      expect(decode(rawPacket([255]).subarray(0, n))).toMatchObject({ ok: false, error: 'too-short' });
    }
  });

  it('accepts exactly 240 bytes (header + cookie, no options)', () => {
    const p = mustDecode(rawPacket([]));
    expect(p.options.size).toBe(0);
  });

  it('rejects op values other than 1 and 2', () => {
    expect(decode(rawPacket([255], (b) => (b[0] = 3)))).toMatchObject({ ok: false, error: 'bad-op' });
  });

  it('typed accessors return undefined for wrong lengths instead of throwing', () => {
    const p = mustDecode(rawPacket([53, 2, 1, 1, 54, 3, 1, 2, 3, 93, 3, 0, 0, 7, 94, 2, 1, 2, 97, 16, ...Array<number>(16).fill(0), 255]));
    expect(o.messageType(p)).toBeUndefined();
    expect(o.serverId(p)).toBeUndefined();
    expect(o.clientArch(p)).toBeUndefined();
    expect(o.clientNdi(p)).toBeUndefined();
    expect(o.clientUuid(p)).toBeUndefined();
  });

  it('user class: RFC 3004 framing is understood too', () => {
    const p = mustDecode(rawPacket([77, 10, 4, 0x69, 0x50, 0x58, 0x45, 4, 0x74, 0x65, 0x73, 0x74, 255]));
    expect(o.userClass(p)?.classes).toEqual(['iPXE', 'test']);
    expect(o.isIpxeUserClass(p)).toBe(true);
  });

  it('uuid is formatted in wire order, lower-case, dashed', () => {
    const uuid = Buffer.from('b8945908d6a641a9611d74a6ab80b83d', 'hex');
    const p = mustDecode(rawPacket([97, 17, 0, ...uuid, 255]));
    expect(o.clientUuid(p)).toBe('b8945908-d6a6-41a9-611d-74a6ab80b83d');
  });

  it('option 43 sub-options: built with an end tag, parsed back, truncation reported', () => {
    const enc = o.encodeSubOptions([
      [6, Buffer.from([8])],
      [71, Buffer.from([0x80, 0, 0, 0])],
    ]);
    expect(enc.toString('hex')).toBe('060108470480000000ff');
    const back = o.parseSubOptions(enc);
    expect(back.ok && [...back.sub.keys()]).toEqual([6, 71]);
    expect(o.parseSubOptions(Buffer.from([6, 5, 1]))).toMatchObject({ ok: false, error: 'truncated-suboption' });
  });
});

describe('encoder', () => {
  it('pads replies to 300 bytes and starts options with 53', () => {
    const p = makeRequest({ xid: 0xdeadbeef, chaddr: Buffer.from('525400123456', 'hex') });
    p.op = 2;
    p.options.set(54, Buffer.from([10, 0, 0, 1]));
    p.options.set(53, Buffer.from([2]));
    const r = encode(p);
    if (!r.ok) throw new Error(r.detail);
    expect(r.data.length).toBe(300);
    expect([...r.data.subarray(240, 243)]).toEqual([53, 1, 2]);
    expect(r.data.readUInt32BE(4)).toBe(0xdeadbeef);
  });

  it('refuses fields that do not fit and bad addresses, without throwing', () => {
    const base = makeRequest({ xid: 1, chaddr: Buffer.alloc(6) });
    expect(encode({ ...base, file: 'x'.repeat(128) })).toMatchObject({ ok: false, error: 'field-too-long' });
    expect(encode({ ...base, sname: 'x'.repeat(64) })).toMatchObject({ ok: false, error: 'field-too-long' });
    expect(encode({ ...base, siaddr: '10.0.0.256' })).toMatchObject({ ok: false, error: 'bad-address' });
    expect(encode({ ...base, chaddr: Buffer.alloc(17) })).toMatchObject({ ok: false, error: 'bad-chaddr' });
    const big = { ...base, options: new Map([[224, Buffer.alloc(400)]]) };
    expect(encode(big)).toMatchObject({ ok: false, error: 'too-large' });
  });

  it('keeps a 127-byte file (plus its NUL)', () => {
    const base = makeRequest({ xid: 1, chaddr: Buffer.alloc(6) });
    const r = encode({ ...base, file: 'f'.repeat(127) });
    if (!r.ok) throw new Error(r.detail);
    expect(mustDecode(r.data).file).toBe('f'.repeat(127));
  });
});
