/**
 * Publishing an agent's pre-keys: the signed pre-key (made on first use) and a pool of one-time
 * pre-keys that is topped up on every publish, either in a pre-key store (shared with initiators)
 * or, without one, in the key manager alone.
 */
import { E2EError, isE2EError } from '../errors';
import { PreKeyBundle, X3DHKeyManager } from '../x3dh';
import { Awaitable } from './registry';

/**
 * The pre-key store methods the bridge uses (`lib/store`'s `PreKeyStore` has them all; declared
 * here because the trust layer does not import the stores).
 */
export interface BridgePreKeyStore {
  storeBundle(did: string, bundle: PreKeyBundle): Awaitable<void>;
  claimBundle(did: string): Awaitable<PreKeyBundle | null>;
  consumeOneTimeKey(did: string, keyId: number): Awaitable<boolean>;
  addOneTimePreKeys(did: string, keys: readonly { keyId: number; publicKey: Uint8Array }[]): Awaitable<void>;
  countOneTimePreKeys(did: string): Awaitable<number>;
}

/** Runs a store call; anything other than an `E2EError` becomes `STORE_ERROR`. */
export async function storeCall<T>(f: () => Awaitable<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (isE2EError(e)) throw e;
    throw new E2EError('STORE_ERROR', 'the pre-key store failed');
  }
}

/** Publishes one agent's bundles and keeps its one-time pre-key pool filled. */
export class PreKeyPublisher {
  readonly #manager: X3DHKeyManager;
  readonly #did: string;
  readonly #store: BridgePreKeyStore | undefined;
  readonly #poolSize: number;
  /** Without a store: one-time keys already put in a returned bundle (never handed out twice). */
  readonly #handedOut = new Set<number>();

  constructor(manager: X3DHKeyManager, did: string, store: BridgePreKeyStore | undefined, poolSize: number) {
    this.#manager = manager;
    this.#did = did;
    this.#store = store;
    this.#poolSize = poolSize;
  }

  /**
   * Tops the pool up to its size and returns a bundle carrying one one-time pre-key that no other
   * bundle carries (with a store: claimed from it, so no other initiator gets it).
   */
  async publish(): Promise<PreKeyBundle> {
    if (this.#manager.signedPreKey === null) this.#manager.generateSignedPreKey();
    return this.#store ? this.#publishToStore(this.#store) : this.#publishLocally();
  }

  #publishLocally(): PreKeyBundle {
    const live = new Set(this.#manager.oneTimePreKeyIds);
    for (const id of this.#handedOut) if (!live.has(id)) this.#handedOut.delete(id); // used: forget
    const ready = [...live].filter((id) => !this.#handedOut.has(id));
    if (ready.length <= this.#poolSize) {
      ready.push(...this.#manager.generateOneTimePreKeys(this.#poolSize + 1 - ready.length).map((k) => k.keyId));
    }
    const otkId = Math.min(...ready);
    this.#handedOut.add(otkId);
    return this.#manager.getPublicBundle({ otkId });
  }

  async #publishToStore(store: BridgePreKeyStore): Promise<PreKeyBundle> {
    const did = this.#did;
    await storeCall(() => store.storeBundle(did, this.#manager.getPublicBundle()));
    const count = await storeCall(() => store.countOneTimePreKeys(did));
    // One more than the pool size: the bundle returned below claims one.
    if (count <= this.#poolSize) {
      const made = this.#manager.generateOneTimePreKeys(this.#poolSize + 1 - count);
      await storeCall(() => store.addOneTimePreKeys(did, made.map((k) => ({ keyId: k.keyId, publicKey: k.keyPair.publicKey }))));
    }
    const bundle = await storeCall(() => store.claimBundle(did));
    if (!bundle) throw new E2EError('STORE_ERROR', 'the pre-key store lost the bundle it was just given');
    return bundle;
  }
}
