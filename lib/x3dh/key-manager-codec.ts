/**
 * The key manager's two saved forms, apart from its behaviour: the JSON-safe state (hex, version 1)
 * and the binary `"AMK" 0x01` layout that stores seal. Both read into and write from
 * {@link KeyManagerContents}, the manager's private fields as plain data; the manager checks
 * nothing again. Pinned by `spec/vectors/own/key-manager.json`.
 */
import { E2EError, ErrorCode } from '../errors';
import { ByteReader, ByteWriter, isU32 } from '../crypto/byte-io';
import { ed25519Verify, fromHex, isUsableBytes, memzero, plainView, toHex, x25519PublicKey } from '../crypto';
import { readFields, typed } from '../crypto/input';
import type { OneTimePreKey, SignedPreKey } from './key-manager';
import { MAX_ONE_TIME_PRE_KEYS_IN_STATE, MAX_SIGNED_PRE_KEYS_IN_STATE } from '../limits';

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

/** A key manager's private fields as plain data: what both saved forms hold. */
export interface KeyManagerContents {
  /** Ed25519 seed ‖ public key (64 bytes). */
  readonly identitySecretKey: Uint8Array;
  readonly signedPreKeys: Map<number, SignedPreKey>;
  readonly currentSignedPreKeyId: number | null;
  readonly oneTimePreKeys: Map<number, OneTimePreKey>;
  /** Up to 2^32 once every id was taken. */
  readonly nextSignedPreKeyId: number;
  readonly nextOneTimePreKeyId: number;
}

/** Throws unless a 64-byte Ed25519 secret key's public half belongs to its seed (the manager's own check). */
export type IdentityCheck = (identitySecretKey: Uint8Array) => void;

const AMK = Uint8Array.of(0x41, 0x4d, 0x4b); // "AMK"
const AMK_VERSION = 0x01;
const SPK_ENTRY_BYTES = 4 + 32 + 32 + 64 + 8;
const OTK_ENTRY_BYTES = 4 + 32 + 32;
/** Magic and version, identity, two counters, has-current, current id, two counts. */
const AMK_FIXED_BYTES = 4 + 64 + 16 + 1 + 4 + 4 + 4;

/** Wipes the secrets of contents read so far (a failed read leaves none behind). */
function wipeContents(identitySecretKey: Uint8Array, spks: Map<number, SignedPreKey>, otks: Map<number, OneTimePreKey>): void {
  memzero(identitySecretKey);
  for (const s of spks.values()) memzero(s.keyPair.privateKey);
  for (const o of otks.values()) memzero(o.keyPair.privateKey);
}

/** `identitySecretKey` once `checkIdentity` accepts it; wiped when it does not. */
function checkedIdentity(identitySecretKey: Uint8Array, checkIdentity: IdentityCheck): Uint8Array {
  try {
    typed(() => checkIdentity(identitySecretKey), 'MALFORMED_MESSAGE', 'identity secret key');
    return identitySecretKey;
  } catch (e) {
    memzero(identitySecretKey);
    throw e;
  }
}

/** The JSON-safe state of `c`. */
export function keyManagerToState(c: KeyManagerContents): KeyManagerState {
  return {
    version: 1,
    identitySecretKey: toHex(c.identitySecretKey),
    signedPreKeys: [...c.signedPreKeys.values()].map((s) => ({
      keyId: s.keyId,
      privateKey: toHex(s.keyPair.privateKey),
      signature: toHex(s.signature),
      createdAt: s.createdAt,
    })),
    currentSignedPreKeyId: c.currentSignedPreKeyId,
    oneTimePreKeys: [...c.oneTimePreKeys.values()].map((o) => ({ keyId: o.keyId, privateKey: toHex(o.keyPair.privateKey) })),
    nextSignedPreKeyId: c.nextSignedPreKeyId,
    nextOneTimePreKeyId: c.nextOneTimePreKeyId,
  };
}

/**
 * The contents of a JSON-safe state; `MALFORMED_MESSAGE` or `INVALID_KEY` on a bad state,
 * `BAD_SIGNATURE` for a stored signed pre-key whose signature does not verify.
 */
