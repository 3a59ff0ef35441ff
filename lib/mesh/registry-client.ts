/**
 * The registry over HTTP (AGT's endpoints, AGT-WIRE.md §2, plus ours from `frames.ts`): registration,
 * pre-key upload, bundle claims, one-time pre-key refills and counts, and a peer's registered key.
 * Every request is signed: with our request-bound header, or AGT's timestamp-only one for AGT's registry.
 * KEM pre-keys (PQXDH) travel in our optional fields (`kem_pre_key`, `kem_pre_keys`, `kem_count`): a
 * registry that does not answer with `kem_count` does not carry them, and a request without KEM pre-keys
 * is the classic one, byte for byte.
 */
import { E2EError } from '../errors';
import { fromBase64Url, toBase64Url, utf8 } from '../crypto';
import { PreKeyBundle, bundleFromJSON } from '../x3dh';
import {
  FrameSigner,
  KemPreKeyJSON,
  OneTimePreKeyJSON,
  PreKeyUploadRequest,
  REGISTRY_PREFIX,
  buildAgtRegistryAuth,
  buildRegistration,
  buildRegistryAuth,
} from './frames';
import { MeshErrorReason, meshError } from './errors';

/** A `fetch` as the registry client calls it. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{
  status: number;
  text(): Promise<string>;
}>;

/** Options of a {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Base URL (`http://host:port`); paths are under `/v1`. */
  readonly baseUrl: string;
  /** Who signs the requests. */
  readonly signer: FrameSigner;
  /** Use AGT's timestamp-only header (for AGT's registry). Default false. */
  readonly agt?: boolean;
  /** `fetch` to use (default: the global one). */
  readonly fetch?: FetchLike;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

/** The public half of a KEM pre-key, as uploaded. */
export interface KemPreKeyUpload {
  readonly keyId: number;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** Pool sizes a registry reported: one-time pre-keys, and one-time KEM pre-keys (`null` when it does not carry KEM pre-keys or did not say). */
export interface PoolCounts {
  readonly otk: number | null;
  readonly kem: number | null;
}

/** A registry response: status and parsed JSON body (or `null`). */
interface Reply {
  status: number;
  body: unknown;
}

/** Client of one registry for one agent. */
export class RegistryClient {
  readonly #base: string;
  readonly #signer: FrameSigner;
  readonly #agt: boolean;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;

