/** `lib/x3dh/bundle.ts`: the bundle's shape checks, its snapshot and its registry JSON form. */
import { ready } from '../../lib/sodium';
import { ErrorCode } from '../../lib/errors';
import { ed25519KeyPairFromSeed, ed25519PublicKeyToX25519, ed25519Sign, toHex, x25519PublicKey } from '../../lib/crypto';
import { PreKeyBundle, PreKeyBundleJSON, assertBundleShape, bundleFromJSON, bundleToJSON, snapshotBundle } from '../../lib/x3dh';
import { isU32 } from '../../lib/crypto/byte-io';
import { expectE2EError } from '../helpers/expect-error';
import { MAX_BUNDLE_JSON_CHARS } from '../../lib/limits';

beforeAll(() => ready());

const run = (b: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => (b + i) & 0xff);

function bundle(): PreKeyBundle {
  const id = ed25519KeyPairFromSeed(run(1));
  const spk = x25519PublicKey(run(2));
  return {
    identityKey: ed25519PublicKeyToX25519(id.publicKey),
    identityKeyEd: id.publicKey,
    signedPreKey: spk,
    signedPreKeySignature: ed25519Sign(id.secretKey, spk),
    signedPreKeyId: 7,
    oneTimePreKey: x25519PublicKey(run(3)),
    oneTimePreKeyId: 9,
  };
}

describe('isU32', () => {
  test('integers in [0, 2^32) only', () => {
    expect([0, 1, 0xffffffff].map(isU32)).toEqual([true, true, true]);
    expect([-1, 2 ** 32, 1.5, NaN, Infinity, '1', null, undefined, 1n].map(isU32)).toEqual(Array(9).fill(false));
  });
});

describe('assertBundleShape and snapshotBundle', () => {
  test('a bundle with and without its one-time pre-key passes', () => {
    const { oneTimePreKey: _k, oneTimePreKeyId: _i, ...base } = bundle();
    expect(() => assertBundleShape(bundle())).not.toThrow();
    expect(() => assertBundleShape(base)).not.toThrow();
    expect(() => assertBundleShape({ ...base, oneTimePreKey: null, oneTimePreKeyId: null })).not.toThrow();
  });

  const cases: [string, (b: PreKeyBundle) => unknown, ErrorCode][] = [
    ['not an object', () => 7, 'MALFORMED_MESSAGE'],
    ['identityKey 31 bytes', (b) => ({ ...b, identityKey: b.identityKey.subarray(1) }), 'INVALID_KEY'],
    ['identityKeyEd a string', (b) => ({ ...b, identityKeyEd: toHex(b.identityKeyEd) }), 'INVALID_KEY'],
    ['signedPreKey 33 bytes', (b) => ({ ...b, signedPreKey: new Uint8Array(33) }), 'INVALID_KEY'],
    ['signature 63 bytes', (b) => ({ ...b, signedPreKeySignature: b.signedPreKeySignature.subarray(1) }), 'BAD_SIGNATURE'],
    ['signedPreKeyId -1', (b) => ({ ...b, signedPreKeyId: -1 }), 'MALFORMED_MESSAGE'],
    ['signedPreKeyId 2^32', (b) => ({ ...b, signedPreKeyId: 2 ** 32 }), 'MALFORMED_MESSAGE'],
    ['one-time pre-key without its id', (b) => ({ ...b, oneTimePreKeyId: undefined }), 'MALFORMED_MESSAGE'],
    ['one-time pre-key id without the key', (b) => ({ ...b, oneTimePreKey: undefined }), 'MALFORMED_MESSAGE'],
    ['one-time pre-key 16 bytes', (b) => ({ ...b, oneTimePreKey: new Uint8Array(16) }), 'INVALID_KEY'],
    ['one-time pre-key id 1.5', (b) => ({ ...b, oneTimePreKeyId: 1.5 }), 'MALFORMED_MESSAGE'],
  ];
  test.each(cases)('%s', (_name, make, code) => {
    const b = make(bundle());
    expectE2EError(() => assertBundleShape(b), code);
    expectE2EError(() => snapshotBundle(b), code);
  });

  test('the snapshot is a frozen copy: changing the input afterwards changes nothing', () => {
    const input = bundle();
    const copy = snapshotBundle(input);
    const before = toHex(copy.signedPreKey);
    (input.signedPreKey as Uint8Array).fill(0);
    expect(toHex(copy.signedPreKey)).toBe(before);
    expect(Object.isFrozen(copy)).toBe(true);
    expect(copy.signedPreKeyId).toBe(7);
    expect(copy.oneTimePreKeyId).toBe(9);
  });

  test('a snapshot of a bundle without one-time pre-key has neither field', () => {
    const copy = snapshotBundle({ ...bundle(), oneTimePreKey: null, oneTimePreKeyId: null });
    expect('oneTimePreKey' in copy || 'oneTimePreKeyId' in copy).toBe(false);
  });
});

