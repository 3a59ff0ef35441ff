/** TrustTransport.attach/detach: how a bridge makes itself reachable on its transport (LocalTrustNetwork among others). */
import { ready } from '../../lib/sodium';
import {
  AgentIdentity,
  EncryptedTrustBridge,
  InMemoryIdentityRegistry,
  LocalTrustNetwork,
  TrustEndpoint,
  TrustTransport,
} from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

function world(): { alice: AgentIdentity; bob: AgentIdentity; registry: InMemoryIdentityRegistry } {
  const alice = AgentIdentity.generate();
  const bob = AgentIdentity.generate();
  const registry = new InMemoryIdentityRegistry();
  for (const id of [alice, bob]) registry.register({ did: id.did, publicKey: id.publicKey, trustScore: 850 });
  return { alice, bob, registry };
}

describe('TrustTransport attach/detach', () => {
  test('a bridge attaches itself once at construction and detaches on close (once)', () => {
    const { alice, registry } = world();
    const calls: [string, TrustEndpoint, unknown][] = [];
    const transport: TrustTransport = {
      sendChallenge: () => Promise.reject(new Error('unused')),
      sendAnswer: () => Promise.reject(new Error('unused')),
      attach(endpoint) {
        calls.push(['attach', endpoint, this]);
      },
      detach(endpoint) {
        calls.push(['detach', endpoint, this]);
      },
    };
    const bridge = new EncryptedTrustBridge({ identity: alice, registry, transport });
    expect(calls).toEqual([['attach', bridge, transport]]);
    bridge.close();
    bridge.close();
    expect(calls).toEqual([
      ['attach', bridge, transport],
      ['detach', bridge, transport],
    ]);
  });

  test('a transport without them (or with non-functions there) is used as it is', () => {
    const { alice, registry } = world();
    const plain: TrustTransport = {
      sendChallenge: () => Promise.reject(new Error('unused')),
      sendAnswer: () => Promise.reject(new Error('unused')),
    };
    new EncryptedTrustBridge({ identity: alice, registry, transport: plain }).close();
    const odd = { ...plain, attach: 42, detach: 'no' } as unknown as TrustTransport;
    new EncryptedTrustBridge({ identity: alice, registry, transport: odd }).close();
  });

  test('a throwing getter for attach is INVALID_ARGUMENT, before anything is attached', () => {
    const { alice, registry } = world();
    const hostile = {
      sendChallenge: () => Promise.reject(new Error('unused')),
      sendAnswer: () => Promise.reject(new Error('unused')),
      get attach(): never {
        throw new TypeError('hostile');
      },
    } as unknown as TrustTransport;
    expectE2EError(() => new EncryptedTrustBridge({ identity: alice, registry, transport: hostile }), 'INVALID_ARGUMENT');
  });

  test('LocalTrustNetwork: a bridge is reachable once made and unreachable once closed; a newer bridge at the DID stays', async () => {
    const { alice, bob, registry } = world();
    const network = new LocalTrustNetwork();
    const a = new EncryptedTrustBridge({ identity: alice, registry, transport: network });
    const b1 = new EncryptedTrustBridge({ identity: bob, registry, transport: network });
    expect((await a.verifyPeer(bob.did)).peerDid).toBe(bob.did);
    const b2 = new EncryptedTrustBridge({ identity: bob, registry, transport: network }); // replaces b1 at bob's DID
    b1.close(); // detaching b1 leaves b2 in place
    expect((await a.verifyPeer(bob.did)).peerDid).toBe(bob.did);
    b2.close();
    await expect(a.verifyPeer(bob.did)).rejects.toMatchObject({ code: 'TRUST_REJECTED', reason: 'transport_failed' });
    network.attach(b2);
    expect(network.leave(bob.did, b1)).toBe(false);
    network.detach(b2);
    expect(network.leave(bob.did)).toBe(false);
    a.close();
  });
});
