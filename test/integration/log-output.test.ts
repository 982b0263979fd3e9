/**
 * The process log output (src/log.ts LogOutput) and the proxyDHCP warm-up that runs
 * the real request path through the real logger objects before the ports open: what
 * it logs must never reach stdout, and what real traffic logs must. Runs in a child
 * process because createLogger writes to the process's own stdout (fd 1).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs an ES module (source text) in a child node with extra node flags; returns its stdout (exit 0 asserted). */
function runNode(source: string, flags: string[] = []): string {
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', source], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** runNode, with its stdout lines parsed as JSON (pino lines). */
function runChild(source: string): Array<Record<string, unknown>> {
  return runNode(source)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const dist = (p: string): string => JSON.stringify(join(REPO_ROOT, 'dist', p));

/**
 * Child-script prelude: the process logger, a client socket on 127.0.0.1 (`client`)
 * and a started proxy (`server`) on ephemeral loopback ports whose booter is
 * `booter` (a JS expression). Replies to a client with ciaddr and no broadcast flag
 * are unicast back to it, so nothing is broadcast.
 */
const loopbackProxy = (booter: string): string => `
  import dgram from 'node:dgram';
  import { createLogger } from ${dist('log.js')};
  import { ProxyDhcpServer } from ${dist('dhcp/proxy.js')};
  import { decode, encode, makeRequest } from ${dist('dhcp/codec.js')};
  const logger = createLogger('info', false);
  const client = dgram.createSocket('udp4');
  await new Promise((r) => client.bind(0, '127.0.0.1', r));
  const server = new ProxyDhcpServer({
    booter: ${booter},
    logger, bindAddress: '127.0.0.1', dhcpPort: 0, pxePort: 0, serverAddress: '127.0.0.1',
    clientPort: client.address().port,
  });
  await server.start();
`;

describe('LogOutput', () => {
  it('drops exactly what is logged between setDiscarding(true) and (false), writes the rest in order', () => {
    const lines = runChild(`
      import { createLogger, logOutputOf } from ${dist('log.js')};
      const log = createLogger('info', false);
      const child = log.child({ component: 'x' });
      const out = logOutputOf(child);
      if (!out) throw new Error('createLogger without a LogOutput');
      log.info('one');
      out.setDiscarding(true); child.info('hidden-1'); log.warn('hidden-2'); out.setDiscarding(false);
      child.info('two');
      out.setDiscarding(true); child.info('hidden-3'); out.setDiscarding(false);
      log.info('three');
      log.flush();
    `);
    expect(lines.map((l) => l.msg)).toEqual(['one', 'two', 'three']);
    expect(lines[1]?.component).toBe('x');
  });

  it('a logger not made by createLogger has none (the proxy then warms up with a stand-in logger)', () => {
    const lines = runChild(`
      import pino from 'pino';
      import { logOutputOf, silentLogger } from ${dist('log.js')};
      console.log(JSON.stringify({ msg: String(logOutputOf(silentLogger)) + ',' + String(logOutputOf(pino().child({ a: 1 }))) }));
    `);
    expect(lines[0]?.msg).toBe('undefined,undefined');
  });
});

describe('proxyDHCP warm-up with the process logger', () => {
  it('logs nothing of its ~9000 synthetic requests; the first real request after start is logged', () => {
    // Loopback only: ephemeral ports, the client has an address (ciaddr) and no
    // broadcast flag, so the OFFER is unicast back to it.
    const lines =
      runChild(`${loopbackProxy("{ dhcpBoot: () => ({ action: 'boot', bootFile: 'real.0', nextServer: '127.0.0.5', reason: 'test' }) }")}
      const req = makeRequest({ xid: 0x5eed, chaddr: Buffer.from('525400aa0001', 'hex'), ciaddr: '127.0.0.1' });
      req.options.set(53, Buffer.from([1]));
      req.options.set(60, Buffer.from('PXEClient:Arch:00000:UNDI:002001'));
      req.options.set(93, Buffer.from([0, 0]));
      const e = encode(req);
      const got = new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error('no OFFER within 5 s')), 5000);
        client.on('message', (m) => { const d = decode(m); if (d.ok && d.packet.xid === 0x5eed) { clearTimeout(t); res(d.packet); } });
      });
      client.send(e.data, server.ports.dhcp, '127.0.0.1');
      const offer = await got;
      logger.info({ file: offer.file }, 'client got');
      await server.close();
      client.close();
      logger.flush();
    `);
    const msgs = lines.map((l) => String(l.msg));
    // the warm-up's replies would be 'proxyDHCP OFFER'/'ACK' lines for 02:00:00:00:00:xx
    // with file 'warm-up', and its per-second summaries 'more replies ... not logged'
    expect(lines.filter((l) => l.file === 'warm-up' || (typeof l.mac === 'string' && l.mac.startsWith('02:00:00')))).toEqual([]);
    expect(msgs.filter((m) => m.includes('not logged'))).toEqual([]);
    expect(msgs).toContain('proxyDHCP listening');
    const replies = lines.filter((l) => String(l.msg).startsWith('proxyDHCP OFFER'));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ mac: '52:54:00:aa:00:01', file: 'real.0', xid: 0x5eed });
    expect(lines.at(-1)).toMatchObject({ msg: 'client got', file: 'real.0' });
  });
});

