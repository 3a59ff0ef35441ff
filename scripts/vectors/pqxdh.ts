/**
 * Writes `spec/vectors/own/pqxdh.json`, the known answers of PQXDH as PROTOCOL.md specifies it:
 * KEM pre-key signatures, the hybrid KDF (3 and 4 DH outputs), two complete responder-side
 * agreements with their establishments (binary and JSON), the key manager's saved forms with KEM
 * pre-keys (state version 2, "AMK" 0x02) and the post-quantum channel state header ("AMC" 0x02).
 *
 * Inputs are fixed (32-byte runs `seed(b)[i] = b + i`). Every answer the file holds is computed
 * here independently of lib/ wherever Node can: Ed25519 signatures, X25519 public keys and DH
 * outputs with node:crypto, the identity's X25519 key from SHA-512 of its Ed25519 seed, the KDF with
 * node:crypto's `hkdfSync`, the signed bytes, the establishment forms and the "AMK" bytes written
 * byte by byte from PROTOCOL.md's layouts. ML-KEM-768 (key pairs from `d ‖ z`, encapsulation with
 * `m`) has no implementation in Node 20, so it comes from libsodium through lib/crypto/mlkem.ts,
 * which spec/crypto/mlkem.spec.ts checks against every Wycheproof ML-KEM-768 case. The generator
 * then runs our code on the same inputs and stops if any answer differs.
 *
 * Usage: npx tsx scripts/vectors/pqxdh.ts
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, sign, KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { ed25519KeyPairFromSeed, ed25519Sign } from '../../lib/crypto';
import { mlkem768EncapsulateDerandomized, mlkem768KeyPairFromSeed } from '../../lib/crypto/mlkem';
import { KeyManagerState, X3DHKeyManager, pqxdhKdf, x3dhKdf } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';

const OUT = join(__dirname, '..', '..', 'spec', 'vectors', 'own');
const PQXDH_INFO = 'AgentMesh_PQXDH_CURVE25519_SHA-256_ML-KEM-768_v1';
const X3DH_INFO = 'AgentMesh_X3DH_v1';
const KEM_CONTEXT = 'AgentMesh_PQXDH_KEM_PreKey_v1\u0000';
const CREATED_AT = 1767225600000; // 2026-01-01T00:00:00Z

/** `n` bytes of `b`, `b + 1`, …: a fixed, readable secret. */
function seed(b: number, n = 32): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (b + i) & 0xff));
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Stops the generator when our code and the independent computation disagree. */
function same(what: string, ours: Uint8Array | string, independent: Uint8Array | string): void {
  const a = typeof ours === 'string' ? ours : hex(ours);
  const b = typeof independent === 'string' ? independent : hex(independent);
  if (a !== b) throw new Error(`${what}: ours ${a.slice(0, 80)}… is not the independent ${b.slice(0, 80)}…`);
}

// ---- node:crypto, from raw keys ----

const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');

function edPrivate(s: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, s]), format: 'der', type: 'pkcs8' });
}
function rawPublic(k: KeyObject): Buffer {
  return (createPublicKey(k).export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32);
}
/** Ed25519 public key of a 32-byte seed. */
function edPublic(s: Buffer): Buffer {
  return rawPublic(edPrivate(s));
}
/** Ed25519 signature (deterministic, RFC 8032). */
function edSign(s: Buffer, msg: Uint8Array): Buffer {
  return sign(null, msg, edPrivate(s));
}
function xPrivate(k: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, k]), format: 'der', type: 'pkcs8' });
}
/** X25519 public key of a private key. */
function xPublic(k: Uint8Array): Buffer {
  return rawPublic(xPrivate(k));
}
/** X25519(k, pub). */
function xDh(k: Uint8Array, pub: Uint8Array): Buffer {
  return diffieHellman({
    privateKey: xPrivate(k),
    publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI, pub]), format: 'der', type: 'spki' }),
  });
}
/** The X25519 private key of an Ed25519 identity: the first half of SHA-512(seed) (X25519 clamps it). */
function identityX25519Private(edSeed: Buffer): Buffer {
  return createHash('sha512').update(edSeed).digest().subarray(0, 32);
}
/** HKDF-SHA256(salt 0³², IKM = 0xFF³² ‖ parts, info, 32). */
function kdf(parts: Uint8Array[], info: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', Buffer.concat([Buffer.alloc(32, 0xff), ...parts]), Buffer.alloc(32), Buffer.from(info, 'utf8'), 32),
  );
}

const u8 = (n: number): Buffer => Buffer.of(n);
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function f64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
}

// ---- the parties ----

