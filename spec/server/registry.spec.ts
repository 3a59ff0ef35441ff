/** The registry under /v1: every endpoint, its bodies and status codes (AGT-WIRE.md §2), and /health. */
import { ready } from '../../lib/sodium';
import { ed25519Sign, toBase64Url, utf8, x25519KeyPair } from '../../lib/crypto';
import { buildAgtRegistryAuth, buildRegistration, buildRegistryAuth } from '../../lib/mesh/frames';
import { MemoryAgentDirectory, MeshServer, startMeshServer } from '../../lib/server';
import { TestAgent, authed, bundleBody, connect, http, newAgent, publish, register } from './helpers';

let server: MeshServer;
let url: string;
beforeAll(async () => {
  await ready();
  server = await startMeshServer({
    port: 0,
    registry: { bundleFetchBurst: 1000, uploadBurst: 1000, registerBurst: 1000, reportBurst: 1000 },
  });
  url = server.url;
});
afterAll(async () => server.close());

describe('POST /v1/agents', () => {
  it('201 {did, status}; 409 again; the server derives the DID', async () => {
    const a = newAgent();
    const body = buildRegistration(a, { capabilities: ['search'], metadata: { display_name: 'A' } });
    expect(await http(url, 'POST', '/v1/agents', { ...body, did: 'did:mesh:ignored' })).toMatchObject({
      status: 201,
      body: { did: a.did, status: 'registered' },
    });
    expect(await http(url, 'POST', '/v1/agents', buildRegistration(a))).toMatchObject({
      status: 409,
      body: { detail: 'Agent already registered' },
    });
  });

  it('every refusal with its status and detail', async () => {
    const a = newAgent();
    const good = buildRegistration(a);
    const ts = new Date().toISOString();
    const cases: Array<[unknown, number, string]> = [
      [{ public_key: good.public_key }, 422, 'public_key, proof and proof_timestamp are required strings'],
      [{ ...good, public_key: '!!' }, 400, 'Invalid public_key encoding'],
      [{ ...good, public_key: toBase64Url(new Uint8Array(31)) }, 400, 'public_key must be 32 bytes'],
      [{ ...good, proof_timestamp: 'noon' }, 400, 'Invalid proof_timestamp'],
      [{ ...good, proof_timestamp: '2026-01-01T00:00:00' }, 400, 'proof_timestamp must include timezone offset'],
      [{ ...good, proof_timestamp: new Date(Date.now() - 400_000).toISOString() }, 401, 'proof_timestamp outside replay window'],
      [{ ...good, proof: 'AAAA' }, 400, 'Malformed proof'],
      [{ ...good, proof_timestamp: ts, proof: toBase64Url(ed25519Sign(a.secretKey, utf8('other'))) }, 401, 'Invalid proof-of-possession'],
      [{ ...good, capabilities: 'x' }, 422, 'capabilities must be a list of at most 64 strings'],
      [{ ...good, metadata: { k: 1 } }, 422, 'metadata must be an object of at most 64 strings'],
      ['not json', 422, 'Body must be JSON'],
    ];
    for (const [body, status, detail] of cases) {
      expect(await http(url, 'POST', '/v1/agents', body)).toMatchObject({ status, body: { detail } });
    }
  });

  it('413 for a body above the limit; 429 above the registration rate per address', async () => {
    expect((await http(url, 'POST', '/v1/agents', { x: 'a'.repeat(300 * 1024) })).status).toBe(413);
    const s = await startMeshServer({ port: 0, registry: { registerBurst: 2, registerPerSecond: 0.001 } });
    try {
      for (let i = 0; i < 2; i++) expect((await http(s.url, 'POST', '/v1/agents', buildRegistration(newAgent()))).status).toBe(201);
      expect(await http(s.url, 'POST', '/v1/agents', buildRegistration(newAgent()))).toMatchObject({
        status: 429,
        body: { detail: 'Too many registrations' },
      });
    } finally {
      await s.close();
    }
  });
});

