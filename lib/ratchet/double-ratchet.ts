/**
 * The Double Ratchet (Signal specification, with PROTOCOL.md's KDFs and bytes).
 *
 * Decryption is transactional without copying the state, in three stages: find the message key
 * (TrySkippedMessageKeys, the current chain, or DHRatchet on a new one), computing everything the
 * message would change into staged values (a working chain key, new skipped keys, the next root
 * and chain keys); open; commit only after the AEAD tag verified (`receiver-chains.ts` keeps the
 * peer's chains and their skipped keys). A failed decrypt — bad tag, wrong AD,
 * malformed bytes, forged or low-order ratchet key, a gap above `maxSkip` — throws a typed error and
 * leaves the state exactly as it was; a skipped key is deleted only after its message authenticated.
 */
import { E2EError } from '../errors';
import * as limits from '../limits';
// Imported from the defining modules, not the '../crypto' barrel: its re-export getters showed up
// in profiles of the per-message path.
import * as aead from '../crypto/aead';
import { assertBytes, assertKey, memzero, readU32BE } from '../crypto/bytes';
import * as layout from '../crypto/envelope-layout';
import { openMessage, openMessageWithKey, sealMessage } from '../crypto/message-aead';
import { fillRandomBytes } from '../crypto/random';
import { X25519KeyPair, assertCanonicalX25519PublicKey, isCanonicalX25519At, x25519, x25519KeyPair } from '../crypto/x25519';
import { kdfRootKey } from './kdf';
import { EncryptedMessage } from './message';
import { ReceiverChains } from './receiver-chains';
import { SkippedKey } from './skipped-keys';
import { RatchetLimits, RatchetState, resolveLimits } from './state';
import { isInstance, readFields, readOptions, typed } from '../crypto/input';

// The constants of the per-message path, read once: a bundler's CommonJS output (tsx, esbuild)
// makes every imported binding a getter, and these are read several times per message.
const { MAX_COUNTER, MAX_PLAINTEXT_BYTES, MAX_RATCHET_AD_BYTES } = limits;
const { AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES } = aead;
const { ENVELOPE_CIPHERTEXT_AT, ENVELOPE_DH_AT, ENVELOPE_NONCE_AT, ENVELOPE_N_AT, ENVELOPE_PN_AT, assertEnvelope, writeEnvelopePrefix } =
  layout;

const EMPTY = new Uint8Array(0);

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

/** Staged keys of an in-order message: none (shared, never written). */
const NONE_STAGED: readonly SkippedKey[] = Object.freeze([]);

/**
 * Where the key of an incoming message was found (vodozemac's `find_message_key` result), with
 * everything finding it computed, staged until the message authenticates.
 */
type FoundKey =
  /** A kept skipped key of chain `chain`. */
  | { readonly kind: 'skipped'; readonly chain: string; readonly key: SkippedKey }
  /** The current chain: `chainKey` is CKr (`own` false) or our advanced copy of it (`own` true). */
  | { readonly kind: 'current'; readonly chainKey: Uint8Array; readonly staged: readonly SkippedKey[]; readonly own: boolean }
  /** A new chain (DHRatchet): the peer's new key, the next root key and the new chain's key at message N. */
  | {
      readonly kind: 'new';
      readonly remote: Uint8Array;
      readonly rootKey: Uint8Array;
      readonly chainKey: Uint8Array;
      readonly staged: readonly SkippedKey[];
    };

/** One Double Ratchet session. */
export class DoubleRatchet {
  /** The session state (secrets: persist it encrypted). */
  readonly state: RatchetState;
  readonly #now: () => number;
  // Scratch for the per-message keys, so the hot path allocates nothing but its output.
  readonly #nextChainKey = new Uint8Array(32);
  readonly #nonce = new Uint8Array(CHACHA20_POLY1305_NONCE_BYTES);
  readonly #chains: ReceiverChains;
  #wiped = false;

