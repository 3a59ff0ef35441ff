/** X25519: every Wycheproof case, RFC 7748 known answers, and every error path. */
import fc from 'fast-check';
import {
  canonicalX25519PublicKey,
  fromHex,
  isCanonicalX25519PublicKey,
  toHex,
  x25519,
  x25519KeyPair,
  x25519PublicKey,
  X25519_BYTES,
} from '../../lib/crypto';
import { BACKENDS, useBackend } from '../helpers/backends';
import { expectE2EError } from '../helpers/expect-error';
import { XdhCompCase, XdhGroupFields, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

describe.each(BACKENDS)('%s backend', (b) => {
  useBackend(b);

  const ZERO_SHARED = '00'.repeat(32);

  /** What we do with a case: compute the expected secret, or refuse with INVALID_KEY. */
  type Outcome = 'match' | 'INVALID_KEY';

  function outcome(c: XdhCompCase): Outcome {
    try {
      const shared = x25519(hex(c.private), hex(c.public));
      expect(toHex(shared)).toBe(c.shared);
      return 'match';
    } catch (e) {
      if ((e as { code?: string }).code === 'INVALID_KEY') return 'INVALID_KEY';
      throw e;
    }
  }

  describe('Wycheproof x25519_test.json', () => {
    const file = loadWycheproof<XdhCompCase, XdhGroupFields>('x25519_test.json');
    let ran = 0;
    const acceptable: Record<string, Record<Outcome, number>> = {};

    test('the file has the cases we expect', () => {
      expect(file.schema).toBe('xdh_comp_schema_v1.json');
      expect(file.testGroups).toHaveLength(1);
      expect(file.testGroups[0].curve).toBe('curve25519');
    });

    test('valid cases: the shared secret matches exactly', () => {
      const valid = file.allCases.filter((c) => c.result === 'valid');
      expect(valid).toHaveLength(264);
      ran += runCases(valid, (c) => {
        expect(c.shared).not.toBe(ZERO_SHARED);
        expect(outcome(c)).toBe('match');
      });
    });

    test('no case is "invalid" (RFC 7748 defines X25519 for every 32-byte input)', () => {
      expect(file.allCases.filter((c) => c.result === 'invalid')).toHaveLength(0);
    });

    // "acceptable": RFC 7748 allows either computing or refusing. libsodium's crypto_scalarmult
    // (ref10) computes for every input except that it returns -1 for a public key on its small-order
    // blacklist and for an all-zero result; x25519() turns -1 into INVALID_KEY. So our policy is exact:
    // an all-zero shared secret is refused (PROTOCOL.md rule 4), anything else must match.
    test('acceptable cases: all-zero results are INVALID_KEY, all others match', () => {
      const cases = file.allCases.filter((c) => c.result === 'acceptable');
      expect(cases).toHaveLength(254);
      ran += runCases(cases, (c) => {
        const got = outcome(c);
        expect(got).toBe(c.shared === ZERO_SHARED ? 'INVALID_KEY' : 'match');
        for (const flag of c.flags) {
          acceptable[flag] ??= { match: 0, INVALID_KEY: 0 };
          acceptable[flag][got]++;
        }
      });
    });

    test('what we do for each flag of the acceptable cases', () => {
      expect(acceptable).toEqual({
        // Points on the twist: libsodium does not check curve membership; the result is the RFC's.
        Twist: { match: 216, INVALID_KEY: 5 },
        // Small-k edge cases of the ladder: computed correctly; those landing on zero refused.
        EdgeCaseMultiplication: { match: 170, INVALID_KEY: 5 },
        // Special-form public keys: computed, except the low-order ones.
        SpecialPublicKey: { match: 38, INVALID_KEY: 12 },
        // Low-order public keys always give zero: refused (libsodium's blacklist or zero check).
        LowOrderPublic: { match: 0, INVALID_KEY: 31 },
        // RFC 7748 §6.1's all-zero check: we always do it.
        ZeroSharedSecret: { match: 0, INVALID_KEY: 31 },
        // u >= p: libsodium reduces mod p as RFC 7748 §5 says; the low-order ones are refused.
        NonCanonicalPublic: { match: 13, INVALID_KEY: 6 },
        // u in {0, 1, ...} small values that are low order: refused.
        SmallPublicKey: { match: 0, INVALID_KEY: 8 },
        // Edge-case shared secrets (on the twist): computed exactly.
        EdgeCaseShared: { match: 8, INVALID_KEY: 0 },
        // The RFC 7748 known answer whose public key is on the twist: computed.
        Ktv: { match: 1, INVALID_KEY: 0 },
      });
    });

    test('ran every case of the file', () => {
      expect(ran).toBe(518);
      expect(file.numberOfTests).toBe(518);
      expect(file.rawTcIdCount).toBe(518);
      expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(518);
    });
  });

  describe('RFC 7748 known answers', () => {
    // §6.1 Curve25519 Diffie-Hellman.
    const alicePriv = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
    const bobPriv = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

    test('§6.1: public keys and the shared secret, both directions', () => {
      expect(toHex(x25519PublicKey(alicePriv))).toBe(alicePub);
      expect(toHex(x25519PublicKey(bobPriv))).toBe(bobPub);
      expect(toHex(x25519(alicePriv, fromHex(bobPub)))).toBe(shared);
      expect(toHex(x25519(bobPriv, fromHex(alicePub)))).toBe(shared);
    });

    test('§5.2: one iteration of k = X25519(k, u) from k = u = 9', () => {
      const nine = new Uint8Array(32);
      nine[0] = 9;
      expect(toHex(x25519(nine, nine))).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    });

    test('the inputs are not modified', () => {
      const priv = Uint8Array.from(alicePriv);
      const pub = fromHex(bobPub);
      x25519(priv, pub);
      expect(priv).toEqual(alicePriv);
      expect(toHex(pub)).toBe(bobPub);
    });
  });

  describe('x25519KeyPair', () => {
    test('gives 32-byte keys whose public half is x25519PublicKey(private)', () => {
      const kp = x25519KeyPair();
      expect(kp.privateKey).toHaveLength(X25519_BYTES);
      expect(kp.publicKey).toHaveLength(X25519_BYTES);
      expect(kp.publicKey).toEqual(x25519PublicKey(kp.privateKey));
    });

    test('two pairs differ and agree on a shared secret', () => {
      const a = x25519KeyPair();
      const b = x25519KeyPair();
      expect(toHex(a.privateKey)).not.toBe(toHex(b.privateKey));
      expect(x25519(a.privateKey, b.publicKey)).toEqual(x25519(b.privateKey, a.publicKey));
    });
  });

  describe('errors', () => {
    const priv = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const pub = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');

    test.each([
      ['31 bytes', new Uint8Array(31)],
      ['33 bytes', new Uint8Array(33)],
      ['empty', new Uint8Array(0)],
      ['a string', 'x'.repeat(32)],
      ['an Array', Array.from({ length: 32 }, () => 1)],
      ['null', null],
      ['undefined', undefined],
      ['a Uint16Array', new Uint16Array(32)],
    ])('a private or public key that is %s: INVALID_KEY', (_, bad) => {
      expectE2EError(() => x25519(bad as unknown as Uint8Array, pub), 'INVALID_KEY');
      expectE2EError(() => x25519(priv, bad as unknown as Uint8Array), 'INVALID_KEY');
      expectE2EError(() => x25519PublicKey(bad as unknown as Uint8Array), 'INVALID_KEY');
    });

    test.each([
      ['u = 0', '0000000000000000000000000000000000000000000000000000000000000000'],
      ['u = 1', '0100000000000000000000000000000000000000000000000000000000000000'],
      ['a point of order 8', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'],
      ['u = p - 1', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
      ['u = p (non-canonical 0)', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
      ['u = p + 1 (non-canonical 1)', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
    ])('a low-order public key, %s: all-zero result refused with INVALID_KEY', (_, u) => {
      const e = expectE2EError(() => x25519(priv, fromHex(u)), 'INVALID_KEY');
      expect(e.message).not.toMatch(/[0-9a-f]{64}/);
    });
  });

  describe('canonicalX25519PublicKey', () => {
    const priv = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const pub = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');

    test('known answers: bit 255 cleared, values ≥ p reduced', () => {
      const flipped = Uint8Array.from(pub);
      flipped[31] |= 0x80;
      expect(toHex(canonicalX25519PublicKey(flipped))).toBe(toHex(pub));
      const cases: [string, string][] = [
        [
          'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
          'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
        ],
        ['edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', '00'.repeat(32)],
        ['eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', '01' + '00'.repeat(31)],
        ['ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', '12' + '00'.repeat(31)],
        [
          'edfffffffffffffffffffffffffffffffffffffffffffffffffffffffeffff7f',
          'edfffffffffffffffffffffffffffffffffffffffffffffffffffffffeffff7f',
        ],
      ];
      for (const [input, want] of cases) expect(toHex(canonicalX25519PublicKey(fromHex(input)))).toBe(want);
      expect(isCanonicalX25519PublicKey(pub)).toBe(true);
      expect(isCanonicalX25519PublicKey(flipped)).toBe(false);
      expect(flipped[31] & 0x80).toBe(0x80); // the input is not modified
    });

    test('any encoding and its canonical form give the same X25519 result; canonical is idempotent', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), fc.integer({ min: 0, max: 18 }), (k, high, small) => {
          const input = Uint8Array.from(k);
          if (high) {
            input.fill(0xff);
            input[0] = 0xed + small;
          }
          const c = canonicalX25519PublicKey(input);
          expect(canonicalX25519PublicKey(c)).toEqual(c);
          expect(isCanonicalX25519PublicKey(c)).toBe(true);
          expect(c[31] & 0x80).toBe(0);
          let viaInput: string | undefined;
          let viaCanonical: string | undefined;
          try {
            viaInput = toHex(x25519(priv, input));
          } catch (e) {
            viaInput = (e as { code: string }).code;
          }
          try {
            viaCanonical = toHex(x25519(priv, c));
          } catch (e) {
            viaCanonical = (e as { code: string }).code;
          }
          expect(viaCanonical).toBe(viaInput);
        }),
        { numRuns: 300 },
      );
    });

    test('wrong lengths: INVALID_KEY', () => {
      expectE2EError(() => canonicalX25519PublicKey(new Uint8Array(31)), 'INVALID_KEY');
      expectE2EError(() => isCanonicalX25519PublicKey(null as unknown as Uint8Array), 'INVALID_KEY');
    });
  });
});
