/**
 * MeshAgent against the real server (lib/server, loopback): two agents both ways, payload forms, the async
 * iterator, an offline peer's mailbox, a restart with a SQLite store mid-stream, a refused untrusted agent,
 * a 4006 takeover as an event, and an unbound bundle (G1, initiator side).
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { createServer } from 'net';
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { InMemoryIdentityRegistry } from '../../lib/trust';
import { bundleToJSON } from '../../lib/x3dh';
import { InMemoryStore } from '../../lib/store';
import { MeshAgent, MeshAgentOptions } from '../../lib/mesh';
import { startMeshServer, MeshServer } from '../../lib/server';
import { collect, newIdentity, until } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

let server: MeshServer;
const agents: MeshAgent[] = [];
let dir: string;

async function agent(o: Omit<MeshAgentOptions, 'url'>): Promise<MeshAgent> {
  const a = await MeshAgent.connect({ url: server.url, heartbeatMs: 1000, ...o });
  agents.push(a);
  return a;
}

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'mesh-agent-'));
  server = await startMeshServer({ port: 0, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('two agents talk both ways; bytes, text and JSON; the relay sees ciphertext only', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await agent({ identity: a });
  const bob = await agent({ identity: b });
  const got = collect(bob);
  const back = collect(alice);
  bob.on('message', async (m) => {
    if (m.text() === 'ping') await bob.send(m.from, { reply: 'pong' });
  });
  const id = await alice.send(b.did, 'ping');
  expect(typeof id).toBe('string');
  await alice.send(b.did, { n: 1 });
  await alice.send(b.did, new Uint8Array([0, 255, 7]));
  await until(() => got.messages.length === 3 && back.messages.length === 1);
  expect(got.messages[0].from).toBe(a.did);
  expect(got.messages[0].id).toBe(id);
  expect(got.messages[1].json()).toEqual({ n: 1 });
  expect([...got.messages[2].data]).toEqual([0, 255, 7]);
  expect(back.messages[0].json()).toEqual({ reply: 'pong' });
  expect(alice.sessions(b.did)).toEqual([expect.objectContaining({ role: 'initiator', current: true })]);
  expect(bob.peers).toEqual([a.did]);
});

test('the async iterator delivers in order; a message is handled when the loop asks for the next', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await agent({ identity: a });
  const bob = await agent({ identity: b });
  for (let i = 0; i < 5; i++) await alice.send(b.did, `m${i}`);
  const seen: string[] = [];
  for await (const m of bob) {
    seen.push(m.text());
    if (seen.length === 5) break;
  }
  expect(seen).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
});

test('a message to an offline agent waits in its mailbox and arrives when it comes back', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const bobStore = new InMemoryStore();
  const storageKey = randomBytes(32);
  const alice = await agent({ identity: a });
  let bob = await agent({ identity: b, store: bobStore, storageKey });
  const first = collect(bob);
  await alice.send(b.did, 'hello');
  await until(() => first.texts.length === 1);
  await bob.close();
  // Bob is offline: the relay keeps these until he acks them.
  for (let i = 0; i < 3; i++) await alice.send(b.did, `while away ${i}`);
  bob = await agent({ identity: b, store: bobStore, storageKey });
  const got = collect(bob);
  await until(() => got.texts.length === 3);
  expect(got.texts).toEqual(['while away 0', 'while away 1', 'while away 2']);
});

test('an agent with a SQLite store restarted mid-stream resumes its session: every message once', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const path = join(dir, 'bob.sqlite');
  const storageKey = randomBytes(32);
  const alice = await agent({ identity: a });
  let bob = await agent({ identity: b, store: path, storageKey });
  let got = collect(bob);
  const all: string[] = [];
  const sending = (async () => {
    for (let i = 0; i < 40; i++) {
      await alice.send(b.did, `s${i}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await until(() => got.texts.length >= 10, 10000, '10 messages');
  await bob.close();
  all.push(...got.texts);
  bob = await agent({ identity: b, store: path, storageKey });
  got = collect(bob);
  await sending;
  await until(() => all.length + got.texts.length >= 40, 10000, '40 messages');
  all.push(...got.texts);
  expect(all).toEqual(Array.from({ length: 40 }, (_, i) => `s${i}`));
  // The reply goes on the resumed session (no new one).
  await bob.send(a.did, 'back');
  expect(bob.sessions(a.did)).toHaveLength(1);
});

test('trust: an untrusted agent is refused both ways; trusted ones talk', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const m = newIdentity();
  const registry = new InMemoryIdentityRegistry();
  registry.register({ did: a.did, publicKey: a.publicKey, trustScore: 850 });
  registry.register({ did: b.did, publicKey: b.publicKey, trustScore: 850 });
  registry.register({ did: m.did, publicKey: m.publicKey, trustScore: 300 });
  const trust = { registry, minTrustScore: 700 };
  const alice = await agent({ identity: a, trust });
  const bob = await agent({ identity: b, trust });
  const mallory = await agent({ identity: m, trust: { registry, minTrustScore: 0 } });
  const got = collect(bob);
  const rejected: string[] = [];
  bob.on('rejected', (e) => rejected.push(`${e.direction}:${e.reason}`));
  await alice.send(b.did, 'trusted hello');
  await until(() => got.texts.length === 1);
  await expectE2EErrorAsync(mallory.send(b.did, 'let me in'), 'TRUST_REJECTED');
  await expectE2EErrorAsync(alice.send(m.did, 'secret'), 'TRUST_REJECTED', 'trust_score_too_low');
  expect(rejected).toContain('inbound:trust_score_too_low');
  expect(got.texts).toEqual(['trusted hello']);
});

test('a knock from an agent that skipped the handshake is refused by a trust-gated agent', async () => {
  const b = newIdentity();
  const p = newIdentity();
  const registry = new InMemoryIdentityRegistry();
  registry.register({ did: b.did, publicKey: b.publicKey, trustScore: 850 });
  registry.register({ did: p.did, publicKey: p.publicKey, trustScore: 950 });
  const bob = await agent({ identity: b, trust: { registry } });
  const plain = await agent({ identity: p });
  const got = collect(bob);
  const rejected: string[] = [];
  const refusedUs: string[] = [];
  bob.on('rejected', (e) => rejected.push(e.reason));
  plain.on('rejected', (e) => refusedUs.push(e.reason));
  await plain.send(b.did, 'no handshake');
  await until(() => refusedUs.length === 1);
  expect(rejected).toEqual(['peer_not_verified']);
  expect(refusedUs).toEqual(['peer_not_verified']);
  expect(got.texts).toEqual([]);
});

test('a second connection for the same DID takes over (4006): an event, no reconnect loop', async () => {
  const a = newIdentity();
  const first = await agent({ identity: a });
  const replaced: string[] = [];
  first.on('replaced', (e) => replaced.push(e.reason ?? ''));
  const second = await agent({ identity: a, store: new InMemoryStore(), storageKey: randomBytes(32) });
  await until(() => replaced.length === 1);
  expect(replaced).toEqual(['session_replaced']);
  await new Promise((r) => setTimeout(r, 600));
  expect(first.state).toBe('replaced');
  expect(second.state).toBe('connected');
});

test("G1 (initiator): a bundle that is not the DID's key is refused before any X3DH", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const m = newIdentity();
  await agent({ identity: b });
  // A registry (or a man in the middle of it) answering Bob's bundle with Mallory's.
  const mm = m.createKeyManager();
  mm.generateSignedPreKey();
  const forged = JSON.stringify(bundleToJSON(mm.getPublicBundle()));
  const realFetch = globalThis.fetch;
  const lying = (async (url: string, init: RequestInit) => {
    if (init.method === 'GET' && String(url).endsWith(`${encodeURIComponent(b.did)}/prekeys`)) {
      return { status: 200, text: async () => forged };
    }
    return realFetch(url, init);
  }) as never;
  const alice = await agent({ identity: a, fetch: lying });
  await expectE2EErrorAsync(alice.send(b.did, 'for bob only'), 'IDENTITY_MISMATCH', 'not_bound_to_did');
  expect(alice.sessions(b.did)).toEqual([]);
});

test('agt mode (timestamp-only proofs, no receipts, no extensions) works against our server too', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await agent({ identity: a, agt: true });
  const bob = await agent({ identity: b, agt: true });
  const got = collect(bob);
  const back = collect(alice);
  bob.on('message', async (m) => {
    await bob.send(m.from, `re: ${m.text()}`);
  });
  await alice.send(b.did, { hello: 'agt' });
  await until(() => got.messages.length === 1 && back.messages.length === 1);
  expect(got.messages[0].json()).toEqual({ hello: 'agt' });
  expect(back.texts).toEqual(['re: {"hello":"agt"}']);
});

test('groupCommit: a burst is saved and acknowledged in groups; a restart resumes with nothing twice', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const path = join(dir, 'group.sqlite');
  const storageKey = randomBytes(32);
  const alice = await agent({ identity: a });
  let bob = await agent({ identity: b, store: path, storageKey, groupCommit: true });
  const first = collect(bob);
  await alice.send(b.did, 'first');
  await until(() => first.texts.length === 1);
  await bob.close();
  for (let i = 0; i < 300; i++) await alice.send(b.did, `g${i}`);
  bob = await agent({ identity: b, store: path, storageKey, groupCommit: true });
  let got = collect(bob);
  await until(() => got.texts.length === 300, 15000, '300 messages');
  expect(got.texts).toEqual(Array.from({ length: 300 }, (_, i) => `g${i}`));
  await bob.close();
  bob = await agent({ identity: b, store: path, storageKey, groupCommit: true });
  got = collect(bob);
  await alice.send(b.did, 'after');
  await until(() => got.texts.length === 1);
  await new Promise((r) => setTimeout(r, 200));
  expect(got.texts).toEqual(['after']);
});

test('pre-key upkeep: used one-time pre-keys are refilled; a rotated signed pre-key keeps sessions opening', async () => {
  const b = newIdentity();
  const bob = await agent({ identity: b, preKeys: { minOneTimePreKeys: 3, targetOneTimePreKeys: 5 } });
  const got = collect(bob);
  for (let i = 0; i < 4; i++) {
    const peer = await agent({ identity: newIdentity() });
    await peer.send(b.did, `from peer ${i}`);
  }
  await until(() => got.texts.length === 4);
  const report = await bob.maintainPreKeys();
  expect(report.addedOneTimePreKeys).toBeGreaterThan(0);
  // Rotation on every run (max age 0): the bundle is re-published and new initiators still get through.
  const carol = newIdentity();
  const rotating = await agent({ identity: carol, preKeys: { signedPreKeyMaxAgeMs: 0, signedPreKeyGraceMs: 3_600_000 } });
  const atCarol = collect(rotating);
  const first = await rotating.maintainPreKeys();
  expect(first.rotatedTo).not.toBeNull();
  const dave = await agent({ identity: newIdentity() });
  await dave.send(carol.did, 'after rotation');
  await until(() => atCarol.texts.length === 1);
  expect(atCarol.texts).toEqual(['after rotation']);
});

test("a frame over the relay's announced limit is refused before it leaves (MESSAGE_TOO_LARGE); the session goes on", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await agent({ identity: a });
  const bob = await agent({ identity: b });
  const got = collect(bob);
  await alice.send(b.did, 'small');
  // Refused before it leaves (the relay announced its limit), not a reconnect loop on a poison frame.
  await expectE2EErrorAsync(alice.send(b.did, new Uint8Array(2 * 1024 * 1024)), 'MESSAGE_TOO_LARGE', 'frame_too_big');
  expect(alice.state).toBe('connected');
  await alice.send(b.did, 'small again');
  await until(() => got.texts.length === 2);
  expect(got.texts).toEqual(['small', 'small again']);
});

test.each([false, true])(
  'a server restarted without its records: agents register and publish again on reconnect, and talk (agt mode %s)',
  async (agtMode) => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    let volatile = await startMeshServer({ port, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
    const a = newIdentity();
    const b = newIdentity();
    // In agt mode the registry cannot count one-time pre-keys: upkeep asks whether it still knows the agent.
    const fast = { backoff: { baseMs: 20, maxMs: 200 }, heartbeatMs: 1000, agt: agtMode };
    const alice = await MeshAgent.connect({ url: volatile.url, identity: a, ...fast });
    const bob = await MeshAgent.connect({ url: volatile.url, identity: b, ...fast });
    agents.push(alice, bob);
    const got = collect(bob);
    await alice.send(b.did, 'one');
    await until(() => got.texts.length === 1);
    await volatile.close();
    volatile = await startMeshServer({ port, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
    try {
      await until(() => alice.state === 'connected' && bob.state === 'connected', 5000, 'the reconnects');
      // Bob's bundle comes back with his upkeep; a new peer can open a session to him.
      const carol = await MeshAgent.connect({ url: volatile.url, identity: newIdentity(), ...fast });
      agents.push(carol);
      let sent = false;
      for (let i = 0; i < 50 && !sent; i++) {
        sent = await carol.send(b.did, 'new peer').then(
          () => true,
          () => false,
        );
        if (!sent) await new Promise((r) => setTimeout(r, 100));
      }
      expect(sent).toBe(true);
      await alice.send(b.did, 'two'); // the old session needs nothing from the registry
      await until(() => got.texts.length === 3);
      expect(new Set(got.texts)).toEqual(new Set(['one', 'two', 'new peer']));
    } finally {
      await Promise.all(agents.splice(0).map((x) => x.close()));
      await volatile.close();
    }
  },
);

test('concurrent sends share their saves (group commit of sends), and arrive in order', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const store = new InMemoryStore();
  let writes = 0;
  const save = store.saveSession.bind(store);
  store.saveSession = (l, p, d, v) => {
    writes++;
    return save(l, p, d, v);
  };
  const alice = await agent({ identity: a, store, storageKey: randomBytes(32) });
  const bob = await agent({ identity: b });
  const got = collect(bob);
  await alice.send(b.did, 'open');
  writes = 0;
  await Promise.all(Array.from({ length: 200 }, (_, i) => alice.send(b.did, `c${i}`)));
  await until(() => got.texts.length === 201);
  expect(got.texts.slice(1)).toEqual(Array.from({ length: 200 }, (_, i) => `c${i}`));
  expect(writes).toBeLessThan(100);
});
