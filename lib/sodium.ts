/**
 * The async init layer: the only module that imports libsodium. `await ready()` once, then every
 * primitive in `lib/crypto/` is synchronous.
 *
 * Two backends: libsodium's WASM build (`libsodium-wrappers-sumo`, always loaded: everything runs
 * on it) and, under Node where the optional peer `sodium-native` is installed, its native binding
 * for X25519 and Ed25519, the operations where it is several times faster. The binding is loaded
 * lazily with a computed specifier, never imported statically, so the root entry's module graph and
 * a browser bundle stay free of it.
 */
import sodiumWrapper from 'libsodium-wrappers-sumo';
import { E2EError } from './errors';
import { randomUint32 } from './entropy';

/** The libsodium.js wrapper API (used where a call is not on the hot path). */
export type SodiumWrapper = typeof sodiumWrapper;

/**
 * The raw Emscripten exports of libsodium 1.0.22 that the crypto layer calls directly on
 * preallocated heap buffers. 64-bit lengths are passed as two 32-bit halves (low, high).
 */
export interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  getRandomValue: () => number;
  _crypto_auth_hmacsha256(out: number, msg: number, lenLo: number, lenHi: number, key: number): number;
  _crypto_auth_hmacsha256_init(state: number, key: number, keyLen: number): number;
  _crypto_auth_hmacsha256_update(state: number, msg: number, lenLo: number, lenHi: number): number;
  _crypto_auth_hmacsha256_final(state: number, out: number): number;
  _crypto_auth_hmacsha256_statebytes(): number;
  _crypto_kdf_hkdf_sha256_extract(prk: number, salt: number, saltLen: number, ikm: number, ikmLen: number): number;
  _crypto_kdf_hkdf_sha256_expand(out: number, outLen: number, info: number, infoLen: number, prk: number): number;
  _crypto_aead_chacha20poly1305_ietf_encrypt(
    c: number,
    clenP: number,
    m: number,
    mLenLo: number,
    mLenHi: number,
    ad: number,
    adLenLo: number,
    adLenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_chacha20poly1305_ietf_decrypt(
    m: number,
    mlenP: number,
    nsec: number,
    c: number,
    cLenLo: number,
    cLenHi: number,
    ad: number,
    adLenLo: number,
    adLenHi: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: number,
    clenP: number,
    m: number,
    mLenLo: number,
    mLenHi: number,
    ad: number,
    adLenLo: number,
    adLenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: number,
    mlenP: number,
    nsec: number,
    c: number,
    cLenLo: number,
    cLenHi: number,
    ad: number,
    adLenLo: number,
    adLenHi: number,
    npub: number,
    k: number,
  ): number;
  _crypto_stream_chacha20_ietf(c: number, cLenLo: number, cLenHi: number, n: number, k: number): number;
  _crypto_stream_chacha20_ietf_xor_ic(c: number, m: number, mLenLo: number, mLenHi: number, n: number, ic: number, k: number): number;
  _crypto_onetimeauth_poly1305_init(state: number, key: number): number;
  _crypto_onetimeauth_poly1305_update(state: number, m: number, mLenLo: number, mLenHi: number): number;
  _crypto_onetimeauth_poly1305_final(state: number, out: number): number;
  _crypto_verify_16(x: number, y: number): number;
  _crypto_core_hchacha20(out: number, input: number, k: number, c: number): number;
  _crypto_scalarmult(q: number, n: number, p: number): number;
  _crypto_scalarmult_base(q: number, n: number): number;
  _crypto_sign_seed_keypair(pk: number, sk: number, seed: number): number;
  _crypto_sign_detached(sig: number, sigLenP: number, m: number, mLenLo: number, mLenHi: number, sk: number): number;
  _crypto_sign_verify_detached(sig: number, m: number, mLenLo: number, mLenHi: number, pk: number): number;
  _crypto_sign_ed25519_sk_to_curve25519(out: number, sk: number): number;
  _crypto_sign_ed25519_pk_to_curve25519(out: number, pk: number): number;
  _crypto_kem_mlkem768_seed_keypair(pk: number, sk: number, seed: number): number;
  _crypto_kem_mlkem768_enc_deterministic(ct: number, ss: number, pk: number, seed: number): number;
  _crypto_kem_mlkem768_dec(ss: number, ct: number, sk: number): number;
}

