import { ready } from '../../lib/sodium';
import { ed25519KeyPair, toHex, utf8, fromUtf8 } from '../../lib/crypto';
import { X3DHKeyManager } from '../../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const AD = utf8('did:mesh:alice|did:mesh:bob');

function agents() {
  const a = ed25519KeyPair();
  const b = ed25519KeyPair();
  const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
  const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
  bob.generateSignedPreKey();
  bob.generateOneTimePreKeys(4);
  return { alice, bob, bundle: bob.getPublicBundle({ otkId: 0 }) };
}

function open() {
  const { alice, bob, bundle } = agents();
  const { channel: ac, establishment } = SecureChannel.createSender(alice, bundle, AD);
  const bc = SecureChannel.createReceiver(bob, establishment, AD);
  return { alice, bob, ac, bc, establishment };
}

describe('SecureChannel', () => {
  test('send/receive both ways; messageCount counts sent + received', () => {
    const { ac, bc } = open();
    expect(fromUtf8(bc.receive(ac.send(utf8('governed action request'))))).toBe('governed action request');
    expect(fromUtf8(ac.receive(bc.send(utf8('action approved')).serialize()))).toBe('action approved');
    expect([ac.messageCount, bc.messageCount]).toEqual([2, 2]);
    expect(toHex(ac.associatedData)).toBe(toHex(bc.associatedData));
    expect(ac.associatedData).toHaveLength(AD.length + 64);
  });

  test('a failed receive does not count and changes nothing', () => {
    const { ac, bc } = open();
    const m = Uint8Array.from(ac.send(utf8('x')).serialize());
    const saved = toHex(bc.toBytes());
    m[m.length - 1] ^= 1;
    expectE2EError(() => bc.receive(m), 'DECRYPT_FAILED');
    expect(bc.messageCount).toBe(0);
    expect(toHex(bc.toBytes())).toBe(saved);
  });

  test('different associated data on the two sides cannot talk', () => {
    const { alice, bob, bundle } = agents();
    const { channel, establishment } = SecureChannel.createSender(alice, bundle, AD);
    const other = SecureChannel.createReceiver(bob, establishment, utf8('did:mesh:mallory|did:mesh:bob'));
    expectE2EError(() => other.receive(channel.send(utf8('x'))), 'DECRYPT_FAILED');
  });

  test('the establishment is single-use (its one-time key is consumed)', () => {
    const { bob, establishment } = open();
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD), 'OTK_NOT_FOUND');
  });

  test('close() wipes and refuses further use with CHANNEL_CLOSED; idempotent', () => {
    const { ac, bc } = open();
    const pending = ac.send(utf8('late'));
    ac.close();
    ac.close();
    expect(ac.isClosed).toBe(true);
    expectE2EError(() => ac.send(utf8('x')), 'CHANNEL_CLOSED');
    expectE2EError(() => ac.receive(pending), 'CHANNEL_CLOSED');
    expectE2EError(() => ac.toBytes(), 'CHANNEL_CLOSED');
    expect(fromUtf8(bc.receive(pending))).toBe('late');
    bc.close();
    expect(bc.isClosed).toBe(true);
  });

  test("closing the responder's channel does not wipe the key manager's signed pre-key", () => {
    const { bob, bc } = open();
    bc.close();
    expect(bob.signedPreKey!.keyPair.privateKey.some((x) => x !== 0)).toBe(true);
  });

  test('toBytes/fromBytes: a restored channel continues, with its message count', () => {
    const { ac, bc } = open();
    bc.receive(ac.send(utf8('1')));
    const saved = bc.toBytes();
    expect(saved.length).toBeLessThan(1024);
    const bc2 = SecureChannel.fromBytes(saved);
    expect(bc2.messageCount).toBe(1);
    expect(fromUtf8(ac.receive(bc2.send(utf8('2'))))).toBe('2');
    expect(fromUtf8(bc2.receive(ac.send(utf8('3'))))).toBe('3');
    expectE2EError(() => SecureChannel.fromBytes(saved.subarray(0, 20)), 'MALFORMED_MESSAGE');
    expectE2EError(() => SecureChannel.fromBytes(new Uint8Array(40)), 'MALFORMED_MESSAGE');
    expectE2EError(() => SecureChannel.fromBytes('x' as never), 'MALFORMED_MESSAGE');
  });

  test('validates its inputs', () => {
    const { alice, bob, bundle } = agents();
    expectE2EError(() => SecureChannel.createSender({} as never, bundle, AD), 'INVALID_ARGUMENT');
    expectE2EError(() => SecureChannel.createSender(alice, bundle, 'ad' as never), 'INVALID_ARGUMENT');
    expectE2EError(() => SecureChannel.createSender(alice, bundle, new Uint8Array(65537)), 'INVALID_ARGUMENT');
    expectE2EError(() => SecureChannel.createReceiver(bob, { initiatorIdentityKey: new Uint8Array(3) } as never, AD), 'MALFORMED_MESSAGE');
    expectE2EError(() => SecureChannel.createReceiver(bob, null as never, AD), 'MALFORMED_MESSAGE');
  });
});

