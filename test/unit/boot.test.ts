import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createAllowlist } from '../../src/boot/access.js';
import { PolicyBooter } from '../../src/boot/booter.js';
import { firmwareFromArch } from '../../src/boot/firmware.js';
import { ipToHex, macFromPxelinuxPath, normalizeMac, pxelinuxLookupSequence } from '../../src/boot/pxelinux.js';
import type { DhcpClient } from '../../src/boot/types.js';

const cfg = loadConfig(undefined, '/nonexistent-dir-for-defaults');
const client = (over: Partial<DhcpClient>): DhcpClient => ({
  mac: '52:54:00:12:34:56',
  arch: 0,
  firmware: 'bios',
  isIpxe: false,
  vendorClass: 'PXEClient:Arch:00000:UNDI:002001',
  uuid: undefined,
  sourceAddress: '0.0.0.0',
  relayAddress: undefined,
  serverAddress: '10.77.0.10',
  ...over,
});

describe('pxelinux lookup order (syslinux doc/pxelinux.txt)', () => {
  it('follows uuid, 01-mac, hex IP shortened digit by digit, default', () => {
    const seq = pxelinuxLookupSequence({ mac: '88:99:AA:BB:CC:DD', ip: '192.0.2.91', uuid: 'b8945908-d6a6-41a9-611d-74a6ab80b83d' });
    expect(seq.map((s) => s.path)).toEqual([
      'pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d',
      'pxelinux.cfg/01-88-99-aa-bb-cc-dd',
      'pxelinux.cfg/C000025B',
      'pxelinux.cfg/C000025',
      'pxelinux.cfg/C00002',
      'pxelinux.cfg/C0000',
      'pxelinux.cfg/C000',
      'pxelinux.cfg/C00',
      'pxelinux.cfg/C0',
      'pxelinux.cfg/C',
      'pxelinux.cfg/default',
    ]);
  });
  it('omits uuid and IP steps when unknown', () => {
    expect(pxelinuxLookupSequence({ mac: '52:54:00:12:34:56' }).map((s) => s.path)).toEqual([
      'pxelinux.cfg/01-52-54-00-12-34-56',
      'pxelinux.cfg/default',
    ]);
  });
  it('normalises MACs and parses 01-<mac> paths', () => {
    expect(normalizeMac('52-54-00-AB-CD-EF')).toBe('52:54:00:ab:cd:ef');
    expect(normalizeMac('5254.00ab.cdef')).toBe('52:54:00:ab:cd:ef');
    expect(normalizeMac('52:54:00:ab:cd')).toBeNull();
    expect(normalizeMac('zz:54:00:ab:cd:ef')).toBeNull();
    expect(macFromPxelinuxPath('pxelinux.cfg/01-52-54-00-ab-cd-ef')).toBe('52:54:00:ab:cd:ef');
    expect(macFromPxelinuxPath('pxelinux.cfg/default')).toBeNull();
    expect(ipToHex('10.77.0.111')).toBe('0A4D006F');
    expect(ipToHex('10.77.0.256')).toBeNull();
  });
});

describe('firmware from option 93 (RFC 4578)', () => {
  it('maps the IANA codes', () => {
    expect(firmwareFromArch(0)).toBe('bios');
    expect(firmwareFromArch(6)).toBe('efi-ia32');
    expect(firmwareFromArch(7)).toBe('efi-x64');
    expect(firmwareFromArch(9)).toBe('efi-x64');
    expect(firmwareFromArch(11)).toBe('efi-arm64');
    expect(firmwareFromArch(16)).toBe('efi-x64-http');
    expect(firmwareFromArch(42)).toBe('unknown');
    expect(firmwareFromArch(undefined, 'PXEClient')).toBe('bios');
  });
});

