/**
 * MeshAgent's post-quantum sessions (option `postQuantum`) through our relay and registry on loopback: two
 * default agents get PQXDH sessions and keep KEM pools at the registry; `'require'` meets a registry that
 * strips `kem_pre_key` with `POST_QUANTUM_REQUIRED` and refuses classic establishments; `'off'` ↔ `'prefer'`
 * gives a classic session, and an `'off'` agent's uploads and knocks are AGT's (no KEM field anywhere).
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { ed25519PublicKeyToX25519, randomBytes, toBase64, x25519KeyPair } from '../../lib/crypto';
import { connect, newAgent } from '../server/helpers';
import { AgentIdentity } from '../../lib/trust';
import { MeshAgent, MeshAgentOptions, RejectedEvent, SessionEvent } from '../../lib/mesh';
import { RegistryClient } from '../../lib/mesh/registry-client';
import { InMemoryStore, StorageCipher, StoredKeyManager } from '../../lib/store';
import { SqliteStore } from '../../lib/sqlite';
import { SocketFactory, openSocket } from '../../lib/mesh/socket';
import { DEFAULT_TARGET_KEM_PRE_KEYS } from '../../lib/limits';
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

/** Records every request an agent makes to the registry (method, path, body) and lets a test rewrite answers. */
function recordingFetch(
  log: { method: string; url: string; body: string }[],
  rewrite?: (url: string, method: string, text: string) => string,
) {
  return (async (url: string, init: RequestInit) => {
    log.push({ method: String(init.method), url, body: typeof init.body === 'string' ? init.body : '' });
    const r = await fetch(url, init);
    const text = await r.text();
    return { status: r.status, text: async () => (rewrite ? rewrite(url, String(init.method), text) : text) };
  }) as never;
}

/** A socket factory that records every frame the agent sends. */
function recordingSockets(sent: Record<string, unknown>[]): SocketFactory {
  return async (url, handlers) => {
    const s = await openSocket(url, handlers);
    return {
      send: (text: string) => {
        sent.push(JSON.parse(text) as Record<string, unknown>);
        s.send(text);
      },
      close: (code?: number, reason?: string) => s.close(code, reason),
      get bufferedAmount() {
        return s.bufferedAmount;
      },
    };
  };
}

/** The registry's pool sizes for `id` (its own signed count request). */
function pools(id: AgentIdentity) {
  return new RegistryClient({ baseUrl: server.url, signer: id }).countPools();
}

let claimer: RegistryClient | null = null;

/** `did`'s bundle as a third (registered) agent claims it. */
async function claim(did: string) {
  if (!claimer) {
    claimer = new RegistryClient({ baseUrl: server.url, signer: newIdentity() });
    await claimer.register();
  }
  return claimer.claimBundle(did);
}

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'mesh-pq-'));
  server = await startMeshServer({
    port: 0,
    registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000, oneTimeKeyBurst: 1000 },
  });
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test("two agents (default 'prefer') get post-quantum sessions both ways; KEM pools at the registry, used ones refilled", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await agent({ identity: a });
  expect(await pools(a)).toEqual({ otk: expect.any(Number), kem: DEFAULT_TARGET_KEM_PRE_KEYS });
  // The policy sizes the KEM pool (its postQuantum is the option's: false here is overridden).
  const bob = await agent({ identity: b, preKeys: { minKemPreKeys: 3, targetKemPreKeys: 6, postQuantum: false } });
  expect(await pools(b)).toEqual({ otk: expect.any(Number), kem: 6 });
  const events: SessionEvent[] = [];
  for (const x of [alice, bob]) x.on('session', (e) => events.push(e));
  const got = collect(bob);
  const back = collect(alice);
  bob.on('message', async (m) => {
    await bob.send(m.from, `re: ${m.text()}`);
  });
  await alice.send(b.did, 'quantum hello');
  await until(() => got.texts.length === 1 && back.texts.length === 1);
  expect(back.texts).toEqual(['re: quantum hello']);
  expect(events).toEqual([
    { peer: b.did, role: 'initiator', postQuantum: true },
    { peer: a.did, role: 'responder', postQuantum: true },
  ]);
  expect(alice.sessions(b.did)).toEqual([expect.objectContaining({ role: 'initiator', postQuantum: true })]);
  expect(bob.sessions(a.did)).toEqual([expect.objectContaining({ role: 'responder', postQuantum: true })]);
  // Alice's claim took one one-time KEM pre-key; upkeep refills below the floor.
  expect((await pools(b)).kem).toBe(5);
  for (let i = 0; i < 3; i++) await claim(b.did);
  expect((await pools(b)).kem).toBe(2);
  const report = await bob.maintainPreKeys();
  expect(report.addedKemPreKeys).toBe(4);
  expect((await pools(b)).kem).toBe(6);
});

