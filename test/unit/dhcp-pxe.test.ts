import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decode, encode, makeRequest, type DhcpPacket } from '../../src/dhcp/codec.js';
import * as o from '../../src/dhcp/options.js';
import { buildReply, classify, replyDestination, toDhcpClient, type ClassifyOptions } from '../../src/dhcp/pxe.js';

const FIX = join(import.meta.dirname, '../fixtures/dhcp');
const capture = (name: string): DhcpPacket => {
  const r = decode(readFileSync(join(FIX, `${name}.bin`)));
  if (!r.ok) throw new Error(r.detail);
  return r.packet;
};
const SERVER = '10.77.0.10';
const opts67: ClassifyOptions = { port: 'dhcp', allowHttpClient: false, isOwnAddress: (ip) => ip === SERVER };
const opts4011: ClassifyOptions = { ...opts67, port: 'pxe' };

function crafted(arch: number | undefined, extra: Array<[number, Buffer]> = [], vendor = 'PXEClient'): DhcpPacket {
  const p = makeRequest({ xid: 0x11223344, chaddr: Buffer.from('5254000a0b0c', 'hex'), flags: 0x8000 });
  p.options.set(53, Buffer.from([1]));
  const v = arch === undefined ? vendor : `${vendor}:Arch:${String(arch).padStart(5, '0')}:UNDI:003000`;
  p.options.set(60, Buffer.from(v));
  if (arch !== undefined) p.options.set(93, Buffer.from([arch >> 8, arch & 255]));
  for (const [k, val] of extra) p.options.set(k, val);
  return p;
}

/** Build the reply the proxy would send for `req`, with the booter choosing `file`. */
function reply(req: DhcpPacket, kind: 'offer' | 'ack', file = 'boot.file', allowHttp = false): DhcpPacket {
  const c = classify(req, { ...(kind === 'offer' ? opts67 : opts4011), allowHttpClient: allowHttp });
  if (!c.answer) throw new Error(`not answered: ${c.reason}`);
  const client = toDhcpClient(req, '0.0.0.0', SERVER);
  const r = buildReply(
    req,
    { action: 'boot', bootFile: file, nextServer: SERVER, reason: 't' },
    { reply: c.reply, vendor: c.vendor, client, serverId: SERVER },
  );
  // Always check the bytes survive the codec, as the proxy sends them.
  const enc = encode(r);
  if (!enc.ok) throw new Error(enc.detail);
  const back = decode(enc.data);
  if (!back.ok) throw new Error(back.detail);
  expect(back.packet).toEqual(r);
  return back.packet;
}

function commonReplyChecks(req: DhcpPacket, r: DhcpPacket, mt: number): void {
  expect(r.op).toBe(2);
  expect(r.xid).toBe(req.xid);
  expect(r.chaddr).toEqual(req.chaddr);
  expect(r.yiaddr).toBe('0.0.0.0');
  expect(r.siaddr).toBe(SERVER);
  expect(o.messageType(r)).toBe(mt);
  expect(o.serverId(r)).toBe(SERVER);
}

