/**
 * The pre-key lifecycle: refill one-time pre-keys below a threshold, rotate the signed pre-key on a
 * schedule, and retire a replaced signed pre-key only after a grace window, so establishments made
 * from a bundle fetched before the rotation still complete. For a post-quantum agent (PQXDH), the
 * same for its KEM pre-keys: the pool of one-time KEM pre-keys is refilled, and the last-resort KEM
 * pre-key rotates with the signed pre-key and is retired after the same grace window. Run
 * {@link maintainPreKeys} at start-up and then periodically (e.g. hourly) and after accepting channels.
 *
 * Private keys are saved before their public halves are published, so every key an initiator can
 * claim has its private half in the store. When a pool runs dry anyway, initiators get the bundle
 * without a one-time pre-key, or with the last-resort KEM pre-key (the last resorts; see `PreKeyStore`).
 */
import { E2EError } from '../errors';
import { constantTimeEqual, readFields, typed } from '../crypto';
import { PreKeyBundle, X3DHKeyManager } from '../x3dh';
import { StoredKeyManager, isStoredKeyManager } from './stored-key-manager';
import { PreKeyStore, PublicKemPreKeyEntry, PublicOneTimePreKey } from './types';
import { callStore, storeFailure } from './validate';
import { StoreErrorReason } from './reasons';
import {
  DEFAULT_MIN_KEM_PRE_KEYS,
  DEFAULT_MIN_ONE_TIME_PRE_KEYS,
  DEFAULT_SIGNED_PRE_KEY_GRACE_MS,
  DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS,
  DEFAULT_TARGET_KEM_PRE_KEYS,
  DEFAULT_TARGET_ONE_TIME_PRE_KEYS,
  MAX_KEM_PRE_KEYS_IN_STATE,
  MAX_KEM_PRE_KEYS_PER_CALL,
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
  /**
   * Whether to keep KEM pre-keys (PQXDH) too: refill the one-time KEM pre-keys, rotate the
   * last-resort KEM pre-key with the signed pre-key (`signedPreKeyMaxAgeMs`, and whenever the
   * signed pre-key rotates) and retire a replaced one after `signedPreKeyGraceMs`. Default: whether
   * the manager has a last-resort KEM pre-key already — a manager made post-quantum (with
   * `generateLastResortKemPreKey()`) stays so, a classic one stays classic. `true` makes a classic
   * manager post-quantum (its first run makes the last-resort KEM pre-key); `false` leaves any KEM
   * pre-keys as they are. The directory then needs `countKemPreKeys` and `addKemPreKeys`.
   */
  readonly postQuantum?: boolean;
  /** Refill when the directory holds fewer unclaimed one-time KEM pre-keys than this (default 20). */
  readonly minKemPreKeys?: number;
  /**
   * Refill up to this many one-time KEM pre-keys (default 100, at most 1000). A refill never makes
   * the manager hold more than {@link MAX_KEM_PRE_KEYS_IN_STATE} less 64 KEM pre-keys (the most a
   * saved manager may hold), however many one-time KEM pre-keys were claimed and never used.
   */
  readonly targetKemPreKeys?: number;
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
  /**
   * Whether the bundle (identity, signed pre-key and last-resort KEM pre-key) was (re-)published.
   * A post-quantum bundle is published again whenever the directory's answer does not show the
   * current last-resort KEM pre-key — also while one-time KEM pre-keys hide it, since only the
   * bundle of an empty KEM pool shows which one the directory holds (an idempotent write).
   */
  readonly publishedBundle: boolean;
  /** Id of the new last-resort KEM pre-key, if one was made. */
  readonly kemRotatedTo: number | null;
  /** Ids of the last-resort KEM pre-keys retired (past their grace window). */
  readonly retiredKemPreKeys: number[];
  /** How many one-time KEM pre-keys were made and published. */
  readonly addedKemPreKeys: number;
}

/** KEM pre-keys a refill leaves room for in a saved manager: rotations of the last-resort key until the old ones retire. */
const KEM_STATE_HEADROOM = 64;

const DAY = 24 * 3600 * 1000;

interface Resolved {
  min: number;
  target: number;
  maxAge: number;
  grace: number;
  postQuantum: boolean | undefined;
  minKem: number;
  targetKem: number;
  now: () => number;
}

