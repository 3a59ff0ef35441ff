/** KEM pre-keys in the key manager: making, publishing, consuming, retiring and saving them (PQXDH). */
import { ready } from '../../lib/sodium';
import { ed25519KeyPair, ed25519Verify, fromHex, memzero, toHex } from '../../lib/crypto';
import { MLKEM768_CIPHERTEXT_BYTES, mlkem768Encapsulate } from '../../lib/crypto/mlkem';
import { KeyManagerState, PreKeyBundle, X3DHKeyManager, bundleFromJSON, bundleToJSON, pqxdhKdf, x3dhKdf } from '../../lib/x3dh';
import { kemPreKeySignedBytes } from '../../lib/x3dh/kem-prekey';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

function manager(): X3DHKeyManager {
  const id = ed25519KeyPair();
  const m = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  m.generateSignedPreKey();
  return m;
}

/** What a responder's state is, to compare before and after a failed call. */
function snapshot(m: X3DHKeyManager): string {
  return toHex(m.toBytes());
}

describe('making KEM pre-keys', () => {
  test('generateKemPreKeys makes signed one-time keys with fresh ids; the last-resort key is current', () => {
    const m = manager();
    const made = m.generateKemPreKeys(3);
    expect(made.map((k) => k.keyId)).toEqual([0, 1, 2]);
    for (const k of made) {
      expect(k.publicKey).toHaveLength(1184);
      expect(k.signature).toHaveLength(64);
      expect(k.lastResort).toBe(false);
      expect(ed25519Verify(k.signature, kemPreKeySignedBytes(k.publicKey), m.identityKeyEd)).toBe(true);
      // The signature is over the typed encoding, never the raw key.
      expect(ed25519Verify(k.signature, k.publicKey, m.identityKeyEd)).toBe(false);
    }
    expect(new Set(made.map((k) => toHex(k.publicKey))).size).toBe(3);
    expect(m.lastResortKemPreKey).toBeNull();
    const lr = m.generateLastResortKemPreKey();
    expect(lr).toMatchObject({ keyId: 3, lastResort: true });
    expect(m.lastResortKemPreKey?.keyId).toBe(3);
    expect(m.kemPreKeyIds).toEqual([0, 1, 2, 3]);
    expect(m.getKemPreKey(1)?.lastResort).toBe(false);
    expect(m.getKemPreKey(9)).toBeUndefined();
  });

  test('the encoding a KEM signature covers is the context string, the type byte and the key', () => {
    const pk = new Uint8Array(1184).fill(7);
    const bytes = kemPreKeySignedBytes(pk);
    const context = new TextEncoder().encode('AgentMesh_PQXDH_KEM_PreKey_v1\u0000');
    expect(bytes).toHaveLength(context.length + 1 + 1184);
    expect(toHex(bytes.subarray(0, context.length))).toBe(toHex(context));
    expect(bytes[context.length]).toBe(0x01);
    expect(toHex(bytes.subarray(context.length + 1))).toBe(toHex(pk));
  });

  test('n outside [1, 1000] is INVALID_ARGUMENT and makes nothing', () => {
    const m = manager();
    for (const n of [0, -1, 1.5, 1001, NaN, '2' as unknown as number]) expectE2EError(() => m.generateKemPreKeys(n), 'INVALID_ARGUMENT');
    expect(m.kemPreKeyIds).toEqual([]);
  });

  test('a manager that never made a KEM key saves the classic bytes and state (version 1)', () => {
    const m = manager();
    m.generateOneTimePreKeys(2);
    expect(m.toBytes()[3]).toBe(0x01);
    expect(m.exportState().version).toBe(1);
    expect(Object.keys(m.exportState())).not.toContain('kemPreKeys');
    m.generateKemPreKeys(1);
    expect(m.toBytes()[3]).toBe(0x02);
    expect(m.exportState().version).toBe(2);
  });
});

