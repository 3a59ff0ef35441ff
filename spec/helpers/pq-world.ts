/**
 * Worlds for the post-quantum specs: a responder (Bob) with one-time X25519 pre-keys, one-time KEM
 * pre-keys and a last-resort KEM pre-key; an initiator (Alice); a third agent (Carol) whose keys an
 * adversary can substitute; and the raw transport forms of an establishment, written by hand (not
 * by our encoders), so a test can put any bytes on the wire. Call after `await ready()`.
 */
import { ed25519KeyPair, toHex } from '../../lib/crypto';
import { E2EError } from '../../lib/errors';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import type { PublicKemPreKey } from '../../lib/x3dh';
import { ChannelEstablishment, ChannelEstablishmentFields, ReceiverOptions, SecureChannel } from '../../lib/channel';

/** The caller associated data of every channel in these specs. */
export const PQ_AD = new TextEncoder().encode('did:mesh:alice|did:mesh:bob');

/** A fresh manager with one signed pre-key. */
export function freshManager(): X3DHKeyManager {
  const id = ed25519KeyPair();
  const m = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  m.generateSignedPreKey();
  return m;
}

/** Bob's keys: 2 one-time pre-keys, 2 one-time KEM pre-keys, then the current last-resort KEM pre-key. */
export interface PqWorld {
  readonly alice: X3DHKeyManager;
  readonly bob: X3DHKeyManager;
  readonly carol: X3DHKeyManager;
  readonly otkIds: readonly number[];
  readonly kemOneTime: readonly PublicKemPreKey[];
  readonly kemLastResort: PublicKemPreKey;
  readonly carolKem: PublicKemPreKey;
}

/** A fresh world (all keys random). */
export function pqWorld(): PqWorld {
  const alice = freshManager();
  const bob = freshManager();
  const carol = freshManager();
  const otkIds = bob.generateOneTimePreKeys(2).map((k) => k.keyId);
  const kemOneTime = bob.generateKemPreKeys(2);
  const kemLastResort = bob.generateLastResortKemPreKey();
  const carolKem = carol.generateLastResortKemPreKey();
  return { alice, bob, carol, otkIds, kemOneTime, kemLastResort, carolKem };
}

/** Which KEM pre-key a bundle carries: Bob's first one-time KEM pre-key, or (no `kemId`) his last-resort one. */
export type KemChoice = 'oneTime' | 'lastResort';

/** Bob's bundle with his first one-time pre-key when `otk`, and the KEM pre-key `kem` names. */
export function bobBundle(w: PqWorld, kem: KemChoice, otk: boolean): PreKeyBundle {
  const otkId = otk ? w.otkIds[0] : null;
  return kem === 'oneTime' ? w.bob.getPublicBundle({ otkId, kemId: w.kemOneTime[0].keyId }) : w.bob.getPublicBundle({ otkId });
}

/** An establishment as loose parts: any field may be missing or of any length. */
export interface RawEstablishment {
  ik: Uint8Array;
  ek: Uint8Array;
  otk?: number | undefined;
  spk?: number | undefined;
  kem?: number | undefined;
  kct?: Uint8Array | undefined;
}

/** The parts of `e`. */
export function rawOf(e: ChannelEstablishment): RawEstablishment {
  return {
    ik: e.initiatorIdentityKey,
    ek: e.ephemeralPublicKey,
    otk: e.usedOneTimeKeyId,
    spk: e.signedPreKeyId,
    kem: e.kemPreKeyId,
    kct: e.kemCiphertext,
  };
}

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
};

/**
 * PROTOCOL.md's binary form written by hand: `ik ‖ ek ‖ flags ‖ [u32 otk] ‖ [u32 spk] ‖ [u32 kem] ‖ [kct]`
 * (flag 4 when either KEM part is present, and only the parts present are written).
 */
