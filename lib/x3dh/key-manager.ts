/**
 * X3DH key manager: an agent's identity (Ed25519, and its X25519 form), signed pre-keys (rotated,
 * older ones kept until retired), one-time pre-keys and ML-KEM-768 KEM pre-keys (one-time, and
 * last-resort ones rotated like signed pre-keys); `initiate` and `respond` (PROTOCOL.md).
 * The agreement itself is `agreement.ts`; the saved forms are `key-manager-codec.ts`.
 */
import { E2EError } from '../errors';
import {
  X25519KeyPair,
  assertBytes,
  assertKey,
  constantTimeEqual,
  isUsableBytes,
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
import { readExactOptions, readFields, typed } from '../crypto/input';
import { initiateAgreement, respondAgreement } from './agreement';
import {
  KeyManagerContents,
  KeyManagerState,
  keyManagerFromBytes,
  keyManagerFromState,
  keyManagerToBytes,
  keyManagerToState,
} from './key-manager-codec';
import { MAX_KEM_PRE_KEYS_IN_STATE, MAX_KEM_PRE_KEYS_PER_CALL, MAX_ONE_TIME_PRE_KEYS_PER_CALL } from '../limits';
import { MLKEM768_CIPHERTEXT_BYTES, MLKEM768_SECRET_KEY_BYTES, MlKem768KeyPair, mlkem768KeyPairFromSeed } from '../crypto/mlkem';
import { randomSecretBytes } from '../crypto/random';
import { KemPreKeyRecord } from './key-manager-codec';
import { PublicKemPreKey, kemPreKeySignedBytes } from './kem-prekey';

export type { KeyManagerState } from './key-manager-codec';

/** A signed pre-key: an X25519 pair signed by the identity key. */
export interface SignedPreKey {
  /** The key's id, from the manager's signed pre-key counter: what bundles and establishments name it by. */
  readonly keyId: number;
  /** The X25519 key pair (the private key is secret). */
  readonly keyPair: X25519KeyPair;
  /** Ed25519 signature of the 32 raw bytes of `keyPair.publicKey`. */
  readonly signature: Uint8Array;
  /** Creation time, milliseconds since the epoch. */
  readonly createdAt: number;
}

/** A one-time pre-key: used by at most one initiator, then deleted. */
export interface OneTimePreKey {
  /** The key's id, from the manager's one-time pre-key counter: what bundles and establishments name it by. */
  readonly keyId: number;
  /** The X25519 key pair (the private key is secret). */
  readonly keyPair: X25519KeyPair;
}

/**
 * A KEM pre-key's decapsulation key held by the caller, for {@link X3DHRespondParams.heldKemPreKey}
 * (what {@link X3DHKeyManager.exportKemPreKeySecret} returns). Secret: wipe `secretKey` when done.
 */
export interface HeldKemPreKey {
  /** The KEM pre-key's id: the establishment's `kemPreKeyId`. */
  readonly keyId: number;
  /** ML-KEM-768 decapsulation key, 2400 bytes. */
  readonly secretKey: Uint8Array;
}

/** What `initiate` returns: the shared secret and what the responder needs to derive it. */
export interface X3DHInitiation {
  /** SK, 32 bytes. Secret: wipe it when the ratchet is set up. */
  readonly sharedSecret: Uint8Array;
  /** Our X3DH ephemeral public key (32 bytes), for the responder. */
  readonly ephemeralPublicKey: Uint8Array;
  /** The bundle's one-time pre-key used, or `undefined` when the bundle had none. */
  readonly usedOneTimeKeyId: number | undefined;
  /** The bundle's signed pre-key used. */
  readonly signedPreKeyId: number;
  /** The KEM pre-key encapsulated to (post-quantum establishments only). */
  readonly kemPreKeyId: number | undefined;
  /** The ML-KEM-768 ciphertext for the responder, 1088 bytes (post-quantum establishments only). */
  readonly kemCiphertext: Uint8Array | undefined;
  /** X3DH AD = IK_A ‖ IK_B (X25519, initiator first). */
  readonly associatedData: Uint8Array;
}

/** Parameters of `respond`: the initiator's establishment. */
export interface X3DHRespondParams {
  /** The initiator's X25519 identity key (32 bytes, canonical). */
  readonly peerIdentityKey: Uint8Array;
  /** The initiator's X3DH ephemeral public key (32 bytes, canonical). */
  readonly ephemeralPublicKey: Uint8Array;
  /** The one-time pre-key the initiator used, if any: consumed (`OTK_NOT_FOUND` if it is gone), unless held. */
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
  /** The KEM pre-key the initiator encapsulated to (post-quantum establishments; with `kemCiphertext`). */
  readonly kemPreKeyId?: number | null | undefined;
  /** The ML-KEM-768 ciphertext, 1088 bytes (with `kemPreKeyId`). */
  readonly kemCiphertext?: Uint8Array | null | undefined;
  /** As `heldOneTimePreKey`, for a one-time KEM pre-key: decapsulate with it, consume nothing. */
  readonly heldKemPreKey?: HeldKemPreKey | undefined;
}

/** What `respond` returns. */
export interface X3DHResponse {
  /** SK, 32 bytes. Secret: wipe it when the ratchet is set up. */
  readonly sharedSecret: Uint8Array;
  /** X3DH AD = IK_A ‖ IK_B (X25519, initiator first). */
  readonly associatedData: Uint8Array;
  /** The signed pre-key responded with (the current one when the establishment named none). */
  readonly signedPreKeyId: number;
  /** Whether SK is PQXDH's hybrid secret (the establishment carried a KEM ciphertext). */
  readonly postQuantum: boolean;
}

/** The argument of `getPublicBundle`, read. `kemId` undefined: the current last-resort KEM pre-key, if any; `null`: none. */
interface BundleChoice {
  readonly otkId: number | null;
  readonly kemId: number | null | undefined;
}

/** `getPublicBundle`'s argument read; `INVALID_ARGUMENT` on anything unclear. */
function readBundleChoice(opts: unknown): BundleChoice {
  if (opts === undefined || opts === null) return { otkId: null, kemId: undefined };
  if (typeof opts === 'number') {
    if (!isU32(opts)) throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
    return { otkId: opts, kemId: undefined };
  }
  if (typeof opts !== 'object') throw new E2EError('INVALID_ARGUMENT', 'getPublicBundle takes { otkId, kemId } or a one-time pre-key id');
  const { otkId, kemId } = readExactOptions(opts, ['otkId', 'kemId'] as const, 'getPublicBundle options');
  if (otkId !== undefined && otkId !== null && !isU32(otkId))
    throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
  if (kemId !== undefined && kemId !== null && !isU32(kemId))
    throw new E2EError('INVALID_ARGUMENT', 'kemId must be an integer in [0, 2^32)');
  return { otkId: (otkId ?? null) as number | null, kemId: kemId as number | null | undefined };
}

/** The public half of a KEM pre-key record with its encapsulation key (copies). */
function publicKemPreKey(k: KemPreKeyRecord, publicKey: Uint8Array): PublicKemPreKey {
  return {
    keyId: k.keyId,
    publicKey: Uint8Array.from(publicKey),
    signature: Uint8Array.from(k.signature),
    lastResort: k.lastResort,
    createdAt: k.createdAt,
  };
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
  readonly #kemPreKeys: Map<number, KemPreKeyRecord>;
  /**
   * Key pairs expanded from their seeds (50 µs each) when first needed, kept until the key goes:
   * the saved forms hold only the 64-byte seed, so a manager restored per acceptance stays small.
   */
  readonly #kemPairs = new Map<number, MlKem768KeyPair>();
  #currentSignedPreKeyId: number | null;
  #currentLastResortKemPreKeyId: number | null;
  #nextSignedPreKeyId: number;
  #nextOneTimePreKeyId: number;
  #nextKemPreKeyId: number;

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
    this.#kemPreKeys = pools.kemPreKeys;
    this.#currentLastResortKemPreKeyId = pools.currentLastResortKemPreKeyId;
    this.#nextKemPreKeyId = pools.nextKemPreKeyId;
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
          kemPreKeys: new Map(),
          currentLastResortKemPreKeyId: null,
          nextKemPreKeyId: 0,
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
    this.#assertIdsFree('one-time', n);
    const made: OneTimePreKey[] = [];
    for (let i = 0; i < n; i++) {
      const otk: OneTimePreKey = { keyId: this.#takeId('one-time'), keyPair: x25519KeyPair() };
      this.#oneTimePreKeys.set(otk.keyId, otk);
      made.push(otk);
    }
    return made;
  }

  /**
   * Makes `n` new one-time KEM pre-keys (ML-KEM-768, each signed by the identity key; 1 ≤ n ≤
   * 1000) and returns their public halves, to publish. Each is used by at most one establishment.
   * @example const published = mgr.generateKemPreKeys(10); // [{ keyId, publicKey, signature, lastResort: false, createdAt }]
   */
  generateKemPreKeys(n: number): PublicKemPreKey[] {
    if (!Number.isInteger(n) || n < 1 || n > MAX_KEM_PRE_KEYS_PER_CALL) {
      throw new E2EError('INVALID_ARGUMENT', `n must be an integer in [1, ${MAX_KEM_PRE_KEYS_PER_CALL}]`);
    }
    this.#assertKemRoom(n);
    this.#assertIdsFree('kem', n);
    const made: PublicKemPreKey[] = [];
    for (let i = 0; i < n; i++) made.push(this.#publicKem(this.#makeKemPreKey(false)));
    return made;
  }

  /**
   * Makes a new last-resort KEM pre-key and makes it current: `getPublicBundle` carries it when no
   * one-time KEM pre-key is asked for, and it answers any number of establishments (replays are
   * the caller's to refuse, as for the three-DH last resort). The previous ones stay usable until
   * {@link retireKemPreKey}, so establishments in flight still complete.
   */
  generateLastResortKemPreKey(): PublicKemPreKey {
    this.#assertKemRoom(1);
    const k = this.#makeKemPreKey(true);
    this.#currentLastResortKemPreKeyId = k.keyId;
    return this.#publicKem(k);
  }

  /** The current last-resort KEM pre-key (public half), or `null` before the first one. */
  get lastResortKemPreKey(): PublicKemPreKey | null {
    const id = this.#currentLastResortKemPreKeyId;
    const k = id === null ? undefined : this.#kemPreKeys.get(id);
    return k ? this.#publicKem(k) : null;
  }

  /** Ids of the KEM pre-keys still usable (unused one-time ones and unretired last-resort ones), oldest first. */
  get kemPreKeyIds(): number[] {
    return [...this.#kemPreKeys.keys()];
  }

  /** The public half of KEM pre-key `keyId`, if it is still usable. */
  getKemPreKey(keyId: number): PublicKemPreKey | undefined {
    const k = this.#kemPreKeys.get(keyId);
    return k ? this.#publicKem(k) : undefined;
  }

  /**
   * A copy of KEM pre-key `keyId`'s decapsulation key, for a caller that answers with it later
   * without consuming it ({@link X3DHRespondParams.heldKemPreKey}); `undefined` if it is gone.
   * Secret: wipe `secretKey` with `memzero` when done.
   */
  exportKemPreKeySecret(keyId: number): HeldKemPreKey | undefined {
    const k = this.#kemPreKeys.get(keyId);
    return k ? { keyId, secretKey: Uint8Array.from(this.#kemPair(k).secretKey) } : undefined;
  }

  /**
   * Deletes (and wipes) the one-time KEM pre-key `keyId`, as `respond` does; `false` if it was
   * already gone. `INVALID_ARGUMENT` for an id that is not a u32, `INVALID_STATE` for a last-resort
   * key (retire those with {@link retireKemPreKey}).
   */
  consumeKemPreKey(keyId: number): boolean {
    if (!isU32(keyId)) throw new E2EError('INVALID_ARGUMENT', 'keyId must be an integer in [0, 2^32)');
    const k = this.#kemPreKeys.get(keyId);
    if (!k) return false;
    if (k.lastResort) throw new E2EError('INVALID_STATE', 'a last-resort KEM pre-key is retired, not consumed');
    this.#dropKemPreKey(k);
    return true;
  }

  /** Deletes (and wipes) an old last-resort KEM pre-key. The current one cannot be retired: make a new one first. */
  retireKemPreKey(keyId: number): void {
    if (keyId === this.#currentLastResortKemPreKeyId)
      throw new E2EError('INVALID_STATE', 'cannot retire the current last-resort KEM pre-key');
    const k = this.#kemPreKeys.get(keyId);
    if (!k || !k.lastResort)
      throw new E2EError('KEM_NOT_FOUND', `no last-resort KEM pre-key with id ${isU32(keyId) ? keyId : '(not a key id)'}`);
    this.#dropKemPreKey(k);
  }

  /**
   * The public bundle to publish, with the one-time pre-key `otkId` when given (`OTK_NOT_FOUND` if
   * it is not an unused key of ours) and the KEM pre-key `kemId` when given (`KEM_NOT_FOUND` if it
   * is not a usable key of ours); without `kemId`, the current last-resort KEM pre-key when there is
   * one; with `kemId: null`, none (a classic bundle, for a peer that must get one). A manager with no
   * KEM pre-key publishes the classic bundle, byte for byte.
   * `INVALID_STATE` before the first signed pre-key. The one-time pre-key id may be passed as
   * `{ otkId }` or, AGT style, as the number itself: `getPublicBundle(0)` is the bundle with one-time
   * pre-key 0, never silently one without. Anything else (a non-u32 id, an object with other keys)
   * is `INVALID_ARGUMENT`.
   * @example
   * mgr.getPublicBundle({ otkId: 3, kemId: 7 }); mgr.getPublicBundle(3); mgr.getPublicBundle(); // no one-time pre-key
   */
  getPublicBundle(opts: { otkId?: number | null; kemId?: number | null } | number | null = {}): PreKeyBundle {
    const choice = readBundleChoice(opts);
    const spk = this.signedPreKey;
    if (!spk) throw new E2EError('INVALID_STATE', 'generate a signed pre-key before publishing a bundle');
    let bundle: PreKeyBundle = {
      identityKey: Uint8Array.from(this.identityKey.publicKey),
      identityKeyEd: Uint8Array.from(this.identityKeyEd),
      signedPreKey: Uint8Array.from(spk.keyPair.publicKey),
      signedPreKeySignature: Uint8Array.from(spk.signature),
      signedPreKeyId: spk.keyId,
    };
    if (choice.otkId !== null) {
      const otk = this.#oneTimePreKeys.get(choice.otkId);
      if (!otk) throw new E2EError('OTK_NOT_FOUND', `no unused one-time pre-key with id ${choice.otkId}`);
      bundle = { ...bundle, oneTimePreKey: Uint8Array.from(otk.keyPair.publicKey), oneTimePreKeyId: otk.keyId };
    }
    const kemId = choice.kemId === undefined ? this.#currentLastResortKemPreKeyId : choice.kemId;
    if (kemId === null) return bundle;
    const kem = this.#kemPreKeys.get(kemId);
    if (!kem) throw new E2EError('KEM_NOT_FOUND', `no usable KEM pre-key with id ${kemId}`);
    return {
      ...bundle,
      kemPreKey: Uint8Array.from(this.#kemPair(kem).publicKey),
      kemPreKeyId: kem.keyId,
      kemPreKeySignature: Uint8Array.from(kem.signature),
    };
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
      kemPreKeyId: bundle.kemPreKey ? bundle.kemPreKeyId : undefined,
    };
  }

  /**
   * Completes X3DH (PQXDH when the establishment carries a KEM ciphertext) as the responder.
   * Consumes the one-time pre-key and a one-time KEM pre-key (a second use gives `OTK_NOT_FOUND`,
   * `KEM_NOT_FOUND`); on any failure nothing changes.
   */
  respond(input: X3DHRespondParams): X3DHResponse {
    const params = readFields(
      input,
      [
        'peerIdentityKey',
        'ephemeralPublicKey',
        'usedOneTimeKeyId',
        'signedPreKeyId',
        'heldOneTimePreKey',
        'kemPreKeyId',
        'kemCiphertext',
        'heldKemPreKey',
      ] as const,
      'respond parameters',
    ) as { -readonly [K in keyof X3DHRespondParams]: unknown };
    const held = params.heldOneTimePreKey === undefined ? undefined : readHeldKey(params.heldOneTimePreKey, params.usedOneTimeKeyId);
    const kem = this.#readKem(params.kemPreKeyId, params.kemCiphertext, params.heldKemPreKey);
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
      {
        identity: this.identityKey,
        signedPreKey: spk.keyPair,
        oneTimePreKey: otk?.keyPair,
        kem: kem && { secretKey: kem.secretKey, ciphertext: kem.ciphertext },
      },
      params.peerIdentityKey,
      params.ephemeralPublicKey,
    );
    // Consumed only once everything succeeded, so a failed respond changes nothing.
    if (otk && !held) {
      this.#oneTimePreKeys.delete(otk.keyId);
      memzero(otk.keyPair.privateKey);
    }
    if (kem?.record && !kem.record.lastResort) this.#dropKemPreKey(kem.record);
    return { ...agreed, signedPreKeyId: spk.keyId, postQuantum: kem !== undefined };
  }

  /**
   * The KEM half of `respond`'s parameters: `undefined` for a classic establishment; otherwise the
   * ciphertext (copied, `MALFORMED_MESSAGE` unless 1088 bytes), the decapsulation key and the
   * record to consume (none for a held key). `KEM_NOT_FOUND` when the key is not ours (any more).
   */
  #readKem(
    keyId: unknown,
    ciphertext: unknown,
    heldInput: unknown,
  ): { ciphertext: Uint8Array; secretKey: Uint8Array; record: KemPreKeyRecord | undefined } | undefined {
    const hasId = keyId !== undefined && keyId !== null;
    const hasCt = ciphertext !== undefined && ciphertext !== null;
    if (hasId !== hasCt) throw new E2EError('MALFORMED_MESSAGE', 'kemPreKeyId and kemCiphertext go together');
    if (!hasId) {
      if (heldInput !== undefined) throw new E2EError('INVALID_ARGUMENT', 'heldKemPreKey needs a post-quantum establishment');
      return undefined;
    }
    if (!isU32(keyId)) throw new E2EError('MALFORMED_MESSAGE', 'kemPreKeyId must be an integer in [0, 2^32)');
    if (!isUsableBytes(ciphertext) || ciphertext.length !== MLKEM768_CIPHERTEXT_BYTES) {
      throw new E2EError('MALFORMED_MESSAGE', `kemCiphertext must be ${MLKEM768_CIPHERTEXT_BYTES} bytes`);
    }
    const ct = Uint8Array.from(ciphertext as Uint8Array);
    if (heldInput !== undefined) {
      const { keyId: heldId, secretKey } = readFields(heldInput, ['keyId', 'secretKey'] as const, 'heldKemPreKey');
      if (heldId !== keyId) throw new E2EError('INVALID_ARGUMENT', 'heldKemPreKey must be the key the establishment names');
      assertKey(secretKey, 'held KEM pre-key', MLKEM768_SECRET_KEY_BYTES);
      return { ciphertext: ct, secretKey, record: undefined };
    }
    const record = this.#kemPreKeys.get(keyId);
    if (!record) throw new E2EError('KEM_NOT_FOUND', `no usable KEM pre-key with id ${keyId}`);
    return { ciphertext: ct, secretKey: this.#kemPair(record).secretKey, record };
  }

  /**
   * `INVALID_STATE` when `n` more KEM pre-keys would make a state that cannot be read back
   * ({@link MAX_KEM_PRE_KEYS_IN_STATE}): retire or consume some first.
   */
  #assertKemRoom(n: number): void {
    if (this.#kemPreKeys.size + n > MAX_KEM_PRE_KEYS_IN_STATE) {
      throw new E2EError(
        'INVALID_STATE',
        `a key manager holds at most ${MAX_KEM_PRE_KEYS_IN_STATE} KEM pre-keys: retire or use some first`,
      );
    }
  }

  /** A new KEM pre-key: a seed from the CSPRNG, its key pair, the identity's signature. */
  #makeKemPreKey(lastResort: boolean): KemPreKeyRecord {
    const seed = randomSecretBytes(64);
    const pair = mlkem768KeyPairFromSeed(seed);
    const record: KemPreKeyRecord = {
      keyId: this.#takeId('kem'),
      seed,
      signature: ed25519Sign(this.#identitySecretKey, kemPreKeySignedBytes(pair.publicKey)),
      lastResort,
      createdAt: Date.now(),
    };
    this.#kemPreKeys.set(record.keyId, record);
    this.#kemPairs.set(record.keyId, pair);
    return record;
  }

  /** The key pair of `k`, expanded from its seed once. */
  #kemPair(k: KemPreKeyRecord): MlKem768KeyPair {
    let pair = this.#kemPairs.get(k.keyId);
    if (!pair) {
      pair = mlkem768KeyPairFromSeed(k.seed);
      this.#kemPairs.set(k.keyId, pair);
    }
    return pair;
  }

  /** The public half of `k` (copies). */
  #publicKem(k: KemPreKeyRecord): PublicKemPreKey {
    return publicKemPreKey(k, this.#kemPair(k).publicKey);
  }

  #dropKemPreKey(k: KemPreKeyRecord): void {
    this.#kemPreKeys.delete(k.keyId);
    memzero(k.seed);
    const pair = this.#kemPairs.get(k.keyId);
    if (pair) memzero(pair.secretKey);
    this.#kemPairs.delete(k.keyId);
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
    for (const k of this.#kemPreKeys.values()) memzero(k.seed);
    for (const pair of this.#kemPairs.values()) memzero(pair.secretKey);
    this.#signedPreKeys.clear();
    this.#oneTimePreKeys.clear();
    this.#kemPreKeys.clear();
    this.#kemPairs.clear();
    this.#currentSignedPreKeyId = null;
    this.#currentLastResortKemPreKeyId = null;
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
      kemPreKeys: this.#kemPreKeys,
      currentLastResortKemPreKeyId: this.#currentLastResortKemPreKeyId,
      nextKemPreKeyId: this.#nextKemPreKeyId,
    };
  }

  /**
   * Throws what {@link #takeId} would throw within the next `n` ids, before any is taken: a batch is made whole
   * or not at all (a restored state whose counter is behind its keys, or ids running out, fails it up front).
   */
  #assertIdsFree(kind: 'one-time' | 'kem', n: number): void {
    const first = kind === 'one-time' ? this.#nextOneTimePreKeyId : this.#nextKemPreKeyId;
    if (first + n - 1 > 0xffffffff) throw new E2EError('COUNTER_EXHAUSTED', `${kind} pre-key ids exhausted`);
    const taken = kind === 'one-time' ? this.#oneTimePreKeys : this.#kemPreKeys;
    for (let id = first; id < first + n; id++) {
      if (taken.has(id)) throw new E2EError('INVALID_STATE', `${kind} pre-key id ${id} is in use: the saved counter is behind its keys`);
    }
  }

  #takeId(kind: 'signed' | 'one-time' | 'kem'): number {
    const id = kind === 'signed' ? this.#nextSignedPreKeyId : kind === 'one-time' ? this.#nextOneTimePreKeyId : this.#nextKemPreKeyId;
    if (id > 0xffffffff) throw new E2EError('COUNTER_EXHAUSTED', `${kind} pre-key ids exhausted`);
    const taken = kind === 'signed' ? this.#signedPreKeys : kind === 'one-time' ? this.#oneTimePreKeys : this.#kemPreKeys;
    // A restored state whose counter is behind its keys: never replace a live key (its secret unwiped).
    if (taken.has(id)) throw new E2EError('INVALID_STATE', `${kind} pre-key id ${id} is in use: the saved counter is behind its keys`);
    if (kind === 'signed') this.#nextSignedPreKeyId = id + 1;
    else if (kind === 'one-time') this.#nextOneTimePreKeyId = id + 1;
    else this.#nextKemPreKeyId = id + 1;
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
