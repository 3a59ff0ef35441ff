/**
 * ML-KEM-768 (lib/crypto/mlkem.ts): every case of Wycheproof's mlkem_768_test.json (key generation
 * from the seed, decapsulation, implicit rejection, wrong lengths) and mlkem_768_encaps_test.json
 * (deterministic encapsulation with the given m, keys failing the FIPS 203 modulus check, wrong
 * lengths), with the count of cases per file and per result; round trips; every error path.
 */
import {
  MLKEM768_CIPHERTEXT_BYTES,
  MLKEM768_ENCAPS_SEED_BYTES,
  MLKEM768_PUBLIC_KEY_BYTES,
  MLKEM768_SECRET_KEY_BYTES,
  MLKEM768_SEED_BYTES,
  MLKEM768_SHARED_SECRET_BYTES,
  mlkem768Decapsulate,
  mlkem768Encapsulate,
  mlkem768EncapsulateDerandomized,
  mlkem768KeyPair,
  mlkem768KeyPairFromSeed,
  toHex,
} from '../../lib/crypto';
import { ErrorCode } from '../../lib/errors';
import { ready } from '../../lib/sodium';
import { expectE2EError } from '../helpers/expect-error';
import { WycheproofCase, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

beforeAll(() => ready());

/** `mlkem_test_schema.json`: key generation from `seed`, then decapsulation of `c` (no `ek` when the seed is malformed). */
interface MlKemCase extends WycheproofCase {
  seed: string;
  ek?: string;
  c: string;
  K: string;
}

/** `mlkem_encaps_test_schema.json`: encapsulation to `ek` with randomness `m`. */
interface MlKemEncapsCase extends WycheproofCase {
  ek: string;
  m: string;
  c: string;
  K: string;
}

interface MlKemGroupFields {
  parameterSet: string;
  source: { name: string; version: string };
}

/** What a case did: the expected bytes, or a typed refusal. */
type Outcome = 'match' | ErrorCode;

function codeOf(e: unknown): ErrorCode {
  const code = (e as { code?: ErrorCode }).code;
  if (code === undefined) throw e;
  return code;
}

/** Key generation from the seed (checked against `ek`), then decapsulation (checked against `K`). */
function decapsOutcome(c: MlKemCase): Outcome {
  let secretKey: Uint8Array;
  try {
    const pair = mlkem768KeyPairFromSeed(hex(c.seed));
    if (c.ek !== undefined) expect(toHex(pair.publicKey)).toBe(c.ek);
    secretKey = pair.secretKey;
  } catch (e) {
    return codeOf(e);
  }
  try {
    expect(toHex(mlkem768Decapsulate(hex(c.c), secretKey))).toBe(c.K);
    return 'match';
  } catch (e) {
    return codeOf(e);
  }
}

/** Deterministic encapsulation with `m` (checked against `c` and `K`); the randomized one must agree on refusals. */
function encapsOutcome(c: MlKemEncapsCase): Outcome {
  let randomized: Outcome = 'match';
  try {
    const r = mlkem768Encapsulate(hex(c.ek));
    expect(r.ciphertext).toHaveLength(MLKEM768_CIPHERTEXT_BYTES);
  } catch (e) {
    randomized = codeOf(e);
  }
  try {
    const { ciphertext, sharedSecret } = mlkem768EncapsulateDerandomized(hex(c.ek), hex(c.m));
    expect(toHex(ciphertext)).toBe(c.c);
    expect(toHex(sharedSecret)).toBe(c.K);
    expect(randomized).toBe('match');
    return 'match';
  } catch (e) {
    const code = codeOf(e);
    expect(randomized).toBe(code);
    return code;
  }
}

describe('Wycheproof mlkem_768_test.json (key generation from seed + decapsulation)', () => {
  const file = loadWycheproof<MlKemCase, MlKemGroupFields>('mlkem_768_test.json');
  const ran: Record<string, number> = { valid: 0, invalid: 0, acceptable: 0 };

  test('the file has the cases we expect', () => {
    expect(file.schema).toBe('mlkem_test_schema.json');
    expect(file.testGroups.map((g) => [g.source.name, g.parameterSet, g.tests.length])).toEqual([
      ['CCTV/strcmp', 'ML-KEM-768', 1],
      ['FIPS 203', 'ML-KEM-768', 192],
    ]);
  });

  test('valid cases: the key pair and the shared secret match (implicit rejection included)', () => {
    const valid = file.allCases.filter((c) => c.result === 'valid');
    expect(valid).toHaveLength(153);
    // Of them, 20 are rejected ciphertexts (bit-flipped or random), 1 the strcmp trap: K is the implicit-rejection secret.
    expect(valid.filter((c) => /Bit flipped|Random ciphertext/.test(c.comment ?? ''))).toHaveLength(20);
    ran.valid += runCases(valid, (c) => expect(decapsOutcome(c)).toBe('match'));
  });

  test('invalid cases: a seed of the wrong length is INVALID_KEY, a ciphertext of the wrong length INVALID_ARGUMENT', () => {
    const invalid = file.allCases.filter((c) => c.result === 'invalid');
    expect(invalid).toHaveLength(40);
    const seen: Record<string, number> = {};
    ran.invalid += runCases(invalid, (c) => {
      const expected = /Private key/.test(c.comment) ? 'INVALID_KEY' : 'INVALID_ARGUMENT';
      expect(/Private key too (long|short)|Ciphertext too (long|short)/.test(c.comment)).toBe(true);
      expect(decapsOutcome(c)).toBe(expected);
      seen[c.comment] = (seen[c.comment] ?? 0) + 1;
    });
    expect(seen).toEqual({
      'Private key too long': 10,
      'Private key too short': 10,
      'Ciphertext too long': 10,
      'Ciphertext too short': 10,
    });
  });

  test('no case is "acceptable"', () => {
    expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
  });

  test('every case ran exactly once', () => {
    expect(ran).toEqual({ valid: 153, invalid: 40, acceptable: 0 });
    expect(file.numberOfTests).toBe(193);
    expect(file.rawTcIdCount).toBe(193);
    expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(193);
  });
});

describe('Wycheproof mlkem_768_encaps_test.json (deterministic encapsulation with m)', () => {
  const file = loadWycheproof<MlKemEncapsCase, MlKemGroupFields>('mlkem_768_encaps_test.json');
  const ran: Record<string, number> = { valid: 0, invalid: 0, acceptable: 0 };

  test('the file has the cases we expect', () => {
    expect(file.schema).toBe('mlkem_encaps_test_schema.json');
    expect(file.testGroups.map((g) => [g.source.name, g.parameterSet, g.tests.length])).toEqual([
      ['CCTV/modulus', 'ML-KEM-768', 12],
      ['FIPS 203', 'ML-KEM-768', 253],
    ]);
  });

  test('valid cases: ciphertext and shared secret match exactly', () => {
    const valid = file.allCases.filter((c) => c.result === 'valid');
    expect(valid).toHaveLength(133);
    ran.valid += runCases(valid, (c) => expect(encapsOutcome(c)).toBe('match'));
  });

  test('invalid cases: every one is INVALID_KEY (wrong length, or a coefficient not below q)', () => {
    const invalid = file.allCases.filter((c) => c.result === 'invalid');
    expect(invalid).toHaveLength(132);
    const seen: Record<string, number> = {};
    ran.invalid += runCases(invalid, (c) => {
      expect(encapsOutcome(c)).toBe('INVALID_KEY');
      const why = c.flags.includes('ModulusOverflow') ? 'ModulusOverflow' : c.comment;
      seen[why] = (seen[why] ?? 0) + 1;
    });
    expect(seen).toEqual({
      ModulusOverflow: 12,
      'Public key not reduced': 100,
      'Public key is too long': 10,
      'Public key is too short': 10,
    });
  });

  test('no case is "acceptable"', () => {
    expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
  });

  test('every case ran exactly once', () => {
    expect(ran).toEqual({ valid: 133, invalid: 132, acceptable: 0 });
    expect(file.numberOfTests).toBe(265);
    expect(file.rawTcIdCount).toBe(265);
    expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(265);
  });
});

describe('round trips', () => {
  test('the constants are FIPS 203 ML-KEM-768', () => {
    expect([
      MLKEM768_PUBLIC_KEY_BYTES,
      MLKEM768_SECRET_KEY_BYTES,
      MLKEM768_CIPHERTEXT_BYTES,
      MLKEM768_SHARED_SECRET_BYTES,
      MLKEM768_SEED_BYTES,
      MLKEM768_ENCAPS_SEED_BYTES,
    ]).toEqual([1184, 2400, 1088, 32, 64, 32]);
  });

  test('encapsulate then decapsulate gives the same secret, fresh each time', () => {
    const { publicKey, secretKey } = mlkem768KeyPair();
    expect(publicKey).toHaveLength(MLKEM768_PUBLIC_KEY_BYTES);
    expect(secretKey).toHaveLength(MLKEM768_SECRET_KEY_BYTES);
    const a = mlkem768Encapsulate(publicKey);
    const b = mlkem768Encapsulate(publicKey);
    expect(a.sharedSecret).toHaveLength(MLKEM768_SHARED_SECRET_BYTES);
    expect(mlkem768Decapsulate(a.ciphertext, secretKey)).toEqual(a.sharedSecret);
    expect(mlkem768Decapsulate(b.ciphertext, secretKey)).toEqual(b.sharedSecret);
    expect(a.ciphertext).not.toEqual(b.ciphertext);
    expect(a.sharedSecret).not.toEqual(b.sharedSecret);
  });

  test('key pairs are fresh, and seeded ones deterministic', () => {
    expect(mlkem768KeyPair().publicKey).not.toEqual(mlkem768KeyPair().publicKey);
    const seed = new Uint8Array(64).fill(7);
    expect(mlkem768KeyPairFromSeed(seed)).toEqual(mlkem768KeyPairFromSeed(seed));
    expect(seed).toEqual(new Uint8Array(64).fill(7)); // the caller's seed is not modified
  });

  test('the expanded secret key carries the public key (FIPS 203: dk = dk_PKE ‖ ek ‖ H(ek) ‖ z)', () => {
    const { publicKey, secretKey } = mlkem768KeyPair();
    expect(secretKey.subarray(1152, 1152 + 1184)).toEqual(publicKey);
  });

  test('implicit rejection: an altered ciphertext or another key gives another secret, the same every time, never an error', () => {
    const alice = mlkem768KeyPair();
    const other = mlkem768KeyPair();
    const { ciphertext, sharedSecret } = mlkem768Encapsulate(alice.publicKey);
    const altered = Uint8Array.from(ciphertext);
    altered[100] ^= 1;
    const rejected = mlkem768Decapsulate(altered, alice.secretKey);
    expect(rejected).toHaveLength(32);
    expect(rejected).not.toEqual(sharedSecret);
    expect(mlkem768Decapsulate(altered, alice.secretKey)).toEqual(rejected);
    expect(mlkem768Decapsulate(ciphertext, other.secretKey)).not.toEqual(sharedSecret);
  });

  test('Buffers and views at an offset work', () => {
    const { publicKey, secretKey } = mlkem768KeyPair();
    const backing = new Uint8Array(1 + MLKEM768_PUBLIC_KEY_BYTES);
    backing.set(publicKey, 1);
    const { ciphertext, sharedSecret } = mlkem768Encapsulate(backing.subarray(1));
    expect(mlkem768Decapsulate(Buffer.from(ciphertext), Buffer.from(secretKey))).toEqual(sharedSecret);
  });
});

describe('errors', () => {
  const pair = (): ReturnType<typeof mlkem768KeyPair> => mlkem768KeyPair();
  const detached = (): Uint8Array => {
    const view = new Uint8Array(64);
    structuredClone(view.buffer, { transfer: [view.buffer] });
    return view;
  };
  const notBytes: Array<[string, () => unknown]> = [
    ['a string', () => 'x'.repeat(64)],
    ['null', () => null],
    ['a plain array', () => new Array(64).fill(0)],
    ['a detached view', detached],
    ['an object made from Uint8Array.prototype', () => Object.create(Uint8Array.prototype) as Uint8Array],
  ];

  test.each([0, 32, 63, 65, 2400])('a %i-byte seed is INVALID_KEY', (n) => {
    expectE2EError(() => mlkem768KeyPairFromSeed(new Uint8Array(n)), 'INVALID_KEY');
  });

  test.each([0, 1183, 1185, 2400])('a %i-byte public key is INVALID_KEY, both ways', (n) => {
    expectE2EError(() => mlkem768Encapsulate(new Uint8Array(n)), 'INVALID_KEY');
    expectE2EError(() => mlkem768EncapsulateDerandomized(new Uint8Array(n), new Uint8Array(32)), 'INVALID_KEY');
  });

  test('a public key whose coefficients are all q (3329) fails the modulus check: INVALID_KEY', () => {
    // 12-bit little-endian coefficients: 3329 = 0xd01, so each 3-byte pair of coefficients is 01 1d d0.
    const pk = new Uint8Array(MLKEM768_PUBLIC_KEY_BYTES);
    for (let i = 0; i < 1152; i += 3) pk.set([0x01, 0x1d, 0xd0], i);
    expectE2EError(() => mlkem768Encapsulate(pk), 'INVALID_KEY');
    pk.fill(0, 0, 1152); // all-zero coefficients pass the check (the key is useless, but well formed)
    expect(mlkem768Encapsulate(pk).ciphertext).toHaveLength(MLKEM768_CIPHERTEXT_BYTES);
  });

  test.each([0, 31, 33])('a %i-byte encapsulation seed m is INVALID_ARGUMENT', (n) => {
    expectE2EError(() => mlkem768EncapsulateDerandomized(pair().publicKey, new Uint8Array(n)), 'INVALID_ARGUMENT');
  });

  test.each([0, 1087, 1089, 1184])('a %i-byte ciphertext is INVALID_ARGUMENT', (n) => {
    expectE2EError(() => mlkem768Decapsulate(new Uint8Array(n), pair().secretKey), 'INVALID_ARGUMENT');
  });

  test.each([0, 32, 2399, 2401])('a %i-byte secret key is INVALID_KEY', (n) => {
    expectE2EError(() => mlkem768Decapsulate(new Uint8Array(MLKEM768_CIPHERTEXT_BYTES), new Uint8Array(n)), 'INVALID_KEY');
  });

  test.each(notBytes)('%s is refused with a typed error, never a crash', (_, make) => {
    const { publicKey, secretKey } = pair();
    const v = make() as Uint8Array;
    expectE2EError(() => mlkem768KeyPairFromSeed(v), 'INVALID_KEY');
    expectE2EError(() => mlkem768Encapsulate(v), 'INVALID_KEY');
    expectE2EError(() => mlkem768EncapsulateDerandomized(v, new Uint8Array(32)), 'INVALID_KEY');
    expectE2EError(() => mlkem768EncapsulateDerandomized(publicKey, v), 'INVALID_ARGUMENT');
    expectE2EError(() => mlkem768Decapsulate(v, secretKey), 'INVALID_ARGUMENT');
    expectE2EError(() => mlkem768Decapsulate(new Uint8Array(MLKEM768_CIPHERTEXT_BYTES), v), 'INVALID_KEY');
  });

  test('a secret key whose stored H(ek) does not match still decapsulates (libsodium does not check it): a different secret', () => {
    const { publicKey, secretKey } = pair();
    const { ciphertext, sharedSecret } = mlkem768Encapsulate(publicKey);
    const tampered = Uint8Array.from(secretKey);
    tampered[1152 + 1184] ^= 1; // first byte of H(ek)
    expect(mlkem768Decapsulate(ciphertext, tampered)).not.toEqual(sharedSecret);
  });
});
