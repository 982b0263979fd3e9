import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClientMemory } from '../../src/boot/clients.js';
import { BootEventLog, formatEvents, readEvents, readEventsReport } from '../../src/events.js';

const dir = mkdtempSync(join(tmpdir(), 'pxe-events-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('boot-event log', () => {
  it('joins TFTP/HTTP events to the MAC that DHCP or a 01-<mac> request revealed', async () => {
    const file = join(dir, 'sub', 'boot-events.jsonl');
    const clients = new ClientMemory();
    const log = new BootEventLog(file, { macFor: (ip) => clients.macFor(ip) });
    log.record({ proto: 'dhcp', mac: '52:54:00:12:34:56', what: 'offer pxelinux.0 via 10.77.0.10' });
    log.record({ proto: 'tftp', ip: '10.77.0.111', what: 'fetched pxelinux.0' }); // IP not yet known
    clients.noteAddress('10.77.0.111', '52:54:00:12:34:56');
    log.record({ proto: 'tftp', ip: '10.77.0.111', what: 'fetched pxelinux.cfg/01-52-54-00-12-34-56' });
    log.record({ proto: 'dhcp', mac: '52:54:00:ab:cd:ef', what: 'no reply: denied' });
    expect(log.timeline('52:54:00:12:34:56').map((e) => e.what)).toEqual([
      'offer pxelinux.0 via 10.77.0.10',
      'fetched pxelinux.cfg/01-52-54-00-12-34-56',
    ]);
    await log.flush();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    // reading back by MAC also picks up the earlier line of that MAC's IP
    const back = await readEvents(file, '52:54:00:12:34:56');
    expect(back.map((e) => e.what)).toEqual([
      'offer pxelinux.0 via 10.77.0.10',
      'fetched pxelinux.0',
      'fetched pxelinux.cfg/01-52-54-00-12-34-56',
    ]);
    expect(formatEvents(back)).toMatch(/tftp\s+52:54:00:12:34:56\s+10\.77\.0\.111\s+fetched pxelinux\.cfg/);
    expect(await readEvents(file, undefined, 1)).toHaveLength(1);
  });

  it('keeps a bounded ring in memory', () => {
    const log = new BootEventLog(undefined, { capacity: 10 });
    for (let i = 0; i < 25; i++) log.record({ proto: 'dhcp', mac: 'aa:bb:cc:dd:ee:ff', what: `e${i}` });
    const t = log.timeline();
    expect(t).toHaveLength(10);
    expect(t[0]!.what).toBe('e15');
  });
});

describe('bounded on disk', () => {
  it('rotates by size to <file>.1: at most twice maxBytes on disk; reads across the rotation; says when a file is too large', async () => {
    const dir = mkdtempSync(join(tmpdir(), `pxe-events-rot-${process.pid}-`));
    try {
      const file = join(dir, 'boot-events.jsonl');
      const log = new BootEventLog(file, { maxBytes: 20_000 });
      for (let i = 0; i < 3000; i++) {
        log.record({
          proto: 'dhcp',
          mac: `02:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
          what: `offer ${i}`,
        });
        if (i % 100 === 99) await log.flush();
      }
      log.record({ proto: 'dhcp', mac: '52:54:00:00:00:01', what: 'the normal client' });
      await log.flush();
      expect(statSync(file).size).toBeLessThanOrEqual(20_000);
      expect(statSync(`${file}.1`).size).toBeLessThanOrEqual(20_000);
      const r = await readEventsReport(file);
      expect(r.problems).toEqual([]);
      // oldest first across both files, the newest last
      expect(r.events.at(-1)!.what).toBe('the normal client');
      expect(r.events.length).toBeGreaterThan(statSync(file).size / 100);
      expect((await readEventsReport(file, '52:54:00:00:00:01')).events.map((e) => e.what)).toEqual(['the normal client']);
      // a file nobody bounded: named, not "no events"
      truncateSync(`${file}.1`, 65 * 1024 * 1024);
      const big = await readEventsReport(file);
      expect(big.problems[0]).toMatch(/boot-events\.jsonl\.1: \d+ bytes, larger than/);
      expect(big.events.at(-1)!.what).toBe('the normal client');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
