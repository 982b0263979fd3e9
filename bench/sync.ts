/**
 * Sync benchmark: `pxe sync` of the whole shipped catalog (distros/*.yaml) against a
 * local mirror on 127.0.0.1 that publishes every file the catalog expands to, with
 * matching checksum manifests and signatures (a generated OpenPGP key stands in for
 * the archive keys), so every code path a real sync takes runs: manifest fetch,
 * OpenPGP verification, streaming SHA-256, archive extraction, atomic install.
 *
 *   node dist-bench/bench/sync.js [--mib 320] [--concurrency 4] [--runs 3] [--keep] [--json] [--cpu-prof-dir DIR]
 *
 * Measures, in one run:
 *   - cold sync (empty tftproot and state) wall time and throughput;
 *   - no-change re-run: wall time and body bytes served by the mirror (target 0 B, < 1 s);
 *   - `curl --parallel --parallel-max <concurrency>` fetching the same files from the same
 *     mirror (no verification, no install): the ratio sync/curl is what verification and
 *     atomic install cost over a plain parallel download.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { gzipSync, crc32 } from 'node:zlib';
import * as openpgp from 'openpgp';
import { loadCatalog } from '#pxe/catalog/load.js';
import { expandCatalog, siteMirrors, type ExpandedTarget } from '#pxe/catalog/schema.js';
import { runSync, type SyncConfig } from '#pxe/sync/engine.js';
import { LocalMirror } from '#pxe/sync/localmirror.js';
import { DIST, REPO_ROOT as REPO } from './repo.js';
import { median } from './peers.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface SyncBenchResult {
  targets: number;
  files: number;
  totalBytes: number;
  concurrency: number;
  coldMs: number;
  coldMiBps: number;
  coldExitCode: number;
  rerunMs: number;
  rerunBodyBytes: number;
  rerunRequests: number;
  curlMs: number;
  /** median of the per-round ratios (each round: sync and curl back to back) */
  ratio: number;
  /** curl followed by fsync of its files (coreutils `sync FILE…`) */
  curlDurableMs: number;
  ratioDurable: number;
  /** curl, fsync, then coreutils `sha256sum` of its files: what sync does (it verifies) */
  curlVerifiedMs: number;
  ratioVerified: number;
  runs: number;
  trust: Record<string, number>;
  /** median 1-minute load average at the end of each round (the machine is shared) */
  loadavg: number;
  /** CPU time (user+sys, all threads of the sync process) of the cold sync */
  coldCpuMs: number;
}

/** Write `size` pseudo-random bytes (incompressible, like a real initrd) and return the sha256. */
async function writeRandom(path: string, size: number): Promise<string> {
  mkdirSync(dirname(path), { recursive: true });
  const h = createHash('sha256');
  const ws = createWriteStream(path);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, MiB);
    const b = randomBytes(n);
    h.update(b);
    if (!ws.write(b)) await new Promise<void>((r) => ws.once('drain', () => r()));
    left -= n;
  }
  await new Promise<void>((r, j) => ws.end((e?: Error | null) => (e ? j(e) : r())));
  return h.digest('hex');
}

