/**
 * The registry: AGT's HTTP endpoints under `/v1/` (AGT-WIRE.md §2), same paths, bodies and status codes, with
 * the holes closed: request-bound single-use auth (AGT's timestamp-only header still accepted, single-use and
 * flagged weaker), authenticated and rate-limited bundle claims (G4), validated bundles, validation before any
 * change (G11), one-time keys handed out once and never re-published.
 *
 * Post-quantum (PQXDH) pre-keys are ours, in optional fields AGT's registry ignores: `kem_pre_key` (the
 * last-resort ML-KEM-768 key) and `kem_pre_keys` (one-time ones) in uploads, `kem_pre_key` in claims and
 * `kem_count` in counts, each present only for an agent that published KEM pre-keys, so an agent that never
 * sends them gets AGT's answers byte for byte.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isE2EError } from '../errors';
import { constantTimeEqual, ed25519Verify, isU32, sha256, toBase64Url, toHex, utf8 } from '../crypto';
import { PreKeyBundle, x25519FormOfEd25519 } from '../x3dh';
import { kemPreKeyVerifies } from '../x3dh/identity-cache';
import { KEM_PRE_KEY_BASE64URL_CHARS } from '../x3dh/kem-prekey';
import { MLKEM768_PUBLIC_KEY_BYTES as KEM_PUBLIC_KEY_BYTES } from '../crypto/mlkem';
import type { PreKeyStore, PublicKemPreKeyEntry, PublicOneTimePreKey } from '../store/types';
import {
  AgentRecordResponse,
  KemPreKeyJSON,
  PreKeyCountResponse,
  PROOF_WINDOW_MS,
  PreKeyBundleResponse,
  RegistryAuth,
  decodeB64Lenient,
  meshDidOf,
  parseProofTimestamp,
  parseRegistryAuth,
  registryProofMessage,
} from '../mesh/frames';
import type { AgentDirectory, AgentRecord, KemLastResortRecord } from './directory';
import { MAX_FUTURE_SKEW_MS, ProofGuard, RateLimiter } from './guards';

/** Limits of the registry. */
export interface RegistryLimits {
  /** Largest request body (default 256 KiB), except pre-key uploads. */
  maxBodyBytes: number;
  /**
   * Largest body of a pre-key upload (`PUT …/prekeys`, `POST …/prekeys/one-time`; default 512 KiB): room for
   * `maxOneTimeKeys` one-time pre-keys (~73 B of JSON each) and `maxKemPreKeys` one-time KEM pre-keys (~1.7 kB
   * each: 1184 + 64 bytes in base64url) beside the bundle and its last-resort KEM pre-key (~2 kB).
   */
  maxPreKeyBodyBytes: number;
  /** Bundle claims per requester: burst (default 30) and per second sustained (default 1). */
  bundleFetchBurst: number;
  /** Bundle claims per requester per second, sustained (default 1). */
  bundleFetchPerSecond: number;
  /**
   * One-time pre-keys handed out per target agent: burst (default 20), per second (default 1/3, i.e. 20 a minute).
   * Beyond it a claim gets the bundle without a one-time pre-key (the last-resort form): sessions still open, and
   * throwaway requester DIDs cannot drain the pool.
   */
  oneTimeKeyBurst: number;
  /** One-time pre-keys handed out per target agent per second, sustained (default 1/3). */
  oneTimeKeyPerSecond: number;
  /** Registrations per remote address: burst (default 20), per second (default 0.5). */
  registerBurst: number;
  /** Registrations per remote address per second, sustained (default 0.5). */
  registerPerSecond: number;
  /** Pre-key uploads per DID: burst (default 10), per second (default 0.2). */
  uploadBurst: number;
  /** Pre-key uploads per DID per second, sustained (default 0.2). */
  uploadPerSecond: number;
  /** Reputation reports per reporter: burst (default 20), per second (default 0.2). */
  reportBurst: number;
  /** Reputation reports per reporter per second, sustained (default 0.2). */
  reportPerSecond: number;
  /**
   * Authenticated requests (every endpoint with an Authorization header) per DID: burst (default 60), per second
   * (default 5); and per remote address: burst (default 600), per second (default 50).
   */
  authBurst: number;
  /** Authenticated requests per DID per second, sustained (default 5). */
  authPerSecond: number;
  /** Authenticated requests per remote address: burst (default 600). */
  authAddressBurst: number;
  /** Authenticated requests per remote address per second, sustained (default 50). */
  authAddressPerSecond: number;
  /** `GET /v1/discover` per remote address: burst (default 30), per second (default 2); most bytes of results (default 256 KiB). */
  discoverBurst: number;
  /** `GET /v1/discover` per remote address per second, sustained (default 2). */
  discoverPerSecond: number;
  /** Most bytes of JSON results one `GET /v1/discover` returns; records past it are left off (default 256 KiB). */
  discoverMaxBytes: number;
  /** Most one-time pre-keys in one DID's pool (default 1000). */
  maxOneTimeKeys: number;
  /** Most one-time KEM pre-keys in one DID's KEM pool (default 200; each is ~1.25 kB stored). */
  maxKemPreKeys: number;
  /** Most capabilities (default 64) and metadata entries (default 64); longest string (default 1024). */
  maxCapabilities: number;
  /** Most metadata entries at registration (default 64). */
  maxMetadata: number;
  /** Longest capability, metadata key or metadata value, in UTF-16 code units (default 1024). */
  maxStringLength: number;
}