test('an acceptance that used a one-time KEM pre-key (and no one-time pre-key) refills the KEM pool soon after', async () => {
  const b = newIdentity();
  const bob = await agent({
    identity: b,
    preKeys: { minOneTimePreKeys: 0, targetOneTimePreKeys: 0, minKemPreKeys: 3, targetKemPreKeys: 3 },
  });
  const got = collect(bob);
  const alice = await agent({ identity: newIdentity() });
  await alice.send(b.did, 'kem only');
  await until(() => got.texts.length === 1);
  expect(await pools(b)).toEqual({ otk: 0, kem: 2 });
  const deadline = Date.now() + 5000;
  while ((await pools(b)).kem !== 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect((await pools(b)).kem).toBe(3);
});

test('an establishment naming a KEM pre-key the agent does not hold is refused (kem_not_found), not an error', async () => {
  const b = newIdentity();
  const bob = await agent({ identity: b });
  const errors: unknown[] = [];
  bob.on('error', (e) => errors.push(e));
  const inbound: RejectedEvent[] = [];
  bob.on('rejected', (e) => inbound.push(e));
  const bundle = (await claim(b.did))!;
  // Mallory, a raw client of the relay, sends a well-formed establishment in her own name with an unknown KEM id.
  const mallory = newAgent();
  const c = await connect(server.url, mallory);
  const ek = x25519KeyPair().publicKey;
  const establishment = {
    ik: toBase64(ed25519PublicKeyToX25519(mallory.publicKey)),
    ek: toBase64(ek),
    spk: bundle.signedPreKeyId,
    kem: 987654,
    kct: toBase64(randomBytes(1088)),
  };
  c.send({
    v: 1,
    type: 'knock',
    from: mallory.did,
    to: b.did,
    id: 'kem-unknown-1',
    ts: new Date().toISOString(),
    intent: { action: 'establish_session' },
    establishment,
    identity_key_ed: toBase64(mallory.publicKey),
  });
  let reject: Record<string, unknown> | undefined;
  while (!reject) {
    const f = await c.frame();
    if (f.type === 'knock_reject') reject = f;
  }
  expect(reject).toMatchObject({ knock_id: 'kem-unknown-1', reason: 'kem_not_found' });
  expect(inbound).toEqual([{ peer: mallory.did, direction: 'inbound', reason: 'kem_not_found' }]);
  expect(errors).toEqual([]);
  c.close();
});

test('a restarted agent (SQLite) keeps its post-quantum sessions and its KEM pre-keys; the published bundle is not re-uploaded', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const path = join(dir, 'bob.sqlite');
  const storageKey = randomBytes(32);
  const alice = await agent({ identity: a });
  let bob = await agent({ identity: b, store: path, storageKey });
  let got = collect(bob);
  await alice.send(b.did, 'before');
  await until(() => got.texts.length === 1);
  await bob.close();
  const log: { method: string; url: string; body: string }[] = [];
  bob = await agent({ identity: b, store: path, storageKey, fetch: recordingFetch(log) });
  got = collect(bob);
  expect(bob.sessions(a.did)).toEqual([expect.objectContaining({ postQuantum: true })]);
  expect(log.filter((r) => r.method === 'PUT')).toEqual([]);
  await alice.send(b.did, 'after');
  await until(() => got.texts.length === 1);
  expect(got.texts).toEqual(['after']);
});

