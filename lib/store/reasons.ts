/** Why a store failed: the stable `reason` strings of `STORE_ERROR` errors. */

/** Stable reasons of `STORE_ERROR`. Match on these, never on the message text. */
export const StoreErrorReason = {
  /** The backend (a driver, Redis, the application's own store) threw; the original is the error's `cause`. */
  BACKEND: 'backend',
  /** An optional backend package (better-sqlite3, ioredis) is not installed. */
  BACKEND_MISSING: 'backend_missing',
  /** An optional backend package is installed but failed to load (e.g. built for another Node). */
  BACKEND_UNLOADABLE: 'backend_unloadable',
  /** The store returned something that is no record, or a record that does not parse. */
  CORRUPT: 'corrupt',
  /** A database file written by a newer release (an unknown schema version). */
  UNKNOWN_SCHEMA: 'unknown_schema',
  /** Not a sealed blob, or a sealed-blob format this release does not read. */
  UNKNOWN_FORMAT: 'unknown_format',
  /** A blob sealed under a storage key the cipher does not have. */
  UNKNOWN_STORAGE_KEY: 'unknown_storage_key',
  /** A sealed blob that does not authenticate: modified, truncated, or sealed for another slot. */
  TAMPERED: 'tampered',
  /** The CLI's identity file does not open with the passphrase or key file given. */
  WRONG_KEY: 'wrong_key',
} as const;

/** One of the stable reasons of {@link StoreErrorReason}. */
export type StoreErrorReason = (typeof StoreErrorReason)[keyof typeof StoreErrorReason];
