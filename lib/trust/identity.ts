/**
 * `AgentIdentity`: an agent's Ed25519 key pair and its DID. The secret key has one owner, an
 * `X3DHKeyManager`: the identity signs and exports through it and never holds the key itself. A
 * generated or imported identity owns a private manager (never printed, never in `toJSON`) that
 * `wipe()` wipes; an identity made from an application's key manager only refers to it, and
 * wiping that manager disables it.
 */
import { E2EError, isE2EError } from '../errors';
import {
  assertBytes,
  assertKey,
  constantTimeEqual,
  ed25519KeyPair,
  ed25519KeyPairFromSeed,
  ed25519Verify,
  isInstance,
  memzero,
  readFields,
  toBase64,
} from '../crypto';
import { X3DHKeyManager } from '../x3dh';
import { assertMeshDid, didFromPublicKey } from './did';
import { keyFingerprint } from './fingerprint';

/** Where an identity made from a key manager finds it (a persisted manager replaces its object on each save). */
interface KeyManagerHolder {
  readonly manager: X3DHKeyManager;
}

/** Options of the identity constructors. */
export interface AgentIdentityOptions {
  /**
   * The DID to use instead of the key's self-certifying DID (e.g. AGT's random `did:mesh:<32 hex>`).
   * Such a DID is only trusted where a registry binds it to this key.
   */
  readonly did?: string;
}

/** The public side of an identity, safe to print or send. */
export interface AgentIdentityJSON {
  /** The agent's DID. */
  did: string;
  /** Ed25519 public key, standard base64. */
  publicKey: string;
  /** The key's fingerprint, 10 groups of 4 uppercase hex digits (see {@link keyFingerprint}). */
  fingerprint: string;
}

/** An agent's Ed25519 identity and DID. */
export class AgentIdentity {
  /** The agent's DID. */
  readonly did: string;
  readonly #publicKey: Uint8Array;
  /** Where the key manager that holds the secret key is found. */
  readonly #holder: KeyManagerHolder;
  /** Whether that manager is this identity's own (made by it, wiped by {@link wipe}). */
  readonly #ownsManager: boolean;
  #wiped = false;

  private constructor(holder: KeyManagerHolder, ownsManager: boolean, publicKey: Uint8Array, did: string) {
    this.#holder = holder;
    this.#ownsManager = ownsManager;
    this.#publicKey = publicKey;
    this.did = did;
  }

  /**
   * A new random identity whose DID is derived from its public key (`did:mesh:` + 32 hex of SHA-256).
   * @example
   * const alice = AgentIdentity.generate();
   * alice.did; // 'did:mesh:…'
   */
  static generate(options: AgentIdentityOptions = {}): AgentIdentity {
    const did = readDidOption(options); // before a key exists: a bad option costs nothing
    const pair = ed25519KeyPair();
    return AgentIdentity.#make(pair.secretKey, pair.publicKey, did);
  }

  /** The identity of a 32-byte Ed25519 seed (deterministic). */
  static fromSeed(seed: Uint8Array, options: AgentIdentityOptions = {}): AgentIdentity {
    const did = readDidOption(options);
    const pair = ed25519KeyPairFromSeed(seed);
    return AgentIdentity.#make(pair.secretKey, pair.publicKey, did);
  }

  /**
   * The identity of a 64-byte libsodium Ed25519 secret key (seed ‖ public key), copied. Throws
   * `INVALID_KEY` when its public half is not the seed's public key.
   */
  static fromSecretKey(secretKey: Uint8Array, options: AgentIdentityOptions = {}): AgentIdentity {
    const did = readDidOption(options);
    assertKey(secretKey, 'Ed25519 secret key', 64);
    const pair = ed25519KeyPairFromSeed(secretKey.subarray(0, 32));
    if (!constantTimeEqual(pair.publicKey, secretKey.subarray(32))) {
      memzero(pair.secretKey);
      throw new E2EError('INVALID_KEY', "the Ed25519 secret key is inconsistent (public half is not the seed's)");
    }
    return AgentIdentity.#make(pair.secretKey, pair.publicKey, did);
  }

