import { describe, expect, it } from 'vitest';
import { decode, encode, makeRequest } from '../../src/dhcp/codec.js';
import { OPT } from '../../src/dhcp/options.js';
import { exitCodeOf, formatFindings } from '../../src/doctor/findings.js';
import { iptablesFindings, nftFindings, parseSs, type NeededPort } from '../../src/doctor/local.js';
import { classify, discoverPacket, probeMac, type Offer } from '../../src/doctor/responders.js';

const NEEDED: NeededPort[] = [
  { proto: 'udp', port: 67, key: 'dhcp.port' },
  { proto: 'udp', port: 69, key: 'tftp.port' },
  { proto: 'tcp', port: 8080, key: 'http.port' },
];

function offer(from: string, init: { yiaddr?: string; siaddr?: string; file?: string; options: Array<[number, Buffer]> }): Offer {
  const options = new Map<number, Buffer>([[53, Buffer.from([2])], [54, Buffer.from(from.split('.').map(Number))], ...init.options]);
  const p = makeRequest({
    chaddr: Buffer.from([2, 0, 0, 0, 0, 1]),
    xid: 7,
    op: 2,
    yiaddr: init.yiaddr ?? '0.0.0.0',
    siaddr: init.siaddr ?? '0.0.0.0',
    file: init.file ?? '',
    options,
  });
  const e = encode(p);
  if (!e.ok) throw new Error(e.detail);
  const d = decode(e.data);
  if (!d.ok) throw new Error('decode');
  return { interface: 'eth0', probe: 'pxe', from, packet: d.packet };
}

describe('pxe doctor: pure parts', () => {
  it('the probe MAC is locally administered unicast and the DISCOVERs decode as a PXE ROM and a plain client would send them', () => {
    const mac = probeMac('52:54:00:12:34:56');
    expect(mac[0]! & 0x03).toBe(0x02);
    const pxe = decode(discoverPacket('pxe', mac, 1));
    const plain = decode(discoverPacket('plain', mac, 2));
    expect(pxe.ok && pxe.packet.options.get(OPT.VENDOR_CLASS)?.toString()).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect(pxe.ok && [...(pxe.packet.options.get(OPT.CLIENT_ARCH) ?? [])]).toEqual([0, 0]);
    expect(plain.ok && plain.packet.options.has(OPT.VENDOR_CLASS)).toBe(false);
    expect(plain.ok && plain.packet.flags).toBe(0x8000);
  });

  it('parses ss listeners with their processes', () => {
    const l = parseSs(
      'UNCONN 0      0            0.0.0.0:69        0.0.0.0:*    users:(("in.tftpd",pid=1234,fd=4))\nUNCONN 0 0 [::]:69 [::]:* users:(("in.tftpd",pid=1234,fd=5),("x",pid=9,fd=1))\n',
      'udp',
    );
    expect(l).toEqual([
      { proto: 'udp', address: '0.0.0.0', port: 69, processes: [{ name: 'in.tftpd', pid: 1234 }] },
      {
        proto: 'udp',
        address: '::',
        port: 69,
        processes: [
          { name: 'in.tftpd', pid: 1234 },
          { name: 'x', pid: 9 },
        ],
      },
    ]);
  });

  it('finds nftables rules that drop pxe ports, and a drop policy without an accept', () => {
    const ruleset = [
      'table inet filter {',
      '  chain input {',
      '    type filter hook input priority filter; policy drop;',
      '    udp dport { 67, 4011 } accept',
      '    udp dport 60-70 drop',
      '  }',
      '}',
    ].join('\n');
    const f = nftFindings(ruleset, NEEDED);
    expect(f.map((x) => x.message)).toEqual([
      'nftables drops udp/67: "udp dport 60-70 drop"',
      'nftables drops udp/69: "udp dport 60-70 drop"',
      'nftables input policy is drop and no rule accepts tcp/8080',
    ]);
    expect(
      nftFindings('table inet filter {\n chain input {\n type filter hook input priority filter; policy accept;\n }\n}', NEEDED),
    ).toEqual([]);
  });

  it('finds iptables rules that drop pxe ports', () => {
    const text = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      '-A INPUT -p udp -m udp --dport 69 -j DROP',
      '-A INPUT -p tcp -m multiport --dports 80,8000:8100 -j REJECT',
      'COMMIT',
    ].join('\n');
    expect(iptablesFindings(text, NEEDED).map((x) => x.message)).toEqual([
      'iptables drops udp/69: "-A INPUT -p udp -m udp --dport 69 -j DROP"',
      'iptables drops tcp/8080: "-A INPUT -p tcp -m multiport --dports 80,8000:8100 -j REJECT"',
    ]);
  });

  it('classifies responders: no leasing server is an error, a site server pointing at us is fine, a foreign proxy is named', () => {
    const ifaces = [{ name: 'eth0', address: '10.0.0.5', mac: '52:54:00:00:00:05' }];
    const local = new Set(['10.0.0.5']);
    expect(classify(ifaces, [], local).map((f) => f.severity)).toEqual(['error']);
    const site = offer('10.0.0.1', {
      yiaddr: '10.0.0.50',
      siaddr: '10.0.0.5',
      file: 'pxelinux.0',
      options: [
        [OPT.ROUTER, Buffer.from([10, 0, 0, 1])],
        [6, Buffer.from([10, 0, 0, 1])],
      ],
    });
    const rogue = offer('10.0.0.9', { siaddr: '10.0.0.9', file: 'evil.0', options: [[OPT.VENDOR_CLASS, Buffer.from('PXEClient')]] });
    const f = classify(ifaces, [site, rogue], local);
    expect(f.map((x) => `${x.severity} ${x.message}`)).toEqual([
      'ok eth0: DHCP server 10.0.0.1 offers addresses (10.0.0.50), router 10.0.0.1, name server 10.0.0.1',
      'ok eth0: DHCP server 10.0.0.1 points PXE clients at this host (next-server 10.0.0.5, boot file "pxelinux.0")',
      `error eth0: another proxyDHCP/PXE server at 10.0.0.9 answers PXE clients (next-server 10.0.0.9, boot file "evil.0"): machines may boot its file instead of pxe's`,
    ]);
    expect(exitCodeOf(f)).toBe(1);
    expect(formatFindings(f).split('\n')[0]).toMatch(/^ERROR dhcp +eth0: another proxyDHCP/);
  });
});
