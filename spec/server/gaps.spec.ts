/**
 * AGT's gaps (AGT-WIRE.md §3.4) on the server side, each written as the attack. G8 and G10 have more cases in
 * relay.spec.ts (pings, every limit); G5–G7 and G9 are client-side (lib/mesh).
 */
import { ready } from '../../lib/sodium';
import { toBase64, toBase64Url } from '../../lib/crypto';
import { buildConnectFrame } from '../../lib/mesh/frames';
import { MeshServer, startMeshServer } from '../../lib/server';
import { TestClient, authed, bundleBody, connect, http, message, newAgent, publish, register, sleep } from './helpers';

let server: MeshServer;
beforeAll(async () => {
  await ready();
  server = await startMeshServer({ port: 0, registry: { bundleFetchBurst: 5, bundleFetchPerSecond: 0.001 } });
});
afterAll(async () => server.close());

describe('G1: a DID is bound to its keys', () => {
  it('the relay refuses a frame whose from is another DID, and stamps the authenticated one', async () => {
    const mallory = newAgent();
    const victim = newAgent();
    const bob = newAgent();
    const cm = await connect(server.url, mallory);
    const cb = await connect(server.url, bob);
    cm.send({ ...message(bob.did, 'g1-forged'), type: 'knock', from: victim.did });
    expect((await cm.frame()).code).toBe('from_mismatch');
    cm.send({ ...message(bob.did, 'g1-unsigned'), type: 'knock' });
    expect((await cb.frame()).from).toBe(mallory.did);
    cm.close();
    cb.close();
  });

  it("a bundle for a DID must carry that DID's registered Ed25519 key, and the record exposes the key", async () => {
    const victim = newAgent();
    const mallory = newAgent();
    await register(server.url, victim);
    const forged = bundleBody(mallory);
    const r = await authed(server.url, victim, 'PUT', `/v1/agents/${victim.did}/prekeys`, forged);
    expect(r.status).toBe(400);
    expect((await http(server.url, 'GET', `/v1/agents/${victim.did}`)).body.public_key).toBe(toBase64Url(victim.publicKey));
  });
});

describe('G2: connect proofs are single-use', () => {
  it.each([
    ['AGT timestamp-only proof', true],
    ['our nonce proof', false],
  ])('%s: a replayed connect frame is refused (4005) and the owner keeps its mailbox', async (_n, agt) => {
    const victim = newAgent();
    const frame = buildConnectFrame(victim, agt ? { nonce: false } : {});
    const owner = new TestClient(server.url);
    await owner.opened;
    owner.send(frame);
    await sleep(50);
    const replay = new TestClient(server.url);
    await replay.opened;
    replay.send(frame);
    expect(await replay.closeEvent()).toEqual({
      code: 4005,
      reason: '',
      frames: [{ type: 'error', detail: 'DID proof failed: connect proof already used' }],
    });
    expect(owner.closed).toBeNull();
    const sender = await connect(server.url, newAgent());
    sender.send(message(victim.did, 'still-mine'));
    expect((await owner.frame()).id).toBe('still-mine');
    owner.close();
    sender.close();
  });
});

describe('G3: a relay connect proof is not a registry credential', () => {
  it('the timestamp-only connect proof, replayed as an Ed25519-Timestamp header, cannot PUT a bundle or DELETE', async () => {
    const victim = newAgent();
    await publish(server.url, victim);
    const frame = buildConnectFrame(victim, { nonce: false });
    const c = new TestClient(server.url);
    await c.opened;
    c.send(frame);
    await sleep(50);
    const header = `Ed25519-Timestamp ${victim.did} ${frame.timestamp} ${frame.signature}`;
    const put = await http(server.url, 'PUT', `/v1/agents/${victim.did}/prekeys`, bundleBody(victim), { authorization: header });
    expect(put).toMatchObject({ status: 401, body: { detail: 'Authorization already used (replay)' } });
    const del = await http(server.url, 'DELETE', `/v1/agents/${victim.did}`, undefined, { authorization: header });
    expect(del.status).toBe(401);
    expect((await http(server.url, 'GET', `/v1/agents/${victim.did}`)).status).toBe(200);
    c.close();
  });

  it('our nonce connect proof signs a domain-separated message: as a registry header its signature fails', async () => {
    const victim = newAgent();
    await register(server.url, victim);
    const frame = buildConnectFrame(victim);
    const header = `Ed25519-Timestamp ${victim.did} ${frame.timestamp} ${frame.signature}`;
    const r = await http(server.url, 'DELETE', `/v1/agents/${victim.did}`, undefined, { authorization: header });
    expect(r).toMatchObject({ status: 401, body: { detail: 'Invalid signature' } });
  });

  it('a registry header is not a connect proof either (it was used first)', async () => {
    const a = newAgent();
    await register(server.url, a);
    const frame = buildConnectFrame(a, { nonce: false });
    const header = `Ed25519-Timestamp ${a.did} ${frame.timestamp} ${frame.signature}`;
    expect((await http(server.url, 'GET', `/v1/agents/${a.did}/prekeys/count`, undefined, { authorization: header })).status).toBe(200);
    const c = new TestClient(server.url);
    await c.opened;
    c.send(frame);
    expect((await c.closeEvent()).code).toBe(4005);
  });
});

