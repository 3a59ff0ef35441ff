/**
 * The AGT reference's dict form of a ratchet state (`to_dict()` / `from_dict()`, PROTOCOL.md
 * "Serialized state"): lowercase hex, `null` for absent keys, skipped keys by `<ratchet key hex>:<N>`.
 * It carries no retired keys and no times; ours optionally adds `max_skip` and `max_skipped_keys`.
 */
import { E2EError } from '../errors';
import { MAX_COUNTER, MAX_SKIPPED_KEYS_LIMIT } from '../limits';
import { constantTimeEqual, fromHex, memzero, toHex } from '../crypto/bytes';
import { readFields, readOptions, typed } from '../crypto/input';
import { isCanonicalX25519At, x25519PublicKey } from '../crypto/x25519';
import { SkippedKey, skippedKeyId } from './skipped-keys';
import { DecodedRatchetState, RatchetLimits, RatchetStateFields, asMalformed } from './state-fields';

/** The reference's `to_dict()` form (lowercase hex, `null` for absent keys). */
export interface RatchetStateDict {
  /** Our current ratchet private key (DHs), 32 bytes hex. Secret. */
  dh_self_private: string;
  /** Our current ratchet public key, 32 bytes hex (must match `dh_self_private`). */
  dh_self_public: string;
  /** The peer's current ratchet public key (DHr), 32 bytes hex, or `null` before the first message. */
  dh_remote_public: string | null;
  /** Root key (RK), 32 bytes hex. Secret. */
  root_key: string;
  /** Sending chain key (CKs), 32 bytes hex, or `null`. Secret. */
  chain_key_send: string | null;
  /** Receiving chain key (CKr), 32 bytes hex, or `null`. Secret. */
  chain_key_recv: string | null;
  /** Ns: messages sent on the current sending chain. */
  send_message_number: number;
  /** Nr: messages received on the current receiving chain. */
  recv_message_number: number;
  /** PN: length of the previous sending chain. */
  previous_send_chain_length: number;
  /** MKSKIPPED: message key (32 bytes hex) by `<ratchet key hex>:<N>`. Secret. */
  skipped_keys: Record<string, string>;
  /** Ours (optional; the reference ignores it): the limits. */
  max_skip?: number;
  /** Ours (optional; the reference ignores it): most skipped keys kept. */
  max_skipped_keys?: number;
}

/** The dict form of `s`: exactly the reference's keys (`includeLimits` adds `max_skip` and `max_skipped_keys`). */
export function stateToDict(s: RatchetStateFields, includeLimits: boolean): RatchetStateDict {
  const hexOrNull = (b: Uint8Array | null): string | null => (b === null ? null : toHex(b));
  const skipped: Record<string, string> = {};
  for (const k of s.skippedKeys.values()) skipped[skippedKeyId(k.dhPublicKey, k.messageNumber)] = toHex(k.messageKey);
  const d: RatchetStateDict = {
    dh_self_private: toHex(s.dhSelf.privateKey),
    dh_self_public: toHex(s.dhSelf.publicKey),
    dh_remote_public: hexOrNull(s.dhRemote),
    root_key: toHex(s.rootKey),
    chain_key_send: hexOrNull(s.chainKeySend),
    chain_key_recv: hexOrNull(s.chainKeyRecv),
    send_message_number: s.sendMessageNumber,
    recv_message_number: s.recvMessageNumber,
    previous_send_chain_length: s.previousSendChainLength,
    skipped_keys: skipped,
  };
  if (includeLimits) {
    d.max_skip = s.limits.maxSkip;
    d.max_skipped_keys = s.limits.maxSkippedKeys;
  }
  return d;
}

/**
 * Reads the dict form (the reference's, or ours with limits). Limits come from `limits`, else from
 * the dict, else the defaults (the state checks them). Skipped keys are stamped `now`, since the
 * reference keeps no times. `MALFORMED_MESSAGE` on any defect; nothing it made survives a failure.
 */
export function stateFromDict(dict: RatchetStateDict, limits: Partial<RatchetLimits>, now: number): DecodedRatchetState {
  const d = readFields(
    dict,
    [
      'dh_self_private',
      'dh_self_public',
      'dh_remote_public',
      'root_key',
      'chain_key_send',
      'chain_key_recv',
      'send_message_number',
      'recv_message_number',
      'previous_send_chain_length',
      'skipped_keys',
      'max_skip',
      'max_skipped_keys',
    ] as const,
    'state',
    'MALFORMED_MESSAGE',
  );
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
    const dhRemote =
      d.dh_remote_public === null || d.dh_remote_public === undefined ? null : remoteKey(d.dh_remote_public, 'dh_remote_public');
    const rootKey = key(d.root_key, 'root_key');
    const chainKeySend = opt(d.chain_key_send, 'chain_key_send');
    const chainKeyRecv = opt(d.chain_key_recv, 'chain_key_recv');
    const sendMessageNumber = count(d.send_message_number, 'send_message_number');
    const recvMessageNumber = count(d.recv_message_number, 'recv_message_number');
    const previousSendChainLength = count(d.previous_send_chain_length, 'previous_send_chain_length');
    const skipped = d.skipped_keys ?? {};
    if (typeof skipped !== 'object' || skipped === null) throw new E2EError('MALFORMED_MESSAGE', 'skipped_keys must be an object');
    const entries = typed(
      () => {
        const names = Object.keys(skipped);
        if (names.length > MAX_SKIPPED_KEYS_LIMIT) throw new E2EError('MALFORMED_MESSAGE', 'too many skipped keys');
        return names.map((n) => [n, (skipped as Record<string, unknown>)[n]] as const);
      },
      'MALFORMED_MESSAGE',
      'skipped_keys',
    );
    const skippedKeys: SkippedKey[] = [];
    for (const [id, mk] of entries) {
      const m = /^([0-9a-f]{64}):(\d{1,10})$/.exec(id);
      if (!m) throw new E2EError('MALFORMED_MESSAGE', 'bad skipped key id');
      const messageKey = key(mk, 'skipped key');
      skippedKeys.push({
        dhPublicKey: remoteKey(m[1], 'skipped key ratchet key'),
        messageNumber: count(Number(m[2]), 'skipped key number'),
        messageKey,
        storedAt: now,
      });
    }
    return {
      dhSelf: { privateKey, publicKey },
      dhRemote,
      rootKey,
      chainKeySend,
      chainKeyRecv,
      sendMessageNumber,
      recvMessageNumber,
      previousSendChainLength,
      limits: {
        maxSkip: (lim.maxSkip ?? d.max_skip) as number | undefined,
        maxSkippedKeys: (lim.maxSkippedKeys ?? d.max_skipped_keys) as number | undefined,
        skippedKeyMaxAgeMs: lim.skippedKeyMaxAgeMs as number | null | undefined,
      },
      retiredRemoteKeys: [],
      skippedKeys,
    };
  } catch (e) {
    made.forEach((b) => memzero(b));
    throw e;
  }
}