test("'require' against a registry that strips kem_pre_key: POST_QUANTUM_REQUIRED, nothing sent; the same peer through an honest one opens", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const bob = await agent({ identity: b });
  const got = collect(bob);
  const stripping = recordingFetch([], (url, method, text) => {
    if (method !== 'GET' || !url.endsWith('/prekeys')) return text;
    const { kem_pre_key: _drop, ...classic } = JSON.parse(text) as Record<string, unknown>;
    return JSON.stringify(classic);
  });
  const sent: Record<string, unknown>[] = [];
  const alice = await agent({ identity: a, postQuantum: 'require', fetch: stripping, socketFactory: recordingSockets(sent) });
  await expectE2EErrorAsync(alice.send(b.did, 'downgraded?'), 'POST_QUANTUM_REQUIRED', null);
  expect(alice.sessions(b.did)).toEqual([]);
  expect(sent.filter((f) => f.type === 'knock' || f.type === 'message')).toEqual([]);
  // 'prefer' through the same registry: a classic session (what a downgrade gives without 'require').
  const carol = await agent({ identity: newIdentity(), fetch: stripping });
  await carol.send(b.did, 'classic');
  await until(() => got.texts.length === 1);
  expect(carol.sessions(b.did)).toEqual([expect.objectContaining({ postQuantum: false })]);
  // An honest registry: 'require' opens.
  const alice2 = await agent({ identity: newIdentity(), postQuantum: 'require' });
  await alice2.send(b.did, 'pq');
  await until(() => got.texts.length === 2);
  expect(alice2.sessions(b.did)).toEqual([expect.objectContaining({ postQuantum: true })]);
});

test("'require' refuses a classic establishment (knock_reject post_quantum_required), spending nothing", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const store = new InMemoryStore();
  const storageKey = randomBytes(32);
  const bob = await agent({ identity: b, postQuantum: 'require', store, storageKey });
  const got = collect(bob);
  const inbound: RejectedEvent[] = [];
  bob.on('rejected', (e) => inbound.push(e));
  const before = await pools(b);
  const sent: Record<string, unknown>[] = [];
  const alice = await agent({ identity: a, postQuantum: 'off', socketFactory: recordingSockets(sent) });
  const outbound: RejectedEvent[] = [];
  alice.on('rejected', (e) => outbound.push(e));
  alice.on('error', () => undefined);
  await alice.send(b.did, 'classic, refused');
  await until(() => inbound.length === 1 && outbound.length === 1);
  expect(inbound).toEqual([{ peer: a.did, direction: 'inbound', reason: 'post_quantum_required' }]);
  expect(outbound).toEqual([{ peer: b.did, direction: 'outbound', reason: 'post_quantum_required' }]);
  expect(bob.sessions(a.did)).toEqual([]);
  expect(got.texts).toEqual([]);
  // Alice's claim took a one-time pre-key and a one-time KEM pre-key off the registry; Bob's saved key manager
  // still holds the one-time pre-key her establishment named.
  expect((await pools(b)).kem).toBe((before.kem as number) - 1);
  const otk = (sent.find((f) => f.type === 'knock')!.establishment as { otk: number }).otk;
  const saved = await StoredKeyManager.load({ store, cipher: new StorageCipher(storageKey), did: b.did });
  expect(saved!.manager.getOneTimePreKey(otk)).toBeDefined();
});

