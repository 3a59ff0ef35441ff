/**
 * The registry over HTTP (AGT's endpoints, AGT-WIRE.md §2, plus ours from `frames.ts`): registration,
 * pre-key upload, bundle claims, one-time pre-key refills and counts, and a peer's registered key.
 * Every request is signed: with our request-bound header, or AGT's timestamp-only one for AGT's registry.
 */
import { E2EError } from '../errors';
import { fromBase64Url, toBase64Url, utf8 } from '../crypto';
import { PreKeyBundle, bundleFromJSON } from '../x3dh';
import {
  FrameSigner,
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

  /** Replaces this agent's bundle (identity, signed pre-key, one-time pool); the server's pool size. */
  async uploadPreKeys(bundle: PreKeyBundle, oneTime: readonly { keyId: number; publicKey: Uint8Array }[]): Promise<number | null> {
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
    const r = await this.#request('PUT', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys`, body);
    assertRegistered(r);
    if (r.status !== 200) throw registryError(r, 'pre-key upload');
    return countOf(r.body);
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
    if (this.#agt) {
      // AGT's registry cannot count, but it can say it forgot us (a restart): then upkeep registers again.
      if ((await this.isRegistered()) === false) throw meshError(MeshErrorReason.NOT_REGISTERED, 'the registry does not know this agent');
      return null;
    }
    const r = await this.#request('GET', `${REGISTRY_PREFIX}/agents/${enc(this.#signer.did)}/prekeys/count`);
    assertRegistered(r);
    if (r.status === 404) return 0;
    if (r.status !== 200) return null;
    return countOf(r.body);
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

function countOf(body: unknown): number | null {
  const n = (body as { otk_count?: unknown } | null)?.otk_count;
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
