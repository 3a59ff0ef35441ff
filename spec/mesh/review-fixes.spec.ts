/**
 * Delivery holes an adversarial review of the mesh found, each as the scenario that broke it:
 * a handler that throws, an iterator that ends with messages queued, a crash right after a knock
 * was accepted, and a first message too large to send.
 */
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { MAX_PLAINTEXT_BYTES } from '../../lib/limits';
import { InMemoryStore } from '../../lib/store/memory';
import { AgentStore } from '../../lib/store/types';
import { AgentIdentity } from '../../lib/trust';
import { MeshAgent } from '../../lib/mesh';
import { MemoryInboxStore } from '../../lib/server/inbox';
import { MeshServer, startMeshServer } from '../../lib/server';
import { buildConnectFrame } from '../../lib/mesh/frames';
import { WebSocket } from 'ws';
import { expectE2EErrorAsync } from '../helpers/expect-error';

beforeAll(() => ready());

let server: MeshServer;
let inbox: MemoryInboxStore;
const agents: MeshAgent[] = [];
beforeEach(async () => {
  inbox = new MemoryInboxStore();
  server = await startMeshServer({ port: 0, inbox });
});
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close().catch(() => undefined)));
  await server.close();
});

async function agent(o: Partial<Parameters<typeof MeshAgent.connect>[0]> = {}): Promise<MeshAgent> {
  const a = await MeshAgent.connect({ url: server.url, identity: AgentIdentity.generate(), backoff: { baseMs: 20, maxMs: 100 }, ...o });
  a.on('error', () => undefined);
  agents.push(a);
  return a;
}

/**
 * Makes the relay deliver again what `a` has not acknowledged: another connection takes `a`'s mailbox
 * (a 4006 takeover), goes away without acknowledging anything, and `a` reconnects.
 */
async function redeliver(a: MeshAgent, id: AgentIdentity): Promise<void> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`);
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify(buildConnectFrame(id, { features: [] })));
  await until(() => a.state !== 'connected', 5000, 'the takeover');
  ws.close();
  await new Promise((r) => setTimeout(r, 100));
  a.reconnect();
}

async function until(cond: () => boolean, ms = 5000, what = 'the condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a handler that throws: the message is not acknowledged, and its redelivery reaches the handler again', async () => {
  const alice = await agent();
  const bobId = AgentIdentity.generate();
  const bob = await agent({ identity: bobId });
  bob.on('replaced', () => undefined);
  const seen: string[] = [];
  bob.on('message', (m) => {
    seen.push(m.text());
    if (seen.length === 1) throw new Error('the application failed');
  });
  await alice.send(bob.did, 'hello');
  await until(() => seen.length === 1, 5000, 'the first delivery');
  await new Promise((r) => setTimeout(r, 200));
  expect(inbox.count(bob.did)).toBe(1); // still at the relay
  await redeliver(bob, bobId); // the relay delivers what was not acknowledged again
  await until(() => seen.length === 2, 5000, 'the redelivery');
  expect(seen).toEqual(['hello', 'hello']);
  await until(() => inbox.count(bob.did) === 0, 5000, 'the acknowledgement');
});

test('an iterator that ends with messages queued does not acknowledge them: they come again', async () => {
  const alice = await agent();
  const carolId = AgentIdentity.generate();
  const carol = await agent({ identity: carolId });
  carol.on('replaced', () => undefined);
  const it = carol.messages();
  await alice.send(carol.did, 'for carol');
  await new Promise((r) => setTimeout(r, 300));
  await it.return!();
  await new Promise((r) => setTimeout(r, 300));
  expect(inbox.count(carol.did)).toBe(1); // never seen by the application: not acknowledged
  const got: string[] = [];
  carol.on('message', (m) => {
    got.push(m.text());
  });
  await redeliver(carol, carolId);
  await until(() => got.length === 1, 5000, 'the redelivery');
  expect(got).toEqual(['for carol']);
});

test('a crash right after a knock was accepted: the restarted agent still has the session and reads the message', async () => {
  const disk = new InMemoryStore(); // what survives the crash
  const storageKey = randomBytes(32);
  const bobId = AgentIdentity.generate();
  let dying = false;
  // From the moment `dying` is set, writes of accepted sessions ('#r.' slots) never complete: the process died.
  const crashing = new Proxy(disk, {
    get(t, p) {
      const v = (t as unknown as Record<string | symbol, unknown>)[p];
      if (p === 'saveSession' || p === 'saveSessionWithInbox' || p === 'saveAcceptance') {
        return (...a: unknown[]) =>
          dying && String(a[1]).includes('#r.') ? new Promise(() => undefined) : (v as (...x: unknown[]) => unknown).apply(t, a);
      }
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
    },
  }) as unknown as AgentStore;
  const bob1 = await MeshAgent.connect({ url: server.url, identity: bobId, store: crashing, storageKey });
  bob1.on('error', () => undefined);
  bob1.on('message', () => undefined);
  const alice = await agent();
  const aliceEvents: string[] = [];
  alice.on('session-reset', () => aliceEvents.push('session-reset'));
  dying = true;
  await alice.send(bobId.did, 'first message');
  await new Promise((r) => setTimeout(r, 500));
  // Bob's process is gone (never closed); a new one starts from what reached the disk.
  const bob2 = await agent({ identity: bobId, store: disk, storageKey, undecryptableGraceMs: 300 });
  const got: string[] = [];
  bob2.on('message', (m) => {
    got.push(m.text());
  });
  await until(() => got.length === 1, 5000, 'the message after the restart');
  expect(got).toEqual(['first message']);
  expect(aliceEvents).toEqual([]);
});

test('a first message too large to send opens no unannounced session: the next one is read', async () => {
  const alice = await agent();
  const bob = await agent({ undecryptableGraceMs: 300 });
  const got: string[] = [];
  const resets: string[] = [];
  bob.on('message', (m) => {
    got.push(m.text());
  });
  alice.on('session-reset', () => resets.push('reset'));
  await expectE2EErrorAsync(alice.send(bob.did, new Uint8Array(MAX_PLAINTEXT_BYTES + 1)), 'MESSAGE_TOO_LARGE');
  expect(alice.sessions(bob.did)).toEqual([]);
  await alice.send(bob.did, 'second, normal message');
  await until(() => got.length === 1, 5000, 'the normal message');
  expect(got).toEqual(['second, normal message']);
  expect(resets).toEqual([]);
});

/** A raw relay connection with a fresh, unregistered identity: what anyone with a key pair has. */
async function stranger(): Promise<{ id: AgentIdentity; ws: WebSocket; knock: (to: string, extra?: Record<string, unknown>) => void }> {
  const id = AgentIdentity.generate();
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`);
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify(buildConnectFrame(id, { features: [] })));
  await new Promise((r) => setTimeout(r, 50));
  let n = 0;
  const knock = (to: string, extra: Record<string, unknown> = {}) =>
    ws.send(
      JSON.stringify({
        v: 1,
        type: 'knock',
        from: id.did,
        to,
        id: `k-${id.did.slice(-6)}-${n++}`,
        ts: new Date().toISOString(),
        establishment: {},
        ...extra,
      }),
    );
  return { id, ws, knock };
}

