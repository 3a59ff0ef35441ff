/**
 * Peer: Signal's `@signalapp/libsignal-client` (Rust, native Node addon). Its protocol is PQXDH
 * (X3DH plus an ML-KEM-1024 pre-key, which every bundle must carry) and a Double Ratchet with
 * AES-256-CBC + HMAC-SHA256 and a post-quantum ratchet; its API is asynchronous and goes through
 * stores on every message. The stores here are the fastest honest in-memory ones: they keep the
 * record objects libsignal hands them (no serialization), like Signal's own test stores minus the
 * copy.
 */
import type * as SignalClient from '@signalapp/libsignal-client';
import { Row } from '../harness';
import { OURS } from '../ours';

type Signal = typeof SignalClient;

/** One libsignal party: identity, pre-keys and stores. */
export interface Party {
  readonly address: SignalClient.ProtocolAddress;
  readonly identity: SignalClient.IdentityKeyPair;
  readonly registrationId: number;
  readonly sessions: SignalClient.SessionStore & { records: Map<string, SignalClient.SessionRecord> };
  readonly identities: SignalClient.IdentityKeyStore;
  readonly preKeys: SignalClient.PreKeyStore & { records: Map<number, SignalClient.PreKeyRecord> };
  readonly signedPreKeys: SignalClient.SignedPreKeyStore;
  readonly kyberPreKeys: SignalClient.KyberPreKeyStore;
  readonly spk: SignalClient.SignedPreKeyRecord;
  readonly kyber: SignalClient.KyberPreKeyRecord;
}

/** The in-memory stores and a party made of them. */
function makeParty(S: Signal, name: string): Party {
  const key = (a: SignalClient.ProtocolAddress): string => `${a.name()}.${a.deviceId()}`;
  class Sessions extends S.SessionStore {
    readonly records = new Map<string, SignalClient.SessionRecord>();
    async saveSession(a: SignalClient.ProtocolAddress, r: SignalClient.SessionRecord): Promise<void> {
      this.records.set(key(a), r);
    }
    async getSession(a: SignalClient.ProtocolAddress): Promise<SignalClient.SessionRecord | null> {
      return this.records.get(key(a)) ?? null;
    }
    async getExistingSessions(as: SignalClient.ProtocolAddress[]): Promise<SignalClient.SessionRecord[]> {
      return as.map((a) => {
        const r = this.records.get(key(a));
        if (!r) throw new Error(`no session for ${key(a)}`);
        return r;
      });
    }
  }
  const identity = S.IdentityKeyPair.generate();
  const registrationId = 1 + Math.floor(Math.random() * 16000);
  class Identities extends S.IdentityKeyStore {
    readonly known = new Map<string, SignalClient.PublicKey>();
    async getIdentityKey(): Promise<SignalClient.PrivateKey> {
      return identity.privateKey;
    }
    async getLocalRegistrationId(): Promise<number> {
      return registrationId;
    }
    async saveIdentity(a: SignalClient.ProtocolAddress, k: SignalClient.PublicKey): Promise<SignalClient.IdentityChange> {
      const old = this.known.get(key(a));
      this.known.set(key(a), k);
      return old && !old.equals(k) ? S.IdentityChange.ReplacedExisting : S.IdentityChange.NewOrUnchanged;
    }
    async isTrustedIdentity(a: SignalClient.ProtocolAddress, k: SignalClient.PublicKey): Promise<boolean> {
      const old = this.known.get(key(a));
      return !old || old.equals(k);
    }
    async getIdentity(a: SignalClient.ProtocolAddress): Promise<SignalClient.PublicKey | null> {
      return this.known.get(key(a)) ?? null;
    }
  }
  class PreKeys extends S.PreKeyStore {
    readonly records = new Map<number, SignalClient.PreKeyRecord>();
    async savePreKey(id: number, r: SignalClient.PreKeyRecord): Promise<void> {
      this.records.set(id, r);
    }
    async getPreKey(id: number): Promise<SignalClient.PreKeyRecord> {
      const r = this.records.get(id);
      if (!r) throw new Error(`no pre-key ${id}`);
      return r;
    }
    async removePreKey(id: number): Promise<void> {
      this.records.delete(id);
    }
  }
  const spkPriv = S.PrivateKey.generate();
  const spkPub = spkPriv.getPublicKey();
  const spk = S.SignedPreKeyRecord.new(1, Date.now(), spkPub, spkPriv, identity.privateKey.sign(spkPub.serialize()));
  class SignedPreKeys extends S.SignedPreKeyStore {
    async saveSignedPreKey(): Promise<void> {}
    async getSignedPreKey(id: number): Promise<SignalClient.SignedPreKeyRecord> {
      if (id !== spk.id()) throw new Error(`no signed pre-key ${id}`);
      return spk;
    }
  }
  const kem = S.KEMKeyPair.generate();
  const kyber = S.KyberPreKeyRecord.new(1, Date.now(), kem, identity.privateKey.sign(kem.getPublicKey().serialize()));
  class KyberPreKeys extends S.KyberPreKeyStore {
    async saveKyberPreKey(): Promise<void> {}
    async getKyberPreKey(id: number): Promise<SignalClient.KyberPreKeyRecord> {
      if (id !== kyber.id()) throw new Error(`no kyber pre-key ${id}`);
      return kyber;
    }
    async markKyberPreKeyUsed(): Promise<void> {} // a last-resort key: reusable
  }
  return {
    address: S.ProtocolAddress.new(name, 1),
    identity,
    registrationId,
    sessions: new Sessions(),
    identities: new Identities(),
    preKeys: new PreKeys(),
    signedPreKeys: new SignedPreKeys(),
    kyberPreKeys: new KyberPreKeys(),
    spk,
    kyber,
  };
}

