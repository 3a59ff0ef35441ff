/**
 * Pre-key upkeep against the registry: `maintainPreKeys` (refill, rotation, retirement) with the registry
 * as its directory. The adapter below is the `PreKeyStore` side `maintainPreKeys` uses, over HTTP: the pool
 * count is the server's where it can say (ours), else what the key manager still holds (AGT); what was last
 * published is remembered sealed in the agent's own store, so a restart does not re-upload (which would
 * reset the pool) unless something changed.
 */
import { E2EError } from '../errors';
import { fromBase64, fromUtf8, toBase64, utf8 } from '../crypto';
import { PreKeyBundle } from '../x3dh';
import { PreKeyStore, PublicOneTimePreKey, SessionStore } from '../store/types';
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
}

/** Publishes and maintains one agent's pre-keys at a registry. */
export class PreKeyUpkeep {
  readonly #keys: StoredKeyManager;
  readonly #registry: RegistryClient;
  readonly #store: SessionStore;
  readonly #cipher: StorageCipher;
  readonly #policy: PreKeyPolicy;
  readonly #capabilities: string[] | undefined;
  readonly #runs = new SerialQueue();

  /** Upkeep of `o.keys` at `o.registry`; what was published is remembered in `o.store`. */
  constructor(o: {
    keys: StoredKeyManager;
    registry: RegistryClient;
    store: SessionStore;
    cipher: StorageCipher;
    policy?: PreKeyPolicy;
    capabilities?: string[];
  }) {
    this.#keys = o.keys;
    this.#registry = o.registry;
    this.#store = o.store;
    this.#cipher = o.cipher;
    this.#policy = o.policy ?? {};
    this.#capabilities = o.capabilities;
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

  #runOnce(): Promise<MaintenanceReport> {
    return (async () => {
      const first = await maintainPreKeys(this.#keys, this.#directory(), this.#policy);
      if (!first.publishedBundle) return first;
      const second = await maintainPreKeys(this.#keys, this.#directory(), this.#policy);
      return { ...first, addedOneTimePreKeys: first.addedOneTimePreKeys + second.addedOneTimePreKeys };
    })();
  }

  /** Forgets what was published (the registry lost it): the next run uploads everything again. */
  async forgetPublished(): Promise<void> {
    const me = this.#keys.did;
    await this.#store.deleteSession(me, PUBLISHED_SLOT);
  }

  #directory(): Pick<PreKeyStore, 'countOneTimePreKeys' | 'getBundle' | 'storeBundle' | 'addOneTimePreKeys'> & PreKeyStore {
    const me = this.#keys.did;
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
        current = bundle;
        await registry.uploadPreKeys(bundle, []);
        await this.#savePublished(bundle);
      },
      addOneTimePreKeys: async (_did: string, added: readonly PublicOneTimePreKey[]) => {
        if ((await registry.addOneTimePreKeys(added)) !== null) return;
        // AGT's registry only replaces the whole bundle.
        await registry.uploadPreKeys(current ?? keys.manager.getPublicBundle(), added);
      },
      consumeOneTimeKey: unsupported,
      claimBundle: unsupported,
      removeBundle: unsupported,
    } as PreKeyStore;
    void me;
  }

  async #loadPublished(keys: StoredKeyManager): Promise<PreKeyBundle | null> {
    const rec = await this.#store.loadSession(keys.did, PUBLISHED_SLOT);
    if (!rec) return null;
    try {
      const p = JSON.parse(fromUtf8(this.#cipher.open(rec.data, ctx(keys.did)))) as Published;
      const base = keys.manager.getPublicBundle();
      // Only the three fields `maintainPreKeys` compares matter; the rest is today's.
      return { ...base, signedPreKeyId: p.spkId, signedPreKey: fromBase64(p.spk), identityKeyEd: fromBase64(p.ed) };
    } catch {
      return null;
    }
  }

  async #savePublished(b: PreKeyBundle): Promise<void> {
    const me = this.#keys.did;
    const data = this.#cipher.seal(
      utf8(JSON.stringify({ spkId: b.signedPreKeyId, spk: toBase64(b.signedPreKey), ed: toBase64(b.identityKeyEd) })),
      ctx(me),
    );
    const rec = await this.#store.loadSession(me, PUBLISHED_SLOT);
    await this.#store.saveSession(me, PUBLISHED_SLOT, data, rec?.version ?? 0);
  }
}

function ctx(did: string): string {
  return `agentmesh-mesh-published\u0000${did}`;
}
