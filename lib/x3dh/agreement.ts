/**
 * The X3DH agreement (PROTOCOL.md "X3DH"): the DH computations of each side and the check of a
 * bundle before anyone uses it. With IK the X25519 identity keys, SPK the responder's signed
 * pre-key, OPK its optional one-time pre-key and EK the initiator's ephemeral key:
 *
 *     DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   [DH4 = DH(EK_A, OPK_B)]
 *     SK  = KDF(F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4]),  F = 0xFF³²,  KDF = HKDF-SHA256 (see `kdf.ts`)
 *     AD  = IK_A ‖ IK_B
 *
 * Both sides compute the same four DH values from opposite halves; the key manager supplies the
 * private keys and decides which pre-keys are spent.
 */
import { E2EError } from '../errors';
import { X25519KeyPair, concatBytes, constantTimeEqual, memzero, x25519, x25519KeyPair } from '../crypto';
import { assertCanonicalX25519PublicKey } from '../crypto/x25519';
import { PreKeyBundle } from './bundle';
import { x3dhKdf } from './kdf';
import { signedPreKeyVerifies, x25519FormOfEd25519 } from './identity-cache';

/**
 * Throws unless a (shape-checked) bundle is authentic: its signed pre-key signature verifies under
 * `identityKeyEd` (`BAD_SIGNATURE`) and `identityKey` is the X25519 form of `identityKeyEd`
 * (`IDENTITY_MISMATCH`). What `initiate` checks, and what a store checks before keeping a bundle.
 */
export function verifyBundle(bundle: PreKeyBundle): void {
  if (!signedPreKeyVerifies(bundle.identityKeyEd, bundle.signedPreKey, bundle.signedPreKeySignature)) {
    throw new E2EError('BAD_SIGNATURE', 'the signed pre-key signature does not verify');
  }
  if (!constantTimeEqual(x25519FormOfEd25519(bundle.identityKeyEd), bundle.identityKey)) {
    throw new E2EError('IDENTITY_MISMATCH', 'bundle.identityKey is not the X25519 form of bundle.identityKeyEd');
  }
}

/** The initiator's result: SK (secret), EK_A's public half and AD. */
export interface InitiatorAgreement {
  readonly sharedSecret: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly associatedData: Uint8Array;
}

/**
 * X3DH as the initiator with identity `identity` against a bundle snapshot the caller owns (see
 * `snapshotBundle`): verifies it ({@link verifyBundle}; `INVALID_KEY` for a non-canonical or
 * low-order key), makes the ephemeral key, and wipes it and every DH output before returning.
 */
export function initiateAgreement(identity: X25519KeyPair, bundle: PreKeyBundle): InitiatorAgreement {
  verifyBundle(bundle);
  // The signed pre-key is covered by the signature as sent; both it and the one-time pre-key must
  // also be canonical, so no bundle names a key under two encodings.
  assertCanonicalX25519PublicKey(bundle.signedPreKey, 'bundle.signedPreKey');
  if (bundle.oneTimePreKey) assertCanonicalX25519PublicKey(bundle.oneTimePreKey, 'bundle.oneTimePreKey');
  const ek = x25519KeyPair();
  const dhs: Uint8Array[] = [];
  try {
    dhs.push(x25519(identity.privateKey, bundle.signedPreKey));
    dhs.push(x25519(ek.privateKey, bundle.identityKey));
    dhs.push(x25519(ek.privateKey, bundle.signedPreKey));
    if (bundle.oneTimePreKey) dhs.push(x25519(ek.privateKey, bundle.oneTimePreKey));
    return {
      sharedSecret: x3dhKdf(dhs),
      ephemeralPublicKey: ek.publicKey,
      associatedData: concatBytes(identity.publicKey, bundle.identityKey),
    };
  } finally {
    memzero(ek.privateKey);
    dhs.forEach((d) => memzero(d));
  }
}

/** The responder's private keys for one agreement. */
export interface ResponderKeys {
  readonly identity: X25519KeyPair;
  readonly signedPreKey: X25519KeyPair;
  /** Only its private key is used. */
  readonly oneTimePreKey?: X25519KeyPair | undefined;
}

/**
 * X3DH as the responder: SK and AD from the initiator's identity and ephemeral keys (checked
 * canonical by the caller). Wipes every DH output; `INVALID_KEY` for a low-order peer key.
 */
export function respondAgreement(
  keys: ResponderKeys,
  peerIdentityKey: Uint8Array,
  ephemeralPublicKey: Uint8Array,
): { readonly sharedSecret: Uint8Array; readonly associatedData: Uint8Array } {
  const dhs: Uint8Array[] = [];
  try {
    dhs.push(x25519(keys.signedPreKey.privateKey, peerIdentityKey));
    dhs.push(x25519(keys.identity.privateKey, ephemeralPublicKey));
    dhs.push(x25519(keys.signedPreKey.privateKey, ephemeralPublicKey));
    if (keys.oneTimePreKey) dhs.push(x25519(keys.oneTimePreKey.privateKey, ephemeralPublicKey));
    return { sharedSecret: x3dhKdf(dhs), associatedData: concatBytes(peerIdentityKey, keys.identity.publicKey) };
  } finally {
    dhs.forEach((d) => memzero(d));
  }
}
