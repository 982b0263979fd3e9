/**
 * The CI slice of `npm run fuzz`: 10^5 mutated datagrams each to the proxyDHCP ports
 * (67 and 4011, real pxe serve child in a network namespace, seeded from the real
 * captures) and to TFTP (listening port and live transfer ports, on loopback). The
 * server must not crash, must have counted the datagrams it received as drops rather
 * than internal errors, and must serve a valid client afterwards (a proxyDHCP reply,
 * and a byte-identical file to tftp-hpa).
 */
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../../bench/fuzz/index.js';

describe('fuzz (10^5 slice)', () => {
  it('DHCP 67/4011 and TFTP survive 10^5 mutated datagrams each and still serve valid clients', async () => {
    const lines: string[] = [];
    const reports = await runFuzz({ count: 100_000, seed: 42, rate: 20_000, log: (l) => lines.push(l) });
    process.stdout.write(`${lines.join('\n')}\n`);
    expect(reports.map((r) => r.target)).toEqual(['dhcp :67', 'dhcp :4011', 'tftp (listening port + live transfer ports)']);
    for (const r of reports) {
      expect(r.sent, r.target).toBe(100_000);
      expect(r.crashed, r.target).toBe(false);
      expect(r.servedAfterwards, r.target).toBe(true);
    }
    const [d67, d4011, tftp] = reports;
    // the datagrams reached the server (a good share: UDP may drop under load) and
    // every one of them was handled: malformed ones counted, none escaped as an internal error
    for (const d of [d67!, d4011!]) {
      expect(d.serverCounters.received_total).toBeGreaterThan(10_000);
      expect(d.serverCounters.malformed_total).toBeGreaterThan(1_000);
      expect(d.serverCounters.internal_errors_total).toBe(0);
    }
    expect(tftp!.serverCounters['drops_total{reason="malformed"}']).toBeGreaterThan(1_000);
    expect(tftp!.serverCounters['drops_total{reason="internal"}']).toBe(0);
    expect(Number(tftp!.detail.toTransferPeer) + Number(tftp!.detail.toTransferForeign)).toBeGreaterThan(10_000);
  }, 240_000);
});
