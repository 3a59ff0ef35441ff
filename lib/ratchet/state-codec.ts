/**
 * The AMR binary form of a ratchet state (ours; versioned; an idle session is about 300 bytes):
 *
 * `"AMR" 0x01 ‖ flags ‖ DHs priv(32) ‖ DHs pub(32) ‖ [DHr(32)] ‖ RK(32) ‖ [CKs(32)] ‖ [CKr(32)] ‖
 * u32 Ns ‖ u32 Nr ‖ u32 PN ‖ u32 maxSkip ‖ u32 maxSkippedKeys ‖ f64 maxAge (0 = none) ‖
 * u8 count ‖ retired keys(32 each) ‖ u32 count ‖ skipped keys (key(32) ‖ u32 N ‖ MK(32) ‖ f64 storedAt)`,
 *
 * big-endian; flags bit 0 = DHr, 1 = CKs, 2 = CKr. The public key is stored so a restore costs no
 * scalar multiplication. Pinned by spec/vectors/own/ratchet-state.json.
 */
import { E2EError } from '../errors';
import { ByteReader, ByteWriter } from '../crypto/byte-io';
import { fromHex, isUsableBytes, memzero, plainView, toHex } from '../crypto/bytes';
import { isCanonicalX25519At } from '../crypto/x25519';
import type { SkippedKey } from './skipped-keys';
import { DecodedRatchetState, RatchetStateFields, asMalformed, resolveLimits } from './state-fields';
import { MAX_RETIRED_REMOTE_KEYS, MAX_SKIPPED_KEYS_LIMIT } from '../limits';

const MAGIC = new Uint8Array([0x41, 0x4d, 0x52]); // "AMR"
const VERSION = 0x01;
const HAS_REMOTE = 1;
const HAS_SEND = 2;
const HAS_RECV = 4;
const KEY = 32;
/** Bytes of one skipped key: ratchet key, N, message key, time stored. */
const SKIPPED_BYTES = KEY + 4 + KEY + 8;
const WHAT = 'bad ratchet state';

/** The AMR bytes of `s` (secrets: store them encrypted). */
export function encodeRatchetState(s: RatchetStateFields): Uint8Array {
  const nRetired = s.retiredRemoteKeys.length;
  const flags = (s.dhRemote ? HAS_REMOTE : 0) | (s.chainKeySend ? HAS_SEND : 0) | (s.chainKeyRecv ? HAS_RECV : 0);
  const keys = 3 + (s.dhRemote ? 1 : 0) + (s.chainKeySend ? 1 : 0) + (s.chainKeyRecv ? 1 : 0);
  const w = new ByteWriter(5 + KEY * keys + 20 + 8 + 1 + KEY * nRetired + 4 + s.skippedKeys.size * SKIPPED_BYTES);
  w.bytes(MAGIC).u8(VERSION).u8(flags).bytes(s.dhSelf.privateKey).bytes(s.dhSelf.publicKey);
  if (s.dhRemote) w.bytes(s.dhRemote);
  w.bytes(s.rootKey);
  if (s.chainKeySend) w.bytes(s.chainKeySend);
  if (s.chainKeyRecv) w.bytes(s.chainKeyRecv);
  w.u32(s.sendMessageNumber).u32(s.recvMessageNumber).u32(s.previousSendChainLength);
  w.u32(s.limits.maxSkip)
    .u32(s.limits.maxSkippedKeys)
    .f64(s.limits.skippedKeyMaxAgeMs ?? 0);
  w.u8(nRetired);
  for (const hex of s.retiredRemoteKeys) w.bytes(fromHex(hex));
  w.u32(s.skippedKeys.size);
  for (const k of s.skippedKeys.values()) w.bytes(k.dhPublicKey).u32(k.messageNumber).bytes(k.messageKey).f64(k.storedAt);
  return w.finish();
}

/**
 * Reads AMR bytes; `MALFORMED_MESSAGE` on any defect (never a crash). The bytes are trusted to be
 * our own (the stores authenticate them), so the public key is not recomputed; remote keys must
 * be canonical. Every field is a copy (of a Node `Buffer` too), so the caller may reuse or wipe `input`.
 */
export function decodeRatchetState(input: Uint8Array): DecodedRatchetState {
  if (!isUsableBytes(input)) throw new E2EError('MALFORMED_MESSAGE', 'state must be a Uint8Array');
  // A plain view: its slice copies (a Buffer's would be a view of the caller's memory).
  const r = new ByteReader(plainView(input), WHAT);
  const taken: Uint8Array[] = [];
  const bad = (why: string): E2EError => new E2EError('MALFORMED_MESSAGE', `${WHAT}: ${why}`);
  const take = (): Uint8Array => {
    const b = r.bytes(KEY);
    taken.push(b);
    return b;
  };
  const takeRemote = (what: string): Uint8Array => {
    const b = take();
    if (!isCanonicalX25519At(b, 0)) throw bad(`${what} is not a canonical X25519 key`);
    return b;
  };
  r.expect(MAGIC, 'not a ratchet state');
  const version = r.u8();
  if (version !== VERSION) throw bad(`unknown version ${version}`);
  try {
    const flags = r.u8();
    if (flags & ~(HAS_REMOTE | HAS_SEND | HAS_RECV)) throw bad('unknown flags');
    const dhSelf = { privateKey: take(), publicKey: take() };
    const dhRemote = flags & HAS_REMOTE ? takeRemote('remote ratchet key') : null;
    const rootKey = take();
    const chainKeySend = flags & HAS_SEND ? take() : null;
    const chainKeyRecv = flags & HAS_RECV ? take() : null;
    const sendMessageNumber = r.u32();
    const recvMessageNumber = r.u32();
    const previousSendChainLength = r.u32();
    const maxSkip = r.u32();
    const maxSkippedKeys = r.u32();
    const age = r.f64();
    const limits = asMalformed(() => resolveLimits({ maxSkip, maxSkippedKeys, skippedKeyMaxAgeMs: age === 0 ? null : age }));
    const nRetired = r.u8();
    if (nRetired > MAX_RETIRED_REMOTE_KEYS) throw bad('too many retired keys');
    const retiredRemoteKeys: string[] = [];
    for (let i = 0; i < nRetired; i++) retiredRemoteKeys.push(toHex(takeRemote('retired ratchet key')));
    const nSkipped = r.count(SKIPPED_BYTES, MAX_SKIPPED_KEYS_LIMIT);
    const skippedKeys: SkippedKey[] = [];
    for (let i = 0; i < nSkipped; i++) {
      const dhPublicKey = takeRemote('skipped key ratchet key');
      const messageNumber = r.u32();
      const messageKey = take();
      const storedAt = r.f64();
      if (!Number.isFinite(storedAt)) throw bad('bad skipped key time');
      skippedKeys.push({ dhPublicKey, messageNumber, messageKey, storedAt });
    }
    r.end();
    return {
      dhSelf,
      dhRemote,
      rootKey,
      chainKeySend,
      chainKeyRecv,
      sendMessageNumber,
      recvMessageNumber,
      previousSendChainLength,
      limits,
      retiredRemoteKeys,
      skippedKeys,
    };
  } catch (e) {
    taken.forEach((t) => memzero(t));
    throw e;
  }
}