describe('getPublicBundle with KEM pre-keys', () => {
  test('no kemId: the current last-resort key; kemId: that key; none made: a classic bundle', () => {
    const m = manager();
    expect(m.getPublicBundle().kemPreKey).toBeUndefined();
    const [one] = m.generateKemPreKeys(1);
    expect(m.getPublicBundle().kemPreKey).toBeUndefined(); // one-time keys are handed out by id only
    const lr = m.generateLastResortKemPreKey();
    const b = m.getPublicBundle();
    expect(b.kemPreKeyId).toBe(lr.keyId);
    expect(toHex(b.kemPreKey as Uint8Array)).toBe(toHex(lr.publicKey));
    expect(toHex(b.kemPreKeySignature as Uint8Array)).toBe(toHex(lr.signature));
    const withOne = m.getPublicBundle({ otkId: null, kemId: one.keyId });
    expect(withOne.kemPreKeyId).toBe(one.keyId);
    expect(m.getPublicBundle({ kemId: null }).kemPreKey).toBeUndefined(); // explicitly classic
    expect(m.getPublicBundle({ kemId: undefined }).kemPreKeyId).toBe(lr.keyId);
  });

  test('an unknown kemId is KEM_NOT_FOUND; a bad one or another option INVALID_ARGUMENT', () => {
    const m = manager();
    m.generateKemPreKeys(1);
    expectE2EError(() => m.getPublicBundle({ kemId: 5 }), 'KEM_NOT_FOUND');
    expectE2EError(() => m.getPublicBundle({ kemId: -1 }), 'INVALID_ARGUMENT');
    expectE2EError(() => m.getPublicBundle({ kemId: 2 ** 32 }), 'INVALID_ARGUMENT');
    expectE2EError(() => m.getPublicBundle({ kem: 0 } as unknown as { kemId: number }), 'INVALID_ARGUMENT');
  });

  test('bundle JSON carries kem_pre_key and reads back exactly; a classic bundle has no such field', () => {
    const m = manager();
    m.generateOneTimePreKeys(1);
    m.generateLastResortKemPreKey();
    const b = m.getPublicBundle({ otkId: 0 });
    const j = bundleToJSON(b);
    expect(Object.keys(j)).toEqual(['identity_key', 'identity_key_ed', 'signed_pre_key', 'one_time_pre_key', 'kem_pre_key']);
    expect(j.kem_pre_key?.public_key).toHaveLength(1579);
    expect(j.kem_pre_key?.signature).toHaveLength(86);
    const back = bundleFromJSON(JSON.stringify(j));
    expect(toHex(back.kemPreKey as Uint8Array)).toBe(toHex(b.kemPreKey as Uint8Array));
    expect(back.kemPreKeyId).toBe(b.kemPreKeyId);
    const classic = manager();
    expect(Object.keys(bundleToJSON(classic.getPublicBundle()))).toEqual(['identity_key', 'identity_key_ed', 'signed_pre_key']);
  });

  test('bundle JSON: a too-long KEM key or signature is refused undecoded, a short one by length', () => {
    const m = manager();
    m.generateLastResortKemPreKey();
    const j = bundleToJSON(m.getPublicBundle());
    const kem = j.kem_pre_key as { key_id: number; public_key: string; signature: string };
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: { ...kem, public_key: kem.public_key + 'A' } }), 'INVALID_KEY');
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: { ...kem, public_key: kem.public_key.slice(4) } }), 'INVALID_KEY');
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: { ...kem, signature: kem.signature + 'A' } }), 'BAD_SIGNATURE');
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: { ...kem, key_id: -1 } }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: { ...kem, public_key: 5 } as unknown as typeof kem }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, kem_pre_key: 'x' as unknown as typeof kem }), 'MALFORMED_MESSAGE');
  });

  test('a bundle with only some of the KEM fields is MALFORMED_MESSAGE at initiate', () => {
    const bob = manager();
    bob.generateLastResortKemPreKey();
    const alice = manager();
    const b = bob.getPublicBundle();
    const partial: PreKeyBundle[] = [
      { ...b, kemPreKeyId: undefined },
      { ...b, kemPreKeySignature: undefined },
      { ...b, kemPreKey: undefined },
    ];
    for (const p of partial) expectE2EError(() => alice.initiate(p), 'MALFORMED_MESSAGE');
    expectE2EError(() => alice.initiate({ ...b, kemPreKey: (b.kemPreKey as Uint8Array).subarray(1) }), 'INVALID_KEY');
    expectE2EError(() => alice.initiate({ ...b, kemPreKeySignature: new Uint8Array(63) }), 'BAD_SIGNATURE');
    expectE2EError(() => alice.initiate({ ...b, kemPreKeyId: 1.5 }), 'MALFORMED_MESSAGE');
  });
});

