/** Post-quantum channels: negotiation by the bundle, requirePostQuantum, the establishment's PQ forms, saved PQ channels. */
import { ready } from '../../lib/sodium';
import { ed25519KeyPair, fromBase64, toBase64, toHex, utf8 } from '../../lib/crypto';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

function manager(): X3DHKeyManager {
  const id = ed25519KeyPair();
  const m = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  m.generateSignedPreKey();
  return m;
}

function pqResponder(): X3DHKeyManager {
  const bob = manager();
  bob.generateOneTimePreKeys(2);
  bob.generateKemPreKeys(2);
  bob.generateLastResortKemPreKey();
  return bob;
}

function stripKem(b: PreKeyBundle): PreKeyBundle {
  const { kemPreKey: _k, kemPreKeyId: _i, kemPreKeySignature: _s, ...classic } = b;
  return classic;
}

const AD = utf8('did:mesh:alice|did:mesh:bob');

describe('negotiation by the bundle', () => {
  test('a bundle with a KEM key gives a post-quantum channel on both ends', () => {
    const alice = manager();
    const bob = pqResponder();
    const { channel, establishment } = SecureChannel.createSender(alice, bob.getPublicBundle({ otkId: 0, kemId: 1 }), AD);
    expect(channel.postQuantum).toBe(true);
    expect(establishment.postQuantum).toBe(true);
    expect(establishment.kemPreKeyId).toBe(1);
    expect(establishment.kemCiphertext).toHaveLength(1088);
    const receiver = SecureChannel.createReceiver(bob, establishment, AD);
    expect(receiver.postQuantum).toBe(true);
    expect(receiver.receive(channel.send(utf8('ping')))).toEqual(utf8('ping'));
    expect(channel.receive(receiver.send(utf8('pong')))).toEqual(utf8('pong'));
    expect(bob.kemPreKeyIds).toEqual([0, 2]); // the one-time KEM key spent; the last-resort key stays
    expect(bob.oneTimePreKeyIds).toEqual([1]);
  });

  test('a bundle without one gives the classic channel and establishment, byte for byte in form', () => {
    const alice = manager();
    const bob = manager();
    const { channel, establishment } = SecureChannel.createSender(alice, bob.getPublicBundle(), AD);
    expect(channel.postQuantum).toBe(false);
    expect(establishment.postQuantum).toBe(false);
    expect(establishment.kemCiphertext).toBeUndefined();
    expect(establishment.serialize()).toHaveLength(69);
    expect(establishment.serialize()[64]).toBe(2); // the signed pre-key flag only
    expect(Object.keys(establishment.toJSON())).toEqual(['ik', 'ek', 'spk']);
    expect(SecureChannel.createReceiver(bob, establishment, AD).postQuantum).toBe(false);
    expect(toHex(channel.toBytes().subarray(0, 4))).toBe('414d4301');
  });

  test('requirePostQuantum refuses a classic bundle before anything is made', () => {
    const alice = manager();
    const bob = pqResponder();
    const stripped = stripKem(bob.getPublicBundle({ otkId: 0 }));
    const before = toHex(alice.toBytes());
    expectE2EError(() => SecureChannel.createSender(alice, stripped, AD, { requirePostQuantum: true }), 'POST_QUANTUM_REQUIRED');
    expect(toHex(alice.toBytes())).toBe(before);
    expect(SecureChannel.createSender(alice, stripped, AD, { requirePostQuantum: false }).channel.postQuantum).toBe(false);
    expect(SecureChannel.createSender(alice, bob.getPublicBundle(), AD, { requirePostQuantum: true }).channel.postQuantum).toBe(true);
  });

  test('the receiver’s requirePostQuantum refuses a classic establishment and spends nothing', () => {
    const alice = manager();
    const bob = pqResponder();
    const { establishment } = SecureChannel.createSender(alice, stripKem(bob.getPublicBundle({ otkId: 0 })), AD);
    const before = toHex(bob.toBytes());
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD, { requirePostQuantum: true }), 'POST_QUANTUM_REQUIRED');
    expect(toHex(bob.toBytes())).toBe(before);
    expect(SecureChannel.createReceiver(bob, establishment, AD).postQuantum).toBe(false);
  });

  test('requirePostQuantum must be a boolean; unknown options are refused', () => {
    const alice = manager();
    const bob = pqResponder();
    const b = bob.getPublicBundle();
    for (const v of ['yes', 1, null]) {
      expectE2EError(() => SecureChannel.createSender(alice, b, AD, { requirePostQuantum: v as unknown as boolean }), 'INVALID_ARGUMENT');
    }
    const { establishment } = SecureChannel.createSender(alice, b, AD);
    expectE2EError(
      () => SecureChannel.createReceiver(bob, establishment, AD, { requirePostQuantum: 'no' as unknown as boolean }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(() => SecureChannel.createSender(alice, b, AD, { postQuantum: true } as unknown as object), 'INVALID_ARGUMENT');
  });

  test('a one-time KEM key answers one establishment; the second is KEM_NOT_FOUND and spends nothing', () => {
    const alice = manager();
    const bob = pqResponder();
    const { establishment } = SecureChannel.createSender(alice, bob.getPublicBundle({ kemId: 0 }), AD);
    SecureChannel.createReceiver(bob, establishment, AD);
    const before = toHex(bob.toBytes());
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD), 'KEM_NOT_FOUND');
    expect(toHex(bob.toBytes())).toBe(before);
  });
});

