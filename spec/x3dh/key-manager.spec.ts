import { ready } from '../../lib/sodium';
import { ed25519KeyPair, ed25519Sign, fromHex, toHex, x25519KeyPair, constantTimeEqual } from '../../lib/crypto';
import { PreKeyBundle, X3DHKeyManager, bundleFromJSON, bundleToJSON } from '../../lib/x3dh';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

function manager(): X3DHKeyManager {
  const id = ed25519KeyPair();
  return X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
}

function published(): { bob: X3DHKeyManager; bundle: PreKeyBundle } {
  const bob = manager();
  bob.generateSignedPreKey();
  bob.generateOneTimePreKeys(3);
  return { bob, bundle: bob.getPublicBundle({ otkId: 1 }) };
}

// Order-8 and other low-order X25519 points (libsodium's blacklist): the DH result is all zero.
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

describe('X3DHKeyManager.fromEd25519Keys', () => {
  test('derives the X25519 identity from the Ed25519 key', () => {
    const m = manager();
    expect(m.identityKey.publicKey).toHaveLength(32);
    expect(m.identityKey.privateKey).toHaveLength(32);
    expect(m.identityKeyEd).toHaveLength(32);
    expect(m.signedPreKey).toBeNull();
  });

  test("rejects wrong lengths and a public key that is not the secret key's", () => {
    const a = ed25519KeyPair();
    const b = ed25519KeyPair();
    expectE2EError(() => X3DHKeyManager.fromEd25519Keys(a.secretKey.subarray(0, 32), a.publicKey), 'INVALID_KEY');
    expectE2EError(() => X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey.subarray(1)), 'INVALID_KEY');
    expectE2EError(() => X3DHKeyManager.fromEd25519Keys(a.secretKey, b.publicKey), 'INVALID_KEY');
    // seed of a with the public half of b: the 64-byte key is internally inconsistent.
    const mixed = new Uint8Array([...a.secretKey.subarray(0, 32), ...b.publicKey]);
    expectE2EError(() => X3DHKeyManager.fromEd25519Keys(mixed, b.publicKey), 'INVALID_KEY');
    expectE2EError(() => X3DHKeyManager.fromEd25519Keys('x' as unknown as Uint8Array, a.publicKey), 'INVALID_KEY');
  });

  test("copies its inputs (wiping the caller's buffers changes nothing)", () => {
    const id = ed25519KeyPair();
    const m = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
    const pub = toHex(id.publicKey);
    id.secretKey.fill(0);
    id.publicKey.fill(0);
    expect(toHex(m.identityKeyEd)).toBe(pub);
    m.generateSignedPreKey();
    expect(m.getPublicBundle().signedPreKeySignature).toHaveLength(64);
  });
});

describe('pre-keys and bundles', () => {
  test('ids count up from 0; a bundle carries the asked one-time key', () => {
    const m = manager();
    expectE2EError(() => m.getPublicBundle(), 'INVALID_STATE');
    expect(m.generateSignedPreKey().keyId).toBe(0);
    expect(m.generateOneTimePreKeys(3).map((k) => k.keyId)).toEqual([0, 1, 2]);
    expect(m.oneTimePreKeyIds).toEqual([0, 1, 2]);
    const b = m.getPublicBundle({ otkId: 2 });
    expect(b.oneTimePreKeyId).toBe(2);
    expect(toHex(b.oneTimePreKey as Uint8Array)).toBe(toHex(m.getOneTimePreKey(2)!.keyPair.publicKey));
    const plain = m.getPublicBundle();
    expect(plain.oneTimePreKey).toBeUndefined();
    expect(plain.oneTimePreKeyId).toBeUndefined();
    expectE2EError(() => m.getPublicBundle({ otkId: 9 }), 'OTK_NOT_FOUND');
  });

  test('generateOneTimePreKeys validates n', () => {
    const m = manager();
    for (const n of [0, -1, 1.5, 10001, NaN]) expectE2EError(() => m.generateOneTimePreKeys(n), 'INVALID_ARGUMENT');
  });

  test('bundle JSON (registry form) round-trips and is strict', () => {
    const { bundle } = published();
    const j = bundleToJSON(bundle);
    expect(Object.keys(j).sort()).toEqual(['identity_key', 'identity_key_ed', 'one_time_pre_key', 'signed_pre_key']);
    expect(j.identity_key).not.toMatch(/[=+/]/);
    const back = bundleFromJSON(JSON.stringify(j));
    expect(bundleToJSON(back)).toEqual(j);
    expectE2EError(() => bundleFromJSON('{'), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, identity_key: 'AAAA' }), 'INVALID_KEY');
    expectE2EError(() => bundleFromJSON({ ...j, identity_key: '!!' }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, signed_pre_key: { ...j.signed_pre_key, key_id: -1 } }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, one_time_pre_key: { key_id: 1 } as never }), 'MALFORMED_MESSAGE');
  });
});