interface KemInput {
  readonly keyId: number;
  readonly seed: Buffer;
  readonly lastResort: boolean;
}

const ALICE_SEED = seed(0x01);
const BOB_SEED = seed(0x02);
const BOB_SPK = { keyId: 1, privateKey: seed(0x40) };
const BOB_OTK = { keyId: 7, privateKey: seed(0x50) };
const BOB_KEMS: readonly KemInput[] = [
  { keyId: 3, seed: seed(0x60, 64), lastResort: false },
  { keyId: 4, seed: seed(0xa0, 64), lastResort: true },
];

/** Public half and signature of a KEM pre-key, independently where possible (ML-KEM from libsodium). */
function kemPublic(k: KemInput): { publicKey: Uint8Array; signedBytes: Buffer; signature: Buffer } {
  const { publicKey, secretKey } = mlkem768KeyPairFromSeed(k.seed);
  secretKey.fill(0);
  const signedBytes = Buffer.concat([Buffer.from(KEM_CONTEXT, 'utf8'), u8(0x01), publicKey]);
  same(`signed bytes of KEM pre-key ${k.keyId}`, kemPreKeySignedBytes(publicKey), signedBytes);
  const signature = edSign(BOB_SEED, signedBytes);
  same(`signature of KEM pre-key ${k.keyId}`, ed25519Sign(ed25519KeyPairFromSeed(BOB_SEED).secretKey, signedBytes), signature);
  return { publicKey, signedBytes, signature };
}

function bobState(): KeyManagerState {
  const bobEdPublic = edPublic(BOB_SEED);
  return {
    version: 2,
    identitySecretKey: hex(Buffer.concat([BOB_SEED, bobEdPublic])),
    signedPreKeys: [
      {
        keyId: BOB_SPK.keyId,
        privateKey: hex(BOB_SPK.privateKey),
        signature: hex(edSign(BOB_SEED, xPublic(BOB_SPK.privateKey))),
        createdAt: CREATED_AT,
      },
    ],
    currentSignedPreKeyId: BOB_SPK.keyId,
    oneTimePreKeys: [{ keyId: BOB_OTK.keyId, privateKey: hex(BOB_OTK.privateKey) }],
    nextSignedPreKeyId: 2,
    nextOneTimePreKeyId: 8,
    kemPreKeys: BOB_KEMS.map((k) => ({
      keyId: k.keyId,
      seed: hex(k.seed),
      signature: hex(kemPublic(k).signature),
      lastResort: k.lastResort,
      createdAt: CREATED_AT,
    })),
    currentLastResortKemPreKeyId: 4,
    nextKemPreKeyId: 5,
  };
}

/** PROTOCOL.md's "AMK" 0x02 layout, byte by byte. */
function amkBytes(state: KeyManagerState): Buffer {
  const parts: Buffer[] = [Buffer.from('AMK', 'latin1'), u8(0x02), Buffer.from(state.identitySecretKey, 'hex')];
  parts.push(f64(state.nextSignedPreKeyId), f64(state.nextOneTimePreKeyId));
  parts.push(u8(state.currentSignedPreKeyId === null ? 0 : 1), u32(state.currentSignedPreKeyId ?? 0), u32(state.signedPreKeys.length));
  for (const s of state.signedPreKeys) {
    const priv = Buffer.from(s.privateKey, 'hex');
    parts.push(u32(s.keyId), priv, xPublic(priv), Buffer.from(s.signature, 'hex'), f64(s.createdAt));
  }
  parts.push(u32(state.oneTimePreKeys.length));
  for (const o of state.oneTimePreKeys) {
    const priv = Buffer.from(o.privateKey, 'hex');
    parts.push(u32(o.keyId), priv, xPublic(priv));
  }
  const kems = state.kemPreKeys ?? [];
  const lr = state.currentLastResortKemPreKeyId ?? null;
  parts.push(f64(state.nextKemPreKeyId ?? 0), u8(lr === null ? 0 : 1), u32(lr ?? 0), u32(kems.length));
  for (const k of kems) {
    parts.push(u32(k.keyId), u8(k.lastResort ? 1 : 0), Buffer.from(k.seed, 'hex'));
    parts.push(Buffer.from(k.signature, 'hex'), f64(k.createdAt));
  }
  return Buffer.concat(parts);
}

// ---- the vectors ----

function kemPreKeyVectors(): object[] {
  return BOB_KEMS.map((k) => {
    const { publicKey, signedBytes, signature } = kemPublic(k);
    return {
      name: `KEM pre-key ${k.keyId} (${k.lastResort ? 'last resort' : 'one-time'})`,
      identitySeed: hex(BOB_SEED),
      identityPublicKey: hex(edPublic(BOB_SEED)),
      keyId: k.keyId,
      lastResort: k.lastResort,
      mlkemSeed: hex(k.seed),
      publicKey: hex(publicKey),
      signedBytes: hex(signedBytes),
      signature: hex(signature),
    };
  });
}

