/**
 * `inspect` and `fingerprint`: decode public wire objects to JSON. Envelopes, establishments and
 * bundles carry no secret, and neither does anything printed here.
 */
import { E2EError } from '../errors';
import { constantTimeEqual, ed25519PublicKeyToX25519, ed25519Verify, sha256, toBase64, toHex } from '../crypto';
import { ENVELOPE_PREFIX_BYTES, EncryptedMessage } from '../ratchet';
import { ChannelEstablishment } from '../channel';
import { PreKeyBundle, bundleFromJSON } from '../x3dh';
import { kemPreKeySignedBytes } from '../x3dh/kem-prekey';
import { DID_PREFIX, didFromPublicKey, isMeshDid, keyFingerprint } from '../trust';
import { decodeBytes } from './io';

/** What `inspect` can decode. */
export type InspectKind = 'envelope' | 'establishment' | 'bundle';

/** The kinds `inspect --as` accepts. */
export const INSPECT_KINDS: readonly InspectKind[] = ['envelope', 'establishment', 'bundle'];

function describeMessage(m: EncryptedMessage, bytes: number): Record<string, unknown> {
  const h = m.header;
  const body = m.ciphertext;
  return {
    kind: 'envelope',
    bytes,
    header: { ratchetKey: toHex(h.dhPublicKey), previousChainLength: h.previousChainLength, messageNumber: h.messageNumber },
    nonce: toHex(body.subarray(0, 12)),
    plaintextBytes: body.length - 12 - 16,
    tag: toHex(body.subarray(body.length - 16)),
  };
}

function describeEstablishment(e: ChannelEstablishment): Record<string, unknown> {
  return {
    kind: 'establishment',
    initiatorIdentityKey: toBase64(e.initiatorIdentityKey),
    ephemeralPublicKey: toBase64(e.ephemeralPublicKey),
    usedOneTimeKeyId: e.usedOneTimeKeyId ?? null,
    signedPreKeyId: e.signedPreKeyId ?? null,
    postQuantum: e.postQuantum,
    kemPreKeyId: e.kemPreKeyId ?? null,
  };
}

function describeBundle(b: PreKeyBundle): Record<string, unknown> {
  let identityKeyMatches = false;
  try {
    identityKeyMatches = constantTimeEqual(ed25519PublicKeyToX25519(b.identityKeyEd), b.identityKey);
  } catch {
    identityKeyMatches = false;
  }
  return {
    kind: 'bundle',
    did: didFromPublicKey(b.identityKeyEd),
    fingerprint: keyFingerprint(b.identityKeyEd),
    identityKey: toBase64(b.identityKey),
    identityKeyEd: toBase64(b.identityKeyEd),
    identityKeyMatches,
    signedPreKey: {
      keyId: b.signedPreKeyId,
      publicKey: toBase64(b.signedPreKey),
      signatureValid: ed25519Verify(b.signedPreKeySignature, b.signedPreKey, b.identityKeyEd),
    },
    oneTimePreKey: b.oneTimePreKey ? { keyId: b.oneTimePreKeyId, publicKey: toBase64(b.oneTimePreKey) } : null,
    // 1184 bytes: its SHA-256 names it; the signature check is the initiator's own.
    kemPreKey: b.kemPreKey
      ? {
          keyId: b.kemPreKeyId,
          sha256: toHex(sha256(b.kemPreKey)),
          signatureValid: ed25519Verify(b.kemPreKeySignature as Uint8Array, kemPreKeySignedBytes(b.kemPreKey), b.identityKeyEd),
        }
      : null,
  };
}

function kindOfJson(o: Record<string, unknown>): InspectKind {
  if ('identity_key' in o || 'signed_pre_key' in o) return 'bundle';
  if ('ik' in o && 'ek' in o) return 'establishment';
  if ('header' in o && 'ciphertext' in o) return 'envelope';
  throw new E2EError('MALFORMED_MESSAGE', 'JSON is not an envelope, establishment or bundle');
}

/**
 * Decodes `text` (JSON, hex or base64; binary envelopes and establishments, JSON of all three) to
 * a plain description. `as` forces the kind; otherwise it is recognised from the input.
 * `MALFORMED_MESSAGE` if it is not what it claims.
 */
export function inspect(text: string, as?: InspectKind): Record<string, unknown> {
  const s = text.trim();
  if (s.startsWith('{')) {
    let o: unknown;
    try {
      o = JSON.parse(s);
    } catch {
      throw new E2EError('MALFORMED_MESSAGE', 'input starts with { but is not JSON');
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new E2EError('MALFORMED_MESSAGE', 'JSON must be an object');
    const kind = as ?? kindOfJson(o as Record<string, unknown>);
    if (kind === 'bundle') return describeBundle(bundleFromJSON(s));
    if (kind === 'establishment') return describeEstablishment(ChannelEstablishment.fromJSON(s));
    const m = EncryptedMessage.fromJSON(s);
    return describeMessage(m, m.serialize().length);
  }
  const bytes = decodeBytes(s);
  if (as === 'bundle') throw new E2EError('MALFORMED_MESSAGE', 'a bundle has no binary form here: give its JSON');
  const looksLikeEnvelope = bytes.length >= ENVELOPE_PREFIX_BYTES && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 40;
  if (as === 'envelope' || (as === undefined && looksLikeEnvelope))
    return describeMessage(EncryptedMessage.deserialize(bytes), bytes.length);
  return describeEstablishment(ChannelEstablishment.deserialize(bytes));
}

/**
 * The fingerprint of a public key (hex, base64 or base64url of 32 bytes), or what a DID tells of
 * one: a self-certifying `did:mesh:<32 hex>` holds the first 8 of the 10 groups; `key` (when given)
 * must be the DID's key (`IDENTITY_MISMATCH` otherwise) and gives the whole fingerprint.
 */
export function fingerprintOf(input: string, key?: string): Record<string, unknown> {
  const s = input.trim();
  if (s.startsWith(DID_PREFIX)) {
    if (!isMeshDid(s)) throw new E2EError('INVALID_ARGUMENT', 'not a valid did:mesh DID');
    if (key !== undefined) {
      const pk = decodeBytes(key);
      if (didFromPublicKey(pk) !== s) throw new E2EError('IDENTITY_MISMATCH', 'the key is not the self-certifying key of this DID');
      return { did: s, publicKey: toBase64(pk), fingerprint: keyFingerprint(pk), selfCertifying: true };
    }
    const id = s.slice(DID_PREFIX.length);
    if (!/^[0-9a-f]{32}$/.test(id)) {
      throw new E2EError('INVALID_ARGUMENT', 'this DID is not derived from a key: only a registry binds it to one (pass --key)');
    }
    const groups = id.toUpperCase().match(/.{4}/g)!.join(' ');
    return { did: s, fingerprintPrefix: groups, note: 'a DID holds 8 of the 10 groups; pass --key for all of them' };
  }
  const pk = decodeBytes(s);
  return { did: didFromPublicKey(pk), publicKey: toBase64(pk), fingerprint: keyFingerprint(pk) };
}
