/**
 * The primitives, each three ways: `raw` (libsodium's WASM exports on a preallocated heap region:
 * the cost of the computation and nothing else; the floors are sums of these), `ours` (the crypto
 * layer's functions as the library calls them) and `wrapper` (the libsodium.js API calls a naive
 * implementation would make). AEAD rows use 104 bytes of associated data, what a channel message
 * carries (64-byte X3DH AD ‖ 40-byte header).
 */
import {
  chacha20Poly1305Decrypt,
  chacha20Poly1305Encrypt,
  chainKeyStep,
  ed25519KeyPair,
  ed25519Sign,
  ed25519Verify,
  fillRandomBytes,
  hkdfSha256,
  hmacSha256,
  randomBytes,
  utf8,
  x25519,
  x25519KeyPair,
} from '../lib/crypto';
import { RawSodium, sodium } from '../lib/sodium';
import { Row } from './harness';
import { useRandom, wrapper } from './wrapper';

/** Payload sizes of the AEAD rows. */
export const AEAD_SIZES = [64, 1024, 16384] as const;
/** Associated data of a channel message: X3DH AD (64) ‖ header (40). */
export const MESSAGE_AD_BYTES = 104;

const RATCHET_INFO = utf8('AgentMesh_Ratchet_v1');

/** Short label of a byte size. */
export function sizeLabel(n: number): string {
  return n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
}

/** Offsets in the bench's own WASM region (apart from the library's scratch). */
interface Region {
  readonly raw: RawSodium;
  readonly key: number; // 32
  readonly nonce: number; // 12 (24 reserved)
  readonly ad: number; // 104 (128 reserved)
  readonly msg: number; // 16 KiB
  readonly ct: number; // 16 KiB + 16
  readonly out: number; // 16 KiB (decrypted)
  readonly state: number; // HMAC state (208; 256 reserved)
  readonly sk: number; // 64
  readonly pk: number; // 32
  readonly sig: number; // 64
  readonly dh: number; // 32
  readonly prk: number; // 32
  readonly info: number; // 32
  readonly okm: number; // 64
}

let region: Region | null = null;

function regionOf(): Region {
  if (region !== null) return region;
  const raw = sodium().raw;
  const size = 32 + 24 + 128 + 3 * 16448 + 256 + 64 + 32 + 64 + 32 + 32 + 32 + 64;
  const p = raw._malloc(size);
  if (p === 0) throw new Error('cannot allocate the bench region');
  let at = p;
  const take = (n: number): number => {
    const here = at;
    at += n;
    return here;
  };
  region = {
    raw,
    key: take(32),
    nonce: take(24),
    ad: take(128),
    msg: take(16448),
    ct: take(16448),
    out: take(16448),
    state: take(256),
    sk: take(64),
    pk: take(32),
    sig: take(64),
    dh: take(32),
    prk: take(32),
    info: take(32),
    okm: take(64),
  };
  return region;
}

function fillHeap(r: Region, at: number, bytes: Uint8Array): void {
  r.raw.HEAPU8.set(bytes, at);
}

/** Ids of the raw rows the floors are made of. */
export const RAW = {
  hmac: 'raw.hmac1',
  seal: (n: number) => `raw.seal.${n}`,
  open: (n: number) => `raw.open.${n}`,
  random12: 'raw.random12',
  x25519: 'raw.x25519',
  x25519KeyPair: 'raw.x25519kp',
  hkdf: 'raw.hkdf',
  verify: 'raw.verify',
} as const;

/** Ids of the wrapper rows the "through the wrapper" floors are made of. */
export const WRAP = {
  hmac: 'wrapper.hmac1',
  seal: (n: number) => `wrapper.seal.${n}`,
  open: (n: number) => `wrapper.open.${n}`,
  random12: 'wrapper.random12.pooled',
  x25519: 'wrapper.x25519',
  x25519KeyPair: 'wrapper.x25519kp',
  hkdf: 'wrapper.hkdf',
  verify: 'wrapper.verify',
} as const;

/**
 * HKDF-SHA256 through the wrapper's HMAC (libsodium.js exposes no HKDF function): extract, then
 * expand to 64 bytes (two blocks), as a naive implementation writes it.
 */
