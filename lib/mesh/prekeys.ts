/**
 * Pre-key upkeep against the registry: `maintainPreKeys` (refill, rotation, retirement) with the registry
 * as its directory. The adapter below is the `PreKeyStore` side `maintainPreKeys` uses, over HTTP: the pool
 * count is the server's where it can say (ours), else what the key manager still holds (AGT); what was last
 * published is remembered sealed in the agent's own store, so a restart does not re-upload (which would
 * reset the pool) unless something changed.
 *
 * Post-quantum (PQXDH): with `kem`, `maintainPreKeys` runs with `postQuantum: true`: the agent keeps a
 * last-resort KEM pre-key (made on the first run, rotated with the signed pre-key), publishes it with the
 * bundle, and keeps a pool of one-time KEM pre-keys at the registry (the policy's `minKemPreKeys` and
 * `targetKemPreKeys`). Without `kem` (option `postQuantum: 'off'`, or AGT's registry, which cannot carry
 * them), or once a registry is seen not to carry them, uploads carry no KEM pre-key: they are AGT's, byte
 * for byte, and a KEM pre-key an earlier run published is withdrawn.
 */
import { E2EError } from '../errors';
import { fromBase64, fromUtf8, toBase64, utf8 } from '../crypto';
import { PreKeyBundle, X3DHKeyManager } from '../x3dh';
import { PreKeyStore, PublicKemPreKeyEntry, PublicOneTimePreKey, SessionStore } from '../store/types';
import { StorageCipher } from '../store/storage-cipher';
import { StoredKeyManager } from '../store/stored-key-manager';
import { MaintenanceReport, PreKeyPolicy, maintainPreKeys } from '../store/prekey-maintenance';
import { MeshErrorReason } from './errors';
import { RegistryClient } from './registry-client';
import { SerialQueue } from '../util/serial-queue';

/** The slot (under the agent's DID) holding what was last published. */
export const PUBLISHED_SLOT = '#published';

interface Published {
  spkId: number;
  spk: string;
  ed: string;
  /** The last-resort KEM pre-key published with the bundle (absent: none). */
  kemId?: number;
  kem?: string;
  kemSig?: string;
}

/** Publishes and maintains one agent's pre-keys at a registry. */
export class PreKeyUpkeep {
  readonly #keys: StoredKeyManager;
  readonly #registry: RegistryClient;
  readonly #store: SessionStore;
  readonly #cipher: StorageCipher;
  readonly #policy: PreKeyPolicy;
  readonly #capabilities: string[] | undefined;
  readonly #kem: boolean;
  /** The registry answered a KEM upload without `kem_count`: it does not carry KEM pre-keys (an older server). */
  #kemUnsupported = false;
  readonly #runs = new SerialQueue();

  /**
   * Upkeep of `o.keys` at `o.registry`; what was published is remembered in `o.store`. `o.kem`: keep and
   * publish KEM pre-keys (default false: classic).
   */
  constructor(o: {
    keys: StoredKeyManager;
    registry: RegistryClient;
    store: SessionStore;
    cipher: StorageCipher;
    policy?: PreKeyPolicy;
    capabilities?: string[];
    kem?: boolean;
  }) {
    this.#keys = o.keys;
    this.#registry = o.registry;
    this.#store = o.store;
    this.#cipher = o.cipher;
    this.#policy = o.policy ?? {};
    this.#capabilities = o.capabilities;
    this.#kem = o.kem === true;
  }

  /** Whether KEM pre-keys are published (the registry carries them, as far as is known). */
  get publishesKem(): boolean {
    return this.#kem && !this.#kemUnsupported;
  }