describe('initiate and respond (PQXDH)', () => {
  test('both sides derive the same hybrid secret, different from the classic one of the same DH values', () => {
    const bob = manager();
    bob.generateKemPreKeys(1);
    const alice = manager();
    const x = alice.initiate(bob.getPublicBundle({ kemId: 0 }));
    expect(x.kemPreKeyId).toBe(0);
    expect(x.kemCiphertext).toHaveLength(MLKEM768_CIPHERTEXT_BYTES);
    const r = bob.respond({
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: x.ephemeralPublicKey,
      kemPreKeyId: 0,
      kemCiphertext: x.kemCiphertext,
    });
    expect(r.postQuantum).toBe(true);
    expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
    expect(toHex(r.associatedData)).toBe(toHex(x.associatedData));
    // The one-time KEM key is gone once used.
    expect(bob.kemPreKeyIds).toEqual([]);
    expectE2EError(
      () =>
        bob.respond({
          peerIdentityKey: alice.identityKey.publicKey,
          ephemeralPublicKey: x.ephemeralPublicKey,
          kemPreKeyId: 0,
          kemCiphertext: x.kemCiphertext,
        }),
      'KEM_NOT_FOUND',
    );
  });

  test('pqxdhKdf differs from x3dhKdf on the same DH outputs and from itself with another SS', () => {
    const dhs = [1, 2, 3].map((i) => new Uint8Array(32).fill(i));
    const ss = new Uint8Array(32).fill(9);
    const pq = toHex(pqxdhKdf(dhs, ss));
    expect(pq).not.toBe(toHex(x3dhKdf(dhs)));
    expect(pq).not.toBe(toHex(pqxdhKdf(dhs, new Uint8Array(32).fill(8))));
    expectE2EError(() => pqxdhKdf(dhs, new Uint8Array(31)), 'INVALID_KEY');
    expectE2EError(() => pqxdhKdf(dhs.slice(0, 2), ss), 'INVALID_ARGUMENT');
  });

  test('respond refuses a bad KEM half and changes nothing', () => {
    const bob = manager();
    bob.generateKemPreKeys(1);
    bob.generateLastResortKemPreKey();
    const alice = manager();
    const x = alice.initiate(bob.getPublicBundle({ kemId: 0 }));
    const base = { peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: x.ephemeralPublicKey };
    const before = snapshot(bob);
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 0 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemCiphertext: x.kemCiphertext }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 0, kemCiphertext: new Uint8Array(1087) }), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 7, kemCiphertext: x.kemCiphertext }), 'KEM_NOT_FOUND');
    expectE2EError(() => bob.respond({ ...base, kemPreKeyId: 0, kemCiphertext: x.kemCiphertext, signedPreKeyId: 9 }), 'SPK_NOT_FOUND');
    expectE2EError(
      () =>
        bob.respond({
          ...base,
          kemPreKeyId: 0,
          kemCiphertext: x.kemCiphertext,
          heldKemPreKey: { keyId: 1, secretKey: new Uint8Array(2400) },
        }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(
      () =>
        bob.respond({
          ...base,
          kemPreKeyId: 0,
          kemCiphertext: x.kemCiphertext,
          heldKemPreKey: { keyId: 0, secretKey: new Uint8Array(10) },
        }),
      'INVALID_KEY',
    );
    expectE2EError(() => bob.respond({ ...base, heldKemPreKey: { keyId: 0, secretKey: new Uint8Array(2400) } }), 'INVALID_ARGUMENT');
    expect(snapshot(bob)).toBe(before);
  });

  test('a held KEM key answers without consuming; exportKemPreKeySecret is a copy', () => {
    const bob = manager();
    bob.generateKemPreKeys(1);
    const alice = manager();
    const x = alice.initiate(bob.getPublicBundle({ kemId: 0 }));
    const held = bob.exportKemPreKeySecret(0);
    expect(held?.secretKey).toHaveLength(2400);
    const r = bob.respond({
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: x.ephemeralPublicKey,
      kemPreKeyId: 0,
      kemCiphertext: x.kemCiphertext,
      heldKemPreKey: held,
    });
    expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
    expect(bob.kemPreKeyIds).toEqual([0]);
    memzero((held as { secretKey: Uint8Array }).secretKey);
    // Wiping the copy leaves the manager's key intact.
    const r2 = bob.respond({
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: x.ephemeralPublicKey,
      kemPreKeyId: 0,
      kemCiphertext: x.kemCiphertext,
    });
    expect(toHex(r2.sharedSecret)).toBe(toHex(x.sharedSecret));
    expect(bob.exportKemPreKeySecret(0)).toBeUndefined();
  });

  test('the last-resort KEM key answers again and again', () => {
    const bob = manager();
    bob.generateLastResortKemPreKey();
    const alice = manager();
    for (let i = 0; i < 3; i++) {
      const x = alice.initiate(bob.getPublicBundle());
      const r = bob.respond({
        peerIdentityKey: alice.identityKey.publicKey,
        ephemeralPublicKey: x.ephemeralPublicKey,
        kemPreKeyId: x.kemPreKeyId,
        kemCiphertext: x.kemCiphertext,
      });
      expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
    }
    expect(bob.kemPreKeyIds).toEqual([0]);
  });

  test('a KEM key failing the modulus check is INVALID_KEY at initiate (signature valid)', () => {
    const bob = manager();
    const alice = manager();
    // Every 12-bit coefficient 0xFFF ≥ q = 3329, with a genuine signature over it.
    const bad = new Uint8Array(1184).fill(0xff);
    const sig = fromHex(toHex(bobSign(bob, kemPreKeySignedBytes(bad))));
    expectE2EError(
      () => alice.initiate({ ...bob.getPublicBundle(), kemPreKey: bad, kemPreKeyId: 1, kemPreKeySignature: sig }),
      'INVALID_KEY',
    );
    expectE2EError(() => mlkem768Encapsulate(bad), 'INVALID_KEY');
  });
});

