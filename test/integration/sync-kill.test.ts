/**
 * `kill -9` of a `pxe sync` child process mid-download: the served pair must stay
 * byte-identical and fetchable with a real TFTP client (tftp-hpa against our TFTP
 * server on 127.0.0.1), nothing partial may appear under tftproot, and the next
 * run must take over the stale lock, clean the staging leftovers and finish.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { runSync } from '../../src/sync/engine.js';
import { TftpServer } from '../../src/tftp/server.js';
import {
  content,
  DEBIAN,
  makeSite,
  makeTestKey,
  publishAll,
  startLocalMirror,
  type LocalMirror,
  type Pair,
  type TestKey,
} from '../helpers/mirror.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const REPO = join(import.meta.dirname, '../..');
const BUILD = join(REPO, '.cache', `sync-build-${process.pid}`);

let mirror: LocalMirror;
let keys: { debian: TestKey; opensuse: TestKey };
let base: string;
let tftp: TftpServer | undefined;
let child: ChildProcess | undefined;
let gen = 0;
const pair = (tag: string): Pair => ({
  kernel: content(`${tag}-k-${++gen}`, 40_000 + gen),
  initrd: content(`${tag}-i-${gen}`, 512 * 1024 + gen),
});

/** Fetch through the real TFTP path: tftp-hpa client -> our TFTP server -> symlink -> store. */
async function tftpGet(port: number, remote: string, dir: string): Promise<Buffer> {
  const local = join(dir, `got-${++gen}`);
  await run('tftp', ['-m', 'binary', '127.0.0.1', String(port), '-c', 'get', remote, local], { timeout: 20_000 });
  return readFileSync(local);
}

function allFiles(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...allFiles(p));
    else out.push(p);
  }
  return out;
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), `pxe-sync-kill-${process.pid}-`));
  // The child runs the real command code compiled to JS (Node 20 cannot run .ts);
  // only src/sync/main.ts and what it imports are compiled.
  await run(
    process.execPath,
    [
      join(REPO, 'node_modules/typescript/bin/tsc'),
      ...['--outDir', BUILD, '--rootDir', join(REPO, 'src'), '--module', 'NodeNext', '--moduleResolution', 'NodeNext'],
      ...['--target', 'ES2022', '--strict', '--skipLibCheck', '--esModuleInterop', join(REPO, 'src/sync/main.ts')],
    ],
    { cwd: REPO, timeout: 120_000 },
  );
  mirror = await startLocalMirror();
  keys = { debian: await makeTestKey(), opensuse: await makeTestKey() };
});

