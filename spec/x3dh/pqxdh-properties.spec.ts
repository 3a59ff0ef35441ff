/**
 * PQXDH at the key-manager layer (fast-check):
 *  - the hybrid KDF against an independent oracle (node:crypto's HKDF) for random DH outputs and
 *    KEM secrets, and its separation from the classic KDF;
 *  - the typed encoding a KEM pre-key signature covers, for random keys;
 *  - a model of the KEM pre-key pool: random sequences of making one-time and last-resort KEM
 *    pre-keys, consuming, retiring, rotating the signed pre-key, publishing bundles, running
 *    initiate/respond (fresh and replayed, with held keys or not) and saving/restoring through both
 *    saved forms, each step's outcome predicted exactly (ids, error codes, which keys remain, the
 *    "AMK" version byte, equal secrets on both sides).
 *
 * FC_SEED replays a run; PQ_RUNS scales the number of runs.
 */
import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { ed25519Verify, toHex } from '../../lib/crypto';
import { MLKEM768_CIPHERTEXT_BYTES } from '../../lib/crypto/mlkem';
import { PreKeyBundle, X3DHKeyManager, pqxdhKdf, x3dhKdf } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { expectE2EError } from '../helpers/expect-error';
import { attempt, freshManager } from '../helpers/pq-world';

beforeAll(() => ready());

const SCALE = process.env.PQ_RUNS ? Number(process.env.PQ_RUNS) : 1;
const runs = (n: number): { numRuns: number; seed?: number } => ({
  numRuns: Math.max(1, Math.round(n * SCALE)),
  ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
});

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** HKDF-SHA256(salt 0³², IKM = 0xFF³² ‖ parts, info), by node:crypto. */
function oracle(parts: Uint8Array[], info: string): string {
  const ikm = Buffer.concat([Buffer.alloc(32, 0xff), ...parts]);
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(32), Buffer.from(info, 'utf8'), 32)).toString('hex');
}

describe('the hybrid KDF', () => {
  test('pqxdhKdf is HKDF-SHA256(0³², 0xFF³² ‖ DH1..DH3[4] ‖ SS, the PQXDH info) and never the classic key', () => {
    fc.assert(
      fc.property(fc.array(bytes32, { minLength: 3, maxLength: 4 }), bytes32, fc.nat(31), (dhs, ss, at) => {
        const pq = hex(pqxdhKdf(dhs, ss));
        expect(pq).toBe(oracle([...dhs, ss], 'AgentMesh_PQXDH_CURVE25519_SHA-256_ML-KEM-768_v1'));
        const classic = hex(x3dhKdf(dhs));
        expect(classic).toBe(oracle(dhs, 'AgentMesh_X3DH_v1'));
        expect(pq).not.toBe(classic);
        // Every byte of SS matters.
        const other = Uint8Array.from(ss);
        other[at] ^= 0x01;
        expect(hex(pqxdhKdf(dhs, other))).not.toBe(pq);
        // Three DH outputs and SS are not four DH outputs (the info strings differ).
        if (dhs.length === 3) expect(hex(x3dhKdf([...dhs, ss]))).not.toBe(pq);
      }),
      runs(150),
    );
  });

  test('its arguments: 3 or 4 DH outputs of 32 bytes, a 32-byte SS', () => {
    const d = new Uint8Array(32).fill(1);
    expectE2EError(() => pqxdhKdf([d, d], d), 'INVALID_ARGUMENT');
    expectE2EError(() => pqxdhKdf([d, d, d, d, d], d), 'INVALID_ARGUMENT');
    expectE2EError(() => pqxdhKdf([d, d, new Uint8Array(31)], d), 'INVALID_KEY');
    expectE2EError(() => pqxdhKdf([d, d, d], new Uint8Array(31)), 'INVALID_KEY');
    expectE2EError(() => pqxdhKdf([d, d, d], new Uint8Array(33)), 'INVALID_KEY');
  });
});