describe('bundleToJSON and bundleFromJSON', () => {
  const expected: PreKeyBundleJSON = {
    identity_key: 'SjgH0GTQdxgcwHCYnnaJHSDcpVWVSNwsd8GlAnOIKzg',
    identity_key_ed: 'ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ',
    signed_pre_key: {
      key_id: 7,
      public_key: 'q58mKMMlwUHp-yQw8QaFD2KTC8PwsS3zmpuEpJx8HRI',
      signature: 'mYVxFg5XiDd-EQ1E5IwsGZpTiXwb6r9RThuMK33KgYqvvokLX_KWAJjcwnL8HwK6tQaM1LZbFTcwvhOeUBNiBQ',
    },
    one_time_pre_key: { key_id: 9, public_key: 'kJcFsOfRgX21bNy4m6L6utPpoBssI7xz4-ydmi_5uCc' },
  };

  test('the registry form: unpadded base64url, snake_case, exact values', () => {
    const j = bundleToJSON(bundle());
    expect(Object.keys(j)).toEqual(['identity_key', 'identity_key_ed', 'signed_pre_key', 'one_time_pre_key']);
    expect(j).toEqual(expected);
  });

  test('round trip, as an object and as text; no one-time pre-key gives no field', () => {
    const b = bundle();
    for (const input of [bundleToJSON(b), JSON.stringify(bundleToJSON(b))]) {
      const back = bundleFromJSON(input);
      expect(toHex(back.signedPreKeySignature)).toBe(toHex(b.signedPreKeySignature));
      expect(back.oneTimePreKeyId).toBe(9);
    }
    const { oneTimePreKey: _k, oneTimePreKeyId: _i, ...base } = b;
    expect('one_time_pre_key' in bundleToJSON(base)).toBe(false);
    expect(bundleFromJSON({ ...bundleToJSON(base), one_time_pre_key: null }).oneTimePreKey).toBeUndefined();
  });

  const j = (): PreKeyBundleJSON => bundleToJSON(bundle());
  const cases: [string, () => unknown, ErrorCode][] = [
    ['text above the limit', () => ' '.repeat(MAX_BUNDLE_JSON_CHARS + 1), 'MALFORMED_MESSAGE'],
    ['not JSON', () => '{', 'MALFORMED_MESSAGE'],
    ['identity_key a number', () => ({ ...j(), identity_key: 1 }), 'MALFORMED_MESSAGE'],
    ['identity_key too long', () => ({ ...j(), identity_key: `${j().identity_key}A` }), 'INVALID_KEY'],
    ['identity_key not base64url of 32 bytes', () => ({ ...j(), identity_key: j().identity_key.slice(2) }), 'MALFORMED_MESSAGE'],
    [
      'signature too long',
      () => ({ ...j(), signed_pre_key: { ...j().signed_pre_key, signature: `${j().signed_pre_key.signature}A` } }),
      'BAD_SIGNATURE',
    ],
    ['no signed_pre_key', () => ({ ...j(), signed_pre_key: undefined }), 'MALFORMED_MESSAGE'],
    ['key_id a string', () => ({ ...j(), signed_pre_key: { ...j().signed_pre_key, key_id: '7' } }), 'MALFORMED_MESSAGE'],
    ['one-time pre-key too long', () => ({ ...j(), one_time_pre_key: { key_id: 1, public_key: `${j().identity_key}A` } }), 'INVALID_KEY'],
    ['one-time pre-key id missing', () => ({ ...j(), one_time_pre_key: { public_key: j().identity_key } }), 'MALFORMED_MESSAGE'],
  ];
  test.each(cases)('%s', (_name, make, code) => {
    expectE2EError(() => bundleFromJSON(make() as PreKeyBundleJSON), code);
  });
});
