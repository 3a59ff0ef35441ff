/**
 * Writes the known-answer files of our own saved and wire forms (`spec/vectors/own/*.json`): key
 * manager (JSON state and "AMK" bytes), channel ("AMC" bytes) and establishment (binary and JSON).
 * Inputs are fixed, so running it again gives the same files; the answers are whatever the code
 * gives now — run it only to add cases, and review any change in the answers as a format change.
 * Usage: npx tsx scripts/vectors/own-formats.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { ed25519KeyPairFromSeed, ed25519Sign, fromHex, toHex, x25519PublicKey } from '../../lib/crypto';
import { KeyManagerState, X3DHKeyManager } from '../../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { RatchetState, RatchetStateDict } from '../../lib/ratchet/state';

const OUT = join(__dirname, '..', '..', 'spec', 'vectors', 'own');

/** 32 bytes of `b`, `b + 1`, …: a fixed, readable secret. */
function seed(b: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => (b + i) & 0xff);
}

/** The error code `f` throws, or a failure of the generator if it throws none or a foreign error. */
function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof E2EError) return e.code;
    throw e;
  }
  throw new Error('expected an error');
}

function managerState(
  id: number,
  spks: { keyId: number; seed: number; createdAt: number }[],
  current: number | null,
  otks: { keyId: number; seed: number }[],
  nextSpk: number,
  nextOtk: number,
): KeyManagerState {
  const pair = ed25519KeyPairFromSeed(seed(id));
  return {
    version: 1,
    identitySecretKey: toHex(pair.secretKey),
    signedPreKeys: spks.map((s) => ({
      keyId: s.keyId,
      privateKey: toHex(seed(s.seed)),
      signature: toHex(ed25519Sign(pair.secretKey, x25519PublicKey(seed(s.seed)))),
      createdAt: s.createdAt,
    })),
    currentSignedPreKeyId: current,
    oneTimePreKeys: otks.map((o) => ({ keyId: o.keyId, privateKey: toHex(seed(o.seed)) })),
    nextSignedPreKeyId: nextSpk,
    nextOneTimePreKeyId: nextOtk,
  };
}