describe('initiate / respond', () => {
  test('both sides derive the same secret and AD, with and without a one-time key', () => {
    for (const otkId of [1, undefined]) {
      const alice = manager();
      const { bob } = published();
      const bundle = bob.getPublicBundle({ otkId });
      const a = alice.initiate(bundle);
      expect(a.usedOneTimeKeyId).toBe(otkId);
      expect(a.signedPreKeyId).toBe(0);
      const b = bob.respond({
        peerIdentityKey: alice.identityKey.publicKey,
        ephemeralPublicKey: a.ephemeralPublicKey,
        usedOneTimeKeyId: a.usedOneTimeKeyId,
      });
      expect(toHex(b.sharedSecret)).toBe(toHex(a.sharedSecret));
      expect(toHex(a.associatedData)).toBe(toHex(alice.identityKey.publicKey) + toHex(bob.identityKey.publicKey));
      expect(toHex(b.associatedData)).toBe(toHex(a.associatedData));
    }
  });

  test('a one-time key is consumed once: a second respond gives OTK_NOT_FOUND', () => {
    const alice = manager();
    const { bob, bundle } = published();
    const a = alice.initiate(bundle);
    const params = { peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: a.ephemeralPublicKey, usedOneTimeKeyId: 1 };
    bob.respond(params);
    expect(bob.oneTimePreKeyIds).toEqual([0, 2]);
    expectE2EError(() => bob.respond(params), 'OTK_NOT_FOUND');
    expectE2EError(() => bob.respond({ ...params, usedOneTimeKeyId: 77 }), 'OTK_NOT_FOUND');
    expectE2EError(() => bob.respond({ ...params, usedOneTimeKeyId: -1 }), 'OTK_NOT_FOUND');
  });

  test('a failed respond changes nothing (the one-time key survives)', () => {
    const alice = manager();
    const { bob, bundle } = published();
    const a = alice.initiate(bundle);
    const before = JSON.stringify(bob.exportState());
    for (const bad of LOW_ORDER) {
      expectE2EError(
        () => bob.respond({ peerIdentityKey: fromHex(bad), ephemeralPublicKey: a.ephemeralPublicKey, usedOneTimeKeyId: 1 }),
        'INVALID_KEY',
      );
      expectE2EError(
        () => bob.respond({ peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: fromHex(bad), usedOneTimeKeyId: 1 }),
        'INVALID_KEY',
      );
    }
    expectE2EError(
      () =>
        bob.respond({
          peerIdentityKey: alice.identityKey.publicKey,
          ephemeralPublicKey: a.ephemeralPublicKey,
          usedOneTimeKeyId: 1,
          signedPreKeyId: 5,
        }),
      'SPK_NOT_FOUND',
    );
    expectE2EError(() => bob.respond({ peerIdentityKey: new Uint8Array(31), ephemeralPublicKey: a.ephemeralPublicKey }), 'INVALID_KEY');
    expectE2EError(() => bob.respond(null as never), 'INVALID_ARGUMENT');
    expect(JSON.stringify(bob.exportState())).toBe(before);
    const b = bob.respond({ peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: a.ephemeralPublicKey, usedOneTimeKeyId: 1 });
    expect(toHex(b.sharedSecret)).toBe(toHex(a.sharedSecret));
  });

  test('initiate rejects a bad signature, a mismatched identity key and low-order keys', () => {
    const alice = manager();
    const { bundle } = published();
    const sig = Uint8Array.from(bundle.signedPreKeySignature);
    sig[0] ^= 1;
    expectE2EError(() => alice.initiate({ ...bundle, signedPreKeySignature: sig }), 'BAD_SIGNATURE');
    expectE2EError(() => alice.initiate({ ...bundle, signedPreKeySignature: new Uint8Array(63) }), 'BAD_SIGNATURE');
    // A valid Ed25519 key and signature, but the X25519 identity of somebody else.
    expectE2EError(() => alice.initiate({ ...bundle, identityKey: x25519KeyPair().publicKey }), 'IDENTITY_MISMATCH');
    expectE2EError(() => alice.initiate({ ...bundle, oneTimePreKey: fromHex(LOW_ORDER[2]) }), 'INVALID_KEY');
    expectE2EError(() => alice.initiate({ ...bundle, oneTimePreKeyId: undefined }), 'MALFORMED_MESSAGE');
    expectE2EError(() => alice.initiate({ ...bundle, signedPreKey: new Uint8Array(16) }), 'INVALID_KEY');
    expectE2EError(() => alice.initiate(null as never), 'MALFORMED_MESSAGE');
  });

  test('a low-order signed pre-key, even correctly signed, is refused', () => {
    const id = ed25519KeyPair();
    const bob = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
    bob.generateSignedPreKey();
    const good = bob.getPublicBundle();
    const spk = fromHex(LOW_ORDER[3]);
    const forged = { ...good, signedPreKey: spk, signedPreKeySignature: ed25519Sign(id.secretKey, spk) };
    expectE2EError(() => manager().initiate(forged), 'INVALID_KEY');
  });
});

