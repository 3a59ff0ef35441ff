/**
 * The Double Ratchet (Signal specification, with PROTOCOL.md's KDFs and bytes).
 *
 * Decryption is transactional without copying the state: everything a message would change is
 * computed into staged values (a working chain key, new skipped keys, the next root and chain
 * keys) and committed only after the AEAD tag verified. A failed decrypt — bad tag, wrong AD,
 * malformed bytes, forged or low-order ratchet key, a gap above `maxSkip` — throws a typed error and
 * leaves the state exactly as it was; a skipped key is deleted only after its message authenticated.
 */
import { E2EError } from '../errors';
import { MAX_COUNTER, MAX_PLAINTEXT_BYTES } from '../limits';
// Imported from the defining modules, not the '../crypto' barrel: its re-export getters showed up
// in profiles of the per-message path.
import { AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES } from '../crypto/aead';
import { assertBytes, assertKey, memzero, readU32BE, toHex } from '../crypto/bytes';
import {
  ENVELOPE_CIPHERTEXT_AT, ENVELOPE_DH_AT, ENVELOPE_NONCE_AT, ENVELOPE_N_AT, ENVELOPE_PN_AT, assertEnvelope, writeEnvelopePrefix,
} from '../crypto/envelope-layout';
import { openMessage, openMessageWithKey, sealMessage } from '../crypto/message-aead';
import { fillRandomBytes } from '../crypto/random';
import { chainKeyStep } from '../crypto/hmac';
import { X25519KeyPair, assertCanonicalX25519PublicKey, isCanonicalX25519At, x25519, x25519KeyPair } from '../crypto/x25519';
import { kdfRootKey } from './kdf';
import { EncryptedMessage } from './message';
import { SkippedKey } from './skipped-keys';
import { MAX_RETIRED_REMOTE_KEYS, RatchetLimits, RatchetState, resolveLimits } from './state';
import { isInstance, readFields, readOptions, typed } from '../crypto/input';

const EMPTY = new Uint8Array(0);

/** Largest associated data the ratchet accepts (1 MiB); `SecureChannel` allows less. */
export const MAX_RATCHET_AD_BYTES = 1024 * 1024;

function assertAd(ad: unknown): asserts ad is Uint8Array {
  assertBytes(ad, 'associated data');
  if (ad.length > MAX_RATCHET_AD_BYTES) throw new E2EError('INVALID_ARGUMENT', 'associated data above 1 MiB');
}

/** The option names of {@link RatchetOptions}. */
const RATCHET_OPTION_KEYS = ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now'] as const;

