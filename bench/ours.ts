/**
 * The library's own rows: `SecureChannel` over the wire form (every message goes through its
 * envelope bytes, every establishment through its serialized form), each compared to its floor.
 * The channels carry no caller AD, so each message's AEAD AD is the 104 bytes the floor's
 * primitives were measured with.
 */
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { ed25519KeyPair, randomBytes } from '../lib/crypto';
import { PreKeyBundle, X3DHKeyManager } from '../lib/x3dh';
import { BURST, FLOOR } from './floors';
import { Row } from './harness';
import { AEAD_SIZES, sizeLabel } from './primitives';

/** Ids of our rows that peers and the naive reference are compared to. */
export const OURS = {
  x3dh: 'ours.x3dh',
  setup: 'ours.setup',
  setupPq: 'ours.setup.pq',
  message: (n: number) => `ours.message.${n}`,
  roundTrip: 'ours.roundtrip',
  burst: 'ours.burst',
  saveRestore: 'ours.saverestore',
} as const;

/** A fresh key manager with a signed pre-key. */
export function newManager(): X3DHKeyManager {
  const id = ed25519KeyPair();
  const mgr = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  mgr.generateSignedPreKey();
  return mgr;
}

/** An established pair of channels; Bob has received once, so both can send. */
export function channelPair(): { alice: SecureChannel; bob: SecureChannel } {
  const aliceMgr = newManager();
  const bobMgr = newManager();
  const [otk] = bobMgr.generateOneTimePreKeys(1);
  const { channel: alice, establishment } = SecureChannel.createSender(aliceMgr, bobMgr.getPublicBundle({ otkId: otk.keyId }));
  const bob = SecureChannel.createReceiver(bobMgr, ChannelEstablishment.deserialize(establishment.serialize()));
  bob.receive(alice.send(randomBytes(16)).serialize());
  return { alice, bob };
}

/** A manager with a signed pre-key and a last-resort KEM pre-key: its bundles are post-quantum (PQXDH). */
export function newPqManager(): X3DHKeyManager {
  const mgr = newManager();
  mgr.generateLastResortKemPreKey();
  return mgr;
}

/** Bytes of an establishment as createSender makes it (one-time pre-key and signed pre-key ids): binary and JSON text. */
export interface EstablishmentSizes {
  readonly classic: { readonly binary: number; readonly json: number };
  readonly postQuantum: { readonly binary: number; readonly json: number };
  /** The first flight: the binary establishment plus the envelope of a 64 B first message. */
  readonly firstFlight64: { readonly classic: number; readonly postQuantum: number };
}

/** The sizes of a classic and a post-quantum establishment, measured on real ones. */
export function establishmentSizes(): EstablishmentSizes {
  const measure = (bob: X3DHKeyManager): { binary: number; json: number; flight: number } => {
    const [otk] = bob.generateOneTimePreKeys(1);
    const { channel, establishment } = SecureChannel.createSender(newManager(), bob.getPublicBundle({ otkId: otk.keyId }));
    const binary = establishment.serialize().length;
    return {
      binary,
      json: JSON.stringify(establishment.toJSON()).length,
      flight: binary + channel.send(new Uint8Array(64)).serialize().length,
    };
  };
  const c = measure(newManager());
  const pq = measure(newPqManager());
  return {
    classic: { binary: c.binary, json: c.json },
    postQuantum: { binary: pq.binary, json: pq.json },
    firstFlight64: { classic: c.flight, postQuantum: pq.flight },
  };
}