describe('GET/DELETE /v1/agents/{did}', () => {
  it("200 with AGT's fields plus public_key; %3A-encoded paths work; 404", async () => {
    const a = newAgent();
    await register(url, a, ['search']);
    const r = await http(url, 'GET', `/v1/agents/${encodeURIComponent(a.did)}`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual([
      'capabilities',
      'completion_rate',
      'did',
      'failed_sessions',
      'last_seen',
      'last_session_at',
      'metadata',
      'public_key',
      'registered_at',
      'reputation_score',
      'successful_sessions',
      'tier',
      'timeout_sessions',
      'total_sessions',
      'verified_app_id',
      'verified_at',
      'verified_tenant_id',
    ]);
    expect(r.body).toMatchObject({
      did: a.did,
      capabilities: ['search'],
      reputation_score: 0.5,
      tier: 'anonymous',
      completion_rate: null,
      public_key: toBase64Url(a.publicKey),
    });
    expect(r.body.registered_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
    expect(await http(url, 'GET', `/v1/agents/${newAgent().did}`)).toMatchObject({ status: 404, body: { detail: 'Agent not found' } });
  });

  it('DELETE: 422 without header, 401 bad auth, 403 another DID, 204 owner, then 404', async () => {
    const a = newAgent();
    const b = newAgent();
    await publish(url, a);
    await register(url, b);
    const path = `/v1/agents/${a.did}`;
    expect((await http(url, 'DELETE', path)).status).toBe(422);
    expect(await http(url, 'DELETE', path, undefined, { authorization: 'Bearer x' })).toMatchObject({
      status: 401,
      body: { detail: 'Invalid Authorization header' },
    });
    expect(await authed(url, b, 'DELETE', path)).toMatchObject({ status: 403, body: { detail: 'DID mismatch' } });
    const ok = await authed(url, a, 'DELETE', path);
    expect(ok.status).toBe(204);
    expect(ok.body).toBeNull();
    expect((await http(url, 'GET', path)).status).toBe(404);
    expect((await authed(url, b, 'GET', `${path}/prekeys`)).status).toBe(404);
  });
});

describe('pre-keys', () => {
  it('PUT 200 {did, otk_count}; GET claims one-time keys in order, each once, then null (3-DH last resort)', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const body = bundleBody(a, 3);
    expect(await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, body)).toMatchObject({
      status: 200,
      body: { did: a.did, otk_count: 3 },
    });
    const ids = [];
    for (let i = 0; i < 4; i++) {
      const r = await authed(url, b, 'GET', `/v1/agents/${a.did}/prekeys`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        identity_key: body.identity_key,
        identity_key_ed: body.identity_key_ed,
        signed_pre_key: body.signed_pre_key,
      });
      ids.push(r.body.one_time_pre_key?.key_id ?? null);
    }
    expect(ids).toEqual([0, 1, 2, null]);
    expect(await authed(url, a, 'GET', `/v1/agents/${a.did}/prekeys/count`)).toMatchObject({
      status: 200,
      body: { did: a.did, otk_count: 0 },
    });
  });

  it('one-time keys are never handed out twice: re-uploading a claimed key is refused', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const body = bundleBody(a, 1);
    await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, body);
    await authed(url, b, 'GET', `/v1/agents/${a.did}/prekeys`);
    expect(await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, body)).toMatchObject({
      status: 400,
      body: { detail: 'Invalid pre-key bundle: one-time pre-key was already handed out' },
    });
    expect(
      await authed(url, a, 'POST', `/v1/agents/${a.did}/prekeys/one-time`, { one_time_pre_keys: body.one_time_pre_keys }),
    ).toMatchObject({ status: 400 });
  });

  it('POST …/prekeys/one-time appends; 404 before a bundle; pool cap', async () => {
    const a = newAgent();
    await register(url, a);
    const extra = { one_time_pre_keys: [{ key_id: 50, public_key: toBase64Url(x25519KeyPair().publicKey) }] };
    expect(await authed(url, a, 'POST', `/v1/agents/${a.did}/prekeys/one-time`, extra)).toMatchObject({
      status: 404,
      body: { detail: 'Pre-key bundle not found' },
    });
    await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, bundleBody(a, 2));
    expect(await authed(url, a, 'POST', `/v1/agents/${a.did}/prekeys/one-time`, extra)).toMatchObject({
      status: 200,
      body: { otk_count: 3 },
    });
    const many = {
      one_time_pre_keys: Array.from({ length: 1000 }, (_, i) => ({ key_id: 100 + i, public_key: toBase64Url(x25519KeyPair().publicKey) })),
    };
    expect((await authed(url, a, 'POST', `/v1/agents/${a.did}/prekeys/one-time`, many)).status).toBe(400);
  });

  it('PUT refusals: 422 no header, 403 another DID, 400 for each invalid bundle — and nothing changes (G11)', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const good = bundleBody(a, 2);
    const path = `/v1/agents/${a.did}/prekeys`;
    await authed(url, a, 'PUT', path, good);
    expect((await http(url, 'PUT', path, good)).status).toBe(422);
    expect(await authed(url, b, 'PUT', path, good)).toMatchObject({ status: 403, body: { detail: 'DID mismatch' } });
    const other = bundleBody(b);
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ identity_key: toBase64Url(new Uint8Array(5)) }, 'Invalid pre-key bundle: identity_key must be 32 bytes'],
      [{ identity_key_ed: toBase64Url(new Uint8Array(31)) }, 'identity_key_ed must be 32 bytes'],
      [{ identity_key_ed: other.identity_key_ed }, 'Invalid pre-key bundle: identity_key_ed is not the registered key'],
      [{ identity_key: other.identity_key }, 'Invalid pre-key bundle: identity_key is not the X25519 form of the registered key'],
      [
        { signed_pre_key: { ...good.signed_pre_key, signature: other.signed_pre_key.signature } },
        'Invalid pre-key bundle: signed_pre_key signature does not verify under the registered key',
      ],
      [
        { signed_pre_key: { key_id: 1, public_key: good.signed_pre_key.public_key } },
        'Invalid pre-key bundle: signed_pre_key is {key_id, public_key, signature}',
      ],
      [{ one_time_pre_keys: [{ anything: 'goes' }] }, 'Invalid pre-key bundle: each one-time pre-key is {key_id, public_key}'],
      [
        { one_time_pre_keys: [{ key_id: 1, public_key: toBase64Url(new Uint8Array(3)) }] },
        'Invalid pre-key bundle: one-time pre-key must be 32 bytes',
      ],
      [
        { one_time_pre_keys: [good.one_time_pre_keys[0], good.one_time_pre_keys[0]] },
        'Invalid pre-key bundle: duplicate one-time pre-key id',
      ],
    ];
    for (const [patch, detail] of bad) {
      expect(await authed(url, a, 'PUT', path, { ...bundleBody(a, 2, 10, 9), ...patch })).toMatchObject({ status: 400, body: { detail } });
    }
    // The first good bundle is intact: its SPK and both one-time keys.
    expect(await authed(url, a, 'GET', `${path}/count`)).toMatchObject({ body: { otk_count: 2 } });
    const got = await authed(url, b, 'GET', path);
    expect(got.body.signed_pre_key).toEqual(good.signed_pre_key);
  });

  it('PUT without identity_key_ed uses the registered key', async () => {
    const a = newAgent();
    await register(url, a);
    const { identity_key_ed: _drop, ...rest } = bundleBody(a, 1);
    expect((await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, rest)).status).toBe(200);
  });

  it('GET …/prekeys: 404 for an unknown DID or no bundle yet', async () => {
    const a = newAgent();
    await register(url, a);
    expect(await authed(url, a, 'GET', `/v1/agents/${a.did}/prekeys`)).toMatchObject({
      status: 404,
      body: { detail: 'Pre-key bundle not found' },
    });
    expect((await authed(url, a, 'GET', `/v1/agents/${newAgent().did}/prekeys`)).status).toBe(404);
  });
});