function keyManagerVectors(): object {
  const states: [string, KeyManagerState][] = [
    ['identity only', managerState(1, [], null, [], 0, 0)],
    ['one signed pre-key, current', managerState(2, [{ keyId: 0, seed: 40, createdAt: 1700000000000 }], 0, [], 1, 0)],
    [
      'rotated, one-time pre-keys with a gap',
      managerState(
        3,
        [
          { keyId: 0, seed: 50, createdAt: 1700000000000 },
          { keyId: 1, seed: 60, createdAt: 1700000086400.5 },
        ],
        1,
        [
          { keyId: 0, seed: 70 },
          { keyId: 2, seed: 80 },
          { keyId: 3, seed: 90 },
        ],
        2,
        4,
      ),
    ],
    [
      'largest ids, current not the newest',
      managerState(
        4,
        [
          { keyId: 0xfffffffe, seed: 100, createdAt: 0 },
          { keyId: 0xffffffff, seed: 110, createdAt: 1 },
        ],
        0xfffffffe,
        [{ keyId: 0xffffffff, seed: 120 }],
        0xffffffff,
        0xffffffff,
      ),
    ],
    [
      'signed pre-keys, none current',
      managerState(5, [{ keyId: 7, seed: 130, createdAt: 1234.25 }], null, [{ keyId: 9, seed: 140 }], 8, 10),
    ],
  ];
  const valid = states.map(([name, state]) => {
    const mgr = X3DHKeyManager.fromState(state);
    const again = X3DHKeyManager.fromBytes(mgr.toBytes());
    if (JSON.stringify(again.exportState()) !== JSON.stringify(state)) throw new Error(`${name}: bytes do not round-trip`);
    return { name, state, bytes: toHex(mgr.toBytes()) };
  });
  const base = fromHex(valid[2]!.bytes);
  const edit = (f: (b: Uint8Array) => Uint8Array): string => toHex(f(Uint8Array.from(base)));
  const at =
    (off: number, v: number) =>
    (b: Uint8Array): Uint8Array => {
      b[off] = v;
      return b;
    };
  const f64At =
    (off: number, v: number) =>
    (b: Uint8Array): Uint8Array => {
      new DataView(b.buffer).setFloat64(off, v);
      return b;
    };
  const u32At =
    (off: number, v: number) =>
    (b: Uint8Array): Uint8Array => {
      new DataView(b.buffer).setUint32(off, v);
      return b;
    };
  // Offsets in the "rotated" case: 84 has-current, 85 current id, 89 n, 93 first entry (140 each), 373 m.
  const badBytes: [string, string][] = [
    ['empty', ''],
    ['shorter than the fixed part', toHex(base.subarray(0, 96))],
    ['not "AMK"', edit(at(0, 0x42))],
    ['unknown version', edit(at(3, 0x02))],
    ["identity public half is not the seed's", edit(at(40, base[40]! ^ 1))],
    ['next signed pre-key id not an integer', edit(f64At(68, 1.5))],
    ['next one-time pre-key id above 2^32', edit(f64At(76, 2 ** 32 + 1))],
    ['next signed pre-key id NaN', edit(f64At(68, NaN))],
    ['has-current flag 2', edit(at(84, 2))],
    ['current signed pre-key missing', edit(u32At(85, 5))],
    ['more than 1024 signed pre-keys', edit(u32At(89, 1025))],
    ['signed pre-key count larger than the bytes', edit(u32At(89, 3))],
    ['signed pre-key time infinite', edit(f64At(93 + 132, Infinity))],
    ['signed pre-key signature does not verify', edit(at(93 + 68, base[93 + 68]! ^ 1))],
    ['one-time pre-key count larger than the bytes', edit(u32At(373, 4))],
    ['one-time pre-key count smaller than the bytes', edit(u32At(373, 2))],
    ['a trailing byte', toHex(Uint8Array.of(...base, 0))],
    ['one byte short', toHex(base.subarray(0, base.length - 1))],
  ];
  const validState = valid[2]!.state;
  const badStates: [string, unknown][] = [
    ['unknown version', { ...validState, version: 2 }],
    ['identity secret key too short', { ...validState, identitySecretKey: validState.identitySecretKey.slice(0, 126) }],
    ['identity secret key not hex', { ...validState, identitySecretKey: 7 }],
    ['signed pre-key id not a u32', { ...validState, signedPreKeys: [{ ...validState.signedPreKeys[0]!, keyId: -1 }] }],
    [
      'signed pre-key signature does not verify',
      {
        ...validState,
        signedPreKeys: [{ ...validState.signedPreKeys[0]!, signature: validState.signedPreKeys[1]!.signature }],
      },
    ],
    ['current signed pre-key missing', { ...validState, currentSignedPreKeyId: 9 }],
    ['next one-time pre-key id above 2^32 - 1', { ...validState, nextOneTimePreKeyId: 2 ** 32 }],
    [
      'one-time pre-key too long',
      { ...validState, oneTimePreKeys: [{ keyId: 0, privateKey: `${validState.oneTimePreKeys[0]!.privateKey}00` }] },
    ],
  ];
  return {
    description:
      'X3DHKeyManager saved forms: exportState/fromState (JSON, hex keys) and toBytes/fromBytes ("AMK" 0x01). ' +
      'Keys are 32-byte runs (seed(b)[i] = b + i); signatures are Ed25519 of the signed pre-key public key. ' +
      'Generated by scripts/vectors/own-formats.ts.',
    valid,
    invalidBytes: badBytes.map(([name, bytes]) => ({ name, bytes, error: codeOf(() => X3DHKeyManager.fromBytes(fromHex(bytes))) })),
    invalidStates: badStates.map(([name, state]) => ({
      name,
      state,
      error: codeOf(() => X3DHKeyManager.fromState(state as KeyManagerState)),
    })),
  };
}

function establishmentVectors(): object {
  const ik = x25519PublicKey(seed(150));
  const ek = x25519PublicKey(seed(160));
  const cases: [string, number | undefined, number | undefined][] = [
    ['no one-time pre-key, no signed pre-key id', undefined, undefined],
    ['one-time pre-key 0', 0, undefined],
    ['signed pre-key id only', undefined, 7],
    ['both, largest ids', 0xffffffff, 0xffffffff],
    ['both', 3, 1],
  ];
  const valid = cases.map(([name, otk, spk]) => {
    const e = new ChannelEstablishment({ initiatorIdentityKey: ik, ephemeralPublicKey: ek, usedOneTimeKeyId: otk, signedPreKeyId: spk });
    return {
      name,
      fields: {
        initiatorIdentityKey: toHex(ik),
        ephemeralPublicKey: toHex(ek),
        usedOneTimeKeyId: otk ?? null,
        signedPreKeyId: spk ?? null,
      },
      bytes: toHex(e.serialize()),
      json: JSON.stringify(e.toJSON()),
    };
  });
  const both = fromHex(valid[4]!.bytes);
  const bad: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['64 bytes', both.subarray(0, 64)],
    ['unknown flag', Uint8Array.of(...both.subarray(0, 64), 4)],
    ['one-time flag without its id', Uint8Array.of(...both.subarray(0, 64), 1)],
    ['both flags, one id', both.subarray(0, 69)],
    ['a trailing byte', Uint8Array.of(...both, 0)],
    ['no flags, a trailing id', Uint8Array.of(...both.subarray(0, 64), 0, 0, 0, 0, 1)],
  ];
  const j = JSON.parse(valid[4]!.json) as Record<string, unknown>;
  const badJson: [string, string][] = [
    ['not JSON', '{'],
    ['no ek', JSON.stringify({ ik: j.ik })],
    ['short ik', JSON.stringify({ ...j, ik: (j.ik as string).slice(4) })],
    ['otk not a u32', JSON.stringify({ ...j, otk: -1 })],
    ['spk a string', JSON.stringify({ ...j, spk: '1' })],
  ];
  return {
    description:
      'ChannelEstablishment: serialize/deserialize (ik(32) ‖ ek(32) ‖ flags ‖ [u32be otk] ‖ [u32be spk]) and ' +
      'toJSON/fromJSON ({ ik, ek, otk?, spk? }, standard base64). ik and ek are the X25519 public keys of seed(150), seed(160). ' +
      'Generated by scripts/vectors/own-formats.ts.',
    valid,
    invalidBytes: bad.map(([name, b]) => ({ name, bytes: toHex(b), error: codeOf(() => ChannelEstablishment.deserialize(b)) })),
    invalidJson: badJson.map(([name, json]) => ({ name, json, error: codeOf(() => ChannelEstablishment.fromJSON(json)) })),
  };
}