function kdfVectors(): object[] {
  const cases: [string, Buffer[], Buffer][] = [
    ['3 DH outputs', [seed(0x10), seed(0x20), seed(0x30)], seed(0xe0)],
    ['4 DH outputs', [seed(0x11), seed(0x21), seed(0x31), seed(0x41)], seed(0xf0)],
  ];
  return cases.map(([name, dh, ss]) => {
    const sk = kdf([...dh, ss], PQXDH_INFO);
    same(`pqxdhKdf, ${name}`, pqxdhKdf(dh, ss), sk);
    const classic = kdf(dh, X3DH_INFO);
    same(`x3dhKdf, ${name}`, x3dhKdf(dh), classic);
    return {
      name,
      dh: dh.map(hex),
      kemSharedSecret: hex(ss),
      info: PQXDH_INFO,
      ikm: hex(Buffer.concat([Buffer.alloc(32, 0xff), ...dh, ss])),
      sk: hex(sk),
      classicSk: hex(classic),
    };
  });
}

function agreementVectors(state: KeyManagerState): object[] {
  const cases: [string, boolean, KemInput, Buffer, Buffer][] = [
    ['3 DH (no one-time pre-key), last-resort KEM pre-key', false, BOB_KEMS[1], seed(0x70), seed(0x80)],
    ['4 DH (one-time pre-key), one-time KEM pre-key', true, BOB_KEMS[0], seed(0x71), seed(0x81)],
  ];
  const aliceX = identityX25519Private(ALICE_SEED);
  const bobX = identityX25519Private(BOB_SEED);
  const aliceIk = xPublic(aliceX);
  const bobIk = xPublic(bobX);
  const spkPub = xPublic(BOB_SPK.privateKey);
  const otkPub = xPublic(BOB_OTK.privateKey);
  return cases.map(([name, withOtk, kem, ekPriv, m]) => {
    const ek = xPublic(ekPriv);
    const dh = [xDh(aliceX, spkPub), xDh(ekPriv, bobIk), xDh(ekPriv, spkPub), ...(withOtk ? [xDh(ekPriv, otkPub)] : [])];
    // The responder's side of the same four values, as a cross-check of the inputs.
    same(`${name}: DH1 both ways`, xDh(BOB_SPK.privateKey, aliceIk), dh[0]);
    same(`${name}: DH2 both ways`, xDh(bobX, ek), dh[1]);
    const enc = mlkem768EncapsulateDerandomized(kemPublic(kem).publicKey, m);
    const sk = kdf([...dh, enc.sharedSecret], PQXDH_INFO);
    const ad = Buffer.concat([aliceIk, bobIk]);
    // Binary: ik ‖ ek ‖ flags ‖ [u32 otk] ‖ u32 spk ‖ u32 kem ‖ kct; JSON: { ik, ek, otk?, spk, kem, kct }.
    const flags = (withOtk ? 1 : 0) | 2 | 4;
    const bytes = Buffer.concat([
      aliceIk,
      ek,
      u8(flags),
      ...(withOtk ? [u32(BOB_OTK.keyId)] : []),
      u32(BOB_SPK.keyId),
      u32(kem.keyId),
      enc.ciphertext,
    ]);
    const json = JSON.stringify({
      ik: aliceIk.toString('base64'),
      ek: ek.toString('base64'),
      ...(withOtk ? { otk: BOB_OTK.keyId } : {}),
      spk: BOB_SPK.keyId,
      kem: kem.keyId,
      kct: Buffer.from(enc.ciphertext).toString('base64'),
    });
    // Our code on the same inputs: the establishment's forms, and the responder's manager.
    const e = new ChannelEstablishment({
      initiatorIdentityKey: aliceIk,
      ephemeralPublicKey: ek,
      usedOneTimeKeyId: withOtk ? BOB_OTK.keyId : undefined,
      signedPreKeyId: BOB_SPK.keyId,
      kemPreKeyId: kem.keyId,
      kemCiphertext: enc.ciphertext,
    });
    same(`${name}: establishment bytes`, e.serialize(), bytes);
    same(`${name}: establishment JSON`, JSON.stringify(e.toJSON()), json);
    const bob = X3DHKeyManager.fromState(state);
    const r = bob.respond({
      peerIdentityKey: aliceIk,
      ephemeralPublicKey: ek,
      usedOneTimeKeyId: withOtk ? BOB_OTK.keyId : undefined,
      signedPreKeyId: BOB_SPK.keyId,
      kemPreKeyId: kem.keyId,
      kemCiphertext: enc.ciphertext,
    });
    same(`${name}: respond's SK`, r.sharedSecret, sk);
    same(`${name}: respond's AD`, r.associatedData, ad);
    same(`${name}: pqxdhKdf`, pqxdhKdf(dh, enc.sharedSecret), sk);
    same(`${name}: Alice's X25519 identity`, X3DHKeyManager.fromEd25519Keys(...aliceKeys()).identityKey.publicKey, aliceIk);
    return {
      name,
      aliceIdentitySeed: hex(ALICE_SEED),
      aliceIdentityKey: hex(aliceIk),
      bobIdentityKey: hex(bobIk),
      signedPreKeyId: BOB_SPK.keyId,
      oneTimePreKeyId: withOtk ? BOB_OTK.keyId : null,
      kemPreKeyId: kem.keyId,
      ephemeralPrivateKey: hex(ekPriv),
      ephemeralPublicKey: hex(ek),
      encapsulationSeed: hex(m),
      kemCiphertext: hex(enc.ciphertext),
      kemSharedSecret: hex(enc.sharedSecret),
      dh: dh.map(hex),
      sk: hex(sk),
      associatedData: hex(ad),
      establishment: { bytes: hex(bytes), json },
    };
  });
}

