/**
 * The registry's post-quantum pre-keys (ours, beside AGT's fields): `kem_pre_key` (last resort) and `kem_pre_keys`
 * (one-time) uploaded, each one-time KEM pre-key handed out once, `kem_count`, the body bounds, and a classic agent's
 * answers unchanged, byte for byte.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { ed25519KeyPair, ed25519Sign, toBase64Url, x25519KeyPair } from '../../lib/crypto';
import { X3DHKeyManager, bundleFromJSON } from '../../lib/x3dh';
import { SecureChannel } from '../../lib/channel';
import { InMemoryStore } from '../../lib/store/memory';
import { MeshServer, SqliteAgentDirectory, startMeshServer } from '../../lib/server';
import * as frames from '../../lib/mesh/frames';
import { buildRegistryAuth } from '../../lib/mesh/frames';
import { TestAgent, authed, bundleBody, http, newAgent, register } from './helpers';

/** The JSON form of KEM pre-keys a manager made. */
function kemJson(k: { keyId: number; publicKey: Uint8Array; signature: Uint8Array }) {
  return { key_id: k.keyId, public_key: toBase64Url(k.publicKey), signature: toBase64Url(k.signature) };
}

/** `agent`'s key manager, with a last-resort KEM pre-key and `n` one-time ones; the PUT body carrying them. */
function pqBody(agent: TestAgent, n = 2, otks = 2) {
  const m = X3DHKeyManager.fromEd25519Keys(agent.secretKey, agent.publicKey);
  m.generateSignedPreKey();
  const lastResort = m.generateLastResortKemPreKey();
  const oneTime = n > 0 ? m.generateKemPreKeys(n) : [];
  const base = bundleBody(agent, otks);
  const spk = m.signedPreKey!;
  return {
    manager: m,
    lastResort,
    oneTime,
    body: {
      ...base,
      signed_pre_key: { key_id: spk.keyId, public_key: toBase64Url(spk.keyPair.publicKey), signature: toBase64Url(spk.signature) },
      kem_pre_key: kemJson(lastResort),
      kem_pre_keys: oneTime.map(kemJson),
    },
  };
}

let server: MeshServer;
let url: string;
beforeAll(async () => {
  await ready();
  server = await startMeshServer({
    port: 0,
    registry: { bundleFetchBurst: 1000, uploadBurst: 1000, registerBurst: 1000, oneTimeKeyBurst: 1000 },
  });
  url = server.url;
});
afterAll(async () => server.close());

