/**
 * `pxe catalog check` (the built CLI) against the local mirror fixture: a good entry is
 * ready to sync, a wrong path is reported with its URL and HTTP status, a checksum file
 * that does not list a file is named, a template error points at file:line:column;
 * every upstream layout of the sync tests (signed InRelease, .treeinfo, CHECKSUMS,
 * per-file .sha256, none) passes online.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { content, makeSite, makeTestKey, publishAll, startLocalMirror, type LocalMirror, type Pair } from '../helpers/mirror.js';

const run = promisify(execFile);
const CLI = resolve('dist/cli.js');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let mirror: LocalMirror;
let dir: string;

async function pxe(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { cwd: dir, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

const entry = (kernel: string, extra = '') => `entries:
  - id: rescue
    label: Rescue system
    group: Tools
    mirror: ${mirror.url('rescue')}
    versions: [{ version: "1.0" }, { version: "1.1" }]
    boot:
      method: linux
      kernel: "${kernel}"
      initrd: "{{ version }}/initrd.img"
    checksum: { kind: sha256sums, path: "{{ version }}/SHA256SUMS" }
    trust: checksum
    append: "console=ttyS0"${extra}
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `pxe-check-${process.pid}-`));
  mirror = await startLocalMirror();
  for (const v of ['1.0', '1.1']) {
    const k = content(`k${v}`, 5000);
    const i = content(`i${v}`, 7000);
    mirror.put(`rescue/${v}/vmlinuz`, k);
    mirror.put(`rescue/${v}/initrd.img`, i);
    // 1.1's SHA256SUMS forgets the initrd
    mirror.put(`rescue/${v}/SHA256SUMS`, `${sha(k)}  vmlinuz\n${v === '1.0' ? `${sha(i)}  initrd.img\n` : ''}`);
  }
  writeFileSync(join(dir, 'pxe.yaml'), 'stateDir: ./state\n');
});

afterAll(async () => {
  await mirror?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pxe catalog check', () => {
  it('prints the URLs an entry expands to; offline it only renders', async () => {
    writeFileSync(join(dir, 'good.yaml'), entry('{{ version }}/vmlinuz'));
    const r = await pxe('catalog', 'check', 'good.yaml');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`kernel    ${mirror.url('rescue')}/1.0/vmlinuz`);
    expect(r.stdout).toContain(`checksum  ${mirror.url('rescue')}/1.1/SHA256SUMS [sha256sums: initrd.img]`);
    expect(r.stdout).toMatch(/1 entry: ready to sync \(templates render; not asked the mirror/);
  });

  it('online: a manifest that does not list a file, and a wrong path with URL and HTTP status, fail with exit 1', async () => {
    const listsAll = await pxe('catalog', 'check', 'good.yaml', '--online', '--no-progress');
    expect(listsAll.code).toBe(1);
    expect(listsAll.stderr).toContain(
      `pxe: rescue 1.1 x86_64 checksum: ${mirror.url('rescue')}/1.1/SHA256SUMS: does not list "initrd.img"`,
    );
    expect(listsAll.stderr.trim().split('\n')).toHaveLength(1);

    writeFileSync(
      join(dir, 'wrong.yaml'),
      entry('{{ version }}/linux')
        .replace('{ version: "1.1" }', '{ version: "1.0", label: x }')
        .replace(', { version: "1.0", label: x }', ''),
    );
    const r = await pxe('catalog', 'check', 'wrong.yaml', '--online', '--no-progress');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`pxe: rescue 1.0 x86_64 kernel: ${mirror.url('rescue')}/1.0/linux: HTTP 404`);
    expect(r.stdout).toMatch(/rescue 1\.0 x86_64 kernel: FAILED HTTP 404/);
    expect(r.stdout).toMatch(/rescue 1\.0 x86_64 initrd: ok /);
  });

  it('a good entry passes online (exit 0)', async () => {
    writeFileSync(join(dir, 'one.yaml'), entry('{{ version }}/vmlinuz').replace(', { version: "1.1" }', ''));
    const r = await pxe('catalog', 'check', 'one.yaml', '--online', '--no-progress');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/asking the mirror about 3 URL\(s\)/);
    expect(r.stdout).toMatch(/1 entry: ready to sync\n$/);
  });

  it('a template error names file:line:column and the field', async () => {
    writeFileSync(join(dir, 'typo.yaml'), entry('{{ verison }}/vmlinuz'));
    const r = await pxe('catalog', 'check', 'typo.yaml');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `pxe: ${join(dir, 'typo.yaml').replace(/[.]/g, '\\.')}:9:15: field "entries\\[0\\]\\.boot\\.kernel": entry "rescue": rescue\\.boot\\.kernel: unknown variable "verison" \\(did you mean "version"\\?\\)`,
      ),
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    writeFileSync(
      join(dir, 'append.yaml'),
      entry('{{ version }}/vmlinuz').replace('append: "console=ttyS0"', 'append: "console={{ tty }}"'),
    );
    const a = await pxe('catalog', 'check', 'append.yaml');
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/append\.yaml:13:13: field "entries\[0\]\.append": .*unknown variable "tty"/);
  });

  it('checks entries of the configured catalog by id: every upstream layout of the fixture passes online', async () => {
    const keys = { debian: await makeTestKey(), opensuse: await makeTestKey() };
    let n = 0;
    await publishAll(mirror, keys, (tag): Pair => ({ kernel: content(`${tag}-k${++n}`, 3000), initrd: content(`${tag}-i${n}`, 4000) }));
    const site = makeSite(dir, mirror, keys);
    const all = await pxe('catalog', 'check', '--config', join(site.root, 'pxe.yaml'), '--online', '--no-progress');
    expect(all.stderr).toBe('');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/6 entries: ready to sync/);
    expect(all.stdout).toMatch(/debian 12 x86_64 signature: ok .*\/InRelease/);
    const one = await pxe('catalog', 'check', 'fedora', '--config', join(site.root, 'pxe.yaml'));
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/releases\/40\/Everything\/x86_64\/os\/\.treeinfo \[treeinfo: images\/pxeboot\/vmlinuz\]/);
    const none = await pxe('catalog', 'check', 'nosuch', '--config', join(site.root, 'pxe.yaml'));
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no catalog entry "nosuch"/);
  });
});