  /** A ratchet over an existing (e.g. restored) state; `opts.now` is its clock (default `Date.now`). */
  constructor(state: RatchetState, opts: { now?: () => number } = {}) {
    if (!isInstance(state, RatchetState)) throw new E2EError('INVALID_ARGUMENT', 'state must be a RatchetState');
    this.state = state;
    this.#chains = new ReceiverChains(state);
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
        dhSelf,
        dhRemote: f.remoteDhPublic,
        rootKey: next.rootKey,
        chainKeySend: next.chainKey,
        chainKeyRecv: null,
        limits,
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
  static initReceiver(
    p: { sharedSecret: Uint8Array; dhKeyPair: X25519KeyPair | readonly [Uint8Array, Uint8Array] } & RatchetOptions,
  ): DoubleRatchet {
    const f = readFields(p, ['sharedSecret', 'dhKeyPair', ...RATCHET_OPTION_KEYS] as const, 'initReceiver parameters');
    assertKey(f.sharedSecret, 'shared secret', 32);
    const pair = typed(
      () => {
        const kp = f.dhKeyPair as X25519KeyPair | readonly [Uint8Array, Uint8Array];
        if (Array.isArray(kp)) return { privateKey: kp[0] as unknown, publicKey: kp[1] as unknown };
        return readFields(kp, ['privateKey', 'publicKey'] as const, 'dhKeyPair', 'INVALID_KEY');
      },
      'INVALID_KEY',
      'dhKeyPair',
    );
    assertKey(pair.privateKey, 'ratchet private key', 32);
    assertCanonicalX25519PublicKey(pair.publicKey, 'ratchet public key');
    const limits = resolveLimits(f as Partial<RatchetLimits>);
    const now = resolveClock(f.now);
    const state = new RatchetState({
      dhSelf: { privateKey: pair.privateKey, publicKey: pair.publicKey },
      dhRemote: null,
      rootKey: f.sharedSecret,
      chainKeySend: null,
      chainKeyRecv: null,
      limits,
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
   *
   * Three stages, as vodozemac stages them: find the message key (staging, not applying, whatever
   * finding it computes), open the message with it, and commit only if it authenticated.
   */
  decrypt(message: EncryptedMessage | Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    this.#assertUsable();
    assertAd(ad);
    const m = parse(message);
    if (m.n >= MAX_COUNTER) throw new E2EError('MALFORMED_MESSAGE', 'message number out of range');
    const now = this.#now();
    const found = this.#findMessageKey(m, now);
    let pt: Uint8Array | null = null;
    try {
      pt =
        found.kind === 'skipped'
          ? openMessageWithKey(found.key.messageKey, m.env, ad)
          : openMessage(found.chainKey, this.#nextChainKey, m.env, ad);
    } finally {
      if (pt === null) this.#discard(found);
    }
    if (pt === null) throw new E2EError('DECRYPT_FAILED', 'message does not authenticate');
    this.#commit(found, m, now);
    return pt;
  }

  /** Wipes every secret of the session; the ratchet is unusable afterwards. */
  wipe(): void {
    this.state.wipe();
    memzero(this.#nextChainKey);
    this.#wiped = true;
  }

  /**
   * Finds the key of message `m` without changing the state: a skipped key (TrySkippedMessageKeys),
   * else the current chain, else — unless the key is an old chain's (`DUPLICATE_MESSAGE`) — a new
   * chain (DHRatchet). Throws the message's error when it has no key.
   */
  #findMessageKey(m: Incoming, now: number): FoundKey {
    const st = this.state;
    const chains = this.#chains;
    const current = chains.isCurrent(m.env, ENVELOPE_DH_AT);
    // The chain's id (hex) is made at most once per message, and only when a lookup needs it (an
    // in-order message on the current chain with no skipped keys needs none).
    const dh = (): Uint8Array => m.env.subarray(ENVELOPE_DH_AT, ENVELOPE_DH_AT + 32);
    let chain = '';
    if (st.skippedKeys.size > 0) {
      chain = chains.chainId(dh(), current);
      const key = chains.trySkippedMessageKey(chain, m.n, now);
      if (key !== undefined) return { kind: 'skipped', chain, key };
    }
    if (current) return this.#findOnCurrentChain(m, now);
    if (chain === '' && chains.remembersOldChains) chain = chains.chainId(dh(), false);
    if (chain !== '' && chains.isOld(chain)) {
      throw new E2EError('DUPLICATE_MESSAGE', 'message from an old chain was already decrypted (or its key expired)');
    }
    return this.#findOnNewChain(m, now);
  }

  /** The current receiving chain: message `m.n`'s chain key, the keys it passes over staged (SkipMessageKeys). */
  #findOnCurrentChain(m: Incoming, now: number): FoundKey {
    const st = this.state;
    const ckr = st.chainKeyRecv;
    if (ckr === null) throw new E2EError('DECRYPT_FAILED', 'no receiving chain for this ratchet key');
    if (m.n < st.recvMessageNumber) {
      throw new E2EError('DUPLICATE_MESSAGE', 'message was already decrypted (or its skipped key expired)');
    }
    if (m.n - st.recvMessageNumber > st.limits.maxSkip) {
      throw new E2EError('TOO_MANY_SKIPPED', `message skips more than ${st.limits.maxSkip} keys`);
    }
    // In order (the common case): the chain key itself, nothing staged.
    if (m.n === st.recvMessageNumber) return { kind: 'current', chainKey: ckr, staged: NONE_STAGED, own: false };
    const staged: SkippedKey[] = [];
    const work = Uint8Array.from(ckr);
    ReceiverChains.skipMessageKeys(work, st.recvMessageNumber, m.n, st.dhRemote as Uint8Array, now, staged);
    return { kind: 'current', chainKey: work, staged, own: true };
  }

  /**
   * DHRatchet, staged: the old chain's remaining keys (SkipMessageKeys up to PN), the new receiving
   * chain from `KDF_RK(RK, DH(DHs, header key))`, and its keys up to `m.n`. Nothing is applied yet.
   */
  #findOnNewChain(m: Incoming, now: number): FoundKey {
    const st = this.state;
    const { maxSkip } = st.limits;
    const oldChainGap = st.chainKeyRecv !== null && m.pn > st.recvMessageNumber ? m.pn - st.recvMessageNumber : 0;
    if (oldChainGap > maxSkip || m.n > maxSkip) {
      throw new E2EError('TOO_MANY_SKIPPED', `message skips more than ${maxSkip} keys`);
    }
    const staged: SkippedKey[] = [];
    let dh1: Uint8Array | null = null;
    let next: { rootKey: Uint8Array; chainKey: Uint8Array } | null = null;
    try {
      if (oldChainGap > 0) {
        const work = Uint8Array.from(st.chainKeyRecv as Uint8Array);
        ReceiverChains.skipMessageKeys(work, st.recvMessageNumber, m.pn, st.dhRemote as Uint8Array, now, staged);
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
      ReceiverChains.skipMessageKeys(next.chainKey, 0, m.n, remote, now, staged);
      const found: FoundKey = { kind: 'new', remote, rootKey: next.rootKey, chainKey: next.chainKey, staged };
      next = null;
      return found;
    } catch (e) {
      if (next) {
        memzero(next.rootKey);
        memzero(next.chainKey);
      }
      ReceiverChains.discard(staged);
      throw e;
    } finally {
      memzero(dh1);
    }
  }

  /** Wipes what finding a key staged, for a message that did not authenticate. */
  #discard(found: FoundKey): void {
    if (found.kind === 'skipped') return;
    memzero(this.#nextChainKey);
    ReceiverChains.discard(found.staged);
    if (found.kind === 'new') memzero(found.rootKey);
    if (found.kind === 'new' || found.own) memzero(found.chainKey);
  }

  /** Applies what finding the key of an authentic message staged. */
  #commit(found: FoundKey, m: Incoming, now: number): void {
    const st = this.state;
    const chains = this.#chains;
    if (found.kind === 'skipped') {
      chains.commitUsedSkipped(found.chain, m.n, now);
      return;
    }
    if (found.kind === 'new') this.#commitDhRatchet(found);
    // CKr ← the chain key after message N (openMessage wrote it to scratch).
    (st.chainKeyRecv as Uint8Array).set(this.#nextChainKey);
    memzero(this.#nextChainKey);
    if (found.kind === 'current' && found.own) memzero(found.chainKey);
    st.recvMessageNumber = m.n + 1;
    chains.commitSkipped(found.staged, now);
  }

  /** The rest of DHRatchet, for an authentic message on a new chain: the new sending chain, then the switch. */
  #commitDhRatchet(found: FoundKey & { kind: 'new' }): void {
    const st = this.state;
    const dhSelf = x25519KeyPair();
    const dh2 = x25519(dhSelf.privateKey, found.remote);
    const sending = kdfRootKey(found.rootKey, dh2);
    memzero(dh2);
    memzero(found.rootKey);
    this.#chains.retireCurrent();
    memzero(st.dhSelf.privateKey);
    memzero(st.rootKey);
    memzero(st.chainKeySend);
    memzero(st.chainKeyRecv);
    st.previousSendChainLength = st.sendMessageNumber;
    st.sendMessageNumber = 0;
    st.dhRemote = found.remote;
    st.dhSelf = dhSelf;
    st.rootKey = sending.rootKey;
    st.chainKeySend = sending.chainKey;
    // The new chain's key array becomes CKr; #commit then sets it to the key after message N.
    st.chainKeyRecv = found.chainKey;
  }

  #assertUsable(): void {
    if (this.#wiped) throw new E2EError('CHANNEL_CLOSED', 'this ratchet was wiped');
  }
}
