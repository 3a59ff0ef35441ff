/** Abuse limits from the adversarial review: proof cache, auth rate, OPK drain, inbox fill, reports, discover, frames. */
import { ready } from '../../lib/sodium';
import { ed25519Sign, toBase64Url, utf8 } from '../../lib/crypto';
import { buildConnectFrame } from '../../lib/mesh/frames';
import { MemoryInboxStore, MeshServer, ProofCache, startMeshServer } from '../../lib/server';
import { TestClient, authed, connect, http, message, newAgent, publish, register } from './helpers';

beforeAll(async () => ready());

describe('proof cache DoS (finding 1)', () => {
  it('one DID cannot fill the cache: its own new proofs are refused, others still fit; expired ones are purged first', () => {
    const c = new ProofCache(1000, 100, 3);
    for (const n of [1, 2, 3]) expect(c.use(`m|did:a|t|${n}`, 0, 0)).toBe('fresh');
    expect(c.use('m|did:a|t|4', 0, 0)).toBe('full');
    expect(c.use('m|did:b|t|1', 0, 0)).toBe('fresh');
    // Once out of the window, did:a's entries are swept before anything is refused.
    expect(c.use('m|did:a|t|5', 5000, 5000)).toBe('fresh');
  });

  describe('over HTTP and the relay', () => {
    let server: MeshServer;
    beforeAll(async () => {
      server = await startMeshServer({ port: 0, registry: { authBurst: 5, authPerSecond: 0.01 } });
    });
    afterAll(async () => server.close());

    it('registry auth: a timestamp more than 30 s ahead is refused (past window unchanged)', async () => {
      const a = newAgent();
      await register(server.url, a);
      const path = `/v1/agents/${a.did}/prekeys/count`;
      const at = (ms: number) => {
        const ts = new Date(Date.now() + ms).toISOString();
        return `Ed25519-Timestamp ${a.did} ${ts} ${toBase64Url(ed25519Sign(a.secretKey, utf8(ts)))}`;
      };
      expect(await http(server.url, 'GET', path, undefined, { authorization: at(290_000) })).toMatchObject({
        status: 401,
        body: { detail: 'Timestamp outside replay window' },
      });
      expect((await http(server.url, 'GET', path, undefined, { authorization: at(-290_000) })).status).toBe(200);
      expect((await http(server.url, 'GET', path, undefined, { authorization: at(20_000) })).status).toBe(200);
    });

    it('every authenticated endpoint is rate-limited per DID (prekeys/count included); other DIDs unaffected', async () => {
      const a = newAgent();
      const b = newAgent();
      await register(server.url, a);
      await register(server.url, b);
      const path = `/v1/agents/${a.did}/prekeys/count`;
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await authed(server.url, a, 'GET', path)).status);
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).toEqual([429, 429]);
      expect((await authed(server.url, b, 'GET', `/v1/agents/${b.did}/prekeys/count`)).status).toBe(200);
    });

    it('relay connect: a proof more than 30 s ahead is refused as a proof failure', async () => {
      const a = newAgent();
      const c = new TestClient(server.url);
      await c.opened;
      c.send(buildConnectFrame(a, { now: new Date(Date.now() + 290_000) }));
      const ev = await c.closeEvent();
      expect(ev.code).not.toBe(1000);
      expect(JSON.stringify(ev.frames)).toContain('future');
    });
  });
});

describe('one-time-key drain through throwaway DIDs (finding 2)', () => {
  let server: MeshServer;
  beforeAll(async () => {
    server = await startMeshServer({
      port: 0,
      registry: { bundleFetchBurst: 2, bundleFetchPerSecond: 0.01, oneTimeKeyBurst: 5, oneTimeKeyPerSecond: 0.01, registerBurst: 1000 },
    });
  });
  afterAll(async () => server.close());

  it('many fresh requesters get at most the per-target budget of one-time keys; then the last-resort bundle', async () => {
    const victim = newAgent();
    await publish(server.url, victim, 20);
    const got: Array<unknown> = [];
    for (let i = 0; i < 8; i++) {
      const r = newAgent();
      await register(server.url, r);
      const res = await authed(server.url, r, 'GET', `/v1/agents/${victim.did}/prekeys`);
      expect(res.status).toBe(200);
      expect(typeof res.body.signed_pre_key.public_key).toBe('string');
      got.push(res.body.one_time_pre_key);
    }
    expect(got.slice(0, 5).every((k) => k !== null)).toBe(true);
    expect(got.slice(5)).toEqual([null, null, null]);
    expect((await authed(server.url, victim, 'GET', `/v1/agents/${victim.did}/prekeys/count`)).body.otk_count).toBe(15);
  });

  it("404 for an unknown target does not spend the requester's claim budget", async () => {
    const r = newAgent();
    const target = newAgent();
    await register(server.url, r);
    await publish(server.url, target, 3);
    for (let i = 0; i < 3; i++) expect((await authed(server.url, r, 'GET', `/v1/agents/${newAgent().did}/prekeys`)).status).toBe(404);
    expect((await authed(server.url, r, 'GET', `/v1/agents/${target.did}/prekeys`)).status).toBe(200);
  });
});

