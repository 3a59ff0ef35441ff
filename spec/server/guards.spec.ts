/** ProofCache (single use, bounded, fails closed) and RateLimiter (token buckets). */
import { ProofCache, RateLimiter } from '../../lib/server';

describe('ProofCache', () => {
  it('fresh once, replayed after; forgotten only once outside the window', () => {
    const c = new ProofCache(1000, 10);
    expect(c.use('k', 0, 0)).toBe('fresh');
    expect(c.use('k', 0, 500)).toBe('replayed');
    // Kept until proofTime + window + 1 s slack; then a sweep may drop it (the proof is out of window anyway).
    expect(c.use('other', 3000, 3000)).toBe('fresh');
    expect(c.has('k')).toBe(false);
  });

  it('when full of live proofs it refuses new ones (fails closed) rather than forgetting', () => {
    const c = new ProofCache(60_000, 3);
    for (const k of ['a', 'b', 'c']) expect(c.use(k, 0, 0)).toBe('fresh');
    expect(c.use('d', 0, 1)).toBe('full');
    expect(c.use('a', 0, 1)).toBe('replayed');
  });
});

describe('RateLimiter', () => {
  it('burst, then the sustained rate', () => {
    const r = new RateLimiter(2, 1);
    expect([r.take('x', 0), r.take('x', 0), r.take('x', 0)]).toEqual([true, true, false]);
    expect(r.take('x', 1000)).toBe(true);
    expect(r.take('x', 1000)).toBe(false);
    expect(r.take('y', 1000)).toBe(true);
  });

  it('stays bounded: full buckets are dropped first', () => {
    const r = new RateLimiter(1, 1, 2);
    r.take('a', 0);
    r.take('b', 0);
    expect(r.take('c', 10_000)).toBe(true);
    expect(r.take('a', 10_000)).toBe(true);
  });
});
