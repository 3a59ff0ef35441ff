/**
 * The storage interfaces. Protocol code never imports a store; stores import protocol types only.
 *
 * Every method returns `T | Promise<T>` (`MaybePromise<T>`): the in-memory and SQLite stores answer
 * synchronously, the Redis store with promises. Code written against the interfaces must `await`
 * every call; code holding an `InMemoryStore` or `SqliteStore` may use the results directly.
 */
import { PreKeyBundle } from '../x3dh';

/** A value, or a promise of it: what every store method returns. */
export type MaybePromise<T> = T | Promise<T>;

/** The public half of a one-time pre-key, as published to a {@link PreKeyStore}. */
export interface PublicOneTimePreKey {
  /** The key's id (the manager's one-time pre-key id). */
  readonly keyId: number;
  /** X25519 public key, 32 bytes. */
  readonly publicKey: Uint8Array;
}

/**
 * The public half of a one-time KEM pre-key, as published to a {@link PreKeyStore} (what
 * `X3DHKeyManager.generateKemPreKeys` returns has these fields).
 */
export interface PublicKemPreKeyEntry {
  /** The key's id (the manager's KEM pre-key id). */
  readonly keyId: number;
  /** ML-KEM-768 encapsulation key, 1184 bytes. */
  readonly publicKey: Uint8Array;
  /** The identity key's signature of it (as `PreKeyBundle.kemPreKeySignature`), 64 bytes. */
  readonly signature: Uint8Array;
}

/**
 * The public directory of pre-keys: per DID, the identity and current signed pre-key, a pool of
 * one-time pre-keys and a pool of one-time KEM pre-keys, each key handed out at most once (also
 * across processes sharing the store), and the DID's last-resort KEM pre-key.
 *
 * Last resort: when the one-time pool of a DID is empty, {@link claimBundle} returns its bundle
 * without a one-time pre-key (three-DH X3DH, as Signal does); when its KEM pool is empty, with the
 * last-resort KEM pre-key. The responder then refuses a second establishment with the same
 * ephemeral key (see {@link KeyManagerStore.markEstablishment}).
 */