function aliceKeys(): [Uint8Array, Uint8Array] {
  const pub = edPublic(ALICE_SEED);
  return [Buffer.concat([ALICE_SEED, pub]), pub];
}

function keyManagerVector(state: KeyManagerState): object {
  const bytes = amkBytes(state);
  const m = X3DHKeyManager.fromState(state);
  same('AMK 0x02 bytes', m.toBytes(), bytes);
  same('AMK 0x02 round trip', X3DHKeyManager.fromBytes(bytes).toBytes(), bytes);
  same('state v2 round trip', JSON.stringify(X3DHKeyManager.fromBytes(bytes).exportState()), JSON.stringify(state));
  return { name: 'signed pre-key, one-time pre-key, one-time and last-resort KEM pre-keys', state, bytes: hex(bytes) };
}

/** The error code `f` throws, or a failure of the generator if it throws none or a foreign error. */
function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof E2EError) return e.code;
    throw e;
  }
  throw new Error('expected an error');
}

/** "AMC" 0x02 ‖ flags(0x01) ‖ the rest of a classic channel state from channel.json. */
function channelVectors(): object {
  const classic = (JSON.parse(readFileSync(join(OUT, 'channel.json'), 'utf8')) as { valid: { name: string; bytes: string }[] }).valid[1];
  const rest = Buffer.from(classic.bytes, 'hex').subarray(4);
  const bytes = Buffer.concat([Buffer.from('AMC', 'latin1'), u8(0x02), u8(0x01), rest]);
  same('AMC 0x02 round trip', SecureChannel.fromBytes(bytes).toBytes(), bytes);
  if (!SecureChannel.fromBytes(bytes).postQuantum) throw new Error('AMC 0x02: not post-quantum');
  const invalid = [0x00, 0x02, 0x03, 0x80].map((flags) => {
    const b = Buffer.from(bytes);
    b[4] = flags;
    return { name: `flags 0x${flags.toString(16).padStart(2, '0')}`, bytes: hex(b), error: codeOf(() => SecureChannel.fromBytes(b)) };
  });
  return { valid: [{ name: `post-quantum: ${classic.name}`, classicBytes: classic.bytes, bytes: hex(bytes) }], invalid };
}

async function main(): Promise<void> {
  await ready();
  const state = bobState();
  const doc = {
    description:
      'PQXDH known answers (PROTOCOL.md "PQXDH"). Inputs: 32-byte runs seed(b)[i] = b + i (64 bytes for ML-KEM seeds d ‖ z). ' +
      'Ed25519, X25519, HKDF, the signed bytes and every byte layout computed independently with node:crypto and Buffer; ML-KEM-768 from ' +
      'libsodium (checked against Wycheproof in spec/crypto/mlkem.spec.ts). Generated by scripts/vectors/pqxdh.ts.',
    kemPreKeys: kemPreKeyVectors(),
    kdf: kdfVectors(),
    agreements: agreementVectors(state),
    keyManager: [keyManagerVector(state)],
    channelState: channelVectors(),
  };
  writeFileSync(join(OUT, 'pqxdh.json'), `${JSON.stringify(doc, null, 2)}\n`);
}

void main();
