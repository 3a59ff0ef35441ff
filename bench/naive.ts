/**
 * The naive reference: the same Double Ratchet, byte for byte (PROTOCOL.md: KDF_RK, KDF_CK, the
 * 40-byte header, the envelope, AD = channel AD ‖ header), written the obvious way on the
 * libsodium.js wrapper calls: every call allocates its result, every concatenation copies, HKDF is
 * three wrapper HMAC calls, randomness is whatever libsodium.js draws. It keeps no transaction (a
 * forged message can break it) and checks nothing it need not: it is the cost of "just calling
 * libsodium.js", so the gain of our layer over it is visible.
 *
 * `selfCheck()` proves it speaks our protocol: messages go both ways between it and
 * `lib/ratchet`'s `DoubleRatchet`, through DH steps, before any row is timed.
 */
import { DoubleRatchet } from '../lib/ratchet';
import { randomBytes, utf8, x25519KeyPair } from '../lib/crypto';
import { FLOOR } from './floors';
import { Row } from './harness';
import { OURS } from './ours';
import { AEAD_SIZES, sizeLabel, wrapperHkdf64 } from './primitives';
import { useRandom, wrapper } from './wrapper';

const RATCHET_INFO = utf8('AgentMesh_Ratchet_v1');
const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);

interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** A naive ratchet session: the state of PROTOCOL.md, held in plain fields. */
export interface NaiveSession {
  dhSelf: KeyPair;
  dhRemote: Uint8Array | null;
  rootKey: Uint8Array;
  sendChain: Uint8Array | null;
  recvChain: Uint8Array | null;
  ns: number;
  nr: number;
  pn: number;
  skipped: Map<string, Uint8Array>;
}

function u32(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function kdfRk(rk: Uint8Array, dh: Uint8Array): [Uint8Array, Uint8Array] {
  const out = wrapperHkdf64(dh, rk, RATCHET_INFO);
  return [out.slice(0, 32), out.slice(32)];
}

function kdfCk(ck: Uint8Array): [Uint8Array, Uint8Array] {
  const w = wrapper();
  return [w.crypto_auth_hmacsha256(ONE, ck), w.crypto_auth_hmacsha256(TWO, ck)];
}

function hex(b: Uint8Array): string {
  return wrapper().to_hex(b);
}

/** The initiator's session: a new ratchet key and the first sending chain. */
export function naiveInitSender(sharedSecret: Uint8Array, remotePublic: Uint8Array): NaiveSession {
  const w = wrapper();
  const dhSelf = w.crypto_box_keypair();
  const [rootKey, sendChain] = kdfRk(sharedSecret, w.crypto_scalarmult(dhSelf.privateKey, remotePublic));
  return { dhSelf, dhRemote: remotePublic, rootKey, sendChain, recvChain: null, ns: 0, nr: 0, pn: 0, skipped: new Map() };
}

/** The responder's session, on its signed pre-key pair. */
export function naiveInitReceiver(sharedSecret: Uint8Array, pair: KeyPair): NaiveSession {
  return { dhSelf: pair, dhRemote: null, rootKey: sharedSecret, sendChain: null, recvChain: null, ns: 0, nr: 0, pn: 0, skipped: new Map() };
}

/** Encrypts one message: the envelope `u32be(40) ‖ header ‖ nonce ‖ ciphertext ‖ tag`. */
export function naiveEncrypt(s: NaiveSession, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const w = wrapper();
  if (s.sendChain === null) throw new Error('naive: cannot send yet');
  const [mk, next] = kdfCk(s.sendChain);
  s.sendChain = next;
  const header = concat(s.dhSelf.publicKey, u32(s.pn), u32(s.ns));
  s.ns++;
  const nonce = w.randombytes_buf(12);
  const ct = w.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, concat(ad, header), null, nonce, mk);
  return concat(u32(40), header, nonce, ct);
}

function skipUntil(s: NaiveSession, until: number): void {
  while (s.recvChain !== null && s.nr < until) {
    const [mk, next] = kdfCk(s.recvChain);
    s.recvChain = next;
    s.skipped.set(`${hex(s.dhRemote as Uint8Array)}:${s.nr}`, mk);
    s.nr++;
  }
}

/** Decrypts one envelope, stepping the DH ratchet on a new ratchet key. */
export function naiveDecrypt(s: NaiveSession, envelope: Uint8Array, ad: Uint8Array): Uint8Array {
  const w = wrapper();
  if (readU32(envelope, 0) !== 40) throw new Error('naive: bad envelope');
  const header = envelope.slice(4, 44);
  const dh = header.slice(0, 32);
  const pn = readU32(header, 32);
  const n = readU32(header, 36);
  const nonce = envelope.slice(44, 56);
  const ct = envelope.slice(56);
  if (s.skipped.size > 0) {
    const id = `${hex(dh)}:${n}`;
    const stored = s.skipped.get(id);
    if (stored) {
      s.skipped.delete(id);
      return w.crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, concat(ad, header), nonce, stored);
    }
  }
  if (s.dhRemote === null || !same(dh, s.dhRemote)) {
    skipUntil(s, pn);
    s.pn = s.ns;
    s.ns = 0;
    s.nr = 0;
    s.dhRemote = dh;
    [s.rootKey, s.recvChain] = kdfRk(s.rootKey, w.crypto_scalarmult(s.dhSelf.privateKey, dh));
    s.dhSelf = w.crypto_box_keypair();
    [s.rootKey, s.sendChain] = kdfRk(s.rootKey, w.crypto_scalarmult(s.dhSelf.privateKey, dh));
  }
  skipUntil(s, n);
  const [mk, next] = kdfCk(s.recvChain as Uint8Array);
  s.recvChain = next;
  s.nr++;
  return w.crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, concat(ad, header), nonce, mk);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Proves the naive reference and `lib/ratchet` speak the same bytes: ours → naive, naive → ours
 * (each direction across DH ratchet steps, and one burst out of order), with a 64-byte AD.
 * Throws when any message does not decrypt to what was sent.
 */