describe('consuming and retiring KEM pre-keys', () => {
  test('consumeKemPreKey deletes a one-time key once; a last-resort key is retired, never consumed', () => {
    const m = manager();
    m.generateKemPreKeys(1);
    const lr1 = m.generateLastResortKemPreKey();
    expect(m.consumeKemPreKey(0)).toBe(true);
    expect(m.consumeKemPreKey(0)).toBe(false);
    expectE2EError(() => m.consumeKemPreKey(-1), 'INVALID_ARGUMENT');
    expectE2EError(() => m.consumeKemPreKey(lr1.keyId), 'INVALID_STATE');
    expectE2EError(() => m.retireKemPreKey(lr1.keyId), 'INVALID_STATE'); // the current one
    const lr2 = m.generateLastResortKemPreKey();
    expect(m.getPublicBundle().kemPreKeyId).toBe(lr2.keyId);
    m.retireKemPreKey(lr1.keyId);
    expect(m.kemPreKeyIds).toEqual([lr2.keyId]);
    expectE2EError(() => m.retireKemPreKey(lr1.keyId), 'KEM_NOT_FOUND');
    m.generateKemPreKeys(1);
    expectE2EError(() => m.retireKemPreKey(3), 'KEM_NOT_FOUND'); // a one-time key is consumed, not retired
  });
});