describe('ChannelEstablishment codecs', () => {
  test('binary and JSON forms round-trip; JSON uses the reference names', () => {
    const { establishment: e } = open();
    expect(e.serialize()).toHaveLength(65 + 8);
    const b = ChannelEstablishment.deserialize(e.serialize());
    expect(b).toEqual(e);
    const j = e.toJSON();
    expect(Object.keys(j)).toEqual(['ik', 'ek', 'otk', 'spk']);
    expect(ChannelEstablishment.fromJSON(JSON.stringify(j))).toEqual(e);
    const plain = new ChannelEstablishment({ initiatorIdentityKey: e.initiatorIdentityKey, ephemeralPublicKey: e.ephemeralPublicKey });
    expect(plain.serialize()).toHaveLength(65);
    expect(plain.toJSON()).toEqual({ ik: j.ik, ek: j.ek });
    expect(ChannelEstablishment.deserialize(plain.serialize())).toEqual(plain);
  });

  test('malformed establishments are MALFORMED_MESSAGE', () => {
    const { establishment: e } = open();
    const bytes = e.serialize();
    for (let cut = 0; cut < bytes.length; cut++)
      expectE2EError(() => ChannelEstablishment.deserialize(bytes.subarray(0, cut)), 'MALFORMED_MESSAGE');
    const flags = Uint8Array.from(bytes);
    flags[64] = 4;
    expectE2EError(() => ChannelEstablishment.deserialize(flags), 'MALFORMED_MESSAGE');
    for (const bad of [
      '{',
      '{}',
      '{"ik":"AA==","ek":"AA=="}',
      JSON.stringify({ ...e.toJSON(), otk: -1 }),
      JSON.stringify({ ...e.toJSON(), ik: 5 }),
    ]) {
      expectE2EError(() => ChannelEstablishment.fromJSON(bad), 'MALFORMED_MESSAGE');
    }
  });
});

describe('finding 8: a failed createReceiver spends nothing', () => {
  const badOptions: [string, object][] = [
    ['maxSkip -1', { maxSkip: -1 }],
    ['maxSkippedKeys 1.5', { maxSkippedKeys: 1.5 }],
    ['skippedKeyMaxAgeMs 0', { skippedKeyMaxAgeMs: 0 }],
    ['maxSkip as a string', { maxSkip: '10' }],
    ['now not a function', { now: 42 }],
  ];
  test.each(badOptions)(
    'options with %s: INVALID_ARGUMENT, the one-time pre-key is still there, then good options succeed',
    (_, options) => {
      const { alice, bob, bundle } = agents();
      const { channel, establishment } = SecureChannel.createSender(alice, bundle, AD);
      const before = bob.oneTimePreKeyIds;
      expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD, options as never), 'INVALID_ARGUMENT');
      expect(bob.oneTimePreKeyIds).toEqual(before);
      const bobCh = SecureChannel.createReceiver(bob, establishment, AD, { maxSkip: 10 });
      expect(bobCh.receive(channel.send(utf8('after')))).toEqual(utf8('after'));
      expect(bob.oneTimePreKeyIds).not.toContain(establishment.usedOneTimeKeyId);
    },
  );

  test('bad associated data or a malformed establishment: nothing spent either', () => {
    const { alice, bob, bundle } = agents();
    const { channel, establishment } = SecureChannel.createSender(alice, bundle, AD);
    const before = bob.oneTimePreKeyIds;
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, 'ad' as never), 'INVALID_ARGUMENT');
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, new Uint8Array(65537)), 'INVALID_ARGUMENT');
    expectE2EError(
      () => SecureChannel.createReceiver(bob, { ...establishment, ephemeralPublicKey: new Uint8Array(31) }, AD),
      'MALFORMED_MESSAGE',
    );
    expectE2EError(
      () => SecureChannel.createReceiver(bob, { ...establishment, ephemeralPublicKey: new Uint8Array(32) }, AD),
      'INVALID_KEY',
    );
    expect(bob.oneTimePreKeyIds).toEqual(before);
    expect(SecureChannel.createReceiver(bob, establishment, AD).receive(channel.send(utf8('ok')))).toEqual(utf8('ok'));
  });

  test('createSender checks its options before any work too', () => {
    const { alice, bundle } = agents();
    expectE2EError(() => SecureChannel.createSender(alice, bundle, AD, { maxSkip: -1 }), 'INVALID_ARGUMENT');
  });
});

