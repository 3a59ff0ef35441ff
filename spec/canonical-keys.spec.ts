/**
 * Finding 2: X25519 ignores bit 255 and reduces encodings ≥ p, so a key with those bits changed is
 * the same curve key under different bytes. Wherever a public key stands for a peer or a chain, a
 * non-canonical encoding must not pass as a new key: establishments, bundles, ratchet headers,
 * restored states.
 */
import {
  canonicalX25519PublicKey,
  ed25519KeyPair,
  fromHex,
  randomBytes,
  toHex,
  utf8,
  writeU32BE,
  x25519,
  x25519KeyPair,
} from '../lib/crypto';
import { sealMessage } from '../lib/crypto/message-aead';
import { X3DHKeyManager } from '../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { DoubleRatchet, RatchetState, kdfRootKey } from '../lib/ratchet';
import { ready } from '../lib/sodium';
import { expectE2EError } from './helpers/expect-error';
import { ratchetPair } from './helpers/sessions';

beforeAll(() => ready());

const flip255 = (k: Uint8Array): Uint8Array => {
  const out = Uint8Array.from(k);
  out[31] ^= 0x80;
  return out;
};
/** `p + k` (2^255 − 19 + k) for 0 ≤ k < 19: a non-canonical encoding of the small value k. */
const pPlus = (k: number): Uint8Array => {
  const out = new Uint8Array(32).fill(0xff);
  out[31] = 0x7f;
  out[0] = 0xed + k;
  return out;
};

function managers(): { alice: X3DHKeyManager; bob: X3DHKeyManager } {
  const a = ed25519KeyPair();
  const b = ed25519KeyPair();
  const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
  const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
  bob.generateSignedPreKey();
  return { alice, bob };
}

describe('X3DH respond / createReceiver', () => {
  test.each([
    ['ek with bit 255 flipped', 'ek', flip255],
    ['ik with bit 255 flipped', 'ik', flip255],
    ['ek as p + 9', 'ek', (): Uint8Array => pPlus(9)],
  ] as const)('an establishment with %s is refused (INVALID_KEY) and spends nothing', (_, field, mutate) => {
    const { alice, bob } = managers();
    const [otk] = bob.generateOneTimePreKeys(1);
    const { establishment: e } = SecureChannel.createSender(alice, bob.getPublicBundle({ otkId: otk.keyId }));
    const forged = new ChannelEstablishment({
      initiatorIdentityKey: field === 'ik' ? mutate(e.initiatorIdentityKey) : e.initiatorIdentityKey,
      ephemeralPublicKey: field === 'ek' ? mutate(e.ephemeralPublicKey) : e.ephemeralPublicKey,
      usedOneTimeKeyId: e.usedOneTimeKeyId,
      signedPreKeyId: e.signedPreKeyId,
    });
    expectE2EError(() => SecureChannel.createReceiver(bob, forged), 'INVALID_KEY');
    expect(bob.oneTimePreKeyIds).toEqual([otk.keyId]);
    expect(() => SecureChannel.createReceiver(bob, e)).not.toThrow();
  });

  test('a replayed establishment without a one-time pre-key, ek bit 255 flipped, does not open a second channel', () => {
    const { alice, bob } = managers();
    const { channel, establishment: e } = SecureChannel.createSender(alice, bob.getPublicBundle());
    const bobCh = SecureChannel.createReceiver(bob, e);
    expect(bobCh.receive(channel.send(utf8('hi')))).toEqual(utf8('hi'));
    const replay = { ...e, ephemeralPublicKey: flip255(e.ephemeralPublicKey) };
    // Same DH outputs as the original: without the check this would be a fresh channel to the same secret.
    expectE2EError(() => SecureChannel.createReceiver(bob, replay), 'INVALID_KEY');
  });

  test('respond itself refuses both forms', () => {
    const { bob } = managers();
    const ik = x25519KeyPair().publicKey;
    const ek = x25519KeyPair().publicKey;
    expectE2EError(() => bob.respond({ peerIdentityKey: ik, ephemeralPublicKey: flip255(ek) }), 'INVALID_KEY');
    expectE2EError(() => bob.respond({ peerIdentityKey: pPlus(5), ephemeralPublicKey: ek }), 'INVALID_KEY');
    expect(() => bob.respond({ peerIdentityKey: ik, ephemeralPublicKey: ek })).not.toThrow();
  });
});

describe('X3DH initiate', () => {
  test('a bundle whose signed pre-key has bit 255 flipped fails the signature, even once the genuine one is cached', () => {
    const { alice, bob } = managers();
    const bundle = bob.getPublicBundle();
    alice.initiate(bundle); // caches (identity, spk, signature) as verified
    expectE2EError(() => alice.initiate({ ...bundle, signedPreKey: flip255(bundle.signedPreKey) }), 'BAD_SIGNATURE');
  });

  test('a bundle whose identity key has bit 255 flipped is an identity mismatch', () => {
    const { alice, bob } = managers();
    const bundle = bob.getPublicBundle();
    expectE2EError(() => alice.initiate({ ...bundle, identityKey: flip255(bundle.identityKey) }), 'IDENTITY_MISMATCH');
  });

  test('a bundle whose one-time pre-key is not canonical is refused (INVALID_KEY)', () => {
    const { alice, bob } = managers();
    const [otk] = bob.generateOneTimePreKeys(1);
    const bundle = bob.getPublicBundle({ otkId: otk.keyId });
    expectE2EError(() => alice.initiate({ ...bundle, oneTimePreKey: flip255(bundle.oneTimePreKey as Uint8Array) }), 'INVALID_KEY');
  });
});

