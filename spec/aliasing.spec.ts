/**
 * Finding 5: `.slice()`/`.subarray()` of a Node `Buffer` is a view, so an entry point that keeps
 * parts of its input must copy them. For every entry point that retains bytes: hand it a `Buffer`
 * (and a `Uint8Array` view into a larger `ArrayBuffer`), then overwrite the caller's memory, then
 * show the object still works exactly (later genuine messages decrypt, saved bytes unchanged).
 */
import fc from 'fast-check';
import { ed25519KeyPair, randomBytes, toHex, utf8, x25519KeyPair } from '../lib/crypto';
import { X3DHKeyManager } from '../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { DoubleRatchet, EncryptedMessage, RatchetState, SkippedKeys } from '../lib/ratchet';
import { ready } from '../lib/sodium';
import { channelPair, ratchetPair } from './helpers/sessions';

beforeAll(() => ready());

/** How a caller's bytes may be laid out in memory. */
type Layout = { kind: 'buffer' } | { kind: 'view'; before: number; after: number };

const layouts: fc.Arbitrary<Layout> = fc.oneof(
  fc.constant<Layout>({ kind: 'buffer' }),
  fc.record({ kind: fc.constant('view' as const), before: fc.nat(64), after: fc.nat(64) }),
);

/** `bytes` placed as `layout` says: a pooled Node Buffer, or a view in the middle of a larger ArrayBuffer. */
function place(bytes: Uint8Array, layout: Layout): Uint8Array {
  if (layout.kind === 'buffer') return Buffer.from(bytes);
  const big = new Uint8Array(layout.before + bytes.length + layout.after);
  big.set(bytes, layout.before);
  return big.subarray(layout.before, layout.before + bytes.length);
}

/**
 * Overwrites the caller's bytes; for a view into our own larger ArrayBuffer, the whole buffer (a
 * pooled Buffer's backing store is shared with other Buffers of the process, so only its range).
 */
function clobber(view: Uint8Array, fill: number): void {
  if (Buffer.isBuffer(view)) view.fill(fill);
  else new Uint8Array(view.buffer).fill(fill);
}

const RUNS = { numRuns: 12 };

