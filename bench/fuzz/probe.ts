#!/usr/bin/env node
/**
 * Test/bench client run inside a network namespace (Node cannot setns()):
 *   node dist-bench/bench/fuzz/probe.js --port 68 --to 255.255.255.255:67 --hex <datagram> [--hex ...]
 *        [--wait-ms 2000] [--expect N]
 *     sends the datagrams (SO_BROADCAST on), prints each reply as a JSON line
 *     {"from","port","hex"}, exits when N replies arrived or the wait is over.
 *   node dist-bench/bench/fuzz/probe.js --port 0 --to A:P --fuzz-dir DIR --count 100000 --rate 10000 --seed 1
 *     sends `count` mutated copies of DIR/*.bin at `rate` datagrams/s, prints {"sent":N,"ms":T,"kinds":{...}}.
 *   node dist-bench/bench/fuzz/probe.js --port 0 --listen-only --wait-ms 3000
 *     just prints what arrives (used as a raw "did anyone answer" listener).
 */
import dgram from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mutate, prng } from './mutate.js';

function parseTarget(s: string): { address: string; port: number } {
  const i = s.lastIndexOf(':');
  return { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '68' },
      bind: { type: 'string', default: '0.0.0.0' },
      to: { type: 'string', default: '255.255.255.255:67' },
      hex: { type: 'string', multiple: true, default: [] },
      'wait-ms': { type: 'string', default: '2000' },
      expect: { type: 'string' },
      'listen-only': { type: 'boolean', default: false },
      'fuzz-dir': { type: 'string' },
      count: { type: 'string', default: '1000' },
      rate: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '1' },
    },
  });
  const sock = dgram.createSocket({ type: 'udp4' });
  const target = parseTarget(values.to);
  let replies = 0;
  const expect = values.expect ? Number(values.expect) : Infinity;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  sock.on('message', (msg, rinfo) => {
    process.stdout.write(`${JSON.stringify({ from: rinfo.address, port: rinfo.port, hex: msg.toString('hex') })}\n`);
    if (++replies >= expect) done();
  });
  sock.on('error', (e) => process.stderr.write(`socket error: ${e.message}\n`));
  await new Promise<void>((r) => sock.bind(Number(values.port), values.bind, () => r()));
  sock.setBroadcast(true);
  process.stderr.write(`bound ${values.bind}:${sock.address().port}\n`);

  if (values['fuzz-dir']) {
    const dir = values['fuzz-dir'];
    const corpus = readdirSync(dir)
      .filter((f) => f.endsWith('.bin'))
      .map((f) => readFileSync(join(dir, f)));
    const rnd = prng(Number(values.seed));
    const count = Number(values.count);
    const perMs = Number(values.rate) / 1000;
    const kinds: Record<string, number> = {};
    const t0 = Date.now();
    let sent = 0;
    // Bounded rate: each 10 ms tick sends what the rate allows since start.
    while (sent < count) {
      const allowed = Math.min(count, Math.floor((Date.now() - t0 + 10) * perMs));
      while (sent < allowed) {
        const base = corpus[Math.floor(rnd() * corpus.length)];
        if (!base) break;
        const m = mutate(base, rnd);
        kinds[m.kind] = (kinds[m.kind] ?? 0) + 1;
        sock.send(m.data, target.port, target.address);
        sent++;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    process.stdout.write(`${JSON.stringify({ sent, ms: Date.now() - t0, kinds })}\n`);
    sock.close();
    return;
  }

  if (!values['listen-only']) {
    for (const h of values.hex) sock.send(Buffer.from(h, 'hex'), target.port, target.address);
  }
  const t = setTimeout(done, Number(values['wait-ms']));
  await finished;
  clearTimeout(t);
  sock.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
