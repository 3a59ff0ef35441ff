/**
 * Example: EncryptedTrustBridge over your own transport. The handshake messages are plain JSON, so
 * here a function that takes and returns strings stands in for HTTP or a queue. The rule for a
 * transport: when the peer refuses, throw an `E2EError` with code `TRUST_REJECTED` (the bridge
 * reports `peer_refused`); any other error (a network failure) becomes `transport_failed`.
 * Run: npx tsx scripts/examples/trust-transport.ts
 */
import {
  ready,
  AgentIdentity,
  EncryptedTrustBridge,
  InMemoryIdentityRegistry,
  E2EError,
  isE2EError,
  utf8,
  fromUtf8,
  type TrustTransport,
  type TrustEndpoint,
  type ChallengeReply,
  type HandshakeChallenge,
  type HandshakeResponse,
} from 'agentmesh-e2e';

/** The "server" side: routes a JSON request to the addressed agent's bridge and answers in JSON. */
function makeServer(endpoints: Map<string, TrustEndpoint>) {
  return async (requestJson: string): Promise<string> => {
    const req = JSON.parse(requestJson) as { kind: 'challenge' | 'answer'; from: string; to: string; body: unknown };
    const endpoint = endpoints.get(req.to);
    if (!endpoint) return JSON.stringify({ status: 404 });
    try {
      const result =
        req.kind === 'challenge'
          ? await endpoint.answerChallenge(req.from, req.body as HandshakeChallenge)
          : await endpoint.completeHandshake(req.from, req.body as HandshakeResponse);
      return JSON.stringify({ status: 200, body: result ?? null });
    } catch (e) {
      // A refusal travels as data, with its reason.
      if (isE2EError(e, 'TRUST_REJECTED')) return JSON.stringify({ status: 403, reason: e.reason });
      return JSON.stringify({ status: 500 });
    }
  };
}

/** The "client" side: a TrustTransport over the string channel. */
class JsonTransport implements TrustTransport {
  constructor(private readonly post: (json: string) => Promise<string>) {}

  async #call(kind: 'challenge' | 'answer', from: string, to: string, body: unknown): Promise<unknown> {
    const res = JSON.parse(await this.post(JSON.stringify({ kind, from, to, body }))) as {
      status: number;
      body?: unknown;
      reason?: string;
    };
    // The rule: the peer's refusal is a TRUST_REJECTED E2EError; everything else a plain Error.
    if (res.status === 403) throw new E2EError('TRUST_REJECTED', 'the peer refused', res.reason);
    if (res.status !== 200) throw new Error(`transport: status ${res.status}`);
    return res.body;
  }

  async sendChallenge(from: string, to: string, challenge: HandshakeChallenge): Promise<ChallengeReply> {
    return (await this.#call('challenge', from, to, challenge)) as ChallengeReply;
  }

  async sendAnswer(from: string, to: string, response: HandshakeResponse): Promise<void> {
    await this.#call('answer', from, to, response);
  }
}

async function main(): Promise<void> {
  await ready();
  const registry = new InMemoryIdentityRegistry();
  const endpoints = new Map<string, TrustEndpoint>();
  const transport = new JsonTransport(makeServer(endpoints));
  const agent = (score: number) => {
    const identity = AgentIdentity.generate();
    registry.register({ did: identity.did, publicKey: identity.publicKey, trustScore: score });
    const bridge = new EncryptedTrustBridge({ identity, registry, transport });
    endpoints.set(identity.did, bridge);
    return bridge;
  };
  const alice = agent(850);
  const bob = agent(850);
  const mallory = agent(300);

  const channel = await alice.openSecureChannel(bob.agentDid, await bob.publishPrekeyBundle());
  const bobChannel = await bob.acceptSecureChannel(alice.agentDid, alice.getSession(bob.agentDid)!.establishment);
  console.log(`bob read: ${fromUtf8(bobChannel.receive(channel.send(utf8('over my own transport'))))}`);

  // Bob refuses Mallory (score 300 < 700): the refusal crosses the wire as a 403 and comes back typed.
  try {
    await mallory.openSecureChannel(bob.agentDid, await bob.publishPrekeyBundle());
  } catch (e) {
    if (isE2EError(e, 'TRUST_REJECTED')) console.log(`mallory → bob: ${e.code} (${e.reason})`);
  }

  // A peer that is not there: a plain Error from the transport becomes transport_failed.
  endpoints.delete(bob.agentDid);
  try {
    await alice.openSecureChannel(bob.agentDid, await bob.publishPrekeyBundle());
  } catch (e) {
    if (isE2EError(e, 'TRUST_REJECTED')) console.log(`alice → bob (gone): ${e.code} (${e.reason})`);
  }
  alice.closeAllSessions();
  bob.closeAllSessions();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