describe('signed pre-key rotation', () => {
  test('an establishment made against the old key completes after rotation, until the key is retired', () => {
    const alice = manager();
    const bob = manager();
    bob.generateSignedPreKey();
    const oldBundle = bob.getPublicBundle();
    const a = alice.initiate(oldBundle);
    expect(bob.generateSignedPreKey().keyId).toBe(1);
    expect(bob.signedPreKeyIds).toEqual([0, 1]);
    const params = { peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: a.ephemeralPublicKey, signedPreKeyId: 0 };
    expect(constantTimeEqual(bob.respond(params).sharedSecret, a.sharedSecret)).toBe(true);
    // Without the id the current (new) key is used: a different secret.
    expect(constantTimeEqual(bob.respond({ ...params, signedPreKeyId: undefined }).sharedSecret, a.sharedSecret)).toBe(false);
    expectE2EError(() => bob.retireSignedPreKey(1), 'INVALID_STATE');
    const old = bob.getSignedPreKey(0)!;
    bob.retireSignedPreKey(0);
    expect(old.keyPair.privateKey.every((x) => x === 0)).toBe(true);
    expectE2EError(() => bob.respond(params), 'SPK_NOT_FOUND');
    expectE2EError(() => bob.retireSignedPreKey(0), 'SPK_NOT_FOUND');
  });
});

describe('exportState / fromState', () => {
  test('a restored manager responds to establishments made before the restart', () => {
    const alice = manager();
    const { bob, bundle } = published();
    const a = alice.initiate(bundle);
    const saved = JSON.parse(JSON.stringify(bob.exportState()));
    const bob2 = X3DHKeyManager.fromState(saved);
    expect(toHex(bob2.identityKeyEd)).toBe(toHex(bob.identityKeyEd));
    expect(bob2.oneTimePreKeyIds).toEqual([0, 1, 2]);
    const b = bob2.respond({ peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: a.ephemeralPublicKey, usedOneTimeKeyId: 1 });
    expect(toHex(b.sharedSecret)).toBe(toHex(a.sharedSecret));
    expect(bob2.generateOneTimePreKeys(1)[0].keyId).toBe(3);
  });

  test('rejects damaged states with typed errors', () => {
    const { bob } = published();
    const s = bob.exportState();
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, version: 2 as 1 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, identitySecretKey: 'zz' }), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, identitySecretKey: '00' }), 'INVALID_KEY');
    const badSig = { ...s.signedPreKeys[0], signature: '00'.repeat(64) };
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, signedPreKeys: [badSig] }), 'BAD_SIGNATURE');
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, currentSignedPreKeyId: 9 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, oneTimePreKeys: [{ keyId: -1, privateKey: '00' }] }), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromState(null as never), 'MALFORMED_MESSAGE');
  });

  test('wipe() zeroes every private key', () => {
    const { bob } = published();
    const spk = bob.signedPreKey!;
    const otk = bob.getOneTimePreKey(0)!;
    bob.wipe();
    expect(spk.keyPair.privateKey.every((x) => x === 0)).toBe(true);
    expect(otk.keyPair.privateKey.every((x) => x === 0)).toBe(true);
    expect(bob.identityKey.privateKey.every((x) => x === 0)).toBe(true);
    expect(bob.signedPreKey).toBeNull();
  });
});

