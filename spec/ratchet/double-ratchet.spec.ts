import { ready } from '../../lib/sodium';
import { fromHex, randomBytes, toHex, utf8, fromUtf8, x25519KeyPair } from '../../lib/crypto';
import { DoubleRatchet, EncryptedMessage, RatchetState } from '../../lib/ratchet';
import { MAX_PLAINTEXT_BYTES } from '../../lib/limits';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

const AD = utf8('channel-ad');

function pair(opts: { maxSkip?: number; maxSkippedKeys?: number; skippedKeyMaxAgeMs?: number | null; now?: () => number } = {}) {
  const sk = randomBytes(32);
  const spk = x25519KeyPair();
  const alice = DoubleRatchet.initSender({ ...opts, sharedSecret: sk, remoteDhPublic: spk.publicKey });
  const bob = DoubleRatchet.initReceiver({ ...opts, sharedSecret: sk, dhKeyPair: spk });
  return { alice, bob };
}

/** The state's full serialized form, to compare before and after a failure. */
const snapshot = (r: DoubleRatchet): string => JSON.stringify(r.state.toDict()) + toHex(r.state.toBytes());

describe('DoubleRatchet basics', () => {
  test('round trips both ways, across several turn changes', () => {
    const { alice, bob } = pair();
    for (let turn = 0; turn < 4; turn++) {
      for (let i = 0; i < 3; i++) expect(fromUtf8(bob.decrypt(alice.encrypt(utf8(`a${turn}.${i}`), AD), AD))).toBe(`a${turn}.${i}`);
      for (let i = 0; i < 2; i++)
        expect(fromUtf8(alice.decrypt(bob.encrypt(utf8(`b${turn}.${i}`), AD).serialize(), AD))).toBe(`b${turn}.${i}`);
    }
    expect(alice.state.sendMessageNumber).toBe(0);
    expect(bob.state.sendMessageNumber).toBe(2);
    expect(alice.state.previousSendChainLength).toBe(3);
  });

  test('every message uses a fresh key: same plaintext, different ciphertexts; an empty plaintext works', () => {
    const { alice, bob } = pair();
    const a = alice.encrypt(utf8('same'), AD);
    const b = alice.encrypt(utf8('same'), AD);
    expect(toHex(a.ciphertext)).not.toBe(toHex(b.ciphertext));
    const e = alice.encrypt(new Uint8Array(0), AD);
    expect(e.serialize()).toHaveLength(44 + 12 + 16);
    expect(bob.decrypt(e, AD)).toHaveLength(0);
  });

  test('out of order within a chain and across a turn change', () => {
    const { alice, bob } = pair();
    const m = [0, 1, 2, 3].map((i) => alice.encrypt(utf8(`m${i}`), AD));
    expect(fromUtf8(bob.decrypt(m[2], AD))).toBe('m2');
    expect(bob.state.skippedKeys.size).toBe(2);
    const r = bob.encrypt(utf8('reply'), AD);
    expect(fromUtf8(alice.decrypt(r, AD))).toBe('reply');
    const n = alice.encrypt(utf8('next chain'), AD); // header PN = 4: m3 becomes a skipped key on the old chain
    expect(n.header.previousChainLength).toBe(4);
    expect(fromUtf8(bob.decrypt(n, AD))).toBe('next chain');
    expect(bob.state.skippedKeys.size).toBe(3);
    expect(fromUtf8(bob.decrypt(m[0], AD))).toBe('m0');
    expect(fromUtf8(bob.decrypt(m[3], AD))).toBe('m3');
    expect(fromUtf8(bob.decrypt(m[1], AD))).toBe('m1');
    expect(bob.state.skippedKeys.size).toBe(0);
  });

  test('a responder cannot send before it received (INVALID_STATE)', () => {
    const { bob } = pair();
    expectE2EError(() => bob.encrypt(utf8('x')), 'INVALID_STATE');
  });

  test('validates its parameters', () => {
    const spk = x25519KeyPair();
    expectE2EError(() => DoubleRatchet.initSender({ sharedSecret: new Uint8Array(31), remoteDhPublic: spk.publicKey }), 'INVALID_KEY');
    expectE2EError(() => DoubleRatchet.initSender({ sharedSecret: new Uint8Array(32), remoteDhPublic: new Uint8Array(32) }), 'INVALID_KEY');
    expectE2EError(
      () =>
        DoubleRatchet.initReceiver({
          sharedSecret: new Uint8Array(32),
          dhKeyPair: { privateKey: new Uint8Array(3), publicKey: spk.publicKey },
        }),
      'INVALID_KEY',
    );
    expectE2EError(() => DoubleRatchet.initSender(null as never), 'INVALID_ARGUMENT');
    expectE2EError(
      () => DoubleRatchet.initSender({ sharedSecret: new Uint8Array(32), remoteDhPublic: spk.publicKey, maxSkip: -1 }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(
      () => DoubleRatchet.initSender({ sharedSecret: new Uint8Array(32), remoteDhPublic: spk.publicKey, skippedKeyMaxAgeMs: 0 }),
      'INVALID_ARGUMENT',
    );
    expectE2EError(() => new DoubleRatchet({} as RatchetState), 'INVALID_ARGUMENT');
    const { alice } = pair();
    expectE2EError(() => alice.encrypt('text' as never), 'INVALID_ARGUMENT');
    expectE2EError(() => alice.encrypt(utf8('x'), 'ad' as never), 'INVALID_ARGUMENT');
    // The tuple form of the tutorial's dh_key_pair=(private, public) is accepted too.
    const r = DoubleRatchet.initReceiver({ sharedSecret: new Uint8Array(32), dhKeyPair: [spk.privateKey, spk.publicKey] });
    expect(toHex(r.state.dhSelf.publicKey)).toBe(toHex(spk.publicKey));
  });
});

describe('failure safety: a failed decrypt leaves the state exactly as it was', () => {
  function live() {
    const { alice, bob } = pair();
    bob.decrypt(alice.encrypt(utf8('1'), AD), AD);
    alice.decrypt(bob.encrypt(utf8('2'), AD), AD);
    const pending = alice.encrypt(utf8('3'), AD);
    alice.encrypt(utf8('skipped'), AD);
    bob.decrypt(alice.encrypt(utf8('5'), AD), AD); // bob now holds 2 skipped keys
    return { alice, bob, pending };
  }

  test.each([
    [
      'bad tag',
      (m: Uint8Array) => {
        m[m.length - 1] ^= 1;
      },
      'DECRYPT_FAILED',
    ],
    [
      'flipped ciphertext',
      (m: Uint8Array) => {
        m[60] ^= 0x80;
      },
      'DECRYPT_FAILED',
    ],
    [
      'flipped nonce',
      (m: Uint8Array) => {
        m[45] ^= 1;
      },
      'DECRYPT_FAILED',
    ],
    ['truncated', (m: Uint8Array) => m.subarray(0, 71), 'MALFORMED_MESSAGE'],
    [
      'bad length prefix',
      (m: Uint8Array) => {
        m[3] = 0x29;
      },
      'MALFORMED_MESSAGE',
    ],
    [
      'forged new ratchet key',
      (m: Uint8Array) => {
        m.set(x25519KeyPair().publicKey, 4);
      },
      'DECRYPT_FAILED',
    ],
    [
      'all-zero ratchet key',
      (m: Uint8Array) => {
        m.fill(0, 4, 36);
      },
      'MALFORMED_MESSAGE',
    ],
    [
      'low-order ratchet key',
      (m: Uint8Array) => {
        m.set(fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'), 4);
      },
      'MALFORMED_MESSAGE',
    ],
    [
      'gap above maxSkip',
      (m: Uint8Array) => {
        m[43] = 200;
      },
      'TOO_MANY_SKIPPED',
    ],
    [
      'huge counter',
      (m: Uint8Array) => {
        m.fill(0xff, 40, 44);
      },
      'MALFORMED_MESSAGE',
    ],
    [
      'forged N inside the window',
      (m: Uint8Array) => {
        m[43] = 50;
      },
      'DECRYPT_FAILED',
    ],
    [
      'forged PN with a new key',
      (m: Uint8Array) => {
        m.set(x25519KeyPair().publicKey, 4);
        m[39] = 90;
      },
      'DECRYPT_FAILED',
    ],
  ] as const)('%s → %s', (_name, mutate, code) => {
    const { bob, pending } = live();
    const bytes = Uint8Array.from(pending.serialize());
    const mutated = (mutate(bytes) as Uint8Array | undefined) ?? bytes;
    const before = snapshot(bob);
    expectE2EError(() => bob.decrypt(mutated, AD), code);
    expect(snapshot(bob)).toBe(before);
    expect(fromUtf8(bob.decrypt(pending, AD))).toBe('3');
  });

  test('wrong associated data → DECRYPT_FAILED, unchanged, also on a skipped key and a DH step', () => {
    const { alice, bob, pending } = live();
    for (const msg of [pending, alice.encrypt(utf8('6'), AD)]) {
      const before = snapshot(bob);
      expectE2EError(() => bob.decrypt(msg, utf8('other')), 'DECRYPT_FAILED');
      expect(snapshot(bob)).toBe(before);
    }
    bob.decrypt(alice.encrypt(utf8('7'), AD), AD);
    const dhStep = bob.encrypt(utf8('turn'), AD);
    const before = snapshot(alice);
    expectE2EError(() => alice.decrypt(dhStep, utf8('other')), 'DECRYPT_FAILED');
    expect(snapshot(alice)).toBe(before);
    expect(fromUtf8(alice.decrypt(dhStep, AD))).toBe('turn');
  });

  test('a skipped key is deleted only after its message authenticated', () => {
    const { bob, pending } = live();
    const forged = Uint8Array.from(pending.serialize());
    forged[forged.length - 5] ^= 4;
    expect(bob.state.skippedKeys.size).toBe(2);
    expectE2EError(() => bob.decrypt(forged, AD), 'DECRYPT_FAILED');
    expect(bob.state.skippedKeys.size).toBe(2);
    bob.decrypt(pending, AD);
    expect(bob.state.skippedKeys.size).toBe(1);
  });

  test('a non-message is MALFORMED_MESSAGE', () => {
    const { bob } = live();
    const before = snapshot(bob);
    expectE2EError(() => bob.decrypt('x' as never, AD), 'MALFORMED_MESSAGE');
    expectE2EError(() => bob.decrypt({} as never, AD), 'MALFORMED_MESSAGE');
    expect(snapshot(bob)).toBe(before);
  });
});

describe('replays', () => {
  test('a replay is DUPLICATE_MESSAGE and the session goes on: in-order, skipped, old-chain and first message', () => {
    const { alice, bob } = pair();
    const first = alice.encrypt(utf8('first'), AD);
    bob.decrypt(first, AD);
    expectE2EError(() => bob.decrypt(first, AD), 'DUPLICATE_MESSAGE');
    const a = alice.encrypt(utf8('a'), AD);
    const b = alice.encrypt(utf8('b'), AD);
    bob.decrypt(b, AD);
    bob.decrypt(a, AD); // from the skipped keys
    expectE2EError(() => bob.decrypt(a, AD), 'DUPLICATE_MESSAGE');
    expectE2EError(() => bob.decrypt(b.serialize(), AD), 'DUPLICATE_MESSAGE');
    alice.decrypt(bob.encrypt(utf8('turn'), AD), AD);
    bob.decrypt(alice.encrypt(utf8('new chain'), AD), AD);
    const before = snapshot(bob);
    expectE2EError(() => bob.decrypt(b, AD), 'DUPLICATE_MESSAGE'); // old chain
    expectE2EError(() => bob.decrypt(first, AD), 'DUPLICATE_MESSAGE');
    expect(snapshot(bob)).toBe(before);
    expect(fromUtf8(bob.decrypt(alice.encrypt(utf8('still fine'), AD), AD))).toBe('still fine');
  });
});

describe('limits', () => {
  test('maxSkip: a gap of exactly maxSkip is fine, one more is TOO_MANY_SKIPPED', () => {
    const { alice, bob } = pair({ maxSkip: 5 });
    const msgs = Array.from({ length: 7 }, (_, i) => alice.encrypt(utf8(String(i)), AD));
    expectE2EError(() => bob.decrypt(msgs[6], AD), 'TOO_MANY_SKIPPED');
    expect(fromUtf8(bob.decrypt(msgs[5], AD))).toBe('5');
    expect(bob.state.skippedKeys.size).toBe(5);
  });

  test('maxSkippedKeys: the oldest skipped keys are evicted (and then count as duplicates)', () => {
    const { alice, bob } = pair({ maxSkippedKeys: 3 });
    const msgs = Array.from({ length: 6 }, (_, i) => alice.encrypt(utf8(String(i)), AD));
    bob.decrypt(msgs[5], AD);
    expect(bob.state.skippedKeys.size).toBe(3);
    expectE2EError(() => bob.decrypt(msgs[0], AD), 'DUPLICATE_MESSAGE');
    expect(fromUtf8(bob.decrypt(msgs[2], AD))).toBe('2');
  });

  test('skipped keys expire by age', () => {
    let now = 1_000_000;
    const { alice, bob } = pair({ skippedKeyMaxAgeMs: 1000, now: () => now });
    const m0 = alice.encrypt(utf8('0'), AD);
    const m1 = alice.encrypt(utf8('1'), AD);
    const m2 = alice.encrypt(utf8('2'), AD);
    bob.decrypt(m2, AD);
    expect(bob.state.skippedKeys.size).toBe(2);
    now += 999;
    expect(fromUtf8(bob.decrypt(m0, AD))).toBe('0');
    now += 2;
    expectE2EError(() => bob.decrypt(m1, AD), 'DUPLICATE_MESSAGE');
    expect(bob.state.skippedKeys.size).toBe(1); // a failed decrypt does not even prune
    bob.decrypt(alice.encrypt(utf8('3'), AD), AD);
    expect(bob.state.skippedKeys.size).toBe(0); // pruned on the next success
  });

  test('plaintext above the maximum is refused before any work', () => {
    const { alice } = pair();
    const before = snapshot(alice);
    expectE2EError(() => alice.encrypt(new Uint8Array(MAX_PLAINTEXT_BYTES + 1), AD), 'MESSAGE_TOO_LARGE');
    expect(snapshot(alice)).toBe(before);
    expect(alice.encrypt(new Uint8Array(1024 * 1024), AD).serialize()).toHaveLength(1024 * 1024 + 72);
  });

  test('counters never wrap: a chain at 2^32 - 1 refuses to encrypt', () => {
    const { alice, bob } = pair();
    alice.state.sendMessageNumber = 0xfffffffe;
    const last = alice.encrypt(utf8('last'), AD);
    expect(last.header.messageNumber).toBe(0xfffffffe);
    expectE2EError(() => alice.encrypt(utf8('one too many'), AD), 'COUNTER_EXHAUSTED');
    // The receiver refuses a header counter of 2^32 - 1 outright.
    const forged = Uint8Array.from(last.serialize());
    forged.fill(0xff, 40, 44);
    expectE2EError(() => bob.decrypt(forged, AD), 'MALFORMED_MESSAGE');
  });
});

describe('state persistence', () => {
  test('toDict/fromDict and toBytes/fromBytes restore a working session with its limits and skipped keys', () => {
    const { alice, bob } = pair({ maxSkip: 7, maxSkippedKeys: 9 });
    const m = [0, 1, 2].map((i) => alice.encrypt(utf8(String(i)), AD));
    bob.decrypt(m[2], AD);
    const viaDict = new DoubleRatchet(RatchetState.fromDict(JSON.parse(JSON.stringify(bob.state.toDict({ includeLimits: true })))));
    const viaBytes = new DoubleRatchet(RatchetState.fromBytes(bob.state.toBytes()));
    for (const r of [viaDict, viaBytes]) {
      expect(r.state.limits.maxSkip).toBe(7);
      expect(r.state.limits.maxSkippedKeys).toBe(9);
      expect(fromUtf8(r.decrypt(m[0], AD))).toBe('0');
      expect(fromUtf8(r.decrypt(m[1], AD))).toBe('1');
      expectE2EError(() => r.decrypt(m[2], AD), 'DUPLICATE_MESSAGE');
    }
    expect(Object.keys(bob.state.toDict()).sort()).toEqual([
      'chain_key_recv',
      'chain_key_send',
      'dh_remote_public',
      'dh_self_private',
      'dh_self_public',
      'previous_send_chain_length',
      'recv_message_number',
      'root_key',
      'send_message_number',
      'skipped_keys',
    ]);
  });

  test('an idle session saves in well under 1 KiB', () => {
    const { alice, bob } = pair();
    bob.decrypt(alice.encrypt(utf8('x'), AD), AD);
    alice.decrypt(bob.encrypt(utf8('y'), AD), AD);
    expect(alice.state.toBytes().length).toBeLessThanOrEqual(300);
  });

  test('damaged states are MALFORMED_MESSAGE', () => {
    const { alice } = pair();
    const bytes = alice.state.toBytes();
    for (let cut = 0; cut < bytes.length; cut++) expectE2EError(() => RatchetState.fromBytes(bytes.subarray(0, cut)), 'MALFORMED_MESSAGE');
    const v2 = Uint8Array.from(bytes);
    v2[3] = 2;
    expectE2EError(() => RatchetState.fromBytes(v2), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromBytes(new Uint8Array([...bytes, 0])), 'MALFORMED_MESSAGE');
    const d = alice.state.toDict();
    expectE2EError(() => RatchetState.fromDict({ ...d, root_key: 'abc' }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, dh_self_public: d.root_key }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, send_message_number: -1 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, skipped_keys: { nope: '00' } }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, max_skip: -5 }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict(null as never), 'MALFORMED_MESSAGE');
  });

  test('wipe() zeroes the secrets and makes the ratchet unusable', () => {
    const { alice, bob } = pair();
    const m = [0, 1].map((i) => alice.encrypt(utf8(String(i)), AD));
    bob.decrypt(m[1], AD);
    const st = bob.state;
    const secrets = [
      st.dhSelf.privateKey,
      st.rootKey,
      st.chainKeySend!,
      st.chainKeyRecv!,
      ...[...st.skippedKeys.values()].map((k) => k.messageKey),
    ];
    bob.wipe();
    for (const s of secrets) expect(s.every((x) => x === 0)).toBe(true);
    expect(st.skippedKeys.size).toBe(0);
    expectE2EError(() => bob.decrypt(m[0], AD), 'CHANNEL_CLOSED');
    expectE2EError(() => bob.encrypt(utf8('x'), AD), 'CHANNEL_CLOSED');
  });

  test('an EncryptedMessage built from parts decrypts like the envelope', () => {
    const { alice, bob } = pair();
    const m = alice.encrypt(utf8('parts'), AD);
    const rebuilt = new EncryptedMessage(
      { ...m.header, dhPublicKey: Uint8Array.from(m.header.dhPublicKey) },
      Uint8Array.from(m.ciphertext),
    );
    expect(fromUtf8(bob.decrypt(rebuilt, AD))).toBe('parts');
  });
});
