/**
 * The mesh wire, shared by the client (`MeshAgent`) and the server (`lib/server`): relay frames and their
 * strict codecs, close codes, the relay connect proof, the registry's `Authorization` formats and its
 * request/response JSON shapes. AGT's relay and registry as they run are described in AGT-WIRE.md; every
 * AGT frame and body is accepted here as AGT sends it, and our extensions are optional fields AGT's clients
 * never send (so an AGT peer never sees them unless it asked).
 *
 * Runs in every runtime (no `node:` import). Functions that sign or verify need `await ready()`.
 */
import { E2EError } from '../errors';
import { ed25519Verify, fromBase64Url, sha256, toBase64, toBase64Url, toHex, utf8 } from '../crypto';
import { MAX_DID_LENGTH, MAX_MESSAGE_ID_LENGTH } from '../limits';

// ---------------------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------------------

/** Relay WebSocket path, relative to the server base URL. */
export const RELAY_PATH = '/ws';
/** Registry path prefix. */
export const REGISTRY_PREFIX = '/v1';

/** How far a connect or registry timestamp may be from the server's clock, either way (AGT: 300 s). */
export const PROOF_WINDOW_MS = 300_000;
/** How long the relay waits for the `connect` frame (AGT: 10 s, then close 1000). */
export const FIRST_FRAME_TIMEOUT_MS = 10_000;
/** A connection that shows no sign of life this long is closed with 4004 (AGT: 90 s). */
export const IDLE_TIMEOUT_MS = 90_000;
/** The heartbeat interval a client should use (AGT spec: 30 s; 3 missed = offline). */
export const HEARTBEAT_INTERVAL_MS = 30_000;

/** WebSocket close codes used by the relay (AGT-WIRE.md §1.7, plus 4008 which is ours). */
export const CloseCode = {
  /** Normal close: `disconnect` frame, or no `connect` frame within 10 s. */
  NORMAL: 1000,
  /** A frame above the size limit (the sender's socket is closed). */
  TOO_BIG: 1009,
  /** Server shutting down. */
  GOING_AWAY: 1001,
  /** The first frame was not `connect`. */
  FIRST_FRAME_NOT_CONNECT: 4001,
  /** The `connect` frame had no `from`. */
  MISSING_FROM: 4002,
  /** Shared-secret token missing or wrong. */
  AUTH_FAILED: 4003,
  /** No sign of life for {@link IDLE_TIMEOUT_MS}. */
  IDLE: 4004,
  /** DID proof-of-possession failed (including, on our server, a replayed proof). */
  PROOF_FAILED: 4005,
  /** Another connection authenticated for the same DID; reason `session_replaced`. */
  SESSION_REPLACED: 4006,
  /** Ours: too many connections (per address or in total). */
  RATE_LIMITED: 4008,
} as const;
/** One of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** The close reason sent with 4006. */
export const SESSION_REPLACED_REASON = 'session_replaced';

/**
 * Optional features a client may ask for in `connect.features` (our extension; AGT clients send none and
 * get AGT's behaviour exactly: no welcome frame, no receipts, `{type, detail}` errors).
 */
export const Feature = {
  /** A `connected` frame after a successful connect, and `code`/`id` on error frames. */
  WELCOME: 'welcome',
  /** An `accepted` frame to the sender once a message is persisted (or found to be a duplicate). */
  RECEIPTS: 'receipts',
  /** A `heartbeat_ack` reply to each `heartbeat`. */
  HEARTBEAT_ACK: 'heartbeat_ack',
} as const;
/** One of {@link Feature}. */
export type Feature = (typeof Feature)[keyof typeof Feature];
const FEATURES: ReadonlySet<string> = new Set(Object.values(Feature));

/** Stable `code` values of error frames (sent only to clients that asked for {@link Feature.WELCOME}). */
export const RelayErrorCode = {
  FIRST_FRAME: 'first_frame',
  MISSING_FROM: 'missing_from',
  PROOF_FAILED: 'proof_failed',
  PROOF_REPLAYED: 'proof_replayed',
  AUTH_FAILED: 'auth_failed',
  MALFORMED: 'malformed_frame',
  BINARY: 'binary_frame',
  UNKNOWN_TYPE: 'unknown_type',
  FROM_MISMATCH: 'from_mismatch',
  TOO_BIG: 'frame_too_big',
  RATE_LIMITED: 'rate_limited',
  INBOX_FULL: 'inbox_full',
  SENDER_QUOTA: 'sender_quota',
  ID_CONFLICT: 'id_conflict',
  TOO_MANY_CONNECTIONS: 'too_many_connections',
  STORE_FAILED: 'store_failed',
} as const;
/** One of {@link RelayErrorCode}. */
export type RelayErrorCode = (typeof RelayErrorCode)[keyof typeof RelayErrorCode];

