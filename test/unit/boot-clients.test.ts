/**
 * ClientMemory: what the server learnt about a client during its boot (firmware and
 * advertised address per MAC, IP -> MAC), bounded, and shared by the loads of one server.
 */
import { describe, expect, it } from 'vitest';
import { ClientMemory } from '../../src/boot/clients.js';

describe('ClientMemory', () => {
  it('remembers firmware and advertised address per MAC, case-insensitively; no address when the proxy did not answer', () => {
    const m = new ClientMemory();
    m.noteDhcp('52:54:00:AA:BB:01', 'efi-x64', '10.68.0.1');
    m.noteDhcp('52:54:00:aa:bb:02', 'bios', undefined);
    expect(m.firmwareOf('52:54:00:aa:bb:01')).toBe('efi-x64');
    expect(m.serverAddressOf('52:54:00:AA:BB:01')).toBe('10.68.0.1');
    expect(m.firmwareOf('52:54:00:aa:bb:02')).toBe('bios');
    expect(m.serverAddressOf('52:54:00:aa:bb:02')).toBeUndefined();
    expect(m.firmwareOf(undefined)).toBeUndefined();
    expect(m.firmwareOf('52:54:00:aa:bb:03')).toBeUndefined();
  });

  it('learns IP -> MAC from a pxelinux.cfg/01-<mac> request and fills the MAC of later requests from that address', () => {
    const m = new ClientMemory();
    expect(m.identify('menu.c32', { address: '10.77.0.5' })).toEqual({ address: '10.77.0.5' });
    expect(m.identify('pxelinux.cfg/01-52-54-00-12-34-56', { address: '10.77.0.5' })).toEqual({
      address: '10.77.0.5',
      mac: '52:54:00:12:34:56',
    });
    expect(m.identify('menu.c32', { address: '10.77.0.5' })).toEqual({ address: '10.77.0.5', mac: '52:54:00:12:34:56' });
    // a MAC the protocol already knows is kept
    expect(m.identify('menu.c32', { address: '10.77.0.5', mac: '52:54:00:00:00:01' }).mac).toBe('52:54:00:00:00:01');
    m.noteAddress('10.77.0.6', '52:54:00:AB:CD:EF');
    expect(m.macFor('10.77.0.6')).toBe('52:54:00:ab:cd:ef');
  });

  it('holds at most `capacity` entries per table and drops the least recently noted first', () => {
    const m = new ClientMemory(3);
    const mac = (i: number) => `52:54:00:00:00:${i.toString(16).padStart(2, '0')}`;
    for (let i = 1; i <= 3; i++) m.noteDhcp(mac(i), 'efi-x64', '10.0.0.1');
    m.noteDhcp(mac(1), 'efi-x64', '10.0.0.1'); // seen again: now the most recent
    for (let i = 4; i <= 5; i++) m.noteDhcp(mac(i), 'bios', '10.0.0.1');
    expect(m.size).toEqual({ firmware: 3, server: 3, addresses: 0 });
    expect(m.firmwareOf(mac(1))).toBe('efi-x64');
    expect(m.firmwareOf(mac(2))).toBeUndefined();
    expect(m.firmwareOf(mac(3))).toBeUndefined();
    expect(m.firmwareOf(mac(5))).toBe('bios');
    for (let i = 0; i < 10; i++) m.noteAddress(`10.0.1.${i}`, mac(i));
    expect(m.size.addresses).toBe(3);
    expect(m.macFor('10.0.1.9')).toBe(mac(9));
    expect(m.macFor('10.0.1.0')).toBeUndefined();
  });
});
