/**
 * Writes ratchet-state.json, the known-answer file of the AMR ratchet state format (`RatchetState.toBytes`).
 * Run once with `npx tsx spec/vectors/own/ratchet-state.gen.ts` against the code whose bytes it pins; the
 * file is then the reference, and spec/ratchet/state-codec.spec.ts checks every later version against it.
 */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { ready } from '../../../lib/sodium';
import { sha256, toHex, utf8, x25519PublicKey } from '../../../lib/crypto';
import { E2EError } from '../../../lib/errors';
import { RatchetLimits, RatchetState } from '../../../lib/ratchet';
import { ratchetStateFields as fields } from '../../helpers/ratchet-state-fields';

/** 32 deterministic bytes named by `label`. */
const bytes32 = (label: string): Uint8Array => sha256(utf8(`ratchet-state-kat:${label}`));
/** A canonical X25519 public key derived from `label`. */
const publicKey = (label: string): Uint8Array => x25519PublicKey(bytes32(label));

interface CaseInput {
  name: string;
  remote: boolean;
  send: boolean;
  recv: boolean;
  ns: number;
  nr: number;
  pn: number;
  limits: Partial<RatchetLimits>;
  retired: string[];
  skipped: Array<{ chain: string; n: number; storedAt: number }>;
}

function build(c: CaseInput): RatchetState {
  const priv = bytes32(`${c.name}:self`);
  const s = new RatchetState({
    dhSelf: { privateKey: priv, publicKey: x25519PublicKey(priv) },
    dhRemote: c.remote ? publicKey(`${c.name}:remote`) : null,
    rootKey: bytes32(`${c.name}:root`),
    chainKeySend: c.send ? bytes32(`${c.name}:cks`) : null,
    chainKeyRecv: c.recv ? bytes32(`${c.name}:ckr`) : null,
    limits: c.limits,
  });
  s.sendMessageNumber = c.ns;
  s.recvMessageNumber = c.nr;
  s.previousSendChainLength = c.pn;
  for (const r of c.retired) s.retiredRemoteKeys.push(toHex(publicKey(r)));
  for (const k of c.skipped) {
    s.skippedKeys.add(
      { dhPublicKey: publicKey(k.chain), messageNumber: k.n, messageKey: bytes32(`${c.name}:mk:${k.chain}:${k.n}`), storedAt: k.storedAt },
      100_000,
    );
  }
  return s;
}

const cases: CaseInput[] = [
  {
    name: 'responder before its first message',
    remote: false,
    send: false,
    recv: false,
    ns: 0,
    nr: 0,
    pn: 0,
    limits: {},
    retired: [],
    skipped: [],
  },
  {
    name: 'initiator before any reply, limits without expiry',
    remote: true,
    send: true,
    recv: false,
    ns: 3,
    nr: 0,
    pn: 0,
    limits: { maxSkip: 0, maxSkippedKeys: 0, skippedKeyMaxAgeMs: null },
    retired: [],
    skipped: [],
  },
  {
    name: 'mid-session with retired and skipped keys',
    remote: true,
    send: true,
    recv: true,
    ns: 7,
    nr: 12,
    pn: 4,
    limits: { maxSkip: 50, maxSkippedKeys: 500, skippedKeyMaxAgeMs: 3_600_000.5 },
    retired: ['old-a', 'old-b'],
    skipped: [
      { chain: 'old-b', n: 2, storedAt: 1_700_000_000_000 },
      { chain: 'old-b', n: 5, storedAt: 1_700_000_000_001.25 },
      { chain: 'current', n: 9, storedAt: 1_700_000_100_000 },
    ],
  },
  {
    name: 'largest counters and limits',
    remote: true,
    send: false,
    recv: true,
    ns: 0xffffffff,
    nr: 0xfffffffe,
    pn: 0xffffffff,
    limits: { maxSkip: 100_000, maxSkippedKeys: 100_000, skippedKeyMaxAgeMs: Number.MAX_VALUE },
    retired: Array.from({ length: 32 }, (_, i) => `retired-${i}`),
    skipped: [{ chain: 'x', n: 0xffffffff, storedAt: -1 }],
  },
];