let nextPreKeyId = 1;

/** A bundle of `p` with a fresh one-time pre-key (stored in `p`'s pre-key store). */
function bundleOf(S: Signal, p: Party): SignalClient.PreKeyBundle {
  const id = nextPreKeyId++;
  const priv = S.PrivateKey.generate();
  p.preKeys.records.set(id, S.PreKeyRecord.new(id, priv.getPublicKey(), priv));
  return S.PreKeyBundle.new(
    p.registrationId,
    p.address.deviceId(),
    id,
    priv.getPublicKey(),
    p.spk.id(),
    p.spk.publicKey(),
    p.spk.signature(),
    p.identity.publicKey,
    p.kyber.id(),
    p.kyber.publicKey(),
    p.kyber.signature(),
  );
}

/** A message from `from` to `to`, as bytes on the wire, then decrypted by `to`. */
async function deliver(S: Signal, from: Party, to: Party, pt: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const ct = await S.signalEncrypt(pt, to.address, from.address, from.sessions, from.identities);
  const wire = ct.serialize();
  if (ct.type() === S.CiphertextMessageType.PreKey) {
    return S.signalDecryptPreKey(
      S.PreKeySignalMessage.deserialize(wire),
      from.address,
      to.address,
      to.sessions,
      to.identities,
      to.preKeys,
      to.signedPreKeys,
      to.kyberPreKeys,
    );
  }
  return S.signalDecrypt(S.SignalMessage.deserialize(wire), from.address, to.address, to.sessions, to.identities);
}

/** Two parties with a session both ways (Bob replied once, so Alice no longer sends pre-key messages). */
async function established(S: Signal): Promise<{ alice: Party; bob: Party }> {
  const alice = makeParty(S, 'alice');
  const bob = makeParty(S, 'bob');
  await S.processPreKeyBundle(bundleOf(S, bob), bob.address, alice.address, alice.sessions, alice.identities);
  await deliver(S, alice, bob, new Uint8Array(8));
  await deliver(S, bob, alice, new Uint8Array(8));
  return { alice, bob };
}