/** Minimal ustar writer (POSIX.1-1988) for the netboot-tarball entries. */
function tarGz(members: Array<{ name: string; data: Buffer }>): Buffer {
  const blocks: Buffer[] = [];
  for (const m of members) {
    const h = Buffer.alloc(512);
    let name = m.name;
    let prefix = '';
    if (name.length > 100) {
      const cut = name.lastIndexOf('/', 155);
      prefix = name.slice(0, cut);
      name = name.slice(cut + 1);
    }
    h.write(name, 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(m.data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\x0000', 257, 'latin1');
    h.write(prefix, 345, 'utf8');
    let sum = 0;
    for (const x of h) sum += x;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    blocks.push(h, m.data, Buffer.alloc((512 - (m.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks), { level: 1 });
}

/** Minimal stored (method 0) zip writer for the memtest86+ entry. */
function zipStored(members: Array<{ name: string; data: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const m of members) {
    const name = Buffer.from(m.name);
    const crc = crc32(m.data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(m.data.length, 18);
    lh.writeUInt32LE(m.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(m.data.length, 20);
    ch.writeUInt32LE(m.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(off, 42);
    parts.push(lh, name, m.data);
    central.push(ch, name);
    off += 30 + name.length + m.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cd, end]);
}

const pathOf = (url: string) => decodeURIComponent(new URL(url).pathname).replace(/^\/+/, '');

/**
 * Publish everything `targets` need on `mirror`: files (random, sized from the byte
 * budget), archives, checksum manifests, InRelease / detached signatures.
 */
async function publishCatalog(
  mirror: LocalMirror,
  targets: ExpandedTarget[],
  dataDir: string,
  budgetBytes: number,
  key: openpgp.PrivateKey,
): Promise<{ files: Array<{ url: string; size: number }>; totalBytes: number }> {
  const downloads = new Map<string, ExpandedTarget['files']>();
  for (const t of targets) for (const f of t.files) downloads.set(f.url, [...(downloads.get(f.url) ?? []), f]);
  // Weight: kernels/chain files 1, initrds/images 3 (real initrds are 3-5x the kernel).
  const weight = (fs: ExpandedTarget['files']) => fs.reduce((a, f) => a + (f.role === 'kernel' || f.role === 'chain' ? 1 : 3), 0);
  const totalWeight = [...downloads.values()].reduce((a, fs) => a + weight(fs), 0);
  const unit = Math.max(256 * 1024, Math.floor(budgetBytes / Math.max(1, totalWeight)));

  const shaByUrl = new Map<string, string>();
  const files: Array<{ url: string; size: number }> = [];
  let totalBytes = 0;
  let n = 0;
  for (const [url, fs] of downloads) {
    const p = pathOf(url);
    const disk = join(dataDir, `f${n++}`);
    const archive = fs[0]!.extract;
    let size: number;
    let digest: string;
    if (archive) {
      const members = fs.map((f) => ({ name: f.extract!.member, data: randomBytes(unit * (f.role === 'kernel' ? 1 : 3)) }));
      const body = archive.format === 'tar.gz' ? tarGz(members) : zipStored(members);
      writeFileSync(disk, body);
      size = body.length;
      digest = sha(body);
    } else {
      size = unit * weight(fs);
      digest = await writeRandom(disk, size);
    }
    mirror.putFile(p, disk, size, digest);
    shaByUrl.set(url, digest);
    files.push({ url, size });
    totalBytes += size;
  }

  // Checksum manifests, per URL, in each upstream's format.
  const manifests = new Map<string, { kind: string; lines: Map<string, string> }>();
  for (const t of targets)
    for (const f of t.files) {
      if (f.checksum.kind === 'none') continue;
      const m = manifests.get(f.checksum.url) ?? { kind: f.checksum.kind, lines: new Map<string, string>() };
      m.lines.set(f.checksum.key, shaByUrl.get(f.url)!);
      manifests.set(f.checksum.url, m);
    }
  const bodies = new Map<string, Buffer>();
  for (const [url, m] of manifests) {
    let text: string;
    const entries = [...m.lines];
    if (m.kind === 'treeinfo')
      text = `[header]\ntype = productmd.treeinfo\n\n[checksums]\n${entries.map(([k, h]) => `${k} = sha256:${h}`).join('\n')}\n`;
    else if (m.kind === 'sha256-per-file') text = `${entries[0]![1]}  ${entries[0]![0]}\n`;
    else if (m.kind === 'sha256sums') text = entries.map(([k, h]) => `${h}  ./${k}`).join('\n') + '\n';
    else text = entries.map(([k, h]) => `${h}  ${k}`).join('\n') + '\n';
    const body = Buffer.from(text);
    bodies.set(url, body);
    mirror.put(pathOf(url), body);
  }

  // Signatures: one InRelease per suite listing every SHA256SUMS below it; detached .asc/.gpg per file.
  const inreleases = new Map<string, Map<string, Buffer>>();
  for (const t of targets) {
    const s = t.signature;
    if (!s) continue;
    const sumsUrl = t.files.find((f) => f.checksum.kind !== 'none')!.checksum;
    if (sumsUrl.kind === 'none') continue;
    const body = bodies.get(sumsUrl.url)!;
    if (s.kind === 'debian-release') {
      const m = inreleases.get(s.url) ?? new Map<string, Buffer>();
      m.set(s.key, body);
      inreleases.set(s.url, m);
    } else {
      const sig = (await openpgp.sign({
        message: await openpgp.createMessage({ binary: new Uint8Array(body) }),
        signingKeys: key,
        detached: true,
        format: 'armored',
      })) as string;
      mirror.put(pathOf(s.url), sig);
    }
  }
  for (const [url, m] of inreleases) {
    const lines = [...m].map(([k, b]) => ` ${sha(b)} ${b.length} ${k}`).join('\n');
    const text = `Origin: Debian\nSuite: stable\nDate: Sat, 01 Jan 2024 00:00:00 UTC\nSHA256:\n${lines}\n`;
    const signed = await openpgp.sign({ message: await openpgp.createCleartextMessage({ text }), signingKeys: key, format: 'armored' });
    mirror.put(pathOf(url), signed);
  }
  return { files, totalBytes };
}

/**
 * curl's time, and curl followed by coreutils `sync FILE…` (fsync of what it wrote): the
 * second is the like-for-like baseline for a sync that makes its snapshots durable.
 */
async function curlParallel(
  files: Array<{ url: string }>,
  outDir: string,
  concurrency: number,
): Promise<{ ms: number; durableMs: number; verifiedMs: number }> {
  mkdirSync(outDir, { recursive: true });
  const outs = files.map((_f, i) => join(outDir, `c${i}`));
  const cfg = files.map((f, i) => `url = "${f.url}"\noutput = "${outs[i]}"\n`).join('');
  const cfgPath = join(outDir, 'curl.cfg');
  writeFileSync(cfgPath, cfg);
  const t0 = performance.now();
  await run('curl', ['--parallel', '--parallel-max', String(concurrency), '--fail', '--silent', '--show-error', '-K', cfgPath], {
    maxBuffer: 1 << 20,
  });
  const ms = performance.now() - t0;
  await run('sync', outs);
  const durableMs = performance.now() - t0;
  await run('sha256sum', outs, { maxBuffer: 16 << 20 });
  return { ms, durableMs, verifiedMs: performance.now() - t0 };
}

/** Wait (bounded) for a message of `type` from the mirror process, optionally after sending `msg`. */
function ask<T>(child: ChildProcess, type: string, msg?: unknown, timeoutMs = 60_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`mirror process: no "${type}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (m: unknown) => {
      if ((m as { type?: string })?.type !== type) return;
      clearTimeout(timer);
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    if (msg !== undefined) child.send(msg as object);
  });
}

export async function runSyncBench(
  opts: {
    mib?: number;
    concurrency?: number;
    runs?: number;
    keep?: boolean;
    catalogDir?: string;
    cpuProfDir?: string;
    log?: (s: string) => void;
  } = {},
): Promise<SyncBenchResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const concurrency = opts.concurrency ?? 4;
  const work = mkdtempSync(join(tmpdir(), `pxe-bench-sync-${process.pid}-`));
  // The mirror runs in its own process: in-process it would share the event loop (and
  // one of the two cores) with the sync under test but not with curl, skewing the ratio.
  const child = fork(join(DIST, 'sync/localmirror-main.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const { port } = await ask<{ port: number }>(child, 'ready');
    const mirror = new LocalMirror(); // builds the file table; the child serves it
    mirror.port = port;
    const stats = () => ask<{ requests: number; bodyBytes: number }>(child, 'stats', { type: 'stats' });
    const catalogDir = opts.catalogDir ?? (existsSync(join(REPO, 'distros')) ? join(REPO, 'distros') : resolve('distros'));
    const probe = loadCatalog(catalogDir);
    const mirrors = siteMirrors(Object.fromEntries(probe.entries.map((e) => [e.id, mirror.url(`m/${e.id}`)])));
    const catalog = loadCatalog(catalogDir, { mirrors });
    const targets = expandCatalog(catalog, { mirrors });
    const { privateKey, publicKey } = await openpgp.generateKey({ userIDs: [{ name: 'pxe bench archive key' }], format: 'object' });
    const keyFile = join(work, 'bench-key.asc');
    writeFileSync(keyFile, publicKey.armor());
    const keyrings = Object.fromEntries(targets.flatMap((t) => (t.signature ? [[t.signature.keyring, keyFile]] : [])));

    log(`sync bench: ${targets.length} targets; generating mirror data (~${opts.mib ?? 320} MiB)…`);
    const { files, totalBytes } = await publishCatalog(mirror, targets, join(work, 'data'), (opts.mib ?? 320) * MiB, privateKey);
    await ask(child, 'loaded', { type: 'load', table: mirror.exportTable() });

    // Several rounds, medians reported: the machine is shared, single runs are noisy.
    const runs = Math.max(1, opts.runs ?? 3);
    const cold: number[] = [];
    const rerun: number[] = [];
    const curl: number[] = [];
    const ratios: number[] = [];
    const curlDurable: number[] = [];
    const ratiosDurable: number[] = [];
    const curlVerified: number[] = [];
    const ratiosVerified: number[] = [];
    const loads: number[] = [];
    const coldCpu: number[] = [];
    let rerunBodyBytes = 0;
    let rerunRequests = 0;
    let coldExitCode = 0;
    const trust: Record<string, number> = {};
    // Both contenders start from a settled disk: the previous round's deletions and the
    // generated mirror data leave dirty pages and discards that the next fsync (ext4
    // data=ordered commits them all) would otherwise pay for. And the order alternates
    // per round so neither side always runs first.
    const settle = () => run('sync');
    // --cpu-prof-dir: a CPU profile of each cold sync alone (not of data generation or curl)
    let prof: Session | undefined;
    if (opts.cpuProfDir) {
      mkdirSync(opts.cpuProfDir, { recursive: true });
      prof = new Session();
      prof.connect();
      await prof.post('Profiler.enable');
    }
    for (let round = 0; round < runs; round++) {
      const site = join(work, `site-${round}`);
      const config: SyncConfig = { tftp: { root: join(site, 'tftproot') }, stateDir: join(site, 'state'), catalogDir, mirrors, keyrings };
      const common = { config, catalog, progress: 'none' as const, bootloaders: false, render: false, concurrency };

      const doCurl = async () => {
        await settle();
        return curlParallel(files, join(work, `curl-${round}`), concurrency);
      };
      const c0 = round % 2 === 1 ? await doCurl() : undefined;

      await settle();
      let t0 = performance.now();
      const cpu0 = process.cpuUsage();
      if (prof) await prof.post('Profiler.start');
      const first = await runSync(common);
      const coldMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      if (prof) {
        const { profile } = await prof.post('Profiler.stop');
        writeFileSync(join(opts.cpuProfDir!, `cold-${round}.cpuprofile`), JSON.stringify(profile));
      }
      const coldCpuMs = (cpu.user + cpu.system) / 1000;
      coldExitCode = Math.max(coldExitCode, first.exitCode);
      for (const f of first.targets.filter((t) => t.status === 'failed')) log(`  FAILED ${f.unit}: ${f.error}`);
      if (round === 0) for (const t of first.targets) trust[t.trust ?? 'failed'] = (trust[t.trust ?? 'failed'] ?? 0) + 1;

      const before = await stats();
      t0 = performance.now();
      const again = await runSync(common);
      const rerunMs = performance.now() - t0;
      const after = await stats();
      rerunBodyBytes = Math.max(rerunBodyBytes, after.bodyBytes - before.bodyBytes);
      rerunRequests = after.requests - before.requests;
      if (again.targets.some((t) => t.status !== 'unchanged' && t.status !== 'failed')) log('  warning: re-run changed something');

      const c = c0 ?? (await doCurl());
      const curlMs = c.ms;
      curlDurable.push(c.durableMs);
      ratiosDurable.push(coldMs / c.durableMs);
      curlVerified.push(c.verifiedMs);
      ratiosVerified.push(coldMs / c.verifiedMs);
      rmSync(join(work, `curl-${round}`), { recursive: true, force: true });
      rmSync(site, { recursive: true, force: true });
      log(
        `  round ${round + 1}/${runs} (${round % 2 === 1 ? 'curl first' : 'sync first'}, load ${loadavg()[0]!.toFixed(1)}): cold ${(coldMs / 1000).toFixed(2)} s (cpu ${(coldCpuMs / 1000).toFixed(2)} s), re-run ${(rerunMs / 1000).toFixed(3)} s, curl ${(curlMs / 1000).toFixed(2)} s, curl+sync ${(c.durableMs / 1000).toFixed(2)} s, +sha256sum ${(c.verifiedMs / 1000).toFixed(2)} s`,
      );
      loads.push(loadavg()[0]!);
      cold.push(coldMs);
      coldCpu.push(coldCpuMs);
      rerun.push(rerunMs);
      curl.push(curlMs);
      ratios.push(coldMs / curlMs);
    }
    prof?.disconnect();
    const coldMs = median(cold);
    const rerunMs = median(rerun);
    const curlMs = median(curl);
    return {
      targets: targets.length,
      files: files.length,
      totalBytes,
      concurrency,
      coldMs,
      coldMiBps: totalBytes / MiB / (coldMs / 1000),
      coldExitCode,
      rerunMs,
      rerunBodyBytes,
      rerunRequests,
      curlMs,
      ratio: median(ratios),
      curlDurableMs: median(curlDurable),
      ratioDurable: median(ratiosDurable),
      curlVerifiedMs: median(curlVerified),
      ratioVerified: median(ratiosVerified),
      runs,
      trust,
      loadavg: median(loads),
      coldCpuMs: median(coldCpu),
    };
  } finally {
    if (child.connected) child.disconnect();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

/** Markdown (the bench runner, bench/index.ts, collects stdout into docs). */
export function formatSyncBench(r: SyncBenchResult): string {
  const mib = (b: number) => (b / MiB).toFixed(1);
  return [
    `Whole shipped catalog: ${r.targets} targets (entry x version x arch), ${r.files} downloads, ${mib(r.totalBytes)} MiB; ` +
      `trust ${Object.entries(r.trust)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ', ',
        )}; concurrency ${r.concurrency}; medians of ${r.runs} rounds (sync and curl alternating who goes first, disk settled with \`sync\` before each); load average ${r.loadavg.toFixed(1)}.`,
    '',
    '| measurement | result |',
    '|---|---|',
    `| cold \`pxe sync\` (fetch, SHA-256, verify, extract, fsync, atomic install) | ${(r.coldMs / 1000).toFixed(2)} s (${r.coldMiBps.toFixed(0)} MiB/s), exit ${r.coldExitCode} |`,
    `| no-change re-run | ${(r.rerunMs / 1000).toFixed(3)} s, ${r.rerunBodyBytes} body bytes, ${r.rerunRequests} conditional requests |`,
    `| \`curl --parallel --parallel-max ${r.concurrency}\`, same files (no verification) | ${(r.curlMs / 1000).toFixed(2)} s |`,
    `| same, then coreutils \`sync\` of curl's files (durable, like sync's snapshots) | ${(r.curlDurableMs / 1000).toFixed(2)} s |`,
    `| ratio cold sync / curl | ${r.ratio.toFixed(2)} |`,
    `| same, then coreutils \`sha256sum\` of curl's files (verified, like sync's checksums) | ${(r.curlVerifiedMs / 1000).toFixed(2)} s |`,
    `| ratio cold sync / (curl + sync) | ${r.ratioDurable.toFixed(2)} |`,
    `| ratio cold sync / (curl + sync + sha256sum), the like-for-like baseline | ${r.ratioVerified.toFixed(2)} |`,
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string' },
      concurrency: { type: 'string' },
      runs: { type: 'string' },
      keep: { type: 'boolean' },
      json: { type: 'boolean' },
      'cpu-prof-dir': { type: 'string' },
    },
  });
  const r = await runSyncBench({
    ...(values.mib ? { mib: Number(values.mib) } : {}),
    ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}),
    ...(values.runs ? { runs: Number(values.runs) } : {}),
    keep: values.keep === true,
    ...(values['cpu-prof-dir'] ? { cpuProfDir: values['cpu-prof-dir'] } : {}),
  });
  process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatSyncBench(r)}\n`);
}