function establishmentRows(): Row[] {
  const g = 'ours';
  let alice: X3DHKeyManager;
  let bob: X3DHKeyManager;
  let pqBob: X3DHKeyManager;
  let bundles: PreKeyBundle[] = [];
  const before = (): void => {
    alice = newManager();
    bob = newManager();
  };
  // Each establishment uses its own one-time pre-key, made (untimed) before the batch.
  const prepare = (n: number): void => {
    bundles = bob.generateOneTimePreKeys(n).map((k) => bob.getPublicBundle({ otkId: k.keyId }));
  };
  const pt = randomBytes(64);
  return [
    {
      group: g,
      id: OURS.x3dh,
      name: 'X3DH establishment, both sides (createSender + createReceiver)',
      floor: FLOOR.x3dh,
      before,
      prepare,
      maxBatch: 512,
      op: (i) => {
        const { establishment } = SecureChannel.createSender(alice, bundles[i]);
        return SecureChannel.createReceiver(bob, ChannelEstablishment.deserialize(establishment.serialize()));
      },
    },
    {
      group: g,
      id: OURS.setup,
      name: 'session set-up + first 64 B message, both sides',
      floor: FLOOR.setup,
      before,
      prepare,
      maxBatch: 512,
      op: (i) => {
        const { channel, establishment } = SecureChannel.createSender(alice, bundles[i]);
        const wire = channel.send(pt).serialize();
        const receiver = SecureChannel.createReceiver(bob, ChannelEstablishment.deserialize(establishment.serialize()));
        return receiver.receive(wire);
      },
    },
    {
      // As libsignal's set-up row: a fresh one-time pre-key each time, one last-resort KEM pre-key for all.
      group: g,
      id: OURS.setupPq,
      name: 'PQ session set-up + first 64 B message, both sides',
      floor: FLOOR.setupPq,
      before: () => {
        alice = newManager();
        pqBob = newPqManager();
      },
      prepare: (n) => {
        bundles = pqBob.generateOneTimePreKeys(n).map((k) => pqBob.getPublicBundle({ otkId: k.keyId }));
      },
      maxBatch: 512,
      op: (i) => {
        const { channel, establishment } = SecureChannel.createSender(alice, bundles[i], undefined, { requirePostQuantum: true });
        const wire = channel.send(pt).serialize();
        const receiver = SecureChannel.createReceiver(pqBob, ChannelEstablishment.deserialize(establishment.serialize()), undefined, {
          requirePostQuantum: true,
        });
        return receiver.receive(wire);
      },
    },
  ];
}

function messageRows(): Row[] {
  const g = 'ours';
  const rows: Row[] = [];
  for (const n of AEAD_SIZES) {
    const pt = randomBytes(n);
    let pair: { alice: SecureChannel; bob: SecureChannel };
    rows.push({
      group: g,
      id: OURS.message(n),
      name: `SecureChannel send + receive ${sizeLabel(n)}, one way`,
      floor: FLOOR.message(n),
      before: () => {
        pair = channelPair();
      },
      op: () => pair.bob.receive(pair.alice.send(pt).serialize()),
    });
  }
  const pt = randomBytes(64);
  let pp: { alice: SecureChannel; bob: SecureChannel };
  rows.push({
    group: g,
    id: OURS.roundTrip,
    name: 'ping-pong round trip 64 B (A→B, B→A; DH step each way)',
    floor: FLOOR.roundTrip,
    before: () => {
      pp = channelPair();
    },
    op: () => {
      pp.bob.receive(pp.alice.send(pt).serialize());
      return pp.alice.receive(pp.bob.send(pt).serialize());
    },
  });
  let oo: { alice: SecureChannel; bob: SecureChannel };
  const burst: Uint8Array[] = new Array<Uint8Array>(BURST);
  rows.push({
    group: g,
    id: OURS.burst,
    name: `out of order: burst of ${BURST} × 64 B received in reverse`,
    floor: FLOOR.burst,
    before: () => {
      oo = channelPair();
    },
    op: () => {
      for (let k = 0; k < BURST; k++) burst[k] = oo.alice.send(pt).serialize();
      for (let k = BURST - 1; k >= 0; k--) oo.bob.receive(burst[k]);
      return burst;
    },
  });
  let idle: SecureChannel;
  rows.push({
    group: g,
    id: OURS.saveRestore,
    name: 'save + restore an idle session (toBytes + fromBytes)',
    before: () => {
      const p = channelPair();
      p.alice.receive(p.bob.send(pt).serialize());
      idle = p.alice;
    },
    op: () => SecureChannel.fromBytes(idle.toBytes()),
  });
  return rows;
}

/** Every row of ours. */
export function oursRows(): Row[] {
  return [...establishmentRows(), ...messageRows()];
}