describe('the ratchet', () => {
  /**
   * What a peer who knows the session's secrets could send: a header whose ratchet key is `key`
   * (any bytes), sealed as a new chain from Bob's current root key, so it authenticates if Bob
   * ever takes it for a new DH ratchet step.
   */
  function forgeNewChain(bob: DoubleRatchet, key: Uint8Array, dhSecret: Uint8Array, ad: Uint8Array): Uint8Array {
    const { chainKey, rootKey } = kdfRootKey(bob.state.rootKey, dhSecret);
    const plaintext = utf8('forged');
    const env = new Uint8Array(4 + 40 + 12 + plaintext.length + 16);
    writeU32BE(env, 0, 40);
    env.set(key, 4);
    writeU32BE(env, 36, 0);
    writeU32BE(env, 40, 0);
    env.set(randomBytes(12), 44);
    sealMessage(chainKey, env, plaintext, ad);
    rootKey.fill(0);
    return env;
  }

  test("the peer's current ratchet key with bit 255 flipped never starts a new chain (DECRYPT_FAILED, state unchanged)", () => {
    const { alice, bob } = ratchetPair();
    const aliceKey = Uint8Array.from(alice.state.dhSelf.publicKey);
    const alicePriv = Uint8Array.from(alice.state.dhSelf.privateKey);
    bob.decrypt(alice.encrypt(utf8('1')));
    alice.decrypt(bob.encrypt(utf8('2')));
    // Bob's current remote key is Alice's first key; a new chain under its bit-255 twin would authenticate.
    const bobPub = bob.state.dhSelf.publicKey;
    const forged = forgeNewChain(bob, flip255(aliceKey), x25519(alicePriv, bobPub), new Uint8Array(0));
    const before = toHex(bob.state.toBytes());
    expectE2EError(() => bob.decrypt(forged), 'DECRYPT_FAILED');
    expect(toHex(bob.state.toBytes())).toBe(before);
    // An exact replay of an old message is still a duplicate, and the session goes on.
    const m3 = alice.encrypt(utf8('3'));
    expect(bob.decrypt(m3)).toEqual(utf8('3'));
    expectE2EError(() => bob.decrypt(m3), 'DUPLICATE_MESSAGE');
  });

  test('a ratchet key encoded as p + k (≥ p) never starts a chain either', () => {
    const { alice, bob } = ratchetPair();
    bob.decrypt(alice.encrypt(utf8('1')));
    const key = pPlus(9); // the curve point u = 9, written ≥ p
    const canonical = canonicalX25519PublicKey(key);
    expect(toHex(canonical)).toBe(toHex(fromHex('09'.padEnd(64, '0'))));
    const forged = forgeNewChain(bob, key, x25519(bob.state.dhSelf.privateKey, canonical), new Uint8Array(0));
    const before = toHex(bob.state.toBytes());
    expectE2EError(() => bob.decrypt(forged), 'DECRYPT_FAILED');
    expect(toHex(bob.state.toBytes())).toBe(before);
    expect(bob.decrypt(alice.encrypt(utf8('2')))).toEqual(utf8('2'));
  });

  test('initSender / initReceiver refuse a non-canonical ratchet public key (INVALID_KEY)', () => {
    const spk = x25519KeyPair();
    const sharedSecret = randomBytes(32);
    expectE2EError(() => DoubleRatchet.initSender({ sharedSecret, remoteDhPublic: flip255(spk.publicKey) }), 'INVALID_KEY');
    expectE2EError(() => DoubleRatchet.initSender({ sharedSecret, remoteDhPublic: pPlus(9) }), 'INVALID_KEY');
    expectE2EError(
      () => DoubleRatchet.initReceiver({ sharedSecret, dhKeyPair: { privateKey: spk.privateKey, publicKey: flip255(spk.publicKey) } }),
      'INVALID_KEY',
    );
  });

  test('restored states refuse non-canonical remembered keys (dict and bytes: MALFORMED_MESSAGE)', () => {
    const { alice, bob } = ratchetPair();
    bob.decrypt(alice.encrypt(utf8('1')));
    alice.decrypt(bob.encrypt(utf8('2')));
    const d = bob.state.toDict();
    const remote = fromHex(d.dh_remote_public as string);
    expectE2EError(() => RatchetState.fromDict({ ...d, dh_remote_public: toHex(flip255(remote)) }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, skipped_keys: { [`${toHex(pPlus(3))}:0`]: '00'.repeat(32) } }), 'MALFORMED_MESSAGE');
    const bytes = bob.state.toBytes();
    const at = 5 + 64; // flags, DHs pair, then DHr
    expect(toHex(bytes.subarray(at, at + 32))).toBe(toHex(remote));
    const bad = Uint8Array.from(bytes);
    bad[at + 31] ^= 0x80;
    expectE2EError(() => RatchetState.fromBytes(bad), 'MALFORMED_MESSAGE');
    // Alice remembers Bob's first key as retired after a second step: flip it in her bytes.
    bob.decrypt(alice.encrypt(utf8('3')));
    alice.decrypt(bob.encrypt(utf8('4')));
    const ab = alice.state.toBytes();
    expect(alice.state.retiredRemoteKeys.length).toBeGreaterThan(0);
    const retiredAt = toHex(ab).indexOf(alice.state.retiredRemoteKeys[0]) / 2;
    const badRetired = Uint8Array.from(ab);
    badRetired[retiredAt + 31] ^= 0x80;
    expectE2EError(() => RatchetState.fromBytes(badRetired), 'MALFORMED_MESSAGE');
    expect(() => RatchetState.fromBytes(ab)).not.toThrow();
  });
});
