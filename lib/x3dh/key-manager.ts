/**
 * X3DH key manager: an agent's identity (Ed25519, and its X25519 form), signed pre-keys (rotated,
 * older ones kept until retired) and one-time pre-keys; `initiate` and `respond` (PROTOCOL.md).
 */
import { E2EError, ErrorCode } from '../errors';
import {
  X25519KeyPair, assertBytes, assertKey, concatBytes, constantTimeEqual, ed25519KeyPairFromSeed, ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519, ed25519Sign, ed25519Verify, fromHex, memzero, readU32BE, toHex, writeU32BE, x25519,
  x25519KeyPair, x25519PublicKey,
} from '../crypto';
import { assertCanonicalX25519PublicKey } from '../crypto/x25519';
import { PreKeyBundle, isU32, snapshotBundle } from './bundle';
import { isUsableBytes, plainView } from '../crypto/bytes';
import { readFields, typed } from '../crypto/input';
import { x3dhKdf } from './kdf';
import { signedPreKeyVerifies, x25519FormOfEd25519 } from './identity-cache';

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

/** The private side of a key manager, JSON-safe (hex): what a store keeps so it can respond after a restart. */
export interface KeyManagerState {
  readonly version: 1;
  readonly identitySecretKey: string;
  readonly signedPreKeys: readonly { keyId: number; privateKey: string; signature: string; createdAt: number }[];
  readonly currentSignedPreKeyId: number | null;
  readonly oneTimePreKeys: readonly { keyId: number; privateKey: string }[];
  readonly nextSignedPreKeyId: number;
  readonly nextOneTimePreKeyId: number;
}

/** The one-time pre-key id of `getPublicBundle`'s argument (`null` for none); `INVALID_ARGUMENT` on anything unclear. */
function readOtkId(opts: unknown): number | null {
  if (opts === undefined || opts === null) return null;
  if (typeof opts === 'number') {
    if (!isU32(opts)) throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
    return opts;
  }
  if (typeof opts !== 'object') throw new E2EError('INVALID_ARGUMENT', 'getPublicBundle takes { otkId } or a one-time pre-key id');
  const keys = typed(() => Object.keys(opts), 'INVALID_ARGUMENT', 'options');
  if (keys.some((k) => k !== 'otkId')) throw new E2EError('INVALID_ARGUMENT', 'getPublicBundle options have only otkId');
  const { otkId } = readFields(opts, ['otkId'] as const, 'options');
  if (otkId === undefined || otkId === null) return null;
  if (!isU32(otkId)) throw new E2EError('INVALID_ARGUMENT', 'otkId must be an integer in [0, 2^32)');
  return otkId;
}

/** Most one-time pre-keys one call may generate. */
export const MAX_ONE_TIME_KEYS_PER_CALL = 10000;

/** An agent's X3DH keys. Create with {@link X3DHKeyManager.fromEd25519Keys}. */
export class X3DHKeyManager {
  /** X25519 identity key pair, derived from the Ed25519 identity. */
  readonly identityKey: X25519KeyPair;
  /** Ed25519 identity public key. */
  readonly identityKeyEd: Uint8Array;
  readonly #identitySecretKey: Uint8Array;
  readonly #signedPreKeys = new Map<number, SignedPreKey>();
  readonly #oneTimePreKeys = new Map<number, OneTimePreKey>();
  #currentSignedPreKeyId: number | null = null;
  #nextSignedPreKeyId = 0;
  #nextOneTimePreKeyId = 0;

  private constructor(secretKey: Uint8Array, publicKey: Uint8Array) {
    this.#identitySecretKey = secretKey;
    this.identityKeyEd = publicKey;
    this.identityKey = { privateKey: ed25519SecretKeyToX25519(secretKey), publicKey: ed25519PublicKeyToX25519(publicKey) };
  }