describe('presence, heartbeat, reputation, verify, discover, health', () => {
  it('presence is online while connected to the relay; heartbeat 200 then 429 within 10 s; 401/403/404', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const c = await connect(url, a);
    expect(await http(url, 'GET', `/v1/agents/${a.did}/presence`)).toMatchObject({ status: 200, body: { did: a.did, online: true } });
    c.close();
    expect((await http(url, 'GET', `/v1/agents/${newAgent().did}/presence`)).status).toBe(404);
    // Registration counts as seen, so the first heartbeat is within 10 s: 429, as AGT.
    expect(await authed(url, a, 'POST', `/v1/agents/${a.did}/heartbeat`)).toMatchObject({
      status: 429,
      body: { detail: 'Heartbeat too frequent' },
    });
    // 20 s later: 200 {did, last_seen}.
    const dir = new MemoryAgentDirectory();
    const s2 = await startMeshServer({ port: 0, directory: dir });
    try {
      await register(s2.url, a);
      const rec = dir.get(a.did)!;
      dir.update({ ...rec, lastSeen: rec.lastSeen - 20_000 });
      const hb = await authed(s2.url, a, 'POST', `/v1/agents/${a.did}/heartbeat`);
      expect(hb.status).toBe(200);
      expect(hb.body).toEqual({ did: a.did, last_seen: expect.stringMatching(/\+00:00$/) });
      expect(await http(s2.url, 'GET', `/v1/agents/${a.did}/presence`)).toMatchObject({ body: { online: true } });
    } finally {
      await s2.close();
    }
    expect((await http(url, 'POST', `/v1/agents/${a.did}/heartbeat`)).status).toBe(401);
    expect((await authed(url, b, 'POST', `/v1/agents/${a.did}/heartbeat`)).status).toBe(403);
  });

  it('reputation: EMA 0.3, 403 self-report, 422 bad score, 404 unknown', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const r = await authed(url, b, 'POST', `/v1/agents/${a.did}/reputation`, { score: 0.9 });
    expect(r.status).toBe(200);
    expect(r.body.reputation_score).toBeCloseTo(0.62, 10);
    expect((await authed(url, a, 'POST', `/v1/agents/${a.did}/reputation`, { score: 0.9 })).status).toBe(403);
    expect((await authed(url, b, 'POST', `/v1/agents/${a.did}/reputation`, { score: 2 })).status).toBe(422);
    expect((await authed(url, b, 'POST', `/v1/agents/${newAgent().did}/reputation`, { score: 0.5 })).status).toBe(404);
    const rec = await http(url, 'GET', `/v1/agents/${a.did}`);
    expect(rec.body).toMatchObject({ total_sessions: 1, successful_sessions: 1, completion_rate: 1 });
  });

  it('session reports: 200, 403 not the reporter / not a participant, 400 bad outcome', async () => {
    const a = newAgent();
    const b = newAgent();
    const c = newAgent();
    for (const x of [a, b, c]) await register(url, x);
    const body = (reporter: TestAgent, outcome = 'success') => ({
      session_id: 's1',
      initiator_amid: a.did,
      receiver_amid: b.did,
      outcome,
      reporter_amid: reporter.did,
    });
    const ok = await authed(url, a, 'POST', '/v1/registry/reputation/session', body(a));
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe('success');
    expect(ok.body.reputation[a.did]).toBeCloseTo(0.6, 10);
    expect((await authed(url, c, 'POST', '/v1/registry/reputation/session', body(a))).status).toBe(403);
    expect((await authed(url, c, 'POST', '/v1/registry/reputation/session', body(c))).status).toBe(403);
    expect((await authed(url, a, 'POST', '/v1/registry/reputation/session', body(a, 'meh'))).status).toBe(400);
  });

  it('verify → 503 (no Entra); discover by capability with limit 1..200; health', async () => {
    expect(await http(url, 'POST', '/v1/registry/verify', { amid: 'x', verification_token: 't' })).toMatchObject({ status: 503 });
    const a = newAgent();
    await register(url, a, ['rare-capability']);
    const d = await http(url, 'GET', '/v1/discover?capability=rare-capability&limit=5');
    expect(d).toMatchObject({
      status: 200,
      body: { total: 1, results: [{ did: a.did, capabilities: ['rare-capability'], reputation_score: 0.5 }] },
    });
    expect((await http(url, 'GET', '/v1/discover?capability=x&limit=0')).status).toBe(422);
    expect((await http(url, 'GET', '/v1/discover?capability=x&limit=201')).status).toBe(422);
    const h = await http(url, 'GET', '/health');
    expect(h).toMatchObject({ status: 200, body: { status: 'healthy', service: 'agentmesh-e2e', entra_verify_enabled: false } });
    expect(Object.keys(h.body.stats).sort()).toEqual(['messages_delivered', 'messages_routed', 'messages_stored']);
    expect((await http(url, 'GET', '/healthz')).status).toBe(404);
    expect((await http(url, 'GET', '/v1/nothing')).status).toBe(404);
  });
});

