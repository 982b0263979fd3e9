/**
 * `pxe sync` against a local mirror on 127.0.0.1: verification chains, conditional
 * re-runs, and the guarantee that every failure (bad checksum, 5xx, timeout,
 * truncated body, bad signature, kill -9) leaves the served pair byte-identical.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runSync, type SyncOptions } from '../../src/sync/engine.js';
import { listEntries, rollback } from '../../src/sync/list.js';
import {
  ALPINE,
  content,
  DEBIAN,
  FEDORA,
  LocalMirror,
  makeSite,
  makeTestKey,
  publishAlpine,
  publishDebian,
  publishFedora,
  publishPlain,
  publishSuse,
  startLocalMirror,
  SUSE,
  type Pair,
  type TestKey,
  type TestSite,
  TextSink,
} from '../helpers/mirror.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let mirror: LocalMirror;
let keys: { debian: TestKey; opensuse: TestKey };
let base: string;

/** Generation counter so every publish has new content. */
let gen = 0;
function pair(tag: string): Pair {
  gen++;
  return { kernel: content(`${tag}-kernel-${gen}`, 48 * 1024 + gen), initrd: content(`${tag}-initrd-${gen}`, 96 * 1024 + gen) };
}

const current: Record<string, Pair> = {};

async function publishAll(): Promise<void> {
  current.debian = pair('debian');
  current.fedora = pair('fedora');
  current.opensuse = pair('opensuse');
  current.alpine = pair('alpine');
  current.plain = pair('plain');
  await publishDebian(mirror, current.debian, keys.debian);
  publishFedora(mirror, current.fedora);
  await publishSuse(mirror, current.opensuse, keys.opensuse);
  publishAlpine(mirror, current.alpine);
  publishPlain(mirror, current.plain);
}

/** Installed file names per entry, as the TFTP server resolves them (images/<id>/<ver>/<arch>/<name>). */
const SERVED: Record<string, { dir: string; kernel: string; initrd: string }> = {
  debian: { dir: 'images/debian/12/x86_64', kernel: 'linux', initrd: 'initrd.gz' },
  fedora: { dir: 'images/fedora/40/x86_64', kernel: 'vmlinuz', initrd: 'initrd.img' },
  opensuse: { dir: 'images/opensuse/15.6/x86_64', kernel: 'linux', initrd: 'initrd' },
  alpine: { dir: 'images/alpine/3.20/x86_64', kernel: 'vmlinuz-lts', initrd: 'initramfs-lts' },
  plain: { dir: 'images/plain/1/x86_64', kernel: 'vmlinuz', initrd: 'initrd' },
};

/** Read a served file the way the TFTP server does: resolve symlinks, require the result inside the root. */
function served(site: TestSite, id: string, which: 'kernel' | 'initrd'): Buffer {
  const s = SERVED[id]!;
  const root = realpathSync(site.config.tftp.root);
  const real = realpathSync(join(site.config.tftp.root, s.dir, s[which]));
  expect(relative(root, real).startsWith('..')).toBe(false);
  return readFileSync(real);
}

function expectServed(site: TestSite, id: string, p: Pair): void {
  expect(sha(served(site, id, 'kernel'))).toBe(sha(p.kernel));
  expect(sha(served(site, id, 'initrd'))).toBe(sha(p.initrd));
}

/** Every regular file reachable under the served tree (images/), following the managed links. */
function servedTreeFiles(site: TestSite): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p, `${rel}${n}/`);
      else out.push(`${rel}${n}`);
    }
  };
  walk(join(site.config.tftp.root, 'images'), 'images/');
  return out.sort();
}

const EXPECTED_TREE = Object.values(SERVED)
  .flatMap((s) => [`${s.dir}/${s.kernel}`, `${s.dir}/${s.initrd}`])
  .sort();

function opts(site: TestSite, extra: Partial<SyncOptions> = {}): SyncOptions & { out: TextSink } {
  return {
    config: site.config,
    progress: 'plain',
    out: new TextSink(),
    bootloaders: false,
    render: false,
    fetch: { timeoutMs: 1500, retries: 2, backoffMs: 20 },
    ...extra,
  } as SyncOptions & { out: TextSink };
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), `pxe-sync-${process.pid}-`));
  mirror = await startLocalMirror();
  keys = { debian: await makeTestKey('debian test key'), opensuse: await makeTestKey('opensuse test key') };
});