// ---------------------------------------------------------------------------------------------------------
// Frame types
// ---------------------------------------------------------------------------------------------------------

/** Frame types the relay routes to `to` (forwarded verbatim, `from` stamped). */
export const ROUTED_TYPES = ['message', 'knock', 'knock_accept', 'knock_reject'] as const;
/** One of {@link ROUTED_TYPES}. */
export type RoutedType = (typeof ROUTED_TYPES)[number];
const ROUTED: ReadonlySet<string> = new Set(ROUTED_TYPES);

/** First client frame: the DID proof-of-possession (AGT §1.2), with our optional stronger proof. */
export interface ConnectFrame {
  v?: number;
  type: 'connect';
  /** `did:mesh:` + 32 hex of SHA-256(public_key). */
  from: string;
  /** Ed25519 public key, standard padded base64. */
  public_key: string;
  /** ISO-8601 with an offset (`toISOString()`), within ±300 s of the relay's clock. */
  timestamp: string;
  /** Standard base64 Ed25519 signature over {@link connectProofMessage}. */
  signature: string;
  /** Shared secret (AGT's `AGENTMESH_RELAY_TOKEN`); AGT's TS client cannot send it. */
  token?: string;
  /**
   * Ours: 16–64 random bytes, base64. When present the signature covers {@link connectProofMessage}'s
   * domain-separated form, which no AGT registry accepts as a credential (closes G3 for our clients).
   */
  nonce?: string;
  /** Ours: {@link Feature}s asked for. */
  features?: string[];
}

/** A frame the relay routes: `message`, `knock`, `knock_accept`, `knock_reject`. Other fields pass verbatim. */
export interface RoutedFrame {
  type: RoutedType;
  /** Recipient DID. */
  to: string;
  /** Message id, unique per (recipient, id); the recipient acks it. */
  id: string;
  /** Sender DID; the relay sets it to the authenticated DID (it refuses a different one). */
  from?: string;
  [field: string]: unknown;
}

/** Recipient → relay: the message `id` was durably processed; the relay deletes it. */
export interface AckFrame {
  v?: number;
  type: 'ack';
  id: string;
}

/** Client → relay liveness (AGT reads only `type`). */
export interface HeartbeatFrame {
  v?: number;
  type: 'heartbeat';
  from?: string;
  ts?: string;
}

/** Client → relay: close this connection (1000). */
export interface DisconnectFrame {
  v?: number;
  type: 'disconnect';
  from?: string;
}

/** Any frame a client sends after `connect`. `fetch_pending` is AGT's no-op (answered with an error). */
export type ClientFrame = RoutedFrame | AckFrame | HeartbeatFrame | DisconnectFrame | { type: 'fetch_pending'; [f: string]: unknown };

/** Relay → client error. AGT's shape is exactly `{type, detail}`; `code`/`id` only for {@link Feature.WELCOME}. */
export interface ErrorFrame {
  type: 'error';
  detail: string;
  code?: RelayErrorCode;
  /** The message id the error is about, when it is about one. */
  id?: string;
}

/** Ours, relay → client after connect when asked ({@link Feature.WELCOME}). */
export interface ConnectedFrame {
  type: 'connected';
  did: string;
  /** The features granted. */
  features: Feature[];
  /** How many stored messages follow immediately. */
  pending: number;
  /** Server limits the client should respect. */
  limits: { max_frame_bytes: number; idle_timeout_ms: number };
}

/** Ours, relay → sender ({@link Feature.RECEIPTS}): message `id` to `to` is persisted until acked. */
export interface AcceptedFrame {
  type: 'accepted';
  id: string;
  to: string;
  /** True when the same (recipient, id) was already held: not stored or delivered again. */
  duplicate: boolean;
}

/** Ours, relay → client ({@link Feature.HEARTBEAT_ACK}). */
export interface HeartbeatAckFrame {
  type: 'heartbeat_ack';
  /** Server time, ISO-8601. */
  ts: string;
}