/** Byte edits of a valid state that `fromBytes` must refuse. */
function invalid(base: Uint8Array): Array<{ name: string; bytes: Uint8Array }> {
  const edit = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = Uint8Array.from(base);
    f(b);
    return b;
  };
  const withByte = (b: Uint8Array, extra: number): Uint8Array => Uint8Array.from([...b, extra]);
  // Offsets in the mid-session case: flags 4, keys from 5; dhRemote 69, root 101, CKs 133, CKr 165, counters 197.
  const counters = 197;
  const ageAt = counters + 20;
  const retiredAt = ageAt + 8;
  const skippedCountAt = retiredAt + 1 + 2 * 32;
  const firstSkipped = skippedCountAt + 4;
  const nonCanonical = (b: Uint8Array, at: number): void => {
    b.fill(0xff, at, at + 32); // 2^256 - 1: above p, bit 255 set
  };
  return [
    { name: 'empty', bytes: new Uint8Array(0) },
    { name: 'magic only', bytes: base.subarray(0, 4) },
    {
      name: 'wrong magic',
      bytes: edit((b) => {
        b[0] = 0x42;
      }),
    },
    {
      name: 'unknown version',
      bytes: edit((b) => {
        b[3] = 0x02;
      }),
    },
    {
      name: 'unknown flag',
      bytes: edit((b) => {
        b[4] |= 8;
      }),
    },
    { name: 'truncated by one byte', bytes: base.subarray(0, base.length - 1) },
    { name: 'truncated in the keys', bytes: base.subarray(0, 100) },
    { name: 'truncated in the counters', bytes: base.subarray(0, counters + 6) },
    { name: 'truncated before the retired count', bytes: base.subarray(0, retiredAt) },
    { name: 'truncated before the skipped count', bytes: base.subarray(0, skippedCountAt + 2) },
    { name: 'one trailing byte', bytes: withByte(base, 0) },
    { name: 'non-canonical remote key', bytes: edit((b) => nonCanonical(b, 69)) },
    { name: 'non-canonical retired key', bytes: edit((b) => nonCanonical(b, retiredAt + 1)) },
    { name: 'non-canonical skipped-key ratchet key', bytes: edit((b) => nonCanonical(b, firstSkipped)) },
    { name: 'maxSkip above the limit', bytes: edit((b) => new DataView(b.buffer).setUint32(counters + 12, 100_001)) },
    { name: 'maxSkippedKeys above the limit', bytes: edit((b) => new DataView(b.buffer).setUint32(counters + 16, 100_001)) },
    { name: 'negative expiry age', bytes: edit((b) => new DataView(b.buffer).setFloat64(ageAt, -5)) },
    { name: 'NaN expiry age', bytes: edit((b) => new DataView(b.buffer).setFloat64(ageAt, NaN)) },
    {
      name: '33 retired keys',
      bytes: edit((b) => {
        b[retiredAt] = 33;
      }),
    },
    {
      name: 'retired count above the bytes',
      bytes: edit((b) => {
        b[retiredAt] = 30;
      }),
    },
    { name: 'skipped count above the limit', bytes: edit((b) => new DataView(b.buffer).setUint32(skippedCountAt, 100_001)) },
    { name: 'skipped count above the bytes', bytes: edit((b) => new DataView(b.buffer).setUint32(skippedCountAt, 4)) },
    { name: 'NaN skipped-key time', bytes: edit((b) => new DataView(b.buffer).setFloat64(firstSkipped + 68, NaN)) },
    { name: 'infinite skipped-key time', bytes: edit((b) => new DataView(b.buffer).setFloat64(firstSkipped + 68, Infinity)) },
  ];
}

async function main(): Promise<void> {
  await ready();
  const valid = cases.map((c) => {
    const s = build(c);
    const hex = toHex(s.toBytes());
    return { name: c.name, hex, fields: fields(RatchetState.fromBytes(s.toBytes())) };
  });
  const mid = RatchetState.fromBytes(build(cases[2]).toBytes()).toBytes();
  const bad = invalid(mid).map(({ name, bytes }) => {
    try {
      RatchetState.fromBytes(bytes);
    } catch (e) {
      if (e instanceof E2EError) return { name, hex: toHex(bytes), code: e.code };
      throw e;
    }
    throw new Error(`${name}: accepted`);
  });
  const out = {
    description: 'Known answers of the AMR ratchet state format (RatchetState.toBytes / fromBytes), generated by ratchet-state.gen.ts.',
    valid,
    invalid: bad,
  };
  writeFileSync(join(__dirname, 'ratchet-state.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(`${valid.length} valid, ${bad.length} invalid`);
}

void main();