  /** A client for `options.baseUrl`, signing as `options.signer`. */
  constructor(options: RegistryClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#signer = options.signer;
    this.#agt = options.agt === true;
    const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (typeof f !== 'function') throw new E2EError('INVALID_ARGUMENT', 'no fetch: pass options.fetch');
    this.#fetch = f;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Registers this agent (201, or 409 when it already is). */
  async register(capabilities?: string[]): Promise<void> {
    const body = buildRegistration(this.#signer, capabilities ? { capabilities } : {});
    const r = await this.#request('POST', `${REGISTRY_PREFIX}/agents`, body, false);
    if (r.status !== 201 && r.status !== 409) throw registryError(r, 'registration');
  }

  /**
   * Replaces this agent's bundle (identity, signed pre-key, one-time pool; its KEM pre-key, if any, as the
   * last-resort one, and `kemOneTime` as the one-time KEM pool); the server's pool sizes. A bundle without
   * KEM pre-key and no `kemOneTime` is AGT's upload, byte for byte.
   */
  async uploadPreKeys(
    bundle: PreKeyBundle,
    oneTime: readonly { keyId: number; publicKey: Uint8Array }[],
    kemOneTime: readonly KemPreKeyUpload[] = [],
  ): Promise<PoolCounts> {
    const body: PreKeyUploadRequest = {
      identity_key: toBase64Url(bundle.identityKey),
      identity_key_ed: toBase64Url(bundle.identityKeyEd),
      signed_pre_key: {
        key_id: bundle.signedPreKeyId,
        public_key: toBase64Url(bundle.signedPreKey),
        signature: toBase64Url(bundle.signedPreKeySignature),
      },
      one_time_pre_keys: oneTime.map(otkJson),
    };
    if (bundle.kemPreKey) {
      body.kem_pre_key = kemJson({
        keyId: bundle.kemPreKeyId as number,
        publicKey: bundle.kemPreKey,
        signature: bundle.kemPreKeySignature as Uint8Array,
      });
    }
    if (kemOneTime.length > 0) body.kem_pre_keys = kemOneTime.map(kemJson);
    const r = await this.#request('PUT', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys`, body);
    assertRegistered(r);
    if (r.status !== 200) throw registryError(r, 'pre-key upload');
    return { otk: countOf(r.body), kem: kemCountOf(r.body) };
  }

  /**
   * Adds one-time KEM pre-keys to the KEM pool (our `POST …/prekeys/one-time` with `kem_pre_keys`); the KEM
   * pool size, or `null` when the registry does not carry KEM pre-keys (AGT's, or one of ours from before them).
   */
  async addKemPreKeys(keys: readonly KemPreKeyUpload[]): Promise<number | null> {
    if (this.#agt) return null;
    const r = await this.#request('POST', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys/one-time`, {
      kem_pre_keys: keys.map(kemJson),
    });
    assertRegistered(r);
    // A registry from before KEM pre-keys wants `one_time_pre_keys` (422), or has no such endpoint.
    if (r.status === 404 || r.status === 405 || r.status === 422) return null;
    if (r.status !== 200) throw registryError(r, 'KEM pre-key upload');
    return kemCountOf(r.body);
  }

  /**
   * Adds one-time pre-keys to the pool (our `POST …/prekeys/one-time`); `null` when the registry has no
   * such endpoint (AGT), so the caller re-uploads the bundle with them.
   */
  async addOneTimePreKeys(keys: readonly { keyId: number; publicKey: Uint8Array }[]): Promise<number | null> {
    if (this.#agt) return null;
    const r = await this.#request('POST', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys/one-time`, {
      one_time_pre_keys: keys.map(otkJson),
    });
    assertRegistered(r);
    if (r.status === 404 || r.status === 405) return null;
    if (r.status !== 200) throw registryError(r, 'one-time pre-key upload');
    return countOf(r.body) ?? 0;
  }

  /** Unclaimed one-time pre-keys on the server; `null` when the registry cannot say (AGT), 0 when it has no bundle. */
  async countOneTimePreKeys(): Promise<number | null> {
    return (await this.countPools()).otk;
  }

  /**
   * Unclaimed one-time pre-keys and one-time KEM pre-keys on the server, in one request. `otk`: `null` when
   * the registry cannot say (AGT), 0 when it has no bundle. `kem`: 0 when our registry holds no KEM pre-key
   * for us (it answers `kem_count` only for an agent that published some), `null` when it cannot say.
   */
  async countPools(): Promise<PoolCounts> {
    if (this.#agt) {
      // AGT's registry cannot count, but it can say it forgot us (a restart): then upkeep registers again.
      if ((await this.isRegistered()) === false) throw meshError(MeshErrorReason.NOT_REGISTERED, 'the registry does not know this agent');
      return { otk: null, kem: null };
    }
    const r = await this.#request('GET', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys/count`);
    assertRegistered(r);
    if (r.status === 404) return { otk: 0, kem: 0 };
    if (r.status !== 200) return { otk: null, kem: null };
    const otk = countOf(r.body);
    return { otk, kem: kemCountOf(r.body) ?? (otk === null ? null : 0) };
  }

  /** Whether the registry knows this agent (an unsigned `GET /v1/agents/{did}`, which claims nothing); `null` when it cannot say. */
  async isRegistered(): Promise<boolean | null> {
    const r = await this.#request('GET', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}`, undefined, false);
    if (r.status === 404) return false;
    return r.status === 200 ? true : null;
  }