describe('the KEM pre-key signature', () => {
  test('covers "AgentMesh_PQXDH_KEM_PreKey_v1" 0x00 ‖ 0x01 ‖ pk, for any key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1184, maxLength: 1184 }), (pk) => {
        const b = kemPreKeySignedBytes(pk);
        expect(b.length).toBe(30 + 1 + 1184);
        expect(hex(b)).toBe(hex(Buffer.concat([Buffer.from('AgentMesh_PQXDH_KEM_PreKey_v1\u0000', 'utf8'), Buffer.of(0x01), pk])));
      }),
      runs(30),
    );
  });

  test('a manager’s KEM pre-key signatures verify over the typed encoding only', () => {
    const m = freshManager();
    for (const k of [...m.generateKemPreKeys(2), m.generateLastResortKemPreKey()]) {
      expect(ed25519Verify(k.signature, kemPreKeySignedBytes(k.publicKey), m.identityKeyEd)).toBe(true);
      expect(ed25519Verify(k.signature, k.publicKey, m.identityKeyEd)).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The pool model.

type Op =
  | { t: 'oneTime'; n: number }
  | { t: 'lastResort' }
  | { t: 'consume'; pick: number }
  | { t: 'retire'; pick: number }
  | { t: 'rotateSpk' }
  | { t: 'bundle'; pick: number | null }
  | { t: 'establish'; pick: number | null; otk: boolean; held: boolean; replay: boolean; oldSpk: boolean }
  | { t: 'save'; via: 'bytes' | 'state' };

const pick = fc.nat(20);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ t: fc.constant('oneTime' as const), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('lastResort' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('consume' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('retire' as const), pick }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('rotateSpk' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('bundle' as const), pick: fc.option(pick, { nil: null }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('establish' as const),
      pick: fc.option(pick, { nil: null }),
      otk: fc.boolean(),
      held: fc.boolean(),
      replay: fc.boolean(),
      oldSpk: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('save' as const), via: fc.constantFrom('bytes' as const, 'state' as const) }) },
);

/** What the model knows of the pool: the usable KEM pre-keys, in the order they were made, and the current last resort. */
interface Model {
  keys: { id: number; lastResort: boolean }[];
  current: number | null;
  next: number;
  spks: number[];
}

/** An id to act on: mostly one of the model's keys, sometimes one that is gone or never was. */
function chooseId(m: Model, p: number): number {
  if (m.keys.length > 0 && p % 4 !== 3) return m.keys[p % m.keys.length].id;
  return m.next + p; // never made (or, below next, made and gone)
}

describe('the KEM pre-key pool (model-based)', () => {
  test('random operation sequences: every outcome as the model predicts, through save and restore', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 14 }), (ops) => {
        let bob = freshManager();
        const alice = freshManager();
        const model: Model = { keys: [], current: null, next: 0, spks: [bob.signedPreKey?.keyId as number] };
        const check = (): void => {
          expect(bob.kemPreKeyIds).toEqual(model.keys.map((k) => k.id));
          expect(bob.lastResortKemPreKey?.keyId ?? null).toBe(model.current);
          for (const k of model.keys) expect(bob.getKemPreKey(k.id)?.lastResort).toBe(k.lastResort);
          // A manager that ever made a KEM pre-key saves "AMK" 0x02; one that never did, 0x01.
          expect(bob.toBytes()[3]).toBe(model.next > 0 ? 2 : 1);
          expect(bob.exportState().version).toBe(model.next > 0 ? 2 : 1);
        };
        for (const o of ops) {
          switch (o.t) {
            case 'oneTime': {
              const made = bob.generateKemPreKeys(o.n);
              expect(made.map((k) => k.keyId)).toEqual(Array.from({ length: o.n }, (_, i) => model.next + i));
              for (const k of made) {
                expect(k.lastResort).toBe(false);
                expect(k.publicKey.length).toBe(1184);
                model.keys.push({ id: k.keyId, lastResort: false });
              }
              model.next += o.n;
              break;
            }
            case 'lastResort': {
              const k = bob.generateLastResortKemPreKey();
              expect([k.keyId, k.lastResort]).toEqual([model.next, true]);
              model.keys.push({ id: k.keyId, lastResort: true });
              model.current = k.keyId;
              model.next++;
              break;
            }
            case 'consume': {
              const id = chooseId(model, o.pick);
              const k = model.keys.find((x) => x.id === id);
              const got = attempt(() => bob.consumeKemPreKey(id));
              if (!k) expect([got.code, got.value]).toEqual(['ok', false]);
              else if (k.lastResort) expect(got.code).toBe('INVALID_STATE');
              else {
                expect([got.code, got.value]).toEqual(['ok', true]);
                model.keys = model.keys.filter((x) => x.id !== id);
              }
              break;
            }
            case 'retire': {
              const id = chooseId(model, o.pick);
              const k = model.keys.find((x) => x.id === id);
              const got = attempt(() => bob.retireKemPreKey(id)).code;
              if (id === model.current) expect(got).toBe('INVALID_STATE');
              else if (!k || !k.lastResort) expect(got).toBe('KEM_NOT_FOUND');
              else {
                expect(got).toBe('ok');
                model.keys = model.keys.filter((x) => x.id !== id);
              }
              break;
            }
            case 'rotateSpk':
              model.spks.push(bob.generateSignedPreKey().keyId);
              break;
            case 'bundle': {
              const id = o.pick === null ? null : chooseId(model, o.pick);
              const got = attempt(() => (id === null ? bob.getPublicBundle() : bob.getPublicBundle({ kemId: id })));
              const expectedId = id ?? model.current;
              if (id !== null && !model.keys.some((k) => k.id === id)) {
                expect(got.code).toBe('KEM_NOT_FOUND');
                break;
              }
              const b = got.value as PreKeyBundle;
              expect(b.kemPreKeyId ?? null).toBe(expectedId);
              if (expectedId === null) {
                expect([b.kemPreKey, b.kemPreKeySignature]).toEqual([undefined, undefined]);
              } else {
                expect(
                  ed25519Verify(b.kemPreKeySignature as Uint8Array, kemPreKeySignedBytes(b.kemPreKey as Uint8Array), bob.identityKeyEd),
                ).toBe(true);
              }
              break;
            }
            case 'establish': {
              const id = o.pick === null ? null : chooseId(model, o.pick);
              const k = id === null ? undefined : model.keys.find((x) => x.id === id);
              if (id !== null && !k) {
                expectE2EError(() => bob.getPublicBundle({ kemId: id }), 'KEM_NOT_FOUND');
                break;
              }
              const [otk] = o.otk ? bob.generateOneTimePreKeys(1) : [];
              const spkId = o.oldSpk ? model.spks[0] : model.spks[model.spks.length - 1];
              const bundle = { ...bob.getPublicBundle({ otkId: otk?.keyId ?? null, kemId: id }) };
              if (o.oldSpk) {
                const old = bob.getSignedPreKey(spkId);
                if (!old) throw new Error('model: the first signed pre-key is never retired');
                Object.assign(bundle, {
                  signedPreKey: old.keyPair.publicKey,
                  signedPreKeySignature: old.signature,
                  signedPreKeyId: old.keyId,
                });
              }
              const kemId = bundle.kemPreKeyId;
              const pq = kemId !== undefined;
              const x = alice.initiate(bundle);
              expect([x.kemPreKeyId, x.kemCiphertext?.length]).toEqual(pq ? [kemId, MLKEM768_CIPHERTEXT_BYTES] : [undefined, undefined]);
              const held = o.held && kemId !== undefined ? bob.exportKemPreKeySecret(kemId) : undefined;
              const params = {
                peerIdentityKey: alice.identityKey.publicKey,
                ephemeralPublicKey: x.ephemeralPublicKey,
                usedOneTimeKeyId: x.usedOneTimeKeyId,
                signedPreKeyId: x.signedPreKeyId,
                kemPreKeyId: x.kemPreKeyId,
                kemCiphertext: x.kemCiphertext,
                heldKemPreKey: held,
              };
              const r = bob.respond(params);
              expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
              expect([r.postQuantum, r.signedPreKeyId]).toEqual([pq, spkId]);
              const oneTimeKem = pq && !(model.keys.find((q) => q.id === kemId) as { lastResort: boolean }).lastResort;
              if (oneTimeKem && !held) model.keys = model.keys.filter((q) => q.id !== kemId);
              if (o.replay) {
                // Again: the one-time pre-key is gone; then a one-time KEM pre-key unless held; the last resort answers.
                const again = attempt(() => bob.respond(params)).code;
                expect(again).toBe(oneTimeKem && !held ? 'KEM_NOT_FOUND' : otk ? 'OTK_NOT_FOUND' : 'ok');
              }
              break;
            }
            case 'save': {
              const before = toHex(bob.toBytes());
              const state = JSON.stringify(bob.exportState());
              bob = o.via === 'bytes' ? X3DHKeyManager.fromBytes(bob.toBytes()) : X3DHKeyManager.fromState(JSON.parse(state));
              expect(toHex(bob.toBytes())).toBe(before);
              expect(JSON.stringify(bob.exportState())).toBe(state);
              break;
            }
          }
          check();
        }
      }),
      runs(60),
    );
  });
});