  /**
   * A manager for the Ed25519 identity `secretKey` (64 bytes: seed ‖ public) and `publicKey` (32).
   * Throws `INVALID_KEY` on wrong lengths or when the public key does not belong to the secret key.
   * @example
   * const id = ed25519KeyPair();
   * const mgr = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
   */
  static fromEd25519Keys(secretKey: Uint8Array, publicKey: Uint8Array): X3DHKeyManager {
    assertKey(secretKey, 'Ed25519 secret key', 64);
    assertKey(publicKey, 'Ed25519 public key', 32);
    const derived = ed25519KeyPairFromSeed(secretKey.subarray(0, 32));
    const ok = constantTimeEqual(derived.publicKey, publicKey) && constantTimeEqual(secretKey.subarray(32), publicKey);
    memzero(derived.secretKey);
    if (!ok) throw new E2EError('INVALID_KEY', 'the Ed25519 public key does not belong to the secret key');
    return new X3DHKeyManager(Uint8Array.from(secretKey), Uint8Array.from(publicKey));
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
  getOneTimePreKey(keyId: number): OneTimePreKey | undefined {
    return this.#oneTimePreKeys.get(keyId);
  }

  /**
   * Deletes (and wipes) the one-time pre-key `keyId`, as `respond` does unless told to keep it;
   * `false` if it was already gone. `INVALID_ARGUMENT` for an id that is not a u32.
   */
  consumeOneTimePreKey(keyId: number): boolean {
    if (!isU32(keyId)) throw new E2EError('INVALID_ARGUMENT', 'keyId must be an integer in [0, 2^32)');
    const otk = this.#oneTimePreKeys.get(keyId);
    if (!otk) return false;
    this.#oneTimePreKeys.delete(keyId);
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
      keyId, keyPair, signature: ed25519Sign(this.#identitySecretKey, keyPair.publicKey), createdAt: Date.now(),
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
    if (!Number.isInteger(n) || n < 1 || n > MAX_ONE_TIME_KEYS_PER_CALL) {
      throw new E2EError('INVALID_ARGUMENT', `n must be an integer in [1, ${MAX_ONE_TIME_KEYS_PER_CALL}]`);
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
    const otkId = readOtkId(opts);
    const spk = this.signedPreKey;
    if (!spk) throw new E2EError('INVALID_STATE', 'generate a signed pre-key before publishing a bundle');
    const base = {
      identityKey: Uint8Array.from(this.identityKey.publicKey),
      identityKeyEd: Uint8Array.from(this.identityKeyEd),
      signedPreKey: Uint8Array.from(spk.keyPair.publicKey),
      signedPreKeySignature: Uint8Array.from(spk.signature),
      signedPreKeyId: spk.keyId,
    };
    if (otkId === null) return base;
    const otk = this.#oneTimePreKeys.get(otkId);
    if (!otk) throw new E2EError('OTK_NOT_FOUND', `no unused one-time pre-key with id ${otkId}`);
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
    if (!signedPreKeyVerifies(bundle.identityKeyEd, bundle.signedPreKey, bundle.signedPreKeySignature)) {
      throw new E2EError('BAD_SIGNATURE', 'the signed pre-key signature does not verify');
    }
    if (!constantTimeEqual(x25519FormOfEd25519(bundle.identityKeyEd), bundle.identityKey)) {
      throw new E2EError('IDENTITY_MISMATCH', 'bundle.identityKey is not the X25519 form of bundle.identityKeyEd');
    }
    // The signed pre-key is covered by the signature as sent; both it and the one-time pre-key must
    // also be canonical, so no bundle names a key under two encodings.
    assertCanonicalX25519PublicKey(bundle.signedPreKey, 'bundle.signedPreKey');
    if (bundle.oneTimePreKey) assertCanonicalX25519PublicKey(bundle.oneTimePreKey, 'bundle.oneTimePreKey');
    const ek = x25519KeyPair();
    const dhs: Uint8Array[] = [];
    try {
      dhs.push(x25519(this.identityKey.privateKey, bundle.signedPreKey));
      dhs.push(x25519(ek.privateKey, bundle.identityKey));
      dhs.push(x25519(ek.privateKey, bundle.signedPreKey));
      if (bundle.oneTimePreKey) dhs.push(x25519(ek.privateKey, bundle.oneTimePreKey));
      return {
        sharedSecret: x3dhKdf(dhs),
        ephemeralPublicKey: ek.publicKey,
        usedOneTimeKeyId: bundle.oneTimePreKey ? bundle.oneTimePreKeyId : undefined,
        signedPreKeyId: bundle.signedPreKeyId,
        associatedData: concatBytes(this.identityKey.publicKey, bundle.identityKey),
      };
    } finally {
      memzero(ek.privateKey);
      dhs.forEach((d) => memzero(d));
    }
  }

  /**
   * Completes X3DH as the responder. Consumes the one-time pre-key (a second use gives
   * `OTK_NOT_FOUND`); on any failure nothing changes.
   */
  respond(input: X3DHRespondParams): X3DHResponse {
    const params = readFields(
      input, ['peerIdentityKey', 'ephemeralPublicKey', 'usedOneTimeKeyId', 'signedPreKeyId', 'heldOneTimePreKey'] as const, 'respond parameters',
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
    const otkId = params.usedOneTimeKeyId;
    let otk: OneTimePreKey | undefined = held;
    if (!held && otkId !== undefined && otkId !== null) {
      otk = isU32(otkId) ? this.#oneTimePreKeys.get(otkId) : undefined;
      if (!otk) throw new E2EError('OTK_NOT_FOUND', `no unused one-time pre-key with id ${isU32(otkId) ? otkId : '(not a key id)'}`);
    }
    const dhs: Uint8Array[] = [];
    try {
      dhs.push(x25519(spk.keyPair.privateKey, params.peerIdentityKey));
      dhs.push(x25519(this.identityKey.privateKey, params.ephemeralPublicKey));
      dhs.push(x25519(spk.keyPair.privateKey, params.ephemeralPublicKey));
      if (otk) dhs.push(x25519(otk.keyPair.privateKey, params.ephemeralPublicKey));
      const sharedSecret = x3dhKdf(dhs);
      if (otk && !held) {
        // Consumed only once everything succeeded, so a failed respond changes nothing.
        this.#oneTimePreKeys.delete(otk.keyId);
        memzero(otk.keyPair.privateKey);
      }
      return {
        sharedSecret,
        associatedData: concatBytes(params.peerIdentityKey as Uint8Array, this.identityKey.publicKey),
        signedPreKeyId: spk.keyId,
      };
    } finally {
      dhs.forEach((d) => memzero(d));
    }
  }

  /** The private state (secrets, hex) for a store to keep; {@link fromState} restores it. */
  exportState(): KeyManagerState {
    return {
      version: 1,
      identitySecretKey: toHex(this.#identitySecretKey),
      signedPreKeys: [...this.#signedPreKeys.values()].map((s) => ({
        keyId: s.keyId, privateKey: toHex(s.keyPair.privateKey), signature: toHex(s.signature), createdAt: s.createdAt,
      })),
      currentSignedPreKeyId: this.#currentSignedPreKeyId,
      oneTimePreKeys: [...this.#oneTimePreKeys.values()].map((o) => ({ keyId: o.keyId, privateKey: toHex(o.keyPair.privateKey) })),
      nextSignedPreKeyId: this.#nextSignedPreKeyId,
      nextOneTimePreKeyId: this.#nextOneTimePreKeyId,
    };
  }

  /** A manager restored from {@link exportState}; `MALFORMED_MESSAGE` or `INVALID_KEY` on a bad state. */
  static fromState(input: KeyManagerState): X3DHKeyManager {
    const state = readFields(input, [
      'version', 'identitySecretKey', 'signedPreKeys', 'currentSignedPreKeyId', 'oneTimePreKeys', 'nextSignedPreKeyId',
      'nextOneTimePreKeyId',
    ] as const, 'key manager state', 'MALFORMED_MESSAGE');
    if (state.version !== 1) throw new E2EError('MALFORMED_MESSAGE', 'unknown key manager state version');
    // Hex lengths are checked before decoding: a hostile state costs no work.
    const hex = (v: unknown, bytes: number, what: string, wrongLength: ErrorCode = 'INVALID_KEY'): Uint8Array => {
      if (typeof v !== 'string') throw new E2EError('MALFORMED_MESSAGE', `${what} must be a hex string`);
      if (v.length > 2 * bytes) throw new E2EError(wrongLength, `${what} must be ${bytes} bytes`);
      const b = fromHex(v);
      if (b.length !== bytes) throw new E2EError(wrongLength, `${what} must be ${bytes} bytes`);
      return b;
    };
    const list = (v: unknown, max: number, what: string): unknown[] => typed(() => {
      if (!Array.isArray(v) || v.length > max) throw new E2EError('MALFORMED_MESSAGE', `key manager state ${what} missing or too long`);
      return Array.from(v as unknown[]);
    }, 'MALFORMED_MESSAGE', `key manager state ${what}`);
    const spks = list(state.signedPreKeys, 1024, 'signed pre-keys');
    const otks = list(state.oneTimePreKeys, 1 << 20, 'one-time pre-keys');
    const sk = hex(state.identitySecretKey, 64, 'identity secret key');
    const mgr = typed(() => X3DHKeyManager.fromEd25519Keys(sk, sk.subarray(32)), 'MALFORMED_MESSAGE', 'identity secret key');
    memzero(sk);
    try {
      for (const entry of spks) {
        const s = readFields(entry, ['keyId', 'privateKey', 'signature', 'createdAt'] as const, 'signed pre-key entry', 'MALFORMED_MESSAGE');
        if (!isU32(s.keyId) || typeof s.createdAt !== 'number' || !Number.isFinite(s.createdAt)) {
          throw new E2EError('MALFORMED_MESSAGE', 'bad signed pre-key entry');
        }
        const signature = hex(s.signature, 64, 'signed pre-key signature', 'BAD_SIGNATURE');
        const privateKey = hex(s.privateKey, 32, 'signed pre-key');
        const keyPair = { privateKey, publicKey: x25519PublicKey(privateKey) };
        if (!ed25519Verify(signature, keyPair.publicKey, mgr.identityKeyEd)) {
          memzero(privateKey);
          throw new E2EError('BAD_SIGNATURE', 'stored signed pre-key signature does not verify');
        }
        mgr.#signedPreKeys.set(s.keyId, { keyId: s.keyId, keyPair, signature, createdAt: s.createdAt });
      }
      for (const entry of otks) {
        const o = readFields(entry, ['keyId', 'privateKey'] as const, 'one-time pre-key entry', 'MALFORMED_MESSAGE');
        if (!isU32(o.keyId)) throw new E2EError('MALFORMED_MESSAGE', 'bad one-time pre-key entry');
        const privateKey = hex(o.privateKey, 32, 'one-time pre-key');
        mgr.#oneTimePreKeys.set(o.keyId, { keyId: o.keyId, keyPair: { privateKey, publicKey: x25519PublicKey(privateKey) } });
      }
      const cur = state.currentSignedPreKeyId;
      if (cur !== null && !(isU32(cur) && mgr.#signedPreKeys.has(cur))) {
        throw new E2EError('MALFORMED_MESSAGE', 'current signed pre-key missing');
      }
      if (!isU32(state.nextSignedPreKeyId) || !isU32(state.nextOneTimePreKeyId)) {
        throw new E2EError('MALFORMED_MESSAGE', 'bad key id counters');
      }
      mgr.#currentSignedPreKeyId = cur;
      mgr.#nextSignedPreKeyId = state.nextSignedPreKeyId;
      mgr.#nextOneTimePreKeyId = state.nextOneTimePreKeyId;
      return mgr;
    } catch (e) {
      mgr.wipe(); // the keys read so far
      throw e;
    }
  }

  /**
   * The private state in binary (versioned, `"AMK" 0x01`): what a store seals, with no secret ever
   * turned into a string (JS strings cannot be wiped). Wipe the result with `memzero` once sealed.
   * Layout: `"AMK" 0x01 ‖ identity secret key(64) ‖ f64be(next SPK id) ‖ f64be(next OTK id) ‖
   * u8(has current) ‖ u32be(current SPK id) ‖ u32be(n) ‖ n × (u32be id ‖ priv(32) ‖ pub(32) ‖ sig(64) ‖
   * f64be created) ‖ u32be(m) ‖ m × (u32be id ‖ priv(32) ‖ pub(32))`.
   */
  toBytes(): Uint8Array {
    const spks = [...this.#signedPreKeys.values()];
    const otks = [...this.#oneTimePreKeys.values()];
    const out = new Uint8Array(4 + 64 + 16 + 5 + 4 + spks.length * 140 + 4 + otks.length * 68);
    const view = new DataView(out.buffer);
    out.set([0x41, 0x4d, 0x4b, 0x01]);
    out.set(this.#identitySecretKey, 4);
    let off = 68;
    view.setFloat64(off, this.#nextSignedPreKeyId);
    view.setFloat64(off + 8, this.#nextOneTimePreKeyId);
    off += 16;
    out[off] = this.#currentSignedPreKeyId === null ? 0 : 1;
    writeU32BE(out, off + 1, this.#currentSignedPreKeyId ?? 0);
    writeU32BE(out, off + 5, spks.length);
    off += 9;
    for (const k of spks) {
      writeU32BE(out, off, k.keyId);
      out.set(k.keyPair.privateKey, off + 4);
      out.set(k.keyPair.publicKey, off + 36);
      out.set(k.signature, off + 68);
      view.setFloat64(off + 132, k.createdAt);
      off += 140;
    }
    writeU32BE(out, off, otks.length);
    off += 4;
    for (const k of otks) {
      writeU32BE(out, off, k.keyId);
      out.set(k.keyPair.privateKey, off + 4);
      out.set(k.keyPair.publicKey, off + 36);
      off += 68;
    }
    return out;
  }

  /**
   * A manager restored from {@link toBytes}; `MALFORMED_MESSAGE` on any defect, `BAD_SIGNATURE` if a
   * stored signed pre-key signature does not verify. The bytes are trusted to be our own (the
   * stores authenticate them): public keys are not recomputed. Every key is copied out of `bytes`:
   * the caller may reuse or wipe them afterwards.
   */
  static fromBytes(input: Uint8Array): X3DHKeyManager {
    const bad = (why: string): E2EError => new E2EError('MALFORMED_MESSAGE', `bad key manager state: ${why}`);
    if (!isUsableBytes(input) || input.length < 97) throw bad('too short');
    // A plain view: its slice copies, so no key stays a view of the caller's buffer (a Node Buffer's would).
    const bytes = plainView(input);
    if (bytes[0] !== 0x41 || bytes[1] !== 0x4d || bytes[2] !== 0x4b) throw bad('not a key manager state');
    if (bytes[3] !== 0x01) throw bad(`unknown version ${bytes[3]}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const mgr = X3DHKeyManager.fromEd25519Keys(bytes.subarray(4, 68), bytes.subarray(36, 68));
    try {
      const nextSpk = view.getFloat64(68);
      const nextOtk = view.getFloat64(76);
      const isCounter = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 2 ** 32;
      if (!isCounter(nextSpk) || !isCounter(nextOtk)) throw bad('key id counters');
      let off = 84;
      const hasCurrent = bytes[off];
      const current = readU32BE(bytes, off + 1);
      const nSpk = readU32BE(bytes, off + 5);
      off += 9;
      if (hasCurrent > 1 || nSpk > 1024 || off + nSpk * 140 + 4 > bytes.length) throw bad('signed pre-keys');
      for (let i = 0; i < nSpk; i++, off += 140) {
        const keyId = readU32BE(bytes, off);
        const keyPair = { privateKey: bytes.slice(off + 4, off + 36), publicKey: bytes.slice(off + 36, off + 68) };
        const signature = bytes.slice(off + 68, off + 132);
        const createdAt = view.getFloat64(off + 132);
        if (!Number.isFinite(createdAt)) throw bad('signed pre-key time');
        if (!ed25519Verify(signature, keyPair.publicKey, mgr.identityKeyEd)) {
          throw new E2EError('BAD_SIGNATURE', 'stored signed pre-key signature does not verify');
        }
        mgr.#signedPreKeys.set(keyId, { keyId, keyPair, signature, createdAt });
      }
      const nOtk = readU32BE(bytes, off);
      off += 4;
      if (bytes.length !== off + nOtk * 68) throw bad('one-time pre-keys');
      for (let i = 0; i < nOtk; i++, off += 68) {
        const keyId = readU32BE(bytes, off);
        mgr.#oneTimePreKeys.set(keyId, {
          keyId, keyPair: { privateKey: bytes.slice(off + 4, off + 36), publicKey: bytes.slice(off + 36, off + 68) },
        });
      }
      if (hasCurrent === 1 && !mgr.#signedPreKeys.has(current)) throw bad('current signed pre-key missing');
      mgr.#currentSignedPreKeyId = hasCurrent === 1 ? current : null;
      mgr.#nextSignedPreKeyId = nextSpk;
      mgr.#nextOneTimePreKeyId = nextOtk;
      return mgr;
    } catch (e) {
      mgr.wipe(); // the keys read so far
      throw e;
    }
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

  #takeId(kind: 'signed' | 'one-time'): number {
    const id = kind === 'signed' ? this.#nextSignedPreKeyId : this.#nextOneTimePreKeyId;
    if (id > 0xffffffff) throw new E2EError('COUNTER_EXHAUSTED', `${kind} pre-key ids exhausted`);
    if (kind === 'signed') this.#nextSignedPreKeyId = id + 1;
    else this.#nextOneTimePreKeyId = id + 1;
    return id;
  }
}

/** A caller-held one-time pre-key for `respond`: a copy of its private key, for the id the establishment names. */
function readHeldKey(input: unknown, usedOneTimeKeyId: unknown): OneTimePreKey {
  const { keyId, keyPair } = readFields(input, ['keyId', 'keyPair'] as const, 'heldOneTimePreKey');
  if (!isU32(keyId) || keyId !== usedOneTimeKeyId) throw new E2EError('INVALID_ARGUMENT', 'heldOneTimePreKey must be the key the establishment names');
  const { privateKey } = readFields(keyPair, ['privateKey'] as const, 'heldOneTimePreKey.keyPair');
  assertKey(privateKey, 'held one-time pre-key', 32);
  return { keyId, keyPair: { privateKey, publicKey: new Uint8Array(32) } };
}
