/**
 * X3DH key manager: an agent's identity (Ed25519, and its X25519 form), signed pre-keys (rotated,
 * older ones kept until retired) and one-time pre-keys; `initiate` and `respond` (PROTOCOL.md).
 * The agreement itself is `agreement.ts`; the saved forms are `key-manager-codec.ts`.
 */
import { E2EError } from '../errors';
import {
  X25519KeyPair,
  assertBytes,
  assertKey,
  constantTimeEqual,
  ed25519KeyPairFromSeed,
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  ed25519Sign,
  memzero,
  x25519KeyPair,
} from '../crypto';
import { isU32 } from '../crypto/byte-io';
import { assertCanonicalX25519PublicKey } from '../crypto/x25519';
import { PreKeyBundle, snapshotBundle } from './bundle';
import { readFields, typed } from '../crypto/input';
import { initiateAgreement, respondAgreement } from './agreement';
import {
  KeyManagerContents,
  KeyManagerState,
  keyManagerFromBytes,
  keyManagerFromState,
  keyManagerToBytes,
  keyManagerToState,
} from './key-manager-codec';
import { MAX_ONE_TIME_PRE_KEYS_PER_CALL } from '../limits';

export type { KeyManagerState } from './key-manager-codec';

/** A signed pre-key: an X25519 pair signed by the identity key. */
export interface SignedPreKey {
  readonly keyId: number;
  readonly keyPair: X25519KeyPair;
  /** Ed25519 signature of the 32 raw bytes of `keyPair.publicKey`. */
  readonly signature: Uint8Array;
  /** Creation time, milliseconds since the epoch. */
  readonly createdAt: number;
}

/** A one-time pre-key: used by at most one initiator, then deleted. */
export interface OneTimePreKey {
  readonly keyId: number;
  readonly keyPair: X25519KeyPair;
}

/** What `initiate` returns: the shared secret and what the responder needs to derive it. */
export interface X3DHInitiation {
  /** SK, 32 bytes. Secret: wipe it when the ratchet is set up. */
  readonly sharedSecret: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly usedOneTimeKeyId: number | undefined;
  readonly signedPreKeyId: number;
  /** X3DH AD = IK_A ‖ IK_B (X25519, initiator first). */
  readonly associatedData: Uint8Array;
}

/** Parameters of `respond`: the initiator's establishment. */
export interface X3DHRespondParams {
  readonly peerIdentityKey: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly usedOneTimeKeyId?: number | null | undefined;
  /** The signed pre-key the initiator used; the current one when absent. */
  readonly signedPreKeyId?: number | null | undefined;
  /**
   * Answer with this one-time pre-key, which the caller holds, instead of looking
   * `usedOneTimeKeyId` up (its `keyId` must be that id); nothing is consumed. For a responder that
   * spends a key when the first establishment naming it arrives but keeps a copy in memory until a
   * session under it authenticates (the trust bridge): a forgery naming the genuine initiator's
   * key id, delivered first, must not make the genuine establishment fail.
   */
  readonly heldOneTimePreKey?: OneTimePreKey | undefined;
}

/** What `respond` returns. */
export interface X3DHResponse {
  /** SK, 32 bytes. Secret: wipe it when the ratchet is set up. */
  readonly sharedSecret: Uint8Array;
  readonly associatedData: Uint8Array;
  readonly signedPreKeyId: number;
}

/** The one-time pre-key id of `getPublicBundle`'s argument (`null` for none); `INVALID_ARGUMENT` on anything unclear. */
function readOneTimePreKeyId(opts: unknown): number | null {
  if (opts === undefined || opts === null) return null;
  if (typeof opts === 'number') {
    if (!isU32(opts)) throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
    return opts;
  }
  if (typeof opts !== 'object') throw new E2EError('INVALID_ARGUMENT', 'getPublicBundle takes { otkId } or a one-time pre-key id');
  const keys = typed(() => Object.keys(opts), 'INVALID_ARGUMENT', 'options');
  if (keys.some((k) => k !== 'otkId')) throw new E2EError('INVALID_ARGUMENT', 'getPublicBundle options have only otkId');
  const { otkId: oneTimePreKeyId } = readFields(opts, ['otkId'] as const, 'options');
  if (oneTimePreKeyId === undefined || oneTimePreKeyId === null) return null;
  if (!isU32(oneTimePreKeyId)) throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
  return oneTimePreKeyId;
}

