/**
 * `pxe dhcp-config`: the generated configuration is accepted by the real DHCP servers
 * it is meant for (ISC dhcpd -t, kea-dhcp4 -t, dnsmasq --test), and carries the same
 * firmware classes and boot files as the proxy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config.js';
import { renderDhcpConfig } from '../../src/dhcpconfig.js';

const run = promisify(execFile);
const CLI = resolve('dist/cli.js');
let dir: string;

async function generate(format: string, cfg = 'pxe.yaml'): Promise<string> {
  const { stdout } = await run('node', [CLI, 'dhcp-config', '--format', format, '--config', join(dir, cfg)], { timeout: 20_000 });
  return stdout;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pxe-dhcpcfg-'));
  writeFileSync(
    join(dir, 'pxe.yaml'),
    'serverAddress: 10.77.0.10\ndhcp:\n  bootFiles:\n    ipxe: http://10.77.0.10:8080/boot.ipxe\n    efi-arm64: grubaa64.efi\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pxe dhcp-config', () => {
  it('isc: dhcpd -t accepts it inside a subnet declaration', async () => {
    const out = await generate('isc');
    expect(out).toContain('next-server 10.77.0.10;');
    expect(out).toMatch(/option arch = 00:00 \{\s+filename "pxelinux\.0";/);
    expect(out).toMatch(/option arch = 00:07 or option arch = 00:09 \{\s+filename "syslinux\.efi";/);
    expect(out).toMatch(/option user-class = "iPXE" \{\s+filename "http:\/\/10\.77\.0\.10:8080\/boot\.ipxe";/);
    const conf = join(dir, 'dhcpd.conf');
    writeFileSync(conf, `subnet 10.77.0.0 netmask 255.255.255.0 { range 10.77.0.100 10.77.0.150; }\n${out}`);
    await run('dhcpd', ['-t', '-cf', conf], { timeout: 20_000 });
    // the checker is real: a broken class is refused
    writeFileSync(conf, `${out}\nclass "broken" { match if bogus }\n`);
    await expect(run('dhcpd', ['-t', '-cf', conf], { timeout: 20_000 })).rejects.toBeTruthy();
  });

  it('kea: kea-dhcp4 -t accepts the client classes', async () => {
    const out = JSON.parse(await generate('kea')) as { Dhcp4: { 'client-classes': Array<Record<string, string>> } };
    const classes = out.Dhcp4['client-classes'];
    expect(classes.find((c) => c['boot-file-name'] === 'syslinux.efi')?.test).toContain('option[93].hex == 0x0007');
    expect(classes.find((c) => c.name === 'pxe-ipxe')?.test).toBe("option[77].text == 'iPXE'");
    const file = join(dir, 'kea.json');
    writeFileSync(
      file,
      JSON.stringify({
        Dhcp4: {
          ...out.Dhcp4,
          'interfaces-config': { interfaces: [] },
          subnet4: [{ id: 1, subnet: '10.77.0.0/24', pools: [{ pool: '10.77.0.100-10.77.0.150' }] }],
        },
      }),
    );
    await run('kea-dhcp4', ['-t', file], { timeout: 20_000 });
  });

  it('dnsmasq: --test accepts it', async () => {
    const out = await generate('dnsmasq');
    expect(out).toContain('dhcp-match=set:efi-x64,option:client-arch,7');
    expect(out).toContain('dhcp-boot=tag:!ipxe,tag:bios,pxelinux.0,,10.77.0.10');
    const file = join(dir, 'dnsmasq.conf');
    writeFileSync(file, out);
    const { stderr } = await run('dnsmasq', ['--test', '-C', file], { timeout: 20_000 });
    expect(stderr).toMatch(/syntax check OK/);
    expect(readFileSync(file, 'utf8')).toBe(out);
  });

  it('with the defaults (dhcp.ipxeHttp), BIOS iPXE clients get pxelinux.0 as an HTTP URL, as from the proxy; every checker accepts it', async () => {
    writeFileSync(join(dir, 'defaults.yaml'), 'serverAddress: 10.77.0.10\n');
    const url = 'http://10.77.0.10:8080/files/pxelinux.0';

    const isc = await generate('isc', 'defaults.yaml');
    // the iPXE rule comes first: dhcpd takes the first matching if/elsif branch
    expect(isc).toMatch(
      new RegExp(
        `if exists user-class and option user-class = "iPXE" and option arch = 00:00 \\{\\s+filename "${url}";\\s+\\}\\s+elsif option arch = 00:00 \\{\\s+filename "pxelinux\\.0";`,
      ),
    );
    const conf = join(dir, 'dhcpd-defaults.conf');
    writeFileSync(conf, `subnet 10.77.0.0 netmask 255.255.255.0 { range 10.77.0.100 10.77.0.150; }\n${isc}`);
    await run('dhcpd', ['-t', '-cf', conf], { timeout: 20_000 });

    const kea = JSON.parse(await generate('kea', 'defaults.yaml')) as { Dhcp4: { 'client-classes': Array<Record<string, string>> } };
    const classes = kea.Dhcp4['client-classes'];
    expect(classes.find((c) => c.name === 'pxe-bios-ipxe')).toMatchObject({
      'boot-file-name': url,
      test: "option[77].text == 'iPXE' and option[93].hex == 0x0000",
    });
    // mutually exclusive with the plain BIOS class; UEFI classes are untouched
    expect(classes.find((c) => c.name === 'pxe-bios')?.test).toBe("not option[77].text == 'iPXE' and (option[93].hex == 0x0000)");
    expect(classes.find((c) => c.name === 'pxe-efi-x64')?.test).not.toContain('iPXE');
    const keaFile = join(dir, 'kea-defaults.json');
    writeFileSync(
      keaFile,
      JSON.stringify({
        Dhcp4: {
          ...kea.Dhcp4,
          'interfaces-config': { interfaces: [] },
          subnet4: [{ id: 1, subnet: '10.77.0.0/24', pools: [{ pool: '10.77.0.100-10.77.0.150' }] }],
        },
      }),
    );
    await run('kea-dhcp4', ['-t', keaFile], { timeout: 20_000 });

    const dnsmasq = await generate('dnsmasq', 'defaults.yaml');
    expect(dnsmasq).toContain('dhcp-userclass=set:ipxe,iPXE');
    expect(dnsmasq).toContain(`dhcp-boot=tag:ipxe,tag:bios,${url},,10.77.0.10`);
    expect(dnsmasq).toContain('dhcp-boot=tag:!ipxe,tag:bios,pxelinux.0,,10.77.0.10');
    expect(dnsmasq).toContain('dhcp-boot=tag:efi-x64,syslinux.efi,,10.77.0.10');
    const dnsmasqFile = join(dir, 'dnsmasq-defaults.conf');
    writeFileSync(dnsmasqFile, dnsmasq);
    expect((await run('dnsmasq', ['--test', '-C', dnsmasqFile], { timeout: 20_000 })).stderr).toMatch(/syntax check OK/);

    // with the HTTP server off the plain rules stay
    writeFileSync(join(dir, 'nohttp.yaml'), 'serverAddress: 10.77.0.10\nhttp: { enabled: false }\n');
    expect(await generate('dnsmasq', 'nohttp.yaml')).not.toContain('http://');
  });

  it('U-Boot (93 = 21/22, vendor class U-Boot.*) gets next-server and boot.scr.uimg from the site server in every format; bootFiles.uboot null leaves the rule out', async () => {
    // the default file: the script U-Boot's distro boot (bootcmd_dhcp) asks for by name
    const isc = await generate('isc');
    expect(isc).toMatch(
      /class "uboot" \{\s+match if substring \(option vendor-class-identifier, 0, 6\) = "U-Boot" or option arch = 00:15 or option arch = 00:16;\s+next-server 10\.77\.0\.10;\s+filename "boot\.scr\.uimg";\s+\}/,
    );
    const kea = (JSON.parse(await generate('kea')) as { Dhcp4: { 'client-classes': Array<Record<string, string>> } }).Dhcp4[
      'client-classes'
    ];
    expect(kea.find((c) => c.name === 'uboot')).toEqual({
      name: 'uboot',
      test: "substring(option[60].hex,0,6) == 'U-Boot' or option[93].hex == 0x0015 or option[93].hex == 0x0016",
      'next-server': '10.77.0.10',
      'boot-file-name': 'boot.scr.uimg',
    });
    const dnsmasq = await generate('dnsmasq');
    expect(dnsmasq).toContain(
      'dhcp-vendorclass=set:uboot,U-Boot\ndhcp-match=set:uboot,option:client-arch,21\ndhcp-match=set:uboot,option:client-arch,22\ndhcp-boot=tag:uboot,boot.scr.uimg,,10.77.0.10\n',
    );
    // (the checkers of the tests above ran on these same outputs)
    const noUboot = configSchema.parse({ dhcp: { bootFiles: { uboot: null } } });
    for (const f of ['isc', 'kea', 'dnsmasq'] as const) expect(renderDhcpConfig(noUboot, f, '10.77.0.10')).not.toMatch(/uboot|U-Boot/);
  });

  it('--next-server-only: next-server for PXE clients and no file name, accepted by every checker', async () => {
    const gen = async (format: string) =>
      (
        await run('node', [CLI, 'dhcp-config', '--format', format, '--next-server-only', '--config', join(dir, 'pxe.yaml')], {
          timeout: 20_000,
        })
      ).stdout;
    const isc = await gen('isc');
    expect(isc).toContain('next-server 10.77.0.10;');
    expect(isc).not.toMatch(/filename/);
    const conf = join(dir, 'dhcpd-ns.conf');
    writeFileSync(conf, `subnet 10.77.0.0 netmask 255.255.255.0 { range 10.77.0.100 10.77.0.150; }\n${isc}`);
    await run('dhcpd', ['-t', '-cf', conf], { timeout: 20_000 });
    const kea = JSON.parse(await gen('kea')) as { Dhcp4: { 'client-classes': Array<Record<string, string>> } };
    expect(kea.Dhcp4['client-classes']).toEqual([
      {
        name: 'pxe-next-server',
        test: "substring(option[60].hex,0,9) == 'PXEClient' or substring(option[60].hex,0,6) == 'U-Boot'",
        'next-server': '10.77.0.10',
      },
    ]);
    const file = join(dir, 'kea-ns.json');
    writeFileSync(
      file,
      JSON.stringify({
        Dhcp4: {
          ...kea.Dhcp4,
          'interfaces-config': { interfaces: [] },
          subnet4: [{ id: 1, subnet: '10.77.0.0/24', pools: [{ pool: '10.77.0.100-10.77.0.150' }] }],
        },
      }),
    );
    await run('kea-dhcp4', ['-t', file], { timeout: 20_000 });
    // dnsmasq: an empty file field with a server address (the SB e2e boots through exactly this)
    const dm = await gen('dnsmasq');
    expect(dm).toContain('dhcp-boot=tag:pxe,,,10.77.0.10');
    const dmFile = join(dir, 'dnsmasq-ns.conf');
    writeFileSync(dmFile, dm);
    await run('dnsmasq', ['--test', `--conf-file=${dmFile}`], { timeout: 20_000 });
  });

  it('needs a server address', async () => {
    writeFileSync(join(dir, 'noaddr.yaml'), 'logLevel: info\n');
    const err = (await run('node', [CLI, 'dhcp-config', '--format', 'isc', '--config', join(dir, 'noaddr.yaml')]).catch(
      (e: unknown) => e,
    )) as { code: number; stderr: string };
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/needs --server-address/);
  });
});