test("knocks from strangers get a bounded number of automatic rejects: the agent's own relay quota is not spent on them", async () => {
  const alice = await agent();
  const bob = await agent();
  const s = await stranger();
  for (let i = 0; i < 300; i++) s.knock(bob.did);
  await new Promise((r) => setTimeout(r, 1500));
  s.ws.close();
  expect(inbox.count(s.id.did)).toBeLessThanOrEqual(2); // Bob's rejects stored for the stranger: 2 per peer
  const many = await Promise.all(Array.from({ length: 30 }, () => stranger()));
  for (const m of many) for (let i = 0; i < 10; i++) m.knock(bob.did);
  await new Promise((r) => setTimeout(r, 1500));
  const stored = many.reduce((n, m) => n + inbox.count(m.id.did), 0);
  expect(stored).toBeLessThanOrEqual(60);
  many.forEach((m) => m.ws.close());
  const got: string[] = [];
  alice.on('message', (m) => {
    got.push(m.text());
  });
  await bob.send(alice.did, 'still sending');
  await until(() => got.length === 1, 5000, "Bob's own message");
});

test("knocks without a key make at most a few registry look-ups per stranger: the agent's registry budget stays its own", async () => {
  let lookups = 0;
  let strangerDid = '';
  const counting = ((url: string, init?: RequestInit) => {
    if (strangerDid !== '' && String(url).includes(encodeURIComponent(strangerDid))) lookups++;
    return fetch(url, init);
  }) as typeof fetch;
  const bob = await agent({ fetch: counting as never });
  const s = await stranger();
  strangerDid = s.id.did;
  const establishment = { ik: Buffer.alloc(32, 9).toString('base64'), ek: Buffer.alloc(32, 7).toString('base64') };
  for (let i = 0; i < 50; i++) s.knock(bob.did, { establishment });
  await new Promise((r) => setTimeout(r, 1500));
  s.ws.close();
  expect(lookups).toBeLessThanOrEqual(3);
  const carol = await agent();
  const got: string[] = [];
  carol.on('message', (m) => {
    got.push(m.text());
  });
  await bob.send(carol.did, 'a new peer'); // claims Carol's bundle: the registry budget is intact
  await until(() => got.length === 1, 5000, 'the message to a new peer');
});
