/**
 * AGT's client-side gaps, each as the attack or fault (AGT-WIRE.md §3.4): G1 a relay forging `from`, G5
 * redelivery, G6 simultaneous opens, G7 a peer that lost its state, G8 heartbeats; plus auth failures and
 * dead links. A scriptable fake relay (spec/mesh/helpers.ts) stands in for a malicious or faulty relay;
 * the registry is the real server's.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { randomBytes } from '../../lib/crypto';
import { InMemoryStore } from '../../lib/store';
import { MeshAgent, MeshAgentOptions } from '../../lib/mesh';
import { startMeshServer, MeshServer } from '../../lib/server';
import { FakeRelay, collect, newIdentity, until } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

let server: MeshServer;
let relay: FakeRelay;
let dir: string;
const agents: MeshAgent[] = [];

async function viaFake(o: Omit<MeshAgentOptions, 'url'>): Promise<MeshAgent> {
  const a = await MeshAgent.connect({ relayUrl: relay.url, registryUrl: server.url, heartbeatMs: 1000, undecryptableGraceMs: 100, ...o });
  agents.push(a);
  return a;
}

async function viaServer(o: Omit<MeshAgentOptions, 'url'>): Promise<MeshAgent> {
  const a = await MeshAgent.connect({ url: server.url, heartbeatMs: 1000, undecryptableGraceMs: 100, ...o });
  agents.push(a);
  return a;
}

beforeAll(async () => {
  await ready();
  dir = mkdtempSync(join(tmpdir(), 'mesh-gaps-'));
  server = await startMeshServer({ port: 0, registry: { registerBurst: 1000, uploadBurst: 1000, bundleFetchBurst: 1000 } });
});

beforeEach(async () => {
  relay = await FakeRelay.start();
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await relay.close();
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('G1: a relay forging `from` cannot inject', () => {
  for (const variant of ['own key', 'victim Ed25519 key', 'no Ed25519 key'] as const) {
    test(`knock + message in Alice's name from Mallory's keys (${variant}) are refused, nothing delivered`, async () => {
      const a = newIdentity();
      const b = newIdentity();
      const m = newIdentity();
      const alice = await viaFake({ identity: a });
      const bob = await viaFake({ identity: b });
      const mallory = await viaFake({ identity: m });
      const got = collect(bob);
      const rejected: string[] = [];
      bob.on('rejected', (e) => rejected.push(`${e.peer === a.did ? 'alice' : e.peer}:${e.reason}`));
      // The relay re-labels everything Mallory sends as Alice's.
      relay.route = (from, frame) => {
        if (from !== m.did) return true;
        const forged: Record<string, unknown> = { ...frame, from: a.did };
        if (variant === 'victim Ed25519 key' && 'identity_key_ed' in forged)
          forged.identity_key_ed = Buffer.from(a.publicKey).toString('base64');
        if (variant === 'no Ed25519 key') delete forged.identity_key_ed;
        relay.deliver(String(frame.to), forged);
        return false;
      };
      await mallory.send(b.did, { transfer: 'all funds' });
      await until(() => rejected.length === 1, 5000, 'the refusal');
      expect(rejected).toEqual(['alice:not_bound_to_did']);
      await new Promise((r) => setTimeout(r, 400)); // past the grace for the message frame
      expect(got.texts).toEqual([]);
      expect(bob.sessions(a.did)).toEqual([]);
      // The forged message frame was acknowledged (dropped), never delivered; the genuine Alice still gets through.
      await alice.send(b.did, 'genuine');
      await until(() => got.texts.length === 1);
      expect(got.messages[0]).toMatchObject({ from: a.did });
      expect(got.texts).toEqual(['genuine']);
    });
  }
});

describe('G5: redelivery is idempotent and never costs the session', () => {
  test('every frame delivered three times: handled once, each copy acknowledged, session goes on', async () => {
    const a = newIdentity();
    const b = newIdentity();
    const alice = await viaFake({ identity: a });
    const bob = await viaFake({ identity: b });
    const got = collect(bob);
    const dups: string[] = [];
    bob.on('duplicate', (d) => dups.push(d.id));
    relay.route = (from, frame) => {
      if (from === a.did) for (let i = 0; i < 3; i++) relay.deliver(String(frame.to), { ...frame, from });
      return from !== a.did;
    };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send(b.did, `m${i}`));
    await until(() => got.texts.length === 5);
    await until(
      () => ids.every((id) => relay.framesFrom(b.did, 'ack').filter((f) => f.id === id).length === 3),
      5000,
      'acks of every copy',
    );
    expect(got.texts).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(new Set(dups)).toEqual(new Set([...ids, ...relay.framesFrom(a.did, 'knock').map((f) => String(f.id))]));
    relay.route = () => true;
    await alice.send(b.did, 'still fine');
    await bob.send(a.did, 'both ways');
    await until(() => got.texts.length === 6);
    expect(bob.sessions(a.did)).toHaveLength(1);
  });

  test('after a restart (SQLite), old frames pushed again are acknowledged and dropped, not re-handled', async () => {
    const a = newIdentity();
    const b = newIdentity();
    const path = join(dir, 'g5-bob.sqlite');
    const storageKey = randomBytes(32);
    const alice = await viaFake({ identity: a });
    let bob = await viaFake({ identity: b, store: path, storageKey });
    let got = collect(bob);
    for (let i = 0; i < 3; i++) await alice.send(b.did, `m${i}`);
    await until(() => got.texts.length === 3);
    const old = relay.received.filter((r) => r.from === a.did && (r.frame.type === 'knock' || r.frame.type === 'message'));
    await bob.close();
    bob = await viaFake({ identity: b, store: path, storageKey });
    got = collect(bob);
    const dups: string[] = [];
    bob.on('duplicate', (d) => dups.push(d.id));
    for (const r of old) relay.deliver(b.did, { ...r.frame, from: a.did });
    await until(() => dups.length === old.length, 5000, 'the duplicates');
    await alice.send(b.did, 'new');
    await until(() => got.texts.length === 1);
    expect(got.texts).toEqual(['new']);
    expect(bob.sessions(a.did)).toHaveLength(1);
  });
});

test("G6: simultaneous opens converge on the lower DID's session; nothing is lost", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await viaServer({ identity: a });
  const bob = await viaServer({ identity: b });
  const atBob = collect(bob);
  const atAlice = collect(alice);
  await Promise.all([alice.send(b.did, 'a0'), bob.send(a.did, 'b0')]);
  await until(() => atBob.texts.length === 1 && atAlice.texts.length === 1);
  for (let i = 1; i <= 3; i++) {
    await alice.send(b.did, `a${i}`);
    await bob.send(a.did, `b${i}`);
  }
  await until(() => atBob.texts.length === 4 && atAlice.texts.length === 4);
  expect(atBob.texts).toEqual(['a0', 'a1', 'a2', 'a3']);
  expect(atAlice.texts).toEqual(['b0', 'b1', 'b2', 'b3']);
  const lowerIsAlice = a.did < b.did;
  expect(alice.sessions(b.did)).toHaveLength(2);
  expect(alice.sessions(b.did).find((s) => s.current)?.role).toBe(lowerIsAlice ? 'initiator' : 'responder');
  expect(bob.sessions(a.did).find((s) => s.current)?.role).toBe(lowerIsAlice ? 'responder' : 'initiator');
});

test('G7: a peer that lost its state gets a fresh session, and the sender is told', async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await viaServer({ identity: a });
  let bob = await viaServer({ identity: b, store: new InMemoryStore(), storageKey: randomBytes(32) });
  let got = collect(bob);
  await alice.send(b.did, 'before');
  await until(() => got.texts.length === 1);
  await bob.close();
  // Bob comes back with nothing: new keys published, no session.
  bob = await viaServer({ identity: b, store: new InMemoryStore(), storageKey: randomBytes(32) });
  got = collect(bob);
  const resets: { peer: string; messageId: string }[] = [];
  alice.on('session-reset', (e) => resets.push(e));
  const lost = await alice.send(b.did, 'into the void');
  await until(() => resets.length === 1, 5000, 'the reset notice');
  expect(resets[0]).toEqual({ peer: b.did, messageId: lost, reason: 'session_unknown' });
  await alice.send(b.did, 'after the reset');
  await until(() => got.texts.length === 1);
  expect(got.texts).toEqual(['after the reset']);
  await bob.send(a.did, 'hi again');
  expect(alice.sessions(b.did).filter((s) => !s.dead).length).toBeGreaterThanOrEqual(1);
});

describe('G8 and the connection loop', () => {
  test('heartbeats every interval; a silent relay (no acks) is detected and reconnected', async () => {
    const a = newIdentity();
    const alice = await viaFake({ identity: a, heartbeatMs: 100 });
    const t0 = Date.now();
    await until(() => relay.framesFrom(a.did, 'heartbeat').length >= 3, 3000, '3 heartbeats');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250); // one per interval, not a flood
    let reconnected = 0;
    alice.on('connected', () => reconnected++);
    relay.heartbeatAcks = false;
    await until(() => reconnected >= 1, 3000, 'a reconnect after silence');
    expect(alice.state).toBe('connected');
  });

  test('G12: a relay-side close with 1000 (AGT closes so on any exception) is reconnected', async () => {
    const a = newIdentity();
    const alice = await viaFake({ identity: a, backoff: { baseMs: 20, maxMs: 100 } });
    let reconnected = 0;
    alice.on('connected', () => reconnected++);
    relay.sockets.get(a.did)?.close(1000, 'handler exception');
    await until(() => reconnected === 1, 3000, 'the reconnect');
    expect(alice.state).toBe('connected');
  });

  test('a proof refused after a reconnect surfaces an error and backs off (no 1 Hz loop)', async () => {
    const a = newIdentity();
    const alice = await viaFake({ identity: a, backoff: { baseMs: 20, authBaseMs: 100 } });
    const errors: string[] = [];
    alice.on('error', (e) => errors.push(e.reason ?? ''));
    let attempts = 0;
    relay.wss.on('connection', () => attempts++);
    relay.refuseWith = 4005;
    relay.sockets.get(a.did)?.close(1011, 'restart');
    await new Promise((r) => setTimeout(r, 1000));
    // 20 ms, then 100, 200, 400 ms… after the refusals: a handful of attempts in a second, each reported.
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(5);
    expect(errors.filter((r) => r === 'relay_auth_failed').length).toBe(attempts);
    relay.refuseWith = null;
    await until(() => alice.state === 'connected', 3000, 'the reconnect once accepted');
  });

  test('a relay that closes on a too-big frame (1009) gets it refused, not re-sent forever', async () => {
    const a = newIdentity();
    const b = newIdentity();
    const alice = await viaFake({ identity: a, backoff: { baseMs: 20, maxMs: 100 } });
    const bob = await viaFake({ identity: b });
    const got = collect(bob);
    await alice.send(b.did, 'small');
    relay.closeAbove = 100_000;
    await expectE2EErrorAsync(alice.send(b.did, new Uint8Array(200_000)), 'MESSAGE_TOO_LARGE');
    await alice.send(b.did, 'small again');
    await until(() => got.texts.length === 2);
    expect(got.texts).toEqual(['small', 'small again']);
  });

  test('a refused proof fails connect() with a clear error instead of looping', async () => {
    relay.refuseWith = 4005;
    const t0 = Date.now();
    await expectE2EErrorAsync(viaFake({ identity: newIdentity() }), 'BAD_SIGNATURE', 'relay_auth_failed');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test('messages queue while offline and go out, once, after a reconnect', async () => {
    const a = newIdentity();
    const b = newIdentity();
    const alice = await viaFake({ identity: a, backoff: { baseMs: 50, maxMs: 200 } });
    const bob = await viaFake({ identity: b });
    const got = collect(bob);
    await alice.send(b.did, 'first');
    await until(() => got.texts.length === 1);
    relay.sockets.get(a.did)?.terminate();
    await until(() => alice.state !== 'connected', 2000, 'the disconnect');
    const pending = [alice.send(b.did, 'q1'), alice.send(b.did, 'q2')];
    await Promise.all(pending);
    await until(() => got.texts.length === 3);
    expect(got.texts).toEqual(['first', 'q1', 'q2']);
  });
});

test("G1 limit: establishments forged with Alice's public keys wait unused and never crowd out her live session", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const alice = await viaFake({ identity: a });
  const bob = await viaFake({ identity: b });
  const got = collect(bob);
  await alice.send(b.did, 'live');
  await until(() => got.texts.length === 1);
  const knock = relay.framesFrom(a.did, 'knock')[0] as Record<string, unknown>;
  // A relay replays Alice's knock with fresh ephemeral keys (it knows her public identity key): 10 forgeries.
  const { x25519KeyPair } = await import('../../lib/crypto');
  for (let i = 0; i < 10; i++) {
    const est: Record<string, unknown> = {
      ...(knock.establishment as Record<string, unknown>),
      ek: Buffer.from(x25519KeyPair().publicKey).toString('base64'),
    };
    delete est.otk;
    relay.deliver(b.did, { ...knock, id: `forged-${i}`, establishment: est, from: a.did });
  }
  await until(
    () => relay.framesFrom(b.did, 'ack').filter((f) => String(f.id).startsWith('forged-')).length === 10,
    5000,
    'the forged knocks processed',
  );
  expect(bob.sessions(a.did).length).toBeLessThanOrEqual(6);
  await alice.send(b.did, 'still live');
  await bob.send(a.did, 'reply');
  await until(() => got.texts.length === 2);
  expect(got.texts).toEqual(['live', 'still live']);
});
