/**
 * The key manager's two saved forms, apart from its behaviour: the JSON-safe state (hex, version 1,
 * or 2 with KEM pre-keys) and the binary `"AMK" 0x01` layout that stores seal (`0x02` with KEM
 * pre-keys: a manager that never made one saves exactly the bytes it saved before they existed). Both read into and write from
 * {@link KeyManagerContents}, the manager's private fields as plain data; the manager checks
 * nothing again. Pinned by `spec/vectors/own/key-manager.json`.
 */
import { E2EError, ErrorCode } from '../errors';
import { ByteReader, ByteWriter, isU32 } from '../crypto/byte-io';
import { ed25519Verify, fromHex, isUsableBytes, memzero, plainView, toHex, x25519PublicKey } from '../crypto';
import { readFields, typed } from '../crypto/input';
import type { OneTimePreKey, SignedPreKey } from './key-manager';
import { MAX_KEM_PRE_KEYS_IN_STATE, MAX_ONE_TIME_PRE_KEYS_IN_STATE, MAX_SIGNED_PRE_KEYS_IN_STATE } from '../limits';
import { mlkem768KeyPairFromSeed } from '../crypto/mlkem';
import { kemPreKeySignedBytes } from './kem-prekey';

/**
 * A KEM pre-key as the manager keeps and saves it: the 64-byte ML-KEM seed `d ‖ z` (secret; both
 * halves of the key pair are expanded from it when needed) and the identity's signature.
 */
export interface KemPreKeyRecord {
  readonly keyId: number;
  /** Secret: the key pair is expanded from it. */
  readonly seed: Uint8Array;
  readonly signature: Uint8Array;
  readonly lastResort: boolean;
  readonly createdAt: number;
}

/** The private side of a key manager, JSON-safe (hex): what a store keeps so it can respond after a restart. */
export interface KeyManagerState {
  /** 1, or 2 when the state holds KEM pre-keys (the three `kem` fields). */
  readonly version: 1 | 2;
  /** The Ed25519 identity secret key (seed ‖ public key, 64 bytes), hex. Secret. */
  readonly identitySecretKey: string;
  /** The signed pre-keys not yet retired: X25519 private key and signature in hex, creation time in ms. Secret. */
  readonly signedPreKeys: readonly { keyId: number; privateKey: string; signature: string; createdAt: number }[];
  /** The id of the current signed pre-key (the one bundles carry), or `null` before the first. */
  readonly currentSignedPreKeyId: number | null;
  /** The one-time pre-keys not used yet: X25519 private key in hex. Secret. */
  readonly oneTimePreKeys: readonly { keyId: number; privateKey: string }[];
  /** The id the next signed pre-key gets. */
  readonly nextSignedPreKeyId: number;
  /** The id the next one-time pre-key gets. */
  readonly nextOneTimePreKeyId: number;
  /** Version 2: the KEM pre-keys (seed in hex; the public key is recomputed and the signature checked when read). */
  readonly kemPreKeys?: readonly { keyId: number; seed: string; signature: string; lastResort: boolean; createdAt: number }[];
  /** Version 2: the id of the current last-resort KEM pre-key, or `null`. */
  readonly currentLastResortKemPreKeyId?: number | null;
  /** Version 2: the id the next KEM pre-key gets. */
  readonly nextKemPreKeyId?: number;
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
  readonly kemPreKeys: Map<number, KemPreKeyRecord>;
  readonly currentLastResortKemPreKeyId: number | null;
  readonly nextKemPreKeyId: number;
}

/** Whether `c` holds anything of the KEM pre-keys (then the saved forms are version 2). */
function hasKemState(c: KeyManagerContents): boolean {
  return c.kemPreKeys.size > 0 || c.nextKemPreKeyId > 0 || c.currentLastResortKemPreKeyId !== null;
}

/** Throws unless a 64-byte Ed25519 secret key's public half belongs to its seed (the manager's own check). */
export type IdentityCheck = (identitySecretKey: Uint8Array) => void;

const AMK = Uint8Array.of(0x41, 0x4d, 0x4b); // "AMK"
const AMK_VERSION = 0x01;
const AMK_VERSION_KEM = 0x02;
const SPK_ENTRY_BYTES = 4 + 32 + 32 + 64 + 8;
const OTK_ENTRY_BYTES = 4 + 32 + 32;
/** Id, last-resort flag, seed, signature, creation time: the key pair is expanded from the seed, not saved. */
const KEM_ENTRY_BYTES = 4 + 1 + 64 + 64 + 8;
/** Next KEM id, has-current, current id, count. */
const KEM_FIXED_BYTES = 8 + 1 + 4 + 4;
/** Magic and version, identity, two counters, has-current, current id, two counts. */
const AMK_FIXED_BYTES = 4 + 64 + 16 + 1 + 4 + 4 + 4;