/** The clock option: a function, or `undefined` for `Date.now`; `INVALID_ARGUMENT` otherwise. */
function resolveClock(now: unknown): () => number {
  if (now === undefined || now === null) return Date.now;
  if (typeof now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function returning milliseconds');
  return now as () => number;
}

/**
 * Checks ratchet options (limits and clock) without using them, so a caller can refuse bad
 * options before it spends anything (a one-time pre-key); `INVALID_ARGUMENT` on a bad value.
 */
export function checkRatchetOptions(opts: unknown): void {
  const f = readOptions(opts, RATCHET_OPTION_KEYS, 'ratchet options');
  resolveLimits(f as Partial<RatchetLimits>);
  resolveClock(f.now);
}

/** Options of a ratchet: its limits and, for tests, its clock. */
export interface RatchetOptions extends Partial<RatchetLimits> {
  /** Milliseconds since the epoch; used to expire skipped keys (default `Date.now`). */
  now?: () => number;
}

/** An incoming envelope and its header counters (the ratchet key is read in place). */
interface Incoming {
  env: Uint8Array;
  pn: number;
  n: number;
}

/** True when the 32 bytes of `env` at `offset` equal `key` (public values: no need for constant time). */
function keyAt(env: Uint8Array, offset: number, key: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (env[offset + i] !== key[i]) return false;
  return true;
}

function parse(message: EncryptedMessage | Uint8Array): Incoming {
  // An EncryptedMessage is decrypted through its envelope: one code path, the header bytes as sent.
  // isView first (it runs no Proxy trap, and bytes are the common case); an object made from
  // Uint8Array.prototype without a buffer is no view.
  const env: unknown = ArrayBuffer.isView(message) ? message : isInstance(message, EncryptedMessage) ? message.serialize() : message;
  if (!ArrayBuffer.isView(env) || !(env instanceof Uint8Array)) {
    throw new E2EError('MALFORMED_MESSAGE', 'message must be an EncryptedMessage or its serialized bytes');
  }
  assertEnvelope(env);
  return { env, pn: readU32BE(env, ENVELOPE_PN_AT), n: readU32BE(env, ENVELOPE_N_AT) };
}

/** One Double Ratchet session. */
export class DoubleRatchet {
  /** The session state (secrets: persist it encrypted). */
  readonly state: RatchetState;
  readonly #now: () => number;
  // Scratch for the per-message keys, so the hot path allocates nothing but its output.
  readonly #nextChainKey = new Uint8Array(32);
  readonly #nonce = new Uint8Array(CHACHA20_POLY1305_NONCE_BYTES);
  #wiped = false;
  // Hex of the peer's current ratchet key, the skipped-key map's key for its chain (one string per chain).
  #remoteHexOf: Uint8Array | null = null;
  #remoteHexValue = '';

  /** A ratchet over an existing (e.g. restored) state; `opts.now` is its clock (default `Date.now`). */
  constructor(state: RatchetState, opts: { now?: () => number } = {}) {
    if (!isInstance(state, RatchetState)) throw new E2EError('INVALID_ARGUMENT', 'state must be a RatchetState');
    this.state = state;
    this.#now = resolveClock(readOptions(opts, ['now'] as const, 'ratchet options').now);
  }

  /**
   * The initiator's ratchet: `DHs` = new pair, `(RK, CKs) = KDF_RK(SK, DH(DHs, SPK_B))`, `DHr = SPK_B`.
   * Everything is checked before any work (`INVALID_KEY`, `INVALID_ARGUMENT`); the state copies what it keeps.
   * @example
   * const alice = DoubleRatchet.initSender({ sharedSecret: x3dh.sharedSecret, remoteDhPublic: bundle.signedPreKey });
   */
  static initSender(p: { sharedSecret: Uint8Array; remoteDhPublic: Uint8Array } & RatchetOptions): DoubleRatchet {
    const f = readFields(p, ['sharedSecret', 'remoteDhPublic', ...RATCHET_OPTION_KEYS] as const, 'initSender parameters');
    assertKey(f.sharedSecret, 'shared secret', 32);
    assertCanonicalX25519PublicKey(f.remoteDhPublic, 'remote ratchet public key');
    const limits = resolveLimits(f as Partial<RatchetLimits>);
    const now = resolveClock(f.now);
    const dhSelf = x25519KeyPair();
    let dh: Uint8Array | null = null;
    let next: { rootKey: Uint8Array; chainKey: Uint8Array } | null = null;
    try {
      dh = x25519(dhSelf.privateKey, f.remoteDhPublic);
      next = kdfRootKey(f.sharedSecret, dh);
      // The state copies what it keeps (the caller's remoteDhPublic included); ours are wiped.
      const state = new RatchetState({
        dhSelf, dhRemote: f.remoteDhPublic, rootKey: next.rootKey, chainKeySend: next.chainKey, chainKeyRecv: null, limits,
      });
      return new DoubleRatchet(state, { now });
    } finally {
      memzero(dhSelf.privateKey);
      memzero(dh);
      memzero(next?.rootKey);
      memzero(next?.chainKey);
    }
  }

  /**
   * The responder's ratchet: `DHs` = its signed pre-key pair, `RK = SK`; it can send only after
   * its first message arrived. The key pair and the secret are copied (closing the session does
   * not wipe the key manager's signed pre-key, and the caller may wipe its arrays).
   */
  static initReceiver(p: { sharedSecret: Uint8Array; dhKeyPair: X25519KeyPair | readonly [Uint8Array, Uint8Array] } & RatchetOptions): DoubleRatchet {
    const f = readFields(p, ['sharedSecret', 'dhKeyPair', ...RATCHET_OPTION_KEYS] as const, 'initReceiver parameters');
    assertKey(f.sharedSecret, 'shared secret', 32);
    const pair = typed(() => {
      const kp = f.dhKeyPair as X25519KeyPair | readonly [Uint8Array, Uint8Array];
      if (Array.isArray(kp)) return { privateKey: kp[0] as unknown, publicKey: kp[1] as unknown };
      return readFields(kp, ['privateKey', 'publicKey'] as const, 'dhKeyPair', 'INVALID_KEY');
    }, 'INVALID_KEY', 'dhKeyPair');
    assertKey(pair.privateKey, 'ratchet private key', 32);
    assertCanonicalX25519PublicKey(pair.publicKey, 'ratchet public key');
    const limits = resolveLimits(f as Partial<RatchetLimits>);
    const now = resolveClock(f.now);
    const state = new RatchetState({
      dhSelf: { privateKey: pair.privateKey, publicKey: pair.publicKey },
      dhRemote: null, rootKey: f.sharedSecret, chainKeySend: null, chainKeyRecv: null, limits,
    });
    return new DoubleRatchet(state, { now });
  }

  /**
   * Encrypts `plaintext` (at most 16 MiB) with associated data `ad ‖ header`. Throws
   * `INVALID_STATE` for a responder that has not received yet, `COUNTER_EXHAUSTED` at 2^32 - 1
   * messages in one chain, `MESSAGE_TOO_LARGE` above the limit.
   */
  encrypt(plaintext: Uint8Array, ad: Uint8Array = EMPTY): EncryptedMessage {
    this.#assertUsable();
    assertBytes(plaintext, 'plaintext');
    assertAd(ad);
    if (plaintext.length > MAX_PLAINTEXT_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `plaintext above ${MAX_PLAINTEXT_BYTES} bytes`);
    const st = this.state;
    const ck = st.chainKeySend;
    if (ck === null) throw new E2EError('INVALID_STATE', 'this side cannot send before it has received a message');
    if (st.sendMessageNumber >= MAX_COUNTER) throw new E2EError('COUNTER_EXHAUSTED', 'sending chain exhausted');
    const env = new Uint8Array(ENVELOPE_CIPHERTEXT_AT + plaintext.length + AEAD_TAG_BYTES);
    writeEnvelopePrefix(env, st.dhSelf.publicKey, st.previousSendChainLength, st.sendMessageNumber);
    fillRandomBytes(this.#nonce);
    env.set(this.#nonce, ENVELOPE_NONCE_AT);
    sealMessage(ck, env, plaintext, ad);
    st.sendMessageNumber++;
    return EncryptedMessage.fromTrustedEnvelope(env);
  }

  /**
   * Decrypts a message (an `EncryptedMessage` or its serialized bytes) with associated data
   * `ad ‖ header`. Errors: `DECRYPT_FAILED` (does not authenticate), `DUPLICATE_MESSAGE` (already
   * decrypted, or its skipped key expired), `TOO_MANY_SKIPPED`, `MALFORMED_MESSAGE`. On any error
   * the state is unchanged.
   */
  decrypt(message: EncryptedMessage | Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    this.#assertUsable();
    assertAd(ad);
    const m = parse(message);
    if (m.n >= MAX_COUNTER) throw new E2EError('MALFORMED_MESSAGE', 'message number out of range');
    const st = this.state;
    // Raw comparisons below equal comparisons of canonical forms: every remembered ratchet key is
    // canonical (checked on init and restore, and a non-canonical one never starts a chain).
    const onCurrentChain = st.dhRemote !== null && keyAt(m.env, ENVELOPE_DH_AT, st.dhRemote);
    // Hex of a ratchet key that is not the current one, made at most once per message.
    let otherHex = '';

    if (st.skippedKeys.size > 0) {
      const now = this.#now();
      const chain = onCurrentChain ? this.#remoteHex() : (otherHex = toHex(m.env.subarray(ENVELOPE_DH_AT, ENVELOPE_DH_AT + 32)));
      const skipped = st.skippedKeys.get(chain, m.n);
      if (skipped && !this.#expired(skipped, now)) {
        const pt = openMessageWithKey(skipped.messageKey, m.env, ad);
        if (pt === null) throw new E2EError('DECRYPT_FAILED', 'message does not authenticate');
        st.skippedKeys.delete(chain, m.n);
        this.#expireSkipped(now);
        return pt;
      }
    }

    if (onCurrentChain) return this.#decryptCurrentChain(m, ad);
    if (otherHex === '' && (st.retiredRemoteKeys.length > 0 || st.skippedKeys.size > 0)) otherHex = toHex(m.env.subarray(ENVELOPE_DH_AT, ENVELOPE_DH_AT + 32));
    if (otherHex !== '' && (st.retiredRemoteKeys.includes(otherHex) || st.skippedKeys.hasChain(otherHex))) {
      // An old chain (or a peer reusing an old ratchet key): never a new DH ratchet step.
      throw new E2EError('DUPLICATE_MESSAGE', 'message from an old chain was already decrypted (or its key expired)');
    }
    return this.#decryptNewChain(m, ad, this.#now());
  }

  /** Wipes every secret of the session; the ratchet is unusable afterwards. */
  wipe(): void {
    this.state.wipe();
    memzero(this.#nextChainKey);
    this.#wiped = true;
  }

  #decryptCurrentChain(m: Incoming, ad: Uint8Array): Uint8Array {
    const st = this.state;
    const ckr = st.chainKeyRecv;
    if (ckr === null) throw new E2EError('DECRYPT_FAILED', 'no receiving chain for this ratchet key');
    if (m.n < st.recvMessageNumber) {
      throw new E2EError('DUPLICATE_MESSAGE', 'message was already decrypted (or its skipped key expired)');
    }
    if (m.n - st.recvMessageNumber > st.limits.maxSkip) {
      throw new E2EError('TOO_MANY_SKIPPED', `message skips more than ${st.limits.maxSkip} keys`);
    }
    if (m.n === st.recvMessageNumber) {
      // The common case: in order. Nothing staged but the next chain key, in scratch.
      const pt = openMessage(ckr, this.#nextChainKey, m.env, ad);
      if (pt === null) throw new E2EError('DECRYPT_FAILED', 'message does not authenticate');
      ckr.set(this.#nextChainKey);
      memzero(this.#nextChainKey);
      st.recvMessageNumber = m.n + 1;
      if (st.skippedKeys.size > 0) this.#expireSkipped(this.#now());
      return pt;
    }
    const now = this.#now();
    const staged: SkippedKey[] = [];
    const work = Uint8Array.from(ckr);
    this.#stageSkipped(work, st.recvMessageNumber, m.n, st.dhRemote as Uint8Array, now, staged);
    const pt = openMessage(work, work, m.env, ad);
    if (pt === null) {
      memzero(work);
      staged.forEach((k) => memzero(k.messageKey));
      throw new E2EError('DECRYPT_FAILED', 'message does not authenticate');
    }
    ckr.set(work);
    memzero(work);
    st.recvMessageNumber = m.n + 1;
    this.#commitSkipped(staged, now);
    return pt;
  }

  #decryptNewChain(m: Incoming, ad: Uint8Array, now: number): Uint8Array {
    const st = this.state;
    const { maxSkip } = st.limits;
    const oldChainGap = st.chainKeyRecv !== null && m.pn > st.recvMessageNumber ? m.pn - st.recvMessageNumber : 0;
    if (oldChainGap > maxSkip || m.n > maxSkip) {
      throw new E2EError('TOO_MANY_SKIPPED', `message skips more than ${maxSkip} keys`);
    }
    const staged: SkippedKey[] = [];
    let dh1: Uint8Array | null = null;
    let next: { rootKey: Uint8Array; chainKey: Uint8Array } | null = null;
    let committed = false;
    try {
      if (oldChainGap > 0) {
        const work = Uint8Array.from(st.chainKeyRecv as Uint8Array);
        this.#stageSkipped(work, st.recvMessageNumber, m.pn, st.dhRemote as Uint8Array, now, staged);
        memzero(work);
      }
      // Our own copy (a Buffer's slice would be a view of the caller's memory).
      const remote = Uint8Array.from(m.env.subarray(ENVELOPE_DH_AT, ENVELOPE_DH_AT + 32));
      try {
        dh1 = x25519(st.dhSelf.privateKey, remote);
      } catch {
        throw new E2EError('MALFORMED_MESSAGE', 'invalid (low-order) ratchet key in header');
      }
      // Bit 255 set or ≥ p: the same curve key as its canonical form, so it could be a remembered
      // (old or current) key in disguise. No honest sender makes one; it never starts a chain.
      if (!isCanonicalX25519At(remote, 0)) throw new E2EError('DECRYPT_FAILED', 'non-canonical ratchet key in header');
      next = kdfRootKey(st.rootKey, dh1);
      this.#stageSkipped(next.chainKey, 0, m.n, remote, now, staged);
      const pt = openMessage(next.chainKey, next.chainKey, m.env, ad);
      if (pt === null) throw new E2EError('DECRYPT_FAILED', 'message does not authenticate');

      // Authentic: finish the DH ratchet step and commit.
      const dhSelf = x25519KeyPair();
      const dh2 = x25519(dhSelf.privateKey, remote);
      const sending = kdfRootKey(next.rootKey, dh2);
      memzero(dh2);
      memzero(next.rootKey);
      if (st.dhRemote !== null) {
        st.retiredRemoteKeys.push(toHex(st.dhRemote));
        if (st.retiredRemoteKeys.length > MAX_RETIRED_REMOTE_KEYS) st.retiredRemoteKeys.shift();
      }
      memzero(st.dhSelf.privateKey);
      memzero(st.rootKey);
      memzero(st.chainKeySend);
      memzero(st.chainKeyRecv);
      st.previousSendChainLength = st.sendMessageNumber;
      st.sendMessageNumber = 0;
      st.recvMessageNumber = m.n + 1;
      st.dhRemote = remote;
      st.dhSelf = dhSelf;
      st.rootKey = sending.rootKey;
      st.chainKeySend = sending.chainKey;
      st.chainKeyRecv = next.chainKey;
      this.#commitSkipped(staged, now);
      committed = true;
      return pt;
    } finally {
      memzero(dh1);
      if (!committed) {
        if (next) {
          memzero(next.rootKey);
          memzero(next.chainKey);
        }
        staged.forEach((k) => memzero(k.messageKey));
      }
    }
  }

  /** Advances `chainKey` (in place) from message `from` to `until`, staging the skipped keys. */
  #stageSkipped(chainKey: Uint8Array, from: number, until: number, dh: Uint8Array, now: number, staged: SkippedKey[]): void {
    for (let n = from; n < until; n++) {
      const messageKey = new Uint8Array(32);
      chainKeyStep(chainKey, messageKey, chainKey);
      staged.push({ dhPublicKey: dh, messageNumber: n, messageKey, storedAt: now });
    }
  }

  #commitSkipped(staged: SkippedKey[], now: number): void {
    const st = this.state;
    let chain = '';
    let chainKey: Uint8Array | null = null;
    for (const k of staged) {
      if (k.dhPublicKey !== chainKey) {
        chainKey = k.dhPublicKey;
        chain = toHex(chainKey);
      }
      st.skippedKeys.add(k, st.limits.maxSkippedKeys, chain);
    }
    this.#expireSkipped(now);
  }

  #remoteHex(): string {
    const dh = this.state.dhRemote as Uint8Array;
    if (this.#remoteHexOf !== dh) {
      this.#remoteHexOf = dh;
      this.#remoteHexValue = toHex(dh);
    }
    return this.#remoteHexValue;
  }

  #expired(k: SkippedKey, now: number): boolean {
    const age = this.state.limits.skippedKeyMaxAgeMs;
    return age !== null && k.storedAt < now - age;
  }

  #expireSkipped(now: number): void {
    const age = this.state.limits.skippedKeyMaxAgeMs;
    if (age !== null) this.state.skippedKeys.expireBefore(now - age);
  }

  #assertUsable(): void {
    if (this.#wiped) throw new E2EError('CHANNEL_CLOSED', 'this ratchet was wiped');
  }
}