describe('classify: who gets an answer', () => {
  it('answers the real iPXE BIOS, iPXE EFI and OVMF DISCOVERs on 67', () => {
    for (const n of ['ipxe-bios-discover', 'ipxe-efi-discover', 'ovmf-pxe-discover']) {
      expect(classify(capture(n), opts67)).toEqual({ answer: true, reply: 'offer', vendor: 'PXEClient' });
    }
  });

  it('answers the real 4011 REQUESTs (iPXE PXEBS, iPXE EFI, OVMF native) with an ACK', () => {
    for (const n of ['ipxe-bios-pxebs-4011', 'ipxe-efi-request-4011', 'ovmf-pxe-request-4011']) {
      expect(classify(capture(n), opts4011)).toEqual({ answer: true, reply: 'ack', vendor: 'PXEClient' });
    }
  });

  it('stays silent for REQUESTs on 67 that select the site server', () => {
    for (const n of ['ipxe-bios-request', 'ovmf-pxe-request']) {
      expect(classify(capture(n), opts67)).toEqual({ answer: false, reason: 'other-server' });
    }
  });

  it('ACKs a PXE REQUEST on 67 that names us or no server', () => {
    const req = crafted(0);
    req.options.set(53, Buffer.from([3]));
    expect(classify(req, opts67)).toMatchObject({ answer: true, reply: 'ack' });
    req.options.set(54, Buffer.from([10, 77, 0, 10]));
    expect(classify(req, opts67)).toMatchObject({ answer: true, reply: 'ack' });
  });

  it('stays silent for an INIT-REBOOT lease confirmation (50 set, no 54) even from a PXE client', () => {
    const req = capture('ipxe-bios-request');
    req.options.delete(54);
    expect(classify(req, opts67)).toEqual({ answer: false, reason: 'lease-request' });
  });

  it('ignores a plain DHCP client (OVMF Ip4Dxe, no option 60)', () => {
    expect(classify(capture('ovmf-ip4-discover'), opts67)).toEqual({ answer: false, reason: 'not-pxe' });
  });

  it('never answers BOOTREPLYs (e.g. a dnsmasq offer looped back)', () => {
    expect(classify(capture('dnsmasq-bios-offer'), opts67)).toEqual({ answer: false, reason: 'bootreply' });
  });

  it('never answers INFORM, RELEASE, DECLINE', () => {
    for (const mt of [4, 7, 8]) {
      const p = crafted(0);
      p.options.set(53, Buffer.from([mt]));
      expect(classify(p, opts67)).toEqual({ answer: false, reason: 'message-type' });
    }
  });

  it('ignores BOOTP (no option 53) and DISCOVER on 4011', () => {
    const p = crafted(0);
    p.options.delete(53);
    expect(classify(p, opts67)).toEqual({ answer: false, reason: 'no-message-type' });
    expect(classify(crafted(0), opts4011)).toEqual({ answer: false, reason: 'wrong-port' });
  });

  it('HTTPClient only when enabled', () => {
    const p = crafted(16, [], 'HTTPClient');
    expect(classify(p, opts67)).toEqual({ answer: false, reason: 'not-pxe' });
    expect(classify(p, { ...opts67, allowHttpClient: true })).toMatchObject({ answer: true, vendor: 'HTTPClient' });
  });
});

describe('toDhcpClient', () => {
  it('maps the real captures to firmware, iPXE flag, uuid', () => {
    expect(toDhcpClient(capture('ipxe-bios-discover'), '0.0.0.0', SERVER)).toEqual({
      mac: '52:54:00:12:34:56',
      arch: 0,
      firmware: 'bios',
      isIpxe: true,
      vendorClass: 'PXEClient:Arch:00000:UNDI:002001',
      uuid: '00000000-0000-0000-0000-000000000000',
      sourceAddress: '0.0.0.0',
      relayAddress: undefined,
      serverAddress: SERVER,
    });
    const ovmf = toDhcpClient(capture('ovmf-pxe-discover'), '0.0.0.0', SERVER);
    expect([ovmf.firmware, ovmf.isIpxe, ovmf.arch]).toEqual(['efi-x64', false, 7]);
  });

  it('takes the arch from option 60 when 93 is missing and reports the relay', () => {
    const p = crafted(undefined, [], 'PXEClient:Arch:00009:UNDI:003000');
    p.giaddr = '10.9.9.1';
    const c = toDhcpClient(p, '10.9.9.1', SERVER);
    expect([c.arch, c.firmware, c.relayAddress]).toEqual([9, 'efi-x64', '10.9.9.1']);
  });
});

