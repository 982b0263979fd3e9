/**
 * Regression on replies that real firmware booted from (see
 * test/fixtures/dhcp/lab/README.md): rebuild each reply from the captured request
 * with the real policy and the pure builder, and compare bytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config.js';
import { decode, encode } from '../../src/dhcp/codec.js';
import { buildReply, classify, replyDestination, toDhcpClient } from '../../src/dhcp/pxe.js';
import { PolicyBooter } from '../../src/boot/booter.js';

const LAB = join(import.meta.dirname, '../fixtures/dhcp/lab');
const SERVER = '10.77.0.10';
const booter = new PolicyBooter({ dhcp: configSchema.parse({}).dhcp });

const cases = [
  {
    name: 'SeaBIOS iPXE',
    req: 'seabios-ipxe-discover',
    reply: 'seabios-ipxe-pxe-offer',
    port: 'dhcp',
    from: { address: '0.0.0.0', port: 68 },
  },
  { name: 'OVMF iPXE EFI', req: 'ovmf-ipxe-discover', reply: 'ovmf-ipxe-pxe-offer', port: 'dhcp', from: { address: '0.0.0.0', port: 68 } },
  {
    name: 'OVMF native offer',
    req: 'ovmf-native-discover',
    reply: 'ovmf-native-pxe-offer',
    port: 'dhcp',
    from: { address: '0.0.0.0', port: 68 },
  },
  {
    name: 'OVMF native 4011 ack',
    req: 'ovmf-native-request-4011',
    reply: 'ovmf-native-pxe-ack-4011',
    port: 'pxe',
    from: { address: '10.77.0.111', port: 4011 },
  },
] as const;

describe('replies proven on real firmware are reproduced byte for byte', () => {
  for (const c of cases) {
    it(c.name, () => {
      const d = decode(readFileSync(join(LAB, `${c.req}.bin`)));
      if (!d.ok) throw new Error(d.detail);
      const req = d.packet;
      const cls = classify(req, { port: c.port, allowHttpClient: false, isOwnAddress: (ip) => ip === SERVER });
      if (!cls.answer) throw new Error(cls.reason);
      const client = toDhcpClient(req, c.from.address, SERVER);
      const decision = booter.dhcpBoot(client);
      if (decision.action !== 'boot') throw new Error(decision.reason);
      const enc = encode(buildReply(req, decision, { reply: cls.reply, vendor: cls.vendor, client, serverId: SERVER }), { maxSize: 1472 });
      if (!enc.ok) throw new Error(enc.detail);
      expect(enc.data.toString('hex')).toBe(readFileSync(join(LAB, `${c.reply}.bin`)).toString('hex'));
      const dest = replyDestination(req, c.port, c.from);
      expect(`${dest.address}:${dest.port}`).toBe(c.port === 'pxe' ? '10.77.0.111:4011' : '255.255.255.255:68');
    });
  }
});