test("'off' ↔ 'prefer' interoperate with classic sessions; an 'off' agent's uploads and knocks carry no KEM field (AGT's wire)", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const log: { method: string; url: string; body: string }[] = [];
  const sent: Record<string, unknown>[] = [];
  const alice = await agent({ identity: a, postQuantum: 'off', fetch: recordingFetch(log), socketFactory: recordingSockets(sent) });
  const bob = await agent({ identity: b });
  const events: SessionEvent[] = [];
  for (const x of [alice, bob]) x.on('session', (e) => events.push(e));
  const got = collect(bob);
  const back = collect(alice);
  await alice.send(b.did, 'off → prefer');
  await until(() => got.texts.length === 1);
  await bob.send(a.did, 'prefer → off'); // on the session Alice opened
  await until(() => back.texts.length === 1);
  expect(events).toEqual([
    { peer: b.did, role: 'initiator', postQuantum: false },
    { peer: a.did, role: 'responder', postQuantum: false },
  ]);
  // Bob opening a fresh session to Alice: her bundle has no KEM pre-key, so it is classic too.
  const dave = await agent({ identity: newIdentity() });
  const daveEvents: SessionEvent[] = [];
  dave.on('session', (e) => daveEvents.push(e));
  await dave.send(a.did, 'prefer → off, fresh');
  await until(() => back.texts.length === 2);
  expect(daveEvents).toEqual([{ peer: a.did, role: 'initiator', postQuantum: false }]);
  expect((await claim(a.did))?.kemPreKey).toBeUndefined();
  expect(await pools(a)).toEqual({ otk: expect.any(Number), kem: 0 });
  // Nothing Alice sent mentions a KEM pre-key: PUT/POST bodies and her knock's establishment are AGT's fields.
  const uploads = log.filter((r) => r.method === 'PUT' || r.method === 'POST');
  expect(uploads.length).toBeGreaterThan(0);
  for (const u of uploads) expect(u.body).not.toMatch(/kem/);
  const knocks = sent.filter((f) => f.type === 'knock');
  expect(knocks).toHaveLength(1);
  expect(Object.keys(knocks[0]!.establishment as object).sort()).toEqual(['ek', 'ik', 'otk', 'spk']);
});

test('agt mode publishes classic bundles (AGT’s registry cannot carry KEM pre-keys) yet opens PQ sessions to a registry bundle that has one', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const log: { method: string; url: string; body: string }[] = [];
  const alice = await agent({ identity: a, agt: true, fetch: recordingFetch(log) });
  const bob = await agent({ identity: b });
  const events: SessionEvent[] = [];
  for (const x of [alice, bob]) x.on('session', (e) => events.push(e));
  const got = collect(bob);
  const back = collect(alice);
  await alice.send(b.did, 'agt → prefer');
  await until(() => got.texts.length === 1);
  const carol = await agent({ identity: newIdentity() });
  carol.on('session', (e) => events.push(e));
  await carol.send(a.did, 'prefer → agt');
  await until(() => back.texts.length === 1);
  expect(events).toEqual([
    { peer: b.did, role: 'initiator', postQuantum: true },
    { peer: a.did, role: 'responder', postQuantum: true },
    { peer: a.did, role: 'initiator', postQuantum: false },
    { peer: carol.did, role: 'responder', postQuantum: false },
  ]);
  for (const u of log.filter((r) => r.method === 'PUT' || r.method === 'POST')) expect(u.body).not.toMatch(/kem/);
});

test("an agent restarted from 'prefer' to 'off' withdraws its KEM pre-keys: a classic bundle, classic uploads", async () => {
  const b = newIdentity();
  const path = join(dir, 'switch.sqlite');
  const storageKey = randomBytes(32);
  const bob = await agent({ identity: b, store: path, storageKey });
  expect((await claim(b.did))?.kemPreKey?.length).toBe(1184);
  await bob.close();
  const log: { method: string; url: string; body: string }[] = [];
  await agent({ identity: b, store: path, storageKey, postQuantum: 'off', fetch: recordingFetch(log) });
  expect((await claim(b.did))?.kemPreKey).toBeUndefined();
  expect(await pools(b)).toEqual({ otk: expect.any(Number), kem: 0 });
  const uploads = log.filter((r) => r.method === 'PUT' || r.method === 'POST');
  expect(uploads.map((u) => u.method)).toContain('PUT');
  for (const u of uploads) expect(u.body).not.toMatch(/kem/);
});