describe('buildReply per firmware', () => {
  it('BIOS (93=0): OFFER with file, 43 = {6:8}, 60, 97 echoed', () => {
    const uuid = Buffer.from('00b8945908d6a641a9611d74a6ab80b83d', 'hex');
    const req = crafted(0, [[97, uuid]]);
    const r = reply(req, 'offer', 'pxelinux.0');
    commonReplyChecks(req, r, 2);
    expect(r.file).toBe('pxelinux.0');
    expect(o.vendorClass(r)).toBe('PXEClient');
    expect(r.options.get(97)).toEqual(uuid);
    expect(r.options.get(43)?.toString('hex')).toBe('060108ff');
    expect(r.flags).toBe(0x8000);
    expect(r.ciaddr).toBe('0.0.0.0');
  });

  it('no 97 in the request: no 97 in the reply (Intel ROMs without UUID, pixiecore#21)', () => {
    const r = reply(crafted(0), 'offer');
    expect(r.options.has(97)).toBe(false);
  });

  for (const arch of [7, 9, 11, 6]) {
    it(`UEFI (93=${arch}): OFFER has siaddr+file but no option 43, so EDK2 goes to 4011`, () => {
      const req = crafted(arch);
      const r = reply(req, 'offer', 'syslinux.efi');
      commonReplyChecks(req, r, 2);
      expect(r.file).toBe('syslinux.efi');
      expect(r.options.has(43)).toBe(false);
      expect(o.vendorClass(r)).toBe('PXEClient');
    });
  }

  it('UEFI 4011 ACK (real OVMF request): file, 60, 97, 43 = {71: 0x8000/0}', () => {
    const req = capture('ovmf-pxe-request-4011');
    const r = reply(req, 'ack', 'syslinux.efi');
    commonReplyChecks(req, r, 5);
    expect(r.file).toBe('syslinux.efi');
    expect(r.ciaddr).toBe('10.77.0.111');
    expect(r.options.get(97)?.length).toBe(17);
    expect(r.options.get(43)?.toString('hex')).toBe('470480000000ff');
  });

  it('iPXE PXEBS 4011 REQUEST (real): the requested boot item is echoed', () => {
    const req = capture('ipxe-bios-pxebs-4011');
    req.options.set(43, Buffer.from('470480010000ff', 'hex'));
    const r = reply(req, 'ack');
    expect(o.pxeBootItem(r)).toEqual({ type: 0x8001, layer: 0 });
  });

  it('iPXE (77 = iPXE, real EFI capture): what the booter said, with 43 = {6:8}', () => {
    const req = capture('ipxe-efi-discover');
    const url = 'http://10.77.0.10:8080/boot.ipxe';
    const r = reply(req, 'offer', url);
    commonReplyChecks(req, r, 2);
    expect(r.file).toBe(url);
    expect(o.pxeDiscoveryControl(r)).toBe(8);
  });

  it('iPXE: a boot URL longer than 127 bytes goes in option 67', () => {
    const url = `http://10.77.0.10:8080/boot.ipxe?${'x'.repeat(150)}`;
    const r = reply(capture('ipxe-bios-discover'), 'offer', url);
    expect(r.file).toBe('');
    expect(r.options.get(67)?.toString()).toBe(url);
  });

  it('UEFI HTTP boot (HTTPClient, 93=16): 60 = HTTPClient, URL in file, no 43', () => {
    const req = crafted(16, [], 'HTTPClient');
    const r = reply(req, 'offer', 'http://10.77.0.10/ipxe.efi', true);
    commonReplyChecks(req, r, 2);
    expect(o.vendorClass(r)).toBe('HTTPClient');
    expect(r.file).toBe('http://10.77.0.10/ipxe.efi');
    expect(r.options.has(43)).toBe(false);
  });

  it('sname from the booter is carried', () => {
    const req = crafted(0);
    const client = toDhcpClient(req, '0.0.0.0', SERVER);
    const r = buildReply(
      req,
      { action: 'boot', bootFile: 'f', nextServer: '10.0.0.5', serverName: 'tftp1', reason: '' },
      { reply: 'offer', vendor: 'PXEClient', client, serverId: SERVER },
    );
    expect([r.sname, r.siaddr, o.serverId(r)]).toEqual(['tftp1', '10.0.0.5', SERVER]);
  });
});

describe('replyDestination', () => {
  const from = { address: '10.1.1.7', port: 68 };
  it('port 67: broadcast to 255.255.255.255:68 for clients without an address', () => {
    expect(replyDestination(crafted(0), 'dhcp', { address: '0.0.0.0', port: 68 })).toEqual({
      address: '255.255.255.255',
      port: 68,
      broadcast: true,
    });
  });
  it('port 67 relayed: unicast to giaddr:67', () => {
    const p = crafted(0);
    p.giaddr = '10.2.0.1';
    expect(replyDestination(p, 'dhcp', from)).toEqual({ address: '10.2.0.1', port: 67, broadcast: false });
  });
  it('port 67 with ciaddr and no broadcast flag: unicast to ciaddr:68', () => {
    const p = crafted(0);
    p.flags = 0;
    p.ciaddr = '10.1.1.7';
    expect(replyDestination(p, 'dhcp', from)).toEqual({ address: '10.1.1.7', port: 68, broadcast: false });
    p.flags = 0x8000;
    expect(replyDestination(p, 'dhcp', from).broadcast).toBe(true);
  });
  it('port 4011: back to the sender address and port (OVMF sends from 4011)', () => {
    expect(replyDestination(capture('ovmf-pxe-request-4011'), 'pxe', { address: '10.77.0.111', port: 4011 })).toEqual({
      address: '10.77.0.111',
      port: 4011,
      broadcast: false,
    });
  });
});