function ratchetDict(b: number, withSkipped: boolean): RatchetStateDict {
  return {
    dh_self_private: toHex(seed(b)),
    dh_self_public: toHex(x25519PublicKey(seed(b))),
    dh_remote_public: toHex(x25519PublicKey(seed(b + 1))),
    root_key: toHex(seed(b + 2)),
    chain_key_send: toHex(seed(b + 3)),
    chain_key_recv: withSkipped ? toHex(seed(b + 4)) : null,
    send_message_number: 2,
    recv_message_number: withSkipped ? 5 : 0,
    previous_send_chain_length: 1,
    skipped_keys: withSkipped ? { [`${toHex(x25519PublicKey(seed(b + 1)))}:3`]: toHex(seed(b + 5)) } : {},
  };
}

/** The "AMC" bytes of a channel, made from its parts by restoring them (no channel is opened). */
function channelBytes(messageCount: number, ad: Uint8Array, ratchet: Uint8Array): Uint8Array {
  const b = new Uint8Array(12 + ad.length + ratchet.length);
  b.set([0x41, 0x4d, 0x43, 0x01]);
  new DataView(b.buffer).setUint32(4, messageCount);
  new DataView(b.buffer).setUint32(8, ad.length);
  b.set(ad, 12);
  b.set(ratchet, 12 + ad.length);
  return SecureChannel.fromBytes(b).toBytes();
}

function channelVectors(): object {
  const cases: [string, number, Uint8Array, RatchetStateDict][] = [
    ['no associated data, no messages', 0, new Uint8Array(0), ratchetDict(170, false)],
    ['associated data, skipped keys', 3, Uint8Array.from({ length: 5 }, (_, i) => i), ratchetDict(180, true)],
    ['long associated data, largest count', 0xffffffff, Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff), ratchetDict(190, true)],
  ];
  const valid = cases.map(([name, messageCount, ad, dict]) => {
    const ratchet = RatchetState.fromDict(dict).toBytes();
    return { name, messageCount, associatedData: toHex(ad), ratchetState: dict, bytes: toHex(channelBytes(messageCount, ad, ratchet)) };
  });
  const base = fromHex(valid[1]!.bytes);
  const bad: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['11 bytes', base.subarray(0, 11)],
    ['not "AMC"', Uint8Array.of(0x41, 0x4d, 0x44, ...base.subarray(3))],
    ['unknown version', Uint8Array.of(0x41, 0x4d, 0x43, 0x02, ...base.subarray(4))],
    ['associated data longer than the bytes', Uint8Array.of(...base.subarray(0, 8), 0xff, 0xff, 0xff, 0xff, ...base.subarray(12))],
    ['no ratchet state', base.subarray(0, 17)],
    ['ratchet state one byte short', base.subarray(0, base.length - 1)],
    ['a trailing byte', Uint8Array.of(...base, 0)],
  ];
  return {
    description:
      'SecureChannel.toBytes/fromBytes: "AMC" 0x01 ‖ u32be(messageCount) ‖ u32be(AD length) ‖ AD ‖ ratchet state bytes ' +
      '(RatchetState.fromDict(ratchetState).toBytes(); its skipped keys carry the time they were made at). Generated by scripts/vectors/own-formats.ts.',
    valid,
    invalidBytes: bad.map(([name, b]) => ({ name, bytes: toHex(b), error: codeOf(() => SecureChannel.fromBytes(b)) })),
  };
}

async function main(): Promise<void> {
  await ready();
  const write = (file: string, v: object): void => writeFileSync(join(OUT, file), `${JSON.stringify(v, null, 2)}\n`);
  write('key-manager.json', keyManagerVectors());
  write('establishment.json', establishmentVectors());
  write('channel.json', channelVectors());
}

void main();
