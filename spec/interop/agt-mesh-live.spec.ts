/**
 * Our MeshAgent against AGT's own Python relay and registry, live (issue 12). Runs only when
 * `AGT_RELAY_URL` (the relay's base URL, `http://127.0.0.1:18083`; `ws://…/ws` is accepted too) and
 * `AGT_REGISTRY_URL` (`http://127.0.0.1:18082`) are set; `scripts/agt-local.sh` starts both servers from a
 * local copy of AGT's repository and runs this file. With `AGT_MESHCLIENT` also set (the path of AGT's built
 * `agent-governance-typescript/dist/encryption/index.js`), AGT's current TypeScript MeshClient, unmodified,
 * is the peer of our agents in the last block. No AGT code lives in this repository.
 *
 * What it checks, all with `agt: true`: two of our agents both ways (each one opening), simultaneous opens
 * (G6), an offline peer's mail stored by the relay and delivered once after it comes back (acked, so not
 * again on the next reconnect), the 4006 takeover; with `AGT_LIVE_SLOW=1`, that the default heartbeat keeps
 * an idle agent live past the relay's 90 s idle close and staleness (G8); and with AGT's MeshClient:
 * ours → AGT, AGT → ours, and AGT's mail stored while it was offline.
 *
 * AGT's MeshClient runs in a child process (its @noble/* dependencies are ESM-only and do not load under
 * jest), driven by one JSON line per command on stdin and reporting one JSON line per event on stdout.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { AgentIdentity } from '../../lib/trust';
import { InMemoryStore } from '../../lib/store/memory';
import { MeshAgent, MeshAgentOptions } from '../../lib/mesh';
import { collect, until } from '../mesh/helpers';

const RELAY = process.env.AGT_RELAY_URL ?? '';
const REGISTRY = process.env.AGT_REGISTRY_URL ?? '';
const MESHCLIENT = process.env.AGT_MESHCLIENT ?? '';
const LIVE = RELAY !== '' && REGISTRY !== '';

/** The relay's http(s) base, from either form of `AGT_RELAY_URL`. */
const relayBase = RELAY.replace(/\/+$/, '').replace(/\/ws$/, '').replace(/^ws/, 'http');

