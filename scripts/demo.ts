/**
 * `npm run demo`: the tutorial end to end. Two agents and a registry; the mutual trust handshake,
 * X3DH and messages both ways (some out of order) all pass through a relay that prints only what it
 * sees on the wire; each agent prints what it reads; then a low-score agent is refused both ways.
 * Exits 0 on success, 1 (with the error code) on any failure.
 */
import {
  ready,
  fromUtf8,
  toHex,
  utf8,
  isE2EError,
  ChannelEstablishment,
  SecureChannel,
  AgentIdentity,
  EncryptedTrustBridge,
  InMemoryIdentityRegistry,
  LocalTrustNetwork,
  trustLevel,
  type TrustWireEvent,
} from 'agentmesh-e2e';

/** Shortens a DID for display. */
function short(did: string): string {
  return did.length > 22 ? `${did.slice(0, 21)}…` : did;
}

/** Wire bytes for display: length, then the first 8 and last 16 bytes in hex. */
function hexPreview(bytes: Uint8Array): string {
  const body = bytes.length > 24 ? `${toHex(bytes.subarray(0, 8))}…${toHex(bytes.subarray(-16))}` : toHex(bytes);
  return `${String(bytes.length).padStart(4)} bytes  ${body}`;
}

/** An untrusted relay: queues opaque bytes between agents and prints what it carries. */
class Relay {
  readonly #queue: { from: string; to: string; bytes: Uint8Array }[] = [];

  constructor(readonly names: Map<string, string>) {}

  /** Handshake traffic, seen through the trust network (public JSON: ids and nonces, no secrets). */
  observe = (e: TrustWireEvent): void => {
    const id = /"challenge_id":"(challenge_[0-9a-f]+)"/.exec(e.json)?.[1] ?? '?';
    console.log(`  [relay] ${this.#route(e.fromDid, e.toDid)}  handshake ${e.kind.padEnd(9)} ${id}  (${e.json.length} chars JSON)`);
  };

  send(from: string, to: string, bytes: Uint8Array): void {
    console.log(`  [relay] ${this.#route(from, to)}  ${hexPreview(bytes)}`);
    this.#queue.push({ from, to, bytes: Uint8Array.from(bytes) });
  }

  /** Delivers the queued messages, in the given order of queue positions (default: as sent). */
  deliver(receive: (from: string, to: string, bytes: Uint8Array) => void, order?: number[]): void {
    const batch = this.#queue.splice(0);
    for (const i of order ?? batch.map((_, k) => k)) receive(batch[i].from, batch[i].to, batch[i].bytes);
  }

  #route(from: string, to: string): string {
    return `${(this.names.get(from) ?? '?').padStart(7)} → ${(this.names.get(to) ?? '?').padEnd(7)}`;
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  await ready();
  console.log('agentmesh-e2e demo: trust-gated end-to-end encryption between two agents\n');

  // Identities (DIDs derived from the keys) and the registry that scores them.
  const alice = AgentIdentity.generate();
  const bob = AgentIdentity.generate();
  const mallory = AgentIdentity.generate();
  const names = new Map([
    [alice.did, 'alice'],
    [bob.did, 'bob'],
    [mallory.did, 'mallory'],
  ]);
  const registry = new InMemoryIdentityRegistry();
  const scores = new Map([
    [alice.did, 850],
    [bob.did, 920],
    [mallory.did, 300],
  ]);
  console.log('Registry (the only source of trust scores):');
  for (const id of [alice, bob, mallory]) {
    const score = scores.get(id.did) as number;
    registry.register({ did: id.did, publicKey: id.publicKey, trustScore: score });
    console.log(`  ${names.get(id.did)!.padEnd(7)} ${short(id.did)}  score ${score} (${trustLevel(score)})  key ${id.fingerprint}`);
  }

  const relay = new Relay(names);
  const network = new LocalTrustNetwork({ observe: relay.observe });
  const bridges = new Map<string, EncryptedTrustBridge>();
  for (const id of [alice, bob, mallory]) {
    bridges.set(id.did, new EncryptedTrustBridge({ identity: id, registry, transport: network, minTrustScore: 700 }));
  }
  const bridgeOf = (id: AgentIdentity) => bridges.get(id.did) as EncryptedTrustBridge;

