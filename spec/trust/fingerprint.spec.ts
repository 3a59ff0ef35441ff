import { ready } from '../../lib/sodium';
import { fromHex } from '../../lib/crypto';
import { keyFingerprint } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// RFC 8032 §7.1 test 1 public key; SHA-256 computed independently with node:crypto.
const PK = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');

describe('keyFingerprint', () => {
  test('is 10 groups of 4 uppercase hex of SHA-256(public key), starting with the DID id', () => {
    expect(keyFingerprint(PK)).toBe('21FE 31DF A154 A261 626B F854 046F D227 1B7B ED4B');
  });

  test('refuses a key of the wrong length', () => {
    expectE2EError(() => keyFingerprint(new Uint8Array(33)), 'INVALID_KEY');
  });
});