describe('proxyDHCP warm-up leaves nothing to deoptimise', () => {
  it('300 real DISCOVERs and REQUESTs after start deoptimise none of the project code (--trace-deopt-verbose)', () => {
    // Why this matters: every function V8 optimised during the warm-up and then
    // deoptimised by the first real request is recompiled in the middle of the first
    // boot storm (23-28 ms of compiler time each, measured), which was the cold-storm
    // tail in the bench. Deopts inside Node's own code are not asserted: they depend on
    // the Node version, not on this project.
    const out = runNode(
      // the real policy with the defaults of \`pxe serve\` (HTTP on: BIOS iPXE gets an HTTP URL)
      `${loopbackProxy(`new (await import(${dist('boot/booter.js')})).PolicyBooter({ dhcp: (await import(${dist('config.js')})).loadConfig(undefined, '/nonexistent-dir-for-defaults').dhcp, ipxeHttpPort: 8080 })`)}
      console.log('REAL-TRAFFIC-STARTS');
      let answered = 0;
      // replies are counted, not decoded: decode() on the client's node:dgram buffers
      // (made in C++, another hidden class) would deoptimise the server's decode() in
      // this shared process, which a real server never sees
      client.on('message', (m) => { if (m.length >= 300 && m[0] === 2) answered++; });
      for (let i = 0; i < 300; i++) {
        const arch = i % 3 === 0 ? 7 : 0;
        const req = makeRequest({ xid: (0x9e3779b9 * (i + 7)) >>> 0, chaddr: Buffer.from([0x52, 0x54, 0x01, 0, i >> 8, i & 255]), ciaddr: '127.0.0.1' });
        req.options.set(53, Buffer.from([i % 4 === 3 ? 3 : 1]));
        req.options.set(93, Buffer.from([0, arch]));
        req.options.set(94, Buffer.from([1, 2, 1]));
        req.options.set(60, Buffer.from('PXEClient:Arch:0000' + arch + ':UNDI:002001'));
        if (i % 5 === 1) req.options.set(77, Buffer.from('iPXE'));
        const e = encode(req);
        client.send(e.data, i % 4 === 3 ? server.ports.pxe : server.ports.dhcp, '127.0.0.1');
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 2));
      }
      const deadline = Date.now() + 5000;
      while (answered < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      console.log('ANSWERED ' + answered);
      await server.close();
      client.close();
    `,
      ['--trace-deopt-verbose'],
    );
    const start = out.indexOf('REAL-TRAFFIC-STARTS');
    expect(start).toBeGreaterThan(0);
    expect(out).toMatch(/ANSWERED 300/);
    // the warm-up itself may deoptimise (its later rounds reoptimise); real traffic must not
    const after = out.slice(start).match(/;;; deoptimize at <file:[^>]*>/g) ?? [];
    expect(after.filter((l) => l.includes('/dist/'))).toEqual([]);
    // the trace works (the assertion above would pass vacuously if the flag printed nothing)
    expect(out).toMatch(/\[bailout \(kind: deopt/);
  });
});
