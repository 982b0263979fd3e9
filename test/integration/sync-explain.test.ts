/**
 * A sync that explains itself (bug 6): offline, a mirror host that does not resolve
 * gave ~45 raw EAI_AGAIN lines, each failure twice, and no hint at `mirrors:`. Now:
 * one line per failure, and one line per unresolvable host naming the pxe.yaml keys
 * that override it. Name resolution is made to fail by a lookup function handed to
 * the fetcher (no DNS query leaves the machine); the other entries sync from the
 * local mirror fixture.
 */
import { lookup } from 'node:dns';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteMirrors } from '../../src/catalog/schema.js';
import { runSync } from '../../src/sync/engine.js';
import {
  content,
  makeSite,
  makeTestKey,
  publishAll,
  startLocalMirror,
  TextSink,
  type LocalMirror,
  type Pair,
  type TestKey,
} from '../helpers/mirror.js';

let base = '';
let mirror: LocalMirror;
let keys: { debian: TestKey; opensuse: TestKey };
let gen = 0;
const pair = (tag: string): Pair => ({
  kernel: content(`${tag}-k-${++gen}`, 20_000 + gen),
  initrd: content(`${tag}-i-${gen}`, 40_000 + gen),
});
const OFFLINE = 'mirror.offline.example';

/** Like the system resolver, except that OFFLINE does not resolve (as on a site without DNS for it). */
const dnsLookup = (hostname: string, options: object, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void) => {
  if (hostname === OFFLINE) {
    const err: NodeJS.ErrnoException = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
    process.nextTick(() => cb(err, '', 0));
    return;
  }
  lookup(hostname, options, cb as never);
};

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), `pxe-sync-explain-${process.pid}-`));
  mirror = await startLocalMirror();
  keys = { debian: await makeTestKey(), opensuse: await makeTestKey() };
});
afterAll(async () => {
  await mirror?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('offline mirrors', () => {
  it('one failure line per target, one line per unresolvable host naming its mirrors: keys', async () => {
    const site = makeSite(base, mirror, keys);
    await publishAll(mirror, keys, pair);
    site.config.mirrors = siteMirrors({ ...site.config.mirrors, debian: `http://${OFFLINE}/debian`, alpine: `http://${OFFLINE}/alpine` });
    const out = new TextSink();
    const res = await runSync({
      config: site.config,
      progress: 'plain',
      out,
      bootloaders: false,
      render: false,
      fetch: { retries: 0, timeoutMs: 5_000, dnsLookup },
    });
    expect(res.exitCode).toBe(1);
    const lines = out.text.split('\n').filter((l) => l !== '');
    const failedTargets = res.targets.filter((t) => t.status === 'failed').map((t) => t.id);
    expect([...new Set(failedTargets)].sort()).toEqual(['alpine', 'debian']);
    expect(
      res.targets
        .filter((t) => t.status === 'installed')
        .map((t) => t.id)
        .sort(),
    ).toEqual(['fedora', 'opensuse', 'plain']);

    // the hint: exactly one line for the host, naming both keys
    const hints = lines.filter((l) => l.includes('is unreachable'));
    expect(hints).toEqual([
      `sync: mirror ${OFFLINE} is unreachable (its name does not resolve); point mirrors.alpine, mirrors.debian in pxe.yaml at a reachable (local) mirror`,
    ]);
    // one line per failed target, no line twice, no raw resolver error repeated
    for (const t of res.targets.filter((x) => x.status === 'failed')) {
      const label = `${t.id} ${t.version} ${t.arch}`;
      const targetLines = lines.filter((l) => l.startsWith(`${label}:`));
      const fileLines = lines.filter((l) => l.startsWith(`  ${label} `));
      // the reason once: on each file that failed, or on the target when no file was tried
      if (fileLines.length === 0) expect(targetLines).toEqual([`${label}: FAILED: mirror ${OFFLINE} does not resolve`]);
      else {
        expect(targetLines).toEqual([`${label}: FAILED`]);
        for (const l of fileLines)
          expect(l).toMatch(new RegExp(`^  ${label} \\S+: failed: mirror ${OFFLINE.replace(/\./g, '\\.')} does not resolve$`));
      }
    }
    expect(lines.length).toBe(new Set(lines).size);
    expect(lines.filter((l) => l.includes('ENOTFOUND'))).toEqual([]);
  }, 120_000);

  it('a keyring file that does not exist is one clear line per entry naming the key, not a raw ENOENT', async () => {
    const site = makeSite(base, mirror, keys);
    await publishAll(mirror, keys, pair);
    const missing = join(base, 'no-such-keyring.gpg');
    site.config.keyrings = { ...site.config.keyrings, debian: missing };
    const out = new TextSink();
    const res = await runSync({
      config: site.config,
      only: 'debian',
      progress: 'plain',
      out,
      bootloaders: false,
      render: false,
      fetch: { retries: 0 },
    });
    expect(res.exitCode).toBe(1);
    const lines = out.text.split('\n').filter((l) => l.startsWith('debian '));
    expect(lines).toEqual([
      `debian 12 x86_64: FAILED: keyring "debian": ${missing} does not exist (install the archive keyring package, e.g. debian-archive-keyring, or set keyrings.debian in pxe.yaml)`,
    ]);
    expect(out.text).not.toMatch(/ENOENT/);
  }, 120_000);
});
