/**
 * /files/ against nginx, with curl: the same Range and conditional requests sent to
 * nginx (Debian's, from scripts/install-deps.sh, started here on a loopback port,
 * `sendfile on`) and to pxe's HTTP server on both body paths (native sendfile, and the
 * pure-Node stream fallback); status, validators, Content-Length/Range and the bytes
 * must be nginx's. Then the access log: one line per request with bytes and outcome.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/http/server.js';
import { nativeSendfileStatus } from '../../src/native/sendfile.js';
import { run, writeRandomFile } from '../helpers/tftp.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => fs.existsSync(b));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir = '';
let root = '';
let nginx: ChildProcess | undefined;
let nginxPort = 0;
const servers: FastifyInstance[] = [];
const logs: Array<Record<string, unknown>> = [];
const ports: Record<'sendfile' | 'stream', number> = { sendfile: 0, stream: 0 };

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One curl request; headers (last response) and body as received. */
async function get(port: number, file: string, args: string[] = []): Promise<Answer> {
  const tag = `${port}-${Math.random().toString(36).slice(2)}`;
  const hdr = path.join(dir, `h-${tag}`);
  const out = path.join(dir, `b-${tag}`);
  const r = await run('curl', ['-s', '--max-time', '20', '-D', hdr, '-o', out, ...args, `http://127.0.0.1:${port}/files/${file}`], 30_000);
  expect(r.code, r.stderr).toBe(0);
  const lines = fs.readFileSync(hdr, 'latin1').split('\r\n');
  const status = Number(lines[0]?.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  // with -I curl writes the header block as the "body": a HEAD answer has none
  const body = fs.existsSync(out) && !args.includes('-I') ? fs.readFileSync(out) : Buffer.alloc(0);
  fs.rmSync(hdr, { force: true });
  fs.rmSync(out, { force: true });
  return { status, headers, body };
}

/** The parts of a multipart/byteranges body: their Content-Range and bytes (the boundary is each server's own). */
function parts(a: Answer): Array<{ range: string; sha: string }> {
  const m = /boundary=(\S+)/.exec(a.headers['content-type'] ?? '');
  if (!m) return [];
  const sep = Buffer.from(`\r\n--${m[1]}`);
  const out: Array<{ range: string; sha: string }> = [];
  let at = a.body.indexOf(sep);
  while (at >= 0) {
    const next = a.body.indexOf(sep, at + sep.length);
    if (next < 0) break;
    const part = a.body.subarray(at + sep.length, next);
    const headEnd = part.indexOf('\r\n\r\n');
    const range = /Content-Range: (.*)/i.exec(part.subarray(0, headEnd).toString('latin1'))?.[1]?.trim() ?? '';
    out.push({ range, sha: sha(part.subarray(headEnd + 4)) });
    at = next;
  }
  return out;
}

/** What must be equal to nginx's answer (error bodies are each server's own text). */
function comparable(a: Answer): Record<string, unknown> {
  const h = a.headers;
  const multipart = (h['content-type'] ?? '').startsWith('multipart/byteranges');
  return {
    status: a.status,
    etag: h['etag'],
    lastModified: h['last-modified'],
    contentRange: h['content-range'],
    acceptRanges: h['accept-ranges'],
    ...(a.status >= 400 ? {} : { contentLength: multipart ? 'multipart' : h['content-length'], body: multipart ? parts(a) : sha(a.body) }),
    multipart,
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), `pxe-http-files-${process.pid}-`));
  root = path.join(dir, 'root');
  fs.mkdirSync(root);
  for (const d of [dir, root]) fs.chmodSync(d, 0o755);
  writeRandomFile(path.join(root, 'initrd.img'), 3 * 1024 * 1024 + 17);
  fs.writeFileSync(path.join(root, 'empty'), '');
  fs.writeFileSync(path.join(root, 'small.txt'), 'a small file\n');
  const mtime = new Date('2026-01-02T03:04:05Z');
  for (const f of ['initrd.img', 'empty', 'small.txt']) fs.utimesSync(path.join(root, f), mtime, mtime);

  if (!NGINX) throw new Error('nginx is not installed: scripts/install-deps.sh installs nginx-light');
  nginxPort = await freePort();
  const prefix = path.join(dir, 'nginx');
  fs.mkdirSync(prefix);
  fs.writeFileSync(
    path.join(prefix, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${prefix}/nginx.pid; error_log ${prefix}/error.log;
events { worker_connections 64; }
http { sendfile on; default_type application/octet-stream; types {} access_log off;
  client_body_temp_path ${prefix}/b; proxy_temp_path ${prefix}/p; fastcgi_temp_path ${prefix}/f; uwsgi_temp_path ${prefix}/u; scgi_temp_path ${prefix}/s;
  server { listen 127.0.0.1:${nginxPort}; location /files/ { alias ${root}/; } } }
`,
  );
  nginx = spawn(NGINX, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${nginxPort}/files/small.txt`], 5000);
    if (r.stdout === '200') break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  for (const mode of ['sendfile', 'stream'] as const) {
    const app = createHttpServer({ logger, filesRoot: root, sendfile: mode === 'sendfile' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    servers.push(app);
    ports[mode] = (app.server.address() as net.AddressInfo).port;
  }
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.close();
  if (nginx && nginx.exitCode === null) {
    const done = new Promise((r) => nginx?.once('exit', r));
    nginx.kill('SIGTERM');
    await done;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('HTTP /files/ answers Range and conditional requests as nginx does', () => {
  it('the native sendfile module is built (npm ci builds it; the stream path is the other server here)', () => {
    expect(nativeSendfileStatus()).toMatchObject({ native: true });
  });

  const LM = 'Fri, 02 Jan 2026 03:04:05 GMT';
  const cases: Array<[string, string, string[]]> = [
    ['plain GET', 'initrd.img', []],
    ['HEAD', 'initrd.img', ['-I']],
    ['empty file', 'empty', []],
    ['one range', 'initrd.img', ['-H', 'Range: bytes=100-1099']],
    ['open-ended range', 'initrd.img', ['-H', 'Range: bytes=3145000-']],
    ['suffix range', 'initrd.img', ['-H', 'Range: bytes=-4096']],
    ['range past the end, clipped', 'initrd.img', ['-H', 'Range: bytes=3145700-99999999']],
    ['range wholly past the end: 416', 'initrd.img', ['-H', 'Range: bytes=99999999-']],
    ['reversed range: 416', 'initrd.img', ['-H', 'Range: bytes=500-400']],
    ['bad range syntax: 416', 'initrd.img', ['-H', 'Range: bytes=abc']],
    ['suffix of 0 bytes: 416', 'initrd.img', ['-H', 'Range: bytes=-0']],
    ['another unit: ignored', 'initrd.img', ['-H', 'Range: items=0-5']],
    ['range on an empty file: ignored', 'empty', ['-H', 'Range: bytes=0-0']],
    ['two ranges: multipart/byteranges', 'initrd.img', ['-H', 'Range: bytes=0-99,2000-2999']],
    ['three ranges, one past the end', 'initrd.img', ['-H', 'Range: bytes=0-9, 20-29,99999999-']],
    ['overlapping ranges larger than the file: whole file', 'small.txt', ['-H', 'Range: bytes=0-,0-']],
    ['If-None-Match with the ETag: 304', 'initrd.img', ['-H', 'If-None-Match: "695735a5-300011"']],
    ['If-None-Match weak, in a list: 304', 'initrd.img', ['-H', 'If-None-Match: "x", W/"695735a5-300011"']],
    ['If-None-Match *: 304', 'initrd.img', ['-H', 'If-None-Match: *']],
    ['If-None-Match another ETag: 200', 'initrd.img', ['-H', 'If-None-Match: "695735a5-1"']],
    ['If-Modified-Since the Last-Modified: 304', 'initrd.img', ['-H', `If-Modified-Since: ${LM}`]],
    ['If-Modified-Since later (nginx matches exactly): 200', 'initrd.img', ['-H', 'If-Modified-Since: Sat, 03 Jan 2026 00:00:00 GMT']],
    ['If-Modified-Since garbage: 200', 'initrd.img', ['-H', 'If-Modified-Since: yesterday']],
    [
      'ETag matches but the date does not: 200',
      'initrd.img',
      ['-H', 'If-None-Match: "695735a5-300011"', '-H', 'If-Modified-Since: Sat, 03 Jan 2026 00:00:00 GMT'],
    ],
    ['If-Range with the ETag: 206', 'initrd.img', ['-H', 'Range: bytes=10-19', '-H', 'If-Range: "695735a5-300011"']],
    ['If-Range with another ETag: 200', 'initrd.img', ['-H', 'Range: bytes=10-19', '-H', 'If-Range: "695735a5-1"']],
    ['If-Range with the date: 206', 'initrd.img', ['-H', 'Range: bytes=10-19', '-H', `If-Range: ${LM}`]],
    ['If-Match another ETag: 412', 'initrd.img', ['-H', 'If-Match: "nope"']],
    ['If-Unmodified-Since before the mtime: 412', 'initrd.img', ['-H', 'If-Unmodified-Since: Thu, 01 Jan 2026 00:00:00 GMT']],
    ['If-Unmodified-Since after: 200', 'initrd.img', ['-H', 'If-Unmodified-Since: Sat, 03 Jan 2026 00:00:00 GMT']],
  ];

  it.each(cases)('%s', async (_name, file, args) => {
    const want = comparable(await get(nginxPort, file, args));
    expect(comparable(await get(ports.sendfile, file, args))).toEqual(want);
    expect(comparable(await get(ports.stream, file, args))).toEqual(want);
  });

  it('the ETag the cases use is what nginx sends for the file (mtime and size in hex)', async () => {
    expect((await get(nginxPort, 'initrd.img', ['-I'])).headers['etag']).toBe('"695735a5-300011"');
  });
});

describe('HTTP /files/ access log', () => {
  it('one line per request with the bytes sent and the status, on both body paths; keep-alive carries on after a sendfile body', async () => {
    for (const mode of ['sendfile', 'stream'] as const) {
      logs.length = 0;
      const url = `http://127.0.0.1:${ports[mode]}/files/initrd.img`;
      // three GETs on one connection: the second and third follow a body sent by sendfile
      const each = ['-s', '--max-time', '20', '-w', '%{http_code} %{size_download} %{num_connects}\\n', '-o', '/dev/null'];
      const r = await run('curl', [...each, url, '--next', ...each, '-H', 'Range: bytes=0-9', url, '--next', ...each, url], 30_000);
      expect(r.stdout.trim().split('\n')).toEqual(['200 3145745 1', '206 10 0', '200 3145745 0']);
      for (let i = 0; i < 50 && logs.filter((l) => l.msg === 'http request').length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      const lines = logs.filter((l) => l.msg === 'http request');
      expect(lines.map((l) => [l.status, l.bytes, l.complete])).toEqual([
        [200, 3145745, undefined],
        [206, 10, undefined],
        [200, 3145745, undefined],
      ]);
    }
  });
});
