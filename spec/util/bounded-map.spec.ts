/** lib/util/bounded-map: exact eviction order, edge cases, and a model-based property test. */
import fc from 'fast-check';
import { BoundedMap, BoundedSet, deleteOldest } from '../../lib/util/bounded-map';

describe('BoundedMap', () => {
  test('a new key added when full evicts exactly the oldest entry', () => {
    const m = new BoundedMap<string, number>(3);
    m.set('a', 1).set('b', 2).set('c', 3);
    m.set('d', 4);
    expect([...m]).toEqual([
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ]);
    expect(m.size).toBe(3);
    expect(m.has('a')).toBe(false);
    expect(m.get('a')).toBeUndefined();
  });

  test('re-setting a held key replaces its value, keeps its place and evicts nothing', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2).set('a', 10);
    expect([...m.entries()]).toEqual([
      ['a', 10],
      ['b', 2],
    ]);
    m.set('c', 3); // 'a' is still the oldest
    expect([...m.keys()]).toEqual(['b', 'c']);
    expect([...m.values()]).toEqual([2, 3]);
  });

  test('a deleted key frees its place; delete and clear report as Map does', () => {
    const m = new BoundedMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    expect(m.delete('a')).toBe(true);
    expect(m.delete('a')).toBe(false);
    m.set('c', 3);
    expect([...m.keys()]).toEqual(['b', 'c']);
    m.clear();
    expect(m.size).toBe(0);
    expect([...m]).toEqual([]);
  });

  test('deleting while iterating is safe', () => {
    const m = new BoundedMap<number, number>(10);
    for (let i = 0; i < 5; i++) m.set(i, i);
    for (const [k] of m.entries()) if (k % 2 === 0) m.delete(k);
    expect([...m.keys()]).toEqual([1, 3]);
  });

  test('max 1 holds the newest; a max below 1 still holds the newest entry', () => {
    for (const max of [1, 0, -1]) {
      const m = new BoundedMap<string, number>(max);
      m.set('a', 1).set('b', 2);
      expect([...m]).toEqual([['b', 2]]);
      expect(m.max).toBe(max);
    }
  });

  test('undefined is a key like any other', () => {
    const m = new BoundedMap<string | undefined, number>(2);
    m.set(undefined, 0).set('a', 1).set('b', 2);
    expect([...m.keys()]).toEqual(['a', 'b']);
  });

  test('property: behaves as a list model (insertion order, evict the first on a new key when full)', () => {
    type Op = { op: 'set'; k: number; v: number } | { op: 'delete'; k: number } | { op: 'clear' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), k: fc.integer({ min: 0, max: 12 }), v: fc.integer() }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), k: fc.integer({ min: 0, max: 12 }) }) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80 }), (max, ops) => {
        const m = new BoundedMap<number, number>(max);
        let model: [number, number][] = [];
        for (const o of ops) {
          if (o.op === 'set') {
            const i = model.findIndex(([k]) => k === o.k);
            if (i >= 0) model[i] = [o.k, o.v];
            else {
              if (model.length >= max) model.shift();
              model.push([o.k, o.v]);
            }
            expect(m.set(o.k, o.v)).toBe(m);
          } else if (o.op === 'delete') {
            const had = model.some(([k]) => k === o.k);
            model = model.filter(([k]) => k !== o.k);
            expect(m.delete(o.k)).toBe(had);
          } else {
            model = [];
            m.clear();
          }
          expect([...m]).toEqual(model);
          expect(m.size).toBeLessThanOrEqual(max);
          for (let k = 0; k <= 12; k++) expect(m.get(k)).toBe(model.find(([mk]) => mk === k)?.[1]);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('BoundedSet', () => {
  test('a new key added when full evicts exactly the oldest; re-adding a held key evicts nothing', () => {
    const s = new BoundedSet<string>(2);
    s.add('a').add('b').add('a');
    expect([...s]).toEqual(['a', 'b']);
    s.add('c');
    expect([...s]).toEqual(['b', 'c']);
    expect(s.has('a')).toBe(false);
    expect(s.size).toBe(2);
    expect(s.delete('b')).toBe(true);
    expect(s.delete('b')).toBe(false);
    s.add('d');
    expect([...s]).toEqual(['c', 'd']);
    s.clear();
    expect(s.size).toBe(0);
  });

  test('property: never more than max keys, and holds the most recently added new keys', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 60 }), (max, keys) => {
        const s = new BoundedSet<number>(max);
        const model: number[] = [];
        for (const k of keys) {
          if (!model.includes(k)) {
            if (model.length >= max) model.shift();
            model.push(k);
          }
          s.add(k);
          expect([...s]).toEqual(model);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('deleteOldest', () => {
  test('deletes the first-inserted entry of a Map or a Set; false when empty', () => {
    const m = new Map([
      ['x', 1],
      ['y', 2],
    ]);
    expect(deleteOldest(m)).toBe(true);
    expect([...m.keys()]).toEqual(['y']);
    const s = new Set([3, 4]);
    expect(deleteOldest(s)).toBe(true);
    expect([...s]).toEqual([4]);
    expect(deleteOldest(new Map())).toBe(false);
    expect(deleteOldest(new Set([undefined]))).toBe(true);
  });
});
