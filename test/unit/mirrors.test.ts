import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog/load.js';
import {
  CatalogRenderError,
  renderGrubConfig,
  renderHostPxelinux,
  renderIpxeScript,
  renderMainMenu,
  renderUnattended,
  unattendedFileNames,
  type RenderContext,
} from '../../src/catalog/render.js';
import { ARCHES, expandEntry, versionArches } from '../../src/catalog/schema.js';
import { configSchema } from '../../src/config.js';
import { parseHosts } from '../../src/hosts/load.js';
import { parseYaml } from '../../src/yamlfile.js';

/**
 * A site with a local mirror for every catalog entry (pxe.yaml `mirrors:`) must never
 * hand a client a file that names an upstream host: an air-gapped installer would
 * go there and fail. Every rendered file is checked: menus for every architecture
 * and firmware, per-host pxelinux/iPXE/GRUB configs and every answer file, for
 * every version and architecture of every shipped entry.
 */
const catalog = loadCatalog(resolve(__dirname, '../../distros'));
const SITE = 'mirror.site.example';
const mirrorLines = catalog.entries.filter((e) => e.mirror).map((e) => `  ${e.id}: http://${SITE}/${e.id}/`);
// The mirrors go through the pxe.yaml schema, as `pxe serve` loads them.
const config = parseYaml('pxe.yaml', `mirrors:\n${mirrorLines.join('\n')}\n`, configSchema);

const upstreamHosts = [...new Set(catalog.entries.flatMap((e) => (e.mirror ? [new URL(e.mirror).hostname] : [])))];

const ctx: RenderContext = {
  catalog,
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  mirrors: config.mirrors,
  isInstalled: () => true,
  hostInstalled: () => false,
};

function hostsFor(): ReturnType<typeof parseHosts> {
  const lines = ['hosts:'];
  let i = 0;
  for (const e of catalog.entries)
    for (const v of e.versions)
      for (const a of versionArches(e, v)) {
        i++;
        const mac = `52:54:00:10:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
        lines.push(`  "${mac}": { hostname: h${i}, entry: ${e.id}, version: "${v.version}", arch: ${a} }`);
      }
  return parseHosts('hosts.yaml', `${lines.join('\n')}\n`, catalog);
}

function upstreamIn(text: string): string[] {
  return upstreamHosts.filter((h) => text.includes(h));
}

describe('mirrors: every rendered file uses the site mirror', () => {
  it('the upstream host list is what the catalog names (the check is not vacuous)', () => {
    expect(upstreamHosts).toContain('deb.debian.org');
    expect(upstreamHosts).toContain('dl-cdn.alpinelinux.org');
    expect(upstreamHosts.length).toBeGreaterThan(8);
  });

  it('menus for every architecture and firmware name no upstream host', () => {
    for (const arch of ARCHES)
      for (const firmware of ['bios', 'efi'] as const) {
        const files = {
          pxelinux: renderMainMenu(ctx, { arch, firmware }),
          ipxe: renderIpxeScript(ctx, null, { arch, firmware }),
          grub: renderGrubConfig(ctx, null, { arch }),
        };
        for (const [name, text] of Object.entries(files)) expect(upstreamIn(text), `${name} menu ${arch} ${firmware}`).toEqual([]);
      }
    // Alpine's repository argument is in every menu: it must be the site's.
    expect(renderMainMenu(ctx)).toContain(`alpine_repo=http://${SITE}/alpine/v`);
  });

  it('per-host boot configs and every answer file name no upstream host', () => {
    const hosts = hostsFor();
    let answers = 0;
    for (const h of hosts.byMac.values()) {
      const what = `${h.entry} ${h.version} ${h.arch}`;
      const files: Array<[string, string]> = [
        ['pxelinux', renderHostPxelinux(ctx, h)],
        ['ipxe', renderIpxeScript(ctx, h)],
      ];
      try {
        files.push(['grub', renderGrubConfig(ctx, h)]);
      } catch (err) {
        // memdisk entries cannot boot under UEFI: a typed 404, not a file.
        expect(err instanceof CatalogRenderError && err.status === 404, `${what}: ${(err as Error).message}`).toBe(true);
      }
      for (const name of unattendedFileNames(ctx, h)) {
        files.push([name, renderUnattended(ctx, h, name).body]);
        answers++;
      }
      for (const [name, text] of files) expect(upstreamIn(text), `${what} ${name}`).toEqual([]);
    }
    expect(answers).toBeGreaterThan(10);
  });

  it('answer files carry the site mirror where the installer reads its packages', () => {
    const hosts = hostsFor();
    const first = (entry: string) => [...hosts.byMac.values()].find((h) => h.entry === entry)!;
    const preseed = renderUnattended(ctx, first('debian'), 'preseed.cfg').body;
    expect(preseed).toMatch(new RegExp(`^d-i mirror/http/hostname string ${SITE}$`, 'm'));
    expect(preseed).toMatch(/^d-i mirror\/http\/directory string \/debian$/m);
    expect(renderUnattended(ctx, first('fedora'), 'kickstart.ks').body).toContain(`url --url="http://${SITE}/fedora/releases/`);
    expect(renderHostPxelinux(ctx, first('opensuse-leap'))).toContain(`install=http://${SITE}/opensuse-leap/distribution/leap/`);
    expect(renderHostPxelinux(ctx, first('archlinux'))).toContain(`archiso_http_srv=http://${SITE}/archlinux/iso/`);
    expect(renderHostPxelinux(ctx, first('ubuntu'))).toContain(`url=http://${SITE}/ubuntu/`);
  });

  it('sync downloads from the site mirror too', () => {
    for (const e of catalog.entries)
      for (const t of expandEntry(e, { mirrors: config.mirrors }))
        for (const f of t.files) expect(f.url.startsWith(`http://${SITE}/${e.id}/`), f.url).toBe(true);
  });
});