export function rawBinary(r: RawEstablishment): Uint8Array {
  const hasKem = r.kem !== undefined || r.kct !== undefined;
  const flags = (r.otk !== undefined ? 1 : 0) | (r.spk !== undefined ? 2 : 0) | (hasKem ? 4 : 0);
  const parts = [r.ik, r.ek, Uint8Array.of(flags)];
  if (r.otk !== undefined) parts.push(u32(r.otk));
  if (r.spk !== undefined) parts.push(u32(r.spk));
  if (r.kem !== undefined) parts.push(u32(r.kem));
  if (r.kct !== undefined) parts.push(r.kct);
  return Uint8Array.from(Buffer.concat(parts));
}

/** PROTOCOL.md's JSON form written by hand (standard base64 through Node's Buffer). */
export function rawJson(r: RawEstablishment): string {
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
  const j: Record<string, unknown> = { ik: b64(r.ik), ek: b64(r.ek) };
  if (r.otk !== undefined) j.otk = r.otk;
  if (r.spk !== undefined) j.spk = r.spk;
  if (r.kem !== undefined) j.kem = r.kem;
  if (r.kct !== undefined) j.kct = b64(r.kct);
  return JSON.stringify(j);
}

/** The fields object of `r`, as a caller hands it to `createReceiver`. */
export function rawFields(r: RawEstablishment): ChannelEstablishmentFields {
  return {
    initiatorIdentityKey: r.ik,
    ephemeralPublicKey: r.ek,
    usedOneTimeKeyId: r.otk,
    signedPreKeyId: r.spk,
    kemPreKeyId: r.kem,
    kemCiphertext: r.kct,
  };
}

/** How an establishment reaches the responder. */
export type EstablishmentForm = 'instance' | 'fields' | 'binary' | 'json';
export const ESTABLISHMENT_FORMS: readonly EstablishmentForm[] = ['instance', 'fields', 'binary', 'json'];

/** `r` parsed from its transport form (`fields`: the plain object, for `createReceiver` to read). */
export function parse(r: RawEstablishment, form: EstablishmentForm): ChannelEstablishment | ChannelEstablishmentFields {
  if (form === 'binary') return ChannelEstablishment.deserialize(rawBinary(r));
  if (form === 'json') return ChannelEstablishment.fromJSON(rawJson(r));
  return form === 'instance' ? new ChannelEstablishment(rawFields(r)) : rawFields(r);
}

/** The receiving path: parse `r` from its transport form, then `createReceiver`. Throws what either throws. */
export function receive(bob: X3DHKeyManager, r: RawEstablishment, form: EstablishmentForm, options: ReceiverOptions = {}): SecureChannel {
  return SecureChannel.createReceiver(bob, parse(r, form), PQ_AD, options);
}

/** The `E2EError` code `f` throws, `'ok'` when it returns; anything else thrown is rethrown. */
export function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof E2EError) return e.code;
    throw e;
  }
}

/** What `f` gave: its value and `'ok'`, or no value and the code of the `E2EError` it threw (anything else is rethrown). */
export function attempt<T>(f: () => T): { readonly code: string; readonly value: T | undefined } {
  try {
    return { code: 'ok', value: f() };
  } catch (e) {
    if (e instanceof E2EError) return { code: e.code, value: undefined };
    throw e;
  }
}

/** Hex of a manager's saved bytes: equal strings mean byte-identical state. */
export function stateHex(m: X3DHKeyManager): string {
  return toHex(m.toBytes());
}

/** `bytes` with bit `bit` flipped (a copy). */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

/** Both directions work: `alice` sends `n` messages Bob reads, Bob replies once, Alice reads it. */
export function roundTrips(alice: SecureChannel, bob: SecureChannel, n = 1): boolean {
  for (let i = 0; i < n; i++) {
    const pt = Uint8Array.of(1, i);
    if (toHex(bob.receive(alice.send(pt).serialize())) !== toHex(pt)) return false;
  }
  const back = Uint8Array.of(2);
  return toHex(alice.receive(bob.send(back).serialize())) === toHex(back);
}