  /** Claims `did`'s bundle (it takes one one-time pre-key off the pool); `null` for an unknown DID. */
  async claimBundle(did: string): Promise<PreKeyBundle | null> {
    const r = await this.#request('GET', `${REGISTRY_PREFIX}/agents/${enc(did)}/prekeys`);
    if (r.status === 404) return null;
    if (r.status !== 200) throw registryError(r, 'bundle claim');
    try {
      return bundleFromJSON(r.body as never);
    } catch {
      throw meshError(MeshErrorReason.REGISTRY_ERROR, 'the registry returned a malformed bundle');
    }
  }

  /** The Ed25519 key registered for `did` (our `public_key` field); `null` if unknown or not given (AGT). */
  async publicKeyOf(did: string): Promise<Uint8Array | null> {
    const r = await this.#request('GET', `${REGISTRY_PREFIX}/agents/${enc(did)}`);
    if (r.status !== 200) return null;
    const pk = (r.body as { public_key?: unknown } | null)?.public_key;
    if (typeof pk !== 'string') return null;
    try {
      const key = fromBase64Url(pk.replace(/=+$/, ''));
      return key.length === 32 ? key : null;
    } catch {
      return null;
    }
  }

  async #request(method: string, path: string, body?: unknown, auth = true): Promise<Reply> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (text !== undefined) headers['content-type'] = 'application/json';
    if (auth) {
      headers.authorization = this.#agt
        ? buildAgtRegistryAuth(this.#signer)
        : buildRegistryAuth(this.#signer, { method, path, body: text === undefined ? new Uint8Array(0) : utf8(text) });
    }
    const ctl = typeof AbortController === 'function' ? new AbortController() : undefined;
    const timer = setTimeout(() => ctl?.abort(), this.#timeoutMs);
    (timer as { unref?: () => void }).unref?.();
    try {
      const init: Parameters<FetchLike>[1] = { method, headers };
      if (text !== undefined) init.body = text;
      if (ctl) init.signal = ctl.signal;
      const res = await this.#fetch(this.#base + path, init);
      const raw = await res.text();
      let parsed: unknown = null;
      try {
        parsed = raw.length > 0 ? JSON.parse(raw) : null;
      } catch {
        parsed = null;
      }
      return { status: res.status, body: parsed };
    } catch {
      throw meshError(
        MeshErrorReason.REGISTRY_UNREACHABLE,
        `the registry did not answer ${method} ${path.split('/').slice(0, 3).join('/')}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

function enc(did: string): string {
  return encodeURIComponent(did);
}

function otkJson(k: { keyId: number; publicKey: Uint8Array }): OneTimePreKeyJSON {
  return { key_id: k.keyId, public_key: toBase64Url(k.publicKey) };
}

function kemJson(k: KemPreKeyUpload): KemPreKeyJSON {
  return { key_id: k.keyId, public_key: toBase64Url(k.publicKey), signature: toBase64Url(k.signature) };
}

function countOf(body: unknown): number | null {
  const n = (body as { otk_count?: unknown } | null)?.otk_count;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : null;
}

function kemCountOf(body: unknown): number | null {
  const n = (body as { kem_count?: unknown } | null)?.kem_count;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : null;
}

function registryError(r: Reply, what: string): E2EError {
  const detail = (r.body as { detail?: unknown } | null)?.detail;
  const d = typeof detail === 'string' ? `: ${detail.slice(0, 200)}` : '';
  return meshError(
    r.status === 429 ? MeshErrorReason.REGISTRY_RATE_LIMITED : MeshErrorReason.REGISTRY_ERROR,
    `${what} failed with HTTP ${r.status}${d}`,
  );
}

/** Throws `not_registered` when the registry says it does not know the signing agent (401/404 with that detail). */
function assertRegistered(r: Reply): void {
  const detail = String((r.body as { detail?: unknown } | null)?.detail ?? '');
  if ((r.status === 401 && /not registered/i.test(detail)) || (r.status === 404 && /^Agent not found$/i.test(detail))) {
    throw meshError(MeshErrorReason.NOT_REGISTERED, 'the registry does not know this agent');
  }
}
