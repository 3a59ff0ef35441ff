/**
 * The X3DH agreement (PROTOCOL.md "X3DH"): the DH computations of each side and the check of a
 * bundle before anyone uses it. With IK the X25519 identity keys, SPK the responder's signed
 * pre-key, OPK its optional one-time pre-key and EK the initiator's ephemeral key:
 *
 *     DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   [DH4 = DH(EK_A, OPK_B)]
 *     SK  = KDF(F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4]),  F = 0xFF³²,  KDF = HKDF-SHA256 (see `kdf.ts`)
 *     AD  = IK_A ‖ IK_B
 *
 * With a KEM pre-key PQPK in the bundle (PQXDH, revision 3), the initiator also encapsulates to it,
 * `(CT, SS) = ML-KEM-768.Encaps(PQPK)`, and `SK = KDF(F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4] ‖ SS)` under
 * PQXDH's own info string; the responder decapsulates CT. ML-KEM's SS = G(m ‖ H(PQPK)) binds the
 * secret to the exact key the identity signed; an altered CT fails ML-KEM's re-encryption check and
 * decapsulates to an unrelated (implicit-rejection) secret.
 *
 * Both sides compute the same four DH values from opposite halves; the key manager supplies the
 * private keys and decides which pre-keys are spent.
 */
import { E2EError } from '../errors';
import { X25519KeyPair, concatBytes, constantTimeEqual, memzero, x25519, x25519KeyPair } from '../crypto';
import { assertCanonicalX25519PublicKey } from '../crypto/x25519';
import { PreKeyBundle } from './bundle';
import { pqxdhKdf, x3dhKdf } from './kdf';
import { kemPreKeyVerifies, signedPreKeyVerifies, x25519FormOfEd25519 } from './identity-cache';
import { mlkem768Decapsulate, mlkem768Encapsulate } from '../crypto/mlkem';

/**
 * Throws unless a (shape-checked) bundle is authentic: its signed pre-key signature verifies under
 * `identityKeyEd` (`BAD_SIGNATURE`), so does its KEM pre-key signature when it has one, and
 * `identityKey` is the X25519 form of `identityKeyEd` (`IDENTITY_MISMATCH`). What `initiate`
 * checks, and what a store checks before keeping a bundle.
 */
export function verifyBundle(bundle: PreKeyBundle): void {
  if (!signedPreKeyVerifies(bundle.identityKeyEd, bundle.signedPreKey, bundle.signedPreKeySignature)) {
    throw new E2EError('BAD_SIGNATURE', 'the signed pre-key signature does not verify');
  }
  if (bundle.kemPreKey && !kemPreKeyVerifies(bundle.identityKeyEd, bundle.kemPreKey, bundle.kemPreKeySignature as Uint8Array)) {
    throw new E2EError('BAD_SIGNATURE', 'the KEM pre-key signature does not verify');
  }
  if (!constantTimeEqual(x25519FormOfEd25519(bundle.identityKeyEd), bundle.identityKey)) {
    throw new E2EError('IDENTITY_MISMATCH', 'bundle.identityKey is not the X25519 form of bundle.identityKeyEd');
  }
}

/** The initiator's result: SK (secret), EK_A's public half, AD, and the KEM ciphertext of a post-quantum agreement. */
export interface InitiatorAgreement {
  readonly sharedSecret: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly associatedData: Uint8Array;
  /** CT for the responder's KEM pre-key (1088 bytes), when the bundle had one. */
  readonly kemCiphertext: Uint8Array | undefined;
}

/**
 * X3DH as the initiator with identity `identity` against a bundle snapshot the caller owns (see
 * `snapshotBundle`): verifies it ({@link verifyBundle}; `INVALID_KEY` for a non-canonical or
 * low-order key; an ML-KEM key failing FIPS 203's modulus check), encapsulates to its KEM pre-key
 * when it has one, makes the ephemeral key, and wipes it, the KEM secret and every DH output.
 */
export function initiateAgreement(identity: X25519KeyPair, bundle: PreKeyBundle): InitiatorAgreement {
  verifyBundle(bundle);
  // The signed pre-key is covered by the signature as sent; both it and the one-time pre-key must
  // also be canonical, so no bundle names a key under two encodings.
  assertCanonicalX25519PublicKey(bundle.signedPreKey, 'bundle.signedPreKey');
  if (bundle.oneTimePreKey) assertCanonicalX25519PublicKey(bundle.oneTimePreKey, 'bundle.oneTimePreKey');
  // Encapsulate first: a KEM key that fails the modulus check costs no ephemeral key.
  const kem = bundle.kemPreKey ? mlkem768Encapsulate(bundle.kemPreKey) : undefined;
  const ek = x25519KeyPair();
  const dhs: Uint8Array[] = [];
  try {
    dhs.push(x25519(identity.privateKey, bundle.signedPreKey));
    dhs.push(x25519(ek.privateKey, bundle.identityKey));
    dhs.push(x25519(ek.privateKey, bundle.signedPreKey));
    if (bundle.oneTimePreKey) dhs.push(x25519(ek.privateKey, bundle.oneTimePreKey));
    return {
      sharedSecret: kem ? pqxdhKdf(dhs, kem.sharedSecret) : x3dhKdf(dhs),
      ephemeralPublicKey: ek.publicKey,
      associatedData: concatBytes(identity.publicKey, bundle.identityKey),
      kemCiphertext: kem?.ciphertext,
    };
  } finally {
    memzero(ek.privateKey);
    if (kem) memzero(kem.sharedSecret);
    dhs.forEach((d) => memzero(d));
  }
}

/** The responder's private keys for one agreement. */
export interface ResponderKeys {
  readonly identity: X25519KeyPair;
  readonly signedPreKey: X25519KeyPair;
  /** Only its private key is used. */
  readonly oneTimePreKey?: X25519KeyPair | undefined;
  /** The ML-KEM-768 secret key (2400 bytes) of the KEM pre-key a post-quantum establishment names, and its ciphertext. */
  readonly kem?: { readonly secretKey: Uint8Array; readonly ciphertext: Uint8Array } | undefined;
}

/**
 * X3DH (PQXDH with `keys.kem`) as the responder: SK and AD from the initiator's identity and
 * ephemeral keys (checked canonical by the caller). Wipes every DH output and the KEM secret;
 * `INVALID_KEY` for a low-order peer key. A ciphertext altered on the way decapsulates to an
 * unrelated secret (ML-KEM's implicit rejection): the session's first message is what fails.
 */
export function respondAgreement(
  keys: ResponderKeys,
  peerIdentityKey: Uint8Array,
  ephemeralPublicKey: Uint8Array,
): { readonly sharedSecret: Uint8Array; readonly associatedData: Uint8Array } {
  const dhs: Uint8Array[] = [];
  let ss: Uint8Array | undefined;
  try {
    dhs.push(x25519(keys.signedPreKey.privateKey, peerIdentityKey));
    dhs.push(x25519(keys.identity.privateKey, ephemeralPublicKey));
    dhs.push(x25519(keys.signedPreKey.privateKey, ephemeralPublicKey));
    if (keys.oneTimePreKey) dhs.push(x25519(keys.oneTimePreKey.privateKey, ephemeralPublicKey));
    if (keys.kem) ss = mlkem768Decapsulate(keys.kem.ciphertext, keys.kem.secretKey);
    return {
      sharedSecret: ss ? pqxdhKdf(dhs, ss) : x3dhKdf(dhs),
      associatedData: concatBytes(peerIdentityKey, keys.identity.publicKey),
    };
  } finally {
    if (ss) memzero(ss);
    dhs.forEach((d) => memzero(d));
  }
}