/** The defaults of {@link RegistryLimits}. */
export const DEFAULT_REGISTRY_LIMITS: Readonly<RegistryLimits> = Object.freeze({
  maxBodyBytes: 256 * 1024,
  maxPreKeyBodyBytes: 512 * 1024,
  bundleFetchBurst: 30,
  bundleFetchPerSecond: 1,
  oneTimeKeyBurst: 20,
  oneTimeKeyPerSecond: 20 / 60,
  registerBurst: 20,
  registerPerSecond: 0.5,
  uploadBurst: 10,
  uploadPerSecond: 0.2,
  reportBurst: 20,
  reportPerSecond: 0.2,
  authBurst: 60,
  authPerSecond: 5,
  authAddressBurst: 600,
  authAddressPerSecond: 50,
  discoverBurst: 30,
  discoverPerSecond: 2,
  discoverMaxBytes: 256 * 1024,
  maxOneTimeKeys: 1000,
  maxKemPreKeys: 200,
  maxCapabilities: 64,
  maxMetadata: 64,
  maxStringLength: 1024,
});

/** Options of {@link Registry}. */
export interface RegistryOptions {
  /** Where agent records and the ledger of handed-out one-time pre-keys live. */
  directory: AgentDirectory;
  /** Where agents' published pre-keys live: bundles, one-time and KEM pre-keys. */
  prekeys: PreKeyStore;
  /** Shared with the relay (G3). */
  proofs: ProofGuard;
  /** Overrides of {@link DEFAULT_REGISTRY_LIMITS}. */
  limits?: Partial<RegistryLimits>;
  /** Whether the relay has a live connection for `did` (presence comes from the relay, not only heartbeats). */
  isConnected?: (did: string) => boolean;
  /**
   * Accept AGT SDK 4.0.0 clients (default `false`; INSECURE, for interop tests): registration without a
   * proof (`{did, public_key}`), bundle uploads without auth when the bundle certifies the DID (its
   * `identity_key_ed` hashes to the DID and signs the SPK), and bundle claims without auth (rate-limited per
   * address). Anyone can then register any self-certifying DID first and drain its one-time keys.
   */
  legacyClients?: boolean;
  /** Receives the registry's log lines: internal errors, AGT's weaker auth header, legacy-mode writes (default: none). */
  log?: (line: string) => void;
}

/** An HTTP error with AGT's `{detail}` body. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const ONLINE_MS = 90_000;
const HEARTBEAT_MIN_MS = 10_000;

/** Python `isoformat()` of a UTC time, as AGT's registry prints it. */
export function pyIso(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000+00:00');
}

function hashKey(k: Uint8Array): string {
  return toHex(sha256(k));
}

/** Unpadded base64url characters of a KEM pre-key (1184 bytes) and of a signature (64). */
const KEM_KEY_CHARS = KEM_PRE_KEY_BASE64URL_CHARS;
const SIGNATURE_CHARS = 86;

/** Whether `method` on `pathname` is a pre-key upload, whose body may be up to `maxPreKeyBodyBytes`. */
function isPreKeyUpload(method: string | undefined, pathname: string): boolean {
  const parts = pathname.split('/').filter((p) => p.length > 0);
  if (parts[0] !== 'v1' || parts[1] !== 'agents' || parts[3] !== 'prekeys') return false;
  return (method === 'PUT' && parts.length === 4) || (method === 'POST' && parts.length === 5 && parts[4] === 'one-time');
}

/** The registry's request handler. */
export class Registry {
  /** The limits in force: {@link DEFAULT_REGISTRY_LIMITS} with the options' overrides. */
  readonly limits: Readonly<RegistryLimits>;
  readonly #dir: AgentDirectory;
  readonly #prekeys: PreKeyStore;
  readonly #proofs: ProofGuard;
  readonly #isConnected: (did: string) => boolean;
  readonly #log: (line: string) => void;
  readonly #fetchLimiter: RateLimiter;
  readonly #otkLimiter: RateLimiter;
  readonly #registerLimiter: RateLimiter;
  readonly #uploadLimiter: RateLimiter;
  readonly #reportLimiter: RateLimiter;
  readonly #authLimiter: RateLimiter;
  readonly #discoverLimiter: RateLimiter;
  readonly #authAddressLimiter: RateLimiter;
  readonly #legacy: boolean;

  /** A registry over a directory and a pre-key store. */
  constructor(options: RegistryOptions) {
    this.limits = Object.freeze({ ...DEFAULT_REGISTRY_LIMITS, ...options.limits });
    this.#dir = options.directory;
    this.#prekeys = options.prekeys;
    this.#proofs = options.proofs;
    this.#isConnected = options.isConnected ?? (() => false);
    this.#legacy = options.legacyClients === true;
    this.#log = options.log ?? (() => undefined);
    const l = this.limits;
    this.#fetchLimiter = new RateLimiter(l.bundleFetchBurst, l.bundleFetchPerSecond);
    this.#otkLimiter = new RateLimiter(l.oneTimeKeyBurst, l.oneTimeKeyPerSecond);
    this.#registerLimiter = new RateLimiter(l.registerBurst, l.registerPerSecond);
    this.#uploadLimiter = new RateLimiter(l.uploadBurst, l.uploadPerSecond);
    this.#reportLimiter = new RateLimiter(l.reportBurst, l.reportPerSecond);
    this.#authLimiter = new RateLimiter(l.authBurst, l.authPerSecond);
    this.#discoverLimiter = new RateLimiter(l.discoverBurst, l.discoverPerSecond);
    this.#authAddressLimiter = new RateLimiter(l.authAddressBurst, l.authAddressPerSecond);
  }