describe('the establishment’s post-quantum forms', () => {
  function pqEstablishment(otk: boolean): ChannelEstablishment {
    const bob = pqResponder();
    return SecureChannel.createSender(manager(), bob.getPublicBundle({ otkId: otk ? 0 : null, kemId: 1 }), AD).establishment;
  }

  test('binary: flag 4, then the KEM id and the 1088-byte ciphertext, after the other ids', () => {
    for (const otk of [false, true]) {
      const e = pqEstablishment(otk);
      const bytes = e.serialize();
      expect(bytes).toHaveLength(65 + (otk ? 4 : 0) + 4 + 4 + 1088);
      expect(bytes[64]).toBe((otk ? 1 : 0) | 2 | 4);
      const kemAt = 65 + (otk ? 4 : 0) + 4;
      expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(kemAt)).toBe(1);
      expect(toHex(bytes.subarray(kemAt + 4))).toBe(toHex(e.kemCiphertext as Uint8Array));
      const back = ChannelEstablishment.deserialize(bytes);
      expect(toHex(back.serialize())).toBe(toHex(bytes));
      expect(back.postQuantum).toBe(true);
    }
  });

  test('binary: a truncated ciphertext, trailing bytes or an unknown flag are MALFORMED_MESSAGE', () => {
    const bytes = pqEstablishment(true).serialize();
    expectE2EError(() => ChannelEstablishment.deserialize(bytes.subarray(0, bytes.length - 1)), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.deserialize(Uint8Array.of(...bytes, 0)), 'MALFORMED_MESSAGE');
    const flagged = Uint8Array.from(bytes);
    flagged[64] |= 8;
    expectE2EError(() => ChannelEstablishment.deserialize(flagged), 'MALFORMED_MESSAGE');
  });

  test('JSON: kem and kct, round trip; a kct of the wrong length, or one without the other, is refused', () => {
    const e = pqEstablishment(false);
    const j = e.toJSON();
    expect(Object.keys(j)).toEqual(['ik', 'ek', 'spk', 'kem', 'kct']);
    expect(j.kct).toHaveLength(1452);
    expect(JSON.stringify(j).length).toBeLessThan(2048);
    const back = ChannelEstablishment.fromJSON(JSON.stringify(j));
    expect(toHex(back.serialize())).toBe(toHex(e.serialize()));
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kct: (j.kct as string).slice(4) }), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kct: undefined }), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kem: undefined }), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kem: -1 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kct: 5 as unknown as string }), 'MALFORMED_MESSAGE');
    const short = toBase64(fromBase64(j.kct as string).subarray(0, 1087));
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, kct: short }), 'MALFORMED_MESSAGE');
  });

  test('the fields constructor copies the ciphertext; the getter hands out copies', () => {
    const e = pqEstablishment(false);
    const ct = e.kemCiphertext as Uint8Array;
    const copy = new ChannelEstablishment({ ...e, kemPreKeyId: e.kemPreKeyId, kemCiphertext: ct });
    ct.fill(0);
    expect(toHex(copy.kemCiphertext as Uint8Array)).toBe(toHex(e.kemCiphertext as Uint8Array));
    (copy.kemCiphertext as Uint8Array).fill(1);
    expect(toHex(copy.serialize())).toBe(toHex(e.serialize()));
  });
});