describe('KEM pre-keys at the registry', () => {
  it('PUT with kem_pre_key and kem_pre_keys → {did, otk_count, kem_count}; each one-time KEM key claimed once, then the last-resort one', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const { body, lastResort, oneTime } = pqBody(a, 2, 1);
    const path = `/v1/agents/${a.did}/prekeys`;
    const put = await authed(url, a, 'PUT', path, body);
    expect(put).toMatchObject({ status: 200 });
    expect(put.body).toEqual({ did: a.did, otk_count: 1, kem_count: 2 });
    const kemIds: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await authed(url, b, 'GET', path);
      expect(r.status).toBe(200);
      expect(Object.keys(r.body)).toEqual(['identity_key', 'identity_key_ed', 'signed_pre_key', 'one_time_pre_key', 'kem_pre_key']);
      kemIds.push(r.body.kem_pre_key.key_id);
      // What a claim gives is a bundle an initiator can use: a post-quantum session.
      const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
      const { channel } = SecureChannel.createSender(bob, bundleFromJSON(r.body), undefined, { requirePostQuantum: true });
      expect(channel.postQuantum).toBe(true);
    }
    expect(kemIds).toEqual([oneTime[0]!.keyId, oneTime[1]!.keyId, lastResort.keyId, lastResort.keyId]);
    expect((await authed(url, a, 'GET', `${path}/count`)).body).toEqual({ did: a.did, otk_count: 0, kem_count: 0 });
  });

  it('two uploads of one agent at once never mix: every claim after them comes from one of the two, whole', async () => {
    const b = newAgent();
    await register(url, b);
    for (let round = 0; round < 6; round++) {
      const a = newAgent();
      await register(url, a);
      const path = `/v1/agents/${a.did}/prekeys`;
      const uploads = [pqBody(a, 2, 2), pqBody(a, 2, 2)];
      const puts = await Promise.all(uploads.map((u) => authed(url, a, 'PUT', path, u.body)));
      expect(puts.map((p) => p.status)).toEqual([200, 200]);
      const claims: Record<string, any>[] = [];
      for (let i = 0; i < 3; i++) claims.push((await authed(url, b, 'GET', path)).body);
      const winner = uploads.findIndex((u) => u.body.signed_pre_key.public_key === claims[0].signed_pre_key.public_key);
      expect(winner).toBeGreaterThanOrEqual(0);
      const w = uploads[winner]!.body;
      const kems = [w.kem_pre_key, ...w.kem_pre_keys].map((k) => k.public_key);
      const otks = w.one_time_pre_keys.map((k) => k.public_key);
      for (const c of claims) {
        expect(c.signed_pre_key.public_key).toBe(w.signed_pre_key.public_key);
        expect(kems).toContain(c.kem_pre_key.public_key);
        if (c.one_time_pre_key) expect(otks).toContain(c.one_time_pre_key.public_key);
      }
      // The last claim is past the one-time KEM budget: the last-resort KEM pre-key of that same upload.
      expect(claims[2].kem_pre_key.public_key).toBe(w.kem_pre_key.public_key);
    }
  });

  it('a classic agent gets AGT’s answers byte for byte: no kem_pre_key, no kem_count', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const body = bundleBody(a, 1);
    const path = `/v1/agents/${a.did}/prekeys`;
    const put = await fetchRaw('PUT', path, a, body);
    expect(put).toBe(JSON.stringify({ did: a.did, otk_count: 1 }));
    expect(await fetchRaw('GET', `${path}/count`, a)).toBe(JSON.stringify({ did: a.did, otk_count: 1 }));
    const expected = (otk: unknown) =>
      JSON.stringify({
        identity_key: body.identity_key,
        identity_key_ed: body.identity_key_ed,
        signed_pre_key: body.signed_pre_key,
        one_time_pre_key: otk,
      });
    expect(await fetchRaw('GET', path, b)).toBe(expected(body.one_time_pre_keys[0]));
    expect(await fetchRaw('GET', path, b)).toBe(expected(null));
    expect(
      await fetchRaw('POST', `${path}/one-time`, a, {
        one_time_pre_keys: [{ key_id: 9, public_key: toBase64Url(x25519KeyPair().publicKey) }],
      }),
    ).toBe(JSON.stringify({ did: a.did, otk_count: 1 }));
  });

  it('a PUT without kem_pre_key makes the bundle classic again (an upload replaces everything, as AGT’s)', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const path = `/v1/agents/${a.did}/prekeys`;
    expect((await authed(url, a, 'PUT', path, pqBody(a).body)).body.kem_count).toBe(2);
    const classic = await authed(url, a, 'PUT', path, bundleBody(a, 1, 50, 7));
    expect(classic.body).toEqual({ did: a.did, otk_count: 1 });
    const r = await authed(url, b, 'GET', path);
    expect(r.body.kem_pre_key).toBeUndefined();
  });

  it('POST …/prekeys/one-time takes kem_pre_keys alone; needs a last-resort KEM key; pool cap; 409 for an id reused with another key', async () => {
    const a = newAgent();
    await register(url, a);
    const path = `/v1/agents/${a.did}/prekeys`;
    const { body, manager } = pqBody(a, 0, 0);
    // A classic bundle first: one-time KEM keys without a last-resort one are refused (a claim beyond the budget
    // would have no post-quantum key to give).
    await authed(url, a, 'PUT', path, bundleBody(a, 0));
    const more = manager.generateKemPreKeys(2).map(kemJson);
    expect(await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: more })).toMatchObject({
      status: 400,
      body: { detail: 'Invalid pre-key bundle: one-time KEM pre-keys need a last-resort KEM pre-key (kem_pre_key)' },
    });
    expect((await authed(url, a, 'PUT', path, body)).body).toEqual({ did: a.did, otk_count: 0, kem_count: 0 });
    expect(await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: more })).toMatchObject({
      status: 200,
      body: { did: a.did, otk_count: 0, kem_count: 2 },
    });
    // Re-adding the same keys is a no-op; the same id with another key is a conflict.
    expect((await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: more })).body.kem_count).toBe(2);
    const other = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
    other.generateKemPreKeys(more[0]!.key_id); // ids up to the one reused
    const clash = kemJson(other.generateKemPreKeys(1)[0]!);
    expect(clash.key_id).toBe(more[0]!.key_id);
    expect(await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: [clash] })).toMatchObject({
      status: 409,
      body: { detail: 'KEM pre-key id already used' },
    });
    const cap = server.registry.limits.maxKemPreKeys;
    const many = manager.generateKemPreKeys(cap - 1).map(kemJson);
    expect(await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: many })).toMatchObject({
      status: 400,
      body: { detail: `Invalid pre-key bundle: at most ${cap} one-time KEM pre-keys` },
    });
    expect((await authed(url, a, 'GET', `${path}/count`)).body.kem_count).toBe(2);
    // Both lists in one call.
    const both = { one_time_pre_keys: [{ key_id: 3, public_key: toBase64Url(x25519KeyPair().publicKey) }], kem_pre_keys: many.slice(0, 1) };
    expect((await authed(url, a, 'POST', `${path}/one-time`, both)).body).toEqual({ did: a.did, otk_count: 1, kem_count: 3 });
  });

  it('a claimed one-time KEM key is never handed out again: re-uploading it is refused (PUT and POST)', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const path = `/v1/agents/${a.did}/prekeys`;
    const { body } = pqBody(a, 1, 0);
    await authed(url, a, 'PUT', path, body);
    expect((await authed(url, b, 'GET', path)).body.kem_pre_key.key_id).toBe(body.kem_pre_keys[0]!.key_id);
    expect(await authed(url, a, 'PUT', path, body)).toMatchObject({
      status: 400,
      body: { detail: 'Invalid pre-key bundle: KEM pre-key was already handed out' },
    });
    expect(await authed(url, a, 'POST', `${path}/one-time`, { kem_pre_keys: body.kem_pre_keys })).toMatchObject({
      status: 400,
      body: { detail: 'Invalid pre-key bundle: KEM pre-key was already handed out' },
    });
    // The last-resort key itself may be re-published (it is never one-time).
    expect((await authed(url, a, 'PUT', path, { ...body, kem_pre_keys: [] })).status).toBe(200);
  });

  it('refusals, each before anything changes (G11)', async () => {
    const a = newAgent();
    const b = newAgent();
    await register(url, a);
    await register(url, b);
    const path = `/v1/agents/${a.did}/prekeys`;
    const good = pqBody(a, 1, 1);
    await authed(url, a, 'PUT', path, good.body);
    const fresh = pqBody(a, 2, 1); // another manager: ids collide with nothing stored
    const lr = fresh.body.kem_pre_key;
    const stranger = ed25519KeyPair();
    const rawSig = toBase64Url(ed25519Sign(a.secretKey, fresh.lastResort.publicKey)); // over the raw key: no context, not a KEM signature
    const bad: Array<[Record<string, unknown>, number, string]> = [
      [
        { kem_pre_key: { ...lr, public_key: toBase64Url(new Uint8Array(1183)) } },
        400,
        'Invalid pre-key bundle: KEM pre-key must be 1184 bytes',
      ],
      [{ kem_pre_key: { ...lr, public_key: 'A'.repeat(5000) } }, 400, 'Invalid pre-key bundle: KEM pre-key must be 1184 bytes'],
      [
        { kem_pre_key: { ...lr, signature: rawSig } },
        400,
        'Invalid pre-key bundle: KEM pre-key signature does not verify under the registered key',
      ],
      [
        { kem_pre_key: { ...lr, signature: toBase64Url(ed25519Sign(stranger.secretKey, fresh.lastResort.publicKey)) } },
        400,
        'Invalid pre-key bundle: KEM pre-key signature does not verify under the registered key',
      ],
      [
        { kem_pre_key: { key_id: 1, public_key: lr.public_key } },
        400,
        'Invalid pre-key bundle: each KEM pre-key is {key_id, public_key, signature}',
      ],
      [{ kem_pre_key: 'x' }, 400, 'Invalid pre-key bundle: each KEM pre-key is {key_id, public_key, signature}'],
      [{ kem_pre_keys: 'x' }, 422, 'kem_pre_keys must be a list'],
      [{ kem_pre_keys: [fresh.body.kem_pre_keys[0], fresh.body.kem_pre_keys[0]] }, 400, 'Invalid pre-key bundle: duplicate KEM pre-key id'],
      [{ kem_pre_keys: [lr] }, 400, 'Invalid pre-key bundle: duplicate KEM pre-key id'],
      [{ kem_pre_key: undefined }, 400, 'Invalid pre-key bundle: one-time KEM pre-keys need a last-resort KEM pre-key (kem_pre_key)'],
      [
        { kem_pre_keys: [{ ...fresh.body.kem_pre_keys[0]!, signature: fresh.body.kem_pre_keys[1]!.signature }] },
        400,
        'Invalid pre-key bundle: KEM pre-key signature does not verify under the registered key',
      ],
    ];
    const decode = jest.spyOn(frames, 'decodeB64Lenient');
    for (const [patch, status, detail] of bad) {
      expect(await authed(url, a, 'PUT', path, { ...fresh.body, ...patch })).toMatchObject({ status, body: { detail } });
    }
    // A string longer than a key's encoding is refused undecoded.
    expect(decode.mock.calls.filter(([text]) => text.length > 1600)).toEqual([]);
    decode.mockRestore();
    // The first bundle is intact: its counts and its one-time KEM key.
    expect((await authed(url, a, 'GET', `${path}/count`)).body).toEqual({ did: a.did, otk_count: 1, kem_count: 1 });
    const got = await authed(url, b, 'GET', path);
    expect(got.body.kem_pre_key).toEqual(good.body.kem_pre_keys[0]);
  });

  it('beyond a target’s one-time budget, a claim gets the last-resort KEM key, never an unclaimed one-time one (SQLite directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pq-registry-'));
    const directory = new SqliteAgentDirectory(join(dir, 'agents.sqlite'));
    const s = await startMeshServer({
      port: 0,
      directory,
      prekeys: new InMemoryStore(),
      registry: { bundleFetchBurst: 1000, uploadBurst: 1000, oneTimeKeyBurst: 1, oneTimeKeyPerSecond: 0.001 },
    });
    try {
      const a = newAgent();
      const b = newAgent();
      await register(s.url, a);
      await register(s.url, b);
      const { body, lastResort, oneTime } = pqBody(a, 3, 3);
      const path = `/v1/agents/${a.did}/prekeys`;
      await authed(s.url, a, 'PUT', path, body);
      const first = await authed(s.url, b, 'GET', path);
      expect(first.body.kem_pre_key.key_id).toBe(oneTime[0]!.keyId);
      expect(first.body.one_time_pre_key).not.toBeNull();
      for (let i = 0; i < 3; i++) {
        const r = await authed(s.url, b, 'GET', path);
        expect(r.body.one_time_pre_key).toBeNull();
        expect(r.body.kem_pre_key).toEqual(kemJson(lastResort));
      }
      // Nothing more left the pools.
      expect((await authed(s.url, a, 'GET', `${path}/count`)).body).toEqual({ did: a.did, otk_count: 2, kem_count: 2 });
      // A record that lost its copy of the last-resort key (a concurrent write of an older record): with an empty KEM
      // pool the peeked bundle's KEM key is the last-resort one, and is given; with a full one, none (never a one-time key).
      const c = newAgent();
      await register(s.url, c);
      const lone = pqBody(c, 0, 0);
      await authed(s.url, c, 'PUT', `/v1/agents/${c.did}/prekeys`, lone.body);
      for (const target of [a, c]) {
        const r = directory.get(target.did)!;
        delete r.kemLastResort;
        directory.update(r);
      }
      await authed(s.url, b, 'GET', `/v1/agents/${c.did}/prekeys`); // within c's budget
      expect((await authed(s.url, b, 'GET', `/v1/agents/${c.did}/prekeys`)).body.kem_pre_key).toEqual(kemJson(lone.lastResort));
      expect((await authed(s.url, b, 'GET', path)).body.kem_pre_key).toBeUndefined();
    } finally {
      await s.close();
      directory.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('body bounds: an upload of 1,000 one-time and 200 KEM pre-keys passes; past maxPreKeyBodyBytes → 413; other endpoints keep 256 KiB', async () => {
    const a = newAgent();
    await register(url, a);
    const { body, manager } = pqBody(a, 0, 1000);
    const tooMany = manager.generateKemPreKeys(201).map(kemJson);
    expect(await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, { ...body, kem_pre_keys: tooMany })).toMatchObject({
      status: 400,
      body: { detail: 'Invalid pre-key bundle: at most 200 one-time KEM pre-keys' },
    });
    const full = { ...body, kem_pre_keys: tooMany.slice(1) };
    const text = JSON.stringify(full);
    expect(text.length).toBeGreaterThan(256 * 1024);
    expect(text.length).toBeLessThan(server.registry.limits.maxPreKeyBodyBytes);
    const put = await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, full);
    expect(put.body).toEqual({ did: a.did, otk_count: 1000, kem_count: 200 });
    const huge = { ...full, pad: 'x'.repeat(server.registry.limits.maxPreKeyBodyBytes) };
    expect((await authed(url, a, 'PUT', `/v1/agents/${a.did}/prekeys`, huge)).status).toBe(413);
    expect((await authed(url, a, 'POST', `/v1/agents/${a.did}/prekeys/one-time`, huge)).status).toBe(413);
    // Everything else: the general bound.
    const mid = { x: 'a'.repeat(300 * 1024) };
    expect((await http(url, 'POST', '/v1/agents', mid)).status).toBe(413);
    expect((await authed(url, a, 'POST', `/v1/agents/${a.did}/heartbeat`, mid)).status).toBe(413);
    expect((await http(url, 'PUT', `/v1/agents/${a.did}/prekeys/count`, mid)).status).toBe(413);
  });
});

/** The raw text of an authenticated call's answer (200 expected). */
async function fetchRaw(method: string, path: string, agent: TestAgent, body?: unknown): Promise<string> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const authorization = buildRegistryAuth(agent, text === undefined ? { method, path } : { method, path, body: text });
  const r = await fetch(url + path, {
    method,
    headers: { authorization, ...(text !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  const raw = await r.text();
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${raw}`);
  return raw;
}