/** Any frame the relay sends. Routed frames arrive with `from` set by the relay. */
export type ServerFrame = ErrorFrame | ConnectedFrame | AcceptedFrame | HeartbeatAckFrame | (RoutedFrame & { from: string });

// ---------------------------------------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------------------------------------

function malformed(detail: string, reason: string = RelayErrorCode.MALFORMED): E2EError {
  return new E2EError('MALFORMED_MESSAGE', detail, reason);
}

/** True for a DID-like string as frames carry it: `did:`, printable ASCII without space or `|`, ≤ 256. */
export function isFrameDid(v: unknown): v is string {
  return typeof v === 'string' && v.length > 4 && v.length <= MAX_DID_LENGTH && /^did:[\x21-\x7b\x7d\x7e]+$/.test(v);
}

/** True for a message id: 1–128 printable ASCII characters without space. */
export function isMessageId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_MESSAGE_ID_LENGTH && /^[\x21-\x7e]+$/.test(v);
}

function parseObject(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw malformed('Malformed frame: not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('Malformed frame: not a JSON object');
  return v as Record<string, unknown>;
}

/**
 * Parses the first client frame. Errors (`MALFORMED_MESSAGE`, `reason` = the close code as a string) follow
 * AGT's order: not `connect` → `'4001'`, no `from` → `'4002'`, other defects → `'4005'` with AGT's detail.
 * @throws E2EError
 */
export function decodeConnectFrame(text: string): ConnectFrame {
  let o: Record<string, unknown>;
  try {
    o = parseObject(text);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', "First frame must be 'connect'", String(CloseCode.FIRST_FRAME_NOT_CONNECT));
  }
  if (o.type !== 'connect')
    throw new E2EError('MALFORMED_MESSAGE', "First frame must be 'connect'", String(CloseCode.FIRST_FRAME_NOT_CONNECT));
  if (o.from === undefined || o.from === null || o.from === '')
    throw new E2EError('MALFORMED_MESSAGE', "Missing 'from' field", String(CloseCode.MISSING_FROM));
  const proof = (d: string) => new E2EError('MALFORMED_MESSAGE', `DID proof failed: ${d}`, String(CloseCode.PROOF_FAILED));
  for (const k of ['from', 'public_key', 'timestamp', 'signature'] as const) {
    if (typeof o[k] !== 'string' || (o[k] as string).length === 0) throw proof('connect frame missing did/public_key/timestamp/signature');
  }
  if (!isFrameDid(o.from)) throw proof('DID does not match public_key (sha256 mismatch)');
  if ((o.timestamp as string).length > 64) throw proof('invalid timestamp format');
  if ((o.public_key as string).length > 128 || (o.signature as string).length > 256) throw proof('invalid signature');
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token.length > 16384))
    throw new E2EError('MALFORMED_MESSAGE', 'Authentication failed', String(CloseCode.AUTH_FAILED));
  if (o.nonce !== undefined && (typeof o.nonce !== 'string' || !/^[A-Za-z0-9+/_-]{22,88}={0,2}$/.test(o.nonce)))
    throw proof('invalid nonce');
  let features: string[] | undefined;
  if (o.features !== undefined) {
    if (!Array.isArray(o.features) || o.features.length > 16 || !o.features.every((f) => typeof f === 'string' && f.length <= 32)) {
      throw proof('invalid features');
    }
    features = (o.features as string[]).filter((f) => FEATURES.has(f));
  }
  const frame: ConnectFrame = {
    type: 'connect',
    from: o.from as string,
    public_key: o.public_key as string,
    timestamp: o.timestamp as string,
    signature: o.signature as string,
  };
  if (typeof o.v === 'number') frame.v = o.v;
  if (o.token !== undefined) frame.token = o.token as string;
  if (o.nonce !== undefined) frame.nonce = o.nonce as string;
  if (features !== undefined) frame.features = features;
  return frame;
}

/**
 * Parses a client frame after `connect`, strictly: JSON object, known `type`, routed frames with a DID `to`
 * and a message `id`, `ack` with a message `id`. Routed frames keep every field (the relay forwards them
 * verbatim). `MALFORMED_MESSAGE` with `reason` a {@link RelayErrorCode} and an AGT-style `detail` message.
 * @throws E2EError
 */
