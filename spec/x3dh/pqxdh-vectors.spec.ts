/**
 * Known answers of PQXDH (`spec/vectors/own/pqxdh.json`, written by scripts/vectors/pqxdh.ts with
 * every answer computed independently of lib/ where Node can): KEM pre-key signatures, the hybrid
 * KDF, two responder-side agreements and their establishments, the key manager's saved forms with
 * KEM pre-keys and the post-quantum channel state. Each vector is run through our code, and the
 * last test checks how many ran.
 */
import { hkdfSync } from 'node:crypto';
import { ready } from '../../lib/sodium';
import { ed25519KeyPairFromSeed, ed25519Sign, ed25519Verify, fromHex, toHex, x25519, x25519PublicKey } from '../../lib/crypto';
import { mlkem768EncapsulateDerandomized, mlkem768KeyPairFromSeed } from '../../lib/crypto/mlkem';
import { KeyManagerState, X3DHKeyManager, pqxdhKdf, x3dhKdf } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { ErrorCode } from '../../lib/errors';
import { expectE2EError } from '../helpers/expect-error';
import vectors from '../vectors/own/pqxdh.json';

beforeAll(() => ready());

let ran = 0;
const EXPECTED_COUNTS = { kemPreKeys: 2, kdf: 2, agreements: 2, keyManager: 1, channelState: 1, channelStateInvalid: 4 };

const bobState = vectors.keyManager[0].state as KeyManagerState;

describe('KEM pre-keys', () => {
  test.each(vectors.kemPreKeys)('$name', (v) => {
    const { publicKey, secretKey } = mlkem768KeyPairFromSeed(fromHex(v.mlkemSeed));
    secretKey.fill(0);
    expect(toHex(publicKey)).toBe(v.publicKey);
    expect(toHex(kemPreKeySignedBytes(publicKey))).toBe(v.signedBytes);
    const identity = ed25519KeyPairFromSeed(fromHex(v.identitySeed));
    expect(toHex(identity.publicKey)).toBe(v.identityPublicKey);
    expect(toHex(ed25519Sign(identity.secretKey, fromHex(v.signedBytes)))).toBe(v.signature);
    expect(ed25519Verify(fromHex(v.signature), fromHex(v.signedBytes), identity.publicKey)).toBe(true);
    // The manager restored from the saved state publishes exactly this key and signature.
    const bob = X3DHKeyManager.fromState(bobState);
    const b = bob.getPublicBundle({ kemId: v.keyId });
    expect([toHex(b.kemPreKey as Uint8Array), toHex(b.kemPreKeySignature as Uint8Array), b.kemPreKeyId]).toEqual([
      v.publicKey,
      v.signature,
      v.keyId,
    ]);
    expect(bob.getKemPreKey(v.keyId)?.lastResort).toBe(v.lastResort);
    ran++;
  });
});

describe('the hybrid KDF', () => {
  test.each(vectors.kdf)('$name', (v) => {
    const dh = v.dh.map(fromHex);
    const ss = fromHex(v.kemSharedSecret);
    expect(toHex(pqxdhKdf(dh, ss))).toBe(v.sk);
    expect(toHex(x3dhKdf(dh))).toBe(v.classicSk);
    // The file is self-consistent: its IKM is 0xFF³² ‖ DH… ‖ SS and its SK that IKM's HKDF (node:crypto).
    expect(v.ikm).toBe('ff'.repeat(32) + v.dh.join('') + v.kemSharedSecret);
    expect(Buffer.from(hkdfSync('sha256', fromHex(v.ikm), new Uint8Array(32), Buffer.from(v.info), 32)).toString('hex')).toBe(v.sk);
    ran++;
  });
});