describe('entry points that keep bytes copy them', () => {
  test('SecureChannel.receive of a Buffer that carries a new ratchet key', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const { alice, bob } = channelPair();
        const wire = place(alice.send(utf8('first')).serialize(), layout); // Bob's first receive: a DH ratchet step
        expect(bob.receive(wire)).toEqual(utf8('first'));
        const saved = toHex(bob.toBytes());
        clobber(wire, fill);
        expect(toHex(bob.toBytes())).toBe(saved);
        expect(alice.receive(bob.send(utf8('reply')))).toEqual(utf8('reply'));
        expect(bob.receive(place(alice.send(utf8('again')).serialize(), layout))).toEqual(utf8('again'));
      }),
      RUNS,
    );
  });

  test('SecureChannel.fromBytes', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const { alice, bob } = channelPair({ associatedData: utf8('ad') });
        bob.receive(alice.send(utf8('1')));
        const saved = bob.toBytes();
        const input = place(saved, layout);
        const restored = SecureChannel.fromBytes(input);
        clobber(input, fill);
        expect(toHex(restored.toBytes())).toBe(toHex(saved));
        expect(restored.associatedData).toEqual(bob.associatedData);
        expect(restored.receive(alice.send(utf8('2')))).toEqual(utf8('2'));
        expect(alice.receive(restored.send(utf8('3')))).toEqual(utf8('3'));
      }),
      RUNS,
    );
  });

  test('RatchetState.fromBytes and new RatchetState', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const { alice, bob } = ratchetPair();
        bob.decrypt(alice.encrypt(utf8('1')));
        alice.encrypt(utf8('skipped')); // leaves a skipped key at Bob after the next one
        bob.decrypt(alice.encrypt(utf8('3')));
        const saved = bob.state.toBytes();
        const input = place(saved, layout);
        const state = RatchetState.fromBytes(input);
        clobber(input, fill);
        expect(toHex(state.toBytes())).toBe(toHex(saved));
        const st = bob.state;
        const parts = [st.dhSelf.privateKey, st.dhSelf.publicKey, st.rootKey].map((b) => place(b, layout));
        const made = new RatchetState({
          dhSelf: { privateKey: parts[0], publicKey: parts[1] },
          dhRemote: place(st.dhRemote as Uint8Array, layout),
          rootKey: parts[2],
          chainKeySend: place(st.chainKeySend as Uint8Array, layout),
          chainKeyRecv: place(st.chainKeyRecv as Uint8Array, layout),
        });
        const before = toHex(made.toBytes());
        parts.forEach((p) => clobber(p, fill));
        expect(toHex(made.toBytes())).toBe(before);
        const resumed = new DoubleRatchet(state);
        expect(resumed.decrypt(alice.encrypt(utf8('4')))).toEqual(utf8('4'));
      }),
      RUNS,
    );
  });

  test('DoubleRatchet.initSender / initReceiver', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const secret = randomBytes(32);
        const spk = x25519KeyPair();
        const s1 = place(secret, layout);
        const s2 = place(secret, layout);
        const remote = place(spk.publicKey, layout);
        const priv = place(spk.privateKey, layout);
        const pub = place(spk.publicKey, layout);
        const alice = DoubleRatchet.initSender({ sharedSecret: s1, remoteDhPublic: remote });
        const bob = DoubleRatchet.initReceiver({ sharedSecret: s2, dhKeyPair: { privateKey: priv, publicKey: pub } });
        [s1, s2, remote, priv, pub].forEach((b) => clobber(b, fill));
        expect(bob.decrypt(alice.encrypt(utf8('a')))).toEqual(utf8('a'));
        expect(alice.decrypt(bob.encrypt(utf8('b')))).toEqual(utf8('b'));
      }),
      RUNS,
    );
  });

  test('X3DHKeyManager.fromBytes and fromEd25519Keys', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const id = ed25519KeyPair();
        const sk = place(id.secretKey, layout);
        const pk = place(id.publicKey, layout);
        const bob = X3DHKeyManager.fromEd25519Keys(sk, pk);
        clobber(sk, fill);
        clobber(pk, fill);
        expect(bob.identityKeyEd).toEqual(id.publicKey);
        bob.generateSignedPreKey();
        bob.generateOneTimePreKeys(2);
        const saved = bob.toBytes();
        const input = place(saved, layout);
        const restored = X3DHKeyManager.fromBytes(input);
        clobber(input, fill);
        expect(toHex(restored.toBytes())).toBe(toHex(saved));
        const a = ed25519KeyPair();
        const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
        const { channel, establishment } = SecureChannel.createSender(alice, restored.getPublicBundle({ otkId: 1 }));
        const bobCh = SecureChannel.createReceiver(restored, establishment);
        expect(bobCh.receive(channel.send(utf8('hi')))).toEqual(utf8('hi'));
      }),
      RUNS,
    );
  });

  test('bundles: createSender keeps nothing of the bundle object', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const a = ed25519KeyPair();
        const b = ed25519KeyPair();
        const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
        const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
        bob.generateSignedPreKey();
        const [otk] = bob.generateOneTimePreKeys(1);
        const real = bob.getPublicBundle({ otkId: otk.keyId });
        const bundle = {
          ...real,
          identityKey: place(real.identityKey, layout),
          identityKeyEd: place(real.identityKeyEd, layout),
          signedPreKey: place(real.signedPreKey, layout),
          signedPreKeySignature: place(real.signedPreKeySignature, layout),
          oneTimePreKey: place(real.oneTimePreKey as Uint8Array, layout),
        };
        const { channel, establishment } = SecureChannel.createSender(alice, bundle);
        for (const k of ['identityKey', 'identityKeyEd', 'signedPreKey', 'signedPreKeySignature', 'oneTimePreKey'] as const)
          clobber(bundle[k], fill);
        const bobCh = SecureChannel.createReceiver(bob, establishment);
        expect(bobCh.receive(channel.send(utf8('x')))).toEqual(utf8('x'));
        expect(channel.receive(bobCh.send(utf8('y')))).toEqual(utf8('y'));
      }),
      RUNS,
    );
  });

  test('ChannelEstablishment.deserialize / constructor / from, and EncryptedMessage.deserialize / constructor', () => {
    fc.assert(
      fc.property(layouts, fc.integer({ min: 0, max: 255 }), (layout, fill) => {
        const a = ed25519KeyPair();
        const b = ed25519KeyPair();
        const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
        const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
        bob.generateSignedPreKey();
        const { channel, establishment } = SecureChannel.createSender(alice, bob.getPublicBundle());
        const wireE = place(establishment.serialize(), layout);
        const e = ChannelEstablishment.deserialize(wireE);
        const ik = place(establishment.initiatorIdentityKey, layout);
        const ek = place(establishment.ephemeralPublicKey, layout);
        const e2 = ChannelEstablishment.from({
          initiatorIdentityKey: ik,
          ephemeralPublicKey: ek,
          signedPreKeyId: establishment.signedPreKeyId,
        });
        [wireE, ik, ek].forEach((x) => clobber(x, fill));
        expect(toHex(e.serialize())).toBe(toHex(establishment.serialize()));
        expect(toHex(e2.serialize())).toBe(toHex(establishment.serialize()));
        const bobCh = SecureChannel.createReceiver(bob, e);
        const m = channel.send(utf8('m'));
        const wireM = place(m.serialize(), layout);
        const parsed = EncryptedMessage.deserialize(wireM);
        const hk = place(m.header.dhPublicKey, layout);
        const ct = place(m.ciphertext, layout);
        const built = new EncryptedMessage({ ...m.header, dhPublicKey: hk }, ct);
        [wireM, hk, ct].forEach((x) => clobber(x, fill));
        expect(toHex(parsed.serialize())).toBe(toHex(m.serialize()));
        expect(toHex(built.serialize())).toBe(toHex(m.serialize()));
        expect(bobCh.receive(built)).toEqual(utf8('m'));
      }),
      RUNS,
    );
  });

  test('SkippedKeys.add copies the public ratchet key it files the entry under', () => {
    const s = new SkippedKeys();
    const dh = randomBytes(32);
    const hex = toHex(dh);
    const input = place(dh, { kind: 'buffer' });
    s.add({ dhPublicKey: input, messageNumber: 1, messageKey: randomBytes(32), storedAt: 0 }, 10);
    clobber(input, 0);
    const [k] = [...s.values()];
    expect(toHex(k.dhPublicKey)).toBe(hex);
    expect(s.get(hex, 1)).toBe(k);
  });
});
