import { ready } from '../../lib/sodium';
import { fromHex, toHex } from '../../lib/crypto';
import { AgentIdentity, InMemoryIdentityRegistry, isIdentityStatus } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// A 32-byte string that is not a valid Ed25519 point (no X25519 form): y = 2 is not on the curve.
const NOT_A_POINT = fromHex('0200000000000000000000000000000000000000000000000000000000000000');

describe('InMemoryIdentityRegistry', () => {
  test('register binds a DID to a key with defaults: score 500, active, no capabilities', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    const rec = r.register({ did: id.did, publicKey: id.publicKey });
    expect({ ...rec, publicKey: toHex(rec.publicKey) }).toEqual({
      did: id.did,
      publicKey: toHex(id.publicKey),
      trustScore: 500,
      status: 'active',
      capabilities: [],
    });
    expect(r.size).toBe(1);
    expect(r.get('did:mesh:nobody')).toBeNull();
  });

  test('capabilities are de-duplicated and sorted; records are copies', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    r.register({ did: 'did:mesh:alice', publicKey: id.publicKey, trustScore: 850, capabilities: ['pay', 'audit', 'pay'] });
    const got = r.get('did:mesh:alice')!;
    expect(got.capabilities).toEqual(['audit', 'pay']);
    got.publicKey.fill(0);
    expect(() => (got.capabilities as string[]).push('admin')).toThrow(TypeError);
    expect(toHex(r.get('did:mesh:alice')!.publicKey)).toBe(toHex(id.publicKey));
  });

  test('re-registering with the same key updates; with another key is IDENTITY_MISMATCH', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    r.register({ did: 'did:mesh:alice', publicKey: id.publicKey, trustScore: 300 });
    r.register({ did: 'did:mesh:alice', publicKey: id.publicKey, trustScore: 900 });
    expect(r.get('did:mesh:alice')!.trustScore).toBe(900);
    expectE2EError(() => r.register({ did: 'did:mesh:alice', publicKey: AgentIdentity.generate().publicKey }), 'IDENTITY_MISMATCH');
    expect(r.remove('did:mesh:alice')).toBe(true);
    expect(r.remove('did:mesh:alice')).toBe(false);
    r.register({ did: 'did:mesh:alice', publicKey: AgentIdentity.generate().publicKey });
    expect(r.size).toBe(1);
  });

  test('setters change score, status and capabilities', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    r.register({ did: id.did, publicKey: id.publicKey });
    r.setTrustScore(id.did, 0);
    r.setStatus(id.did, 'suspended');
    r.setCapabilities(id.did, ['b', 'a']);
    const got = r.get(id.did)!;
    expect([got.trustScore, got.status, got.capabilities]).toEqual([0, 'suspended', ['a', 'b']]);
    r.setStatus(id.did, 'active');
    expect(r.get(id.did)!.status).toBe('active');
  });

  test('revocation is final', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    r.register({ did: id.did, publicKey: id.publicKey });
    r.setStatus(id.did, 'revoked');
    expectE2EError(() => r.setStatus(id.did, 'active'), 'INVALID_STATE');
    expectE2EError(() => r.register({ did: id.did, publicKey: id.publicKey, status: 'active' }), 'INVALID_STATE');
    r.setStatus(id.did, 'revoked');
    r.setTrustScore(id.did, 10);
    expect(r.get(id.did)!.status).toBe('revoked');
    // Removing the record does not undo the revocation, with the same key or another.
    expect(r.remove(id.did)).toBe(true);
    expect(r.get(id.did)).toBeNull();
    expectE2EError(() => r.register({ did: id.did, publicKey: id.publicKey }), 'INVALID_STATE');
    expect(r.get(id.did)).toBeNull();
    // A DID removed while active (or suspended) can be registered again: that is how a DID is re-keyed.
    const other = AgentIdentity.generate();
    r.register({ did: other.did, publicKey: other.publicKey, status: 'suspended' });
    expect(r.remove(other.did)).toBe(true);
    expect(r.register({ did: other.did, publicKey: other.publicKey }).status).toBe('active');
  });

  test('bad registrations are refused with typed errors and change nothing', () => {
    const pk = AgentIdentity.generate().publicKey;
    const r = new InMemoryIdentityRegistry();
    expectE2EError(() => r.register(null as never), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'alice', publicKey: pk }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk.subarray(1) }), 'INVALID_KEY');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: NOT_A_POINT }), 'INVALID_KEY');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, trustScore: 1001 }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, trustScore: 7.5 }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, status: 'banned' as never }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, capabilities: [''] }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, capabilities: ['x'.repeat(129)] }), 'INVALID_ARGUMENT');
    expectE2EError(() => r.register({ did: 'did:mesh:a', publicKey: pk, capabilities: 'pay' as never }), 'INVALID_ARGUMENT');
    expect(r.size).toBe(0);
  });

  test('setters refuse unknown DIDs and bad values', () => {
    const id = AgentIdentity.generate();
    const r = new InMemoryIdentityRegistry();
    expectE2EError(() => r.setTrustScore('did:mesh:nobody', 1), 'INVALID_ARGUMENT');
    r.register({ did: id.did, publicKey: id.publicKey });
    expectE2EError(() => r.setTrustScore(id.did, -1), 'INVALID_ARGUMENT');
    expectE2EError(() => r.setStatus(id.did, 'gone' as never), 'INVALID_ARGUMENT');
    expectE2EError(() => r.setCapabilities(id.did, [1 as never]), 'INVALID_ARGUMENT');
    expect(r.get(id.did)!.trustScore).toBe(500);
  });

  test('isIdentityStatus', () => {
    expect(['active', 'suspended', 'revoked', 'expired', 1].map(isIdentityStatus)).toEqual([true, true, true, false, false]);
  });
});
