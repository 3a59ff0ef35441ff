/**
 * KEM pre-keys (PROTOCOL.md "PQXDH"): the ML-KEM-768 encapsulation keys a responder signs with its
 * identity key, and the typed encoding that signature covers.
 *
 * PQXDH signs `EncodeKEM(PQPK)`, a type byte and the key, so a signature over a KEM key can never
 * pass for one over anything else. Ours also starts with a context string: the identity key signs
 * X25519 pre-keys (32 raw bytes, for AGT compatibility) and trust-handshake messages too, and
 * none of those starts with it.
 */
import { concatBytes, utf8 } from '../crypto';
import { MLKEM768_PUBLIC_KEY_BYTES } from '../crypto/mlkem';

/** The KEM type byte of `EncodeKEM`: ML-KEM-768 (FIPS 203). */
export const KEM_TYPE_MLKEM768 = 0x01;

const SIGNATURE_CONTEXT = utf8('AgentMesh_PQXDH_KEM_PreKey_v1\u0000');

/** The bytes a KEM pre-key's signature covers: `"AgentMesh_PQXDH_KEM_PreKey_v1" 0x00 ‖ 0x01 ‖ publicKey(1184)`. */
export function kemPreKeySignedBytes(publicKey: Uint8Array): Uint8Array {
  return concatBytes(SIGNATURE_CONTEXT, Uint8Array.of(KEM_TYPE_MLKEM768), publicKey);
}

/** The public half of a KEM pre-key, as a key manager makes it and a bundle or store carries it. */
export interface PublicKemPreKey {
  /** The key's id, from the manager's KEM counter (one counter for one-time and last-resort keys). */
  readonly keyId: number;
  /** ML-KEM-768 encapsulation key, 1184 bytes. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature by the identity key of {@link kemPreKeySignedBytes}(`publicKey`). */
  readonly signature: Uint8Array;
  /** A last-resort key answers any number of establishments; a one-time key is used once, then deleted. */
  readonly lastResort: boolean;
  /** Creation time, milliseconds since the epoch. */
  readonly createdAt: number;
}

/** Unpadded base64url characters of a KEM pre-key (1184 bytes): the JSON forms refuse longer strings undecoded. */
export const KEM_PRE_KEY_BASE64URL_CHARS = Math.ceil((MLKEM768_PUBLIC_KEY_BYTES * 4) / 3);