describe('agreements', () => {
  test.each(vectors.agreements)('$name', (v) => {
    const alice = X3DHKeyManager.fromEd25519Keys(
      ed25519KeyPairFromSeed(fromHex(v.aliceIdentitySeed)).secretKey,
      ed25519KeyPairFromSeed(fromHex(v.aliceIdentitySeed)).publicKey,
    );
    expect(toHex(alice.identityKey.publicKey)).toBe(v.aliceIdentityKey);
    const bob = X3DHKeyManager.fromState(bobState);
    expect(toHex(bob.identityKey.publicKey)).toBe(v.bobIdentityKey);
    // The initiator's computations, with its random inputs (EK, m) fixed.
    const ek = fromHex(v.ephemeralPrivateKey);
    expect(toHex(x25519PublicKey(ek))).toBe(v.ephemeralPublicKey);
    const b = bob.getPublicBundle({ otkId: v.oneTimePreKeyId, kemId: v.kemPreKeyId });
    const dh = [
      x25519(alice.identityKey.privateKey, b.signedPreKey),
      x25519(ek, b.identityKey),
      x25519(ek, b.signedPreKey),
      ...(b.oneTimePreKey ? [x25519(ek, b.oneTimePreKey)] : []),
    ];
    expect(dh.map(toHex)).toEqual(v.dh);
    const enc = mlkem768EncapsulateDerandomized(b.kemPreKey as Uint8Array, fromHex(v.encapsulationSeed));
    expect([toHex(enc.ciphertext), toHex(enc.sharedSecret)]).toEqual([v.kemCiphertext, v.kemSharedSecret]);
    expect(toHex(pqxdhKdf(dh, enc.sharedSecret))).toBe(v.sk);
    // The establishment's two forms.
    const e = new ChannelEstablishment({
      initiatorIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: fromHex(v.ephemeralPublicKey),
      usedOneTimeKeyId: v.oneTimePreKeyId,
      signedPreKeyId: v.signedPreKeyId,
      kemPreKeyId: v.kemPreKeyId,
      kemCiphertext: enc.ciphertext,
    });
    expect(toHex(e.serialize())).toBe(v.establishment.bytes);
    expect(JSON.stringify(e.toJSON())).toBe(v.establishment.json);
    const parsed = ChannelEstablishment.deserialize(fromHex(v.establishment.bytes));
    expect(toHex(ChannelEstablishment.fromJSON(v.establishment.json).serialize())).toBe(v.establishment.bytes);
    expect([parsed.postQuantum, parsed.kemPreKeyId, toHex(parsed.kemCiphertext as Uint8Array)]).toEqual([
      true,
      v.kemPreKeyId,
      v.kemCiphertext,
    ]);
    // The responder, through the manager: the same SK and AD.
    const r = bob.respond({
      peerIdentityKey: parsed.initiatorIdentityKey,
      ephemeralPublicKey: parsed.ephemeralPublicKey,
      usedOneTimeKeyId: parsed.usedOneTimeKeyId,
      signedPreKeyId: parsed.signedPreKeyId,
      kemPreKeyId: parsed.kemPreKeyId,
      kemCiphertext: parsed.kemCiphertext,
    });
    expect([toHex(r.sharedSecret), toHex(r.associatedData), r.postQuantum]).toEqual([v.sk, v.associatedData, true]);
    // ...and through the channel, from a fresh copy of the saved state.
    const channel = SecureChannel.createReceiver(X3DHKeyManager.fromState(bobState), parsed);
    expect(channel.postQuantum).toBe(true);
    expect(toHex(channel.associatedData)).toBe(v.associatedData);
    ran++;
  });
});

describe('the key manager with KEM pre-keys', () => {
  test.each(vectors.keyManager)('$name', (v) => {
    const fromState = X3DHKeyManager.fromState(v.state as KeyManagerState);
    expect(toHex(fromState.toBytes())).toBe(v.bytes);
    expect(v.bytes.slice(0, 8)).toBe('414d4b02');
    const fromBytes = X3DHKeyManager.fromBytes(fromHex(v.bytes));
    expect(fromBytes.exportState()).toEqual(v.state);
    expect(toHex(fromBytes.toBytes())).toBe(v.bytes);
    expect(fromBytes.kemPreKeyIds).toEqual([3, 4]);
    expect(fromBytes.lastResortKemPreKey?.keyId).toBe(4);
    ran++;
  });
});

describe('the post-quantum channel state', () => {
  test.each(vectors.channelState.valid)('$name', (v) => {
    const c = SecureChannel.fromBytes(fromHex(v.bytes));
    expect(c.postQuantum).toBe(true);
    expect(toHex(c.toBytes())).toBe(v.bytes);
    // The same state without the flag byte is the classic form.
    expect(v.bytes.slice(10)).toBe(v.classicBytes.slice(8));
    const classic = SecureChannel.fromBytes(fromHex(v.classicBytes));
    expect([classic.postQuantum, toHex(classic.toBytes())]).toEqual([false, v.classicBytes]);
    ran++;
  });
  test.each(vectors.channelState.invalid)('$name', (v) => {
    expectE2EError(() => SecureChannel.fromBytes(fromHex(v.bytes)), v.error as ErrorCode);
    ran++;
  });
});

test('every vector ran', () => {
  const counts = {
    kemPreKeys: vectors.kemPreKeys.length,
    kdf: vectors.kdf.length,
    agreements: vectors.agreements.length,
    keyManager: vectors.keyManager.length,
    channelState: vectors.channelState.valid.length,
    channelStateInvalid: vectors.channelState.invalid.length,
  };
  expect(counts).toEqual(EXPECTED_COUNTS);
  expect(ran).toBe(Object.values(EXPECTED_COUNTS).reduce((a, b) => a + b, 0));
});
