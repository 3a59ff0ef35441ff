/**
 * Peer: Wire's `@wireapp/proteus` (TypeScript on its own copy of libsodium.js 0.7, CBOR messages).
 * Its handshake is a triple DH over Ed25519 identities converted to X25519, with unsigned one-time
 * pre-keys; messages are ChaCha20 + HMAC-SHA256 (encrypt then MAC). Decryption is asynchronous
 * (the pre-key store is).
 */
import type * as ProteusModule from '@wireapp/proteus';
import { Row } from '../harness';
import { OURS } from '../ours';

type Proteus = typeof ProteusModule;
type Session = ProteusModule.session.Session;
type IdentityKeyPair = ProteusModule.keys.IdentityKeyPair;
type PreKey = ProteusModule.keys.PreKey;

let loaded: Proteus | null = null;

/** Loads and initialises the peer (throws when it does not load on this platform). */
export async function loadProteus(): Promise<Proteus> {
  if (loaded === null) {
    const P = await import('@wireapp/proteus');
    await P.init();
    loaded = P;
  }
  return loaded;
}

/** An in-memory pre-key store (what proteus asks the application for). */
class PreKeyStore {
  readonly keys = new Map<number, PreKey>();
  async load_prekey(id: number): Promise<PreKey | undefined> {
    return this.keys.get(id);
  }
  async delete_prekey(id: number): Promise<number> {
    this.keys.delete(id);
    return id;
  }
}

interface Party {
  readonly identity: IdentityKeyPair;
  readonly store: PreKeyStore;
  session: Session | null;
}

let nextPreKeyId = 0;

function party(P: Proteus): Party {
  return { identity: new P.keys.IdentityKeyPair(), store: new PreKeyStore(), session: null };
}

/**
 * A bundle of `p` with a fresh pre-key (kept in `p`'s store), as the initiator gets it: parsed
 * from its bytes. (Sharing the objects would break proteus: the responder wipes its pre-key object
 * in place once used, which would wipe the initiator's copy of the public key too.)
 */
function bundleOf(P: Proteus, p: Party): ProteusModule.keys.PreKeyBundle {
  nextPreKeyId = (nextPreKeyId + 1) % P.keys.PreKey.MAX_PREKEY_ID;
  const pk = new P.keys.PreKey(nextPreKeyId);
  p.store.keys.set(pk.key_id, pk);
  return P.keys.PreKeyBundle.deserialise(new P.keys.PreKeyBundle(p.identity.public_key, pk).serialise());
}

/** Encrypts on `from`, serializes, parses and decrypts on `to` (creating `to`'s session from a pre-key message). */
async function deliver(P: Proteus, from: Party, to: Party, pt: Uint8Array): Promise<Uint8Array> {
  const wire = P.session.Session.encrypt(from.session as Session, pt).serialise();
  const env = P.message.Envelope.deserialise(wire);
  if (to.session === null) {
    const [session, plain] = await P.session.Session.init_from_message(to.identity, to.store, env);
    to.session = session;
    return plain;
  }
  return to.session.decrypt(to.store, env);
}

/** Two parties with a session both ways. */
async function established(P: Proteus): Promise<{ alice: Party; bob: Party }> {
  const alice = party(P);
  const bob = party(P);
  alice.session = P.session.Session.init_from_prekey(alice.identity, bundleOf(P, bob));
  await deliver(P, alice, bob, new Uint8Array(8));
  await deliver(P, bob, alice, new Uint8Array(8));
  return { alice, bob };
}

/** The proteus rows: set-up + first message, send + receive 64 B and 1 KiB, ping-pong. */
export async function proteusRows(): Promise<Row[]> {
  const P = await loadProteus();
  const g = 'proteus';
  const rows: Row[] = [];
  let alice: Party;
  let bob: Party;
  let bundles: ProteusModule.keys.PreKeyBundle[] = [];
  const pt64 = new Uint8Array(64).fill(7);
  rows.push({
    group: g,
    id: 'proteus.setup',
    name: 'session set-up + first 64 B message, both sides',
    versus: OURS.setup,
    async: true,
    maxBatch: 256,
    before: () => {
      alice = party(P);
      bob = party(P);
    },
    prepare: (n) => {
      bundles = Array.from({ length: n }, () => bundleOf(P, bob));
    },
    op: async (i) => {
      alice.session = P.session.Session.init_from_prekey(alice.identity, bundles[i]);
      bob.session = null;
      return deliver(P, alice, bob, pt64);
    },
  });
  for (const n of [64, 1024]) {
    const pt = new Uint8Array(n).fill(7);
    let p: { alice: Party; bob: Party };
    rows.push({
      group: g,
      id: `proteus.message.${n}`,
      name: `send + receive ${n === 64 ? '64 B' : '1 KiB'}, one way`,
      versus: OURS.message(n),
      async: true,
      before: async () => {
        p = await established(P);
      },
      op: () => deliver(P, p.alice, p.bob, pt),
    });
  }
  let pp: { alice: Party; bob: Party };
  rows.push({
    group: g,
    id: 'proteus.roundtrip',
    name: 'ping-pong round trip 64 B',
    versus: OURS.roundTrip,
    async: true,
    before: async () => {
      pp = await established(P);
    },
    op: async () => {
      await deliver(P, pp.alice, pp.bob, pt64);
      return deliver(P, pp.bob, pp.alice, pt64);
    },
  });
  return rows;
}

/** Bytes of a saved idle proteus session after one more round trip, both sides. */
export async function proteusSessionBytes(): Promise<{ initiator: number; responder: number }> {
  const P = await loadProteus();
  const { alice, bob } = await established(P);
  await deliver(P, alice, bob, new Uint8Array(8));
  await deliver(P, bob, alice, new Uint8Array(8));
  return {
    initiator: (alice.session as Session).serialise().byteLength,
    responder: (bob.session as Session).serialise().byteLength,
  };
}

/** An idle initiator session's bytes and its identity, for the memory child to load many times. */
export async function proteusSavedSession(): Promise<{ identity: IdentityKeyPair; bytes: ArrayBuffer }> {
  const P = await loadProteus();
  const { alice, bob } = await established(P);
  await deliver(P, alice, bob, new Uint8Array(8));
  return { identity: alice.identity, bytes: (alice.session as Session).serialise() };
}