/** An agent's X3DH keys. Create with {@link X3DHKeyManager.fromEd25519Keys}. */
export class X3DHKeyManager {
  /** X25519 identity key pair, derived from the Ed25519 identity. */
  readonly identityKey: X25519KeyPair;
  /** Ed25519 identity public key. */
  readonly identityKeyEd: Uint8Array;
  readonly #identitySecretKey: Uint8Array;
  readonly #signedPreKeys: Map<number, SignedPreKey>;
  readonly #oneTimePreKeys: Map<number, OneTimePreKey>;
  #currentSignedPreKeyId: number | null;
  #nextSignedPreKeyId: number;
  #nextOneTimePreKeyId: number;

  /**
   * Adopts `c` (its arrays and maps become the manager's); `publicKey` is a copy of the identity's
   * public half. Reachable at run time despite `private`: anything but the codec's contents fails typed.
   */
  private constructor(c: KeyManagerContents, publicKey: Uint8Array) {
    const pools = typed(() => ({ ...c }), 'INVALID_ARGUMENT', 'key manager contents');
    this.#identitySecretKey = pools.identitySecretKey;
    this.identityKeyEd = publicKey;
    this.identityKey = { privateKey: ed25519SecretKeyToX25519(pools.identitySecretKey), publicKey: ed25519PublicKeyToX25519(publicKey) };
    this.#signedPreKeys = pools.signedPreKeys;
    this.#oneTimePreKeys = pools.oneTimePreKeys;
    this.#currentSignedPreKeyId = pools.currentSignedPreKeyId;
    this.#nextSignedPreKeyId = pools.nextSignedPreKeyId;
    this.#nextOneTimePreKeyId = pools.nextOneTimePreKeyId;
  }