/** Wipes the secrets of contents read so far (a failed read leaves none behind). */
function wipeContents(
  identitySecretKey: Uint8Array,
  spks: Map<number, SignedPreKey>,
  otks: Map<number, OneTimePreKey>,
  kems: Map<number, KemPreKeyRecord>,
): void {
  memzero(identitySecretKey);
  for (const s of spks.values()) memzero(s.keyPair.privateKey);
  for (const o of otks.values()) memzero(o.keyPair.privateKey);
  for (const k of kems.values()) memzero(k.seed);
}

/**
 * Adds a read entry to its map; a second entry with the same id is `MALFORMED_MESSAGE` (its secret
 * wiped by `wipe`): one would silently replace the other, and its secret would never be wiped.
 */
function putOnce<T>(map: Map<number, T>, keyId: number, entry: T, wipe: (e: T) => void, what: string): void {
  if (map.has(keyId)) {
    wipe(entry);
    throw new E2EError('MALFORMED_MESSAGE', `bad key manager state: duplicate ${what} id`);
  }
  map.set(keyId, entry);
}

/**
 * Throws `MALFORMED_MESSAGE` unless every id of `map` is below its counter: a key the manager would
 * make next must never land on a saved one. Checked for KEM pre-keys, whose form is new; older
 * forms may hold such states (the manager then refuses to make the colliding key, see `#takeId`).
 */
function assertBelowCounter(map: Map<number, unknown>, next: number, what: string): void {
  for (const id of map.keys()) {
    if (id >= next) throw new E2EError('MALFORMED_MESSAGE', `bad key manager state: a ${what} id is not below its counter`);
  }
}

/** A key-id counter as saved: an integer in [0, 2^32] (2^32 once every id was taken). */
function isCounter(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 2 ** 32;
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
  const classic = {
    version: 1 as const,
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
  if (!hasKemState(c)) return classic;
  return {
    ...classic,
    version: 2,
    kemPreKeys: [...c.kemPreKeys.values()].map((k) => ({
      keyId: k.keyId,
      seed: toHex(k.seed),
      signature: toHex(k.signature),
      lastResort: k.lastResort,
      createdAt: k.createdAt,
    })),
    currentLastResortKemPreKeyId: c.currentLastResortKemPreKeyId,
    nextKemPreKeyId: c.nextKemPreKeyId,
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
      'kemPreKeys',
      'currentLastResortKemPreKeyId',
      'nextKemPreKeyId',
    ] as const,
    'key manager state',
    'MALFORMED_MESSAGE',
  );
  if (state.version !== 1 && state.version !== 2) throw new E2EError('MALFORMED_MESSAGE', 'unknown key manager state version');
  const withKem = state.version === 2;
  if (
    !withKem &&
    (state.kemPreKeys !== undefined || state.currentLastResortKemPreKeyId !== undefined || state.nextKemPreKeyId !== undefined)
  ) {
    throw new E2EError('MALFORMED_MESSAGE', 'a version 1 key manager state has no KEM pre-keys');
  }
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
  const kemEntries = withKem ? list(state.kemPreKeys, MAX_KEM_PRE_KEYS_IN_STATE, 'KEM pre-keys') : [];
  const sk = checkedIdentity(hex(state.identitySecretKey, 64, 'identity secret key'), checkIdentity);
  const identityKeyEd = sk.subarray(32);
  const spks = new Map<number, SignedPreKey>();
  const otks = new Map<number, OneTimePreKey>();
  const kems = new Map<number, KemPreKeyRecord>();
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
      putOnce(
        spks,
        s.keyId,
        { keyId: s.keyId, keyPair, signature, createdAt: s.createdAt },
        (e) => memzero(e.keyPair.privateKey),
        'signed pre-key',
      );
    }
    for (const entry of otkEntries) {
      const o = readFields(entry, ['keyId', 'privateKey'] as const, 'one-time pre-key entry', 'MALFORMED_MESSAGE');
      if (!isU32(o.keyId)) throw new E2EError('MALFORMED_MESSAGE', 'bad one-time pre-key entry');
      const privateKey = hex(o.privateKey, 32, 'one-time pre-key');
      const otk = { keyId: o.keyId, keyPair: { privateKey, publicKey: x25519PublicKey(privateKey) } };
      putOnce(otks, o.keyId, otk, (e) => memzero(e.keyPair.privateKey), 'one-time pre-key');
    }
    for (const entry of kemEntries) {
      const k = readFields(
        entry,
        ['keyId', 'seed', 'signature', 'lastResort', 'createdAt'] as const,
        'KEM pre-key entry',
        'MALFORMED_MESSAGE',
      );
      if (!isU32(k.keyId) || typeof k.lastResort !== 'boolean' || typeof k.createdAt !== 'number' || !Number.isFinite(k.createdAt)) {
        throw new E2EError('MALFORMED_MESSAGE', 'bad KEM pre-key entry');
      }
      const signature = hex(k.signature, 64, 'KEM pre-key signature', 'BAD_SIGNATURE');
      const seed = hex(k.seed, 64, 'KEM pre-key seed');
      const pair = mlkem768KeyPairFromSeed(seed);
      memzero(pair.secretKey);
      if (!ed25519Verify(signature, kemPreKeySignedBytes(pair.publicKey), identityKeyEd)) {
        memzero(seed);
        throw new E2EError('BAD_SIGNATURE', 'stored KEM pre-key signature does not verify');
      }
      const kem = { keyId: k.keyId, seed, signature, lastResort: k.lastResort, createdAt: k.createdAt };
      putOnce(kems, k.keyId, kem, (e) => memzero(e.seed), 'KEM pre-key');
    }
    const current = state.currentSignedPreKeyId;
    if (current !== null && !(isU32(current) && spks.has(current))) {
      throw new E2EError('MALFORMED_MESSAGE', 'current signed pre-key missing');
    }
    if (!isU32(state.nextSignedPreKeyId) || !isU32(state.nextOneTimePreKeyId)) {
      throw new E2EError('MALFORMED_MESSAGE', 'bad key id counters');
    }
    const lastResort = withKem ? state.currentLastResortKemPreKeyId : null;
    if (lastResort !== null && !(isU32(lastResort) && kems.get(lastResort)?.lastResort === true)) {
      throw new E2EError('MALFORMED_MESSAGE', 'current last-resort KEM pre-key missing');
    }
    const nextKem = withKem ? state.nextKemPreKeyId : 0;
    if (!isU32(nextKem)) throw new E2EError('MALFORMED_MESSAGE', 'bad key id counters');
    assertBelowCounter(kems, nextKem, 'KEM pre-key');
    return {
      identitySecretKey: sk,
      signedPreKeys: spks,
      currentSignedPreKeyId: current,
      oneTimePreKeys: otks,
      nextSignedPreKeyId: state.nextSignedPreKeyId,
      nextOneTimePreKeyId: state.nextOneTimePreKeyId,
      kemPreKeys: kems,
      currentLastResortKemPreKeyId: lastResort,
      nextKemPreKeyId: nextKem,
    };
  } catch (e) {
    wipeContents(sk, spks, otks, kems);
    throw e;
  }
}