describe('verification cache', () => {
  test('a bundle verified once is accepted again; any changed byte is verified afresh and refused', () => {
    const alice = manager();
    const { bundle } = published();
    alice.initiate(bundle);
    alice.initiate(bundle);
    for (const field of ['signedPreKeySignature', 'signedPreKey'] as const) {
      const bad = Uint8Array.from(bundle[field]);
      bad[5] ^= 0x10;
      expectE2EError(() => alice.initiate({ ...bundle, [field]: bad }), 'BAD_SIGNATURE');
    }
    const other = manager();
    expectE2EError(() => alice.initiate({ ...bundle, identityKeyEd: other.identityKeyEd }), 'BAD_SIGNATURE');
  });
});

describe('toBytes / fromBytes (binary private state)', () => {
  test('round-trips every key and counter; a restored manager responds and continues its ids', () => {
    const alice = manager();
    const { bob, bundle } = published();
    bob.generateSignedPreKey(); // two SPKs, current = 1
    const a = alice.initiate(bundle); // made against SPK 0
    const bytes = bob.toBytes();
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x41, 0x4d, 0x4b, 0x01]);
    const bob2 = X3DHKeyManager.fromBytes(bytes);
    expect(bob2.signedPreKeyIds).toEqual([0, 1]);
    expect(bob2.signedPreKey!.keyId).toBe(1);
    expect(bob2.oneTimePreKeyIds).toEqual([0, 1, 2]);
    expect(toHex(bob2.toBytes())).toBe(toHex(bytes));
    const b = bob2.respond({
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: a.ephemeralPublicKey,
      usedOneTimeKeyId: 1,
      signedPreKeyId: 0,
    });
    expect(toHex(b.sharedSecret)).toBe(toHex(a.sharedSecret));
    expect(bob2.generateOneTimePreKeys(1)[0].keyId).toBe(3);
    expect(bob2.generateSignedPreKey().keyId).toBe(2);
  });

  test('a manager with no signed pre-key round-trips too', () => {
    const m = manager();
    const back = X3DHKeyManager.fromBytes(m.toBytes());
    expect(back.signedPreKey).toBeNull();
    expect(toHex(back.identityKeyEd)).toBe(toHex(m.identityKeyEd));
  });

  test('damaged bytes are typed errors', () => {
    const { bob } = published();
    const bytes = bob.toBytes();
    for (const cut of [0, 3, 50, 96, 100, bytes.length - 1])
      expectE2EError(() => X3DHKeyManager.fromBytes(bytes.subarray(0, cut)), 'MALFORMED_MESSAGE');
    const v2 = Uint8Array.from(bytes);
    v2[3] = 2;
    expectE2EError(() => X3DHKeyManager.fromBytes(v2), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromBytes(new Uint8Array([...bytes, 0])), 'MALFORMED_MESSAGE');
    const badSig = Uint8Array.from(bytes);
    badSig[84 + 9 + 68] ^= 1; // first signed pre-key's signature
    expectE2EError(() => X3DHKeyManager.fromBytes(badSig), 'BAD_SIGNATURE');
    const badCur = Uint8Array.from(bytes);
    badCur[84 + 4] = 9; // current id → 9, not stored
    expectE2EError(() => X3DHKeyManager.fromBytes(badCur), 'MALFORMED_MESSAGE');
    expectE2EError(() => X3DHKeyManager.fromBytes('x' as never), 'MALFORMED_MESSAGE');
  });
});