describe('saved post-quantum channels', () => {
  test('"AMC" 0x02 with the post-quantum flag; restored channels go on and stay post-quantum', () => {
    const alice = manager();
    const bob = pqResponder();
    const { channel, establishment } = SecureChannel.createSender(alice, bob.getPublicBundle(), AD);
    const receiver = SecureChannel.createReceiver(bob, establishment, AD);
    receiver.receive(channel.send(utf8('one')));
    const saved = receiver.toBytes();
    expect(toHex(saved.subarray(0, 5))).toBe('414d430201');
    const restored = SecureChannel.fromBytes(saved);
    expect(restored.postQuantum).toBe(true);
    expect(restored.messageCount).toBe(1);
    expect(restored.receive(channel.send(utf8('two')))).toEqual(utf8('two'));
    expect(channel.receive(restored.send(utf8('three')))).toEqual(utf8('three'));
    const flags = Uint8Array.from(saved);
    flags[4] = 3;
    expectE2EError(() => SecureChannel.fromBytes(flags), 'MALFORMED_MESSAGE');
    flags[4] = 0;
    expectE2EError(() => SecureChannel.fromBytes(flags), 'MALFORMED_MESSAGE');
    expectE2EError(() => SecureChannel.fromBytes(saved.subarray(0, 13)), 'MALFORMED_MESSAGE');
  });
});

describe('reused buffers', () => {
  test('a PQ establishment read from a Node Buffer, and a bundle of Buffers, keep nothing that the caller overwrites', () => {
    const alice = manager();
    const bob = pqResponder();
    const b = bob.getPublicBundle({ kemId: 0 });
    const pool = Buffer.alloc(4096);
    const kemView = pool.subarray(100, 100 + 1184);
    kemView.set(b.kemPreKey as Uint8Array);
    const sigView = pool.subarray(2000, 2064);
    sigView.set(b.kemPreKeySignature as Uint8Array);
    const { channel, establishment } = SecureChannel.createSender(alice, { ...b, kemPreKey: kemView, kemPreKeySignature: sigView }, AD);
    pool.fill(0xaa); // the caller reuses its buffer
    const wire = Buffer.from(establishment.serialize());
    const parsed = ChannelEstablishment.deserialize(wire.subarray(0));
    // A transport that hands the fields over as views of its receive buffer.
    const ctAt = wire.length - 1088;
    const fromFields = new ChannelEstablishment({
      initiatorIdentityKey: wire.subarray(0, 32),
      ephemeralPublicKey: wire.subarray(32, 64),
      signedPreKeyId: establishment.signedPreKeyId,
      kemPreKeyId: establishment.kemPreKeyId,
      kemCiphertext: wire.subarray(ctAt),
    });
    const expected = toHex(establishment.serialize());
    wire.fill(0x55);
    expect(toHex(parsed.serialize())).toBe(expected);
    expect(toHex(fromFields.serialize())).toBe(expected);
    const receiver = SecureChannel.createReceiver(bob, parsed, AD);
    expect(receiver.receive(channel.send(utf8('after reuse')))).toEqual(utf8('after reuse'));
  });
});
