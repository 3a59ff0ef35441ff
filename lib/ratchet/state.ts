/**
 * The Double Ratchet session state, its reference-compatible dict form (`toDict`/`fromDict`,
 * PROTOCOL.md "Serialized state") and our compact versioned binary form (`toBytes`/`fromBytes`).
 * Both forms contain secrets: store them encrypted.
 */
import { E2EError } from '../errors';
import { DEFAULT_MAX_SKIP, DEFAULT_MAX_SKIPPED_KEYS, MAX_COUNTER } from '../limits';
import { X25519KeyPair, fromHex, memzero, readU32BE, toHex, writeU32BE, x25519PublicKey } from '../crypto';
import { assertKey, constantTimeEqual, isUsableBytes, plainView } from '../crypto/bytes';
import { readFields, readOptions, typed } from '../crypto/input';
import { assertCanonicalX25519PublicKey, isCanonicalX25519At } from '../crypto/x25519';
import { SkippedKeys, skippedKeyId } from './skipped-keys';

/** Default age after which a skipped message key is deleted: 7 days. */
export const DEFAULT_SKIPPED_KEY_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Most previous remote ratchet keys remembered, so replays from old chains are recognised. */
export const MAX_RETIRED_REMOTE_KEYS = 32;
/** Most skipped keys `fromBytes`/`fromDict` accept (a bound on hostile input). */
export const MAX_SKIPPED_KEYS_LIMIT = 100_000;

/** The limits of a session; all persisted with it. */
export interface RatchetLimits {
  /** Most message keys skipped in one gap (default 100). */
  maxSkip: number;
  /** Most skipped message keys kept in all; oldest evicted first (default 2000). */
  maxSkippedKeys: number;
  /** Age in ms after which a skipped key is deleted; `null` = never (default 7 days). */
  skippedKeyMaxAgeMs: number | null;
}

/** The reference's `to_dict()` form (lowercase hex, `null` for absent keys). */
export interface RatchetStateDict {
  dh_self_private: string;
  dh_self_public: string;
  dh_remote_public: string | null;
  root_key: string;
  chain_key_send: string | null;
  chain_key_recv: string | null;
  send_message_number: number;
  recv_message_number: number;
  previous_send_chain_length: number;
  skipped_keys: Record<string, string>;
  /** Ours (optional; the reference ignores it): the limits. */
  max_skip?: number;
  max_skipped_keys?: number;
}

/** Runs `f`, turning an invalid-argument error (e.g. bad limits in stored bytes) into `MALFORMED_MESSAGE`. */
function asMalformed<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof E2EError && e.code === 'INVALID_ARGUMENT') throw new E2EError('MALFORMED_MESSAGE', `bad ratchet state: ${e.message}`);
    throw e;
  }
}

/** Lets this module's parsers hand over arrays they made themselves, without another copy. */
const ADOPT: unique symbol = Symbol('adopt');

/** The fields of a new {@link RatchetState}. */
export interface RatchetStateInit {
  dhSelf: X25519KeyPair; dhRemote: Uint8Array | null; rootKey: Uint8Array;
  chainKeySend: Uint8Array | null; chainKeyRecv: Uint8Array | null; limits?: Partial<RatchetLimits>;
}