/**
 * The binary form: `"AMK" 0x01 ‖ identity secret key(64) ‖ f64be(next SPK id) ‖ f64be(next OTK id) ‖
 * u8(has current) ‖ u32be(current SPK id) ‖ u32be(n) ‖ n × (u32be id ‖ priv(32) ‖ pub(32) ‖ sig(64) ‖
 * f64be created) ‖ u32be(m) ‖ m × (u32be id ‖ priv(32) ‖ pub(32))`. Version `0x02` (a manager that
 * made KEM pre-keys) goes on: `‖ f64be(next KEM id) ‖ u8(has last resort) ‖ u32be(last-resort id) ‖
 * u32be(k) ‖ k × (u32be id ‖ u8(last resort) ‖ seed(64) ‖ sig(64) ‖ f64be created)`:
 * the key pair is expanded from the seed when needed, so a pool of 100 KEM pre-keys adds 14 kB, not 134 kB.
 * No secret is ever a string.
 */
export function keyManagerToBytes(c: KeyManagerContents): Uint8Array {
  const withKem = hasKemState(c);
  const kemBytes = withKem ? KEM_FIXED_BYTES + c.kemPreKeys.size * KEM_ENTRY_BYTES : 0;
  const w = new ByteWriter(AMK_FIXED_BYTES + c.signedPreKeys.size * SPK_ENTRY_BYTES + c.oneTimePreKeys.size * OTK_ENTRY_BYTES + kemBytes);
  w.bytes(AMK)
    .u8(withKem ? AMK_VERSION_KEM : AMK_VERSION)
    .bytes(c.identitySecretKey)
    .f64(c.nextSignedPreKeyId)
    .f64(c.nextOneTimePreKeyId);
  w.u8(c.currentSignedPreKeyId === null ? 0 : 1)
    .u32(c.currentSignedPreKeyId ?? 0)
    .u32(c.signedPreKeys.size);
  for (const k of c.signedPreKeys.values()) {
    w.u32(k.keyId).bytes(k.keyPair.privateKey).bytes(k.keyPair.publicKey).bytes(k.signature).f64(k.createdAt);
  }
  w.u32(c.oneTimePreKeys.size);
  for (const k of c.oneTimePreKeys.values()) w.u32(k.keyId).bytes(k.keyPair.privateKey).bytes(k.keyPair.publicKey);
  if (withKem) {
    const lastResort = c.currentLastResortKemPreKeyId;
    w.f64(c.nextKemPreKeyId)
      .u8(lastResort === null ? 0 : 1)
      .u32(lastResort ?? 0)
      .u32(c.kemPreKeys.size);
    for (const k of c.kemPreKeys.values()) {
      w.u32(k.keyId)
        .u8(k.lastResort ? 1 : 0)
        .bytes(k.seed)
        .bytes(k.signature)
        .f64(k.createdAt);
    }
  }
  return w.finish();
}