function bytes(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

/** Loads the peer (throws when it does not load on this platform). */
export async function loadLibsignal(): Promise<Signal> {
  return import('@signalapp/libsignal-client');
}

/** The libsignal rows: set-up + first message, send + receive 64 B and 1 KiB, ping-pong. */
export async function libsignalRows(): Promise<Row[]> {
  const S = await loadLibsignal();
  const g = 'libsignal-client';
  const rows: Row[] = [];
  // Set-up: each iteration a fresh Alice-side address pair, so no record accumulates archived states.
  let alice: Party;
  let bob: Party;
  let bundles: SignalClient.PreKeyBundle[] = [];
  const pt64 = bytes(64);
  rows.push({
    group: g,
    id: 'libsignal.setup',
    name: 'session set-up (PQXDH) + first 64 B message, both sides',
    // libsignal always runs PQXDH (a last-resort Kyber pre-key here): compared to our PQ set-up, and to our classic one.
    versus: OURS.setupPq,
    alsoVersus: { id: OURS.setup, label: ' — vs our classic set-up' },
    async: true,
    maxBatch: 256,
    before: () => {
      alice = makeParty(S, 'alice');
      bob = makeParty(S, 'bob');
    },
    prepare: (n) => {
      alice.sessions.records.clear();
      bob.sessions.records.clear();
      bundles = Array.from({ length: n }, () => bundleOf(S, bob));
    },
    op: async (i) => {
      await S.processPreKeyBundle(bundles[i], bob.address, alice.address, alice.sessions, alice.identities);
      await deliver(S, alice, bob, pt64);
      alice.sessions.records.clear();
      bob.sessions.records.clear();
    },
  });
  for (const n of [64, 1024]) {
    const pt = bytes(n);
    let p: { alice: Party; bob: Party };
    rows.push({
      group: g,
      id: `libsignal.message.${n}`,
      name: `send + receive ${n === 64 ? '64 B' : '1 KiB'}, one way`,
      versus: OURS.message(n),
      async: true,
      before: async () => {
        p = await established(S);
      },
      op: () => deliver(S, p.alice, p.bob, pt),
    });
  }
  let pp: { alice: Party; bob: Party };
  rows.push({
    group: g,
    id: 'libsignal.roundtrip',
    name: 'ping-pong round trip 64 B',
    versus: OURS.roundTrip,
    async: true,
    before: async () => {
      pp = await established(S);
    },
    op: async () => {
      await deliver(S, pp.alice, pp.bob, pt64);
      return deliver(S, pp.bob, pp.alice, pt64);
    },
  });
  return rows;
}

/** Bytes of libsignal's first flight: the PreKeySignalMessage carrying a 64 B first message (PQXDH, ML-KEM-1024). */
export async function libsignalFirstFlightBytes(): Promise<number> {
  const S = await loadLibsignal();
  const alice = makeParty(S, 'alice');
  const bob = makeParty(S, 'bob');
  await S.processPreKeyBundle(bundleOf(S, bob), bob.address, alice.address, alice.sessions, alice.identities);
  const ct = await S.signalEncrypt(bytes(64), bob.address, alice.address, alice.sessions, alice.identities);
  if (ct.type() !== S.CiphertextMessageType.PreKey) throw new Error('libsignal: the first message is not a pre-key message');
  return ct.serialize().length;
}

/** Bytes of a saved idle libsignal session (Alice's record after one round trip), both sides. */
export async function libsignalSessionBytes(): Promise<{ initiator: number; responder: number }> {
  const S = await loadLibsignal();
  const { alice, bob } = await established(S);
  await deliver(S, alice, bob, new Uint8Array(8));
  await deliver(S, bob, alice, new Uint8Array(8));
  const a = await alice.sessions.getSession(bob.address);
  const b = await bob.sessions.getSession(alice.address);
  if (!a || !b) throw new Error('libsignal: no session');
  return { initiator: a.serialize().length, responder: b.serialize().length };
}

/** A serialized idle session record, for the memory child to load many times. */
export async function libsignalSessionRecord(): Promise<Uint8Array> {
  const S = await loadLibsignal();
  const { alice, bob } = await established(S);
  const a = await alice.sessions.getSession(bob.address);
  if (!a) throw new Error('libsignal: no session');
  return a.serialize();
}
