/**
 * Multi-homed hosts: the files rendered for a client (iPXE script, answer files, menus)
 * carry the address the proxyDHCP advertised to that client (its arrival interface),
 * unless pxe.yaml fixes serverAddress.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadApp } from '../../src/boot/load.js';

const dir = mkdtempSync(join(tmpdir(), `pxe-wiring-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function site(extra: string): string {
  const root = mkdtempSync(join(dir, 'site-'));
  // one synced entry, so the iPXE menu has kernel URLs
  mkdirSync(join(root, 'tftproot/images/debian/12/x86_64'), { recursive: true });
  const file = join(root, 'pxe.yaml');
  writeFileSync(
    file,
    [
      `tftp:\n  root: ${join(root, 'tftproot')}`,
      `stateDir: ${join(root, 'state')}`,
      `hostsFile: ${join(root, 'hosts.yaml')}`,
      extra,
      '',
    ].join('\n'),
  );
  return file;
}

const hosts = (body: string): string[] => [...new Set(body.match(/http:\/\/[0-9.]+:\d+/g) ?? [])];

describe('per-client server address in rendered files', () => {
  it('a MAC the proxy answered gets the address it was advertised; others the default', async () => {
    const app = await loadApp(loadConfig(site('')));
    const fallback = app.renderContext.serverAddress;
    app.clients.noteDhcp('52:54:00:AA:BB:01', 'efi-x64', '10.68.0.1');
    expect(hosts((await app.ipxeScript('52:54:00:aa:bb:01', '10.68.0.50')).body)).toEqual(['http://10.68.0.1:8080']);
    expect(hosts((await app.ipxeScript('52:54:00:aa:bb:02', '10.66.0.50')).body)).toEqual([`http://${fallback}:8080`]);
    expect(hosts((await app.ipxeScript(undefined, '10.66.0.50')).body)).toEqual([`http://${fallback}:8080`]);
    expect(app.renderContextFor('52:54:00:aa:bb:01').serverAddress).toBe('10.68.0.1');
    // the same context object per address (no object per request)
    expect(app.renderContextFor('52:54:00:aa:bb:01')).toBe(app.renderContextFor('52:54:00:aa:bb:01'));
  });

  it('a configured serverAddress wins for every client', async () => {
    const app = await loadApp(loadConfig(site('serverAddress: 10.9.9.9')));
    app.clients.noteDhcp('52:54:00:aa:bb:01', 'efi-x64', '10.68.0.1');
    expect(hosts((await app.ipxeScript('52:54:00:aa:bb:01', '10.68.0.50')).body)).toEqual(['http://10.9.9.9:8080']);
  });
});

describe('a reload keeps what the server learnt about its clients', () => {
  it('a second load with the same ClientMemory renders for the advertised address and the EFI menu', async () => {
    const file = site('');
    const first = await loadApp(loadConfig(file));
    first.clients.noteDhcp('52:54:00:aa:bb:01', 'efi-x64', '10.68.0.1');
    const second = await loadApp(loadConfig(file), undefined, { clients: first.clients });
    expect(second.renderContextFor('52:54:00:aa:bb:01').serverAddress).toBe('10.68.0.1');
    expect(hosts((await second.ipxeScript('52:54:00:aa:bb:01', '10.68.0.50')).body)).toEqual(['http://10.68.0.1:8080']);
    // a load without it starts empty: the default address
    const fresh = await loadApp(loadConfig(file));
    expect(fresh.renderContextFor('52:54:00:aa:bb:01').serverAddress).toBe(fresh.renderContext.serverAddress);
  });
});
