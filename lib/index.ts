/**
 * agentmesh-e2e: end-to-end encryption between AI agents. `await ready()` first.
 *
 * This root entry runs in Node, Bun, Deno and browsers: it imports no `node:` module and no native
 * package. The SQLite and Redis stores are at `agentmesh-e2e/sqlite` and `agentmesh-e2e/redis`.
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
// Stores that need no backend package and no Node built-in. SqliteStore and RedisStore live behind
// the subpaths `agentmesh-e2e/sqlite` and `agentmesh-e2e/redis`, so this entry loads no native module.
export * from './store/types';
export { StorageCipher, STORAGE_KEY_BYTES, SEALED_FORMAT_VERSION } from './store/storage-cipher';
export { InMemoryStore, InMemoryPreKeyStore } from './store/memory';
export { PersistentChannel, sessionContext, inboxMessageId } from './store/persistent-channel';
export type { SessionLocation, ReceiveOptions, LoadOptions, InboxMessage } from './store/persistent-channel';
export { StoredKeyManager, establishmentFingerprint } from './store/stored-key-manager';
export type { KeyManagerLocation, AcceptOptions } from './store/stored-key-manager';
export {
  maintainPreKeys, DEFAULT_MIN_ONE_TIME_PRE_KEYS, DEFAULT_TARGET_ONE_TIME_PRE_KEYS, DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
  DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
} from './store/prekey-maintenance';
export type { PreKeyPolicy, MaintenanceReport } from './store/prekey-maintenance';