  /** Handles a request whose path starts with `/v1/`. Never throws. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const max = isPreKeyUpload(req.method, url.pathname)
        ? Math.max(this.limits.maxBodyBytes, this.limits.maxPreKeyBodyBytes)
        : this.limits.maxBodyBytes;
      const body = await readBody(req, max);
      const out = await this.#route(req, url, body, res);
      if (out === null) {
        res.writeHead(204).end();
      } else {
        send(res, out.status, out.body);
      }
    } catch (e) {
      if (e instanceof HttpError) send(res, e.status, { detail: e.detail });
      else {
        this.#log(`registry: internal error (${isE2EError(e) ? e.code : 'unexpected'})`);
        send(res, isE2EError(e, 'STORE_ERROR') ? 503 : 500, { detail: 'Internal server error' });
      }
    }
  }

  async #route(req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): Promise<{ status: number; body: unknown } | null> {
    const method = req.method ?? 'GET';
    const parts = url.pathname
      .split('/')
      .filter((p) => p.length > 0)
      .map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new HttpError(404, 'Not Found');
        }
      });
    const ctx: Ctx = { req, res, url, body, method };
    // parts[0] === 'v1'
    const [, a, did, sub, sub2] = parts;
    if (a === 'agents' && parts.length === 2) {
      if (method === 'POST') return this.#register(ctx);
      throw methodNotAllowed();
    }
    if (a === 'agents' && did !== undefined) {
      if (parts.length === 3) {
        if (method === 'GET') return this.#getAgent(did);
        if (method === 'DELETE') return this.#deleteAgent(ctx, did);
        throw methodNotAllowed();
      }
      if (sub === 'prekeys' && parts.length === 4) {
        if (method === 'PUT') return this.#uploadPrekeys(ctx, did);
        if (method === 'GET') return this.#claimBundle(ctx, did);
        throw methodNotAllowed();
      }
      if (sub === 'prekeys' && sub2 === 'count' && parts.length === 5 && method === 'GET') return this.#countPrekeys(ctx, did);
      if (sub === 'prekeys' && sub2 === 'one-time' && parts.length === 5 && method === 'POST') return this.#addPrekeys(ctx, did);
      if (sub === 'presence' && parts.length === 4 && method === 'GET') return this.#presence(did);
      if (sub === 'heartbeat' && parts.length === 4 && method === 'POST') return this.#heartbeat(ctx, did);
      if (sub === 'reputation' && parts.length === 4 && method === 'POST') return this.#reputation(ctx, did);
    }
    if (a === 'registry' && did === 'reputation' && sub === 'session' && parts.length === 4 && method === 'POST')
      return this.#sessionReport(ctx);
    if (a === 'registry' && did === 'verify' && parts.length === 3 && method === 'POST') {
      throw new HttpError(503, 'Entra verification is not configured');
    }
    if (a === 'discover' && parts.length === 2 && method === 'GET') return this.#discover(ctx);
    throw new HttpError(404, 'Not Found');
  }

  // ----- auth -----

  /**
   * The authenticated DID of a request. `missingStatus`: AGT answers 422 where the header is declared
   * required (DELETE, PUT prekeys) and 401 elsewhere.
   */
  async #auth(ctx: Ctx, missingStatus: 401 | 422): Promise<{ did: string; record: AgentRecord }> {
    const header = ctx.req.headers.authorization;
    if (header === undefined)
      throw new HttpError(missingStatus, missingStatus === 422 ? 'Missing Authorization header' : 'Authentication required');
    const a = parseRegistryAuth(header);
    if (a === null) throw new HttpError(401, 'Invalid Authorization header');
    if (!this.#authAddressLimiter.take(ctx.req.socket.remoteAddress ?? 'unknown')) throw new HttpError(429, 'Too many requests');
    const t = parseProofTimestamp(a.timestamp);
    if (t === null) throw new HttpError(401, 'Invalid timestamp');
    if (t === 'naive') throw new HttpError(401, 'Timestamp must include timezone offset');
    if (!inWindow(t)) throw new HttpError(401, 'Timestamp outside replay window');
    const record = await this.#dir.get(a.did);
    if (!record || record.publicKey.length !== 32) throw new HttpError(401, 'Agent not registered');
    const sig = decodeB64Lenient(a.signature);
    if (sig === null || sig.length !== 64 || !ed25519Verify(sig, this.#signedBytes(a, ctx), record.publicKey)) {
      throw new HttpError(401, 'Invalid signature');
    }
    // Per DID after the signature, so nobody else can spend an agent's budget.
    if (!this.#authLimiter.take(a.did)) throw new HttpError(429, 'Too many requests');
    // Single use. AGT's header shares its key with a timestamp-only relay connect proof: neither replays as the other (G3).
    const key = a.scheme === 'agt' ? `w|${a.did}|${a.timestamp}` : `m|${a.did}|${a.timestamp}|${a.nonce}`;
    const use = await this.#proofs.use(key, t);
    if (use === 'replayed') throw new HttpError(401, 'Authorization already used (replay)');
    if (use === 'full') throw new HttpError(429, 'Too many requests');
    if (a.scheme === 'agt') {
      ctx.res.setHeader('X-AgentMesh-Auth-Warning', 'Ed25519-Timestamp is not bound to the request; use AgentMesh-Ed25519-v1');
      this.#log(`registry: ${a.did} used AGT's Ed25519-Timestamp header (weaker: not request-bound) for ${ctx.method} ${ctx.url.pathname}`);
    }
    return { did: a.did, record };
  }

  #signedBytes(a: RegistryAuth, ctx: Ctx): Uint8Array {
    if (a.scheme === 'agt') return utf8(a.timestamp);
    return registryProofMessage({
      did: a.did,
      method: ctx.method,
      path: ctx.url.pathname + ctx.url.search,
      timestamp: a.timestamp,
      nonce: a.nonce,
      body: ctx.body,
    });
  }

  async #owner(ctx: Ctx, did: string, missingStatus: 401 | 422): Promise<AgentRecord> {
    const a = await this.#auth(ctx, missingStatus);
    if (a.did !== did) throw new HttpError(403, 'DID mismatch');
    return a.record;
  }

  // ----- endpoints -----