export function selfCheck(): void {
  const ad = randomBytes(64);
  const check = (got: Uint8Array, want: Uint8Array, what: string): void => {
    if (!same(got, want)) throw new Error(`naive reference differs from ours: ${what}`);
  };
  // Ours initiates, naive responds.
  let sk = randomBytes(32);
  let spk = x25519KeyPair();
  const ours = DoubleRatchet.initSender({ sharedSecret: sk, remoteDhPublic: spk.publicKey });
  const naive = naiveInitReceiver(Uint8Array.from(sk), { publicKey: spk.publicKey, privateKey: spk.privateKey });
  for (let turn = 0; turn < 3; turn++) {
    const a = randomBytes(40 + turn);
    check(naiveDecrypt(naive, ours.encrypt(a, ad).serialize(), ad), a, `ours → naive, turn ${turn}`);
    const b = randomBytes(50 + turn);
    check(ours.decrypt(naiveEncrypt(naive, b, ad), ad), b, `naive → ours, turn ${turn}`);
  }
  // Naive initiates, ours responds; a burst arrives in reverse.
  sk = randomBytes(32);
  spk = x25519KeyPair();
  const naive2 = naiveInitSender(Uint8Array.from(sk), spk.publicKey);
  const ours2 = DoubleRatchet.initReceiver({ sharedSecret: sk, dhKeyPair: spk });
  const burst = [0, 1, 2].map((k) => randomBytes(30 + k));
  const sent = burst.map((p) => naiveEncrypt(naive2, p, ad));
  for (let k = 2; k >= 0; k--) check(ours2.decrypt(sent[k], ad), burst[k], `naive → ours, out of order ${k}`);
  const c = randomBytes(70);
  check(naiveDecrypt(naive2, ours2.encrypt(c, ad).serialize(), ad), c, 'ours → naive after the burst');
}

/** A naive pair where the responder has received once (both can send). */
function naivePair(ad: Uint8Array): { alice: NaiveSession; bob: NaiveSession } {
  const sk = randomBytes(32);
  const spk = x25519KeyPair();
  const alice = naiveInitSender(Uint8Array.from(sk), spk.publicKey);
  const bob = naiveInitReceiver(Uint8Array.from(sk), { publicKey: spk.publicKey, privateKey: spk.privateKey });
  naiveDecrypt(bob, naiveEncrypt(alice, randomBytes(16), ad), ad);
  return { alice, bob };
}

/**
 * The naive rows: send + receive one way for each size and a ping-pong round trip, with
 * libsodium.js as shipped (its own randomness: `crypto.randomBytes(4)` per 4 bytes), plus the 64 B
 * row again on our randomness pool, which separates the wrapper's cost from the random source's.
 */
export function naiveRows(): Row[] {
  const g = 'naive';
  const ad = randomBytes(64);
  const rows: Row[] = [];
  const stock = { before: () => useRandom('stock'), after: () => useRandom('pooled') };
  for (const n of AEAD_SIZES) {
    const pt = randomBytes(n);
    let p: { alice: NaiveSession; bob: NaiveSession };
    rows.push({
      group: g,
      id: `naive.message.${n}`,
      name: `send + receive ${sizeLabel(n)}, one way (libsodium.js as shipped)`,
      floor: FLOOR.message(n),
      versus: OURS.message(n),
      before: () => {
        stock.before();
        p = naivePair(ad);
      },
      after: stock.after,
      op: () => naiveDecrypt(p.bob, naiveEncrypt(p.alice, pt, ad), ad),
    });
  }
  const pt = randomBytes(64);
  let pooled: { alice: NaiveSession; bob: NaiveSession };
  rows.push({
    group: g,
    id: 'naive.message.64.pooled',
    name: 'send + receive 64 B, one way (wrapper calls, our random pool)',
    floor: FLOOR.message(64),
    versus: OURS.message(64),
    before: () => {
      pooled = naivePair(ad);
    },
    op: () => naiveDecrypt(pooled.bob, naiveEncrypt(pooled.alice, pt, ad), ad),
  });
  let pp: { alice: NaiveSession; bob: NaiveSession };
  rows.push({
    group: g,
    id: 'naive.roundtrip',
    name: 'ping-pong round trip 64 B (libsodium.js as shipped)',
    floor: FLOOR.roundTrip,
    versus: OURS.roundTrip,
    before: () => {
      stock.before();
      pp = naivePair(ad);
    },
    after: stock.after,
    op: () => {
      naiveDecrypt(pp.bob, naiveEncrypt(pp.alice, pt, ad), ad);
      return naiveDecrypt(pp.alice, naiveEncrypt(pp.bob, pt, ad), ad);
    },
  });
  return rows;
}