export function wrapperHkdf64(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Uint8Array {
  const w = wrapper();
  const prk = w.crypto_auth_hmacsha256(ikm, salt);
  const t1 = w.crypto_auth_hmacsha256(new Uint8Array([...info, 1]), prk);
  const t2 = w.crypto_auth_hmacsha256(new Uint8Array([...t1, ...info, 2]), prk);
  const out = new Uint8Array(64);
  out.set(t1, 0);
  out.set(t2, 32);
  return out;
}

function rawRows(): Row[] {
  const g = 'primitives';
  const rows: Row[] = [];
  let r: Region;
  const setup = (): void => {
    r = regionOf();
    const key = randomBytes(32);
    fillHeap(r, r.key, key);
    fillHeap(r, r.nonce, randomBytes(12));
    fillHeap(r, r.ad, randomBytes(MESSAGE_AD_BYTES));
    fillHeap(r, r.msg, randomBytes(16384));
    fillHeap(r, r.info, RATCHET_INFO);
    const id = ed25519KeyPair();
    fillHeap(r, r.sk, id.secretKey);
    fillHeap(r, r.pk, id.publicKey);
    fillHeap(r, r.sig, ed25519Sign(id.secretKey, key));
    fillHeap(r, r.dh, x25519KeyPair().publicKey);
  };
  rows.push({
    group: g,
    id: RAW.hmac,
    name: 'HMAC-SHA256 of 1 B — raw',
    before: setup,
    op: () => {
      r.raw._crypto_auth_hmacsha256_init(r.state, r.key, 32);
      r.raw._crypto_auth_hmacsha256_update(r.state, r.msg, 1, 0);
      return r.raw._crypto_auth_hmacsha256_final(r.state, r.okm);
    },
  });
  for (const n of AEAD_SIZES) {
    rows.push({
      group: g,
      id: RAW.seal(n),
      name: `ChaCha20-Poly1305 seal ${sizeLabel(n)} — raw`,
      before: setup,
      op: () => r.raw._crypto_aead_chacha20poly1305_ietf_encrypt(r.ct, 0, r.msg, n, 0, r.ad, MESSAGE_AD_BYTES, 0, 0, r.nonce, r.key),
    });
    rows.push({
      group: g,
      id: RAW.open(n),
      name: `ChaCha20-Poly1305 open ${sizeLabel(n)} — raw`,
      before: () => {
        setup();
        r.raw._crypto_aead_chacha20poly1305_ietf_encrypt(r.ct, 0, r.msg, n, 0, r.ad, MESSAGE_AD_BYTES, 0, 0, r.nonce, r.key);
      },
      op: () => {
        const rc = r.raw._crypto_aead_chacha20poly1305_ietf_decrypt(
          r.out,
          0,
          0,
          r.ct,
          n + 16,
          0,
          r.ad,
          MESSAGE_AD_BYTES,
          0,
          r.nonce,
          r.key,
        );
        if (rc !== 0) throw new Error('raw open failed');
        return rc;
      },
    });
  }
  let seedView: Uint8Array;
  rows.push({
    group: g,
    id: RAW.x25519KeyPair,
    name: 'X25519 key pair (32 random B + base mult) — raw',
    before: () => {
      setup();
      seedView = r.raw.HEAPU8.subarray(r.prk, r.prk + 32);
    },
    op: () => {
      fillRandomBytes(seedView);
      return r.raw._crypto_scalarmult_base(r.okm, r.prk);
    },
  });
  rows.push({
    group: g,
    id: RAW.x25519,
    name: 'X25519 DH — raw',
    before: setup,
    op: () => r.raw._crypto_scalarmult(r.okm, r.key, r.dh),
  });
  rows.push({
    group: g,
    id: 'raw.sign',
    name: 'Ed25519 sign 32 B — raw',
    before: setup,
    op: () => r.raw._crypto_sign_detached(r.okm, 0, r.key, 32, 0, r.sk),
  });
  rows.push({
    group: g,
    id: RAW.verify,
    name: 'Ed25519 verify 32 B — raw',
    before: setup,
    op: () => {
      if (r.raw._crypto_sign_verify_detached(r.sig, r.key, 32, 0, r.pk) !== 0) throw new Error('raw verify failed');
    },
  });
  rows.push({
    group: g,
    id: RAW.hkdf,
    name: 'HKDF-SHA256 32 B → 64 B — raw',
    before: setup,
    op: () => {
      r.raw._crypto_kdf_hkdf_sha256_extract(r.prk, r.key, 32, r.dh, 32);
      return r.raw._crypto_kdf_hkdf_sha256_expand(r.okm, 64, r.info, RATCHET_INFO.length, r.prk);
    },
  });
  const nonce = new Uint8Array(12);
  rows.push({
    group: g,
    id: RAW.random12,
    name: 'random 12 B (pooled getRandomValues) — raw',
    op: () => fillRandomBytes(nonce),
  });
  return rows;
}

function oursRows(): Row[] {
  const g = 'primitives';
  const key = new Uint8Array(32);
  const one = Uint8Array.of(1);
  const mk = new Uint8Array(32);
  const ad = new Uint8Array(MESSAGE_AD_BYTES);
  const nonce = new Uint8Array(12);
  let peer: Uint8Array;
  let id: { publicKey: Uint8Array; secretKey: Uint8Array };
  let sig: Uint8Array;
  const setup = (): void => {
    key.set(randomBytes(32));
    ad.set(randomBytes(MESSAGE_AD_BYTES));
    peer = x25519KeyPair().publicKey;
    id = ed25519KeyPair();
    sig = ed25519Sign(id.secretKey, key);
  };
  const rows: Row[] = [
    { group: g, id: 'ours.hmac1', name: 'HMAC-SHA256 of 1 B — ours (hmacSha256)', before: setup, op: () => hmacSha256(key, one) },
    {
      group: g,
      id: 'ours.kdfck',
      name: 'KDF_CK step = 2 HMAC (chainKeyStep) — ours',
      before: setup,
      op: () => chainKeyStep(key, mk, key),
    },
  ];
  for (const n of AEAD_SIZES) {
    const pt = randomBytes(n);
    let ct: Uint8Array;
    rows.push({
      group: g,
      id: `ours.seal.${n}`,
      name: `ChaCha20-Poly1305 seal ${sizeLabel(n)} — ours`,
      before: setup,
      op: () => chacha20Poly1305Encrypt(key, nonce, pt, ad),
    });
    rows.push({
      group: g,
      id: `ours.open.${n}`,
      name: `ChaCha20-Poly1305 open ${sizeLabel(n)} — ours`,
      before: () => {
        setup();
        ct = chacha20Poly1305Encrypt(key, nonce, pt, ad);
      },
      op: () => chacha20Poly1305Decrypt(key, nonce, ct, ad),
    });
  }
  rows.push(
    { group: g, id: 'ours.x25519kp', name: 'X25519 key pair — ours (x25519KeyPair)', op: () => x25519KeyPair() },
    { group: g, id: 'ours.x25519', name: 'X25519 DH — ours (x25519)', before: setup, op: () => x25519(key, peer) },
    { group: g, id: 'ours.sign', name: 'Ed25519 sign 32 B — ours', before: setup, op: () => ed25519Sign(id.secretKey, key) },
    {
      group: g,
      id: 'ours.verify',
      name: 'Ed25519 verify 32 B — ours',
      before: setup,
      op: () => {
        if (!ed25519Verify(sig, key, id.publicKey)) throw new Error('verify failed');
      },
    },
    {
      group: g,
      id: 'ours.hkdf',
      name: 'HKDF-SHA256 32 B → 64 B — ours (hkdfSha256)',
      before: setup,
      op: () => hkdfSha256(peer, key, RATCHET_INFO, 64),
    },
    { group: g, id: 'ours.random12', name: 'random 12 B — ours (randomBytes)', op: () => randomBytes(12) },
  );
  return rows;
}

function wrapperRows(): Row[] {
  const g = 'primitives';
  const rows: Row[] = [];
  const key = new Uint8Array(32);
  const one = Uint8Array.of(1);
  const ad = new Uint8Array(MESSAGE_AD_BYTES);
  const nonce = new Uint8Array(12);
  let peer: Uint8Array;
  let id: { publicKey: Uint8Array; privateKey: Uint8Array };
  let sig: Uint8Array;
  const setup = (): void => {
    const w = wrapper();
    key.set(w.randombytes_buf(32));
    ad.set(w.randombytes_buf(MESSAGE_AD_BYTES));
    peer = w.crypto_box_keypair().publicKey;
    id = w.crypto_sign_keypair();
    sig = w.crypto_sign_detached(key, id.privateKey);
  };
  rows.push({
    group: g,
    id: WRAP.hmac,
    name: 'HMAC-SHA256 of 1 B — wrapper',
    before: setup,
    op: () => wrapper().crypto_auth_hmacsha256(one, key),
  });
  for (const n of AEAD_SIZES) {
    const pt = randomBytes(n);
    let ct: Uint8Array;
    rows.push({
      group: g,
      id: WRAP.seal(n),
      name: `ChaCha20-Poly1305 seal ${sizeLabel(n)} — wrapper`,
      before: setup,
      op: () => wrapper().crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, nonce, key),
    });
    rows.push({
      group: g,
      id: WRAP.open(n),
      name: `ChaCha20-Poly1305 open ${sizeLabel(n)} — wrapper`,
      before: () => {
        setup();
        ct = wrapper().crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, nonce, key);
      },
      op: () => wrapper().crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, ad, nonce, key),
    });
  }
  rows.push(
    { group: g, id: WRAP.x25519KeyPair, name: 'X25519 key pair — wrapper (crypto_box_keypair)', op: () => wrapper().crypto_box_keypair() },
    {
      group: g,
      id: WRAP.x25519,
      name: 'X25519 DH — wrapper (crypto_scalarmult)',
      before: setup,
      op: () => wrapper().crypto_scalarmult(key, peer),
    },
    {
      group: g,
      id: 'wrapper.sign',
      name: 'Ed25519 sign 32 B — wrapper',
      before: setup,
      op: () => wrapper().crypto_sign_detached(key, id.privateKey),
    },
    {
      group: g,
      id: WRAP.verify,
      name: 'Ed25519 verify 32 B — wrapper',
      before: setup,
      op: () => {
        if (!wrapper().crypto_sign_verify_detached(sig, key, id.publicKey)) throw new Error('verify failed');
      },
    },
    {
      group: g,
      id: WRAP.hkdf,
      name: 'HKDF-SHA256 32 B → 64 B — wrapper (3 HMAC calls)',
      before: setup,
      op: () => wrapperHkdf64(peer, key, RATCHET_INFO),
    },
    { group: g, id: WRAP.random12, name: 'random 12 B — wrapper randombytes_buf (pooled source)', op: () => wrapper().randombytes_buf(12) },
    {
      group: g,
      id: 'wrapper.random12.stock',
      name: 'random 12 B — wrapper randombytes_buf (libsodium.js as shipped)',
      before: () => useRandom('stock'),
      after: () => useRandom('pooled'),
      op: () => wrapper().randombytes_buf(12),
    },
    { group: g, id: 'platform.random12', name: 'random 12 B — crypto.getRandomValues, one call', op: () => crypto.getRandomValues(nonce) },
  );
  return rows;
}