export function decodeClientFrame(text: string): ClientFrame {
  const o = parseObject(text);
  const type = o.type;
  if (typeof type !== 'string') throw malformed('Malformed frame: missing type');
  if (ROUTED.has(type)) {
    if (!isFrameDid(o.to)) throw malformed("Malformed frame: 'to' must be a DID string");
    if (!isMessageId(o.id)) throw malformed("Malformed frame: 'id' must be 1 to 128 printable characters");
    if (o.from !== undefined && o.from !== null && typeof o.from !== 'string') throw malformed("Malformed frame: 'from' must be a string");
    return o as RoutedFrame;
  }
  switch (type) {
    case 'ack':
      if (!isMessageId(o.id)) throw malformed("Malformed frame: ack 'id' must be 1 to 128 printable characters");
      return { type: 'ack', id: o.id };
    case 'heartbeat':
      return { type: 'heartbeat' };
    case 'disconnect':
      return { type: 'disconnect' };
    case 'fetch_pending':
      return { type: 'fetch_pending' };
    default:
      throw malformed(`Unknown frame type: ${type.slice(0, 64)}`, RelayErrorCode.UNKNOWN_TYPE);
  }
}

/**
 * Parses a frame from the relay (for clients). Accepts AGT's relay too: routed frames (with `from`), errors,
 * and our `connected`/`accepted`/`heartbeat_ack`. Unknown types give `MALFORMED_MESSAGE`, reason `unknown_type`
 * (a client should ignore them, for forward compatibility).
 * @throws E2EError
 */
export function decodeServerFrame(text: string): ServerFrame {
  const o = parseObject(text);
  const type = o.type;
  if (typeof type !== 'string') throw malformed('Malformed frame: missing type');
  if (ROUTED.has(type)) {
    if (!isFrameDid(o.from)) throw malformed("Malformed frame: 'from' must be a DID string");
    if (!isMessageId(o.id)) throw malformed("Malformed frame: 'id' must be 1 to 128 printable characters");
    if (typeof o.to !== 'string') throw malformed("Malformed frame: 'to' must be a string");
    return o as RoutedFrame & { from: string };
  }
  switch (type) {
    case 'error':
      if (typeof o.detail !== 'string') throw malformed('Malformed frame: error without detail');
      return o as unknown as ErrorFrame;
    case 'connected':
      if (typeof o.did !== 'string' || !Array.isArray(o.features)) throw malformed('Malformed frame: connected');
      return o as unknown as ConnectedFrame;
    case 'accepted':
      if (!isMessageId(o.id) || typeof o.to !== 'string' || typeof o.duplicate !== 'boolean') throw malformed('Malformed frame: accepted');
      return o as unknown as AcceptedFrame;
    case 'heartbeat_ack':
      return { type: 'heartbeat_ack', ts: typeof o.ts === 'string' ? o.ts : '' };
    default:
      throw malformed(`Unknown frame type: ${type.slice(0, 64)}`, RelayErrorCode.UNKNOWN_TYPE);
  }
}

/** The JSON text of a frame (one place, so field order and escaping are the same everywhere). */
export function encodeFrame(frame: object): string {
  return JSON.stringify(frame);
}