describe('respond: the KEM parameters', () => {
  test('every defect is its exact code, and changes nothing', () => {
    const bob = freshManager();
    const alice = freshManager();
    const [k] = bob.generateKemPreKeys(1);
    const x = alice.initiate(bob.getPublicBundle({ kemId: k.keyId }));
    const base = {
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: x.ephemeralPublicKey,
      signedPreKeyId: x.signedPreKeyId,
      kemPreKeyId: x.kemPreKeyId,
      kemCiphertext: x.kemCiphertext,
    };
    const before = toHex(bob.toBytes());
    expectE2EError(() => bob.respond({ ...base, kemCiphertext: undefined }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: null }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: -1 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 2 ** 32 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemCiphertext: (x.kemCiphertext as Uint8Array).subarray(1) }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 99 }), 'KEM_NOT_FOUND');
    expectE2EError(
      () => bob.respond({ ...base, heldKemPreKey: { keyId: k.keyId + 1, secretKey: new Uint8Array(2400) } }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(() => bob.respond({ ...base, heldKemPreKey: { keyId: k.keyId, secretKey: new Uint8Array(2399) } }), 'INVALID_KEY');
    expectE2EError(
      () => bob.respond({ ...base, kemPreKeyId: undefined, kemCiphertext: undefined, heldKemPreKey: bob.exportKemPreKeySecret(k.keyId) }),
      'INVALID_ARGUMENT',
    );
    expect(toHex(bob.toBytes())).toBe(before);
    const r = bob.respond(base);
    expect(r.postQuantum).toBe(true);
    expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
    expect(bob.kemPreKeyIds).toEqual([]);
  });
});