describe('inbox fill (finding 3)', () => {
  it('one sender cannot fill an inbox for the others: per-(sender, recipient) cap, then byte quotas, with error frames', async () => {
    const s = await startMeshServer({ port: 0, relay: { maxPerInbox: 10, maxPerPair: 2, maxBytesPerSender: 4000, messageBurst: 1000 } });
    try {
      const [a, b, v] = [newAgent(), newAgent(), newAgent()];
      const ca = await connect(s.url, a);
      const cb = await connect(s.url, b);
      for (let i = 0; i < 3; i++) ca.send(message(v.did, `p${i}`));
      const got = [await ca.frame(), await ca.frame(), await ca.frame()];
      expect(got.slice(0, 2).every((f) => f.type === 'accepted')).toBe(true);
      expect(got[2]).toEqual({
        type: 'error',
        detail: 'Too many unacknowledged messages from this sender to this recipient',
        code: 'sender_quota',
        id: 'p2',
      });
      cb.send(message(v.did, 'other'));
      expect(await cb.frame()).toMatchObject({ type: 'accepted', id: 'other' });
      // Bytes per sender: 4000 bytes in all, whatever the frame count.
      cb.send(message(newAgent().did, 'big1', { ciphertext: 'A'.repeat(2500) }));
      cb.send(message(newAgent().did, 'big2', { ciphertext: 'A'.repeat(2500) }));
      expect(await cb.frame()).toMatchObject({ type: 'accepted', id: 'big1' });
      expect(await cb.frame()).toEqual({
        type: 'error',
        detail: 'Too many unacknowledged bytes from this sender',
        code: 'sender_quota',
        id: 'big2',
      });
      ca.close();
      cb.close();
    } finally {
      await s.close();
    }
  });

  it('the in-memory store has a global byte cap (store_full)', () => {
    const m = new MemoryInboxStore({ maxBytes: 250 });
    const put = (id: string, sender: string) => ({
      recipient: 'did:mesh:r',
      id,
      sender,
      frame: 'x'.repeat(100),
      storedAt: 0,
      expiresAt: 10,
    });
    expect(m.commit([put('1', 'a'), put('2', 'b'), put('3', 'c')], [], { maxPerInbox: 10, maxPerSender: 10 })).toEqual([
      'stored',
      'stored',
      'store_full',
    ]);
    expect(m.commit([put('3', 'c')], [{ recipient: 'did:mesh:r', id: '1' }], { maxPerInbox: 10, maxPerSender: 10 })).toEqual(['stored']);
  });
});

describe('reputation self-inflation and /discover (finding 4)', () => {
  let server: MeshServer;
  beforeAll(async () => {
    server = await startMeshServer({
      port: 0,
      registry: { discoverBurst: 3, discoverPerSecond: 0.01, discoverMaxBytes: 300, registerBurst: 1000 },
    });
  });
  afterAll(async () => server.close());

  it('a session report with initiator = receiver is refused (403) and changes nothing', async () => {
    const a = newAgent();
    await register(server.url, a);
    const r = await authed(server.url, a, 'POST', '/v1/registry/reputation/session', {
      session_id: 's1',
      initiator_amid: a.did,
      receiver_amid: a.did,
      outcome: 'success',
      reporter_amid: a.did,
    });
    expect(r).toMatchObject({ status: 403, body: { detail: 'Initiator and receiver must differ' } });
    expect((await http(server.url, 'GET', `/v1/agents/${a.did}`)).body).toMatchObject({ reputation_score: 0.5, total_sessions: 0 });
  });

  it('/discover: capped in bytes (total still counts all) and rate-limited per address', async () => {
    for (let i = 0; i < 4; i++) await register(server.url, newAgent(), ['cap-x', 'y'.repeat(100)]);
    const r = await http(server.url, 'GET', '/v1/discover?capability=cap-x&limit=200');
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(4);
    expect(r.body.results.length).toBeGreaterThan(0);
    expect(r.body.results.length).toBeLessThan(4);
    await http(server.url, 'GET', '/v1/discover');
    await http(server.url, 'GET', '/v1/discover');
    expect(await http(server.url, 'GET', '/v1/discover')).toMatchObject({ status: 429, body: { detail: 'Too many discover requests' } });
  });
});
