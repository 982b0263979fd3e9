/**
 * `pxe sync` under load and under a full disk, against the sync engineer's local
 * mirror on 127.0.0.1:
 * - 20 TFTP transfers of an entry's initrd in flight (10 real tftp-hpa clients, 10
 *   raw clients that deliberately hold their transfer open at block 2 until the new
 *   version is installed) while a new version is synced: every transfer is
 *   byte-identical to the version it started on, requests after the switch get the
 *   new one;
 * - the disk fills up during a sync (a small tmpfs mounted here): a clear error, the
 *   previous files intact and served, no partial file visible in the served tree.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { runSync, type SyncOptions } from '../../src/sync/engine.js';
import { TftpServer } from '../../src/tftp/server.js';
import {
  content,
  makeSite,
  makeTestKey,
  publishDebian,
  startLocalMirror,
  type LocalMirror,
  type TestKey,
  type TestSite,
  TextSink,
} from '../helpers/mirror.js';
import { run } from '../helpers/netns.js';
import { RawPeer, rawGet } from '../helpers/tftp.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const INITRD = 'images/debian/12/x86_64/initrd.gz';
const KERNEL = 'images/debian/12/x86_64/linux';

let mirror: LocalMirror;
let keys: { debian: TestKey; opensuse: TestKey };
let base = '';

const syncOpts = (site: TestSite): SyncOptions & { out: TextSink } => ({
  config: site.config,
  only: 'debian',
  progress: 'plain',
  out: new TextSink(),
  bootloaders: false,
  render: false,
  fetch: { timeoutMs: 5000, retries: 1, backoffMs: 20 },
});

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), `pxe-opsync-${process.pid}-`));
  mirror = await startLocalMirror();
  keys = { debian: await makeTestKey('debian ops key'), opensuse: await makeTestKey('opensuse ops key') };
});

afterAll(async () => {
  await mirror?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('pxe sync while 20 TFTP transfers of the initrd are in flight', () => {
  let tftp: TftpServer | undefined;
  afterAll(async () => {
    await tftp?.close();
  });

  it('every transfer gets the version it started on; later requests get the new one', async () => {
    const site = makeSite(base, mirror, keys);
    const v1 = { kernel: content('ops-kernel-v1', 64 * 1024), initrd: content('ops-initrd-v1', 3 << 20) };
    const v2 = { kernel: content('ops-kernel-v2', 64 * 1024 + 1), initrd: content('ops-initrd-v2', (3 << 20) + 4096) };
    await publishDebian(mirror, v1, keys.debian);
    const r1 = await runSync(syncOpts(site));
    expect(r1.exitCode, JSON.stringify(r1.targets)).toBe(0);

    tftp = new TftpServer({
      root: site.config.tftp.root,
      listen: [{ host: '127.0.0.1', port: 0 }],
      logger: silentLogger,
      maxTransfersPerClient: 64,
    });
    await tftp.start();
    const port = tftp.addresses()[0]!.port;

    // 10 raw clients hold their transfer at block 2 until the switch happened
    let switched!: () => void;
    const switchDone = new Promise<void>((r) => (switched = r));
    const held: Array<Promise<Buffer>> = [];
    const peers: RawPeer[] = [];
    let atBlock2 = 0;
    for (let i = 0; i < 10; i++) {
      const peer = await new RawPeer().bind();
      peers.push(peer);
      held.push(
        rawGet(
          peer,
          port,
          INITRD,
          [
            ['blksize', '1428'],
            ['timeout', '30'],
          ],
          async (block) => {
            if (block === 2) {
              atBlock2++;
              await switchDone;
            }
          },
        ).then((r) => {
          if (r.error) throw new Error(`raw transfer failed: ${r.error.message}`);
          return r.data;
        }),
      );
    }
    // 10 tftp-hpa clients, started before the switch
    const outs = Array.from({ length: 10 }, (_, i) => join(site.root, `hpa-${i}.bin`));
    const hpa = outs.map((out) => run(['tftp', '-m', 'binary', '127.0.0.1', String(port), '-c', 'get', INITRD, out], 120_000));
    // all 20 requests reached the server (opened their file) before the switch
    for (let i = 0; i < 400 && (atBlock2 < 10 || tftp.stats.transfersStarted < 20); i++) await new Promise((r) => setTimeout(r, 25));
    expect(atBlock2).toBe(10);
    expect(tftp.stats.transfersStarted).toBe(20);
    expect(tftp.stats.active).toBeGreaterThanOrEqual(10);

    // the new version is installed while they run
    await publishDebian(mirror, v2, keys.debian);
    const r2 = await runSync(syncOpts(site));
    expect(r2.exitCode, JSON.stringify(r2.targets)).toBe(0);
    expect(r2.targets[0]?.status).toBe('installed');
    expect(sha(readFileSync(join(site.config.tftp.root, INITRD)))).toBe(sha(v2.initrd));
    // the held transfers were genuinely in flight across the switch
    expect(tftp.stats.active).toBeGreaterThanOrEqual(10);

    // a request after the switch gets the new version
    const after = join(site.root, 'after.bin');
    const ra = await run(['tftp', '-m', 'binary', '127.0.0.1', String(port), '-c', 'get', INITRD, after], 60_000);
    expect(ra.code, ra.stderr).toBe(0);
    expect(sha(readFileSync(after))).toBe(sha(v2.initrd));

    switched();
    const heldData = await Promise.all(held);
    for (const d of heldData) expect(sha(d)).toBe(sha(v1.initrd));
    const results = await Promise.all(hpa);
    for (const [i, r] of results.entries()) {
      expect(r.code, r.stderr).toBe(0);
      expect(sha(readFileSync(outs[i]!))).toBe(sha(v1.initrd));
    }
    for (const p of peers) p.close();
  }, 180_000);
});

describe('disk full during pxe sync', () => {
  let mnt = '';
  let mounted = false;

  beforeAll(async () => {
    mnt = join(base, 'small-disk');
    mkdirSync(mnt);
    const r = await run(['mount', '-t', 'tmpfs', '-o', 'size=8m', `pxe-${process.pid}-tmpfs`, mnt]);
    expect(r.code, r.stderr).toBe(0);
    mounted = true;
  });

  afterAll(async () => {
    if (mounted) await run(['umount', mnt]);
  });

  it('fails with a clear error, keeps the previous files served, shows no partial file', async () => {
    const site = makeSite(mnt, mirror, keys);
    const v1 = { kernel: content('full-kernel-v1', 64 * 1024), initrd: content('full-initrd-v1', 1 << 20) };
    await publishDebian(mirror, v1, keys.debian);
    const r1 = await runSync(syncOpts(site));
    expect(r1.exitCode, JSON.stringify(r1.targets)).toBe(0);

    // the new initrd does not fit in what is left of the 8 MiB disk
    const v2 = { kernel: content('full-kernel-v2', 64 * 1024 + 7), initrd: content('full-initrd-v2', 12 << 20) };
    await publishDebian(mirror, v2, keys.debian);
    const o = syncOpts(site);
    const r2 = await runSync(o);
    expect(r2.exitCode).toBe(1);
    const t = r2.targets.find((x) => x.id === 'debian');
    expect(t?.status).toBe('failed');
    expect(t?.error ?? '').toMatch(/ENOSPC|no space left/i);
    // the reason once, on the file's line; the target line says what was kept
    expect(o.out.text).toMatch(/debian 12 x86_64 initrd\.gz: failed: .*(ENOSPC|no space left)/i);
    expect(o.out.text).toMatch(/debian 12 x86_64: FAILED \(previous kept/);

    // previous pair intact and still what is served
    const root = site.config.tftp.root;
    expect(sha(readFileSync(join(root, INITRD)))).toBe(sha(v1.initrd));
    expect(sha(readFileSync(join(root, KERNEL)))).toBe(sha(v1.kernel));
    // nothing partial in the served tree: exactly the two files, both complete
    const files: string[] = [];
    const walk = (dir: string, rel: string) => {
      for (const n of readdirSync(dir)) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
        else files.push(`${rel}${n}`);
      }
    };
    walk(join(root, 'images'), 'images/');
    expect(files.sort()).toEqual([INITRD, KERNEL]);
    expect(realpathSync(join(root, INITRD)).startsWith(realpathSync(root))).toBe(true);
    // /metrics shows the failed sync per entry (from the state pxe sync wrote)
    const m = new Metrics(false);
    m.setSyncStateDir(site.config.stateDir);
    const text = (await m.render()).body;
    expect(text).toMatch(/^pxe_sync_entry_ok\{entry="debian",version="12",arch="x86_64"\} 0$/m);
    expect(text).toMatch(/^pxe_sync_last_success_timestamp_seconds\{entry="debian",version="12",arch="x86_64"\} \d+/m);
    // and the space the failed download took was given back (staging removed)
    const df = await run(['df', '--output=used', '-B1', mnt]);
    const used = Number(df.stdout.trim().split('\n').pop());
    expect(used).toBeLessThan(4 << 20);
  }, 120_000);
});