/** An error frame: AGT's `{type, detail}`, plus `code`/`id` when `extended` (the client asked for WELCOME). */
export function errorFrame(detail: string, extended: boolean, code?: RelayErrorCode, id?: string): ErrorFrame {
  const f: ErrorFrame = { type: 'error', detail };
  if (extended) {
    if (code !== undefined) f.code = code;
    if (id !== undefined) f.id = id;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------------------
// Proofs
// ---------------------------------------------------------------------------------------------------------

/** Domain tag of our connect proof (with a nonce). */
export const CONNECT_PROOF_DOMAIN = 'agentmesh-relay-connect-v1';
/** Domain tag of our registry request proof. */
export const REGISTRY_PROOF_DOMAIN = 'agentmesh-registry-request-v1';
/** `Authorization` scheme of AGT's timestamp-only header (accepted, weaker: see {@link parseRegistryAuth}). */
export const AGT_AUTH_SCHEME = 'Ed25519-Timestamp';
/** `Authorization` scheme of our request-bound header. */
export const MESH_AUTH_SCHEME = 'AgentMesh-Ed25519-v1';

/**
 * The bytes a `connect` signature covers. Without `nonce`: the UTF-8 of `timestamp` (AGT's proof, which is
 * also a valid AGT registry header for 5 minutes — G3). With `nonce`: UTF-8 of
 * `agentmesh-relay-connect-v1\n<did>\n<timestamp>\n<nonce>`, which is never a bare timestamp.
 */
export function connectProofMessage(did: string, timestamp: string, nonce?: string): Uint8Array {
  return nonce === undefined ? utf8(timestamp) : utf8(`${CONNECT_PROOF_DOMAIN}\n${did}\n${timestamp}\n${nonce}`);
}

/**
 * The bytes our registry header signs: UTF-8 of
 * `agentmesh-registry-request-v1\n<did>\n<METHOD>\n<path?query>\n<timestamp>\n<nonce>\n<base64url(sha256(body))>`.
 * Bound to the request, so it can neither be replayed on another request nor taken from a relay connect.
 */
export function registryProofMessage(p: {
  did: string;
  method: string;
  path: string;
  timestamp: string;
  nonce: string;
  body: Uint8Array;
}): Uint8Array {
  return utf8([REGISTRY_PROOF_DOMAIN, p.did, p.method.toUpperCase(), p.path, p.timestamp, p.nonce, toBase64Url(sha256(p.body))].join('\n'));
}

/** Signs with an agent's Ed25519 key (an `AgentIdentity`, or anything with `sign`). */
export interface FrameSigner {
  readonly did: string;
  /** Ed25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/**
 * A connect frame for `signer`. With `nonce` (default: `true`, 16 random bytes from `randomNonce`) it uses our
 * domain-separated proof; pass `nonce: false` for AGT's timestamp-only proof (needed by AGT's own relay).
 */
export function buildConnectFrame(
  signer: FrameSigner,
  options: {
    now?: Date;
    nonce?: string | false;
    features?: Feature[];
    token?: string;
  } = {},
): ConnectFrame {
  const timestamp = (options.now ?? new Date()).toISOString();
  const nonce = options.nonce === false ? undefined : (options.nonce ?? toBase64(randomNonceBytes()));
  const frame: ConnectFrame = {
    v: 1,
    type: 'connect',
    from: signer.did,
    public_key: toBase64(signer.publicKey),
    timestamp,
    signature: toBase64(signer.sign(connectProofMessage(signer.did, timestamp, nonce))),
  };
  if (nonce !== undefined) frame.nonce = nonce;
  if (options.features && options.features.length > 0) frame.features = [...options.features];
  if (options.token !== undefined) frame.token = options.token;
  return frame;
}

function randomNonceBytes(): Uint8Array {
  const out = new Uint8Array(16);
  globalThis.crypto.getRandomValues(out);
  return out;
}

/** `did:mesh:` + first 32 hex characters of SHA-256(publicKey): the DID AGT's relay and registry enforce. */
export function meshDidOf(publicKey: Uint8Array): string {
  return 'did:mesh:' + toHex(sha256(publicKey)).slice(0, 32);
}

/**
 * Parses an ISO-8601 timestamp with an explicit offset (`Z` or `±hh:mm`), as AGT requires. `null` when
 * malformed, `'naive'` when it has no offset.
 */
export function parseProofTimestamp(ts: string): number | null | 'naive' {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/.exec(ts);
  if (!m) return null;
  if (m[8] === undefined) return 'naive';
  const t = Date.parse(ts.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(t) ? t : null;
}

/** Decodes base64 leniently as AGT does (standard or url alphabet, padding optional); `null` if invalid. */
export function decodeB64Lenient(s: string): Uint8Array | null {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) return null;
  try {
    return fromBase64Url(s.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'));
  } catch {
    return null;
  }
}

/** The result of checking a connect frame's proof (without the single-use check, which is the server's). */
export type ConnectProofResult = { ok: true; publicKey: Uint8Array; timestampMs: number; strong: boolean } | { ok: false; detail: string };

/**
 * Checks a connect frame's DID proof-of-possession as AGT's relay does (same failure details), accepting our
 * nonce form as well. `strong` tells whether the proof was the domain-separated one.
 */
export function verifyConnectProof(frame: ConnectFrame, nowMs: number = Date.now()): ConnectProofResult {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(frame.public_key) || frame.public_key.length % 4 !== 0)
    return { ok: false, detail: 'invalid public_key encoding' };
  const pk = decodeB64Lenient(frame.public_key);
  if (pk === null) return { ok: false, detail: 'invalid public_key encoding' };
  if (pk.length !== 32) return { ok: false, detail: 'public_key must be 32 bytes' };
  if (frame.from !== meshDidOf(pk)) return { ok: false, detail: 'DID does not match public_key (sha256 mismatch)' };
  const t = parseProofTimestamp(frame.timestamp);
  if (t === null) return { ok: false, detail: 'invalid timestamp format' };
  if (t === 'naive') return { ok: false, detail: 'timestamp must include timezone offset' };
  if (Math.abs(nowMs - t) > PROOF_WINDOW_MS) return { ok: false, detail: 'timestamp outside replay window' };
  const sig = decodeB64Lenient(frame.signature);
  if (sig === null || sig.length !== 64) return { ok: false, detail: 'invalid signature' };
  if (!ed25519Verify(sig, connectProofMessage(frame.from, frame.timestamp, frame.nonce), pk)) {
    return { ok: false, detail: 'signature verification failed' };
  }
  return { ok: true, publicKey: pk, timestampMs: t, strong: frame.nonce !== undefined };
}

/** A parsed registry `Authorization` header. */
export type RegistryAuth =
  | { scheme: 'agt'; did: string; timestamp: string; signature: string }
  | { scheme: 'mesh'; did: string; timestamp: string; nonce: string; signature: string };

/**
 * Parses `Authorization: Ed25519-Timestamp <did> <ts> <sig>` (AGT's; signs only the timestamp, so it is
 * weaker: our server makes it single-use and refuses one already seen as a relay connect proof) or
 * `Authorization: AgentMesh-Ed25519-v1 <did> <ts> <nonce> <sig>` (ours; see {@link registryProofMessage}).
 * `null` when neither.
 */
export function parseRegistryAuth(header: string | undefined | null): RegistryAuth | null {
  if (typeof header !== 'string' || header.length > 1024) return null;
  const parts = header.split(' ');
  if (parts[0] === AGT_AUTH_SCHEME && parts.length === 4) {
    return { scheme: 'agt', did: parts[1] as string, timestamp: parts[2] as string, signature: parts[3] as string };
  }
  if (parts[0] === MESH_AUTH_SCHEME && parts.length === 5) {
    return {
      scheme: 'mesh',
      did: parts[1] as string,
      timestamp: parts[2] as string,
      nonce: parts[3] as string,
      signature: parts[4] as string,
    };
  }
  return null;
}

/**
 * Our request-bound registry header for `signer`: `AgentMesh-Ed25519-v1 <did> <ts> <nonce> <sig>` (sig base64url).
 * `path` includes the query string, exactly as sent; `body` the exact request bytes (empty for none).
 */
export function buildRegistryAuth(
  signer: FrameSigner,
  req: { method: string; path: string; body?: Uint8Array | string; now?: Date },
): string {
  const timestamp = (req.now ?? new Date()).toISOString();
  const nonce = toBase64Url(randomNonceBytes());
  const body = typeof req.body === 'string' ? utf8(req.body) : (req.body ?? new Uint8Array(0));
  const sig = signer.sign(registryProofMessage({ did: signer.did, method: req.method, path: req.path, timestamp, nonce, body }));
  return `${MESH_AUTH_SCHEME} ${signer.did} ${timestamp} ${nonce} ${toBase64Url(sig)}`;
}

/** AGT's timestamp-only header for `signer` (for AGT's registry, which accepts nothing else). */
export function buildAgtRegistryAuth(signer: FrameSigner, now: Date = new Date()): string {
  const timestamp = now.toISOString();
  return `${AGT_AUTH_SCHEME} ${signer.did} ${timestamp} ${toBase64Url(signer.sign(utf8(timestamp)))}`;
}

/** The body of `POST /v1/agents` (AGT §2.3): the proof signs UTF-8(public_key ‖ proof_timestamp), base64url. */
export function buildRegistration(
  signer: FrameSigner,
  options: {
    capabilities?: string[];
    metadata?: Record<string, string>;
    now?: Date;
  } = {},
): RegisterRequest {
  const public_key = toBase64Url(signer.publicKey);
  const proof_timestamp = (options.now ?? new Date()).toISOString();
  const req: RegisterRequest = { public_key, proof: toBase64Url(signer.sign(utf8(public_key + proof_timestamp))), proof_timestamp };
  if (options.capabilities) req.capabilities = options.capabilities;
  if (options.metadata) req.metadata = options.metadata;
  return req;
}

// ---------------------------------------------------------------------------------------------------------
// Registry JSON shapes (AGT §2; our additions are marked)
// ---------------------------------------------------------------------------------------------------------

/** `POST /v1/agents` body. */
export interface RegisterRequest {
  public_key: string;
  proof: string;
  proof_timestamp: string;
  capabilities?: string[];
  metadata?: Record<string, string>;
}
/** `POST /v1/agents` → 201. */
export interface RegisterResponse {
  did: string;
  status: 'registered';
}
/** `GET /v1/agents/{did}` → 200. */
export interface AgentRecordResponse {
  did: string;
  capabilities: string[];
  metadata: Record<string, string>;
  registered_at: string;
  last_seen: string;
  reputation_score: number;
  total_sessions: number;
  successful_sessions: number;
  failed_sessions: number;
  timeout_sessions: number;
  last_session_at: string | null;
  completion_rate: number | null;
  tier: string;
  verified_app_id: string | null;
  verified_tenant_id: string | null;
  verified_at: string | null;
  /** Ours: the registered Ed25519 key (base64url, unpadded), so a peer can bind the DID without claiming an OTK. */
  public_key: string;
}
/** A one-time pre-key as uploaded and returned (base64url X25519 key). */
export interface OneTimePreKeyJSON {
  key_id: number;
  public_key: string;
}
/**
 * Ours: an ML-KEM-768 KEM pre-key as uploaded and returned (PQXDH): the 1184-byte encapsulation key and the
 * identity key's Ed25519 signature of `kemPreKeySignedBytes(key)`, both base64url (unpadded).
 */
export interface KemPreKeyJSON {
  key_id: number;
  public_key: string;
  signature: string;
}
/**
 * `PUT /v1/agents/{did}/prekeys` body. Replaces the identity, SPK and the whole OPK pool (as AGT), and with
 * them our KEM fields: `kem_pre_key` becomes the last-resort KEM pre-key (none when absent: a classic bundle)
 * and `kem_pre_keys` the whole one-time KEM pool (AGT's registry ignores both).
 */
export interface PreKeyUploadRequest {
  identity_key: string;
  identity_key_ed?: string;
  signed_pre_key: { key_id: number; public_key: string; signature: string };
  one_time_pre_keys: OneTimePreKeyJSON[];
  /** Ours: the last-resort KEM pre-key. */
  kem_pre_key?: KemPreKeyJSON;
  /** Ours: one-time KEM pre-keys. */
  kem_pre_keys?: KemPreKeyJSON[];
}
/**
 * `PUT …/prekeys`, and our `POST …/prekeys/one-time` and `GET …/prekeys/count` → 200. `kem_count` (ours) is
 * present only for a DID that published KEM pre-keys, so a classic agent's answer is AGT's, byte for byte.
 */
export interface PreKeyCountResponse {
  did: string;
  otk_count: number;
  /** Ours: unclaimed one-time KEM pre-keys. */
  kem_count?: number;
}
/** Ours: `POST /v1/agents/{did}/prekeys/one-time` body (appends to the pools; owner auth; at least one list). */
export interface OneTimePreKeyAddRequest {
  one_time_pre_keys?: OneTimePreKeyJSON[];
  /** One-time KEM pre-keys to add to the KEM pool. */
  kem_pre_keys?: KemPreKeyJSON[];
}
/**
 * `GET /v1/agents/{did}/prekeys` → 200 (claims one OPK, and one one-time KEM pre-key). Keys base64url
 * unpadded. `kem_pre_key` (ours) is present only when the DID published one: a classic bundle is AGT's.
 */
export interface PreKeyBundleResponse {
  identity_key: string;
  identity_key_ed: string;
  signed_pre_key: { key_id: number; public_key: string; signature: string };
  one_time_pre_key: OneTimePreKeyJSON | null;
  /** Ours: a one-time KEM pre-key, else the last-resort one. */
  kem_pre_key?: KemPreKeyJSON;
}
/** `GET /v1/agents/{did}/presence` → 200. */
export interface PresenceResponse {
  did: string;
  last_seen: string;
  online: boolean;
}
/** `POST /v1/agents/{did}/heartbeat` → 200. */
export interface HeartbeatResponse {
  did: string;
  last_seen: string;
}
/** `GET /v1/discover` → 200. */
export interface DiscoverResponse {
  results: { did: string; capabilities: string[]; reputation_score: number; last_seen: string }[];
  total: number;
}
/** Every registry error body (FastAPI's shape). */
export interface RegistryErrorResponse {
  detail: string;
}
