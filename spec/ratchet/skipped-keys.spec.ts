import { ready } from '../../lib/sodium';
import { randomBytes, toHex } from '../../lib/crypto';
import { SkippedKeys } from '../../lib/ratchet';

beforeAll(() => ready());

const key = (dh: Uint8Array, n: number, storedAt = 0) => ({ dhPublicKey: dh, messageNumber: n, messageKey: randomBytes(32), storedAt });

describe('SkippedKeys', () => {
  test('re-adding the only key of a chain replaces it (found, counted once) and eviction terminates', () => {
    const s = new SkippedKeys();
    const a = randomBytes(32);
    const chain = toHex(a);
    s.add(key(a, 0), 10);
    const second = key(a, 0);
    s.add(second, 10);
    expect(s.size).toBe(1);
    expect(s.get(chain, 0)).toBe(s.get(chain, 0));
    expect(s.get(chain, 0)?.messageKey).toBe(second.messageKey);
    s.add(key(randomBytes(32), 5), 1); // must evict, and return
    expect(s.size).toBe(1);
    expect(s.get(chain, 0)).toBeUndefined();
    expect(s.hasChain(chain)).toBe(false);
  });

  test('oldest first: eviction, expiry and values() follow insertion order; used keys are wiped', () => {
    const s = new SkippedKeys();
    const a = randomBytes(32);
    const chain = toHex(a);
    const keys = [0, 1, 2, 3].map((n) => key(a, n, 100 + n));
    keys.forEach((k) => s.add(k, 3));
    expect([...s.values()].map((k) => k.messageNumber)).toEqual([1, 2, 3]);
    expect(keys[0].messageKey.every((x) => x === 0)).toBe(true);
    const mk2 = s.get(chain, 2)!.messageKey;
    s.delete(chain, 2);
    expect(mk2.every((x) => x === 0)).toBe(true);
    s.expireBefore(102);
    expect([...s.values()].map((k) => k.messageNumber)).toEqual([3]);
    s.wipe();
    expect(s.size).toBe(0);
  });

  test('a long run of used keys behind one pinned key does not grow the queue without bound', () => {
    const s = new SkippedKeys();
    const a = randomBytes(32);
    const chain = toHex(a);
    s.add(key(a, 0), 100000); // never used: pins the front
    for (let n = 1; n < 20000; n++) {
      s.add(key(a, n), 100000);
      s.delete(chain, n);
    }
    expect(s.size).toBe(1);
    expect([...s.values()].map((k) => k.messageNumber)).toEqual([0]);
  });
});