/**
 * The contents of {@link keyManagerToBytes}' bytes; `MALFORMED_MESSAGE` on any defect, `BAD_SIGNATURE`
 * if a stored signed pre-key signature does not verify. The bytes are trusted to be our own (the
 * stores authenticate them): public keys are not recomputed, and KEM pre-key signatures (checked
 * by every initiator) are not re-verified. Every key is a copy: the caller may reuse or wipe
 * `input` afterwards.
 */
export function keyManagerFromBytes(input: Uint8Array, checkIdentity: IdentityCheck): KeyManagerContents {
  const bad = (why: string): E2EError => new E2EError('MALFORMED_MESSAGE', `bad key manager state: ${why}`);
  if (!isUsableBytes(input) || input.length < AMK_FIXED_BYTES) throw bad('too short');
  // A plain view: the reader's copies are then real copies (a Node Buffer's slice would be a view).
  const r = new ByteReader(plainView(input), 'key manager state');
  r.expect(AMK, 'not a key manager state');
  const version = r.u8();
  if (version !== AMK_VERSION && version !== AMK_VERSION_KEM) throw bad(`unknown version ${version}`);
  const sk = checkedIdentity(r.bytes(64), checkIdentity);
  const identityKeyEd = sk.subarray(32);
  const spks = new Map<number, SignedPreKey>();
  const otks = new Map<number, OneTimePreKey>();
  const kems = new Map<number, KemPreKeyRecord>();
  try {
    const nextSpk = r.f64();
    const nextOtk = r.f64();
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
      putOnce(spks, keyId, { keyId, keyPair, signature, createdAt }, (e) => memzero(e.keyPair.privateKey), 'signed pre-key');
    }
    const nOtk = r.u32();
    const otkBytes = nOtk * OTK_ENTRY_BYTES;
    if (version === AMK_VERSION ? otkBytes !== r.remaining : otkBytes + KEM_FIXED_BYTES > r.remaining) throw bad('one-time pre-keys');
    for (let i = 0; i < nOtk; i++) {
      const keyId = r.u32();
      const otk = { keyId, keyPair: { privateKey: r.bytes(32), publicKey: r.bytes(32) } };
      putOnce(otks, keyId, otk, (e) => memzero(e.keyPair.privateKey), 'one-time pre-key');
    }
    let nextKem = 0;
    let lastResort: number | null = null;
    if (version === AMK_VERSION_KEM) {
      nextKem = r.f64();
      if (!isCounter(nextKem)) throw bad('key id counters');
      const hasLastResort = r.u8();
      const lastResortId = r.u32();
      const nKem = r.u32();
      if (hasLastResort > 1 || nKem > MAX_KEM_PRE_KEYS_IN_STATE || nKem * KEM_ENTRY_BYTES !== r.remaining) throw bad('KEM pre-keys');
      for (let i = 0; i < nKem; i++) {
        const keyId = r.u32();
        const flag = r.u8();
        const seed = r.bytes(64);
        const record = {
          keyId,
          seed,
          signature: r.bytes(64),
          lastResort: flag === 1,
          createdAt: r.f64(),
        };
        putOnce(kems, keyId, record, (e) => memzero(e.seed), 'KEM pre-key'); // before the checks: a failure wipes the seed with the rest
        if (flag > 1 || !Number.isFinite(record.createdAt)) throw bad('KEM pre-key entry');
      }
      if (hasLastResort === 1 && kems.get(lastResortId)?.lastResort !== true) throw bad('current last-resort KEM pre-key missing');
      lastResort = hasLastResort === 1 ? lastResortId : null;
    }
    r.end();
    if (hasCurrent === 1 && !spks.has(current)) throw bad('current signed pre-key missing');
    assertBelowCounter(kems, nextKem, 'KEM pre-key');
    return {
      identitySecretKey: sk,
      signedPreKeys: spks,
      currentSignedPreKeyId: hasCurrent === 1 ? current : null,
      oneTimePreKeys: otks,
      nextSignedPreKeyId: nextSpk,
      nextOneTimePreKeyId: nextOtk,
      kemPreKeys: kems,
      currentLastResortKemPreKeyId: lastResort,
      nextKemPreKeyId: nextKem,
    };
  } catch (e) {
    wipeContents(sk, spks, otks, kems);
    throw e;
  }
}
