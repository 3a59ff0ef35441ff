/**
 * agentmesh-e2e: end-to-end encryption between AI agents. `await ready()` first.
 *
 * This root entry runs in Node, Bun, Deno and browsers: it imports no `node:` module and no native
 * package. The SQLite and Redis stores are at `agentmesh-e2e/sqlite` and `agentmesh-e2e/redis`, the
 * mesh client at `agentmesh-e2e/mesh`, the relay and registry at `agentmesh-e2e/server`.
 *
 * Every name is listed here on purpose: what is not listed is internal and may change in any release.
 * `api/` holds the report of this surface that CI compares, so a change to it is a visible diff.
 * @packageDocumentation
 */

// Start-up and errors.
export { ready, isReady, backend } from './sodium';
export type { Backend, BackendChoice, ReadyOptions } from './sodium';
export { E2EError, ErrorCode, isE2EError } from './errors';
export * as limits from './limits';

// Sessions: X3DH key agreement, the Double Ratchet and the channel over both.
export { X3DHKeyManager, bundleFromJSON, bundleToJSON } from './x3dh';
export type {
  HeldKemPreKey,
  KeyManagerState,
  OneTimePreKey,
  PublicKemPreKey,
  PreKeyBundle,
  PreKeyBundleJSON,
  SignedPreKey,
  X3DHInitiation,
  X3DHRespondParams,
  X3DHResponse,
} from './x3dh';
export { SecureChannel, ChannelEstablishment } from './channel';
export type {
  ChannelEstablishmentFields,
  ChannelEstablishmentJSON,
  ChannelOptions,
  ReceiverOptions,
  SenderChannel,
  SenderOptions,
} from './channel';
export { DoubleRatchet, EncryptedMessage, RatchetState } from './ratchet';
export type {
  EncryptedMessageJSON,
  MessageHeader,
  RatchetLimits,
  RatchetOptions,
  RatchetStateDict,
  RatchetStateInit,
  SkippedKey,
  SkippedKeys,
} from './ratchet';

// Identities and the trust-gated bridge.
export {
  AgentIdentity,
  EncryptedTrustBridge,
  TrustHandshake,
  InMemoryIdentityRegistry,
  LocalTrustNetwork,
  TrustRejectReason,
  TRUST_LEVEL_THRESHOLDS,
  trustLevel,
  didFromPublicKey,
  keyFingerprint,
  parseHandshakeChallenge,
  parseHandshakeResponse,
} from './trust';
export type {
  AgentIdentityJSON,
  AgentIdentityOptions,
  ChallengeOptions,
  ChallengeReply,
  EncryptedTrustBridgeOptions,
  HandshakeChallenge,
  HandshakeResponse,
  HandshakeResult,
  IdentityRecord,
  IdentityRegistration,
  IdentityRegistry,
  IdentityStatus,
  LocalTrustNetworkOptions,
  MutualRoles,
  OpenChannelOptions,
  TrustEndpoint,
  TrustHandshakeOptions,
  TrustLevel,
  TrustSession,
  TrustTransport,
  TrustWireEvent,
  VerifyOptions,
} from './trust';
export type { PersistedKeyManager } from './trust/prekey-pool';

// Stores that need no backend package and no Node built-in.
export type {
  AcceptanceVersions,
  AcceptanceWrite,
  AgentStore,
  InboxRecord,
  KeyManagerStore,
  MaybePromise,
  PreKeyStore,
  PublicKemPreKeyEntry,
  PublicOneTimePreKey,
  SessionStore,
  StoredRecord,
} from './store/types';
export { StorageCipher, STORAGE_KEY_BYTES } from './store/storage-cipher';
export { StoreErrorReason } from './store/reasons';
export { InMemoryStore, InMemoryPreKeyStore } from './store/memory';
export { PersistentChannel, inboxMessageId } from './store/persistent-channel';
export type { SessionLocation, ReceiveOptions, LoadOptions, InboxMessage } from './store/persistent-channel';
export { StoredKeyManager, establishmentFingerprint } from './store/stored-key-manager';
export type { KeyManagerLocation, AcceptOptions } from './store/stored-key-manager';
export { maintainPreKeys } from './store/prekey-maintenance';
export type { PreKeyPolicy, MaintenanceReport } from './store/prekey-maintenance';

// Primitives, for the bytes around the protocol (each a few lines over libsodium).
export {
  AEAD_KEY_BYTES,
  AEAD_TAG_BYTES,
  CHACHA20_POLY1305_NONCE_BYTES,
  XCHACHA20_POLY1305_NONCE_BYTES,
  chacha20Poly1305Encrypt,
  chacha20Poly1305Decrypt,
  xchacha20Poly1305Encrypt,
  xchacha20Poly1305Decrypt,
  concatBytes,
  u32be,
  toHex,
  fromHex,
  toBase64,
  fromBase64,
  toBase64Url,
  fromBase64Url,
  utf8,
  fromUtf8,
  constantTimeEqual,
  memzero,
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SECRET_KEY_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SIGNATURE_BYTES,
  ed25519KeyPair,
  ed25519KeyPairFromSeed,
  ed25519Sign,
  ed25519Verify,
  ed25519SecretKeyToX25519,
  ed25519PublicKeyToX25519,
  SHA256_BYTES,
  sha256,
  HKDF_SHA256_MAX_BYTES,
  hkdfExtract,
  hkdfExpand,
  hkdfSha256,
  HMAC_SHA256_BYTES,
  hmacSha256,
  randomBytes,
  X25519_BYTES,
  x25519,
  x25519KeyPair,
  x25519PublicKey,
  MLKEM768_PUBLIC_KEY_BYTES,
  MLKEM768_SECRET_KEY_BYTES,
  MLKEM768_CIPHERTEXT_BYTES,
  MLKEM768_SHARED_SECRET_BYTES,
  MLKEM768_SEED_BYTES,
  mlkem768KeyPair,
  mlkem768KeyPairFromSeed,
  mlkem768Encapsulate,
  mlkem768Decapsulate,
} from './crypto';
export type { Ed25519KeyPair, X25519KeyPair, MlKem768KeyPair, MlKem768Encapsulation } from './crypto';
