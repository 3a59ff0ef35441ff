/**
 * Stores: pre-keys, sessions and key managers behind small interfaces, in memory, in SQLite (the
 * embedded default) and in Redis; encryption at rest; channels and key managers that persist
 * themselves with compare-and-swap.
 */
export * from './types';
export { StorageCipher, STORAGE_KEY_BYTES, SEALED_FORMAT_VERSION } from './storage-cipher';
export { InMemoryStore, InMemoryPreKeyStore } from './memory';
export { SqliteStore, SQLITE_SCHEMA_VERSION } from './sqlite';
export type { SqliteStoreOptions } from './sqlite';
export { RedisStore } from './redis';
export type { RedisStoreOptions } from './redis';
export { PersistentChannel, sessionContext, inboxMessageId } from './persistent-channel';
export type { SessionLocation, ReceiveOptions, LoadOptions, InboxMessage } from './persistent-channel';
export { StoredKeyManager, establishmentFingerprint } from './stored-key-manager';
export type { KeyManagerLocation, AcceptOptions } from './stored-key-manager';
export { maintainPreKeys } from './prekey-maintenance';
export type { PreKeyPolicy, MaintenanceReport } from './prekey-maintenance';