const POLICY_FIELDS = [
  'minOneTimePreKeys',
  'targetOneTimePreKeys',
  'signedPreKeyMaxAgeMs',
  'signedPreKeyGraceMs',
  'postQuantum',
  'minKemPreKeys',
  'targetKemPreKeys',
  'now',
] as const;

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
    postQuantum: p.postQuantum as boolean | undefined,
    minKem: int(p.minKemPreKeys, DEFAULT_MIN_KEM_PRE_KEYS, 'minKemPreKeys', MAX_KEM_PRE_KEYS_PER_CALL),
    targetKem: int(p.targetKemPreKeys, DEFAULT_TARGET_KEM_PRE_KEYS, 'targetKemPreKeys', MAX_KEM_PRE_KEYS_PER_CALL),
    now: (p.now ?? Date.now) as () => number,
  };
  if (r.min > r.target) throw new E2EError('INVALID_ARGUMENT', 'minOneTimePreKeys must not exceed targetOneTimePreKeys');
  if (r.minKem > r.targetKem) throw new E2EError('INVALID_ARGUMENT', 'minKemPreKeys must not exceed targetKemPreKeys');
  if (r.postQuantum !== undefined && typeof r.postQuantum !== 'boolean')
    throw new E2EError('INVALID_ARGUMENT', 'postQuantum must be a boolean');
  if (typeof r.now !== 'function') throw new E2EError('INVALID_ARGUMENT', 'now must be a function');
  return r;
}

interface Planned {
  rotatedTo: number | null;
  retired: number[];
  added: PublicOneTimePreKey[];
  kemRotatedTo: number | null;
  retiredKem: number[];
  addedKem: PublicKemPreKeyEntry[];
  bundle: PreKeyBundle;
}

/** The KEM part of a run (post-quantum managers only): rotate and retire last-resort KEM pre-keys, refill the one-time ones. */
function planKem(
  m: X3DHKeyManager,
  kemPool: number,
  p: Resolved,
  now: number,
  spkRotated: boolean,
): Pick<Planned, 'kemRotatedTo' | 'retiredKem' | 'addedKem'> {
  const current = m.lastResortKemPreKey;
  // With the signed pre-key, so both rotate in one run (one publication), and on its own schedule.
  const rotate = current === null || spkRotated || now - current.createdAt >= p.maxAge;
  const kemRotatedTo = rotate ? m.generateLastResortKemPreKey().keyId : null;
  const currentId = (m.lastResortKemPreKey as { keyId: number }).keyId;
  // KEM ids grow with time too: the last-resort key after an old one in id order is the one that replaced it.
  const lastResorts = m.kemPreKeyIds.filter((id) => m.getKemPreKey(id)?.lastResort === true).sort((a, b) => a - b);
  const retiredKem: number[] = [];
  lastResorts.forEach((id, i) => {
    if (id === currentId) return;
    const successor = m.getKemPreKey(lastResorts[i + 1]);
    if (successor && now - successor.createdAt >= p.grace) {
      m.retireKemPreKey(id);
      retiredKem.push(id);
    }
  });
  // Never more KEM pre-keys than a saved manager may hold (one-time keys claimed and never used stay in it).
  const room = Math.max(0, MAX_KEM_PRE_KEYS_IN_STATE - KEM_STATE_HEADROOM - m.kemPreKeyIds.length);
  const need = Math.min(kemPool < p.minKem ? p.targetKem - kemPool : 0, room);
  const addedKem =
    need > 0 ? m.generateKemPreKeys(need).map((k) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature })) : [];
  return { kemRotatedTo, retiredKem, addedKem };
}

/** The change one run makes to the key manager (pure in the manager it is given: it may run again). */
function plan(m: X3DHKeyManager, pool: number, kemPool: number | null, p: Resolved): Planned {
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
  const kem = kemPool === null ? { kemRotatedTo: null, retiredKem: [], addedKem: [] } : planKem(m, kemPool, p, now, rotatedTo !== null);
  return { rotatedTo, retired, added, ...kem, bundle: m.getPublicBundle() };
}

/**
 * Whether the published bundle `a` (a directory's answer, maybe the application's own) has `b`'s
 * base: identity, signed pre-key and, when `b` has one, its (last-resort) KEM pre-key.
 */
