import { ready } from '../../lib/sodium';
import { fromHex } from '../../lib/crypto';
import { assertMeshDid, didCertifiesKey, didFromPublicKey, isMeshDid } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// RFC 8032 §7.1 test 1 public key; SHA-256 computed independently with node:crypto.
const PK = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');

describe('DIDs', () => {
  test('the self-certifying DID is did:mesh: + 32 hex of SHA-256(public key)', () => {
    expect(didFromPublicKey(PK)).toBe('did:mesh:21fe31dfa154a261626bf854046fd227');
    expect(didCertifiesKey('did:mesh:21fe31dfa154a261626bf854046fd227', PK)).toBe(true);
    expect(didCertifiesKey('did:mesh:21fe31dfa154a261626bf854046fd228', PK)).toBe(false);
    expect(didCertifiesKey('did:mesh:alice', PK)).toBe(false);
  });

  test('didFromPublicKey refuses a key of the wrong length', () => {
    expectE2EError(() => didFromPublicKey(new Uint8Array(31)), 'INVALID_KEY');
  });

  test.each(['did:mesh:alice', 'did:mesh:0123456789abcdef0123456789abcdef', 'did:mesh:org:team.agent-1_x', 'did:mesh:a%20b'])(
    'accepts %s',
    (did) => {
      expect(isMeshDid(did)).toBe(true);
      expect(() => assertMeshDid(did)).not.toThrow();
    },
  );

  test.each([
    ['empty id', 'did:mesh:'],
    ['other method', 'did:web:alice'],
    ['pipe', 'did:mesh:a|b'],
    ['space', 'did:mesh:a b'],
    ['trailing colon', 'did:mesh:a:'],
    ['bad escape', 'did:mesh:a%2'],
    ['too long', `did:mesh:${'a'.repeat(248)}`],
    ['not a string', 42],
  ])('refuses %s with INVALID_ARGUMENT', (_, did) => {
    expect(isMeshDid(did)).toBe(false);
    expectE2EError(() => assertMeshDid(did), 'INVALID_ARGUMENT');
  });

  test('the longest accepted DID is 256 characters', () => {
    expect(isMeshDid(`did:mesh:${'a'.repeat(247)}`)).toBe(true);
  });
});