/**
 * The functions of `sodium-native` 5.x that the crypto layer calls when the native backend is
 * active (X25519 and Ed25519 only; it has no ML-KEM and no HMAC). Each throws on a libsodium
 * failure (`crypto_scalarmult` on an all-zero result); inputs are checked before these calls.
 */
export interface NativeSodium {
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
}

/** Which implementation runs X25519 and Ed25519: libsodium's WASM build, or `sodium-native`. */
export type Backend = 'wasm' | 'native';

/**
 * What `ready()` is asked for: `'auto'` (the default) is `'native'` when `sodium-native` loads
 * under Node and `'wasm'` everywhere else (browsers, Bun, Deno, or Node without it).
 */
export type BackendChoice = 'auto' | Backend;

/** Options of {@link ready}. */
export interface ReadyOptions {
  /** The backend for X25519 and Ed25519 (default `'auto'`). Every other primitive runs on WASM. */
  readonly backend?: BackendChoice;
}

/** What `ready()` loads: the wrapper, its raw module, and the native binding when it is active. */
export interface Sodium {
  readonly wrapper: SodiumWrapper;
  readonly raw: RawSodium;
  /** `sodium-native` when the native backend is active, else `null`. */
  readonly native: NativeSodium | null;
}

/** The optional peer dependency of the native backend. */
const NATIVE_PACKAGE = 'sodium-native';
const CHOICES: readonly BackendChoice[] = ['auto', 'wasm', 'native'];

let loaded: Sodium | null = null;
/** The WASM load, shared by every `ready()` call (reset when it fails, so a later call retries). */
let wasmLoading: Promise<RawSodium> | null = null;
/** What `ready()` without options returns: the latest call's promise. */
let current: Promise<void> | null = null;
/** The latest call that resolved: what a failed call falls back to. */
let settled: Promise<void> | null = null;
/** The native binding once loaded (it is loaded at most once per process). */
let nativeModule: NativeSodium | null = null;

function loadWasm(): Promise<RawSodium> {
  if (wasmLoading === null) {
    wasmLoading = (async () => {
      await sodiumWrapper.ready;
      const raw = (sodiumWrapper as unknown as { libsodium: RawSodium }).libsodium;
      // libsodium.js draws 4 bytes per call from Node's crypto.randomBytes; point it at our pool.
      raw.getRandomValue = randomUint32;
      return raw;
    })().catch((e: unknown) => {
      wasmLoading = null;
      throw new E2EError('NOT_READY', `libsodium failed to load: ${e instanceof Error ? e.name : 'unknown error'}`);
    });
  }
  return wasmLoading;
}

/** True under Node itself (Bun and Deno set `process.versions.node` too, and are told apart by their globals). */
function isNode(): boolean {
  const g = globalThis as { Bun?: unknown; Deno?: unknown; process?: { versions?: { node?: unknown } } };
  return g.Bun === undefined && g.Deno === undefined && typeof g.process?.versions?.node === 'string';
}

/**
 * Imports an optional package by a name given at run time: bundlers leave such an import alone
 * (it is never reached outside Node), and tsc's CommonJS output turns it into `require`.
 */
function importOptional(name: string): Promise<unknown> {
  return import(/* webpackIgnore: true */ /* @vite-ignore */ name);
}

async function loadNative(): Promise<NativeSodium> {
  if (nativeModule !== null) return nativeModule;
  if (!isNode()) throw new Error('the native backend runs under Node only');
  const ns = (await importOptional(NATIVE_PACKAGE)) as { default?: unknown };
  const mod = (ns.default ?? ns) as Partial<NativeSodium>;
  for (const f of [
    'crypto_scalarmult',
    'crypto_scalarmult_base',
    'crypto_sign_seed_keypair',
    'crypto_sign_detached',
    'crypto_sign_verify_detached',
  ] as const) {
    if (typeof mod[f] !== 'function') throw new Error(`${NATIVE_PACKAGE} has no ${f}`);
  }
  nativeModule = mod as NativeSodium;
  return nativeModule;
}