/** Every primitive row, grouped by primitive: raw, ours, wrapper next to each other. */
export function primitiveRows(): Row[] {
  const all = [...rawRows(), ...oursRows(), ...wrapperRows()];
  const order = (r: Row): string => r.id.replace(/^(raw|ours|wrapper|platform)\./, '');
  const kinds = [...new Set(all.map(order).map((k) => k.replace(/\.(pooled|stock)$/, '')))];
  const rank = (r: Row): number => kinds.indexOf(order(r).replace(/\.(pooled|stock)$/, ''));
  return all
    .map((r, i) => ({ r, i }))
    .sort((a, b) => rank(a.r) - rank(b.r) || a.i - b.i)
    .map((x) => x.r);
}

/** The raw rows only (what the floors need when `--only` skips the full primitives group). */
export function floorPrimitiveRows(): Row[] {
  const needed = new Set<string>([
    RAW.hmac,
    RAW.random12,
    RAW.x25519,
    RAW.x25519KeyPair,
    RAW.hkdf,
    RAW.verify,
    WRAP.hmac,
    WRAP.random12,
    WRAP.x25519,
    WRAP.x25519KeyPair,
    WRAP.hkdf,
    WRAP.verify,
    ...AEAD_SIZES.flatMap((n) => [RAW.seal(n), RAW.open(n), WRAP.seal(n), WRAP.open(n)]),
  ]);
  return primitiveRows().filter((r) => needed.has(r.id));
}