  /** One maintenance run (runs are serialized); a second one follows a re-publication, which empties the pool. */
  run(): Promise<MaintenanceReport> {
    return this.#runs.run(() =>
      this.#runOnce().catch(async (e: unknown) => {
        if (!(e instanceof E2EError) || e.reason !== MeshErrorReason.NOT_REGISTERED) throw e;
        // The registry lost this agent (e.g. restarted without its database): register and publish anew.
        await this.#registry.register(this.#capabilities);
        await this.forgetPublished();
        return this.#runOnce();
      }),
    );
  }

  async #runOnce(): Promise<MaintenanceReport> {
    const first = await this.#maintain();
    let republished = first.publishedBundle;
    if (!republished && (await this.#kemWithdrawn())) {
      // An earlier run published a KEM pre-key this one does not publish: the classic bundle replaces it.
      await this.#directory().storeBundle(this.#keys.did, this.#keys.manager.getPublicBundle());
      republished = true;
    }
    if (!republished) return first;
    const second = await this.#maintain();
    return {
      ...first,
      publishedBundle: true,
      addedOneTimePreKeys: first.addedOneTimePreKeys + second.addedOneTimePreKeys,
      addedKemPreKeys: first.addedKemPreKeys + second.addedKemPreKeys,
    };
  }

  /** One `maintainPreKeys` run; KEM pre-keys kept exactly when they are published (the option decides, not the policy). */
  #maintain(): Promise<MaintenanceReport> {
    return maintainPreKeys(this.#keys, this.#directory(), { ...this.#policy, postQuantum: this.publishesKem });
  }

  /** Forgets what was published (the registry lost it): the next run uploads everything again. */
  async forgetPublished(): Promise<void> {
    const me = this.#keys.did;
    await this.#store.deleteSession(me, PUBLISHED_SLOT);
  }

  /** Whether a KEM pre-key is published although this upkeep publishes none (it was, by an earlier run). */
  async #kemWithdrawn(): Promise<boolean> {
    if (this.publishesKem) return false;
    return ((await this.#readPublished())?.kemId ?? undefined) !== undefined;
  }

  async #addKem(keys: readonly PublicKemPreKeyEntry[]): Promise<void> {
    if (!this.publishesKem || keys.length === 0) return;
    if ((await this.#registry.addKemPreKeys(keys)) === null) this.#kemUnsupported = true;
  }

  /** The unused one-time KEM pre-keys the manager holds (the pool size when the registry cannot say). */
  #heldKemCount(): number {
    const m: X3DHKeyManager = this.#keys.manager;
    return m.kemPreKeyIds.filter((id) => m.getKemPreKey(id)?.lastResort === false).length;
  }

  /** The bundle as uploaded: without KEM pre-key unless KEM pre-keys are published. */
  #uploadable(bundle: PreKeyBundle): PreKeyBundle {
    if (this.publishesKem || !bundle.kemPreKey) return bundle;
    const { kemPreKey: _k, kemPreKeyId: _i, kemPreKeySignature: _s, ...classic } = bundle;
    return classic;
  }

  #directory(): PreKeyStore {
    const keys = this.#keys;
    const registry = this.#registry;
    let current: PreKeyBundle | null = null;
    const unsupported = (): never => {
      throw new E2EError('INVALID_STATE', 'not used by maintainPreKeys');
    };
    return {
      countOneTimePreKeys: async () => (await registry.countOneTimePreKeys()) ?? keys.manager.oneTimePreKeyIds.length,
      getBundle: async () => this.#loadPublished(keys),
      storeBundle: async (_did: string, bundle: PreKeyBundle) => {
        const up = this.#uploadable(bundle);
        current = up;
        const counts = await registry.uploadPreKeys(up, []);
        if (up.kemPreKey && counts.kem === null) this.#kemUnsupported = true; // the registry dropped it
        await this.#savePublished(this.#uploadable(bundle)); // what the registry kept (no KEM pre-key if it dropped it)
      },
      addOneTimePreKeys: async (_did: string, added: readonly PublicOneTimePreKey[]) => {
        if ((await registry.addOneTimePreKeys(added)) !== null) return;
        // AGT's registry only replaces the whole bundle.
        await registry.uploadPreKeys(current ?? this.#uploadable(keys.manager.getPublicBundle()), added);
      },
      countKemPreKeys: async () => (this.publishesKem ? ((await registry.countPools()).kem ?? this.#heldKemCount()) : this.#heldKemCount()),
      addKemPreKeys: async (_did: string, added: readonly PublicKemPreKeyEntry[]) => this.#addKem(added),
      consumeOneTimeKey: unsupported,
      consumeKemPreKey: unsupported,
      claimBundle: unsupported,
      removeBundle: unsupported,
    };
  }

  async #readPublished(): Promise<Published | null> {
    const rec = await this.#store.loadSession(this.#keys.did, PUBLISHED_SLOT);
    if (!rec) return null;
    try {
      return JSON.parse(fromUtf8(this.#cipher.open(rec.data, ctx(this.#keys.did)))) as Published;
    } catch {
      return null;
    }
  }

  async #loadPublished(keys: StoredKeyManager): Promise<PreKeyBundle | null> {
    const p = await this.#readPublished();
    if (!p) return null;
    try {
      // Only the fields `maintainPreKeys` compares matter (identity, signed pre-key, last-resort KEM pre-key);
      // the rest is today's. Without KEM pre-keys published, today's KEM pre-key (if any) is never a reason to
      // publish: the upload leaves it out anyway.
      const base = keys.manager.getPublicBundle();
      const { kemPreKey: _k, kemPreKeyId: _i, kemPreKeySignature: _s, ...classic } = base;
      const published = { ...classic, signedPreKeyId: p.spkId, signedPreKey: fromBase64(p.spk), identityKeyEd: fromBase64(p.ed) };
      if (!this.publishesKem) return { ...base, ...published };
      if (p.kemId === undefined || p.kem === undefined || p.kemSig === undefined) return published;
      return { ...published, kemPreKeyId: p.kemId, kemPreKey: fromBase64(p.kem), kemPreKeySignature: fromBase64(p.kemSig) };
    } catch {
      return null;
    }
  }

  async #savePublished(b: PreKeyBundle): Promise<void> {
    const me = this.#keys.did;
    const p: Published = { spkId: b.signedPreKeyId, spk: toBase64(b.signedPreKey), ed: toBase64(b.identityKeyEd) };
    if (b.kemPreKey) {
      p.kemId = b.kemPreKeyId as number;
      p.kem = toBase64(b.kemPreKey);
      p.kemSig = toBase64(b.kemPreKeySignature as Uint8Array);
    }
    const data = this.#cipher.seal(utf8(JSON.stringify(p)), ctx(me));
    const rec = await this.#store.loadSession(me, PUBLISHED_SLOT);
    await this.#store.saveSession(me, PUBLISHED_SLOT, data, rec?.version ?? 0);
  }
}

function ctx(did: string): string {
  return `agentmesh-mesh-published\u0000${did}`;
}