describe('registry auth', () => {
  it('our request-bound header: accepted once; replay → 401; on another path or body → 401 Invalid signature', async () => {
    const a = newAgent();
    await register(url, a);
    const path = `/v1/agents/${a.did}/prekeys`;
    const body = JSON.stringify(bundleBody(a, 1));
    const h = buildRegistryAuth(a, { method: 'PUT', path, body });
    expect((await http(url, 'PUT', path, body, { authorization: h })).status).toBe(200);
    expect(await http(url, 'PUT', path, body, { authorization: h })).toMatchObject({
      status: 401,
      body: { detail: 'Authorization already used (replay)' },
    });
    const h2 = buildRegistryAuth(a, { method: 'PUT', path, body });
    expect(await http(url, 'DELETE', `/v1/agents/${a.did}`, undefined, { authorization: h2 })).toMatchObject({
      status: 401,
      body: { detail: 'Invalid signature' },
    });
    expect(await http(url, 'PUT', path, JSON.stringify(bundleBody(a, 1)), { authorization: h2 })).toMatchObject({
      status: 401,
      body: { detail: 'Invalid signature' },
    });
  });

  it("AGT's Ed25519-Timestamp header: accepted, flagged weaker, single-use", async () => {
    const a = newAgent();
    await register(url, a);
    const path = `/v1/agents/${a.did}/prekeys/count`;
    const h = buildAgtRegistryAuth(a);
    const r = await http(url, 'GET', path, undefined, { authorization: h });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-agentmesh-auth-warning')).toMatch(/not bound to the request/);
    expect(await http(url, 'GET', path, undefined, { authorization: h })).toMatchObject({
      status: 401,
      body: { detail: 'Authorization already used (replay)' },
    });
  });

  it('401s: naive or stale timestamp, unregistered DID, bad signature', async () => {
    const a = newAgent();
    await register(url, a);
    const path = `/v1/agents/${a.did}/prekeys/count`;
    const sig = (ts: string) => toBase64Url(ed25519Sign(a.secretKey, utf8(ts)));
    const naive = '2026-01-01T00:00:00';
    const stale = new Date(Date.now() - 301_000).toISOString();
    const now = new Date().toISOString();
    const cases: Array<[string, string]> = [
      [`Ed25519-Timestamp ${a.did} ${naive} ${sig(naive)}`, 'Timestamp must include timezone offset'],
      [`Ed25519-Timestamp ${a.did} ${stale} ${sig(stale)}`, 'Timestamp outside replay window'],
      [`Ed25519-Timestamp ${newAgent().did} ${now} ${sig(now)}`, 'Agent not registered'],
      [`Ed25519-Timestamp ${a.did} ${now} ${toBase64Url(new Uint8Array(64))}`, 'Invalid signature'],
    ];
    for (const [authorization, detail] of cases) {
      expect(await http(url, 'GET', path, undefined, { authorization })).toMatchObject({ status: 401, body: { detail } });
    }
  });
});
