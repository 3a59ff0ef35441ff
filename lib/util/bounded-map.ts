/**
 * Maps and sets that forget their oldest entry when full: the one home of the "evict the oldest"
 * idiom that keeps replay memories, rate-limit buckets and id caches bounded against floods.
 *
 * Oldest means first inserted (JavaScript's `Map` and `Set` iterate in insertion order). Adding a
 * key that is not held to a full collection first deletes the oldest entry; re-setting a key that
 * is held replaces its value and keeps its place, as `Map` does, and evicts nothing. The newest key
 * is always kept, so a `max` below 1 holds one entry. Imports nothing.
 * @internal
 */

/** Deletes the first-inserted entry of `c`, if any; `true` if one was deleted. @internal */
export function deleteOldest<K>(c: { keys(): IterableIterator<K>; delete(key: K): boolean; readonly size: number }): boolean {
  // Checked by size, not by the iterator's value: `undefined` may itself be a key.
  if (c.size === 0) return false;
  return c.delete(c.keys().next().value as K);
}

/** A `Map` of at most `max` entries; a new key added when full evicts the oldest. @internal */
export class BoundedMap<K, V> implements Iterable<[K, V]> {
  /** Most entries held. */
  readonly max: number;
  readonly #map = new Map<K, V>();

  /** An empty map holding at most `max` entries. */
  constructor(max: number) {
    this.max = max;
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size;
  }

  /** Whether `key` is held. */
  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** The value of `key`, if held. */
  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Sets `key` to `value`; a new key when full evicts the oldest entry first. */
  set(key: K, value: V): this {
    if (!this.#map.has(key) && this.#map.size >= this.max) deleteOldest(this.#map);
    this.#map.set(key, value);
    return this;
  }

  /** Deletes `key`; `true` if it was held. */
  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** Deletes every entry. */
  clear(): void {
    this.#map.clear();
  }

  /** The keys, oldest first. */
  keys(): IterableIterator<K> {
    return this.#map.keys();
  }

  /** The values, oldest first. */
  values(): IterableIterator<V> {
    return this.#map.values();
  }

  /** The entries, oldest first (deleting while iterating is safe, as with `Map`). */
  entries(): IterableIterator<[K, V]> {
    return this.#map.entries();
  }

  /** The entries, oldest first. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.#map.entries();
  }
}

/** A `Set` of at most `max` keys; a new key added when full evicts the oldest. @internal */
export class BoundedSet<K> implements Iterable<K> {
  /** Most keys held. */
  readonly max: number;
  readonly #set = new Set<K>();

  /** An empty set holding at most `max` keys. */
  constructor(max: number) {
    this.max = max;
  }

  /** Keys held. */
  get size(): number {
    return this.#set.size;
  }

  /** Whether `key` is held. */
  has(key: K): boolean {
    return this.#set.has(key);
  }

  /** Adds `key`; a new key when full evicts the oldest first. */
  add(key: K): this {
    if (!this.#set.has(key) && this.#set.size >= this.max) deleteOldest(this.#set);
    this.#set.add(key);
    return this;
  }

  /** Deletes `key`; `true` if it was held. */
  delete(key: K): boolean {
    return this.#set.delete(key);
  }

  /** Deletes every key. */
  clear(): void {
    this.#set.clear();
  }

  /** The keys, oldest first. */
  [Symbol.iterator](): IterableIterator<K> {
    return this.#set.values();
  }
}