  console.log('\n1. Bob publishes a pre-key bundle (signed pre-key + one one-time pre-key).');
  const bobBundle = await bridgeOf(bob).publishPrekeyBundle();
  console.log(`  bob: bundle with signed pre-key #${bobBundle.signedPreKeyId}, one-time pre-key #${bobBundle.oneTimePreKeyId}`);

  console.log('\n2. Alice opens a channel: mutual trust handshake, bundle key = registry key, then X3DH.');
  const aliceChannel = await bridgeOf(alice).openSecureChannel(bob.did, bobBundle);
  const opened = bridgeOf(alice).getSession(bob.did)!;
  console.log(`  alice: verified bob, score ${opened.trustScore} (${opened.trustLevel}); X3DH done`);
  relay.send(alice.did, bob.did, opened.establishment.serialize());

  // What each agent does with what the relay delivers.
  const channels = new Map<string, SecureChannel>([[alice.did, aliceChannel]]);
  const receive = (from: string, to: string, bytes: Uint8Array): void => {
    const ch = channels.get(to) as SecureChannel;
    console.log(`  ${names.get(to)} reads from ${names.get(from)}: "${fromUtf8(ch.receive(bytes))}"`);
  };
  const pending: Promise<void>[] = [];
  relay.deliver((from, to, bytes) => {
    pending.push(
      bridgeOf(bob)
        .acceptSecureChannel(from, ChannelEstablishment.deserialize(bytes))
        .then((ch) => {
          channels.set(to, ch);
          const s = bridgeOf(bob).getSession(from)!;
          console.log(`  bob: accepted ${names.get(from)} (verified by bob's own challenge), score ${s.trustScore} (${s.trustLevel})`);
        }),
    );
  });
  await Promise.all(pending);
  const bobChannel = channels.get(bob.did) as SecureChannel;

  console.log('\n3. Messages through the relay (it sees only ciphertext).');
  relay.send(alice.did, bob.did, aliceChannel.send(utf8('transfer $1000 to account X')).serialize());
  relay.deliver(receive);
  relay.send(bob.did, alice.did, bobChannel.send(utf8('action approved')).serialize());
  relay.send(bob.did, alice.did, bobChannel.send(utf8('receipt #4411 attached')).serialize());
  relay.deliver(receive);

  console.log('\n4. Out of order: alice sends three, the relay delivers them 3, 1, 2.');
  for (const text of ['msg-1', 'msg-2', 'msg-3']) relay.send(alice.did, bob.did, aliceChannel.send(utf8(text)).serialize());
  relay.deliver(receive, [2, 0, 1]);
  relay.send(bob.did, alice.did, bobChannel.send(utf8('all three arrived')).serialize());
  relay.deliver(receive);

  console.log('\n5. Mallory (score 300) is refused in both directions, before any key exchange.');
  for (const [from, to] of [
    [alice, mallory],
    [mallory, bob],
  ] as const) {
    try {
      await bridgeOf(from).openSecureChannel(to.did, await bridgeOf(to).publishPrekeyBundle());
      throw new Error(`${names.get(from.did)} → ${names.get(to.did)} should have been refused`);
    } catch (e) {
      if (!isE2EError(e, 'TRUST_REJECTED')) throw e;
      console.log(`  ${names.get(from.did)} → ${names.get(to.did)}: refused, ${e.code} (${e.reason}): ${e.message}`);
    }
  }

  console.log('\n6. Shutdown: every session closed and its keys wiped.');
  for (const b of bridges.values()) b.closeAllSessions();
  console.log(`  alice channel closed: ${aliceChannel.isClosed}, bob channel closed: ${bobChannel.isClosed}`);
  console.log(`\nDone in ${Date.now() - started} ms.`);
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${isE2EError(e) ? `${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.message}` : String(e)}`);
  process.exit(1);
});