describe('G4: no anonymous one-time-key draining', () => {
  it('an unauthenticated bundle claim is 401 and consumes nothing; a registered requester is rate-limited (429)', async () => {
    const victim = newAgent();
    const drainer = newAgent();
    await publish(server.url, victim, 20);
    await register(server.url, drainer);
    const path = `/v1/agents/${victim.did}/prekeys`;
    expect(await http(server.url, 'GET', path)).toMatchObject({ status: 401, body: { detail: 'Authentication required' } });
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await authed(server.url, drainer, 'GET', path)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(await authed(server.url, victim, 'GET', `${path}/count`)).toMatchObject({ body: { otk_count: 15 } });
  });
});

describe('G11: registry validation', () => {
  it('a naive proof_timestamp is 400, not 500', async () => {
    const a = newAgent();
    const r = await http(server.url, 'POST', '/v1/agents', {
      public_key: toBase64Url(a.publicKey),
      proof: toBase64(new Uint8Array(64)),
      proof_timestamp: '2026-01-01T00:00:00',
    });
    expect(r.status).toBe(400);
  });

  it('auth is checked before existence on PUT prekeys (no 404 probe without auth)', async () => {
    const r = await http(server.url, 'PUT', `/v1/agents/${newAgent().did}/prekeys`, {}, { authorization: 'Ed25519-Timestamp x y z' });
    expect(r.status).toBe(401);
  });

  it('/v1/registry/verify cannot stamp an agent without Entra configured (503)', async () => {
    expect((await http(server.url, 'POST', '/v1/registry/verify', { amid: newAgent().did, verification_token: 'x' })).status).toBe(503);
  });
});

describe('G12 (server side): malformed input never drops the socket with 1000', () => {
  it('bad JSON, arrays and list-valued to get an error frame; the connection stays usable', async () => {
    const c = await connect(server.url, newAgent());
    for (const t of ['{', '[]', JSON.stringify({ type: 'message', to: ['x'], id: '1' })]) {
      c.send(t);
      expect((await c.frame()).type).toBe('error');
    }
    c.send({ type: 'heartbeat' });
    expect((await c.frame()).type).toBe('heartbeat_ack');
    c.close();
  });
});

describe('G1: duplicate JSON keys cannot smuggle a forged from', () => {
  it('a frame with two from keys is re-serialized with the authenticated DID only', async () => {
    const mallory = newAgent();
    const bob = newAgent();
    const cm = await connect(server.url, mallory);
    const cb = await connect(server.url, bob);
    cm.send(`{"type":"message","from":"${newAgent().did}","to":"${bob.did}","id":"dupkey","from":"${mallory.did}"}`);
    const got = (await cb.next()) as { kind: 'frame'; raw: string };
    expect(got.raw.match(/"from"/g)).toHaveLength(1);
    expect(JSON.parse(got.raw).from).toBe(mallory.did);
    cm.close();
    cb.close();
  });

  it('an escaped duplicate key ("fr\\u006fm") is not forwarded verbatim: the recipient sees only the sender', async () => {
    const mallory = newAgent();
    const alice = newAgent();
    const bob = newAgent();
    const cm = await connect(server.url, mallory);
    const cb = await connect(server.url, bob);
    cm.send(`{"type":"message","fr\\u006fm":"${alice.did}","to":"${bob.did}","id":"esc","from":"${mallory.did}"}`);
    const got = (await cb.next()) as { kind: 'frame'; raw: string };
    expect(got.raw).not.toContain(alice.did);
    expect(got.raw).not.toContain('\\u006f');
    expect(JSON.parse(got.raw).from).toBe(mallory.did);
    cm.close();
    cb.close();
  });
});