export interface PreKeyStore {
  /**
   * Publishes `bundle` for `did`: its identity and signed pre-key replace the stored ones, its
   * one-time pre-key (if any) joins the pool, and its KEM pre-key (if any) becomes the DID's
   * last-resort KEM pre-key, replacing the previous one (publish the bundle of `getPublicBundle()`
   * without `kemId`, which carries the manager's last-resort key; a bundle without one keeps the
   * stored last-resort KEM pre-key). Checked like `initiate` checks it (shape,
   * `BAD_SIGNATURE` — also of the KEM pre-key —, `IDENTITY_MISMATCH`); a bundle whose Ed25519
   * identity differs from the one already stored for `did` is refused with `IDENTITY_MISMATCH`
   * (call {@link removeBundle} first to re-key a DID). A one-time pre-key that was claimed before
   * never re-enters the pool; a KEM pre-key whose id is a pooled or claimed one-time KEM pre-key is
   * refused (`INVALID_STATE`, reason `kem_id_reused`): it would be handed out to every initiator.
   */
  storeBundle(did: string, bundle: PreKeyBundle): MaybePromise<void>;
  /**
   * The bundle of `did` with its lowest-id unclaimed one-time pre-key and lowest-id unclaimed
   * one-time KEM pre-key (else the last-resort KEM pre-key, if any), without claiming them (a
   * peek, as in the tutorial); `null` for an unknown DID. Use {@link claimBundle} when several
   * initiators may race.
   */
  getBundle(did: string): MaybePromise<PreKeyBundle | null>;
  /**
   * Claims one-time pre-key `keyId` of `did`: `true` the first time, `false` ever after (and for a
   * key that was never published).
   */
  consumeOneTimeKey(did: string, keyId: number): MaybePromise<boolean>;
  /**
   * Atomically takes the bundle of `did` with one unclaimed one-time pre-key and one unclaimed
   * one-time KEM pre-key (the lowest ids), which leave their pools; with an empty one-time pool,
   * the bundle without a one-time pre-key; with an empty KEM pool, the bundle with the last-resort
   * KEM pre-key (without one when none was published: a classic bundle); `null` for an unknown DID.
   */
  claimBundle(did: string): MaybePromise<PreKeyBundle | null>;
  /**
   * Adds one-time pre-keys to the pool of `did` (which must have a bundle: `INVALID_STATE` if not).
   * Re-adding a pooled key with the same public key does nothing; with another key, or after it
   * was claimed, it is refused (`INVALID_STATE`, reason `otk_id_reused`) and nothing is added.
   */
  addOneTimePreKeys(did: string, keys: readonly PublicOneTimePreKey[]): MaybePromise<void>;
  /** How many unclaimed one-time pre-keys the pool of `did` holds (0 for an unknown DID). */
  countOneTimePreKeys(did: string): MaybePromise<number>;
  /**
   * Adds one-time KEM pre-keys (1 to 1,000) to the KEM pool of `did`, which must have a bundle
   * (`INVALID_STATE`, reason `no_bundle`). Each signature is checked against the stored identity
   * (`BAD_SIGNATURE`; `INVALID_KEY` for a key of the wrong length); re-adding a pooled key with the same public key does nothing; with another key, or
   * after it was claimed, it is refused (`INVALID_STATE`, reason `kem_id_reused`). On any error
   * nothing is added.
   */
  addKemPreKeys(did: string, keys: readonly PublicKemPreKeyEntry[]): MaybePromise<void>;
  /**
   * Claims one-time KEM pre-key `keyId` of `did`: `true` the first time, `false` ever after (and
   * for a key never published, and for the last-resort KEM pre-key, which is never claimed).
   */
  consumeKemPreKey(did: string, keyId: number): MaybePromise<boolean>;
  /** How many unclaimed one-time KEM pre-keys the KEM pool of `did` holds (0 for an unknown DID). */
  countKemPreKeys(did: string): MaybePromise<number>;
  /** Deletes the bundle, both pools, the last-resort KEM pre-key and the claim histories of `did`. `true` if there was a bundle. */
  removeBundle(did: string): MaybePromise<boolean>;
}

/** A stored record and its version (1 for the first save; every save adds 1). */
export interface StoredRecord {
  /** The version a save names as `expectedVersion` to replace this record (`STALE_STATE` if it moved on). */
  readonly version: number;
  /** The record's bytes, as saved (sealed by the caller: stores never see secrets in the clear). */
  readonly data: Uint8Array;
}

/** A received message kept until the application acknowledges it (sealed by the caller). */
export interface InboxRecord {
  /** The message id: {@link inboxMessageId} of its envelope (1 to 128 printable ASCII characters). */
  readonly id: string;
  /** The session version saved together with it (orders the inbox by arrival). */
  readonly version: number;
  /** The sealed plaintext, as saved. */
  readonly data: Uint8Array;
}

/**
 * The saved state of each channel, keyed by (local DID, peer DID), with compare-and-swap: a save
 * names the version it is based on (0 to create) and is refused with `STALE_STATE` if the stored
 * version differs, so two processes can never silently fork a session. Versions keep increasing
 * across a delete and re-create, so a writer holding a deleted session's version is refused too.
 */
export interface SessionStore {
  /** The saved session, or `null`. */
  loadSession(localDid: string, peerDid: string): MaybePromise<StoredRecord | null>;
  /**
   * Saves `data` if the stored version is `expectedVersion` (0: no session is stored); returns the
   * new version. `STALE_STATE` otherwise, and nothing changes.
   */
  saveSession(localDid: string, peerDid: string, data: Uint8Array, expectedVersion: number): MaybePromise<number>;
  /** Deletes the session and its inbox; `true` if there was a session. */
  deleteSession(localDid: string, peerDid: string): MaybePromise<boolean>;
  /** The peer DIDs with a saved session for `localDid`, sorted. */
  listSessions(localDid: string): MaybePromise<string[]>;
  /**
   * In one atomic write: saves the session as {@link saveSession} does and adds `entry` to the
   * session's inbox (its version is the new session version). Returns the new version.
   * `STALE_STATE` as {@link saveSession}; `INVALID_STATE` (reason `inbox_full`) when the inbox holds
   * {@link MAX_INBOX_ENTRIES} other entries; `INVALID_STATE` (reason `inbox_id_reused`) when an entry
   * with this id is stored already. On any error nothing changes.
   */
  saveSessionWithInbox(
    localDid: string,
    peerDid: string,
    data: Uint8Array,
    expectedVersion: number,
    entry: { readonly id: string; readonly data: Uint8Array },
  ): MaybePromise<number>;
  /** The inbox entry `id` of the session, or `null`. */
  loadInboxEntry(localDid: string, peerDid: string, id: string): MaybePromise<InboxRecord | null>;
  /** Every inbox entry of the session, oldest first. */
  listInbox(localDid: string, peerDid: string): MaybePromise<InboxRecord[]>;
  /** Deletes (acknowledges) inbox entry `id`; `true` if it was there. */
  deleteInboxEntry(localDid: string, peerDid: string, id: string): MaybePromise<boolean>;
}