test('a last-resort KEM pre-key rotated while the agent was down is published at the next start', async () => {
  const b = newIdentity();
  const path = join(dir, 'rotate.sqlite');
  const storageKey = randomBytes(32);
  await (await agent({ identity: b, store: path, storageKey })).close();
  const store = new SqliteStore(path);
  const keys = (await StoredKeyManager.load({ store, cipher: new StorageCipher(storageKey), did: b.did }))!;
  const rotated = await keys.update((m) => m.generateLastResortKemPreKey().keyId);
  store.close();
  const log: { method: string; url: string; body: string }[] = [];
  await agent({ identity: b, store: path, storageKey, fetch: recordingFetch(log) });
  const puts = log.filter((r) => r.method === 'PUT').map((r) => JSON.parse(r.body) as { kem_pre_key?: { key_id: number } });
  expect(puts.map((p) => p.kem_pre_key?.key_id)).toEqual([rotated]);
});

test('a registry of ours from before KEM pre-keys (no kem_count): upkeep notices, publishes classic, tries no KEM upload again', async () => {
  const log: { method: string; url: string; body: string }[] = [];
  const old = recordingFetch(log, (_url, _method, text) => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return text;
    }
    delete body.kem_count;
    delete body.kem_pre_key;
    return JSON.stringify(body);
  });
  const b = newIdentity();
  const path = join(dir, 'old-registry.sqlite');
  const storageKey = randomBytes(32);
  const errors: unknown[] = [];
  const bob = await agent({ identity: b, fetch: old, store: path, storageKey });
  bob.on('error', (e) => errors.push(e));
  await bob.maintainPreKeys();
  const kemUploads = log.filter((r) => r.method === 'POST' && r.body.includes('kem_pre_keys'));
  expect(kemUploads).toEqual([]);
  expect(errors).toEqual([]);
  const alice = await agent({ identity: newIdentity(), fetch: old });
  const got = collect(bob);
  await alice.send(b.did, 'classic through an old registry');
  await until(() => got.texts.length === 1);
  expect(alice.sessions(b.did)).toEqual([expect.objectContaining({ postQuantum: false })]);
  // The registry is upgraded: at the next start the bundle is published again, with its KEM pre-key.
  await bob.close();
  const upgraded: { method: string; url: string; body: string }[] = [];
  await agent({ identity: b, store: path, storageKey, fetch: recordingFetch(upgraded) });
  expect(upgraded.filter((r) => r.method === 'PUT' && r.body.includes('kem_pre_key'))).toHaveLength(1);
  expect((await claim(b.did))?.kemPreKey?.length).toBe(1184);
});

test('a registry that refuses one-time KEM uploads (422): tried once, then not again (no KEM pre-keys pile up in the key manager)', async () => {
  const posts: string[] = [];
  const refusing = (async (url: string, init: RequestInit) => {
    if (init.method === 'POST' && typeof init.body === 'string' && init.body.includes('kem_pre_keys')) {
      posts.push(init.body);
      return { status: 422, text: async () => JSON.stringify({ detail: 'one_time_pre_keys must be a list' }) };
    }
    const r = await fetch(url, init);
    const text = await r.text();
    return { status: r.status, text: async () => text };
  }) as never;
  const bob = await agent({ identity: newIdentity(), fetch: refusing });
  await bob.maintainPreKeys();
  await bob.maintainPreKeys();
  expect(posts).toHaveLength(1);
});

test('postQuantum is checked: anything but require/prefer/off is INVALID_ARGUMENT', async () => {
  const connecting = MeshAgent.connect({ url: server.url, identity: newIdentity(), postQuantum: 'yes' as never });
  connecting.then((a) => agents.push(a)).catch(() => undefined); // closed after the test should it connect
  await expectE2EErrorAsync(connecting, 'INVALID_ARGUMENT', null);
});
