import { describe, expect, it } from 'vitest';
import { bootstrapRatioOfMedians, median } from '../../bench/peers.js';

describe('bootstrapRatioOfMedians (the boot bench interval)', () => {
  const base = [12.1, 13.4, 11.8, 14.9, 12.7, 13.0, 15.2, 12.2, 13.8, 12.9, 14.1, 12.5];

  it('brackets the point ratio and contains 1.0 for samples from the same spread', () => {
    const shuffled = [13.0, 12.2, 14.1, 12.5, 15.2, 11.8, 13.4, 12.9, 12.1, 14.9, 13.8, 12.7].map((x) => x + 0.05);
    const [lo, hi] = bootstrapRatioOfMedians(shuffled, base);
    const point = median(shuffled) / median(base);
    expect(lo).toBeLessThanOrEqual(point);
    expect(hi).toBeGreaterThanOrEqual(point);
    expect(lo).toBeLessThan(1);
    expect(hi).toBeGreaterThan(1);
  });

  it('lies wholly below 1.0 when one server is faster by more than the spread', () => {
    const faster = base.map((x) => x - 2.5);
    const [lo, hi] = bootstrapRatioOfMedians(faster, base);
    expect(hi).toBeLessThan(1);
    expect(lo).toBeGreaterThan(0.7);
  });

  it('is reproducible for a seed and narrows with the level', () => {
    const a = base.map((x, i) => x - (i % 3) * 0.4);
    expect(bootstrapRatioOfMedians(a, base, { seed: 7 })).toEqual(bootstrapRatioOfMedians(a, base, { seed: 7 }));
    const [lo95, hi95] = bootstrapRatioOfMedians(a, base, { level: 0.95 });
    const [lo50, hi50] = bootstrapRatioOfMedians(a, base, { level: 0.5 });
    expect(lo50).toBeGreaterThanOrEqual(lo95);
    expect(hi50).toBeLessThanOrEqual(hi95);
    expect(hi50 - lo50).toBeLessThan(hi95 - lo95);
  });
});