  /** A manager of saved contents, whose identity was checked by the codec. */
  static #adopt(c: KeyManagerContents): X3DHKeyManager {
    return new X3DHKeyManager(c, Uint8Array.from(c.identitySecretKey.subarray(32)));
  }

  /**
   * A manager for the Ed25519 identity `secretKey` (64 bytes: seed ‖ public) and `publicKey` (32).
   * Throws `INVALID_KEY` on wrong lengths or when the public key does not belong to the secret key.
   * @example
   * const id = ed25519KeyPair();
   * const mgr = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
   */
  static fromEd25519Keys(secretKey: Uint8Array, publicKey: Uint8Array): X3DHKeyManager {
    assertIdentityKeys(secretKey, publicKey);
    const identitySecretKey = Uint8Array.from(secretKey);
    try {
      return new X3DHKeyManager(
        {
          identitySecretKey,
          signedPreKeys: new Map(),
          currentSignedPreKeyId: null,
          oneTimePreKeys: new Map(),
          nextSignedPreKeyId: 0,
          nextOneTimePreKeyId: 0,
        },
        Uint8Array.from(publicKey),
      );
    } catch (e) {
      memzero(identitySecretKey); // a public key with no X25519 form: no copy of the secret stays behind
      throw e;
    }
  }

  /** The current signed pre-key, or `null` before the first `generateSignedPreKey()`. */
  get signedPreKey(): SignedPreKey | null {
    return this.#currentSignedPreKeyId === null ? null : (this.#signedPreKeys.get(this.#currentSignedPreKeyId) ?? null);
  }

  /**
   * Ed25519 signature of `message` by the identity key, for protocols built on the identity (the
   * trust handshake) without exporting the secret key.
   */
  signWithIdentityKey(message: Uint8Array): Uint8Array {
    assertBytes(message, 'message');
    return ed25519Sign(this.#identitySecretKey, message);
  }

  /**
   * A copy of the 64-byte Ed25519 identity secret key (seed ‖ public key), for an identity object
   * that signs on the manager's behalf. Secret: wipe it with `memzero` when done.
   */
  exportIdentitySecretKey(): Uint8Array {
    return Uint8Array.from(this.#identitySecretKey);
  }

  /** The signed pre-key with this id (current or not yet retired), or `undefined`. */
  getSignedPreKey(keyId: number): SignedPreKey | undefined {
    return this.#signedPreKeys.get(keyId);
  }

  /** Ids of the signed pre-keys still usable for responding, oldest first. */
  get signedPreKeyIds(): number[] {
    return [...this.#signedPreKeys.keys()];
  }

  /** Ids of the one-time pre-keys not used yet. */
  get oneTimePreKeyIds(): number[] {
    return [...this.#oneTimePreKeys.keys()];
  }

  /** The one-time pre-key with this id, if it is still unused. */
  getOneTimePreKey(oneTimePreKeyId: number): OneTimePreKey | undefined {
    return this.#oneTimePreKeys.get(oneTimePreKeyId);
  }

  /**
   * Deletes (and wipes) the one-time pre-key `oneTimePreKeyId`, as `respond` does unless told to keep it;
   * `false` if it was already gone. `INVALID_ARGUMENT` for an id that is not a u32.
   */
  consumeOneTimePreKey(oneTimePreKeyId: number): boolean {
    if (!isU32(oneTimePreKeyId)) throw new E2EError('INVALID_ARGUMENT', 'keyId must be an integer in [0, 2^32)');
    const otk = this.#oneTimePreKeys.get(oneTimePreKeyId);
    if (!otk) return false;
    this.#oneTimePreKeys.delete(oneTimePreKeyId);
    memzero(otk.keyPair.privateKey);
    return true;
  }

  /**
   * Makes a new signed pre-key and makes it current. The previous ones stay usable for `respond` (by
   * id) until {@link retireSignedPreKey}, so establishments in flight still complete.
   */
  generateSignedPreKey(): SignedPreKey {
    const keyId = this.#takeId('signed');
    const keyPair = x25519KeyPair();
    const spk: SignedPreKey = {
      keyId,
      keyPair,
      signature: ed25519Sign(this.#identitySecretKey, keyPair.publicKey),
      createdAt: Date.now(),
    };
    this.#signedPreKeys.set(keyId, spk);
    this.#currentSignedPreKeyId = keyId;
    return spk;
  }

  /** Deletes (and wipes) an old signed pre-key. The current one cannot be retired: rotate first. */
  retireSignedPreKey(keyId: number): void {
    if (keyId === this.#currentSignedPreKeyId) throw new E2EError('INVALID_STATE', 'cannot retire the current signed pre-key');
    const spk = this.#signedPreKeys.get(keyId);
    if (!spk) throw new E2EError('SPK_NOT_FOUND', `no signed pre-key with id ${isU32(keyId) ? keyId : '(not a key id)'}`);
    memzero(spk.keyPair.privateKey);
    this.#signedPreKeys.delete(keyId);
  }

  /** Makes `n` new one-time pre-keys (1 ≤ n ≤ 10000) and returns them. */
  generateOneTimePreKeys(n: number): OneTimePreKey[] {
    if (!Number.isInteger(n) || n < 1 || n > MAX_ONE_TIME_PRE_KEYS_PER_CALL) {
      throw new E2EError('INVALID_ARGUMENT', `n must be an integer in [1, ${MAX_ONE_TIME_PRE_KEYS_PER_CALL}]`);
    }
    const made: OneTimePreKey[] = [];
    for (let i = 0; i < n; i++) {
      const otk: OneTimePreKey = { keyId: this.#takeId('one-time'), keyPair: x25519KeyPair() };
      this.#oneTimePreKeys.set(otk.keyId, otk);
      made.push(otk);
    }
    return made;
  }

  /**
   * The public bundle to publish, with the one-time pre-key `otkId` when given (`OTK_NOT_FOUND` if
   * it is not an unused key of ours). `INVALID_STATE` before the first signed pre-key. The id may
   * be passed as `{ otkId }` or, AGT style, as the number itself: `getPublicBundle(0)` is the bundle
   * with one-time pre-key 0, never silently one without. Anything else (a non-u32 id, an object
   * with other keys) is `INVALID_ARGUMENT`.
   * @example
   * mgr.getPublicBundle({ otkId: 3 }); mgr.getPublicBundle(3); mgr.getPublicBundle(); // no one-time pre-key
   */
  getPublicBundle(opts: { otkId?: number | null } | number | null = {}): PreKeyBundle {
    const oneTimePreKeyId = readOneTimePreKeyId(opts);
    const spk = this.signedPreKey;
    if (!spk) throw new E2EError('INVALID_STATE', 'generate a signed pre-key before publishing a bundle');
    const base = {
      identityKey: Uint8Array.from(this.identityKey.publicKey),
      identityKeyEd: Uint8Array.from(this.identityKeyEd),
      signedPreKey: Uint8Array.from(spk.keyPair.publicKey),
      signedPreKeySignature: Uint8Array.from(spk.signature),
      signedPreKeyId: spk.keyId,
    };
    if (oneTimePreKeyId === null) return base;
    const otk = this.#oneTimePreKeys.get(oneTimePreKeyId);
    if (!otk) throw new E2EError('OTK_NOT_FOUND', `no unused one-time pre-key with id ${oneTimePreKeyId}`);
    return { ...base, oneTimePreKey: Uint8Array.from(otk.keyPair.publicKey), oneTimePreKeyId: otk.keyId };
  }

  /**
   * Starts X3DH with a peer's bundle. Rejects a bad signed pre-key signature (`BAD_SIGNATURE`), an
   * `identityKey` that is not the X25519 form of `identityKeyEd` (`IDENTITY_MISMATCH`) and any
   * low-order key (`INVALID_KEY`).
   */
  initiate(input: PreKeyBundle): X3DHInitiation {
    // Read once and copied: what is verified is what is used.
    const bundle = snapshotBundle(input);
    const agreed = initiateAgreement(this.identityKey, bundle);
    return {
      ...agreed,
      usedOneTimeKeyId: bundle.oneTimePreKey ? bundle.oneTimePreKeyId : undefined,
      signedPreKeyId: bundle.signedPreKeyId,
    };
  }

  /**
   * Completes X3DH as the responder. Consumes the one-time pre-key (a second use gives
   * `OTK_NOT_FOUND`); on any failure nothing changes.
   */
  respond(input: X3DHRespondParams): X3DHResponse {
    const params = readFields(
      input,
      ['peerIdentityKey', 'ephemeralPublicKey', 'usedOneTimeKeyId', 'signedPreKeyId', 'heldOneTimePreKey'] as const,
      'respond parameters',
    ) as { -readonly [K in keyof X3DHRespondParams]: unknown };
    const held = params.heldOneTimePreKey === undefined ? undefined : readHeldKey(params.heldOneTimePreKey, params.usedOneTimeKeyId);
    // Canonical only: X25519 ignores bit 255 and reduces mod p, so an establishment re-sent with
    // those bits changed would derive the same secret while looking new to anything over raw bytes.
    assertCanonicalX25519PublicKey(params.peerIdentityKey, 'peer identity key');
    assertCanonicalX25519PublicKey(params.ephemeralPublicKey, 'ephemeral public key');
    const spkId = params.signedPreKeyId ?? this.#currentSignedPreKeyId;
    if (!isU32(spkId)) throw new E2EError('SPK_NOT_FOUND', 'no signed pre-key to respond with');
    const spk = this.#signedPreKeys.get(spkId);
    if (!spk) throw new E2EError('SPK_NOT_FOUND', `no signed pre-key with id ${spkId}`);
    const oneTimePreKeyId = params.usedOneTimeKeyId;
    let otk: OneTimePreKey | undefined = held;
    if (!held && oneTimePreKeyId !== undefined && oneTimePreKeyId !== null) {
      otk = isU32(oneTimePreKeyId) ? this.#oneTimePreKeys.get(oneTimePreKeyId) : undefined;
      if (!otk) {
        throw new E2EError(
          'OTK_NOT_FOUND',
          `no unused one-time pre-key with id ${isU32(oneTimePreKeyId) ? oneTimePreKeyId : '(not a key id)'}`,
        );
      }
    }
    const agreed = respondAgreement(
      { identity: this.identityKey, signedPreKey: spk.keyPair, oneTimePreKey: otk?.keyPair },
      params.peerIdentityKey,
      params.ephemeralPublicKey,
    );
    if (otk && !held) {
      // Consumed only once everything succeeded, so a failed respond changes nothing.
      this.#oneTimePreKeys.delete(otk.keyId);
      memzero(otk.keyPair.privateKey);
    }
    return { ...agreed, signedPreKeyId: spk.keyId };
  }

  /** The private state (secrets, hex) for a store to keep; {@link fromState} restores it. */
  exportState(): KeyManagerState {
    return keyManagerToState(this.#contents());
  }

  /** A manager restored from {@link exportState}; `MALFORMED_MESSAGE` or `INVALID_KEY` on a bad state. */
  static fromState(input: KeyManagerState): X3DHKeyManager {
    return X3DHKeyManager.#adopt(keyManagerFromState(input, checkIdentitySecretKey));
  }

  /**
   * The private state in binary (versioned, `"AMK" 0x01`, layout in `key-manager-codec.ts`): what a
   * store seals, with no secret ever turned into a string (JS strings cannot be wiped). Wipe the
   * result with `memzero` once sealed.
   */
  toBytes(): Uint8Array {
    return keyManagerToBytes(this.#contents());
  }

  /**
   * A manager restored from {@link toBytes}; `MALFORMED_MESSAGE` on any defect, `BAD_SIGNATURE` if a
   * stored signed pre-key signature does not verify. The bytes are trusted to be our own (the
   * stores authenticate them): public keys are not recomputed. Every key is copied out of `bytes`:
   * the caller may reuse or wipe them afterwards.
   */
  static fromBytes(input: Uint8Array): X3DHKeyManager {
    return X3DHKeyManager.#adopt(keyManagerFromBytes(input, checkIdentitySecretKey));
  }

  /** Wipes every private key this manager holds. The manager is unusable afterwards. */
  wipe(): void {
    memzero(this.#identitySecretKey);
    memzero(this.identityKey.privateKey);
    for (const s of this.#signedPreKeys.values()) memzero(s.keyPair.privateKey);
    for (const o of this.#oneTimePreKeys.values()) memzero(o.keyPair.privateKey);
    this.#signedPreKeys.clear();
    this.#oneTimePreKeys.clear();
    this.#currentSignedPreKeyId = null;
  }

  /** The private fields, for the codec to write (read only; nothing is copied). */
  #contents(): KeyManagerContents {
    return {
      identitySecretKey: this.#identitySecretKey,
      signedPreKeys: this.#signedPreKeys,
      currentSignedPreKeyId: this.#currentSignedPreKeyId,
      oneTimePreKeys: this.#oneTimePreKeys,
      nextSignedPreKeyId: this.#nextSignedPreKeyId,
      nextOneTimePreKeyId: this.#nextOneTimePreKeyId,
    };
  }

  #takeId(kind: 'signed' | 'one-time'): number {
    const id = kind === 'signed' ? this.#nextSignedPreKeyId : this.#nextOneTimePreKeyId;
    if (id > 0xffffffff) throw new E2EError('COUNTER_EXHAUSTED', `${kind} pre-key ids exhausted`);
    if (kind === 'signed') this.#nextSignedPreKeyId = id + 1;
    else this.#nextOneTimePreKeyId = id + 1;
    return id;
  }
}

/**
 * Throws `INVALID_KEY` unless `secretKey` (64 bytes: seed ‖ public) and `publicKey` (32) are one
 * Ed25519 identity: the public key is the seed's, and the secret key's public half is it.
 */
function assertIdentityKeys(secretKey: Uint8Array, publicKey: Uint8Array): void {
  assertKey(secretKey, 'Ed25519 secret key', 64);
  assertKey(publicKey, 'Ed25519 public key', 32);
  const derived = ed25519KeyPairFromSeed(secretKey.subarray(0, 32));
  const ok = constantTimeEqual(derived.publicKey, publicKey) && constantTimeEqual(secretKey.subarray(32), publicKey);
  memzero(derived.secretKey);
  if (!ok) throw new E2EError('INVALID_KEY', 'the Ed25519 public key does not belong to the secret key');
}

/** The codec's identity check of a saved 64-byte secret key: its public half must be its seed's. */
function checkIdentitySecretKey(secretKey: Uint8Array): void {
  assertIdentityKeys(secretKey, secretKey.subarray(32));
}

/** A caller-held one-time pre-key for `respond`: a copy of its private key, for the id the establishment names. */
function readHeldKey(input: unknown, oneTimePreKeyId: unknown): OneTimePreKey {
  const { keyId, keyPair } = readFields(input, ['keyId', 'keyPair'] as const, 'heldOneTimePreKey');
  if (!isU32(keyId) || keyId !== oneTimePreKeyId)
    throw new E2EError('INVALID_ARGUMENT', 'heldOneTimePreKey must be the key the establishment names');
  const { privateKey } = readFields(keyPair, ['privateKey'] as const, 'heldOneTimePreKey.keyPair');
  assertKey(privateKey, 'held one-time pre-key', 32);
  return { keyId, keyPair: { privateKey, publicKey: new Uint8Array(32) } };
}