/**
 * The private side a key manager needs to respond after a restart (its identity, signed pre-keys
 * and unclaimed one-time private keys, sealed by the caller), with the same compare-and-swap as
 * sessions, and the replay guard of establishments made without a one-time pre-key.
 */
export interface KeyManagerStore {
  /** The saved key-manager state of `did`, or `null`. */
  loadKeyManager(did: string): MaybePromise<StoredRecord | null>;
  /** Compare-and-swap save, as {@link SessionStore.saveSession}. */
  saveKeyManager(did: string, data: Uint8Array, expectedVersion: number): MaybePromise<number>;
  /** Deletes the key-manager state and replay records of `did`; `true` if there was a state. */
  deleteKeyManager(did: string): MaybePromise<boolean>;
  /**
   * Records that `did` accepted the establishment `fingerprint` under signed pre-key
   * `signedPreKeyId`: `true` the first time, `false` for a replay (atomic across processes).
   */
  markEstablishment(did: string, signedPreKeyId: number, fingerprint: string): MaybePromise<boolean>;
  /** Forgets the replay records of a retired signed pre-key (establishments with it fail anyway). */
  forgetEstablishments(did: string, signedPreKeyId: number): MaybePromise<void>;
}

/**
 * What {@link AgentStore.saveAcceptance} writes in one atomic step when a responder accepts an
 * establishment: the spent one-time pre-key or one-time KEM pre-key (the new key-manager state) or
 * the replay record of an establishment without either, together with the new session.
 */
export interface AcceptanceWrite {
  /** The responder: owner of the key manager and local DID of the session. */
  readonly did: string;
  /** The initiator's DID. */
  readonly peerDid: string;
  /** The key-manager state with the one-time keys removed, compare-and-swap against `expectedVersion`. */
  readonly keyManager?: { readonly data: Uint8Array; readonly expectedVersion: number };
  /** The establishment to record (one that spent no one-time key), as {@link KeyManagerStore.markEstablishment}. */
  readonly establishment?: { readonly signedPreKeyId: number; readonly fingerprint: string };
  /** The new session, compare-and-swap against `expectedVersion` (0: none may be saved). */
  readonly session: { readonly data: Uint8Array; readonly expectedVersion: number };
}

/** The versions {@link AgentStore.saveAcceptance} saved. */
export interface AcceptanceVersions {
  /** The new key-manager version, or `null` when no key-manager state was written. */
  readonly keyManagerVersion: number | null;
  /** The new session version. */
  readonly sessionVersion: number;
}

/** A store for everything: pre-keys, sessions and key managers. All three implementations are one. */
export interface AgentStore extends PreKeyStore, SessionStore, KeyManagerStore {
  /**
   * Writes an acceptance atomically: all of it or nothing. `STALE_STATE` with reason `key_manager`
   * or `session` when a compare-and-swap fails; `DUPLICATE_MESSAGE` (reason `establishment_replay`)
   * when the establishment was recorded before. Exactly one of `keyManager` and `establishment` is given.
   */
  saveAcceptance(write: AcceptanceWrite): MaybePromise<AcceptanceVersions>;
  /** Releases the store's resources (closes a database; does not close a caller's Redis client). */
  close(): MaybePromise<void>;
}