/** Checks and fills in limits (`undefined` or `null` = all defaults); `INVALID_ARGUMENT` on a bad value. */
export function resolveLimits(limits: Partial<RatchetLimits> | null = {}): RatchetLimits {
  const opts = readOptions(limits, ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs'] as const, 'limits') as Partial<RatchetLimits>;
  const maxSkip = opts.maxSkip ?? DEFAULT_MAX_SKIP;
  const maxSkippedKeys = opts.maxSkippedKeys ?? DEFAULT_MAX_SKIPPED_KEYS;
  const age = opts.skippedKeyMaxAgeMs === undefined ? DEFAULT_SKIPPED_KEY_MAX_AGE_MS : opts.skippedKeyMaxAgeMs;
  if (!Number.isInteger(maxSkip) || maxSkip < 0 || maxSkip > MAX_SKIPPED_KEYS_LIMIT) {
    throw new E2EError('INVALID_ARGUMENT', `maxSkip must be an integer in [0, ${MAX_SKIPPED_KEYS_LIMIT}]`);
  }
  if (!Number.isInteger(maxSkippedKeys) || maxSkippedKeys < 0 || maxSkippedKeys > MAX_SKIPPED_KEYS_LIMIT) {
    throw new E2EError('INVALID_ARGUMENT', `maxSkippedKeys must be an integer in [0, ${MAX_SKIPPED_KEYS_LIMIT}]`);
  }
  if (age !== null && (typeof age !== 'number' || !Number.isFinite(age) || age <= 0)) {
    throw new E2EError('INVALID_ARGUMENT', 'skippedKeyMaxAgeMs must be a positive number or null');
  }
  return { maxSkip, maxSkippedKeys, skippedKeyMaxAgeMs: age };
}

/** The mutable state of one Double Ratchet session. Owned by its `DoubleRatchet`. */
export class RatchetState {
  /** Our current ratchet key pair (DHs). */
  dhSelf: X25519KeyPair;
  /** The peer's current ratchet public key (DHr), or `null` before the first message. */
  dhRemote: Uint8Array | null;
  /** Root key (RK). */
  rootKey: Uint8Array;
  /** Sending chain key (CKs), or `null` while we cannot send yet. */
  chainKeySend: Uint8Array | null;
  /** Receiving chain key (CKr). */
  chainKeyRecv: Uint8Array | null;
  /** Ns. */
  sendMessageNumber = 0;
  /** Nr. */
  recvMessageNumber = 0;
  /** PN. */
  previousSendChainLength = 0;
  /** MKSKIPPED. */
  readonly skippedKeys = new SkippedKeys();
  /** Hex of the peer's previous ratchet keys, newest last: a replay from an old chain is a duplicate. */
  readonly retiredRemoteKeys: string[] = [];
  /** The limits, persisted with the state. */
  readonly limits: RatchetLimits;

  /**
   * A state from its fields. Every array is checked (`INVALID_KEY`; the remote key must be
   * canonical) and copied, so the caller's buffers can be reused or wiped afterwards.
   */
  constructor(init: RatchetStateInit, adopt?: typeof ADOPT) {
    const f = readFields(init, ['dhSelf', 'dhRemote', 'rootKey', 'chainKeySend', 'chainKeyRecv', 'limits'] as const, 'ratchet state');
    const self = readFields(f.dhSelf, ['privateKey', 'publicKey'] as const, 'dhSelf', 'INVALID_KEY');
    assertKey(self.privateKey, 'dhSelf.privateKey', 32);
    assertKey(self.publicKey, 'dhSelf.publicKey', 32);
    if (f.dhRemote !== null) assertCanonicalX25519PublicKey(f.dhRemote, 'dhRemote');
    assertKey(f.rootKey, 'rootKey', 32);
    if (f.chainKeySend !== null) assertKey(f.chainKeySend, 'chainKeySend', 32);
    if (f.chainKeyRecv !== null) assertKey(f.chainKeyRecv, 'chainKeyRecv', 32);
    this.limits = resolveLimits(f.limits as Partial<RatchetLimits> | undefined);
    const own = adopt === ADOPT ? (b: Uint8Array): Uint8Array => b : (b: Uint8Array): Uint8Array => Uint8Array.from(b);
    const ownOrNull = (b: Uint8Array | null): Uint8Array | null => (b === null ? null : own(b));
    this.dhSelf = { privateKey: own(self.privateKey), publicKey: own(self.publicKey) };
    this.dhRemote = ownOrNull(f.dhRemote);
    this.rootKey = own(f.rootKey);
    this.chainKeySend = ownOrNull(f.chainKeySend);
    this.chainKeyRecv = ownOrNull(f.chainKeyRecv);
  }

  /** The reference's dict form: exactly its keys (`includeLimits` adds `max_skip` and `max_skipped_keys`). */
  toDict(options: { includeLimits?: boolean } = {}): RatchetStateDict {
    const opts = readOptions(options, ['includeLimits'] as const, 'toDict options');
    const hexOrNull = (b: Uint8Array | null): string | null => (b === null ? null : toHex(b));
    const skipped: Record<string, string> = {};
    for (const k of this.skippedKeys.values()) skipped[skippedKeyId(k.dhPublicKey, k.messageNumber)] = toHex(k.messageKey);
    const d: RatchetStateDict = {
      dh_self_private: toHex(this.dhSelf.privateKey),
      dh_self_public: toHex(this.dhSelf.publicKey),
      dh_remote_public: hexOrNull(this.dhRemote),
      root_key: toHex(this.rootKey),
      chain_key_send: hexOrNull(this.chainKeySend),
      chain_key_recv: hexOrNull(this.chainKeyRecv),
      send_message_number: this.sendMessageNumber,
      recv_message_number: this.recvMessageNumber,
      previous_send_chain_length: this.previousSendChainLength,
      skipped_keys: skipped,
    };
    if (opts.includeLimits) {
      d.max_skip = this.limits.maxSkip;
      d.max_skipped_keys = this.limits.maxSkippedKeys;
    }
    return d;
  }

  /**
   * A state from the reference's dict form (or ours, with limits). Limits come from `limits`, else
   * from the dict, else the defaults. `MALFORMED_MESSAGE` on any defect.
   */
  static fromDict(dict: RatchetStateDict, limits: Partial<RatchetLimits> = {}): RatchetState {
    const d = readFields(dict, [
      'dh_self_private', 'dh_self_public', 'dh_remote_public', 'root_key', 'chain_key_send', 'chain_key_recv',
      'send_message_number', 'recv_message_number', 'previous_send_chain_length', 'skipped_keys', 'max_skip', 'max_skipped_keys',
    ] as const, 'state', 'MALFORMED_MESSAGE');
    const lim = asMalformed(() => readOptions(limits, ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs'] as const, 'limits'));
    const made: Uint8Array[] = [];
    const key = (v: unknown, name: string): Uint8Array => {
      // Length first: a hostile string is refused before any decoding.
      if (typeof v !== 'string' || v.length !== 64) throw new E2EError('MALFORMED_MESSAGE', `${name} must be 32 bytes of hex`);
      const b = fromHex(v);
      made.push(b);
      return b;
    };
    const remoteKey = (v: unknown, name: string): Uint8Array => {
      const b = key(v, name);
      if (!isCanonicalX25519At(b, 0)) throw new E2EError('MALFORMED_MESSAGE', `${name} is not a canonical X25519 key`);
      return b;
    };
    const opt = (v: unknown, name: string): Uint8Array | null => (v === null || v === undefined ? null : key(v, name));
    const count = (v: unknown, name: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_COUNTER) {
        throw new E2EError('MALFORMED_MESSAGE', `${name} must be an integer in [0, 2^32)`);
      }
      return v;
    };
    try {
      const privateKey = key(d.dh_self_private, 'dh_self_private');
      const publicKey = key(d.dh_self_public, 'dh_self_public');
      const derived = x25519PublicKey(privateKey);
      const matches = constantTimeEqual(derived, publicKey);
      memzero(derived);
      if (!matches) throw new E2EError('MALFORMED_MESSAGE', 'dh_self_public does not match dh_self_private');
      const s = asMalformed(() => new RatchetState({
        dhSelf: { privateKey, publicKey },
        dhRemote: d.dh_remote_public === null || d.dh_remote_public === undefined ? null : remoteKey(d.dh_remote_public, 'dh_remote_public'),
        rootKey: key(d.root_key, 'root_key'),
        chainKeySend: opt(d.chain_key_send, 'chain_key_send'),
        chainKeyRecv: opt(d.chain_key_recv, 'chain_key_recv'),
        limits: {
          maxSkip: (lim.maxSkip ?? d.max_skip) as number | undefined,
          maxSkippedKeys: (lim.maxSkippedKeys ?? d.max_skipped_keys) as number | undefined,
          skippedKeyMaxAgeMs: lim.skippedKeyMaxAgeMs as number | null | undefined,
        },
      }, ADOPT));
      s.sendMessageNumber = count(d.send_message_number, 'send_message_number');
      s.recvMessageNumber = count(d.recv_message_number, 'recv_message_number');
      s.previousSendChainLength = count(d.previous_send_chain_length, 'previous_send_chain_length');
      const skipped = d.skipped_keys ?? {};
      if (typeof skipped !== 'object' || skipped === null) throw new E2EError('MALFORMED_MESSAGE', 'skipped_keys must be an object');
      const entries = typed(() => {
        const names = Object.keys(skipped);
        if (names.length > MAX_SKIPPED_KEYS_LIMIT) throw new E2EError('MALFORMED_MESSAGE', 'too many skipped keys');
        return names.map((n) => [n, (skipped as Record<string, unknown>)[n]] as const);
      }, 'MALFORMED_MESSAGE', 'skipped_keys');
      const now = Date.now();
      for (const [id, mk] of entries) {
        const m = /^([0-9a-f]{64}):(\d{1,10})$/.exec(id);
        if (!m) throw new E2EError('MALFORMED_MESSAGE', 'bad skipped key id');
        const messageKey = key(mk, 'skipped key');
        s.skippedKeys.add(
          {
            dhPublicKey: remoteKey(m[1], 'skipped key ratchet key'), messageNumber: count(Number(m[2]), 'skipped key number'),
            messageKey, storedAt: now,
          },
          MAX_SKIPPED_KEYS_LIMIT,
        );
      }
      return s;
    } catch (e) {
      made.forEach((b) => memzero(b));
      throw e;
    }
  }

  /**
   * Our compact binary form (versioned; an idle session is about 300 bytes):
   * `"AMR" 0x01 ‖ flags ‖ DHs priv ‖ DHs pub ‖ [DHr] ‖ RK ‖ [CKs] ‖ [CKr] ‖ Ns ‖ Nr ‖ PN ‖ limits ‖ retired keys ‖
   * skipped keys`. The public key is stored so a restore costs no scalar multiplication.
   */
  toBytes(): Uint8Array {
    const nSkipped = this.skippedKeys.size;
    const nRetired = this.retiredRemoteKeys.length;
    const size = 4 + 1 + 64 + 32 * 4 + 12 + 4 + 4 + 8 + 1 + 32 * nRetired + 4 + nSkipped * (32 + 4 + 32 + 8);
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    out.set([0x41, 0x4d, 0x52, 0x01]);
    let off = 5;
    let flags = 0;
    const put = (b: Uint8Array | null, bit: number): void => {
      if (b === null) return;
      flags |= bit;
      out.set(b, off);
      off += 32;
    };
    out.set(this.dhSelf.privateKey, off);
    out.set(this.dhSelf.publicKey, off + 32);
    off += 64;
    put(this.dhRemote, 1);
    out.set(this.rootKey, off);
    off += 32;
    put(this.chainKeySend, 2);
    put(this.chainKeyRecv, 4);
    out[4] = flags;
    for (const v of [this.sendMessageNumber, this.recvMessageNumber, this.previousSendChainLength, this.limits.maxSkip, this.limits.maxSkippedKeys]) {
      writeU32BE(out, off, v);
      off += 4;
    }
    view.setFloat64(off, this.limits.skippedKeyMaxAgeMs ?? 0);
    off += 8;
    out[off++] = nRetired;
    for (const hex of this.retiredRemoteKeys) {
      out.set(fromHex(hex), off);
      off += 32;
    }
    writeU32BE(out, off, nSkipped);
    off += 4;
    for (const k of this.skippedKeys.values()) {
      out.set(k.dhPublicKey, off);
      writeU32BE(out, off + 32, k.messageNumber);
      out.set(k.messageKey, off + 36);
      view.setFloat64(off + 68, k.storedAt);
      off += 76;
    }
    return out.subarray(0, off);
  }

  /**
   * A state from {@link toBytes}; `MALFORMED_MESSAGE` on any defect (never a crash). The bytes are
   * trusted to be our own (the stores authenticate them); the public key is not recomputed. Every
   * part is copied out of `bytes` (a Node `Buffer` included), so the caller may reuse or wipe it.
   */
  static fromBytes(input: Uint8Array): RatchetState {
    if (!isUsableBytes(input)) throw new E2EError('MALFORMED_MESSAGE', 'state must be a Uint8Array');
    // A plain view: its slice copies (a Buffer's would be a view of the caller's memory).
    const bytes = plainView(input);
    const taken: Uint8Array[] = [];
    const bad = (why: string): E2EError => new E2EError('MALFORMED_MESSAGE', `bad ratchet state: ${why}`);
    if (bytes.length < 5 || bytes[0] !== 0x41 || bytes[1] !== 0x4d || bytes[2] !== 0x52) throw bad('not a ratchet state');
    if (bytes[3] !== 0x01) throw bad(`unknown version ${bytes[3]}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 5;
    const need = (n: number): void => {
      if (off + n > bytes.length) throw bad('truncated');
    };
    const take = (n: number): Uint8Array => {
      need(n);
      const b = bytes.slice(off, off + n);
      taken.push(b);
      off += n;
      return b;
    };
    const takeRemote = (what: string): Uint8Array => {
      const b = take(32);
      if (!isCanonicalX25519At(b, 0)) throw bad(`${what} is not a canonical X25519 key`);
      return b;
    };
    const u32 = (): number => {
      need(4);
      const v = readU32BE(bytes, off);
      off += 4;
      return v;
    };
    try {
      const flags = bytes[4];
      if (flags & ~7) throw bad('unknown flags');
      const privateKey = take(32);
      const publicKey = take(32);
      const dhRemote = flags & 1 ? takeRemote('remote ratchet key') : null;
      const rootKey = take(32);
      const chainKeySend = flags & 2 ? take(32) : null;
      const chainKeyRecv = flags & 4 ? take(32) : null;
      const ns = u32();
      const nr = u32();
      const pn = u32();
      const maxSkip = u32();
      const maxSkippedKeys = u32();
      need(8);
      const age = view.getFloat64(off);
      off += 8;
      const s = asMalformed(() => new RatchetState({
        dhSelf: { privateKey, publicKey },
        dhRemote, rootKey, chainKeySend, chainKeyRecv,
        limits: { maxSkip, maxSkippedKeys, skippedKeyMaxAgeMs: age === 0 ? null : age },
      }, ADOPT));
      s.sendMessageNumber = ns;
      s.recvMessageNumber = nr;
      s.previousSendChainLength = pn;
      need(1);
      const nRetired = bytes[off++];
      if (nRetired > MAX_RETIRED_REMOTE_KEYS) throw bad('too many retired keys');
      for (let i = 0; i < nRetired; i++) s.retiredRemoteKeys.push(toHex(takeRemote('retired ratchet key')));
      const nSkipped = u32();
      if (nSkipped > MAX_SKIPPED_KEYS_LIMIT) throw bad('too many skipped keys');
      need(nSkipped * 76);
      for (let i = 0; i < nSkipped; i++) {
        const dhPublicKey = takeRemote('skipped key ratchet key');
        const messageNumber = u32();
        const messageKey = take(32);
        const storedAt = view.getFloat64(off);
        off += 8;
        if (!Number.isFinite(storedAt)) throw bad('bad skipped key time');
        s.skippedKeys.add({ dhPublicKey, messageNumber, messageKey, storedAt }, MAX_SKIPPED_KEYS_LIMIT);
      }
      if (off !== bytes.length) throw bad('trailing bytes');
      return s;
    } catch (e) {
      taken.forEach((t) => memzero(t));
      throw e;
    }
  }

  /** Wipes every secret of the state (ratchet private key, root, chain and skipped keys). */
  wipe(): void {
    memzero(this.dhSelf.privateKey);
    memzero(this.rootKey);
    memzero(this.chainKeySend);
    memzero(this.chainKeyRecv);
    this.skippedKeys.wipe();
  }
}