describe("issue 11: createSender also destructures as AGT's tuple", () => {
  test('object and tuple forms give the same channel and establishment, typed', () => {
    const { alice, bob, bundle } = agents();
    const result = SecureChannel.createSender(alice, bundle, AD);
    const [channel, establishment] = result;
    const { channel: c2, establishment: e2 } = result;
    expect(channel).toBe(c2);
    expect(establishment).toBe(e2);
    expect(channel).toBeInstanceOf(SecureChannel);
    expect(establishment).toBeInstanceOf(ChannelEstablishment);
    expect(result).toHaveLength(2);
    expect(Object.isFrozen(result)).toBe(true);
    expect([...result]).toEqual([channel, establishment]);
    // Types: no casts needed on either form.
    const typed: [SecureChannel, ChannelEstablishment] = [result[0], result[1]];
    expect(typed[0]).toBe(channel);
    const bobCh = SecureChannel.createReceiver(bob, establishment, AD);
    expect(bobCh.receive(channel.send(utf8('tuple')))).toEqual(utf8('tuple'));
  });
});

describe("heldOneTimePreKey: answering with a one-time pre-key the caller holds (the bridge's forgery-proof acceptance)", () => {
  test('createReceiver answers with the held copy and consumes nothing; consumeOneTimePreKey spends once (and wipes)', () => {
    const { alice, bob, bundle } = agents();
    const { channel, establishment } = SecureChannel.createSender(alice, bundle, AD);
    const id = establishment.usedOneTimeKeyId!;
    const key = bob.getOneTimePreKey(id)!;
    const held = {
      keyId: id,
      keyPair: { privateKey: Uint8Array.from(key.keyPair.privateKey), publicKey: Uint8Array.from(key.keyPair.publicKey) },
    };
    expect(bob.consumeOneTimePreKey(id)).toBe(true);
    expect(key.keyPair.privateKey).toEqual(new Uint8Array(32)); // wiped
    expect(bob.consumeOneTimePreKey(id)).toBe(false);
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD), 'OTK_NOT_FOUND');
    const bobCh = SecureChannel.createReceiver(bob, establishment, AD, { heldOneTimePreKey: held });
    expect(fromUtf8(bobCh.receive(channel.send(utf8('answered with the held key'))))).toBe('answered with the held key');
    expect(held.keyPair.privateKey).not.toEqual(new Uint8Array(32)); // the caller's copy is the caller's
    expectE2EError(() => bob.consumeOneTimePreKey(-1), 'INVALID_ARGUMENT');
    expectE2EError(
      () => SecureChannel.createReceiver(bob, establishment, AD, { heldOneTimePreKey: { ...held, keyId: id + 1 } }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(() => SecureChannel.createReceiver(bob, establishment, AD, { heldOneTimePreKey: 'key' as never }), 'INVALID_ARGUMENT');
    expectE2EError(
      () =>
        SecureChannel.createReceiver(bob, establishment, AD, {
          heldOneTimePreKey: { keyId: id, keyPair: { privateKey: new Uint8Array(31), publicKey: new Uint8Array(32) } },
        }),
      'INVALID_KEY',
    );
  });

  test('two establishments naming the same held key both derive; only the genuine one reads the messages', () => {
    const { alice, bob, bundle } = agents();
    const { channel, establishment } = SecureChannel.createSender(alice, bundle, AD);
    const other = SecureChannel.createSender(alice, bundle, AD); // same one-time key id, another ephemeral key
    const key = bob.getOneTimePreKey(establishment.usedOneTimeKeyId!)!;
    const first = SecureChannel.createReceiver(bob, other.establishment, AD, { heldOneTimePreKey: key });
    const second = SecureChannel.createReceiver(bob, establishment, AD, { heldOneTimePreKey: key });
    expect(bob.oneTimePreKeyIds).toContain(establishment.usedOneTimeKeyId);
    const m = channel.send(utf8('for the second'));
    expectE2EError(() => first.receive(m), 'DECRYPT_FAILED');
    expect(fromUtf8(second.receive(m))).toBe('for the second');
  });
});