/** The `NOT_READY` for `backend: 'native'` when the binding does not load: the loader's error as `cause`, a hint last. */
function nativeError(cause: unknown): E2EError {
  const hint = isNode()
    ? `install it with \`npm install ${NATIVE_PACKAGE}\` (prebuilt binaries for common platforms), or use backend 'auto' or 'wasm'`
    : `${NATIVE_PACKAGE} runs under Node only: use backend 'auto' or 'wasm' here`;
  return new E2EError(
    'NOT_READY',
    `backend 'native' was requested but ${NATIVE_PACKAGE} did not load.\nHint: ${hint}.`,
    'backend_unavailable',
    { cause },
  );
}

async function load(choice: BackendChoice): Promise<void> {
  const raw = await loadWasm();
  let native: NativeSodium | null = null;
  if (choice === 'native') {
    try {
      native = await loadNative();
    } catch (e) {
      throw nativeError(e);
    }
  } else if (choice === 'auto' && isNode()) {
    native = await loadNative().catch(() => null);
  }
  if (loaded === null || loaded.raw !== raw || loaded.native !== native) loaded = { wrapper: sodiumWrapper, raw, native };
}

/**
 * Loads libsodium (once; safe to call many times and concurrently). Every other function of the
 * library needs this promise to have resolved. Without options, a call after the first returns the
 * same promise and never changes the active backend; with `backend`, it selects one (the binding
 * is loaded once, switching back and forth is cheap).
 * @param options `backend`: `'auto'` (default), `'wasm'` or `'native'`; see {@link backend}.
 * @throws (rejects) `NOT_READY` when libsodium does not load, or when `'native'` is asked for and
 *   `sodium-native` does not load (its error as `cause`; the message ends with a hint); the
 *   previous state is kept then and a later call may retry. `INVALID_ARGUMENT` for another value.
 * @example
 * await ready();
 * await ready({ backend: 'wasm' }); // X25519 and Ed25519 on WASM even where sodium-native is installed
 */
// A rest parameter keeps `ready.length` 0: test runners read a hook with a parameter as one that
// takes a `done` callback, so `beforeAll(ready)` would wait forever.
export function ready(...args: [options?: ReadyOptions]): Promise<void> {
  const options = args[0];
  let choice: unknown;
  try {
    choice = options === undefined || options === null ? undefined : (options as { backend?: unknown }).backend;
  } catch {
    return Promise.reject(new E2EError('INVALID_ARGUMENT', 'ready() options could not be read'));
  }
  if (choice === undefined && current !== null) return current;
  if (choice !== undefined && !(CHOICES as readonly unknown[]).includes(choice)) {
    return Promise.reject(new E2EError('INVALID_ARGUMENT', `backend must be one of ${CHOICES.join(', ')}`));
  }
  return select(choice as BackendChoice | undefined);
}

function select(choice: BackendChoice | undefined): Promise<void> {
  // Calls with options run one after another, so the last one called decides the backend.
  const prev = current;
  const run =
    prev === null
      ? load(choice ?? 'auto')
      : prev.then(
          () => load(choice ?? 'auto'),
          () => load(choice ?? 'auto'),
        );
  const p: Promise<void> = run.then(
    () => {
      settled = p;
    },
    (e: unknown) => {
      if (current === p) current = settled;
      throw e;
    },
  );
  current = p;
  return p;
}

/**
 * The backend that runs X25519 and Ed25519 now: `'native'` (sodium-native) or `'wasm'`. Throws
 * `NOT_READY` before `ready()` resolved.
 */
export function backend(): Backend {
  return sodium().native === null ? 'wasm' : 'native';
}

/** True once `ready()` has resolved. */
export function isReady(): boolean {
  return loaded !== null;
}

/**
 * The loaded libsodium. Throws `NOT_READY` before `ready()` resolved.
 * @internal for `lib/crypto/` only.
 */
export function sodium(): Sodium {
  if (loaded === null) throw new E2EError('NOT_READY', 'call and await ready() before using agentmesh-e2e');
  return loaded;
}
