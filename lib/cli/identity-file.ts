/**
 * The identity file `agentmesh-e2e keygen` writes: the public side in the clear, the Ed25519
 * secret key sealed by `StorageCipher` (XChaCha20-Poly1305) under a key that is either derived from
 * a passphrase with Argon2id (libsodium's `crypto_pwhash`) or read from a 32-byte key file.
 */
import { E2EError } from '../errors';
import { fromBase64, memzero, randomBytes, toBase64, utf8 } from '../crypto';
import { sodium } from '../sodium';
import { StorageCipher } from '../store/storage-cipher';
import { StoreErrorReason } from '../store/reasons';
import { AgentIdentity } from '../trust';

/** The `type` field of an identity file. */
export const IDENTITY_FILE_TYPE = 'agentmesh-e2e-identity';

/** How the sealing key is obtained. */
export type IdentityProtection = { kdf: 'argon2id13'; opslimit: number; memlimit: number; salt: string } | { kdf: 'key-file' };

/** The JSON of an identity file (no secret in the clear). */
export interface IdentityFileJSON {
  type: typeof IDENTITY_FILE_TYPE;
  version: 1;
  did: string;
  /** Ed25519 public key, standard base64. */
  publicKey: string;
  fingerprint: string;
  protection: IdentityProtection;
  /** The 64-byte Ed25519 secret key, sealed (`"AMS" 0x01 …`), standard base64. */
  sealed: string;
}

/** Where the sealing key comes from: a passphrase or the 32 bytes of a key file. */
export type SealingSecret = { passphrase: string } | { key: Uint8Array };

/** Argon2id cost: libsodium's "interactive" limits (2 passes, 64 MiB). */
function pwhashLimits(): { opslimit: number; memlimit: number } {
  const w = sodium().wrapper;
  return { opslimit: w.crypto_pwhash_OPSLIMIT_INTERACTIVE, memlimit: w.crypto_pwhash_MEMLIMIT_INTERACTIVE };
}

function sealingKey(secret: SealingSecret, protection: IdentityProtection): Uint8Array {
  if (protection.kdf === 'key-file') {
    if (!('key' in secret)) throw new E2EError('INVALID_ARGUMENT', 'this identity is sealed with a key file: pass --key-file');
    if (secret.key.length !== 32) throw new E2EError('INVALID_KEY', 'a key file holds 32 bytes (raw, or 64 hex digits)');
    return Uint8Array.from(secret.key);
  }
  if (!('passphrase' in secret)) throw new E2EError('INVALID_ARGUMENT', 'this identity is sealed with a passphrase');
  if (secret.passphrase.length === 0) throw new E2EError('INVALID_ARGUMENT', 'the passphrase is empty');
  const w = sodium().wrapper;
  return w.crypto_pwhash(
    32,
    utf8(secret.passphrase),
    fromBase64(protection.salt),
    protection.opslimit,
    protection.memlimit,
    w.crypto_pwhash_ALG_ARGON2ID13,
  );
}

function context(did: string): string {
  return `identity|${did}`;
}

/**
 * Seals `identity` into an identity file's JSON. The identity's secret key is copied, sealed and
 * the copy wiped; nothing secret is in the result but the sealed blob.
 */
export function sealIdentity(identity: AgentIdentity, secret: SealingSecret): IdentityFileJSON {
  const protection: IdentityProtection =
    'passphrase' in secret ? { kdf: 'argon2id13', ...pwhashLimits(), salt: toBase64(randomBytes(16)) } : { kdf: 'key-file' };
  const key = sealingKey(secret, protection);
  const cipher = new StorageCipher(key);
  memzero(key);
  const sk = identity.exportSecretKey();
  try {
    const pub = identity.toJSON();
    return {
      type: IDENTITY_FILE_TYPE,
      version: 1,
      did: pub.did,
      publicKey: pub.publicKey,
      fingerprint: pub.fingerprint,
      protection,
      sealed: toBase64(cipher.seal(sk, context(pub.did))),
    };
  } finally {
    memzero(sk);
    cipher.wipe();
  }
}

/** Checks the shape of an identity file; `MALFORMED_MESSAGE` otherwise. */
export function parseIdentityFile(text: string): IdentityFileJSON {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new E2EError('MALFORMED_MESSAGE', 'identity file is not JSON');
  }
  const o = j as Partial<IdentityFileJSON> | null;
  if (
    typeof o !== 'object' ||
    o === null ||
    o.type !== IDENTITY_FILE_TYPE ||
    o.version !== 1 ||
    typeof o.did !== 'string' ||
    typeof o.publicKey !== 'string' ||
    typeof o.sealed !== 'string' ||
    typeof o.protection !== 'object' ||
    o.protection === null
  ) {
    throw new E2EError('MALFORMED_MESSAGE', `not an ${IDENTITY_FILE_TYPE} file of version 1`);
  }
  return o as IdentityFileJSON;
}

/**
 * The identity sealed in `file`. `STORE_ERROR` (`wrong_key`) for a wrong passphrase or key, or a
 * modified file; `INVALID_KEY` if the secret does not match the file's public key.
 */
export function openIdentity(file: IdentityFileJSON, secret: SealingSecret): AgentIdentity {
  const key = sealingKey(secret, file.protection);
  const cipher = new StorageCipher(key);
  memzero(key);
  let sk: Uint8Array;
  try {
    sk = cipher.open(fromBase64(file.sealed), context(file.did));
  } catch (e) {
    const reason = (e as { reason?: unknown }).reason;
    if (reason !== StoreErrorReason.UNKNOWN_STORAGE_KEY && reason !== StoreErrorReason.TAMPERED) throw e;
    throw new E2EError(
      'STORE_ERROR',
      'the passphrase or key file does not open this identity (or the file was modified)',
      StoreErrorReason.WRONG_KEY,
    );
  } finally {
    cipher.wipe();
  }
  try {
    const identity = AgentIdentity.fromSecretKey(sk, { did: file.did });
    if (identity.toJSON().publicKey !== file.publicKey) {
      identity.wipe();
      throw new E2EError('INVALID_KEY', "the sealed secret key is not the file's public key");
    }
    return identity;
  } finally {
    memzero(sk);
  }
}