export function keyManagerFromState(input: KeyManagerState, checkIdentity: IdentityCheck): KeyManagerContents {
  const state = readFields(
    input,
    [
      'version',
      'identitySecretKey',
      'signedPreKeys',
      'currentSignedPreKeyId',
      'oneTimePreKeys',
      'nextSignedPreKeyId',
      'nextOneTimePreKeyId',
    ] as const,
    'key manager state',
    'MALFORMED_MESSAGE',
  );
  if (state.version !== 1) throw new E2EError('MALFORMED_MESSAGE', 'unknown key manager state version');
  // Hex lengths are checked before decoding: a hostile state costs no work.
  const hex = (v: unknown, bytes: number, what: string, wrongLength: ErrorCode = 'INVALID_KEY'): Uint8Array => {
    if (typeof v !== 'string') throw new E2EError('MALFORMED_MESSAGE', `${what} must be a hex string`);
    if (v.length > 2 * bytes) throw new E2EError(wrongLength, `${what} must be ${bytes} bytes`);
    const b = fromHex(v);
    if (b.length !== bytes) throw new E2EError(wrongLength, `${what} must be ${bytes} bytes`);
    return b;
  };
  const list = (v: unknown, max: number, what: string): unknown[] =>
    typed(
      () => {
        if (!Array.isArray(v) || v.length > max) throw new E2EError('MALFORMED_MESSAGE', `key manager state ${what} missing or too long`);
        return Array.from(v as unknown[]);
      },
      'MALFORMED_MESSAGE',
      `key manager state ${what}`,
    );
  const spkEntries = list(state.signedPreKeys, MAX_SIGNED_PRE_KEYS_IN_STATE, 'signed pre-keys');
  const otkEntries = list(state.oneTimePreKeys, MAX_ONE_TIME_PRE_KEYS_IN_STATE, 'one-time pre-keys');
  const sk = checkedIdentity(hex(state.identitySecretKey, 64, 'identity secret key'), checkIdentity);
  const identityKeyEd = sk.subarray(32);
  const spks = new Map<number, SignedPreKey>();
  const otks = new Map<number, OneTimePreKey>();
  try {
    for (const entry of spkEntries) {
      const s = readFields(entry, ['keyId', 'privateKey', 'signature', 'createdAt'] as const, 'signed pre-key entry', 'MALFORMED_MESSAGE');
      if (!isU32(s.keyId) || typeof s.createdAt !== 'number' || !Number.isFinite(s.createdAt)) {
        throw new E2EError('MALFORMED_MESSAGE', 'bad signed pre-key entry');
      }
      const signature = hex(s.signature, 64, 'signed pre-key signature', 'BAD_SIGNATURE');
      const privateKey = hex(s.privateKey, 32, 'signed pre-key');
      const keyPair = { privateKey, publicKey: x25519PublicKey(privateKey) };
      if (!ed25519Verify(signature, keyPair.publicKey, identityKeyEd)) {
        memzero(privateKey);
        throw new E2EError('BAD_SIGNATURE', 'stored signed pre-key signature does not verify');
      }
      spks.set(s.keyId, { keyId: s.keyId, keyPair, signature, createdAt: s.createdAt });
    }
    for (const entry of otkEntries) {
      const o = readFields(entry, ['keyId', 'privateKey'] as const, 'one-time pre-key entry', 'MALFORMED_MESSAGE');
      if (!isU32(o.keyId)) throw new E2EError('MALFORMED_MESSAGE', 'bad one-time pre-key entry');
      const privateKey = hex(o.privateKey, 32, 'one-time pre-key');
      otks.set(o.keyId, { keyId: o.keyId, keyPair: { privateKey, publicKey: x25519PublicKey(privateKey) } });
    }
    const current = state.currentSignedPreKeyId;
    if (current !== null && !(isU32(current) && spks.has(current))) {
      throw new E2EError('MALFORMED_MESSAGE', 'current signed pre-key missing');
    }
    if (!isU32(state.nextSignedPreKeyId) || !isU32(state.nextOneTimePreKeyId)) {
      throw new E2EError('MALFORMED_MESSAGE', 'bad key id counters');
    }
    return {
      identitySecretKey: sk,
      signedPreKeys: spks,
      currentSignedPreKeyId: current,
      oneTimePreKeys: otks,
      nextSignedPreKeyId: state.nextSignedPreKeyId,
      nextOneTimePreKeyId: state.nextOneTimePreKeyId,
    };
  } catch (e) {
    wipeContents(sk, spks, otks);
    throw e;
  }
}

/**
 * The binary form: `"AMK" 0x01 ‖ identity secret key(64) ‖ f64be(next SPK id) ‖ f64be(next OTK id) ‖
 * u8(has current) ‖ u32be(current SPK id) ‖ u32be(n) ‖ n × (u32be id ‖ priv(32) ‖ pub(32) ‖ sig(64) ‖
 * f64be created) ‖ u32be(m) ‖ m × (u32be id ‖ priv(32) ‖ pub(32))`. No secret is ever a string.
 */
