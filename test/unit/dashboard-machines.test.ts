import { describe, expect, it } from 'vitest';
import type { BootEvent } from '../../src/events.js';
import { MachineBook, stepOf } from '../../src/dashboard/machines.js';

const MAC = '52:54:00:aa:bb:cc';
let clock = Date.parse('2026-12-02T10:00:00Z');
const ev = (e: Omit<BootEvent, 'time'>, advanceMs = 1000): BootEvent => {
  clock += advanceMs;
  return { time: new Date(clock).toISOString(), ...e };
};

describe('dashboard machine book', () => {
  it('classifies boot events into timeline steps', () => {
    expect(stepOf(ev({ proto: 'dhcp', mac: MAC, what: 'offer pxelinux.0 via 10.0.0.1' }))?.kind).toBe('dhcp');
    expect(stepOf(ev({ proto: 'dhcp', mac: MAC, what: 'no reply: host is denied' }))).toMatchObject({
      kind: 'failed',
      text: 'no DHCP answer: host is denied',
    });
    expect(stepOf(ev({ proto: 'tftp', ip: '10.0.0.9', what: 'fetched pxelinux.0', detail: { bytes: 42000, ms: 30 } }))).toMatchObject({
      kind: 'bootfile',
      bytes: 42000,
    });
    expect(
      stepOf(ev({ proto: 'tftp', what: 'failed (error) pxelinux.cfg/01-52-54-00-aa-bb-cc', detail: { reason: 'file not found' } }))?.kind,
    ).toBe('config-miss');
    expect(stepOf(ev({ proto: 'http', what: 'GET /files/images/debian/12/x86_64/linux -> 200' }))?.kind).toBe('kernel');
    expect(stepOf(ev({ proto: 'http', what: 'GET /files/images/debian/12/x86_64/initrd.gz -> 200' }))?.kind).toBe('initrd');
    expect(stepOf(ev({ proto: 'tftp', what: 'failed (timeout) initrd.gz', detail: { reason: 'transfer timed out' } }))).toMatchObject({
      kind: 'failed',
      text: 'initrd.gz: transfer timed out',
    });
    expect(stepOf(ev({ proto: 'http', what: 'GET /unattended/52:54:00:aa:bb:cc/preseed.cfg?token=x -> 200' }))?.kind).toBe('answer');
    expect(stepOf(ev({ proto: 'http', mac: MAC, what: 'install finished: marked installed' }))?.kind).toBe('done');
    expect(stepOf(ev({ proto: 'http', what: 'GET /metrics -> 200' }))).toBeUndefined();
  });

  it('follows one boot to its furthest stage, keeps the failure reason, and starts a new boot at the next DHCP', () => {
    const book = new MachineBook();
    book.observe(ev({ proto: 'dhcp', mac: MAC, what: 'offer pxelinux.0 via 10.0.0.1', detail: { firmware: 'bios', ipxe: true } }));
    book.observe(ev({ proto: 'tftp', mac: MAC, ip: '10.0.0.9', what: 'fetched pxelinux.0' }));
    book.observe(ev({ proto: 'tftp', mac: MAC, what: 'failed (error) pxelinux.cfg/01-52-54-00-aa-bb-cc' }));
    book.observe(ev({ proto: 'tftp', mac: MAC, what: 'fetched pxelinux.cfg/default' }));
    let m = book.get(MAC)!;
    expect(m).toMatchObject({ stage: 'config', firmware: 'bios', ipxe: true, ip: '10.0.0.9' });
    book.observe(ev({ proto: 'tftp', mac: MAC, what: 'failed (timeout) initrd.gz', detail: { reason: 'transfer timed out' } }));
    m = book.get(MAC)!;
    expect(m.stage).toBe('failed');
    expect(m.failure).toBe('initrd.gz: transfer timed out');
    expect(m.steps.map((s) => s.kind)).toEqual(['dhcp', 'bootfile', 'config-miss', 'config', 'failed']);
    book.observe(ev({ proto: 'dhcp', mac: MAC, what: 'offer pxelinux.0 via 10.0.0.1' }, 5000));
    m = book.get(MAC)!;
    expect(m.steps.map((s) => s.kind)).toEqual(['dhcp']);
    expect(m.failure).toBeUndefined();
  });

  it('stays bounded: the least recently seen machine is forgotten first; newest are listed first', () => {
    const book = new MachineBook(3);
    for (let i = 0; i < 5; i++) book.observe(ev({ proto: 'dhcp', mac: `52:54:00:00:00:0${i}`, what: 'offer x via y' }));
    expect(book.size).toBe(3);
    expect(book.list().map((m) => m.mac)).toEqual(['52:54:00:00:00:04', '52:54:00:00:00:03', '52:54:00:00:00:02']);
    book.observe(ev({ proto: 'dhcp', mac: '52:54:00:00:00:02', what: 'offer x via y' }));
    expect(book.list()[0]!.mac).toBe('52:54:00:00:00:02');
  });
});