  async #register(ctx: Ctx): Promise<{ status: number; body: unknown }> {
    const b = jsonObject(ctx.body);
    const { public_key, proof, proof_timestamp } = b;
    if (this.#legacy && proof === undefined && proof_timestamp === undefined && typeof b.did === 'string')
      return this.#registerLegacy(ctx, b);
    if (typeof public_key !== 'string' || typeof proof !== 'string' || typeof proof_timestamp !== 'string') {
      throw new HttpError(422, 'public_key, proof and proof_timestamp are required strings');
    }
    const capabilities = this.#capabilities(b.capabilities);
    const metadata = this.#metadata(b.metadata);
    if (!this.#registerLimiter.take(ctx.req.socket.remoteAddress ?? 'unknown')) throw new HttpError(429, 'Too many registrations');
    const pk = decodeB64Lenient(public_key);
    if (pk === null) throw new HttpError(400, 'Invalid public_key encoding');
    if (pk.length !== 32) throw new HttpError(400, 'public_key must be 32 bytes');
    const t = parseProofTimestamp(proof_timestamp);
    if (t === null) throw new HttpError(400, 'Invalid proof_timestamp');
    // AGT crashes with 500 here (G11); a naive time is a client error.
    if (t === 'naive') throw new HttpError(400, 'proof_timestamp must include timezone offset');
    if (!inWindow(t)) throw new HttpError(401, 'proof_timestamp outside replay window');
    const sig = decodeB64Lenient(proof);
    if (sig === null || sig.length !== 64) throw new HttpError(400, 'Malformed proof');
    if (!ed25519Verify(sig, utf8(public_key + proof_timestamp), pk)) throw new HttpError(401, 'Invalid proof-of-possession');
    const did = meshDidOf(pk);
    if ((await this.#proofs.use(`r|${did}|${proof_timestamp}`, t)) !== 'fresh')
      throw new HttpError(401, 'Registration proof already used (replay)');
    const inserted = await this.#dir.insert(newAgentRecord(did, pk, capabilities, metadata));
    if (!inserted) throw new HttpError(409, 'Agent already registered');
    return { status: 201, body: { did, status: 'registered' } };
  }

  /** AGT 4.0.0's body `{did, public_key: X25519 identity key}`: no proof, so the key is bound at first upload. */
  async #registerLegacy(ctx: Ctx, b: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
    const did = b.did as string;
    if (!/^did:mesh:[0-9a-f]{32}$/.test(did)) throw new HttpError(400, 'did must be did:mesh: + 32 hex characters of sha256(Ed25519 key)');
    const x = typeof b.public_key === 'string' ? decodeB64Lenient(b.public_key) : null;
    if (x === null || x.length !== 32) throw new HttpError(400, 'public_key must be 32 bytes');
    const capabilities = this.#capabilities(b.capabilities);
    const metadata = this.#metadata(b.metadata);
    if (!this.#registerLimiter.take(ctx.req.socket.remoteAddress ?? 'unknown')) throw new HttpError(429, 'Too many registrations');
    this.#log(`registry: ${did} registered WITHOUT proof-of-possession (legacy AGT 4.0.0 mode)`);
    const inserted = await this.#dir.insert({ ...newAgentRecord(did, new Uint8Array(0), capabilities, metadata), legacyIdentityKey: x });
    if (!inserted) throw new HttpError(409, 'Agent already registered');
    return { status: 201, body: { did, status: 'registered' } };
  }

  #capabilities(v: unknown): string[] {
    if (v === undefined || v === null) return [];
    const l = this.limits;
    if (!Array.isArray(v) || v.length > l.maxCapabilities || !v.every((c) => typeof c === 'string' && c.length <= l.maxStringLength)) {
      throw new HttpError(422, `capabilities must be a list of at most ${l.maxCapabilities} strings`);
    }
    return v as string[];
  }

  #metadata(v: unknown): Record<string, string> {
    if (v === undefined || v === null) return {};
    const l = this.limits;
    if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(422, 'metadata must be an object of strings');
    const entries = Object.entries(v as Record<string, unknown>);
    if (
      entries.length > l.maxMetadata ||
      !entries.every(([k, s]) => typeof s === 'string' && k.length <= l.maxStringLength && s.length <= l.maxStringLength)
    ) {
      throw new HttpError(422, `metadata must be an object of at most ${l.maxMetadata} strings`);
    }
    return Object.fromEntries(entries) as Record<string, string>;
  }

  async #record(did: string): Promise<AgentRecord> {
    const r = await this.#dir.get(did);
    if (!r) throw new HttpError(404, 'Agent not found');
    return r;
  }