describe('PolicyBooter.dhcpBoot', () => {
  const booter = new PolicyBooter({ dhcp: cfg.dhcp });
  it('gives each firmware its configured file and the server address as next-server', () => {
    const bios = booter.dhcpBoot(client({}));
    expect(bios).toMatchObject({ action: 'boot', bootFile: 'pxelinux.0', nextServer: '10.77.0.10' });
    expect(booter.dhcpBoot(client({ arch: 7, firmware: 'efi-x64' }))).toMatchObject({ action: 'boot', bootFile: 'syslinux.efi' });
    expect(booter.dhcpBoot(client({ arch: 9, firmware: 'efi-x64' }))).toMatchObject({ action: 'boot', bootFile: 'syslinux.efi' });
  });
  it('stays silent for firmware with no file configured and for unknown architectures', () => {
    expect(booter.dhcpBoot(client({ arch: 11, firmware: 'efi-arm64' })).action).toBe('ignore');
    expect(booter.dhcpBoot(client({ arch: 99, firmware: 'unknown' })).action).toBe('ignore');
  });
  it('gives iPXE its own file only when configured, so chainloading cannot loop', () => {
    expect(booter.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'pxelinux.0' });
    const b2 = new PolicyBooter({ dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, ipxe: 'http://10.77.0.10:8080/boot.ipxe' } } });
    expect(b2.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'http://10.77.0.10:8080/boot.ipxe' });
    expect(b2.dhcpBoot(client({ isIpxe: false }))).toMatchObject({ bootFile: 'pxelinux.0' });
  });
  it('hands BIOS iPXE clients their boot file over HTTP when the HTTP server runs (dhcp.ipxeHttp)', () => {
    const b = new PolicyBooter({ dhcp: cfg.dhcp, ipxeHttpPort: 8080 });
    const ipxeBios = b.dhcpBoot(client({ isIpxe: true }));
    expect(ipxeBios).toMatchObject({ action: 'boot', bootFile: 'http://10.77.0.10:8080/files/pxelinux.0', nextServer: '10.77.0.10' });
    expect(ipxeBios.action === 'boot' && ipxeBios.reason).toMatch(/over HTTP/);
    // the URL names the server on the client's own network
    expect(b.dhcpBoot(client({ isIpxe: true, serverAddress: '192.0.2.5' }))).toMatchObject({
      bootFile: 'http://192.0.2.5:8080/files/pxelinux.0',
    });
    // the PXE ROM itself (no option 77) and UEFI loaders keep TFTP
    expect(b.dhcpBoot(client({ isIpxe: false }))).toMatchObject({ bootFile: 'pxelinux.0' });
    expect(b.dhcpBoot(client({ isIpxe: true, arch: 7, firmware: 'efi-x64' }))).toMatchObject({ bootFile: 'syslinux.efi' });
    // an explicit bootFiles.ipxe wins; a bios file that is already a URL stays as it is
    const withScript = new PolicyBooter({
      dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, ipxe: 'http://10.77.0.10:8080/boot.ipxe' } },
      ipxeHttpPort: 8080,
    });
    expect(withScript.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'http://10.77.0.10:8080/boot.ipxe' });
    const urlFile = new PolicyBooter({
      dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, bios: 'tftp://10.0.0.1/pxelinux.0' } },
      ipxeHttpPort: 8080,
    });
    expect(urlFile.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'tftp://10.0.0.1/pxelinux.0' });
    // other NBPs keep TFTP: an iPXE .kpxe would chain back into iPXE, WDS derives TFTP paths from its name
    for (const nbp of ['undionly.kpxe', 'boot/wdsnbp.com', 'pxelinux.0.bak']) {
      const other = new PolicyBooter({ dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, bios: nbp } }, ipxeHttpPort: 8080 });
      expect(other.dhcpBoot(client({ isIpxe: true })), nbp).toMatchObject({ bootFile: nbp });
    }
    const lpx = new PolicyBooter({
      dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, bios: 'bios/lpxelinux.0' } },
      ipxeHttpPort: 8080,
    });
    expect(lpx.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'http://10.77.0.10:8080/files/bios/lpxelinux.0' });
    // a leading '/' does not double the slash; a URL over the header's 127 bytes falls back to TFTP
    const abs = new PolicyBooter({
      dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, bios: '/boot/pxelinux.0' } },
      ipxeHttpPort: 8080,
    });
    expect(abs.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: 'http://10.77.0.10:8080/files/boot/pxelinux.0' });
    const long = `${'d/'.repeat(48)}pxelinux.0`;
    const longB = new PolicyBooter({ dhcp: { ...cfg.dhcp, bootFiles: { ...cfg.dhcp.bootFiles, bios: long } }, ipxeHttpPort: 8080 });
    expect(longB.dhcpBoot(client({ isIpxe: true }))).toMatchObject({ bootFile: long });
  });
  it('builds the HTTP hand-off from the config: on by default with the HTTP server, off with --no-http or dhcp.ipxeHttp: false', () => {
    expect(cfg.dhcp.ipxeHttp).toBe(true);
    const on = buildApp(cfg).booter.dhcpBoot(client({ isIpxe: true }));
    expect(on).toMatchObject({ bootFile: `http://10.77.0.10:${cfg.http.port}/files/pxelinux.0` });
    expect(buildApp({ ...cfg, http: { ...cfg.http, enabled: false } }).booter.dhcpBoot(client({ isIpxe: true }))).toMatchObject({
      bootFile: 'pxelinux.0',
    });
    expect(buildApp({ ...cfg, dhcp: { ...cfg.dhcp, ipxeHttp: false } }).booter.dhcpBoot(client({ isIpxe: true }))).toMatchObject({
      bootFile: 'pxelinux.0',
    });
  });
  it('honours the hosts file: denied hosts and unknown clients when set to ignore', () => {
    const b = new PolicyBooter({
      dhcp: { ...cfg.dhcp, unknownClients: 'ignore' },
      hostAccess: (m) => (m === '52:54:00:12:34:56' ? 'allowed' : m === '52:54:00:00:00:01' ? 'denied' : 'unknown'),
    });
    expect(b.dhcpBoot(client({})).action).toBe('boot');
    expect(b.dhcpBoot(client({ mac: '52:54:00:00:00:01' })).action).toBe('ignore');
    expect(b.dhcpBoot(client({ mac: '52:54:00:00:00:02' })).action).toBe('ignore');
  });
  it('asks virtual-file providers in order', async () => {
    const b = new PolicyBooter({
      dhcp: cfg.dhcp,
      providers: [
        { virtualFile: async (p) => (p === 'a' ? { content: Buffer.from('first'), origin: 'p1' } : null) },
        { virtualFile: async (p) => (p === 'a' || p === 'b' ? { content: Buffer.from('second'), origin: 'p2' } : null) },
      ],
    });
    expect((await b.virtualFile('a', { address: '10.0.0.1' }))?.origin).toBe('p1');
    expect((await b.virtualFile('b', { address: '10.0.0.1' }))?.origin).toBe('p2');
    expect(await b.virtualFile('c', { address: '10.0.0.1' })).toBeNull();
  });
});