afterAll(async () => {
  await mirror?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

beforeEach(async () => {
  mirror.clearFaults();
  await publishAll();
});

describe('pxe sync against a local mirror', () => {
  it('downloads, verifies and installs every entry, reports trust, and a re-run transfers no body bytes', async () => {
    const site = makeSite(base, mirror, keys);
    const o = opts(site);
    const r1 = await runSync(o);
    expect(r1.targets.map((t) => [t.id, t.status, t.trust])).toEqual([
      ['debian', 'installed', 'signed'],
      ['fedora', 'installed', 'checksum'],
      ['opensuse', 'installed', 'signed'],
      ['alpine', 'installed', 'checksum'],
      ['plain', 'installed', 'unverified'],
    ]);
    expect(r1.exitCode).toBe(0);
    for (const id of Object.keys(SERVED)) expectServed(site, id, current[id]!);
    expect(servedTreeFiles(site)).toEqual(EXPECTED_TREE);
    expect(o.out.text).toMatch(/debian 12 x86_64: installed snapshot-\S+ \[trust: signed\]/);
    expect(o.out.text).toMatch(/plain 1 x86_64: installed .*\[trust: unverified\]/);
    // the served path is a symlink into the hidden store inside tftproot
    const link = join(site.config.tftp.root, 'images/debian/12/x86_64');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toMatch(/^\.\.\/\.\.\/\.\.\/\.store\/debian\/12-x86_64\/snapshot-/);

    mirror.resetStats();
    const o2 = opts(site);
    const r2 = await runSync(o2);
    expect(r2.exitCode).toBe(0);
    expect(r2.targets.every((t) => t.status === 'unchanged')).toBe(true);
    expect(mirror.stats.bodyBytes).toBe(0);
    expect(mirror.stats.notModified).toBeGreaterThan(0);
    expect(r2.targets.find((t) => t.id === 'debian')!.trust).toBe('signed');
    for (const id of Object.keys(SERVED)) expectServed(site, id, current[id]!);

    const rows = await listEntries({ config: site.config });
    expect(rows.map((r) => [r.id, r.state, r.trust])).toEqual([
      ['debian', 'synced', 'signed'],
      ['fedora', 'synced', 'checksum'],
      ['opensuse', 'synced', 'signed'],
      ['alpine', 'synced', 'checksum'],
      ['plain', 'synced', 'unverified'],
      ['local', 'n/a', undefined],
    ]);
  });

  it('an upstream update installs the new pair; rollback restores the previous one and back', async () => {
    const site = makeSite(base, mirror, keys);
    await runSync(opts(site));
    const old = current.fedora!;
    const next = pair('fedora');
    publishFedora(mirror, next);
    mirror.resetStats();
    const r = await runSync(opts(site, { only: 'fedora' }));
    expect(r.targets.map((t) => t.status)).toEqual(['installed']);
    expect(mirror.bodyBytesFor(`${FEDORA.tree('40', 'x86_64')}/images/pxeboot/vmlinuz`)).toBe(next.kernel.length);
    expectServed(site, 'fedora', next);

    const rb = await rollback('fedora', { config: site.config });
    expect(rb).toHaveLength(1);
    expectServed(site, 'fedora', old);
    const rows = await listEntries({ config: site.config, only: 'fedora' });
    expect(rows[0]!.snapshot).toBe(rb[0]!.to);
    await rollback('fedora', { config: site.config });
    expectServed(site, 'fedora', next);
    // only current + previous are kept
    const snaps = readdirSync(join(site.config.tftp.root, '.store/fedora/40-x86_64'));
    expect(snaps).toHaveLength(2);

    // Rolled back, then synced: upstream still publishes `next`, which the kept snapshot
    // holds, so it is re-installed without downloading a byte of it.
    await rollback('fedora', { config: site.config });
    expectServed(site, 'fedora', old);
    mirror.resetStats();
    const again = await runSync(opts(site, { only: 'fedora' }));
    expect(again.targets[0]!.status).toBe('installed');
    expect(again.targets[0]!.files.map((f) => f.action)).toEqual(['reused', 'reused']);
    expect(mirror.bodyBytesFor(`${FEDORA.tree('40', 'x86_64')}/images/pxeboot/vmlinuz`)).toBe(0);
    expect(mirror.bodyBytesFor(`${FEDORA.tree('40', 'x86_64')}/images/pxeboot/initrd.img`)).toBe(0);
    expectServed(site, 'fedora', next);
    expect((await runSync(opts(site, { only: 'fedora' }))).targets[0]!.status).toBe('unchanged');
    expectServed(site, 'fedora', next);
  });

  it('only the changed file of a pair is downloaded; the other is carried over', async () => {
    const site = makeSite(base, mirror, keys);
    await runSync(opts(site));
    const next: Pair = { kernel: current.debian!.kernel, initrd: content(`debian-initrd-new-${++gen}`, 100 * 1024) };
    await publishDebian(mirror, next, keys.debian);
    mirror.resetStats();
    const r = await runSync(opts(site, { only: 'debian' }));
    expect(r.targets[0]!.status).toBe('installed');
    expect(mirror.bodyBytesFor(DEBIAN.kernel('bookworm', 'amd64'))).toBe(0);
    expect(mirror.bodyBytesFor(DEBIAN.initrd('bookworm', 'amd64'))).toBe(next.initrd.length);
    expectServed(site, 'debian', next);
  });
});

describe('failures keep the previous pair served, byte-identical', () => {
  let site: TestSite;
  let before: Record<string, Pair>;

  beforeEach(async () => {
    site = makeSite(base, mirror, keys);
    const r = await runSync(opts(site));
    expect(r.exitCode).toBe(0);
    before = { ...current };
    // upstream moves on for every entry
    await publishAll();
  });

  function expectOldKeptNoPartial(id: string): void {
    expectServed(site, id, before[id]!);
    expect(servedTreeFiles(site)).toEqual(EXPECTED_TREE);
  }

  async function failingRun(id: string, extra: Partial<SyncOptions> = {}): Promise<string> {
    mirror.resetStats();
    const o = opts(site, extra);
    const r = await runSync(o);
    expect(r.exitCode).toBe(1);
    const bad = r.targets.filter((t) => t.status === 'failed').map((t) => t.id);
    expect(bad).toEqual([id]);
    // the other entries were not stopped by the failure
    for (const t of r.targets) if (t.id !== id) expectServed(site, t.id, current[t.id]!);
    expectOldKeptNoPartial(id);
    const rows = await listEntries({ config: site.config, only: id });
    expect(rows[0]!.state).toBe('failed (previous kept)');
    return r.targets.find((t) => t.id === id)!.error!;
  }

  it('checksum mismatch (mirror serves other bytes than the manifest lists)', async () => {
    mirror.fault(`${FEDORA.tree('40', 'x86_64')}/images/pxeboot/initrd.img`, { wrongContent: content('evil', 96 * 1024) });
    expect(await failingRun('fedora')).toMatch(/does not match the expected/);
  });

  it('HTTP 500 (after bounded retries)', async () => {
    const p = `${ALPINE.dir('3.20', 'x86_64')}/vmlinuz-lts`;
    mirror.fault(p, { status: 500 });
    expect(await failingRun('alpine')).toMatch(/HTTP 500/);
    expect(mirror.stats.byPath.get(p)!.requests).toBe(3); // 1 + 2 retries
  });

  it('timeout (mirror never answers)', async () => {
    mirror.fault(`${SUSE.repo('15.6')}/boot/x86_64/loader/initrd`, { delayMs: 60_000 });
    expect(await failingRun('opensuse', { fetch: { timeoutMs: 400, retries: 1, backoffMs: 10 } })).toMatch(/timeout|timed out|ETIMEDOUT/i);
  });

  it('truncated body (Content-Length declared, connection closed early)', async () => {
    mirror.fault('plain/boot/initrd', { truncateAt: 10_000 });
    expect(await failingRun('plain')).toMatch(/truncated|aborted|premature|ECONNRESET|closed/i);
  });

  it('bad signature on InRelease', async () => {
    const other = await makeTestKey('attacker');
    await publishDebian(mirror, pair('debian'), other);
    expect(await failingRun('debian')).toMatch(/signature/i);
  });

  it('SHA256SUMS that does not match the signed InRelease', async () => {
    const sumsPath = DEBIAN.sums('bookworm', 'amd64');
    mirror.put(sumsPath, Buffer.concat([mirror.get(sumsPath)!, Buffer.from(`${'a'.repeat(64)}  ./extra\n`)]));
    expect(await failingRun('debian')).toMatch(/does not match the signed/);
  });

  it('bad detached signature on openSUSE CHECKSUMS', async () => {
    const r = SUSE.repo('15.6');
    mirror.put(`${r}/CHECKSUMS`, Buffer.concat([mirror.get(`${r}/CHECKSUMS`)!, Buffer.from('\n')]));
    expect(await failingRun('opensuse')).toMatch(/signature/i);
  });
});