describe('issue 11: getPublicBundle takes AGT-style arguments loudly', () => {
  test('getPublicBundle(0) is the bundle with one-time pre-key 0, like { otkId: 0 }', () => {
    const bob = manager();
    bob.generateSignedPreKey();
    bob.generateOneTimePreKeys(2);
    const b = bob.getPublicBundle(0);
    expect(b.oneTimePreKeyId).toBe(0);
    expect(b.oneTimePreKey).toEqual(bob.getOneTimePreKey(0)?.keyPair.publicKey);
    expect(bob.getPublicBundle({ otkId: 0 })).toEqual(b);
    expect(bob.getPublicBundle(1).oneTimePreKeyId).toBe(1);
  });

  test('no argument, undefined, null or { otkId: null } is the bundle without a one-time pre-key', () => {
    const bob = manager();
    bob.generateSignedPreKey();
    bob.generateOneTimePreKeys(1);
    for (const arg of [undefined, null, {}, { otkId: null }, { otkId: undefined }]) {
      expect(bob.getPublicBundle(arg as never).oneTimePreKey).toBeUndefined();
    }
    expect(bob.getPublicBundle().oneTimePreKey).toBeUndefined();
  });

  test('an id that is not ours is OTK_NOT_FOUND; anything unclear is INVALID_ARGUMENT', () => {
    const bob = manager();
    bob.generateSignedPreKey();
    bob.generateOneTimePreKeys(1);
    expectE2EError(() => bob.getPublicBundle(7), 'OTK_NOT_FOUND');
    expectE2EError(() => bob.getPublicBundle({ otkId: 7 }), 'OTK_NOT_FOUND');
    for (const bad of [-1, 1.5, NaN, 2 ** 32, '0', true, [0], { otk_id: 0 }, { otkId: '0' }, { otkId: 0, extra: 1 }]) {
      expectE2EError(() => bob.getPublicBundle(bad as never), 'INVALID_ARGUMENT');
    }
  });
});

describe('a batch of pre-keys is made whole or not at all', () => {
  beforeAll(() => ready());

  test('a restored counter behind its keys fails the batch up front: INVALID_STATE, state exactly as it was', () => {
    const m = manager();
    m.generateSignedPreKey();
    m.generateOneTimePreKeys(5); // ids 0..4
    m.consumeOneTimePreKey(2);
    // A hostile or stale saved state: the counter points at the free id 2, and 3 and 4 are live.
    const state = { ...m.exportState(), nextOneTimePreKeyId: 2 };
    const restored = X3DHKeyManager.fromState(state);
    const before = JSON.stringify(restored.exportState());
    expectE2EError(() => restored.generateOneTimePreKeys(3), 'INVALID_STATE');
    expect(JSON.stringify(restored.exportState())).toBe(before);
    expect(restored.oneTimePreKeyIds).toEqual([0, 1, 3, 4]);
    // One key fits in the gap: that batch is made.
    expect(restored.generateOneTimePreKeys(1).map((k) => k.keyId)).toEqual([2]);
  });

  test('ids that would run out within the batch: COUNTER_EXHAUSTED, nothing made', () => {
    const m = manager();
    m.generateSignedPreKey();
    const restored = X3DHKeyManager.fromState({ ...m.exportState(), nextOneTimePreKeyId: 0xffffffff - 1 });
    const before = JSON.stringify(restored.exportState());
    expectE2EError(() => restored.generateOneTimePreKeys(3), 'COUNTER_EXHAUSTED');
    expect(JSON.stringify(restored.exportState())).toBe(before);
    expect(restored.generateOneTimePreKeys(2).map((k) => k.keyId)).toEqual([0xffffffff - 1, 0xffffffff]);
    expectE2EError(() => restored.generateOneTimePreKeys(1), 'COUNTER_EXHAUSTED');
  });
});

test('KEM pre-keys too: ids that would run out within the batch give COUNTER_EXHAUSTED and nothing made', () => {
  const m = manager();
  m.generateSignedPreKey();
  m.generateLastResortKemPreKey(); // id 0
  const restored = X3DHKeyManager.fromState({ ...m.exportState(), nextKemPreKeyId: 0xffffffff - 1 });
  const before = JSON.stringify(restored.exportState());
  expectE2EError(() => restored.generateKemPreKeys(3), 'COUNTER_EXHAUSTED');
  expect(JSON.stringify(restored.exportState())).toBe(before);
  expect(restored.generateKemPreKeys(2).map((k) => k.keyId)).toEqual([0xffffffff - 1, 0xffffffff]);
});