describe('allowlist', () => {
  it('is absent when empty and matches IPv4, IPv6 and v4-mapped addresses', () => {
    expect(createAllowlist([])).toBeUndefined();
    const allow = createAllowlist(['10.77.0.0/24', 'fd00::/8', '192.0.2.7'])!;
    expect(allow('10.77.0.5')).toBe(true);
    expect(allow('::ffff:10.77.0.5')).toBe(true);
    expect(allow('10.78.0.5')).toBe(false);
    expect(allow('fd12::1')).toBe(true);
    expect(allow('2001:db8::1')).toBe(false);
    expect(allow('192.0.2.7')).toBe(true);
    expect(allow('not-an-ip')).toBe(false);
  });
});

describe('boot/access.ts', () => {
  it('NetworkAccess: an allowlist covering one of our interfaces admits DHCP from 0.0.0.0 (a client on a directly attached LAN); one that does not, refuses it', async () => {
    const { NetworkAccess } = await import('../../src/boot/access.js');
    const ifs = () =>
      ({
        eth0: [{ address: '10.77.0.1', netmask: '255.255.255.0', family: 'IPv4', internal: false, mac: '', cidr: '10.77.0.1/24' }],
      }) as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
    const lan = new NetworkAccess(['10.77.0.0/24'], ifs);
    expect(lan.dhcpAllowed('0.0.0.0')).toBe(true);
    expect(lan.dhcpAllowed('10.77.0.50')).toBe(true);
    expect(lan.dhcpAllowed('10.78.0.50')).toBe(false);
    expect(lan.allowed('::ffff:10.77.0.9')).toBe(true);
    const other = new NetworkAccess(['10.99.0.0/16'], ifs);
    expect(other.dhcpAllowed('0.0.0.0')).toBe(false);
    expect(other.allowed('10.99.3.4')).toBe(true);
    const open = new NetworkAccess([], ifs);
    expect(open.dhcpAllowed('0.0.0.0') && open.allowed('192.0.2.1')).toBe(true);
  });

  it("hosts.yaml's unknown: wins over dhcp.unknownClients; denied and ignored-unknown MACs get a reason", async () => {
    const { hostRefusal, unknownClientsRule } = await import('../../src/boot/access.js');
    expect(unknownClientsRule('boot', undefined)).toBe('boot');
    expect(unknownClientsRule('boot', 'ignore')).toBe('ignore');
    expect(unknownClientsRule('ignore', 'menu')).toBe('boot');
    expect(hostRefusal('aa:bb:cc:dd:ee:ff', 'denied', 'boot')).toMatch(/denied in the hosts file/);
    expect(hostRefusal('aa:bb:cc:dd:ee:ff', 'unknown', 'ignore')).toMatch(/unknownClients is "ignore"/);
    expect(hostRefusal('aa:bb:cc:dd:ee:ff', 'unknown', 'boot')).toBeUndefined();
    expect(hostRefusal('aa:bb:cc:dd:ee:ff', 'allowed', 'ignore')).toBeUndefined();
  });
});