afterAll(async () => {
  // still running only if the test failed before its own kill
  if (child?.pid && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await tftp?.close();
  await mirror?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
  rmSync(BUILD, { recursive: true, force: true });
});

describe('kill -9 of pxe sync mid-download', () => {
  it('leaves the old pair served over TFTP, byte-identical, with nothing partial visible', async () => {
    const site = makeSite(base, mirror, keys);
    const old = await publishAll(mirror, keys, pair);
    const first = await runSync({ config: site.config, progress: 'none', bootloaders: false, render: false });
    expect(first.exitCode).toBe(0);

    tftp = new TftpServer({ root: site.config.tftp.root, listen: [{ host: '127.0.0.1', port: 0 }], logger: silentLogger });
    await tftp.start();
    const port = tftp.addresses()[0]!.port;
    const kernelPath = 'images/debian/12/x86_64/linux';
    const initrdPath = 'images/debian/12/x86_64/initrd.gz';
    expect(sha(await tftpGet(port, initrdPath, base))).toBe(sha(old.debian.initrd));

    // Upstream changes; the new Debian initrd stalls after 64 KiB so the kill lands mid-body.
    const next = await publishAll(mirror, keys, pair);
    const stalled = DEBIAN.initrd('bookworm', 'amd64');
    mirror.fault(stalled, { stallAfter: 64 * 1024 });
    mirror.resetStats();

    child = spawn(
      process.execPath,
      [join(BUILD, 'sync/main.js'), 'sync', '-c', join(site.root, 'pxe.yaml'), '--no-progress', '--only', 'debian'],
      {
        cwd: site.root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let childOut = '';
    child.stdout!.on('data', (c: Buffer) => (childOut += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (childOut += c.toString()));
    const staging = join(site.config.stateDir, 'sync', 'staging');
    // Wait (bounded) until the child has received part of the body and its staging file exists.
    let midTransfer = false;
    for (let i = 0; i < 300 && child.exitCode === null; i++) {
      const partial = existsSync(staging) && allFiles(staging).some((f) => f.endsWith('initrd.gz') && statSync(f).size > 0);
      if (mirror.bodyBytesFor(stalled) >= 64 * 1024 && partial) {
        midTransfer = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(midTransfer, `child output: ${childOut}`).toBe(true);
    const exited = new Promise<void>((r) => child!.once('exit', () => r()));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    expect(child.signalCode).toBe('SIGKILL');

    // The served pair is the old one, byte for byte, through the real TFTP path.
    expect(sha(await tftpGet(port, kernelPath, base))).toBe(sha(old.debian.kernel));
    expect(sha(await tftpGet(port, initrdPath, base))).toBe(sha(old.debian.initrd));
    // Nothing partial anywhere inside tftproot (the store included): every file there is
    // a complete, known file. The partial download sits in stateDir's staging only.
    const known = new Set(Object.values(old).flatMap((p) => [sha(p.kernel), sha(p.initrd)]));
    for (const f of allFiles(site.config.tftp.root)) expect(known.has(sha(readFileSync(f))), f).toBe(true);
    expect(allFiles(staging).length).toBeGreaterThan(0);
    expect(existsSync(join(site.config.stateDir, 'sync', 'lock'))).toBe(true);

    // The next run takes over the stale lock, cleans staging and installs the new pair.
    mirror.clearFaults();
    const again = await runSync({ config: site.config, progress: 'none', bootloaders: false, render: false, only: 'debian' });
    expect(again.exitCode).toBe(0);
    expect(again.targets[0]!.status).toBe('installed');
    expect(readdirSync(staging)).toEqual([]);
    expect(sha(await tftpGet(port, kernelPath, base))).toBe(sha(next.debian.kernel));
    expect(sha(await tftpGet(port, initrdPath, base))).toBe(sha(next.debian.initrd));
  });

  it('the command exits 1 when one entry fails, the others still sync; list and rollback report per entry', async () => {
    const site = makeSite(base, mirror, keys);
    await publishAll(mirror, keys, pair);
    mirror.clearFaults();
    mirror.fault('plain/boot/vmlinuz', { status: 503 });
    const cli = (...args: string[]) =>
      run(process.execPath, [join(BUILD, 'sync/main.js'), ...args, '-c', join(site.root, 'pxe.yaml')], {
        cwd: site.root,
        timeout: 60_000,
      }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
      );
    const sync = await cli('sync', '--no-progress');
    expect(sync.code, sync.out).toBe(1);
    // one plain line per file and a trust level per entry
    expect(sync.out).toMatch(/debian 12 x86_64 linux: .* sha256 ok/);
    expect(sync.out).toMatch(/debian 12 x86_64: installed snapshot-\S+ \[trust: signed\]/);
    // the file's line says why, the entry's line only that it failed: the 503 once
    expect(sync.out).toMatch(/plain 1 x86_64 \S+: failed: .*HTTP 503/);
    expect(sync.out).toMatch(/^plain 1 x86_64: FAILED$/m);
    expect(sync.out.match(/HTTP 503/g)).toHaveLength(1);
    const list = await cli('list');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^debian\s+12\s+x86_64\s+synced\s+signed\s+snapshot-/m);
    expect(list.out).toMatch(/^plain\s+1\s+x86_64\s+failed\s+\(unverified\)/m);
    expect(list.out).toMatch(/^local\s+-\s+-\s+n\/a/m);
    const rb = await cli('rollback', 'debian');
    expect(rb.code).toBe(2);
    expect(rb.out).toMatch(/nothing to roll back/);
  });
});
