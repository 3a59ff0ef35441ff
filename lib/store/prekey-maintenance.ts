/**
 * The pre-key lifecycle: refill one-time pre-keys below a threshold, rotate the signed pre-key on a
 * schedule, and retire a replaced signed pre-key only after a grace window, so establishments made
 * from a bundle fetched before the rotation still complete. Run {@link maintainPreKeys} at start-up
 * and then periodically (e.g. hourly) and after accepting channels.
 *
 * Private keys are saved before their public halves are published, so every key an initiator can
 * claim has its private half in the store. When the pool runs dry anyway, initiators get the bundle
 * without a one-time pre-key (the last resort; see `PreKeyStore`).
 */
import { E2EError } from '../errors';
import { constantTimeEqual, readFields, typed } from '../crypto';
import { PreKeyBundle, X3DHKeyManager } from '../x3dh';
import { StoredKeyManager, isStoredKeyManager } from './stored-key-manager';
import { PreKeyStore, PublicOneTimePreKey } from './types';
import { callStore } from './validate';
import {
  DEFAULT_MIN_ONE_TIME_PRE_KEYS,
  DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
  DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
  DEFAULT_TARGET_ONE_TIME_PRE_KEYS,
} from '../limits';

/** When to refill, rotate and retire. */
export interface PreKeyPolicy {
  /** Refill when the directory holds fewer unclaimed one-time pre-keys than this (default 20). */
  readonly minOneTimePreKeys?: number;
  /** Refill up to this many (default 100, at most 10000). */
  readonly targetOneTimePreKeys?: number;
  /** Rotate the signed pre-key once it is this old (default 7 days). */
  readonly signedPreKeyMaxAgeMs?: number;
  /** Keep a replaced signed pre-key usable this long after its replacement (default 14 days). */
  readonly signedPreKeyGraceMs?: number;
  /** The clock, ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
}

/** What one maintenance run did. */
export interface MaintenanceReport {
  /** Id of the new signed pre-key, if one was made. */
  readonly rotatedTo: number | null;
  /** Ids of the signed pre-keys retired (past their grace window). */
  readonly retired: number[];
  /** How many one-time pre-keys were made and published. */
  readonly addedOneTimePreKeys: number;
  /** Whether the bundle (identity and signed pre-key) was (re-)published. */
  readonly publishedBundle: boolean;
}

const DAY = 24 * 3600 * 1000;

interface Resolved {
  min: number;
  target: number;
  maxAge: number;
  grace: number;
  now: () => number;
}

const POLICY_FIELDS = ['minOneTimePreKeys', 'targetOneTimePreKeys', 'signedPreKeyMaxAgeMs', 'signedPreKeyGraceMs', 'now'] as const;

function resolve(policy: unknown): Resolved {
  if (typeof policy !== 'object' || policy === null) throw new E2EError('INVALID_ARGUMENT', 'policy must be an object');
  // Read once into a plain object: a throwing getter becomes INVALID_ARGUMENT, and no field changes later.
  const p = readFields(policy, POLICY_FIELDS, 'policy');
  const int = (v: unknown, dflt: number, name: string, max: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      throw new E2EError('INVALID_ARGUMENT', `${name} must be an integer in [0, ${max}]`);
    }
    return v;
  };
  const r: Resolved = {
    min: int(p.minOneTimePreKeys, DEFAULT_MIN_ONE_TIME_PRE_KEYS, 'minOneTimePreKeys', 10000),
    target: int(p.targetOneTimePreKeys, DEFAULT_TARGET_ONE_TIME_PRE_KEYS, 'targetOneTimePreKeys', 10000),
    maxAge: int(p.signedPreKeyMaxAgeMs, DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS, 'signedPreKeyMaxAgeMs', 3650 * DAY),
    grace: int(p.signedPreKeyGraceMs, DEFAULT_SIGNED_PRE_KEY_GRACE_MS, 'signedPreKeyGraceMs', 3650 * DAY),
    now: (p.now ?? Date.now) as () => number,
  };
  if (r.min > r.target) throw new E2EError('INVALID_ARGUMENT', 'minOneTimePreKeys must not exceed targetOneTimePreKeys');
  if (typeof r.now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function');
  return r;
}

interface Planned {
  rotatedTo: number | null;
  retired: number[];
  added: PublicOneTimePreKey[];
  bundle: PreKeyBundle;
}

/** The change one run makes to the key manager (pure in the manager it is given: it may run again). */
function plan(m: X3DHKeyManager, pool: number, p: Resolved): Planned {
  // The clock is the caller's: a throw or a non-number is a bad policy, not a foreign error escaping.
  const now = typed(() => p.now(), 'INVALID_ARGUMENT', 'policy.now');
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new E2EError('INVALID_ARGUMENT', 'policy.now must return a finite number');
  const current = m.signedPreKey;
  const rotatedTo = current === null || now - current.createdAt >= p.maxAge ? m.generateSignedPreKey().keyId : null;
  const currentId = (m.signedPreKey as { keyId: number }).keyId;
  // Ids grow with time, so the key after an old one in id order is the one that replaced it.
  const ids = [...m.signedPreKeyIds].sort((a, b) => a - b);
  const retired: number[] = [];
  ids.forEach((id, i) => {
    if (id === currentId) return;
    const successor = m.getSignedPreKey(ids[i + 1]);
    if (successor && now - successor.createdAt >= p.grace) {
      m.retireSignedPreKey(id);
      retired.push(id);
    }
  });
  const need = pool < p.min ? p.target - pool : 0;
  const added = need > 0 ? m.generateOneTimePreKeys(need).map((k) => ({ keyId: k.keyId, publicKey: k.keyPair.publicKey })) : [];
  return { rotatedTo, retired, added, bundle: m.getPublicBundle() };
}

/** Whether the published bundle `a` (a directory's answer, maybe the application's own) has `b`'s base. */
function sameBase(a: unknown, b: PreKeyBundle): boolean {
  if (a === null || a === undefined) return false;
  try {
    const p = readFields(a, ['signedPreKeyId', 'signedPreKey', 'identityKeyEd'], 'published bundle');
    return (
      p.signedPreKeyId === b.signedPreKeyId &&
      constantTimeEqual(p.signedPreKey as Uint8Array, b.signedPreKey) &&
      constantTimeEqual(p.identityKeyEd as Uint8Array, b.identityKeyEd)
    );
  } catch {
    return false; // unreadable or not bytes: publish again
  }
}

const DIRECTORY_METHODS = ['countOneTimePreKeys', 'getBundle', 'storeBundle', 'addOneTimePreKeys'] as const;

/** Whether `d` has the methods maintenance uses (never throws: a throwing getter means no). */
function isDirectory(d: unknown): d is PreKeyStore {
  if ((typeof d !== 'object' && typeof d !== 'function') || d === null) return false;
  try {
    const o = d as Record<string, unknown>;
    return DIRECTORY_METHODS.every((m) => typeof o[m] === 'function');
  } catch {
    return false;
  }
}

/**
 * One maintenance run for `keys.did` against the public `directory`: rotates and retires signed
 * pre-keys per `policy`, refills the one-time pool, saves the key manager (compare-and-swap), then
 * publishes what changed and forgets the replay records of retired keys.
 * @example
 * const report = await maintainPreKeys(bobKeys, store, { minOneTimePreKeys: 20, targetOneTimePreKeys: 100 });
 */
export async function maintainPreKeys(
  keys: StoredKeyManager,
  directory: PreKeyStore,
  policy: PreKeyPolicy = {},
): Promise<MaintenanceReport> {
  // The brand, not instanceof: a Proxy's trap may throw, and an object made from the prototype has no state.
  if (!isStoredKeyManager(keys)) throw new E2EError('INVALID_ARGUMENT', 'keys must be a StoredKeyManager');
  if (!isDirectory(directory)) throw new E2EError('INVALID_ARGUMENT', 'directory must implement PreKeyStore');
  const p = resolve(policy);
  // A directory of the application's own may throw anything: callStore makes it a STORE_ERROR.
  const pool = await callStore('countOneTimePreKeys', () => directory.countOneTimePreKeys(keys.did));
  const published = await callStore('getBundle', () => directory.getBundle(keys.did));
  const r = await keys.update((m) => plan(m, pool, p));
  const publish = !sameBase(published, r.bundle);
  if (publish) await callStore('storeBundle', () => directory.storeBundle(keys.did, r.bundle));
  if (r.added.length > 0) await callStore('addOneTimePreKeys', () => directory.addOneTimePreKeys(keys.did, r.added));
  for (const id of r.retired) await callStore('forgetEstablishments', () => keys.store.forgetEstablishments(keys.did, id));
  return { rotatedTo: r.rotatedTo, retired: r.retired, addedOneTimePreKeys: r.added.length, publishedBundle: publish };
}
