/**
 * Trust entry points that keep bytes keep their own copies: a caller that reuses or wipes the
 * Buffer it passed (sockets, fs, better-sqlite3 and ioredis all hand out Buffers, whose `slice` is
 * a view) changes nothing we hold (issue 9, finding 5).
 */
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { ed25519KeyPair, fromUtf8, utf8 } from '../../lib/crypto';
import { PreKeyBundle } from '../../lib/x3dh';
import { ChannelEstablishment } from '../../lib/channel';
import { AgentIdentity, EncryptedTrustBridge, InMemoryIdentityRegistry, LocalTrustNetwork } from '../../lib/trust';

beforeAll(() => ready());

/** `bytes` as the caller's memory: a Buffer view into a larger pooled ArrayBuffer, at an odd offset. */
function callerBuffer(bytes: Uint8Array, offset: number): Buffer {
  const pool = Buffer.alloc(bytes.length + offset + 7, 0xaa);
  pool.set(bytes, offset);
  return pool.subarray(offset, offset + bytes.length);
}

/** Every Uint8Array field of a bundle replaced by a caller Buffer, plus a function that scribbles over them all. */
function bufferBundle(b: PreKeyBundle, offset: number): { bundle: PreKeyBundle; scribble: (v: number) => void } {
  const views: Buffer[] = [];
  const copy: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(b)) {
    if (v instanceof Uint8Array) {
      const view = callerBuffer(v, offset);
      views.push(view);
      copy[k] = view;
    } else copy[k] = v;
  }
  return { bundle: copy as unknown as PreKeyBundle, scribble: (v) => views.forEach((x) => x.fill(v)) };
}

describe('trust entry points copy what they keep', () => {
  test('registry entries, identities from secret keys and seeds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 255 }), (offset, fill) => {
        const pair = ed25519KeyPair();
        const registry = new InMemoryIdentityRegistry();
        const pub = callerBuffer(pair.publicKey, offset);
        registry.register({ did: 'did:mesh:alice', publicKey: pub, trustScore: 800 });
        const sk = callerBuffer(pair.secretKey, offset);
        const seed = callerBuffer(pair.secretKey.subarray(0, 32), offset);
        const fromSk = AgentIdentity.fromSecretKey(sk, { did: 'did:mesh:alice' });
        const fromSeed = AgentIdentity.fromSeed(seed, { did: 'did:mesh:alice' });
        pub.fill(fill);
        sk.fill(fill);
        seed.fill(fill);
        expect(Buffer.from((registry.get('did:mesh:alice') as { publicKey: Uint8Array }).publicKey)).toEqual(Buffer.from(pair.publicKey));
        for (const id of [fromSk, fromSeed]) {
          expect(Buffer.from(id.publicKey)).toEqual(Buffer.from(pair.publicKey));
          expect(id.verify(id.sign(utf8('m')), utf8('m'))).toBe(true);
        }
      }),
      { numRuns: 50 },
    );
  });

  test('a bundle of caller Buffers wiped after the open: the session still works both ways', async () => {
    for (const [offset, fill] of [
      [0, 0],
      [3, 0xff],
      [17, 0x5a],
    ]) {
      const [alice, bob] = [AgentIdentity.generate(), AgentIdentity.generate()];
      const registry = new InMemoryIdentityRegistry();
      for (const id of [alice, bob]) registry.register({ did: id.did, publicKey: id.publicKey, trustScore: 900 });
      const network = new LocalTrustNetwork();
      const a = new EncryptedTrustBridge({ identity: alice, registry, transport: network });
      const b = new EncryptedTrustBridge({ identity: bob, registry, transport: network });
      const { bundle, scribble } = bufferBundle(await b.publishPrekeyBundle(), offset);
      const ac = await a.openSecureChannel(bob.did, bundle);
      scribble(fill);
      const est = a.getSession(bob.did)!.establishment.serialize();
      const wire = callerBuffer(est, offset);
      const bc = await b.acceptSecureChannel(alice.did, ChannelEstablishment.deserialize(wire));
      wire.fill(fill);
      expect(fromUtf8(await b.receive(alice.did, ac.send(utf8('hi bob'))))).toBe('hi bob');
      expect(fromUtf8(await a.receive(bob.did, bc.send(utf8('hi alice'))))).toBe('hi alice');
      expect(Buffer.from(b.getSession(alice.did)!.establishment.serialize())).toEqual(Buffer.from(est));
    }
  });
});
