/**
 * Publishing an agent's pre-keys: the signed pre-key (made on first use) and a pool of one-time
 * pre-keys that is topped up on every publish, either in a pre-key store (shared with initiators)
 * or, without one, in the key manager alone. When the key manager has a last-resort KEM pre-key,
 * a pool of one-time KEM pre-keys (PQXDH) is kept the same way, and the last-resort one is
 * published with the bundle.
 */
import { storeError, storeFailure } from '../store/validate';
import { constantTimeEqual } from '../crypto';
import { PreKeyBundle, X3DHKeyManager } from '../x3dh';
import { StoreErrorReason } from '../store/reasons';
import type { MaybePromise, PreKeyStore } from '../store/types';

/** Runs a store call; anything other than an `E2EError` becomes `STORE_ERROR` (reason `backend`, the original as `cause`). */
export async function storeCall<T>(f: () => MaybePromise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw storeError('a pre-key store call', e);
  }
}

/**
 * A key manager whose changes are saved before they are used (`lib/store`'s `StoredKeyManager`
 * is one): `update` applies a change to the newest state and resolves once it is saved; `manager`
 * is the state as last saved (read it afresh: an update replaces the object).
 */
export interface PersistedKeyManager {
  /** The key manager as last saved (a new object after each update). */
  readonly manager: X3DHKeyManager;
  /** Applies `change` to the newest state, saves it, then resolves with what `change` returned. */
  update<T>(change: (manager: X3DHKeyManager) => T): Promise<T>;
}

/** Whether `v` looks like a {@link PersistedKeyManager}. */
export function isPersistedKeyManager(v: unknown): v is PersistedKeyManager {
  const o = v as Partial<PersistedKeyManager> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    !(o instanceof X3DHKeyManager) &&
    typeof o.update === 'function' &&
    o.manager instanceof X3DHKeyManager
  );
}

/** Where a bridge's key manager lives: read it with `current()`, change it with `change` (saved first when persisted). */
export class KeyManagerSource {
  readonly #fixed: X3DHKeyManager | undefined;
  readonly #persisted: PersistedKeyManager | undefined;

  constructor(source: X3DHKeyManager | PersistedKeyManager) {
    if (source instanceof X3DHKeyManager) this.#fixed = source;
    else this.#persisted = source;
  }

  /** The key manager now. */
  current(): X3DHKeyManager {
    return this.#fixed ?? (this.#persisted as PersistedKeyManager).manager;
  }

  /** Applies `change`; with a persisted manager, resolves once the changed state is saved. */
  async change<T>(change: (manager: X3DHKeyManager) => T): Promise<T> {
    if (this.#fixed) return change(this.#fixed);
    const persisted = this.#persisted as PersistedKeyManager;
    return storeCall(() => persisted.update(change));
  }
}

/** Ids of the unused one-time KEM pre-keys of `m` (its last-resort ones left out). */
function oneTimeKemIds(m: X3DHKeyManager): number[] {
  return m.kemPreKeyIds.filter((id) => m.getKemPreKey(id)?.lastResort === false);
}

/** Whether `store` pools KEM pre-keys (a store written before them may not). */
function hasKemPool(store: PreKeyStore): boolean {
  return typeof store.countKemPreKeys === 'function' && typeof store.addKemPreKeys === 'function';
}

/** Publishes one agent's bundles and keeps its one-time pre-key pools filled. */
export class PreKeyPublisher {
  readonly #keys: KeyManagerSource;
  readonly #did: string;
  readonly #store: PreKeyStore | undefined;
  readonly #poolSize: number;
  readonly #ensureKem: boolean;
  /** Without a store: one-time keys already put in a returned bundle (never handed out twice). */
  readonly #handedOut = new Set<number>();
  /** Without a store: one-time KEM keys already put in a returned bundle. */
  readonly #handedOutKem = new Set<number>();
  /** With a store: whether this publisher has checked that the store's record is its manager's. */
  #checkedStore = false;

  /**
   * `poolSize` one-time pre-keys (and, when the key manager has a last-resort KEM pre-key, as many
   * one-time KEM pre-keys) kept published; `ensureKem`: make a last-resort KEM pre-key on the first
   * publish if the key manager has none.
   */
  constructor(
    keys: X3DHKeyManager | PersistedKeyManager | KeyManagerSource,
    did: string,
    store: PreKeyStore | undefined,
    poolSize: number,
    ensureKem = false,
  ) {
    this.#keys = keys instanceof KeyManagerSource ? keys : new KeyManagerSource(keys);
    this.#did = did;
    this.#store = store;
    this.#poolSize = poolSize;
    this.#ensureKem = ensureKem;
  }

