/**
 * Post-quantum (PQXDH) establishments against a network adversary (fast-check).
 *
 * The adversary sits between Alice and Bob: it rewrites Bob's bundle on its way to Alice and
 * Alice's establishment on its way to Bob, in any of the three transport forms (a fields object,
 * PROTOCOL.md's binary form, its JSON form, each written here by hand). Each family generates
 * strategies, and every run predicts the exact outcome and checks it:
 *
 *  - ciphertext: any bit flips, truncation, extension, another valid ciphertext for the same key,
 *    a ciphertext for another of Bob's keys or for another agent's key, random or constant bytes.
 *    Never a working session: a wrong length is `MALFORMED_MESSAGE` on the receiving path (Bob's
 *    state byte-identical, the genuine establishment then works); a 1088-byte ciphertext other than
 *    the genuine one is accepted (ML-KEM's implicit rejection) and every message then fails
 *    `DECRYPT_FAILED`, having spent exactly the one-time keys it named (none with held keys).
 *  - failures after the KEM lookup: an unknown one-time or signed pre-key, a low-order or
 *    non-canonical key, bad options: the exact code, Bob's state byte-identical, and the genuine
 *    establishment then works (so the one-time KEM pre-key was not consumed).
 *  - bundle: the KEM pre-key tampered (bit flips, another agent's key with its genuine signature,
 *    a key failing FIPS 203's modulus check, signed or not), its signature tampered (bit flips, the
 *    signed pre-key's, another KEM key's, one over the raw key without the typed encoding), wrong
 *    lengths and ids, fields missing: `BAD_SIGNATURE`, `INVALID_KEY` or `MALFORMED_MESSAGE` at
 *    createSender. And one that is not an error: another genuine KEM key of Bob under the first
 *    key's id is accepted by both sides and fails at the first message.
 *  - downgrade: KEM fields stripped from the bundle (`POST_QUANTUM_REQUIRED` with
 *    `requirePostQuantum`, a classic session without), or from the establishment (the receiver's
 *    `requirePostQuantum`, or `DECRYPT_FAILED` at the first message); half of them stripped
 *    (`MALFORMED_MESSAGE`); the KEM pre-key id swapped to another of Bob's ids or an unknown one.
 *  - replay: a one-time KEM pre-key answers once (`KEM_NOT_FOUND` after); the last-resort one
 *    answers the same establishment again at this layer (replays are the stores' and the bridge's
 *    to refuse), unless a one-time X25519 pre-key was named too.
 *  - honest: random configurations (one-time or last-resort KEM pre-key, with or without a one-time
 *    pre-key, binary or JSON bundles and establishments, managers and channels saved and restored)
 *    round-trip both ways with `postQuantum` on both ends; classic bundles give the classic bytes.
 *
 * FC_SEED replays a run; PQ_RUNS scales the number of runs (e.g. 0.2 or 5).
 */
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { concatBytes, fromHex, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { MLKEM768_CIPHERTEXT_BYTES, MLKEM768_PUBLIC_KEY_BYTES, mlkem768Encapsulate } from '../../lib/crypto/mlkem';
import { OneTimePreKey, PreKeyBundle, X3DHKeyManager, bundleFromJSON, bundleToJSON } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { ChannelEstablishment, ReceiverOptions, SecureChannel } from '../../lib/channel';
import { expectE2EError } from '../helpers/expect-error';
import {
  ESTABLISHMENT_FORMS,
  EstablishmentForm,
  KemChoice,
  PQ_AD,
  PqWorld,
  RawEstablishment,
  attempt,
  bobBundle,
  flipBit,
  freshManager,
  outcome,
  parse,
  pqWorld,
  rawBinary,
  rawJson,
  rawOf,
  receive,
  roundTrips,
  stateHex,
} from '../helpers/pq-world';

beforeAll(() => ready());

const SCALE = process.env.PQ_RUNS ? Number(process.env.PQ_RUNS) : 1;
const runs = (n: number): { numRuns: number; seed?: number } => ({
  numRuns: Math.max(1, Math.round(n * SCALE)),
  ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
});

const CT = MLKEM768_CIPHERTEXT_BYTES;
const PK = MLKEM768_PUBLIC_KEY_BYTES;
/** A point of order 8 (libsodium's blocklist): X25519 with it is all zero. */
const ORDER_8_POINT = fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');

const kemChoice = fc.constantFrom<KemChoice>('oneTime', 'lastResort');
const form = fc.constantFrom<EstablishmentForm>(...ESTABLISHMENT_FORMS);

/** The KEM pre-key id a bundle of `kem` names. */
function kemIdOf(w: PqWorld, kem: KemChoice): number {
  return kem === 'oneTime' ? w.kemOneTime[0].keyId : w.kemLastResort.keyId;
}

/** A copy of Bob's one-time pre-key `id` that outlives its consumption (for `heldOneTimePreKey`). */
function heldOtk(bob: X3DHKeyManager, id: number): OneTimePreKey {
  const k = bob.getOneTimePreKey(id) as OneTimePreKey;
  return {
    keyId: k.keyId,
    keyPair: { privateKey: Uint8Array.from(k.keyPair.privateKey), publicKey: Uint8Array.from(k.keyPair.publicKey) },
  };
}

/**
 * Bob's saved bytes after spending exactly `kemId` (when one-time) and `otkId` (when given) from
 * the state `before`: what a successful createReceiver must leave.
 */
function spent(before: string, kemId: number | undefined, otkId: number | undefined): string {
  const m = X3DHKeyManager.fromBytes(fromHex(before));
  if (kemId !== undefined && !m.getKemPreKey(kemId)?.lastResort) m.consumeKemPreKey(kemId);
  if (otkId !== undefined) m.consumeOneTimePreKey(otkId);
  return stateHex(m);
}

/** Every message Alice sends on `alice` fails at `bob` with DECRYPT_FAILED, and `bob` stays unable to read them. */
function expectDeadSession(alice: SecureChannel, bob: SecureChannel, messages: number): void {
  for (let i = 0; i < messages; i++) {
    const wire = alice.send(utf8(`message ${i}`)).serialize();
    expectE2EError(() => bob.receive(wire), 'DECRYPT_FAILED');
  }
}

/** After the adversary's delivery, the genuine establishment: works (both ways) or the exact code. */
function expectGenuine(w: PqWorld, alice: SecureChannel, e: ChannelEstablishment, expected: string, options: ReceiverOptions = {}): void {
  const before = stateHex(w.bob);
  const { code, value: bob } = attempt(() => SecureChannel.createReceiver(w.bob, e, PQ_AD, options));
  expect(code).toBe(expected);
  if (bob) {
    expect(bob.postQuantum).toBe(true);
    expect(roundTrips(alice, bob, 2)).toBe(true);
  } else {
    expect(stateHex(w.bob)).toBe(before);
  }
}

// ---------------------------------------------------------------------------------------------

type CtTamper =
  | { kind: 'flip'; bits: number[] }
  | { kind: 'truncate'; length: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'reencapsulate' }
  | { kind: 'otherBobKey'; which: number }
  | { kind: 'foreignKey' }
  | { kind: 'random' }
  | { kind: 'constant'; byte: number };

const ctTamper: fc.Arbitrary<CtTamper> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('flip' as const), bits: fc.uniqueArray(fc.nat(CT * 8 - 1), { minLength: 1, maxLength: 6 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), length: fc.nat(CT - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reencapsulate' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('otherBobKey' as const), which: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('foreignKey' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('constant' as const), byte: fc.integer({ min: 0, max: 255 }) }) },
);

/** The adversary's ciphertext in place of `ct`, sent for Bob's KEM pre-key `kemId`. */
function tamperCiphertext(w: PqWorld, kemId: number, ct: Uint8Array, t: CtTamper): Uint8Array {
  switch (t.kind) {
    case 'flip':
      return t.bits.reduce(flipBit, ct);
    case 'truncate':
      return ct.subarray(0, t.length);
    case 'extend':
      return concatBytes(ct, t.extra);
    case 'reencapsulate':
      return mlkem768Encapsulate((w.bob.getKemPreKey(kemId) as { publicKey: Uint8Array }).publicKey).ciphertext;
    case 'otherBobKey': {
      const others = w.bob.kemPreKeyIds.filter((id) => id !== kemId);
      return mlkem768Encapsulate((w.bob.getKemPreKey(others[t.which % others.length]) as { publicKey: Uint8Array }).publicKey).ciphertext;
    }
    case 'foreignKey':
      return mlkem768Encapsulate(w.carolKem.publicKey).ciphertext;
    case 'random':
      return randomBytes(CT);
    case 'constant':
      return new Uint8Array(CT).fill(t.byte);
  }
}

describe('PQ adversary: the KEM ciphertext', () => {
  test('a tampered ciphertext never gives a working session, and spends exactly what its outcome says', () => {
    const stats = new Map<string, number>();
    fc.assert(
      fc.property(
        fc.record({
          tamper: ctTamper,
          kem: kemChoice,
          otk: fc.boolean(),
          form,
          held: fc.boolean(),
          messages: fc.integer({ min: 1, max: 3 }),
        }),
        ({ tamper, kem, otk, form: f, held, messages }) => {
          const w = pqWorld();
          const kemId = kemIdOf(w, kem);
          const otkId = otk ? w.otkIds[0] : undefined;
          const { channel: alice, establishment } = SecureChannel.createSender(w.alice, bobBundle(w, kem, otk), PQ_AD, {
            requirePostQuantum: true,
          });
          const genuineCt = establishment.kemCiphertext as Uint8Array;
          const raw: RawEstablishment = { ...rawOf(establishment), kct: tamperCiphertext(w, kemId, genuineCt, tamper) };
          expect(toHex(raw.kct as Uint8Array)).not.toBe(toHex(genuineCt));
          const options: ReceiverOptions = held
            ? {
                heldKemPreKey: w.bob.exportKemPreKeySecret(kemId),
                ...(otkId === undefined ? {} : { heldOneTimePreKey: heldOtk(w.bob, otkId) }),
              }
            : {};
          const before = stateHex(w.bob);
          const { code: got, value: bob } = attempt(() => receive(w.bob, raw, f, { ...options, requirePostQuantum: true }));
          stats.set(`${tamper.kind}:${got}`, (stats.get(`${tamper.kind}:${got}`) ?? 0) + 1);
          if ((raw.kct as Uint8Array).length !== CT) {
            // A wrong length is refused by the receiving path, before any key is looked up.
            expect(got).toBe('MALFORMED_MESSAGE');
            // ...by the parsing itself (the constructor, deserialize, fromJSON), not only by respond.
            expect(outcome(() => parse(raw, f === 'fields' ? 'instance' : f))).toBe('MALFORMED_MESSAGE');
            expect(stateHex(w.bob)).toBe(before);
            expectGenuine(w, alice, establishment, 'ok');
            return;
          }
          // Implicit rejection: accepted, then nothing Alice sends authenticates.
          expect(got).toBe('ok');
          const channel = bob as SecureChannel;
          expect(channel.postQuantum).toBe(true);
          expectDeadSession(alice, channel, messages);
          if (held) {
            expect(stateHex(w.bob)).toBe(before);
            expectGenuine(w, alice, establishment, 'ok', options);
            return;
          }
          expect(stateHex(w.bob)).toBe(spent(before, kemId, otkId));
          expectGenuine(w, alice, establishment, kem === 'oneTime' ? 'KEM_NOT_FOUND' : otk ? 'OTK_NOT_FOUND' : 'ok');
        },
      ),
      runs(120),
    );
    if (process.env.PROPERTY_STATS) console.log(Object.fromEntries(stats));
  });
});

type LateFailure =
  | 'unknownOtk'
  | 'unknownSpk'
  | 'lowOrderEk'
  | 'nonCanonicalEk'
  | 'nonCanonicalIk'
  | 'lowOrderIk'
  | 'badOptions'
  | 'heldKemWrongId'
  | 'unknownKem'
  | 'spentKem';

describe('PQ adversary: a failed createReceiver spends nothing', () => {
  const EXPECTED: Record<LateFailure, string> = {
    unknownOtk: 'OTK_NOT_FOUND',
    unknownSpk: 'SPK_NOT_FOUND',
    lowOrderEk: 'INVALID_KEY',
    nonCanonicalEk: 'INVALID_KEY',
    nonCanonicalIk: 'INVALID_KEY',
    lowOrderIk: 'INVALID_KEY',
    badOptions: 'INVALID_ARGUMENT',
    heldKemWrongId: 'INVALID_ARGUMENT',
    unknownKem: 'KEM_NOT_FOUND',
    spentKem: 'KEM_NOT_FOUND',
  };
  test('every late failure is its exact code, Bob is byte-identical, and the genuine establishment then works', () => {
    fc.assert(
      fc.property(
        fc.record({
          failure: fc.constantFrom<LateFailure>(...(Object.keys(EXPECTED) as LateFailure[])),
          kem: kemChoice,
          otk: fc.boolean(),
          form,
        }),
        ({ failure, kem, otk, form: f }) => {
          const w = pqWorld();
          const kemId = kemIdOf(w, kem);
          const { channel: alice, establishment } = SecureChannel.createSender(w.alice, bobBundle(w, kem, otk), PQ_AD);
          const raw = rawOf(establishment);
          let options: ReceiverOptions = {};
          switch (failure) {
            case 'unknownOtk':
              raw.otk = 1000;
              break;
            case 'unknownSpk':
              raw.spk = 1000;
              break;
            case 'lowOrderEk':
              raw.ek = ORDER_8_POINT;
              break;
            case 'nonCanonicalEk':
              raw.ek = flipBit(raw.ek, 255);
              break;
            case 'nonCanonicalIk':
              raw.ik = flipBit(raw.ik, 255);
              break;
            case 'lowOrderIk':
              raw.ik = ORDER_8_POINT;
              break;
            case 'badOptions':
              options = { maxSkip: -1 };
              break;
            case 'heldKemWrongId':
              options = { heldKemPreKey: w.bob.exportKemPreKeySecret(w.kemOneTime[1].keyId) };
              break;
            case 'unknownKem':
              raw.kem = 1000;
              break;
            case 'spentKem':
              w.bob.consumeKemPreKey(w.kemOneTime[1].keyId);
              raw.kem = w.kemOneTime[1].keyId;
              break;
          }
          const before = stateHex(w.bob);
          expect(outcome(() => receive(w.bob, raw, f, options))).toBe(EXPECTED[failure]);
          expect(stateHex(w.bob)).toBe(before);
          expect(w.bob.kemPreKeyIds).toContain(kemId);
          expectGenuine(w, alice, establishment, 'ok');
          // ...and it spent the one-time KEM pre-key only then.
          expect(w.bob.kemPreKeyIds.includes(kemId)).toBe(kem === 'lastResort');
        },
      ),
      runs(60),
    );
  });
});

// ---------------------------------------------------------------------------------------------

type BundleTamper =
  | { kind: 'flipKey'; bits: number[] }
  | { kind: 'foreignKeyAndSignature'; keepId: boolean }
  | { kind: 'badModulusSigned'; coefficient: number; value: number }
  | { kind: 'badModulusUnsigned'; coefficient: number; value: number }
  | { kind: 'flipSignature'; bit: number }
  | { kind: 'signedPreKeySignature' }
  | { kind: 'otherKemKeySignature' }
  | { kind: 'signatureOverRawKey' }
  | { kind: 'signatureWithoutTypeByte' }
  | { kind: 'keyLength'; length: number }
  | { kind: 'signatureLength'; length: number }
  | { kind: 'badId'; id: number }
  | { kind: 'missing'; drop: ('kemPreKey' | 'kemPreKeyId' | 'kemPreKeySignature')[] };

const coefficient = fc.nat(767);
const badValue = fc.integer({ min: 3329, max: 4095 });
const bundleTamper: fc.Arbitrary<BundleTamper> = fc.oneof(
  fc.record({ kind: fc.constant('flipKey' as const), bits: fc.uniqueArray(fc.nat(PK * 8 - 1), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('foreignKeyAndSignature' as const), keepId: fc.boolean() }),
  fc.record({ kind: fc.constant('badModulusSigned' as const), coefficient, value: badValue }),
  fc.record({ kind: fc.constant('badModulusUnsigned' as const), coefficient, value: badValue }),
  fc.record({ kind: fc.constant('flipSignature' as const), bit: fc.nat(511) }),
  fc.record({ kind: fc.constant('signedPreKeySignature' as const) }),
  fc.record({ kind: fc.constant('otherKemKeySignature' as const) }),
  fc.record({ kind: fc.constant('signatureOverRawKey' as const) }),
  fc.record({ kind: fc.constant('signatureWithoutTypeByte' as const) }),
  fc.record({
    kind: fc.constant('keyLength' as const),
    length: fc.oneof(fc.integer({ min: 0, max: PK - 1 }), fc.integer({ min: PK + 1, max: PK + 8 }), fc.constant(32)),
  }),
  fc.record({ kind: fc.constant('signatureLength' as const), length: fc.oneof(fc.integer({ min: 0, max: 63 }), fc.constant(65)) }),
  fc.record({ kind: fc.constant('badId' as const), id: fc.constantFrom(-1, 2 ** 32, 1.5, Number.NaN) }),
  fc.record({
    kind: fc.constant('missing' as const),
    drop: fc.subarray(['kemPreKey', 'kemPreKeyId', 'kemPreKeySignature'] as ('kemPreKey' | 'kemPreKeyId' | 'kemPreKeySignature')[], {
      minLength: 1,
      maxLength: 2,
    }),
  }),
);

/** `pk` with coefficient `i` of t̂ (12-bit little-endian packing, FIPS 203 ByteEncode₁₂) set to `value` (≥ q: fails the modulus check). */
function withCoefficient(pk: Uint8Array, i: number, value: number): Uint8Array {
  const out = Uint8Array.from(pk);
  const at = 3 * (i >> 1);
  if (i % 2 === 0) {
    out[at] = value & 0xff;
    out[at + 1] = (out[at + 1] & 0xf0) | (value >> 8);
  } else {
    out[at + 1] = (out[at + 1] & 0x0f) | ((value & 0x0f) << 4);
    out[at + 2] = value >> 4;
  }
  return out;
}

/** The tampered bundle and the exact createSender outcome expected of it. */
function tamperBundle(w: PqWorld, b: PreKeyBundle, t: BundleTamper): { bundle: Record<string, unknown>; expected: string } {
  const kem = b.kemPreKey as Uint8Array;
  const out: Record<string, unknown> = { ...b };
  const bad = (expected: string): { bundle: Record<string, unknown>; expected: string } => ({ bundle: out, expected });
  switch (t.kind) {
    case 'flipKey':
      out.kemPreKey = t.bits.reduce(flipBit, kem);
      return bad('BAD_SIGNATURE');
    case 'foreignKeyAndSignature':
      out.kemPreKey = w.carolKem.publicKey;
      out.kemPreKeySignature = w.carolKem.signature;
      if (!t.keepId) out.kemPreKeyId = w.carolKem.keyId;
      return bad('BAD_SIGNATURE');
    case 'badModulusSigned':
      out.kemPreKey = withCoefficient(kem, t.coefficient, t.value);
      out.kemPreKeySignature = w.bob.signWithIdentityKey(kemPreKeySignedBytes(out.kemPreKey as Uint8Array));
      return bad('INVALID_KEY');
    case 'badModulusUnsigned':
      out.kemPreKey = withCoefficient(kem, t.coefficient, t.value);
      return bad('BAD_SIGNATURE');
    case 'flipSignature':
      out.kemPreKeySignature = flipBit(b.kemPreKeySignature as Uint8Array, t.bit);
      return bad('BAD_SIGNATURE');
    case 'signedPreKeySignature':
      out.kemPreKeySignature = b.signedPreKeySignature;
      return bad('BAD_SIGNATURE');
    case 'otherKemKeySignature':
      out.kemPreKeySignature = w.kemOneTime[1].signature;
      return bad('BAD_SIGNATURE');
    case 'signatureOverRawKey':
      out.kemPreKeySignature = w.bob.signWithIdentityKey(kem);
      return bad('BAD_SIGNATURE');
    case 'signatureWithoutTypeByte':
      out.kemPreKeySignature = w.bob.signWithIdentityKey(concatBytes(utf8('AgentMesh_PQXDH_KEM_PreKey_v1\u0000'), kem));
      return bad('BAD_SIGNATURE');
    case 'keyLength':
      out.kemPreKey = t.length <= PK ? kem.subarray(0, t.length) : concatBytes(kem, new Uint8Array(t.length - PK));
      return bad('INVALID_KEY');
    case 'signatureLength':
      out.kemPreKeySignature = (b.kemPreKeySignature as Uint8Array).subarray(0, t.length);
      if (t.length > 64) out.kemPreKeySignature = concatBytes(b.kemPreKeySignature as Uint8Array, new Uint8Array(t.length - 64));
      return bad('BAD_SIGNATURE');
    case 'badId':
      out.kemPreKeyId = t.id;
      return bad('MALFORMED_MESSAGE');
    case 'missing':
      for (const k of t.drop) delete out[k];
      return bad('MALFORMED_MESSAGE');
  }
}

/** The registry's JSON form of a (possibly invalid) bundle object, written by hand. */
function rawBundleJson(b: Record<string, unknown>): string {
  const u = (v: unknown): string | undefined => (v instanceof Uint8Array ? Buffer.from(v).toString('base64url') : undefined);
  const j: Record<string, unknown> = {
    identity_key: u(b.identityKey),
    identity_key_ed: u(b.identityKeyEd),
    signed_pre_key: { key_id: b.signedPreKeyId, public_key: u(b.signedPreKey), signature: u(b.signedPreKeySignature) },
  };
  if (b.oneTimePreKey !== undefined) j.one_time_pre_key = { key_id: b.oneTimePreKeyId, public_key: u(b.oneTimePreKey) };
  if (b.kemPreKey !== undefined || b.kemPreKeyId !== undefined || b.kemPreKeySignature !== undefined) {
    const k: Record<string, unknown> = {};
    if (b.kemPreKeyId !== undefined) k.key_id = Number.isFinite(b.kemPreKeyId) ? b.kemPreKeyId : String(b.kemPreKeyId);
    if (b.kemPreKey !== undefined) k.public_key = u(b.kemPreKey);
    if (b.kemPreKeySignature !== undefined) k.signature = u(b.kemPreKeySignature);
    j.kem_pre_key = k;
  }
  return JSON.stringify(j);
}

describe('PQ adversary: the bundle', () => {
  test('a tampered KEM pre-key, signature or field set is refused at createSender with its exact code, and nothing is produced', () => {
    fc.assert(
      fc.property(
        fc.record({ tamper: bundleTamper, kem: kemChoice, otk: fc.boolean(), json: fc.boolean(), requirePostQuantum: fc.boolean() }),
        ({ tamper, kem, otk, json, requirePostQuantum }) => {
          const w = pqWorld();
          const genuine = bobBundle(w, kem, otk);
          // The genuine bundle first: a verification cache must not let the tampered one through.
          SecureChannel.createSender(w.alice, genuine, PQ_AD);
          const { bundle, expected } = tamperBundle(w, genuine, tamper);
          const aliceBefore = stateHex(w.alice);
          const bobBefore = stateHex(w.bob);
          const { code: got, value: produced } = attempt(() => {
            const b = json ? bundleFromJSON(rawBundleJson(bundle)) : (bundle as unknown as PreKeyBundle);
            return SecureChannel.createSender(w.alice, b, PQ_AD, { requirePostQuantum });
          });
          expect(got).toBe(expected);
          expect(produced).toBeUndefined();
          expect(stateHex(w.alice)).toBe(aliceBefore);
          expect(stateHex(w.bob)).toBe(bobBefore);
        },
      ),
      runs(150),
    );
  });

  test('another genuine KEM pre-key of Bob under the first one’s id: accepted by both sides, dead at the first message', () => {
    fc.assert(
      fc.property(fc.record({ kem: kemChoice, otk: fc.boolean(), form, which: fc.nat(1) }), ({ kem, otk, form: f, which }) => {
        const w = pqWorld();
        const b = bobBundle(w, kem, otk);
        const kemId = kemIdOf(w, kem);
        const other = [w.kemOneTime[1], kem === 'oneTime' ? w.kemLastResort : w.kemOneTime[0]][which];
        // The signature covers the key, not its id: the swapped key verifies.
        const swapped: PreKeyBundle = { ...b, kemPreKey: other.publicKey, kemPreKeySignature: other.signature };
        const { channel: alice, establishment } = SecureChannel.createSender(w.alice, swapped, PQ_AD, { requirePostQuantum: true });
        expect(establishment.kemPreKeyId).toBe(kemId);
        const before = stateHex(w.bob);
        const bob = receive(w.bob, rawOf(establishment), f, { requirePostQuantum: true });
        expect(bob.postQuantum).toBe(true);
        expectDeadSession(alice, bob, 2);
        // Bob spent what the establishment named; the key Alice really encapsulated to is untouched.
        expect(stateHex(w.bob)).toBe(spent(before, kemId, otk ? w.otkIds[0] : undefined));
        expect(w.bob.kemPreKeyIds).toContain(other.keyId);
      }),
      runs(30),
    );
  });
});

// ---------------------------------------------------------------------------------------------

/** `b` without its KEM pre-key fields, as a relay that strips them passes it on (object, or its JSON). */
function stripped(b: PreKeyBundle, json: boolean): PreKeyBundle {
  if (json) {
    const j = bundleToJSON(b) as unknown as Record<string, unknown>;
    delete j.kem_pre_key;
    return bundleFromJSON(JSON.stringify(j));
  }
  const out: Record<string, unknown> = { ...b };
  delete out.kemPreKey;
  delete out.kemPreKeyId;
  delete out.kemPreKeySignature;
  return out as unknown as PreKeyBundle;
}

describe('PQ adversary: downgrade', () => {
  test('a bundle stripped of its KEM pre-key: POST_QUANTUM_REQUIRED when required, else a classic session (refused by a receiver that requires PQ)', () => {
    fc.assert(
      fc.property(
        fc.record({ kem: kemChoice, otk: fc.boolean(), json: fc.boolean(), form, receiverRequires: fc.boolean() }),
        ({ kem, otk, json, form: f, receiverRequires }) => {
          const w = pqWorld();
          const b = stripped(bobBundle(w, kem, otk), json);
          expectE2EError(() => SecureChannel.createSender(w.alice, b, PQ_AD, { requirePostQuantum: true }), 'POST_QUANTUM_REQUIRED');
          const { channel: alice, establishment } = SecureChannel.createSender(w.alice, b, PQ_AD, { requirePostQuantum: false });
          expect(alice.postQuantum).toBe(false);
          expect(establishment.postQuantum).toBe(false);
          expect(establishment.kemPreKeyId).toBeUndefined();
          expect(establishment.serialize()[64] & 4).toBe(0);
          expect(Object.keys(establishment.toJSON()).sort()).toEqual(otk ? ['ek', 'ik', 'otk', 'spk'] : ['ek', 'ik', 'spk']);
          const before = stateHex(w.bob);
          if (receiverRequires) {
            expect(outcome(() => receive(w.bob, rawOf(establishment), f, { requirePostQuantum: true }))).toBe('POST_QUANTUM_REQUIRED');
            expect(stateHex(w.bob)).toBe(before);
          }
          const bob = receive(w.bob, rawOf(establishment), f);
          expect(bob.postQuantum).toBe(false);
          expect(roundTrips(alice, bob, 2)).toBe(true);
          // The classic establishment spent no KEM pre-key.
          expect(stateHex(w.bob)).toBe(spent(before, undefined, otk ? w.otkIds[0] : undefined));
        },
      ),
      runs(40),
    );
  });

  type Strip = 'both' | 'kemOnly' | 'kctOnly' | 'swapToOther' | 'swapToUnknown' | 'flagCleared';
  test('an establishment stripped or re-pointed: the exact outcome for every strategy', () => {
    fc.assert(
      fc.property(
        fc.record({
          strip: fc.constantFrom<Strip>('both', 'kemOnly', 'kctOnly', 'swapToOther', 'swapToUnknown', 'flagCleared'),
          kem: kemChoice,
          otk: fc.boolean(),
          form,
          receiverRequires: fc.boolean(),
          which: fc.nat(1),
        }),
        ({ strip, kem, otk, form: f, receiverRequires, which }) => {
          const w = pqWorld();
          const kemId = kemIdOf(w, kem);
          const otkId = otk ? w.otkIds[0] : undefined;
          const { channel: alice, establishment } = SecureChannel.createSender(w.alice, bobBundle(w, kem, otk), PQ_AD);
          expect(alice.postQuantum).toBe(true);
          const raw = rawOf(establishment);
          const others = w.bob.kemPreKeyIds.filter((id) => id !== kemId);
          const swappedTo = others[which % others.length];
          let deliver = (): SecureChannel => receive(w.bob, raw, f, { requirePostQuantum: receiverRequires });
          switch (strip) {
            case 'both':
              delete raw.kem;
              delete raw.kct;
              break;
            case 'kemOnly':
              delete raw.kem;
              break;
            case 'kctOnly':
              delete raw.kct;
              break;
            case 'swapToOther':
              raw.kem = swappedTo;
              break;
            case 'swapToUnknown':
              raw.kem = 4242;
              break;
            case 'flagCleared': {
              // The binary form with bit 4 cleared and the KEM bytes left in: trailing bytes.
              const bin = rawBinary(raw);
              bin[64] &= ~4;
              deliver = () =>
                SecureChannel.createReceiver(w.bob, ChannelEstablishment.deserialize(bin), PQ_AD, { requirePostQuantum: receiverRequires });
              break;
            }
          }
          const expected =
            strip === 'kemOnly' || strip === 'kctOnly' || strip === 'flagCleared'
              ? 'MALFORMED_MESSAGE'
              : strip === 'both'
                ? receiverRequires
                  ? 'POST_QUANTUM_REQUIRED'
                  : 'ok'
                : strip === 'swapToUnknown'
                  ? 'KEM_NOT_FOUND'
                  : 'ok';
          const before = stateHex(w.bob);
          const { code, value: bob } = attempt(deliver);
          expect(code).toBe(expected);
          if (expected !== 'ok') {
            expect(stateHex(w.bob)).toBe(before);
            expectGenuine(w, alice, establishment, 'ok');
            return;
          }
          const channel = bob as SecureChannel;
          // Alice derived the hybrid key; Bob derived another (classic, or under another KEM key).
          expect(channel.postQuantum).toBe(strip !== 'both');
          expectDeadSession(alice, channel, 2);
          // What Bob spent is what the rewritten establishment named; the genuine KEM pre-key stays.
          expect(stateHex(w.bob)).toBe(spent(before, strip === 'both' ? undefined : swappedTo, otkId));
          expect(w.bob.kemPreKeyIds).toContain(kemId);
          expectGenuine(w, alice, establishment, otk ? 'OTK_NOT_FOUND' : 'ok');
        },
      ),
      runs(80),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('PQ adversary: replay', () => {
  test.each(
    (['oneTime', 'lastResort'] as KemChoice[]).flatMap((kem) =>
      [false, true].flatMap((otk) => ESTABLISHMENT_FORMS.map((f) => ({ kem, otk, f }))),
    ),
  )('a replayed PQ establishment ($kem KEM pre-key, one-time pre-key $otk, $f form)', ({ kem, otk, f }) => {
    const w = pqWorld();
    const { channel: alice, establishment } = SecureChannel.createSender(w.alice, bobBundle(w, kem, otk), PQ_AD);
    const raw = rawOf(establishment);
    const first = alice.send(utf8('first')).serialize();
    const bob = receive(w.bob, raw, f);
    expect(bob.receive(first)).toEqual(utf8('first'));
    const before = stateHex(w.bob);
    const expected = kem === 'oneTime' ? 'KEM_NOT_FOUND' : otk ? 'OTK_NOT_FOUND' : 'ok';
    const { code, value: again } = attempt(() => receive(w.bob, raw, f));
    expect(code).toBe(expected);
    expect(stateHex(w.bob)).toBe(before);
    if (again) {
      // The documented behaviour: the last-resort KEM pre-key answers the same establishment again,
      // and the replayed channel is the same session (it reads Alice's first message again).
      expect(again.postQuantum).toBe(true);
      expect(again.receive(first)).toEqual(utf8('first'));
    }
  });

  test('with the KEM pre-key held by the caller, a one-time KEM pre-key answers a replay too (the bridge decides)', () => {
    const w = pqWorld();
    const kemId = w.kemOneTime[0].keyId;
    const held = w.bob.exportKemPreKeySecret(kemId);
    const { channel: alice, establishment } = SecureChannel.createSender(w.alice, bobBundle(w, 'oneTime', false), PQ_AD);
    const first = alice.send(utf8('first')).serialize();
    const before = stateHex(w.bob);
    for (let i = 0; i < 2; i++) {
      const bob = SecureChannel.createReceiver(w.bob, establishment, PQ_AD, { heldKemPreKey: held });
      expect(bob.receive(first)).toEqual(utf8('first'));
    }
    expect(stateHex(w.bob)).toBe(before);
    expect(w.bob.consumeKemPreKey(kemId)).toBe(true);
    expectE2EError(() => SecureChannel.createReceiver(w.bob, establishment, PQ_AD), 'KEM_NOT_FOUND');
  });
});

// ---------------------------------------------------------------------------------------------

type KemKind = KemChoice | 'classic';
type Step = { t: 'send'; from: 'alice' | 'bob'; n: number } | { t: 'save'; who: 'alice' | 'bob' };

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('send' as const),
        from: fc.constantFrom('alice' as const, 'bob' as const),
        n: fc.integer({ min: 1, max: 3 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('save' as const), who: fc.constantFrom('alice' as const, 'bob' as const) }) },
  ),
  { maxLength: 8 },
);

/** A manager through its saved form and back (binary, or the JSON-safe state through JSON text). */
function restoreManager(m: X3DHKeyManager, via: 'none' | 'bytes' | 'state'): X3DHKeyManager {
  if (via === 'bytes') return X3DHKeyManager.fromBytes(m.toBytes());
  if (via === 'state') return X3DHKeyManager.fromState(JSON.parse(JSON.stringify(m.exportState())));
  return m;
}

type Restore = 'none' | 'bytes' | 'state';
const restore = fc.constantFrom<Restore>('none', 'bytes', 'state');
const sessionConfig = fc.record({
  kem: fc.constantFrom<KemKind>('oneTime', 'lastResort', 'classic'),
  otk: fc.boolean(),
  bundleJson: fc.boolean(),
  form: fc.constantFrom<EstablishmentForm>(...ESTABLISHMENT_FORMS),
  saveAlice: restore,
  saveBob: restore,
  require: fc.boolean(),
  steps,
});

/** One open session of a run: its two channels (replaced when restored) and whether it is post-quantum. */
interface Session {
  alice: SecureChannel;
  bob: SecureChannel;
  readonly pq: boolean;
}

describe('PQ sessions: honest runs', () => {
  test('random sequences of sessions round-trip both ways; postQuantum on both ends exactly when the bundle had a KEM pre-key', () => {
    fc.assert(
      fc.property(fc.array(sessionConfig, { minLength: 1, maxLength: 3 }), (configs) => {
        // Bob publishes one-time and last-resort KEM pre-keys; "Dave" never made any (a classic agent).
        let alice = freshManager();
        let bob = freshManager();
        let dave = freshManager();
        bob.generateOneTimePreKeys(3);
        dave.generateOneTimePreKeys(3);
        bob.generateKemPreKeys(3);
        const lastResort = bob.generateLastResortKemPreKey().keyId;
        const sessions: Session[] = [];
        let k = 0;
        for (const c of configs) {
          const pq = c.kem !== 'classic';
          const target = pq ? bob : dave;
          const otkId = c.otk ? target.oneTimePreKeyIds[0] : null;
          const kemId =
            c.kem === 'oneTime' ? bob.kemPreKeyIds.find((id) => id !== lastResort) : c.kem === 'lastResort' ? lastResort : undefined;
          let bundle = c.kem === 'oneTime' ? target.getPublicBundle({ otkId, kemId }) : target.getPublicBundle({ otkId });
          expect(bundle.kemPreKeyId).toBe(kemId);
          if (c.bundleJson) {
            const text = JSON.stringify(bundleToJSON(bundle));
            expect(text.includes('"kem_pre_key"')).toBe(pq);
            bundle = bundleFromJSON(text);
          }
          alice = restoreManager(alice, c.saveAlice);
          const requirePostQuantum = c.require && pq;
          const sent = SecureChannel.createSender(alice, bundle, PQ_AD, { requirePostQuantum });
          const e = sent.establishment;
          expect(e.postQuantum).toBe(pq);
          // Binary: ik ‖ ek ‖ flags ‖ [otk] ‖ spk ‖ [kem ‖ kct]; exactly the hand-written bytes, the classic ones without bit 4.
          const bin = e.serialize();
          expect(bin.length).toBe(65 + (c.otk ? 4 : 0) + 4 + (pq ? 4 + CT : 0));
          expect(bin[64]).toBe((c.otk ? 1 : 0) | 2 | (pq ? 4 : 0));
          expect(toHex(bin)).toBe(toHex(rawBinary(rawOf(e))));
          const json = e.toJSON() as unknown as Record<string, unknown>;
          expect(Object.keys(json).sort()).toEqual([...['ek', 'ik'], ...(pq ? ['kct', 'kem'] : []), ...(c.otk ? ['otk'] : []), 'spk']);
          expect(JSON.stringify(json)).toBe(rawJson(rawOf(e)));
          const before = stateHex(target);
          const restored = restoreManager(target, c.saveBob);
          if (pq) bob = restored;
          else dave = restored;
          const s: Session = { alice: sent.channel, bob: receive(restored, rawOf(e), c.form, { requirePostQuantum }), pq };
          expect([s.alice.postQuantum, s.bob.postQuantum]).toEqual([pq, pq]);
          // Spent: the one-time KEM pre-key and the one-time pre-key the bundle named, nothing else.
          expect(stateHex(restored)).toBe(spent(before, c.kem === 'oneTime' ? kemId : undefined, otkId ?? undefined));
          // Bob must receive first (he has no sending chain before).
          expect(s.bob.receive(s.alice.send(utf8('hello')).serialize())).toEqual(utf8('hello'));
          for (const st of c.steps) {
            if (st.t === 'save') {
              const saved = s[st.who].toBytes();
              expect(Array.from(saved.subarray(0, pq ? 5 : 4))).toEqual(pq ? [0x41, 0x4d, 0x43, 2, 1] : [0x41, 0x4d, 0x43, 1]);
              s[st.who] = SecureChannel.fromBytes(saved);
              expect(s[st.who].postQuantum).toBe(pq);
              continue;
            }
            const [from, to] = st.from === 'alice' ? [s.alice, s.bob] : [s.bob, s.alice];
            for (let i = 0; i < st.n; i++) {
              const pt = utf8(`m${k++}`);
              expect(to.receive(from.send(pt).serialize())).toEqual(pt);
            }
          }
          sessions.push(s);
        }
        // Every session is still live and its own, whatever came after it.
        for (const s of sessions) {
          expect(roundTrips(s.alice, s.bob)).toBe(true);
          expect([s.alice.postQuantum, s.bob.postQuantum]).toEqual([s.pq, s.pq]);
        }
        const used = configs.filter((c) => c.kem === 'oneTime').length;
        expect(bob.kemPreKeyIds).toEqual([0, 1, 2].slice(used).concat([lastResort]));
        expect([bob.toBytes()[3], dave.toBytes()[3]]).toEqual([2, 1]);
      }),
      runs(60),
    );
  });
});