describe('saving KEM pre-keys', () => {
  function full(): X3DHKeyManager {
    const m = manager();
    m.generateOneTimePreKeys(2);
    m.generateKemPreKeys(2);
    m.generateLastResortKemPreKey();
    m.generateLastResortKemPreKey();
    m.consumeKemPreKey(0);
    return m;
  }

  test('toBytes/fromBytes and exportState/fromState keep every KEM key, the current last resort and the counter', () => {
    const m = full();
    for (const r of [X3DHKeyManager.fromBytes(m.toBytes()), X3DHKeyManager.fromState(JSON.parse(JSON.stringify(m.exportState())))]) {
      expect(r.kemPreKeyIds).toEqual([1, 2, 3]);
      expect(r.lastResortKemPreKey?.keyId).toBe(3);
      expect(toHex((r.getKemPreKey(2) as { publicKey: Uint8Array }).publicKey)).toBe(
        toHex((m.getKemPreKey(2) as { publicKey: Uint8Array }).publicKey),
      );
      expect(r.generateKemPreKeys(1)[0].keyId).toBe(4);
      expect(toHex(r.toBytes().subarray(0, 4))).toBe('414d4b02');
    }
    expect(toHex(X3DHKeyManager.fromBytes(m.toBytes()).toBytes())).toBe(toHex(m.toBytes()));
  });

  test('a restored manager answers an establishment made before the restart', () => {
    const bob = full();
    const alice = manager();
    const x = alice.initiate(bob.getPublicBundle({ kemId: 1 }));
    const restored = X3DHKeyManager.fromBytes(bob.toBytes());
    const r = restored.respond({
      peerIdentityKey: alice.identityKey.publicKey,
      ephemeralPublicKey: x.ephemeralPublicKey,
      kemPreKeyId: 1,
      kemCiphertext: x.kemCiphertext,
    });
    expect(toHex(r.sharedSecret)).toBe(toHex(x.sharedSecret));
  });

  test('binary v2: truncation, trailing bytes, a bad count, flag or current id are MALFORMED_MESSAGE', () => {
    const bytes = full().toBytes();
    const at = (f: (b: Uint8Array) => void): Uint8Array => {
      const c = Uint8Array.from(bytes);
      f(c);
      return c;
    };
    const kemCountAt = bytes.length - 3 * 141 - 4;
    const cases: Uint8Array[] = [
      bytes.subarray(0, bytes.length - 1),
      Uint8Array.of(...bytes, 0),
      at((b) => (b[kemCountAt + 3] = 4)), // count says 4, three follow
      at((b) => (b[kemCountAt + 4 + 4] = 2)), // the first KEM entry's last-resort flag
      at((b) => (b[kemCountAt - 5] = 2)), // has-last-resort
      at((b) => (b[kemCountAt - 6] = 1)), // next KEM id not an integer
      at((b) => (b[kemCountAt - 1] = 1)), // current last-resort id 1 is a one-time key
      at((b) => (b[3] = 3)), // version
    ];
    const messages = cases.map((c) => expectE2EError(() => X3DHKeyManager.fromBytes(c), 'MALFORMED_MESSAGE').message);
    expect(messages).toEqual([
      'bad key manager state: KEM pre-keys',
      'bad key manager state: KEM pre-keys',
      'bad key manager state: KEM pre-keys',
      'bad key manager state: KEM pre-key entry',
      'bad key manager state: KEM pre-keys',
      'bad key manager state: key id counters',
      'bad key manager state: current last-resort KEM pre-key missing',
      'bad key manager state: unknown version 3',
    ]);
  });

  test('JSON state v2: a bad entry, a forged signature, a current id that is not a last-resort key', () => {
    const state = full().exportState();
    const kems = state.kemPreKeys as NonNullable<KeyManagerState['kemPreKeys']>;
    const variants: [KeyManagerState, string][] = [
      [{ ...state, version: 1 }, 'MALFORMED_MESSAGE'],
      [{ ...state, kemPreKeys: [{ ...kems[0], lastResort: 'no' as unknown as boolean }] }, 'MALFORMED_MESSAGE'],
      [{ ...state, kemPreKeys: [{ ...kems[0], seed: kems[0].seed.slice(2) }] }, 'INVALID_KEY'],
      [{ ...state, kemPreKeys: [{ ...kems[0], signature: kems[1].signature }, ...kems.slice(1)] }, 'BAD_SIGNATURE'],
      [{ ...state, currentLastResortKemPreKeyId: 1 }, 'MALFORMED_MESSAGE'],
      [{ ...state, nextKemPreKeyId: -1 }, 'MALFORMED_MESSAGE'],
    ];
    for (const [s, code] of variants) expectE2EError(() => X3DHKeyManager.fromState(s), code as 'MALFORMED_MESSAGE');
  });

  test('wipe clears the KEM keys', () => {
    const m = full();
    m.wipe();
    expect(m.kemPreKeyIds).toEqual([]);
    expect(m.lastResortKemPreKey).toBeNull();
  });
});

