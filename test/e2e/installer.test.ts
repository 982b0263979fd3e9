/**
 * The real Debian 12 installer (debian-installer-12-netboot-amd64) PXE-boots through
 * `pxe` and starts an automated install. The test passes when the installer has
 * configured its network from the site DHCP server and fetched its preseed from pxe's
 * HTTP server. That proves the whole chain a real unattended install depends on, up to
 * the point where the answers file takes over. (Under TCG d-i then goes on to "Choose a
 * mirror", which fails offline: the lab kills QEMU before that.)
 *
 * d-i asks for a name server before it fetches the preseed unless DHCP gave one: the
 * lab's site server sends option 6.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ensureAssets, FAIL_FAST, startLab, type Lab, type LabProcess, REPO_ROOT } from '../../bench/lab.js';
import { isMac, pxeCli, pxeSync, writeSiteConfig, startPxeServe, explainBoot } from '../helpers/e2e.js';
import { makeTestKey, publishDebian, startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

/**
 * The product path, end to end: `pxe sync` installs the shipped `debian` catalog entry
 * (the real d-i kernel + initrd, published on a local signed mirror: InRelease ->
 * SHA256SUMS -> files), hosts.yaml assigns the VM's MAC to it, and `pxe serve` renders
 * pxelinux.cfg/01-<mac> (templates/pxelinux-host.njk) with the entry's automation
 * arguments and serves the rendered preseed. Passes when d-i fetched that preseed (200).
 */
describe('e2e: Debian 12 installer from the catalog (pxe sync + hosts.yaml + rendered config and preseed)', () => {
  const HOST_MAC = '52:54:00:e2:e0:d2';
  let lab: Lab | undefined;
  let mirror: LocalMirror | undefined;
  let server: LabProcess;
  let cfgFile: string;
  let assets: Awaited<ReturnType<typeof ensureAssets>>;

  beforeAll(async () => {
    const cli = pxeCli();
    assets = await ensureAssets({ installer: true });
    lab = await startLab();
    const site = join(lab.runDir, 'site');
    const root = join(site, 'tftproot');
    mkdirSync(join(site, 'distros'), { recursive: true });
    mkdirSync(root, { recursive: true });
    // Only the bootloaders come from outside the catalog (sync --only skips them).
    copyFileSync(assets.pxelinux, join(root, 'pxelinux.0'));
    copyFileSync(assets.ldlinuxC32, join(root, 'ldlinux.c32'));

    // The shipped debian entry, narrowed to 12/x86_64 (the mirror only has those).
    const shipped = parseYaml(readFileSync(join(REPO_ROOT, 'distros', 'debian.yaml'), 'utf8')) as {
      entries: Array<Record<string, unknown>>;
    };
    const debian = shipped.entries.find((e) => e.id === 'debian')!;
    debian.versions = (debian.versions as Array<{ version: string }>).filter((v) => v.version === '12');
    debian.architectures = ['x86_64'];
    writeFileSync(join(site, 'distros', 'debian.yaml'), toYaml({ entries: [debian] }));

    mirror = await startLocalMirror();
    const key = await makeTestKey('e2e debian archive key');
    await publishDebian(mirror, { kernel: readFileSync(assets.installer!.linux), initrd: readFileSync(assets.installer!.initrd) }, key);
    writeFileSync(join(site, 'debian.asc'), key.publicArmored);

    writeFileSync(
      join(site, 'hosts.yaml'),
      toYaml({
        hosts: {
          [HOST_MAC]: {
            hostname: 'e2e-debian',
            entry: 'debian',
            version: '12',
            disk: '/dev/vda',
            // d-i's screens on the serial log, for failure messages
            append: 'console=ttyS0',
          },
        },
      }),
    );
    cfgFile = writeSiteConfig(site, root, {
      mirrors: { debian: mirror.url('debian') },
      keyrings: { debian: join(site, 'debian.asc') },
    });
    // sync runs in the root namespace: the mirror is on 127.0.0.1 there.
    const sync = await pxeSync(cli, cfgFile, 'debian');
    expect(sync).toMatch(/debian 12 x86_64: installed .*\[trust: signed\]/);

    server = await startPxeServe(lab, cli, cfgFile);
  }, 600_000);

  afterAll(async () => {
    await mirror?.stop();
    await lab?.stop();
  });

  // the rendered automation URL is /unattended/<mac>/<install token>/preseed.cfg (the log
  // shows the token as <token>; a request without the host's live token is a 403)
  const preseedFetched = () =>
    server.jsonLines().filter((l) => {
      const m = typeof l.url === 'string' ? /^\/unattended\/([^/]+)\/<token>\/preseed\.cfg$/.exec(l.url) : null;
      return m !== null && isMac(m[1], HOST_MAC) && l.status === 200;
    });

  it('boots the synced d-i with the rendered per-host config; d-i fetches its rendered preseed', async () => {
    const r = await lab!.bootVm({
      firmware: 'bios',
      mac: HOST_MAC,
      memoryMb: 1024,
      expect: () => preseedFetched().length > 0,
      failFast: FAIL_FAST,
      timeoutMs: 180_000,
      requireSelfExit: false,
    });
    const why = explainBoot(r, server, undefined, 3000);
    expect(r.reason, why).toBe('marker');
    // The VM's iPXE ROM gets pxelinux.0 as an HTTP URL (dhcp.ipxeHttp, the default), so
    // pxelinux reads its config and d-i's kernel and initrd over HTTP.
    const served = (suffix: string) =>
      server
        .jsonLines()
        .filter(
          (l) =>
            l.msg === 'http request' &&
            l.status === 200 &&
            typeof l.url === 'string' &&
            l.url.startsWith('/files/') &&
            l.url.endsWith(suffix),
        );
    // the per-host config was the rendered one (there is no pxelinux.cfg/ on disk), and it pointed at the synced files
    expect(existsSync(join(lab!.runDir, 'site', 'tftproot', 'pxelinux.cfg')), why).toBe(false);
    const cfg = served(`pxelinux.cfg/01-${HOST_MAC.replace(/:/g, '-')}`);
    expect(cfg, why).not.toHaveLength(0);
    expect(cfg[0]!.virtual, why).toBe(true);
    const linux = served('images/debian/12/x86_64/linux');
    const initrd = served('images/debian/12/x86_64/initrd.gz');
    expect(linux, why).not.toHaveLength(0);
    expect(initrd, why).not.toHaveLength(0);
    expect(Number(initrd[0]!.bytes), why).toBe(statSync(assets.installer!.initrd).size);
    expect(Number(preseedFetched()[0]!.bytes)).toBeGreaterThan(0);
    // through the tokenized URL: the host's token was issued when its config was rendered
    const tokens = JSON.parse(readFileSync(join(lab!.runDir, 'site', 'state', 'install-tokens.json'), 'utf8')) as Record<
      string,
      { token: string }
    >;
    expect(tokens[HOST_MAC]?.token, why).toMatch(/^[0-9a-f]{32}$/);
    expect(
      server.jsonLines().filter((l) => l.status === 403),
      why,
    ).toHaveLength(0);
  }, 240_000);
});
