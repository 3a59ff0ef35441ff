/**
 * Peer: PeculiarVentures' `2key-ratchet` (TypeScript on WebCrypto; here Node's `globalThis.crypto`).
 * X3DH and the Double Ratchet on P-256 (ECDH + ECDSA identities), AES-256-CBC + HMAC-SHA256 messages
 * signed per message, protobuf wire format; every call is asynchronous.
 */
import type * as TwoKeyModule from '2key-ratchet';
import { Row } from '../harness';
import { OURS } from '../ours';

type TwoKey = typeof TwoKeyModule;
type Ratchet = TwoKeyModule.AsymmetricRatchet;
type Identity = TwoKeyModule.Identity;

let loaded: TwoKey | null = null;

/** Loads the peer and gives it Node's WebCrypto (throws when it does not load on this platform). */
export async function loadTwoKey(): Promise<TwoKey> {
  if (loaded === null) {
    const R = await import('2key-ratchet');
    R.setEngine('node', globalThis.crypto);
    loaded = R;
  }
  return loaded;
}

/** The serialized bundle of `id` with one-time pre-key `otk` (signed pre-key 0). */
async function bundleBytes(R: TwoKey, id: Identity, otk: number): Promise<ArrayBuffer> {
  const b = new R.PreKeyBundleProtocol();
  await b.identity.fill(id);
  b.registrationId = id.id;
  b.preKey.id = otk;
  b.preKey.key = id.preKeys[otk].publicKey;
  b.preKeySigned.id = 0;
  b.preKeySigned.key = id.signedPreKeys[0].publicKey;
  await b.preKeySigned.sign(id.signingKey.privateKey);
  return b.exportProto();
}

interface Pair {
  alice: Ratchet;
  bob: Ratchet;
}

function view(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Alice sets up from Bob's bundle, sends the first message; Bob sets up from it and decrypts. */
async function setUp(R: TwoKey, alice: Identity, bob: Identity, bundle: ArrayBuffer, pt: ArrayBuffer): Promise<Pair> {
  const a = await R.AsymmetricRatchet.create(alice, await R.PreKeyBundleProtocol.importProto(bundle));
  const first = await (await a.encrypt(pt)).exportProto();
  const msg = await R.PreKeyMessageProtocol.importProto(first);
  const b = await R.AsymmetricRatchet.create(bob, msg);
  await b.decrypt(msg.signedMessage);
  return { alice: a, bob: b };
}

async function deliver(R: TwoKey, from: Ratchet, to: Ratchet, pt: ArrayBuffer): Promise<ArrayBuffer> {
  const wire = await (await from.encrypt(pt)).exportProto();
  return to.decrypt(await R.MessageSignedProtocol.importProto(wire));
}

/** The 2key-ratchet rows: set-up + first message, send + receive 64 B and 1 KiB, ping-pong. */
export async function twoKeyRows(): Promise<Row[]> {
  const R = await loadTwoKey();
  const g = '2key-ratchet';
  const alice = await R.Identity.create(1, 1, 1);
  const bob = await R.Identity.create(2, 1, 1);
  // 2key-ratchet never deletes a used one-time pre-key, so one bundle serves every set-up.
  const bundle = await bundleBytes(R, bob, 0);
  const pt64 = view(new Uint8Array(64).fill(7));
  const established = async (): Promise<Pair> => {
    const p = await setUp(R, alice, bob, bundle, view(new Uint8Array(8)));
    await deliver(R, p.bob, p.alice, view(new Uint8Array(8)));
    return p;
  };
  const rows: Row[] = [
    {
      group: g,
      id: 'twokey.setup',
      name: 'session set-up + first 64 B message, both sides',
      versus: OURS.setup,
      async: true,
      op: () => setUp(R, alice, bob, bundle, pt64),
    },
  ];
  for (const n of [64, 1024]) {
    const pt = view(new Uint8Array(n).fill(7));
    let p: Pair;
    rows.push({
      group: g,
      id: `twokey.message.${n}`,
      name: `send + receive ${n === 64 ? '64 B' : '1 KiB'}, one way`,
      versus: OURS.message(n),
      async: true,
      before: async () => {
        p = await established();
      },
      op: () => deliver(R, p.alice, p.bob, pt),
    });
  }
  let pp: Pair;
  rows.push({
    group: g,
    id: 'twokey.roundtrip',
    name: 'ping-pong round trip 64 B',
    versus: OURS.roundTrip,
    async: true,
    before: async () => {
      pp = await established();
    },
    op: async () => {
      await deliver(R, pp.alice, pp.bob, pt64);
      return deliver(R, pp.bob, pp.alice, pt64);
    },
  });
  return rows;
}
