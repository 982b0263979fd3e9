/**
 * Catalog layers through the installed CLI: the shipped catalog plus a site directory
 * (pxe.yaml `catalogDirs`) that adds an entry, replaces a shipped one and disables
 * another. `pxe list`, `pxe sync --only` and the written menus all see the merged
 * catalog; the shipped files are not touched.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { content, startLocalMirror, type LocalMirror } from '../helpers/mirror.js';

const run = promisify(execFile);
const CLI = resolve('dist/cli.js');
const SHIPPED = resolve('distros');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const shippedDigest = () =>
  readdirSync(SHIPPED)
    .sort()
    .map((n) => `${n} ${sha(readFileSync(join(SHIPPED, n)))}`)
    .join('\n');

let mirror: LocalMirror;
let dir: string;

/** Runs the CLI; resolves with exit code and output instead of throwing on a non-zero exit. */
async function pxe(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { cwd: dir, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-layers-${process.pid}-`));
  mirror = await startLocalMirror();
  const kernel = content('rescue-kernel', 40_000);
  const initrd = content('rescue-initrd', 90_000);
  mirror.put('rescue/1.0/vmlinuz', kernel);
  mirror.put('rescue/1.0/initrd.img', initrd);
  mirror.put('rescue/1.0/SHA256SUMS', `${sha(kernel)}  vmlinuz\n${sha(initrd)}  initrd.img\n`);
  const ak = content('alpine-kernel', 30_000);
  const ai = content('alpine-initrd', 60_000);
  mirror.put('alpine/v3.22/vmlinuz-lts', ak);
  mirror.put('alpine/v3.22/initramfs-lts', ai);
  mirror.put('alpine/v3.22/SHA256SUMS', `${sha(ak)}  vmlinuz-lts\n${sha(ai)}  initramfs-lts\n`);

  mkdirSync(join(dir, 'site'));
  writeFileSync(
    join(dir, 'site', 'rescue.yaml'),
    `entries:
  - id: rescue
    label: Rescue system
    group: Tools
    mirror: ${mirror.url('rescue')}
    versions: [{ version: "1.0" }]
    boot: { method: linux, kernel: "{{ version }}/vmlinuz", initrd: "{{ version }}/initrd.img" }
    checksum: { kind: sha256sums, path: "{{ version }}/SHA256SUMS" }
    trust: checksum
    append: "console=ttyS0"
`,
  );
  writeFileSync(
    join(dir, 'site', 'alpine.yaml'),
    `entries:
  - id: alpine
    label: Alpine (site mirror)
    group: Linux live / tools
    mirror: ${mirror.url('alpine')}
    versions: [{ version: "3.22" }]
    boot: { method: linux, kernel: "v{{ version }}/vmlinuz-lts", initrd: "v{{ version }}/initramfs-lts" }
    checksum: { kind: sha256sums, path: "v{{ version }}/SHA256SUMS" }
    trust: checksum
`,
  );
  writeFileSync(join(dir, 'site', 'off.yaml'), 'disable: [memtest86plus]\n');
  writeFileSync(
    join(dir, 'pxe.yaml'),
    ['serverAddress: 127.0.0.1', 'tftp: { root: ./tftproot }', 'stateDir: ./state', 'catalogDirs: [./site]', ''].join('\n'),
  );
});

afterAll(async () => {
  await mirror?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a site catalog layer over the shipped catalog', () => {
  it('pxe list shows the merged catalog and where each entry came from', async () => {
    const before = shippedDigest();
    const r = await pxe('list', '--config', 'pxe.yaml');
    // the one line every command prints: which configuration it used
    expect(r.stderr).toMatch(/^pxe: config: \S+\/pxe\.yaml \(--config\)\n$/);
    expect(r.code).toBe(0);
    const line = (id: string) => r.stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
    expect(line('rescue')).toMatch(/1\.0\s+x86_64\s+missing\s+\(checksum\)\s+-\s+\S+\/site\/rescue\.yaml$/);
    expect(line('alpine')).toMatch(/\/site\/alpine\.yaml \(replaces shipped: alpine\.yaml\)$/);
    expect(line('debian')).toMatch(/shipped: debian\.yaml$/);
    expect(line('memtest86plus')).toBe('');
    expect(r.stdout).toMatch(/^disabled: memtest86plus \(by \S+\/site\/off\.yaml\)$/m);
    // the replacement is whole: the shipped aarch64 build of alpine is gone with it
    const json = JSON.parse((await pxe('list', '--config', 'pxe.yaml', '--json')).stdout) as Array<{ id: string; arch: string }>;
    expect(json.filter((x) => x.id === 'alpine').map((x) => x.arch)).toEqual(['x86_64']);
    expect(shippedDigest()).toBe(before);
  });

  it('pxe sync --only syncs the added and the replacing entry; the written menus offer both', async () => {
    const before = shippedDigest();
    const a = await pxe('sync', '--config', 'pxe.yaml', '--only', 'rescue', '--no-progress');
    expect(a.stderr + a.stdout).toMatch(/rescue 1\.0 x86_64/);
    expect(a.code).toBe(0);
    const b = await pxe('sync', '--config', 'pxe.yaml', '--only', 'alpine', '--no-progress', '--write-menus');
    expect(b.code).toBe(0);
    expect(readFileSync(join(dir, 'tftproot/images/rescue/1.0/x86_64/vmlinuz')).equals(content('rescue-kernel', 40_000))).toBe(true);
    expect(readFileSync(join(dir, 'tftproot/images/alpine/3.22/x86_64/vmlinuz-lts')).equals(content('alpine-kernel', 30_000))).toBe(true);
    const menu = readFileSync(join(dir, 'tftproot/pxelinux.cfg/default'), 'utf8');
    expect(menu).toMatch(/Rescue system/);
    expect(menu).toMatch(/Alpine \(site mirror\)/);
    expect(menu).toMatch(/images\/rescue\/1\.0\/x86_64\/vmlinuz/);
    const list = await pxe('list', '--config', 'pxe.yaml', '--only', 'rescue');
    expect(list.stdout).toMatch(/^rescue\s+1\.0\s+x86_64\s+synced\s+checksum/m);
    const gone = await pxe('sync', '--config', 'pxe.yaml', '--only', 'memtest86plus', '--no-progress');
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/no catalog entry "memtest86plus"/);
    expect(shippedDigest()).toBe(before);
  });

  it('a configured catalog directory that does not exist is an error naming the key and line', async () => {
    writeFileSync(join(dir, 'bad.yaml'), ['stateDir: ./state', 'catalogDirs:', '  - ./site', '  - ./nowhere', ''].join('\n'));
    const r = await pxe('list', '--config', 'bad.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml:4:5: field "catalogDirs\[1\]": catalog directory "\.\/nowhere" does not exist/);
  });

  it('disabling an id no earlier layer defines names the file, line and the likely id', async () => {
    mkdirSync(join(dir, 'typo'));
    writeFileSync(join(dir, 'typo', 'off.yaml'), 'disable:\n  - memtest86\n');
    writeFileSync(join(dir, 'typo.yaml'), 'stateDir: ./state\ncatalogDirs: [./typo]\n');
    const r = await pxe('list', '--config', 'typo.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /typo\/off\.yaml:2:5: field "disable\[0\]": no earlier catalog layer defines "memtest86" \(did you mean "memtest86plus"\?\)/,
    );
  });
});
