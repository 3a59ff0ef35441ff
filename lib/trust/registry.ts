/**
 * The identity registry: DID → Ed25519 public key, trust score (0–1000), status and capabilities.
 * It is the only source of trust: a peer's self-reported score or capabilities count for nothing.
 */
import { E2EError } from '../errors';
import { assertKey, constantTimeEqual, ed25519PublicKeyToX25519, readFields } from '../crypto';
import { assertMeshDid } from './did';
import { normalizeCapabilities } from './capabilities';
import { DEFAULT_TRUST_SCORE } from '../limits';
import { assertTrustScore } from './trust-level';
import type { MaybePromise } from '../store/types';

/** Registry status of an identity. Only `active` identities pass the trust checks. */
export type IdentityStatus = 'active' | 'suspended' | 'revoked';

const STATUSES: readonly IdentityStatus[] = ['active', 'suspended', 'revoked'];

/** True for one of the three statuses. */
export function isIdentityStatus(s: unknown): s is IdentityStatus {
  return typeof s === 'string' && (STATUSES as readonly string[]).includes(s);
}

/** What a registry knows about one DID. */
export interface IdentityRecord {
  /** The DID the record is for. */
  readonly did: string;
  /** The Ed25519 public key bound to the DID (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Integer in [0, 1000]. */
  readonly trustScore: number;
  /** Only `active` passes the trust checks. */
  readonly status: IdentityStatus;
  /** The capabilities the registry grants the DID. */
  readonly capabilities: readonly string[];
}

/** Read access to a registry: all the trust layer needs. */
export interface IdentityRegistry {
  /** The record of `did`, or `null` when the registry does not know it. */
  get(did: string): MaybePromise<IdentityRecord | null>; // a registry may live in another process
}

/** What {@link InMemoryIdentityRegistry.register} takes. */
export interface IdentityRegistration {
  /** The DID to bind: a `did:mesh:<id>`. */
  readonly did: string;
  /** Its Ed25519 public key (32 bytes); a DID already bound to another key is refused. */
  readonly publicKey: Uint8Array;
  /** Defaults to 500 (AGT's default: "standard", below the default threshold of 700). */
  readonly trustScore?: number;
  /** Defaults to `active`. */
  readonly status?: IdentityStatus;
  /** Defaults to none. */
  readonly capabilities?: readonly string[];
}

/** The reference registry, in memory. */
export class InMemoryIdentityRegistry implements IdentityRegistry {
  readonly #records = new Map<string, IdentityRecord>();
  // DIDs removed while revoked: revocation is final, so removing the record must not make the DID registrable.
  readonly #removedRevoked = new Set<string>();

  /**
   * Binds `did` to `publicKey` with a score, status and capabilities. Registering a DID again with
   * the same key updates the rest; with another key it is refused (`IDENTITY_MISMATCH`: remove the
   * DID first to re-key it). A revoked DID cannot be registered again (`INVALID_STATE`).
   * @example
   * registry.register({ did: alice.did, publicKey: alice.publicKey, trustScore: 850, capabilities: ['pay'] });
   */
  register(input: IdentityRegistration): IdentityRecord {
    const entry = readFields(input, ['did', 'publicKey', 'trustScore', 'status', 'capabilities'] as const, 'entry') as IdentityRegistration;
    assertMeshDid(entry.did, 'entry.did');
    assertKey(entry.publicKey, 'entry.publicKey', 32);
    ed25519PublicKeyToX25519(entry.publicKey); // INVALID_KEY for a key that could never run X3DH
    const trustScore = entry.trustScore ?? DEFAULT_TRUST_SCORE;
    assertTrustScore(trustScore, 'entry.trustScore');
    const status = entry.status ?? 'active';
    if (!isIdentityStatus(status)) throw new E2EError('INVALID_ARGUMENT', 'entry.status must be active, suspended or revoked');
    const capabilities = normalizeCapabilities(entry.capabilities ?? [], 'entry.capabilities');
    const old = this.#records.get(entry.did);
    if (old && !constantTimeEqual(old.publicKey, entry.publicKey)) {
      throw new E2EError('IDENTITY_MISMATCH', 'the DID is bound to another key; remove it first to re-key');
    }
    if (old?.status === 'revoked' || this.#removedRevoked.has(entry.did)) throw new E2EError('INVALID_STATE', 'the DID was revoked');
    const record = freeze({ did: entry.did, publicKey: Uint8Array.from(entry.publicKey), trustScore, status, capabilities });
    this.#records.set(entry.did, record);
    return copy(record);
  }

  /** See {@link IdentityRegistry.get}. Returns a copy. */
  get(did: string): IdentityRecord | null {
    const r = this.#records.get(did);
    return r ? copy(r) : null;
  }

  /** Sets the trust score of a registered DID (`INVALID_ARGUMENT` for an unknown DID or a bad score). */
  setTrustScore(did: string, trustScore: number): void {
    assertTrustScore(trustScore);
    this.#update(did, { trustScore });
  }

  /** Sets the status. Revocation is final: a revoked DID cannot become active again (`INVALID_STATE`). */
  setStatus(did: string, status: IdentityStatus): void {
    if (!isIdentityStatus(status)) throw new E2EError('INVALID_ARGUMENT', 'status must be active, suspended or revoked');
    this.#update(did, { status });
  }

  /** Replaces the capabilities of a registered DID. */
  setCapabilities(did: string, capabilities: readonly string[]): void {
    this.#update(did, { capabilities: normalizeCapabilities(capabilities) });
  }

  /**
   * Forgets `did`; `true` if it was registered. Removing a DID lets it be registered again (with another key, to
   * re-key it), except a revoked one: revocation is final, and its DID stays refused (`INVALID_STATE`).
   */
  remove(did: string): boolean {
    if (this.#records.get(did)?.status === 'revoked') this.#removedRevoked.add(did);
    return this.#records.delete(did);
  }

  /** Number of registered DIDs. */
  get size(): number {
    return this.#records.size;
  }

  #update(did: string, change: Partial<Pick<IdentityRecord, 'trustScore' | 'status' | 'capabilities'>>): void {
    const r = this.#records.get(did);
    if (!r) throw new E2EError('INVALID_ARGUMENT', 'unknown DID');
    if (r.status === 'revoked' && change.status !== undefined && change.status !== 'revoked') {
      throw new E2EError('INVALID_STATE', 'the DID was revoked');
    }
    this.#records.set(did, freeze({ ...r, ...change }));
  }
}

function freeze(r: IdentityRecord): IdentityRecord {
  return Object.freeze({ ...r, capabilities: Object.freeze([...r.capabilities]) });
}

function copy(r: IdentityRecord): IdentityRecord {
  return Object.freeze({ ...r, publicKey: Uint8Array.from(r.publicKey), capabilities: Object.freeze([...r.capabilities]) });
}