  /**
   * Tops the pools up to their size and returns a bundle carrying one one-time pre-key (and one
   * one-time KEM pre-key, when KEM pre-keys are kept) that no other bundle carries (with a store:
   * claimed from it, so no other initiator gets them). New private keys are saved (with a persisted
   * key manager) before their public halves are published.
   */
  async publish(): Promise<PreKeyBundle> {
    if (this.#keys.current().signedPreKey === null) await this.#keys.change((m) => m.signedPreKey ?? m.generateSignedPreKey());
    if (this.#ensureKem && this.#keys.current().lastResortKemPreKey === null) {
      await this.#keys.change((m) => m.lastResortKemPreKey ?? m.generateLastResortKemPreKey());
    }
    return this.#store ? this.#publishToStore(this.#store) : this.#publishLocally();
  }

  async #publishLocally(): Promise<PreKeyBundle> {
    const live = new Set(this.#keys.current().oneTimePreKeyIds);
    for (const id of this.#handedOut) if (!live.has(id)) this.#handedOut.delete(id); // used: forget
    const ready = [...live].filter((id) => !this.#handedOut.has(id));
    if (ready.length <= this.#poolSize) {
      const made = await this.#keys.change((m) => m.generateOneTimePreKeys(this.#poolSize + 1 - ready.length).map((k) => k.keyId));
      ready.push(...made);
    }
    const otkId = Math.min(...ready);
    const kemId = await this.#localKemId();
    this.#handedOut.add(otkId);
    if (kemId === undefined) return this.#keys.current().getPublicBundle({ otkId });
    this.#handedOutKem.add(kemId);
    return this.#keys.current().getPublicBundle({ otkId, kemId });
  }

  /** Without a store: a one-time KEM pre-key no returned bundle carried (the pool topped up first); none without a last-resort one. */
  async #localKemId(): Promise<number | undefined> {
    if (this.#keys.current().lastResortKemPreKey === null) return undefined;
    const live = new Set(oneTimeKemIds(this.#keys.current()));
    for (const id of this.#handedOutKem) if (!live.has(id)) this.#handedOutKem.delete(id); // used: forget
    const ready = [...live].filter((id) => !this.#handedOutKem.has(id));
    if (ready.length <= this.#poolSize) {
      const made = await this.#keys.change((m) => m.generateKemPreKeys(this.#poolSize + 1 - ready.length).map((k) => k.keyId));
      ready.push(...made);
    }
    return Math.min(...ready);
  }

  async #publishToStore(store: PreKeyStore): Promise<PreKeyBundle> {
    const did = this.#did;
    if (!this.#checkedStore) await this.#takeOver(store);
    await storeCall(() => store.storeBundle(did, this.#keys.current().getPublicBundle()));
    const count = await storeCall(() => store.countOneTimePreKeys(did));
    // One more than the pool size: the bundle returned below claims one.
    if (count <= this.#poolSize) {
      const made = await this.#keys.change((m) =>
        m
          .generateOneTimePreKeys(this.#poolSize + 1 - count)
          .map((k) => ({ keyId: k.keyId, publicKey: Uint8Array.from(k.keyPair.publicKey) })),
      );
      await storeCall(() => store.addOneTimePreKeys(did, made));
    }
    // KEM pre-keys only for a manager that has a last-resort one (the bundle above carries it), and a
    // store that pools them.
    if (this.#keys.current().lastResortKemPreKey !== null && hasKemPool(store)) {
      const kemCount = await storeCall(() => store.countKemPreKeys(did));
      if (kemCount <= this.#poolSize) {
        const made = await this.#keys.change((m) => m.generateKemPreKeys(this.#poolSize + 1 - kemCount));
        await storeCall(() => store.addKemPreKeys(did, made));
      }
    }
    const bundle = await storeCall(() => store.claimBundle(did));
    if (!bundle) throw storeFailure(StoreErrorReason.CORRUPT, 'the pre-key store lost the bundle it was just given');
    return bundle;
  }

  /**
   * A store record of this agent whose signed pre-key this manager does not hold was published by
   * an earlier run whose private keys are gone (a restart with a key manager that was not saved):
   * its one-time keys could never be answered and their ids would collide with new ones, so the
   * record is removed before publishing afresh. A record of another identity is left for
   * `storeBundle` to refuse (`IDENTITY_MISMATCH`).
   */
  async #takeOver(store: PreKeyStore): Promise<void> {
    const existing = await storeCall(() => store.getBundle(this.#did));
    const m = this.#keys.current();
    if (existing && constantTimeEqual(existing.identityKeyEd, m.identityKeyEd)) {
      const spk = m.getSignedPreKey(existing.signedPreKeyId);
      if (!spk || !constantTimeEqual(spk.keyPair.publicKey, existing.signedPreKey)) await storeCall(() => store.removeBundle(this.#did));
    }
    this.#checkedStore = true;
  }
}