function sameBase(a: unknown, b: PreKeyBundle): boolean {
  if (a === null || a === undefined) return false;
  try {
    const p = readFields(a, ['signedPreKeyId', 'signedPreKey', 'identityKeyEd', 'kemPreKeyId', 'kemPreKey'], 'published bundle');
    return (
      p.signedPreKeyId === b.signedPreKeyId &&
      constantTimeEqual(p.signedPreKey as Uint8Array, b.signedPreKey) &&
      constantTimeEqual(p.identityKeyEd as Uint8Array, b.identityKeyEd) &&
      (b.kemPreKey === undefined || (p.kemPreKeyId === b.kemPreKeyId && constantTimeEqual(p.kemPreKey as Uint8Array, b.kemPreKey)))
    );
  } catch {
    return false; // unreadable or not bytes: publish again
  }
}

const DIRECTORY_METHODS = ['countOneTimePreKeys', 'getBundle', 'storeBundle', 'addOneTimePreKeys'] as const;
const KEM_DIRECTORY_METHODS = ['countKemPreKeys', 'addKemPreKeys'] as const;

/** Whether `d` has the `methods` maintenance uses (never throws: a throwing getter means no). */
function hasMethods(d: unknown, methods: readonly string[]): boolean {
  if ((typeof d !== 'object' && typeof d !== 'function') || d === null) return false;
  try {
    const o = d as Record<string, unknown>;
    return methods.every((m) => typeof o[m] === 'function');
  } catch {
    return false;
  }
}

/**
 * One maintenance run for `keys.did` against the public `directory`: rotates and retires signed
 * pre-keys per `policy`, refills the one-time pool, and for a post-quantum manager (see
 * {@link PreKeyPolicy.postQuantum}) rotates and retires last-resort KEM pre-keys and refills the
 * one-time KEM pool; saves the key manager (compare-and-swap), then publishes what changed (the
 * bundle, the one-time pre-keys, the one-time KEM pre-keys) and forgets the replay records of
 * retired signed pre-keys. Nothing is published before the private halves are saved.
 * @example
 * const report = await maintainPreKeys(bobKeys, store, { minOneTimePreKeys: 20, targetOneTimePreKeys: 100 });
 * bobMgr.generateLastResortKemPreKey(); // before StoredKeyManager.create: a post-quantum agent, maintained as one
 */
export async function maintainPreKeys(
  keys: StoredKeyManager,
  directory: PreKeyStore,
  policy: PreKeyPolicy = {},
): Promise<MaintenanceReport> {
  // The brand, not instanceof: a Proxy's trap may throw, and an object made from the prototype has no state.
  if (!isStoredKeyManager(keys)) throw new E2EError('INVALID_ARGUMENT', 'keys must be a StoredKeyManager');
  if (!hasMethods(directory, DIRECTORY_METHODS)) throw new E2EError('INVALID_ARGUMENT', 'directory must implement PreKeyStore');
  const p = resolve(policy);
  const pq = p.postQuantum ?? keys.manager.lastResortKemPreKey !== null;
  if (pq && !hasMethods(directory, KEM_DIRECTORY_METHODS)) {
    throw new E2EError('INVALID_ARGUMENT', 'directory must implement countKemPreKeys and addKemPreKeys to keep KEM pre-keys');
  }
  // A directory of the application's own may throw anything: callStore makes it a STORE_ERROR.
  const pool = await callStore('countOneTimePreKeys', () => directory.countOneTimePreKeys(keys.did));
  let kemPool: number | null = null;
  if (pq) {
    const n: unknown = await callStore('countKemPreKeys', () => directory.countKemPreKeys(keys.did));
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw storeFailure(StoreErrorReason.CORRUPT, 'the directory answered no count of KEM pre-keys');
    }
    kemPool = n;
  }
  const published = await callStore('getBundle', () => directory.getBundle(keys.did));
  // Saved first (compare-and-swap): every key published below has its private half in the store.
  const r = await keys.update((m) => plan(m, pool, kemPool, p));
  const publish = !sameBase(published, r.bundle);
  if (publish) await callStore('storeBundle', () => directory.storeBundle(keys.did, r.bundle));
  if (r.added.length > 0) await callStore('addOneTimePreKeys', () => directory.addOneTimePreKeys(keys.did, r.added));
  if (r.addedKem.length > 0) await callStore('addKemPreKeys', () => directory.addKemPreKeys(keys.did, r.addedKem));
  for (const id of r.retired) await callStore('forgetEstablishments', () => keys.store.forgetEstablishments(keys.did, id));
  return {
    rotatedTo: r.rotatedTo,
    retired: r.retired,
    addedOneTimePreKeys: r.added.length,
    publishedBundle: publish,
    kemRotatedTo: r.kemRotatedTo,
    retiredKemPreKeys: r.retiredKem,
    addedKemPreKeys: r.addedKem.length,
  };
}