  async #getAgent(did: string): Promise<{ status: number; body: AgentRecordResponse }> {
    const r = await this.#record(did);
    return {
      status: 200,
      body: {
        did: r.did,
        capabilities: r.capabilities,
        metadata: r.metadata,
        registered_at: pyIso(r.registeredAt),
        last_seen: pyIso(r.lastSeen),
        reputation_score: r.reputation,
        total_sessions: r.totalSessions,
        successful_sessions: r.successfulSessions,
        failed_sessions: r.failedSessions,
        timeout_sessions: r.timeoutSessions,
        last_session_at: r.lastSessionAt === null ? null : pyIso(r.lastSessionAt),
        completion_rate: r.totalSessions === 0 ? null : r.successfulSessions / r.totalSessions,
        tier: r.tier,
        verified_app_id: null,
        verified_tenant_id: null,
        verified_at: null,
        public_key: r.publicKey.length === 32 ? toBase64Url(r.publicKey) : '',
      },
    };
  }

  async #deleteAgent(ctx: Ctx, did: string): Promise<null> {
    await this.#owner(ctx, did, 422);
    if (!(await this.#dir.remove(did))) throw new HttpError(404, 'Agent not found');
    await this.#prekeys.removeBundle(did);
    return null;
  }

  /** Decodes and checks a whole upload before anything changes (AGT mutates first, G11). */
  async #parseOneTimeKeys(did: string, v: unknown): Promise<PublicOneTimePreKey[]> {
    if (!Array.isArray(v)) throw new HttpError(422, 'one_time_pre_keys must be a list');
    if (v.length > this.limits.maxOneTimeKeys)
      throw new HttpError(400, `Invalid pre-key bundle: at most ${this.limits.maxOneTimeKeys} one-time pre-keys`);
    const ids = new Set<number>();
    const out: PublicOneTimePreKey[] = [];
    for (const o of v as unknown[]) {
      const k = o as Record<string, unknown> | null;
      if (typeof k !== 'object' || k === null || !isU32(k.key_id) || typeof k.public_key !== 'string') {
        throw new HttpError(400, 'Invalid pre-key bundle: each one-time pre-key is {key_id, public_key}');
      }
      const pk = decodeB64Lenient(k.public_key);
      if (pk === null || pk.length !== 32) throw new HttpError(400, 'Invalid pre-key bundle: one-time pre-key must be 32 bytes');
      if (ids.has(k.key_id)) throw new HttpError(400, 'Invalid pre-key bundle: duplicate one-time pre-key id');
      if (await this.#dir.wasHandedOut(did, hashKey(pk)))
        throw new HttpError(400, 'Invalid pre-key bundle: one-time pre-key was already handed out');
      ids.add(k.key_id);
      out.push({ keyId: k.key_id, publicKey: pk });
    }
    return out;
  }

  /**
   * A KEM pre-key of an upload, decoded and checked (length, and its signature under `identityKeyEd`) before
   * anything changes. Strings longer than the key's encoding are refused undecoded.
   */
  #parseKemKey(v: unknown, identityKeyEd: Uint8Array): PublicKemPreKeyEntry {
    const k = v as Record<string, unknown> | null;
    if (
      typeof k !== 'object' ||
      k === null ||
      Array.isArray(k) ||
      !isU32(k.key_id) ||
      typeof k.public_key !== 'string' ||
      typeof k.signature !== 'string'
    ) {
      throw new HttpError(400, 'Invalid pre-key bundle: each KEM pre-key is {key_id, public_key, signature}');
    }
    const pk = k.public_key.length <= KEM_KEY_CHARS + 2 ? decodeB64Lenient(k.public_key) : null;
    if (pk === null || pk.length !== KEM_PUBLIC_KEY_BYTES)
      throw new HttpError(400, `Invalid pre-key bundle: KEM pre-key must be ${KEM_PUBLIC_KEY_BYTES} bytes`);
    const sig = k.signature.length <= SIGNATURE_CHARS + 2 ? decodeB64Lenient(k.signature) : null;
    if (sig === null || sig.length !== 64 || !kemPreKeyVerifies(identityKeyEd, pk, sig)) {
      throw new HttpError(400, 'Invalid pre-key bundle: KEM pre-key signature does not verify under the registered key');
    }
    return { keyId: k.key_id, publicKey: pk, signature: sig };
  }

  /**
   * The one-time KEM pre-keys of an upload (`kem_pre_keys`; absent: none), checked as a whole before anything
   * changes: at most `maxKemPreKeys`, distinct ids none of which is `lastResortId`, none handed out before.
   */
  async #parseKemKeys(did: string, v: unknown, identityKeyEd: Uint8Array, lastResortId: number | null): Promise<PublicKemPreKeyEntry[]> {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new HttpError(422, 'kem_pre_keys must be a list');
    if (v.length > this.limits.maxKemPreKeys)
      throw new HttpError(400, `Invalid pre-key bundle: at most ${this.limits.maxKemPreKeys} one-time KEM pre-keys`);
    if (v.length > 0 && lastResortId === null)
      throw new HttpError(400, 'Invalid pre-key bundle: one-time KEM pre-keys need a last-resort KEM pre-key (kem_pre_key)');
    const ids = new Set<number>();
    const out: PublicKemPreKeyEntry[] = [];
    for (const o of v as unknown[]) {
      const k = this.#parseKemKey(o, identityKeyEd);
      if (ids.has(k.keyId) || k.keyId === lastResortId) throw new HttpError(400, 'Invalid pre-key bundle: duplicate KEM pre-key id');
      if (await this.#dir.wasHandedOut(did, hashKey(k.publicKey)))
        throw new HttpError(400, 'Invalid pre-key bundle: KEM pre-key was already handed out');
      ids.add(k.keyId);
      out.push(k);
    }
    return out;
  }

  /** The answer of the pre-key endpoints: `{did, otk_count}`, and `kem_count` for a DID with KEM pre-keys. */
  async #counts(did: string, record: AgentRecord | null): Promise<PreKeyCountResponse> {
    const otk = await this.#prekeys.countOneTimePreKeys(did);
    const kem = await this.#prekeys.countKemPreKeys(did);
    return record?.kemLastResort !== undefined || kem > 0 ? { did, otk_count: otk, kem_count: kem } : { did, otk_count: otk };
  }

  async #uploadPrekeys(ctx: Ctx, did: string): Promise<{ status: number; body: unknown }> {
    const b = jsonObject(ctx.body);
    const record =
      this.#legacy && ctx.req.headers.authorization === undefined ? await this.#legacyUploader(did, b) : await this.#owner(ctx, did, 422);
    if (!this.#uploadLimiter.take(did)) throw new HttpError(429, 'Too many pre-key uploads');
    const spk = b.signed_pre_key as Record<string, unknown> | undefined;
    if (typeof b.identity_key !== 'string' || typeof spk !== 'object' || spk === null || b.one_time_pre_keys === undefined) {
      throw new HttpError(422, 'identity_key, signed_pre_key and one_time_pre_keys are required');
    }
    const ik = decodeB64Lenient(b.identity_key);
    if (ik === null || ik.length !== 32) throw new HttpError(400, 'Invalid pre-key bundle: identity_key must be 32 bytes');
    if (b.identity_key_ed !== undefined && b.identity_key_ed !== null) {
      const ed = typeof b.identity_key_ed === 'string' ? decodeB64Lenient(b.identity_key_ed) : null;
      if (ed === null || ed.length !== 32) throw new HttpError(400, 'identity_key_ed must be 32 bytes');
      if (!constantTimeEqual(ed, record.publicKey))
        throw new HttpError(400, 'Invalid pre-key bundle: identity_key_ed is not the registered key');
    }
    if (!constantTimeEqual(ik, x25519FormOfEd25519(record.publicKey))) {
      throw new HttpError(400, 'Invalid pre-key bundle: identity_key is not the X25519 form of the registered key');
    }
    if (!isU32(spk.key_id) || typeof spk.public_key !== 'string' || typeof spk.signature !== 'string') {
      throw new HttpError(400, 'Invalid pre-key bundle: signed_pre_key is {key_id, public_key, signature}');
    }
    const spkPub = decodeB64Lenient(spk.public_key);
    const spkSig = decodeB64Lenient(spk.signature);
    if (spkPub === null || spkPub.length !== 32) throw new HttpError(400, 'Invalid pre-key bundle: signed_pre_key must be 32 bytes');
    if (spkSig === null || spkSig.length !== 64 || !ed25519Verify(spkSig, spkPub, record.publicKey)) {
      throw new HttpError(400, 'Invalid pre-key bundle: signed_pre_key signature does not verify under the registered key');
    }
    const otks = await this.#parseOneTimeKeys(did, b.one_time_pre_keys);
    if (record.publicKey.length !== 32 || (record.legacyIdentityKey && !constantTimeEqual(record.legacyIdentityKey, ik))) {
      throw new HttpError(400, 'Invalid pre-key bundle: identity_key is not the registered identity key');
    }
    const lastResort = b.kem_pre_key === undefined || b.kem_pre_key === null ? null : this.#parseKemKey(b.kem_pre_key, record.publicKey);
    const kems = await this.#parseKemKeys(did, b.kem_pre_keys, record.publicKey, lastResort?.keyId ?? null);
    if (record.legacyIdentityKey) {
      // First legacy upload: the DID now has its Ed25519 key, checked against the DID's hash.
      delete record.legacyIdentityKey;
      await this.#dir.update(record);
    }
    // AGT replaces everything, the OPK pool included (and so, here, the KEM pool and last-resort KEM pre-key).
    // Claimed keys are in the handed-out ledger, so clearing the store's claim history cannot let one be handed
    // out twice.
    await this.#prekeys.removeBundle(did);
    const bundle: PreKeyBundle = {
      identityKey: ik,
      identityKeyEd: record.publicKey,
      signedPreKey: spkPub,
      signedPreKeySignature: spkSig,
      signedPreKeyId: spk.key_id,
    };
    await this.#prekeys.storeBundle(
      did,
      lastResort
        ? { ...bundle, kemPreKey: lastResort.publicKey, kemPreKeyId: lastResort.keyId, kemPreKeySignature: lastResort.signature }
        : bundle,
    );
    if (otks.length > 0) await this.#prekeys.addOneTimePreKeys(did, otks);
    if (kems.length > 0) await this.#prekeys.addKemPreKeys(did, kems);
    if (record.kemLastResort !== undefined || lastResort) {
      // The record keeps the last-resort KEM pre-key for claims beyond the one-time budget (a classic agent's is untouched).
      if (lastResort) record.kemLastResort = kemRecord(lastResort);
      else delete record.kemLastResort;
      await this.#dir.update(record);
    }
    return { status: 200, body: await this.#counts(did, record) };
  }

  /**
   * Legacy mode, no Authorization: the bundle must certify the DID itself (DID = hash of `identity_key_ed`, whose
   * key signs the SPK, checked by the caller), so only the key's holder can make a new one.
   */
  async #legacyUploader(did: string, b: Record<string, unknown>): Promise<AgentRecord> {
    const record = await this.#record(did);
    const ed = typeof b.identity_key_ed === 'string' ? decodeB64Lenient(b.identity_key_ed) : null;
    if (ed === null || ed.length !== 32 || meshDidOf(ed) !== did) throw new HttpError(401, 'Authentication required');
    if (record.publicKey.length === 32 && !constantTimeEqual(record.publicKey, ed)) throw new HttpError(401, 'Authentication required');
    this.#log(`registry: ${did} uploaded pre-keys WITHOUT auth (legacy AGT 4.0.0 mode; bundle self-certifies the DID)`);
    return { ...record, publicKey: ed };
  }

  async #addPrekeys(ctx: Ctx, did: string): Promise<{ status: number; body: unknown }> {
    const record = await this.#owner(ctx, did, 401);
    const b = jsonObject(ctx.body);
    if (!this.#uploadLimiter.take(did)) throw new HttpError(429, 'Too many pre-key uploads');
    // Either list may be absent (ours); a body with neither is AGT-era `one_time_pre_keys must be a list`.
    const hasKem = b.kem_pre_keys !== undefined && b.kem_pre_keys !== null;
    const otks = hasKem && b.one_time_pre_keys === undefined ? [] : await this.#parseOneTimeKeys(did, b.one_time_pre_keys);
    const kems = await this.#parseKemKeys(did, b.kem_pre_keys, record.publicKey, record.kemLastResort?.keyId ?? null);
    if ((await this.#prekeys.getBundle(did)) === null) throw new HttpError(404, 'Pre-key bundle not found');
    const count = await this.#prekeys.countOneTimePreKeys(did);
    if (count + otks.length > this.limits.maxOneTimeKeys)
      throw new HttpError(400, `Invalid pre-key bundle: at most ${this.limits.maxOneTimeKeys} one-time pre-keys`);
    const kemCount = await this.#prekeys.countKemPreKeys(did);
    if (kemCount + kems.length > this.limits.maxKemPreKeys)
      throw new HttpError(400, `Invalid pre-key bundle: at most ${this.limits.maxKemPreKeys} one-time KEM pre-keys`);
    if (otks.length > 0) {
      try {
        await this.#prekeys.addOneTimePreKeys(did, otks);
      } catch (e) {
        if (isE2EError(e, 'INVALID_STATE')) throw new HttpError(409, 'One-time pre-key id already used');
        throw e;
      }
    }
    if (kems.length > 0) {
      try {
        await this.#prekeys.addKemPreKeys(did, kems);
      } catch (e) {
        if (isE2EError(e, 'INVALID_STATE')) throw new HttpError(409, 'KEM pre-key id already used');
        throw e;
      }
    }
    return { status: 200, body: await this.#counts(did, record) };
  }

  async #countPrekeys(ctx: Ctx, did: string): Promise<{ status: number; body: unknown }> {
    const record = await this.#owner(ctx, did, 401);
    return { status: 200, body: await this.#counts(did, record) };
  }

  async #claimBundle(ctx: Ctx, did: string): Promise<{ status: number; body: PreKeyBundleResponse }> {
    // G4: AGT serves this to anyone; here only a registered agent, within its rate.
    const requester =
      this.#legacy && ctx.req.headers.authorization === undefined
        ? `ip:${ctx.req.socket.remoteAddress ?? 'unknown'}`
        : (await this.#auth(ctx, 401)).did;
    // An unknown target is answered before the requester's budget is charged (a lookup of a DID that knocked
    // must not spend the requester's claims).
    if ((await this.#prekeys.getBundle(did)) === null) throw new HttpError(404, 'Pre-key bundle not found');
    if (!this.#fetchLimiter.take(requester)) throw new HttpError(429, 'Too many pre-key bundle requests');
    // Per target: beyond its budget of one-time keys, the last-resort bundle (no one-time pre-key, and the
    // last-resort KEM pre-key instead of a one-time one), as Signal does.
    const withOtk = this.#otkLimiter.take(did);
    const got = withOtk ? await this.#prekeys.claimBundle(did) : await this.#prekeys.getBundle(did);
    if (!got) throw new HttpError(404, 'Pre-key bundle not found');
    // The peek may carry a one-time KEM pre-key: it is never handed out unclaimed.
    const kem = withOtk ? kemJson(got) : got.kemPreKey ? await this.#lastResortKem(did, got) : null;
    if (withOtk && got.oneTimePreKey) await this.#dir.markHandedOut(did, hashKey(got.oneTimePreKey));
    // The last-resort KEM pre-key is marked too (harmless: only one-time uploads are checked against the ledger).
    if (withOtk && got.kemPreKey) await this.#dir.markHandedOut(did, hashKey(got.kemPreKey));
    const body: PreKeyBundleResponse = {
      identity_key: toBase64Url(got.identityKey),
      identity_key_ed: toBase64Url(got.identityKeyEd),
      signed_pre_key: {
        key_id: got.signedPreKeyId,
        public_key: toBase64Url(got.signedPreKey),
        signature: toBase64Url(got.signedPreKeySignature),
      },
      one_time_pre_key:
        withOtk && got.oneTimePreKey ? { key_id: got.oneTimePreKeyId as number, public_key: toBase64Url(got.oneTimePreKey) } : null,
    };
    if (kem) body.kem_pre_key = { key_id: kem.key_id, public_key: kem.public_key, signature: kem.signature };
    return { status: 200, body };
  }

  /**
   * The last-resort KEM pre-key of `did` for a claim beyond its one-time budget: the one its record keeps, else
   * the peeked bundle's when its KEM pool is empty (then that is the last-resort one); `null` otherwise (classic).
   */
  async #lastResortKem(did: string, peeked: PreKeyBundle): Promise<KemPreKeyJSON | null> {
    const kept = lastResortJson((await this.#dir.get(did))?.kemLastResort);
    if (kept) return kept;
    return (await this.#prekeys.countKemPreKeys(did)) === 0 ? kemJson(peeked) : null;
  }

  async #presence(did: string): Promise<{ status: number; body: unknown }> {
    const r = await this.#record(did);
    const online = this.#isConnected(did) || Date.now() - r.lastSeen < ONLINE_MS;
    return { status: 200, body: { did, last_seen: pyIso(r.lastSeen), online } };
  }

  async #heartbeat(ctx: Ctx, did: string): Promise<{ status: number; body: unknown }> {
    const r = await this.#owner(ctx, did, 401);
    const now = Date.now();
    if (now - r.lastSeen < HEARTBEAT_MIN_MS) throw new HttpError(429, 'Heartbeat too frequent');
    r.lastSeen = now;
    await this.#dir.update(r);
    return { status: 200, body: { did, last_seen: pyIso(now) } };
  }

  async #reputation(ctx: Ctx, did: string): Promise<{ status: number; body: unknown }> {
    const a = await this.#auth(ctx, 401);
    if (a.did === did) throw new HttpError(403, 'Cannot report on yourself');
    const b = jsonObject(ctx.body);
    if (typeof b.score !== 'number' || !(b.score >= 0 && b.score <= 1)) throw new HttpError(422, 'score must be a number in [0, 1]');
    if (b.reason !== undefined && b.reason !== null && typeof b.reason !== 'string') throw new HttpError(422, 'reason must be a string');
    if (!this.#reportLimiter.take(a.did)) throw new HttpError(429, 'Too many reports');
    const r = await this.#record(did);
    r.reputation = 0.7 * r.reputation + 0.3 * b.score;
    r.totalSessions++;
    if (b.score >= 0.7) r.successfulSessions++;
    else if (b.score < 0.3) r.failedSessions++;
    else r.timeoutSessions++;
    await this.#dir.update(r);
    return { status: 200, body: { did, reputation_score: r.reputation } };
  }

  async #sessionReport(ctx: Ctx): Promise<{ status: number; body: unknown }> {
    const a = await this.#auth(ctx, 401);
    const b = jsonObject(ctx.body);
    const { session_id, initiator_amid, receiver_amid, outcome, reporter_amid } = b;
    if (
      typeof session_id !== 'string' ||
      typeof initiator_amid !== 'string' ||
      typeof receiver_amid !== 'string' ||
      typeof outcome !== 'string' ||
      typeof reporter_amid !== 'string'
    ) {
      throw new HttpError(422, 'session_id, initiator_amid, receiver_amid, outcome and reporter_amid are required');
    }
    if (reporter_amid !== a.did) throw new HttpError(403, 'Reporter does not match the authenticated DID');
    if (reporter_amid !== initiator_amid && reporter_amid !== receiver_amid) throw new HttpError(403, 'Reporter is not a participant');
    // A session with oneself would let an agent raise its own reputation.
    if (initiator_amid === receiver_amid) throw new HttpError(403, 'Initiator and receiver must differ');
    if (outcome !== 'success' && outcome !== 'failed' && outcome !== 'timeout')
      throw new HttpError(400, 'outcome must be success, failed or timeout');
    const ini = await this.#dir.get(initiator_amid);
    const rec = await this.#dir.get(receiver_amid);
    if (!ini || !rec) throw new HttpError(403, 'Both participants must be registered');
    if (!this.#reportLimiter.take(a.did)) throw new HttpError(429, 'Too many reports');
    const now = Date.now();
    const ema = (r: AgentRecord, target: number) => (r.reputation = 0.8 * r.reputation + 0.2 * target);
    if (outcome === 'success') {
      ema(ini, 1);
      if (rec.did !== ini.did) ema(rec, 1);
    } else ema(rec, outcome === 'failed' ? 0 : 0.2);
    for (const r of rec.did === ini.did ? [ini] : [ini, rec]) {
      r.totalSessions++;
      if (outcome === 'success') r.successfulSessions++;
      else if (outcome === 'failed') r.failedSessions++;
      else r.timeoutSessions++;
      r.lastSessionAt = now;
      await this.#dir.update(r);
    }
    return { status: 200, body: { session_id, outcome, reputation: { [ini.did]: ini.reputation, [rec.did]: rec.reputation } } };
  }

  async #discover(ctx: Ctx): Promise<{ status: number; body: unknown }> {
    const url = ctx.url;
    if (!this.#discoverLimiter.take(ctx.req.socket.remoteAddress ?? 'unknown')) throw new HttpError(429, 'Too many discover requests');
    const capability = url.searchParams.get('capability') ?? undefined;
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? 50 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new HttpError(422, 'limit must be an integer in [1, 200]');
    const { results, total } = await this.#dir.find(capability, limit);
    // At most `discoverMaxBytes` of results: records past it are left off (`total` still counts them).
    const out: unknown[] = [];
    let bytes = 0;
    for (const r of results) {
      const item = { did: r.did, capabilities: r.capabilities, reputation_score: r.reputation, last_seen: pyIso(r.lastSeen) };
      bytes += Buffer.byteLength(JSON.stringify(item));
      if (bytes > this.limits.discoverMaxBytes) break;
      out.push(item);
    }
    return { status: 200, body: { results: out, total } };
  }
}

interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly body: Buffer;
  readonly method: string;
}

/** The KEM pre-key of a bundle in the wire form, or `null`. */
function kemJson(b: PreKeyBundle): KemPreKeyJSON | null {
  if (!b.kemPreKey) return null;
  return {
    key_id: b.kemPreKeyId as number,
    public_key: toBase64Url(b.kemPreKey),
    signature: toBase64Url(b.kemPreKeySignature as Uint8Array),
  };
}

/** The wire form of a record's last-resort KEM pre-key, or `null`. */
function lastResortJson(r: KemLastResortRecord | undefined): KemPreKeyJSON | null {
  return r ? { key_id: r.keyId, public_key: r.publicKey, signature: r.signature } : null;
}

/** A last-resort KEM pre-key as an agent record keeps it. */
function kemRecord(k: PublicKemPreKeyEntry): KemLastResortRecord {
  return { keyId: k.keyId, publicKey: toBase64Url(k.publicKey), signature: toBase64Url(k.signature) };
}

/** A proof time up to `PROOF_WINDOW_MS` in the past, at most `MAX_FUTURE_SKEW_MS` in the future. */
function inWindow(t: number, now: number = Date.now()): boolean {
  return now - t <= PROOF_WINDOW_MS && t - now <= MAX_FUTURE_SKEW_MS;
}

function methodNotAllowed(): HttpError {
  return new HttpError(405, 'Method Not Allowed');
}

function jsonObject(body: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(422, 'Body must be JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(422, 'Body must be a JSON object');
  return v as Record<string, unknown>;
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) {
      req.resume();
      reject(new HttpError(413, 'Request body too large'));
      return;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, 'Request body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => reject(new HttpError(400, 'Request aborted')));
  });
}

/** Writes a JSON response. */
export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The record of an agent registering now: AGT's starting reputation (0.5), no sessions yet, tier `anonymous`. */
function newAgentRecord(did: string, publicKey: Uint8Array, capabilities: string[], metadata: Record<string, string>): AgentRecord {
  const now = Date.now();
  return {
    did,
    publicKey,
    capabilities,
    metadata,
    registeredAt: now,
    lastSeen: now,
    reputation: 0.5,
    totalSessions: 0,
    successfulSessions: 0,
    failedSessions: 0,
    timeoutSessions: 0,
    lastSessionAt: null,
    tier: 'anonymous',
  };
}
