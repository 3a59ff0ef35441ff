/** Ed25519: every Wycheproof case, RFC 8032 and AGT known answers, conversions, every error path. */
import {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SECRET_KEY_BYTES,
  Ed25519KeyPair,
  ED25519_SIGNATURE_BYTES,
  concatBytes,
  ed25519KeyPair,
  ed25519KeyPairFromSeed,
  ed25519PublicKeyToX25519,
  ed25519SecretKeyToX25519,
  ed25519Sign,
  ed25519Verify,
  fromHex,
  toHex,
  utf8,
  x25519PublicKey,
} from '../../lib/crypto';
import { loadConversation } from '../helpers/agt-vectors';
import { BACKENDS, useBackend } from '../helpers/backends';
import { expectE2EError } from '../helpers/expect-error';
import { EddsaGroupFields, EddsaVerifyCase, hex, loadWycheproof, runCases } from '../helpers/wycheproof';

describe.each(BACKENDS)('%s backend', (b) => {
  useBackend(b);

  describe('Wycheproof ed25519_test.json', () => {
    const file = loadWycheproof<EddsaVerifyCase, EddsaGroupFields>('ed25519_test.json');
    let ran = 0;

    test('the file has the cases we expect (no "acceptable" ones)', () => {
      expect(file.schema).toBe('eddsa_verify_schema_v1.json');
      expect(file.testGroups).toHaveLength(78);
      expect(file.allCases.filter((c) => c.result === 'valid')).toHaveLength(88);
      expect(file.allCases.filter((c) => c.result === 'invalid')).toHaveLength(63);
      expect(file.allCases.filter((c) => c.result === 'acceptable')).toHaveLength(0);
    });

    // One test per group (a group is one public key); valid signatures verify, invalid ones give
    // false — never an exception, whatever the signature's length or encoding.
    test.each(file.testGroups.map((g, i) => [i, g] as const))('group %i', (_, group) => {
      expect(group.publicKey.curve).toBe('edwards25519');
      const pk = hex(group.publicKey.pk);
      ran += runCases(group.tests, (c) => {
        let verdict: boolean | undefined;
        expect(() => {
          verdict = ed25519Verify(hex(c.sig), hex(c.msg), pk);
        }).not.toThrow();
        expect(verdict).toBe(c.result === 'valid');
      });
    });

    test('ran every case of the file', () => {
      expect(ran).toBe(151);
      expect(file.numberOfTests).toBe(151);
      expect(file.rawTcIdCount).toBe(151);
      expect(new Set(file.allCases.map((c) => c.tcId)).size).toBe(151);
    });
  });

  describe('RFC 8032 §7.1 known answers (sign is deterministic)', () => {
    test.each([
      [
        'TEST 1 (empty message)',
        '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
        'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
        '',
        'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
      ],
      [
        'TEST 2 (one byte)',
        '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
        '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
        '72',
        '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
      ],
    ])('%s', (_, seed, pub, msg, sig) => {
      const kp = ed25519KeyPairFromSeed(fromHex(seed));
      expect(toHex(kp.publicKey)).toBe(pub);
      expect(toHex(kp.secretKey)).toBe(seed + pub);
      expect(toHex(ed25519Sign(kp.secretKey, fromHex(msg)))).toBe(sig);
      expect(ed25519Verify(fromHex(sig), fromHex(msg), kp.publicKey)).toBe(true);
    });
  });

  describe('AGT identities (spec/vectors/agt/conversation-1.txt)', () => {
    const ids = loadConversation().get('identities') as Record<string, string>;

    test.each(['alice', 'bob'])('%s: seed → Ed25519 public → X25519 private and public', (who) => {
      const kp = ed25519KeyPairFromSeed(fromHex(ids[`${who}_ed25519_seed`]));
      expect(toHex(kp.publicKey)).toBe(ids[`${who}_ed25519_pub`]);
      const xPriv = ed25519SecretKeyToX25519(kp.secretKey);
      const xPub = ed25519PublicKeyToX25519(kp.publicKey);
      expect(toHex(xPriv)).toBe(ids[`${who}_x25519_priv`]);
      expect(toHex(xPub)).toBe(ids[`${who}_x25519_pub`]);
      // The two conversions agree: the converted private key's public key is the converted public key.
      expect(toHex(x25519PublicKey(xPriv))).toBe(ids[`${who}_x25519_pub`]);
    });

    test('the exact values (so an empty or renamed section cannot pass)', () => {
      expect(ids.alice_x25519_pub).toBe('c758cc62fd0bf6361a1ed43a9b684e289f60cea7891a986e006acc668ee34561');
      expect(ids.bob_x25519_pub).toBe('e76c9deb04699062f797dba170461f423ab308ba33dafcb6bec1e3a6bc7b720b');
      expect(ids.alice_x25519_priv).toBe('18872c7d6a154a75c5f24412ef5aa31f197acaa33e2ae22a17b0c796b5a9ec55');
      expect(ids.bob_x25519_priv).toBe('40cd448997eecce8f96502dc99d8a71536880032cc74f906ba6919ef0747cc4c');
    });
  });

  describe('sign and verify', () => {
    let kp: Ed25519KeyPair;
    beforeAll(() => {
      kp = ed25519KeyPairFromSeed(new Uint8Array(32).fill(7));
    });
    const msg = utf8('governed action request');

    test('ed25519KeyPair gives fresh, well-formed pairs', () => {
      const a = ed25519KeyPair();
      const b = ed25519KeyPair();
      expect(a.publicKey).toHaveLength(ED25519_PUBLIC_KEY_BYTES);
      expect(a.secretKey).toHaveLength(ED25519_SECRET_KEY_BYTES);
      expect(a.secretKey.subarray(32)).toEqual(a.publicKey);
      expect(ed25519KeyPairFromSeed(a.secretKey.subarray(0, 32)).publicKey).toEqual(a.publicKey);
      expect(toHex(a.publicKey)).not.toBe(toHex(b.publicKey));
    });

    test('a signature verifies only for its message and key', () => {
      const sig = ed25519Sign(kp.secretKey, msg);
      expect(sig).toHaveLength(ED25519_SIGNATURE_BYTES);
      expect(ed25519Verify(sig, msg, kp.publicKey)).toBe(true);
      expect(ed25519Verify(sig, utf8('governed action requesT'), kp.publicKey)).toBe(false);
      expect(ed25519Verify(sig, msg, ed25519KeyPair().publicKey)).toBe(false);
    });

    test('every single flipped bit of the signature is rejected', () => {
      const sig = ed25519Sign(kp.secretKey, msg);
      let rejected = 0;
      for (let bit = 0; bit < 512; bit++) {
        const bad = Uint8Array.from(sig);
        bad[bit >> 3] ^= 1 << (bit & 7);
        if (!ed25519Verify(bad, msg, kp.publicKey)) rejected++;
      }
      expect(rejected).toBe(512);
    });

    test.each([
      ['a 63-byte signature', (s: Uint8Array) => [s.subarray(0, 63), msg, kp.publicKey]],
      ['a 65-byte signature', (s: Uint8Array) => [concatBytes(s, new Uint8Array(1)), msg, kp.publicKey]],
      ['a 31-byte key', (s: Uint8Array) => [s, msg, kp.publicKey.subarray(0, 31)]],
      ['a 33-byte key', (s: Uint8Array) => [s, msg, concatBytes(kp.publicKey, new Uint8Array(1))]],
      ['a string message', (s: Uint8Array) => [s, 'governed action request', kp.publicKey]],
      ['a null signature', () => [null, msg, kp.publicKey]],
      ['an undefined key', (s: Uint8Array) => [s, msg, undefined]],
      ['an Array signature', (s: Uint8Array) => [Array.from(s), msg, kp.publicKey]],
      ['a number message', (s: Uint8Array) => [s, 42, kp.publicKey]],
      ['an all-zero (small-order) key', (s: Uint8Array) => [s, msg, new Uint8Array(32)]],
    ])('verify with %s gives false, never an exception', (_, args) => {
      const [s, m, k] = args(ed25519Sign(kp.secretKey, msg)) as [Uint8Array, Uint8Array, Uint8Array];
      let verdict: boolean | undefined;
      expect(() => {
        verdict = ed25519Verify(s, m, k);
      }).not.toThrow();
      expect(verdict).toBe(false);
    });

    test('the inputs are not modified', () => {
      const sk = Uint8Array.from(kp.secretKey);
      const m = Uint8Array.from(msg);
      const sig = ed25519Sign(sk, m);
      const sigCopy = Uint8Array.from(sig);
      ed25519Verify(sig, m, kp.publicKey);
      expect(sk).toEqual(kp.secretKey);
      expect(m).toEqual(msg);
      expect(sig).toEqual(sigCopy);
    });
  });

  describe('errors', () => {
    let kp: Ed25519KeyPair;
    beforeAll(() => {
      kp = ed25519KeyPairFromSeed(new Uint8Array(32).fill(9));
    });

    test.each([
      ['31 bytes', new Uint8Array(31)],
      ['33 bytes', new Uint8Array(33)],
      ['a string', 'a'.repeat(32)],
      ['null', null],
    ])('a seed that is %s: INVALID_KEY', (_, bad) => {
      expectE2EError(() => ed25519KeyPairFromSeed(bad as unknown as Uint8Array), 'INVALID_KEY');
    });

    test.each([
      ['32 bytes (a seed, not a secret key)', new Uint8Array(32)],
      ['65 bytes', new Uint8Array(65)],
      ['undefined', undefined],
    ])('a secret key that is %s: INVALID_KEY from sign and from the X25519 conversion', (_, bad) => {
      expectE2EError(() => ed25519Sign(bad as unknown as Uint8Array, utf8('m')), 'INVALID_KEY');
      expectE2EError(() => ed25519SecretKeyToX25519(bad as unknown as Uint8Array), 'INVALID_KEY');
    });

    test('signing something that is not bytes: INVALID_ARGUMENT', () => {
      expectE2EError(() => ed25519Sign(kp.secretKey, 'm' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    });

    test.each([
      ['31 bytes', new Uint8Array(31)],
      ['a string', 'a'.repeat(32)],
    ])('a public key that is %s: INVALID_KEY from the X25519 conversion', (_, bad) => {
      expectE2EError(() => ed25519PublicKeyToX25519(bad as unknown as Uint8Array), 'INVALID_KEY');
    });

    // libsodium's crypto_sign_ed25519_pk_to_curve25519 refuses points that do not decode and
    // small-order points; the conversion must not hand out a weak X25519 key.
    test.each([
      ['all zero (y = 0, small order)', '00'.repeat(32)],
      ['the neutral element (y = 1)', '01' + '00'.repeat(31)],
      ['y = -1 (order 2)', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
      ['not on the curve (y = 2)', '02' + '00'.repeat(31)],
      ['y >= p (all ff)', 'ff'.repeat(32)],
    ])('an Ed25519 public key that is %s: INVALID_KEY', (_, pk) => {
      expectE2EError(() => ed25519PublicKeyToX25519(fromHex(pk)), 'INVALID_KEY');
    });
  });

  describe('ed25519Sign refuses an inconsistent secret key', () => {
    test("a secret key whose public half is not its seed's gives INVALID_KEY (double public key attack)", () => {
      const a = ed25519KeyPair();
      const b = ed25519KeyPair();
      const mixed = new Uint8Array([...a.secretKey.subarray(0, 32), ...b.publicKey]);
      expectE2EError(() => ed25519Sign(mixed, new Uint8Array([1, 2, 3])), 'INVALID_KEY');
      expect(ed25519Verify(ed25519Sign(a.secretKey, new Uint8Array([1])), new Uint8Array([1]), a.publicKey)).toBe(true);
    });
  });
});
