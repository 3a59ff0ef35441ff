/**
 * agentmesh-e2e: end-to-end encryption between AI agents. `await ready()` first.
 * @packageDocumentation
 */
export { ready, isReady } from './sodium';
export { E2EError, ErrorCode, isE2EError } from './errors';
export * as limits from './limits';
export {
  AEAD_KEY_BYTES, AEAD_TAG_BYTES, CHACHA20_POLY1305_NONCE_BYTES, XCHACHA20_POLY1305_NONCE_BYTES,
  chacha20Poly1305Encrypt, chacha20Poly1305Decrypt, xchacha20Poly1305Encrypt, xchacha20Poly1305Decrypt,
  concatBytes, u32be, readU32BE, toHex, fromHex, toBase64, fromBase64, toBase64Url, fromBase64Url, utf8, fromUtf8,
  constantTimeEqual, memzero,
  ED25519_PUBLIC_KEY_BYTES, ED25519_SECRET_KEY_BYTES, ED25519_SEED_BYTES, ED25519_SIGNATURE_BYTES,
  ed25519KeyPair, ed25519KeyPairFromSeed, ed25519Sign, ed25519Verify, ed25519SecretKeyToX25519, ed25519PublicKeyToX25519,
  SHA256_BYTES, sha256,
  HKDF_SHA256_MAX_BYTES, hkdfExtract, hkdfExpand, hkdfSha256,
  HMAC_SHA256_BYTES, hmacSha256,
  randomBytes,
  X25519_BYTES, x25519, x25519KeyPair, x25519PublicKey,
} from './crypto';
export type { Ed25519KeyPair, X25519KeyPair } from './crypto';
export * from './x3dh';
export * from './ratchet';
export * from './channel';
export * from './trust';
export * from './store';