export function keyManagerToBytes(c: KeyManagerContents): Uint8Array {
  const w = new ByteWriter(AMK_FIXED_BYTES + c.signedPreKeys.size * SPK_ENTRY_BYTES + c.oneTimePreKeys.size * OTK_ENTRY_BYTES);
  w.bytes(AMK).u8(AMK_VERSION).bytes(c.identitySecretKey).f64(c.nextSignedPreKeyId).f64(c.nextOneTimePreKeyId);
  w.u8(c.currentSignedPreKeyId === null ? 0 : 1)
    .u32(c.currentSignedPreKeyId ?? 0)
    .u32(c.signedPreKeys.size);
  for (const k of c.signedPreKeys.values()) {
    w.u32(k.keyId).bytes(k.keyPair.privateKey).bytes(k.keyPair.publicKey).bytes(k.signature).f64(k.createdAt);
  }
  w.u32(c.oneTimePreKeys.size);
  for (const k of c.oneTimePreKeys.values()) w.u32(k.keyId).bytes(k.keyPair.privateKey).bytes(k.keyPair.publicKey);
  return w.finish();
}

/**
 * The contents of {@link keyManagerToBytes}' bytes; `MALFORMED_MESSAGE` on any defect, `BAD_SIGNATURE`
 * if a stored signed pre-key signature does not verify. The bytes are trusted to be our own (the
 * stores authenticate them): public keys are not recomputed. Every key is a copy: the caller may
 * reuse or wipe `input` afterwards.
 */
export function keyManagerFromBytes(input: Uint8Array, checkIdentity: IdentityCheck): KeyManagerContents {
  const bad = (why: string): E2EError => new E2EError('MALFORMED_MESSAGE', `bad key manager state: ${why}`);
  if (!isUsableBytes(input) || input.length < AMK_FIXED_BYTES) throw bad('too short');
  // A plain view: the reader's copies are then real copies (a Node Buffer's slice would be a view).
  const r = new ByteReader(plainView(input), 'key manager state');
  r.expect(AMK, 'not a key manager state');
  const version = r.u8();
  if (version !== AMK_VERSION) throw bad(`unknown version ${version}`);
  const sk = checkedIdentity(r.bytes(64), checkIdentity);
  const identityKeyEd = sk.subarray(32);
  const spks = new Map<number, SignedPreKey>();
  const otks = new Map<number, OneTimePreKey>();
  try {
    const nextSpk = r.f64();
    const nextOtk = r.f64();
    const isCounter = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 2 ** 32;
    if (!isCounter(nextSpk) || !isCounter(nextOtk)) throw bad('key id counters');
    const hasCurrent = r.u8();
    const current = r.u32();
    const nSpk = r.u32();
    // The whole list and the next count must fit before any signature is checked.
    if (hasCurrent > 1 || nSpk > MAX_SIGNED_PRE_KEYS_IN_STATE || nSpk * SPK_ENTRY_BYTES + 4 > r.remaining) throw bad('signed pre-keys');
    for (let i = 0; i < nSpk; i++) {
      const keyId = r.u32();
      const keyPair = { privateKey: r.bytes(32), publicKey: r.bytes(32) };
      const signature = r.bytes(64);
      const createdAt = r.f64();
      const failure = !Number.isFinite(createdAt)
        ? bad('signed pre-key time')
        : !ed25519Verify(signature, keyPair.publicKey, identityKeyEd)
          ? new E2EError('BAD_SIGNATURE', 'stored signed pre-key signature does not verify')
          : null;
      if (failure) {
        memzero(keyPair.privateKey);
        throw failure;
      }
      spks.set(keyId, { keyId, keyPair, signature, createdAt });
    }
    const nOtk = r.u32();
    if (nOtk * OTK_ENTRY_BYTES !== r.remaining) throw bad('one-time pre-keys');
    for (let i = 0; i < nOtk; i++) {
      const keyId = r.u32();
      otks.set(keyId, { keyId, keyPair: { privateKey: r.bytes(32), publicKey: r.bytes(32) } });
    }
    r.end();
    if (hasCurrent === 1 && !spks.has(current)) throw bad('current signed pre-key missing');
    return {
      identitySecretKey: sk,
      signedPreKeys: spks,
      currentSignedPreKeyId: hasCurrent === 1 ? current : null,
      oneTimePreKeys: otks,
      nextSignedPreKeyId: nextSpk,
      nextOneTimePreKeyId: nextOtk,
    };
  } catch (e) {
    wipeContents(sk, spks, otks);
    throw e;
  }
}
