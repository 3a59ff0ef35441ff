/**
 * The trust handshake's two messages, as plain JSON-safe objects with AGT's field names, their
 * strict parsers and the signed bytes:
 * UTF-8 `challenge_id:nonce:response_nonce:agent_did` (+ `:freshness_nonce` when the challenge has one).
 */
import { E2EError } from '../errors';
import { fromBase64, readFields, utf8 } from '../crypto';
import { isCapabilityList } from './capabilities';
import { isMeshDid } from './did';
import { MAX_CHALLENGE_TTL_SECONDS, MAX_HANDSHAKE_MESSAGE_CHARS } from '../limits';

/** A challenge: "prove you hold the key of your DID by signing this nonce". */
export interface HandshakeChallenge {
  /** `"challenge_"` + 16 lowercase hex characters. */
  challenge_id: string;
  /** 64 lowercase hex characters (32 random bytes). */
  nonce: string;
  /** Optional RFC 9334 freshness nonce, 32 lowercase hex characters; echoed and signed by the responder. */
  freshness_nonce?: string;
  /** ISO 8601 time of issue. */
  timestamp: string;
  /** Lifetime in seconds (default 30). */
  expires_in_seconds: number;
}

/** A response: the challenged agent's signature over the challenge and its own nonce. */
export interface HandshakeResponse {
  /** The answered challenge's `challenge_id`. */
  challenge_id: string;
  /** 32 lowercase hex characters (16 random bytes). */
  response_nonce: string;
  /** The DID of the answering agent. */
  agent_did: string;
  /** Capabilities the agent claims (informational: the registry's list is what counts). */
  capabilities: string[];
  /** Standard base64 Ed25519 signature of {@link handshakeSignedPayload}. */
  signature: string;
  /** Standard base64 Ed25519 public key of the agent. */
  public_key: string;
  /** The challenge's freshness nonce, echoed, when it had one. */
  freshness_nonce?: string;
  /** ISO 8601 time of the answer. */
  timestamp: string;
}

const CHALLENGE_ID = /^challenge_[0-9a-f]{16}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

function malformed(what: string): E2EError {
  return new E2EError('MALFORMED_MESSAGE', `handshake ${what}`);
}

/** The fields `keys` of a message (an object or its JSON text), each read once into a plain object. */
function asObject<K extends string>(input: unknown, kind: string, keys: readonly K[]): Record<K, unknown> {
  let v = input;
  if (typeof input === 'string') {
    if (input.length > MAX_HANDSHAKE_MESSAGE_CHARS) throw malformed(`${kind} is too long`);
    try {
      v = JSON.parse(input);
    } catch {
      throw malformed(`${kind} is not valid JSON`);
    }
  }
  let isArray = false;
  try {
    isArray = Array.isArray(v); // a revoked Proxy throws here
  } catch {
    throw malformed(`${kind} could not be read`);
  }
  if (typeof v !== 'object' || v === null || isArray) throw malformed(`${kind} must be an object`);
  return readFields(v, keys, kind, 'MALFORMED_MESSAGE');
}

const CHALLENGE_FIELDS = ['challenge_id', 'nonce', 'freshness_nonce', 'timestamp', 'expires_in_seconds'] as const;
const RESPONSE_FIELDS = [
  'challenge_id',
  'response_nonce',
  'agent_did',
  'capabilities',
  'signature',
  'public_key',
  'freshness_nonce',
  'timestamp',
] as const;

function timestamp(v: unknown, kind: string): string {
  if (typeof v !== 'string' || v.length > 64 || Number.isNaN(Date.parse(v))) throw malformed(`${kind}.timestamp must be an ISO 8601 time`);
  return v;
}

/** Absent, `null` (Python's `None`) → undefined; else 32 hex characters. */
function freshness(v: unknown, kind: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !HEX32.test(v)) throw malformed(`${kind}.freshness_nonce must be 32 hex characters`);
  return v;
}

function decodes(b64: unknown, len: number): boolean {
  if (typeof b64 !== 'string' || b64.length > 128) return false;
  try {
    return fromBase64(b64).length === len;
  } catch {
    return false;
  }
}

/**
 * A challenge from an object or its JSON text, with only the known fields (others, such as AGT's
 * extras, are dropped). `MALFORMED_MESSAGE` on any defect.
 */
export function parseHandshakeChallenge(input: unknown): HandshakeChallenge {
  const o = asObject(input, 'challenge', CHALLENGE_FIELDS);
  if (typeof o.challenge_id !== 'string' || !CHALLENGE_ID.test(o.challenge_id))
    throw malformed('challenge.challenge_id must be "challenge_" + 16 hex');
  if (typeof o.nonce !== 'string' || !HEX64.test(o.nonce)) throw malformed('challenge.nonce must be 64 hex characters');
  const ttl = o.expires_in_seconds;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_CHALLENGE_TTL_SECONDS) {
    throw malformed(`challenge.expires_in_seconds must be an integer in [1, ${MAX_CHALLENGE_TTL_SECONDS}]`);
  }
  const c: HandshakeChallenge = {
    challenge_id: o.challenge_id,
    nonce: o.nonce,
    timestamp: timestamp(o.timestamp, 'challenge'),
    expires_in_seconds: ttl,
  };
  const f = freshness(o.freshness_nonce, 'challenge');
  if (f !== undefined) c.freshness_nonce = f;
  return c;
}

/**
 * A response from an object or its JSON text, with only the known fields (a self-reported
 * `trust_score` is dropped: scores come from the registry). `MALFORMED_MESSAGE` on any defect.
 */
export function parseHandshakeResponse(input: unknown): HandshakeResponse {
  const o = asObject(input, 'response', RESPONSE_FIELDS);
  if (typeof o.challenge_id !== 'string' || !CHALLENGE_ID.test(o.challenge_id))
    throw malformed('response.challenge_id must be "challenge_" + 16 hex');
  if (typeof o.response_nonce !== 'string' || !HEX32.test(o.response_nonce))
    throw malformed('response.response_nonce must be 32 hex characters');
  if (!isMeshDid(o.agent_did)) throw malformed('response.agent_did must be a did:mesh DID');
  const caps = o.capabilities ?? [];
  if (!isCapabilityList(caps)) throw malformed('response.capabilities must be a list of capability names');
  if (!decodes(o.signature, 64)) throw malformed('response.signature must be a base64 Ed25519 signature');
  if (!decodes(o.public_key, 32)) throw malformed('response.public_key must be a base64 Ed25519 public key');
  const r: HandshakeResponse = {
    challenge_id: o.challenge_id,
    response_nonce: o.response_nonce,
    agent_did: o.agent_did,
    capabilities: [...caps],
    signature: o.signature as string,
    public_key: o.public_key as string,
    timestamp: timestamp(o.timestamp, 'response'),
  };
  const f = freshness(o.freshness_nonce, 'response');
  if (f !== undefined) r.freshness_nonce = f;
  return r;
}

/** The bytes a responder signs (AGT's exact payload). */
export function handshakeSignedPayload(challenge: HandshakeChallenge, responseNonce: string, agentDid: string): Uint8Array {
  const c = parseHandshakeChallenge(challenge); // one read of each field, and only well-formed ones are signed
  if (typeof responseNonce !== 'string' || !HEX32.test(responseNonce)) throw malformed('response_nonce must be 32 hex characters');
  if (!isMeshDid(agentDid)) throw malformed('agent_did must be a did:mesh DID');
  let payload = `${c.challenge_id}:${c.nonce}:${responseNonce}:${agentDid}`;
  if (c.freshness_nonce) payload += `:${c.freshness_nonce}`;
  return utf8(payload);
}