/** Signs with bob's identity through the manager (no secret exported). */
function bobSign(bob: X3DHKeyManager, message: Uint8Array): Uint8Array {
  return bob.signWithIdentityKey(message);
}

describe('saved forms refuse ids that would collide', () => {
  test('a duplicate id, or one not below its counter, is MALFORMED_MESSAGE in both forms', () => {
    const m = manager();
    m.generateOneTimePreKeys(2);
    m.generateKemPreKeys(2);
    const state = m.exportState();
    const kems = state.kemPreKeys as NonNullable<KeyManagerState['kemPreKeys']>;
    const bad: KeyManagerState[] = [
      { ...state, kemPreKeys: [kems[0], { ...kems[1], keyId: 0 }] },
      { ...state, oneTimePreKeys: [state.oneTimePreKeys[0], { ...state.oneTimePreKeys[1], keyId: 0 }] },
      { ...state, nextKemPreKeyId: 1 },
    ];
    const messages = bad.map((s) => expectE2EError(() => X3DHKeyManager.fromState(s), 'MALFORMED_MESSAGE').message);
    expect(messages).toEqual([
      'bad key manager state: duplicate KEM pre-key id',
      'bad key manager state: duplicate one-time pre-key id',
      'bad key manager state: a KEM pre-key id is not below its counter',
    ]);
    // The classic forms keep reading such states (pinned by older vectors), but the manager never overwrites a key.
    const behind = X3DHKeyManager.fromState({ ...state, nextOneTimePreKeyId: 1 });
    expectE2EError(() => behind.generateOneTimePreKeys(1), 'INVALID_STATE');
    expect(behind.oneTimePreKeyIds).toEqual([0, 1]);
    const bytes = m.toBytes();
    const kemStart = bytes.length - 2 * 141;
    const dup = Uint8Array.from(bytes);
    dup.set(bytes.subarray(kemStart, kemStart + 4), kemStart + 141); // the second KEM entry gets the first's id
    expect(expectE2EError(() => X3DHKeyManager.fromBytes(dup), 'MALFORMED_MESSAGE').message).toBe(
      'bad key manager state: duplicate KEM pre-key id',
    );
    const ahead = Uint8Array.from(bytes);
    new DataView(ahead.buffer).setFloat64(kemStart - 17, 1); // next KEM id 1, with keys 0 and 1 saved
    expect(expectE2EError(() => X3DHKeyManager.fromBytes(ahead), 'MALFORMED_MESSAGE').message).toBe(
      'bad key manager state: a KEM pre-key id is not below its counter',
    );
  });

  test('a manager never makes more KEM pre-keys than a state can hold', () => {
    const m = manager();
    for (let i = 0; i < 4; i++) m.generateKemPreKeys(1000);
    expectE2EError(() => m.generateKemPreKeys(97), 'INVALID_STATE');
    m.generateKemPreKeys(96);
    expectE2EError(() => m.generateLastResortKemPreKey(), 'INVALID_STATE');
    expect(m.kemPreKeyIds).toHaveLength(4096);
    expect(X3DHKeyManager.fromBytes(m.toBytes()).kemPreKeyIds).toHaveLength(4096);
  });
});