  /**
   * The identity held by an X3DH key manager (or a persisted one such as `StoredKeyManager`, whose
   * newest state is used each time), named `did`. It keeps no copy of the secret key: it signs
   * through the manager, so once the manager is wiped it can no longer sign.
   */
  static fromKeyManager(manager: X3DHKeyManager | { readonly manager: X3DHKeyManager }, did: string): AgentIdentity {
    const holder: KeyManagerHolder = isInstance(manager, X3DHKeyManager) ? { manager } : (manager as KeyManagerHolder);
    let current: unknown;
    try {
      current = holder?.manager;
    } catch {
      current = undefined;
    }
    if (!isInstance(current, X3DHKeyManager)) throw new E2EError('INVALID_ARGUMENT', 'manager must be an X3DHKeyManager');
    assertMeshDid(did, 'did');
    return new AgentIdentity(holder, false, Uint8Array.from(current.identityKeyEd), did);
  }

  /** An identity owning a new manager of `secretKey`, which is wiped here (the manager keeps the one copy). */
  static #make(secretKey: Uint8Array, publicKey: Uint8Array, chosenDid: string | undefined): AgentIdentity {
    const did = chosenDid ?? didFromPublicKey(publicKey);
    let manager: X3DHKeyManager;
    try {
      // The manager derives the X25519 form: a key with none (which could never run X3DH) fails here.
      manager = X3DHKeyManager.fromEd25519Keys(secretKey, publicKey);
    } finally {
      memzero(secretKey);
    }
    return new AgentIdentity({ manager }, true, publicKey, did);
  }

  /** The Ed25519 public key (a copy). */
  get publicKey(): Uint8Array {
    return Uint8Array.from(this.#publicKey);
  }

  /** The key's fingerprint, for people to compare out of band (see {@link keyFingerprint}). */
  get fingerprint(): string {
    return keyFingerprint(this.#publicKey);
  }

  /** True when the DID is the key's self-certifying DID (no registry needed to bind them). */
  get isSelfCertifying(): boolean {
    return this.did === didFromPublicKey(this.#publicKey);
  }

  /** Whether {@link wipe} was called. */
  get isWiped(): boolean {
    return this.#wiped;
  }

  /** Ed25519 signature of `message`. `INVALID_STATE` after {@link wipe}. */
  sign(message: Uint8Array): Uint8Array {
    this.#assertUsable();
    assertBytes(message, 'message');
    try {
      return this.#holder.manager.signWithIdentityKey(message);
    } catch (e) {
      // A wiped manager's key is zeros, which no longer matches the public half.
      throw isE2EError(e, 'INVALID_KEY') ? new E2EError('INVALID_STATE', 'the key manager holding this identity was wiped') : e;
    }
  }

  /** True when `signature` is this identity's signature of `message`. */
  verify(signature: Uint8Array, message: Uint8Array): boolean {
    return ed25519Verify(signature, message, this.#publicKey);
  }

  /** A new X3DH key manager for this identity (it keeps its own copy of the key). */
  createKeyManager(): X3DHKeyManager {
    this.#assertUsable();
    const secretKey = this.exportSecretKey();
    try {
      return X3DHKeyManager.fromEd25519Keys(secretKey, this.#publicKey);
    } finally {
      memzero(secretKey);
    }
  }

  /** True when `manager` holds this identity's key. */
  ownsKeyManager(manager: X3DHKeyManager): boolean {
    return isInstance(manager, X3DHKeyManager) && constantTimeEqual(manager.identityKeyEd, this.#publicKey);
  }

  /** A copy of the 64-byte secret key, for the caller to store sealed (and wipe). */
  exportSecretKey(): Uint8Array {
    this.#assertUsable();
    return this.#holder.manager.exportIdentitySecretKey();
  }

  /**
   * Wipes the secret key; the identity can no longer sign. Idempotent. (An identity made from a key
   * manager only stops signing: the manager owns the key, wipe it there.)
   */
  wipe(): void {
    if (this.#ownsManager && !this.#wiped) this.#holder.manager.wipe();
    this.#wiped = true;
  }

  /** The public side only: DID, public key (standard base64) and fingerprint. */
  toJSON(): AgentIdentityJSON {
    return { did: this.did, publicKey: toBase64(this.#publicKey), fingerprint: this.fingerprint };
  }

  #assertUsable(): void {
    if (this.#wiped) throw new E2EError('INVALID_STATE', 'the identity was wiped');
  }
}

/** The `did` option, read once; checked here so no key is made for a bad one. */
function readDidOption(options: unknown): string | undefined {
  const { did } = options === undefined ? { did: undefined } : readFields(options, ['did'] as const, 'options');
  if (did !== undefined) assertMeshDid(did, 'options.did');
  return did as string | undefined;
}