if (!LIVE) {
  test.skip('AGT live interop is off: set AGT_RELAY_URL and AGT_REGISTRY_URL (AGT relay + registry, see scripts/agt-local.sh) to run it', () =>
    undefined);
} else {
  describe("MeshAgent on AGT's relay and registry (live)", () => {
    const agents: MeshAgent[] = [];

    async function agent(identity: AgentIdentity, o: Partial<MeshAgentOptions> = {}): Promise<MeshAgent> {
      const a = await MeshAgent.connect({
        relayUrl: relayBase,
        registryUrl: REGISTRY,
        agt: true,
        identity,
        heartbeatMs: 5_000,
        connectTimeoutMs: 15_000,
        backoff: { baseMs: 100, maxMs: 1_000 },
        ...o,
      });
      agents.push(a);
      return a;
    }

    async function relayStats(): Promise<{ messages_routed: number; messages_stored: number; messages_delivered: number }> {
      const r = await fetch(`${relayBase}/health`);
      return ((await r.json()) as { stats: { messages_routed: number; messages_stored: number; messages_delivered: number } }).stats;
    }

    beforeAll(() => ready());

    afterEach(async () => {
      await Promise.all(agents.splice(0).map((a) => a.close()));
    });

    test("the URLs are AGT's relay and registry", async () => {
      const relay = (await (await fetch(`${relayBase}/health`)).json()) as { service?: string };
      const registry = (await (await fetch(`${REGISTRY.replace(/\/+$/, '')}/health`)).json()) as { service?: string };
      expect(relay.service).toBe('agentmesh-relay');
      expect(registry.service).toBe('agentmesh-registry');
    });

    test('two agents: A opens, B answers; then B opens to a third agent C that answers back', async () => {
      const a = AgentIdentity.generate();
      const b = AgentIdentity.generate();
      const c = AgentIdentity.generate();
      const alice = await agent(a);
      const bob = await agent(b);
      const carol = await agent(c);
      const atA = collect(alice);
      const atB = collect(bob);
      const atC = collect(carol);
      bob.on('message', async (m) => {
        if (m.from === a.did && m.text() === 'ping') await bob.send(m.from, { reply: 'pong' });
      });
      carol.on('message', async (m) => {
        if (m.from === b.did) await carol.send(m.from, { echo: m.json() });
      });
      const id = await alice.send(b.did, 'ping');
      await alice.send(b.did, { n: 1 });
      await alice.send(b.did, new Uint8Array([0, 127, 7]));
      await until(() => atB.messages.length === 3 && atA.messages.length === 1, 10_000, 'A → B and the reply');
      expect(atB.messages[0].from).toBe(a.did);
      expect(atB.messages[0].id).toBe(id);
      expect(atB.messages[1].json()).toEqual({ n: 1 });
      expect([...atB.messages[2].data]).toEqual([0, 127, 7]);
      expect(atA.messages[0].json()).toEqual({ reply: 'pong' });
      expect(alice.sessions(b.did)).toEqual([expect.objectContaining({ role: 'initiator', current: true })]);
      expect(bob.sessions(a.did)).toEqual([expect.objectContaining({ role: 'responder', current: true })]);

      await bob.send(c.did, { from: 'bob' });
      await until(() => atC.messages.length === 1 && atB.messages.length === 4, 10_000, 'B → C and the echo');
      expect(atC.messages[0].from).toBe(b.did);
      expect(atB.messages[3].json()).toEqual({ echo: { from: 'bob' } });
      expect(bob.sessions(c.did)).toEqual([expect.objectContaining({ role: 'initiator' })]);
      expect([...atA.errors, ...atB.errors, ...atC.errors]).toEqual([]);
    }, 60_000);

    test('simultaneous opens (glare, G6): both first messages arrive and later ones flow both ways', async () => {
      const a = AgentIdentity.generate();
      const b = AgentIdentity.generate();
      const alice = await agent(a);
      const bob = await agent(b);
      const atA = collect(alice);
      const atB = collect(bob);
      await Promise.all([alice.send(b.did, { first: 'a' }), bob.send(a.did, { first: 'b' })]);
      await until(() => atA.messages.length === 1 && atB.messages.length === 1, 10_000, 'both first messages');
      await alice.send(b.did, { second: 'a' });
      await bob.send(a.did, { second: 'b' });
      await until(() => atA.messages.length === 2 && atB.messages.length === 2, 10_000, 'both second messages');
      expect(atB.messages.map((m) => m.json())).toEqual([{ first: 'a' }, { second: 'a' }]);
      expect(atA.messages.map((m) => m.json())).toEqual([{ first: 'b' }, { second: 'b' }]);
      expect([...atA.errors, ...atB.errors]).toEqual([]);
    }, 60_000);

    test('an offline peer: the relay stores, the peer gets each message once on return, acks, and nothing comes again', async () => {
      const a = AgentIdentity.generate();
      const b = AgentIdentity.generate();
      const bobStore = new InMemoryStore();
      const storageKey = randomBytes(32);
      const alice = await agent(a);
      let bob = await agent(b, { store: bobStore, storageKey });
      const first = collect(bob);
      await alice.send(b.did, 'hello');
      await until(() => first.messages.length === 1, 10_000, 'the live message');
      await bob.close();
      const before = await relayStats();
      for (let i = 0; i < 3; i++) await alice.send(b.did, `offline ${i}`);
      await until(() => false, 300, 'nothing').catch(() => undefined);
      const stored = await relayStats();
      expect(stored.messages_stored - before.messages_stored).toBeGreaterThanOrEqual(3);

      bob = await agent(b, { store: bobStore, storageKey });
      const back = collect(bob);
      await until(() => back.messages.length === 3, 10_000, 'the stored messages');
      expect(back.texts).toEqual(['offline 0', 'offline 1', 'offline 2']);
      expect(back.messages.every((m) => m.from === a.did)).toBe(true);
      // Acknowledged: a further reconnect gets nothing again (AGT deletes stored mail on ack only).
      await new Promise((r) => setTimeout(r, 500));
      await bob.close();
      bob = await agent(b, { store: bobStore, storageKey });
      const again = collect(bob);
      let duplicates = 0;
      bob.on('duplicate', () => duplicates++);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(again.messages).toEqual([]);
      expect(duplicates).toBe(0);
      // And the restored session still works both ways.
      await bob.send(a.did, 'back');
      const atA = collect(alice);
      await until(() => atA.texts.includes('back'), 10_000, 'B → A after the restart');
    }, 60_000);

    test('a second connection with the same DID takes the mailbox (4006): the first gets `replaced`', async () => {
      const a = AgentIdentity.generate();
      const first = await agent(a);
      const replaced: unknown[] = [];
      first.on('replaced', (e) => replaced.push(e));
      await agent(a);
      await until(() => replaced.length === 1, 10_000, 'the replaced event');
      expect(first.state).toBe('replaced');
    }, 30_000);

    if (process.env.AGT_LIVE_SLOW !== '1') {
      test.skip('the 100 s heartbeat check is off: set AGT_LIVE_SLOW=1 to run it', () => undefined);
    } else {
      test("default heartbeats keep an idle agent live past AGT's 90 s idle close and staleness (G8)", async () => {
        const a = AgentIdentity.generate();
        const b = AgentIdentity.generate();
        const alice = await agent(a, { heartbeatMs: undefined });
        const bob = await agent(b, { heartbeatMs: undefined });
        const atB = collect(bob);
        const drops: unknown[] = [];
        alice.on('disconnected', (d) => drops.push(d));
        bob.on('disconnected', (d) => drops.push(d));
        await alice.send(b.did, 'before');
        await until(() => atB.messages.length === 1, 10_000, 'the first message');
        await new Promise((r) => setTimeout(r, 100_000));
        const before = await relayStats();
        await alice.send(b.did, 'after 100 s');
        await until(() => atB.messages.length === 2, 2_000, 'the live message after 100 s');
        const after = await relayStats();
        expect(after.messages_stored - before.messages_stored).toBe(0);
        expect(drops).toEqual([]);
      }, 130_000);
    }

    const withClient = MESHCLIENT !== '' && existsSync(MESHCLIENT);
    if (!withClient) {
      test.skip("AGT MeshClient peer is off: set AGT_MESHCLIENT to AGT's built agent-governance-typescript/dist/encryption/index.js (see scripts/agt-local.sh)", () =>
        undefined);
    } else {
      describe("with AGT's current TypeScript MeshClient on the other side", () => {
        let peer: AgtPeer | null = null;

        afterEach(async () => {
          await peer?.stop();
          peer = null;
        });

        test("ours → AGT: our knock opens AGT's session, AGT answers on it", async () => {
          peer = await AgtPeer.start(relayBase, REGISTRY);
          const ours = await agent(AgentIdentity.generate());
          const got = collect(ours);
          await ours.send(peer.did, { hello: 'from ours', n: 1 });
          await ours.send(peer.did, { hello: 'from ours', n: 2 });
          await until(() => got.messages.length === 2, 15_000, "AGT's echoes");
          expect(got.messages.map((m) => m.json())).toEqual([
            { echo: { hello: 'from ours', n: 1 } },
            { echo: { hello: 'from ours', n: 2 } },
          ]);
          expect(got.messages.every((m) => m.from === peer?.did)).toBe(true);
          expect(peer.messages.map((m) => m.payload)).toEqual([
            { hello: 'from ours', n: 1 },
            { hello: 'from ours', n: 2 },
          ]);
          expect(peer.messages.every((m) => m.from === ours.did)).toBe(true);
          expect(peer.errors).toEqual([]);
          expect(got.errors).toEqual([]);
        }, 60_000);

        test("AGT → ours: AGT's knock (its establishment) opens our session, we answer on it", async () => {
          peer = await AgtPeer.start(relayBase, REGISTRY);
          const ours = await agent(AgentIdentity.generate());
          const got = collect(ours);
          ours.on('message', async (m) => {
            const p = m.json<{ from_agt?: number }>();
            if (typeof p.from_agt === 'number') await ours.send(m.from, { reply: p.from_agt });
          });
          await peer.send(ours.did, { from_agt: 1 });
          await peer.send(ours.did, { from_agt: 2 });
          // AGT echoes our replies too (its echo rule), on the same session.
          await until(
            () => peer !== null && peer.messages.length === 2 && got.messages.length === 4,
            15_000,
            'our replies at AGT and its echoes',
          );
          expect(got.messages.map((m) => m.json())).toEqual([
            { from_agt: 1 },
            { from_agt: 2 },
            { echo: { reply: 1 } },
            { echo: { reply: 2 } },
          ]);
          expect(got.messages.every((m) => m.from === peer?.did)).toBe(true);
          expect(ours.sessions(peer.did)).toEqual([expect.objectContaining({ role: 'responder', current: true })]);
          expect(peer.messages.map((m) => m.payload)).toEqual([{ reply: 1 }, { reply: 2 }]);
          expect(peer.errors).toEqual([]);
          expect(got.errors).toEqual([]);
        }, 60_000);

        test('AGT offline: the relay stores ours, AGT gets it on reconnect and acks it', async () => {
          peer = await AgtPeer.start(relayBase, REGISTRY);
          const ours = await agent(AgentIdentity.generate());
          const got = collect(ours);
          await ours.send(peer.did, { live: true });
          await until(() => got.messages.length === 1, 15_000, 'the live echo');
          await peer.command({ cmd: 'disconnect' }, 'disconnected');
          const before = await relayStats();
          await ours.send(peer.did, { stored: true });
          await until(() => false, 300, 'nothing').catch(() => undefined);
          expect((await relayStats()).messages_stored - before.messages_stored).toBeGreaterThanOrEqual(1);
          await peer.command({ cmd: 'connect' }, 'connected');
          await until(() => got.messages.length === 2, 15_000, 'the echo of the stored message');
          expect(peer.messages.map((m) => m.payload)).toEqual([{ live: true }, { stored: true }]);
          expect(got.messages[1].json()).toEqual({ echo: { stored: true } });
          expect(peer.errors).toEqual([]);
        }, 60_000);
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// AGT's MeshClient in a child process

/** The child: AGT's MeshClient, unmodified, driven over stdin/stdout; echoes every payload without `echo`. */
const DRIVER = String.raw`
'use strict';
const [modPath, relayUrl, registryUrl] = process.argv.slice(-3);
const { MeshClient, X3DHKeyManager } = require(modPath);
const { createHash, generateKeyPairSync } = require('node:crypto');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const hard = setTimeout(() => { out({ ev: 'fatal', error: 'driver timed out' }); process.exit(2); }, 120000);
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const pub = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }).subarray(-32));
const seed = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32));
const did = 'did:mesh:' + createHash('sha256').update(pub).digest('hex').slice(0, 32);
const client = new MeshClient({ relayUrl, registryUrl, keyManager: new X3DHKeyManager(seed, pub), agentDid: did,
  autoReconnect: false, oneTimePrekeyCount: 5 });
client.onMessage((from, payload) => {
  out({ ev: 'message', from, payload });
  if (payload && typeof payload === 'object' && !('echo' in payload)) {
    client.send(from, { echo: payload }).catch((e) => out({ ev: 'error', kind: 'echo', detail: String(e) }));
  }
});
client.onError((kind, from, detail) => out({ ev: 'error', kind, from, detail }));
client.onDisconnect((reason, code) => out({ ev: 'closed', reason, code }));
async function run(c) {
  if (c.cmd === 'send') {
    await client.establishSessionWithPeer(c.peer);
    await client.send(c.peer, c.payload);
    out({ ev: 'sent', ref: c.ref });
  } else if (c.cmd === 'disconnect') {
    await client.disconnect();
    out({ ev: 'disconnected', ref: c.ref });
  } else if (c.cmd === 'connect') {
    await client.connect();
    out({ ev: 'connected', ref: c.ref });
  } else if (c.cmd === 'exit') {
    await client.disconnect().catch(() => undefined);
    clearTimeout(hard);
    process.exit(0);
  }
}
let buf = '';
let chain = Promise.resolve();
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const c = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    chain = chain.then(() => run(c)).catch((e) => out({ ev: 'failed', ref: c.ref, error: String(e && e.stack || e) }));
  }
});
process.stdin.on('end', () => { client.disconnect().catch(() => undefined).then(() => process.exit(0)); });
client.connect().then(() => out({ ev: 'ready', did: client.currentDid }), (e) => { out({ ev: 'fatal', error: String(e) }); process.exit(1); });
`;

type PeerEvent = { ev: string; ref?: number; [k: string]: unknown };

/** One AGT MeshClient in a child process. */
class AgtPeer {
  readonly messages: { from: string; payload: unknown }[] = [];
  readonly errors: PeerEvent[] = [];
  did = '';
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #events: PeerEvent[] = [];
  #stderr = '';
  #ref = 0;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let e: PeerEvent;
        try {
          e = JSON.parse(line) as PeerEvent;
        } catch {
          continue;
        }
        this.#events.push(e);
        if (e.ev === 'message') this.messages.push({ from: String(e.from), payload: e.payload });
        // AGT's relay answers MeshClient's fetch_pending with an error frame, which MeshClient ignores.
        if (e.ev === 'error' || e.ev === 'failed' || e.ev === 'fatal') this.errors.push(e);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-4000);
    });
  }

  /** Starts a MeshClient (it registers, uploads its pre-keys and connects) and waits for its DID. */
  static async start(relayUrl: string, registryUrl: string): Promise<AgtPeer> {
    const flags = ['--experimental-require-module'];
    if (Number(process.versions.node.split('.')[0]) < 22) flags.push('--experimental-websocket');
    const child = spawn(process.execPath, [...flags, '-e', DRIVER, '--', MESHCLIENT, relayUrl, registryUrl], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const p = new AgtPeer(child);
    try {
      const ready = await p.#wait((e) => e.ev === 'ready' || e.ev === 'fatal', 20_000, 'AGT MeshClient ready');
      if (ready.ev !== 'ready') throw new Error(`AGT MeshClient failed: ${String(ready.error)}`);
      p.did = String(ready.did);
      return p;
    } catch (e) {
      await p.stop();
      throw e;
    }
  }

  /** MeshClient opens a session to `peer` if it has none, and sends `payload`. */
  async send(peer: string, payload: unknown): Promise<void> {
    const done = await this.command({ cmd: 'send', peer, payload }, 'sent');
    void done;
  }

  /** Runs a command; resolves on the event `ev` for it, rejects on its failure. */
  async command(c: Record<string, unknown>, ev: string): Promise<PeerEvent> {
    const ref = ++this.#ref;
    this.#child.stdin.write(JSON.stringify({ ...c, ref }) + '\n');
    const e = await this.#wait((x) => x.ref === ref && (x.ev === ev || x.ev === 'failed'), 15_000, `AGT ${String(c.cmd)}`);
    if (e.ev === 'failed') throw new Error(`AGT MeshClient ${String(c.cmd)} failed: ${String(e.error)}`);
    return e;
  }

  /** Ends the child (it disconnects first); kills it if it does not exit in 3 s. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.#child.once('exit', () => r()));
    try {
      this.#child.stdin.write(JSON.stringify({ cmd: 'exit' }) + '\n');
      this.#child.stdin.end();
    } catch {
      // already gone
    }
    const t = setTimeout(() => this.#child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(t);
  }

  async #wait(pred: (e: PeerEvent) => boolean, ms: number, what: string): Promise<PeerEvent> {
    const end = Date.now() + ms;
    for (;;) {
      const e = this.#events.find(pred);
      if (e) return e;
      if (this.#child.exitCode !== null) throw new Error(`${what}: the AGT child exited (${this.#child.exitCode}): ${this.#stderr}`);
      if (Date.now() > end) throw new Error(`${what}: timed out; stderr: ${this.#stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
