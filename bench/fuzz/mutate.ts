/**
 * Deterministic mutation of DHCP datagrams for robustness tests: bit flips,
 * truncations, option-length lies, header-field corruption. Pure; the sender
 * lives in probe.ts.
 */

/** mulberry32: small, fast, seedable PRNG (fuzz runs must be reproducible from the seed). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Offsets of option length bytes in the options area (best effort walk, stops on garbage). */
function optionLengthOffsets(b: Buffer): number[] {
  const out: number[] = [];
  let i = 240;
  while (i < b.length) {
    const c = b[i] ?? 0;
    if (c === 0) {
      i++;
      continue;
    }
    if (c === 255 || i + 1 >= b.length) break;
    out.push(i + 1);
    i += 2 + (b[i + 1] ?? 0);
  }
  return out;
}

export type Mutation = 'bitflip' | 'truncate' | 'length-lie' | 'byte' | 'hlen' | 'cookie' | 'op' | 'append' | 'overload';
const MUTATIONS: Mutation[] = ['bitflip', 'truncate', 'length-lie', 'byte', 'hlen', 'cookie', 'op', 'append', 'overload'];

export function mutate(base: Buffer, rnd: () => number): { data: Buffer; kind: Mutation } {
  const int = (n: number): number => Math.floor(rnd() * n);
  const kind = MUTATIONS[int(MUTATIONS.length)] ?? 'bitflip';
  let b = Buffer.from(base);
  switch (kind) {
    case 'bitflip': {
      const flips = 1 + int(8);
      for (let k = 0; k < flips; k++) {
        const i = int(b.length);
        b[i] = (b[i] ?? 0) ^ (1 << int(8));
      }
      break;
    }
    case 'truncate':
      b = b.subarray(0, int(b.length));
      break;
    case 'length-lie': {
      const offs = optionLengthOffsets(b);
      const o = offs[int(offs.length)];
      if (o !== undefined) b[o] = int(256);
      break;
    }
    case 'byte': {
      const n = 1 + int(16);
      for (let k = 0; k < n; k++) b[int(b.length)] = int(256);
      break;
    }
    case 'hlen':
      b[2] = int(256);
      break;
    case 'cookie':
      b[236 + int(4)] = int(256);
      break;
    case 'op':
      b[0] = int(4);
      break;
    case 'append':
      b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)))]);
      break;
    case 'overload': {
      // Insert option 52 with a random value at the start of the options area.
      const ov = Buffer.from([52, 1, int(5)]);
      b = Buffer.concat([b.subarray(0, 240), ov, b.subarray(240)]);
      break;
    }
  }
  return { data: b, kind };
}
