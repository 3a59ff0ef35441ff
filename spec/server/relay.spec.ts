/** The relay at /ws: every frame type, every error path with its exact frame and close code. Loopback only. */
import { ready } from '../../lib/sodium';
import { toBase64 } from '../../lib/crypto';
import { CloseCode, Feature, buildConnectFrame } from '../../lib/mesh/frames';
import { MemoryInboxStore, MeshServer, startMeshServer } from '../../lib/server';
import { TestClient, connect, message, newAgent, sleep } from './helpers';

let server: MeshServer;
let inbox: MemoryInboxStore;
beforeAll(async () => {
  await ready();
  inbox = new MemoryInboxStore();
  server = await startMeshServer({
    port: 0,
    inbox,
    relay: { firstFrameTimeoutMs: 300, maxPerInbox: 5, maxPerSender: 8, maxFrameBytes: 4096, hardMaxFrameBytes: 16384, messageBurst: 1000 },
  });
});
afterAll(async () => server.close());

async function raw(): Promise<TestClient> {
  const c = new TestClient(server.url);
  await c.opened;
  return c;
}

describe('connect', () => {
  it('no first frame within the timeout → 1000, no error frame', async () => {
    const c = await raw();
    const e = await c.closeEvent();
    expect(e).toEqual({ code: 1000, reason: '', frames: [] });
  });

  it.each([
    ['not JSON → 4001', 'hello', 4001, "First frame must be 'connect'"],
    ['not connect → 4001', JSON.stringify({ type: 'message', to: 'did:mesh:x', id: '1' }), 4001, "First frame must be 'connect'"],
    ['no from → 4002', JSON.stringify({ type: 'connect' }), 4002, "Missing 'from' field"],
    [
      'no proof fields → 4005',
      JSON.stringify({ type: 'connect', from: 'did:mesh:00' }),
      4005,
      'DID proof failed: connect frame missing did/public_key/timestamp/signature',
    ],
  ])('%s', async (_name, text, code, detail) => {
    const c = await raw();
    c.send(text);
    expect(await c.closeEvent()).toEqual({ code, reason: '', frames: [{ type: 'error', detail }] });
  });

  it("each DID proof failure → 4005 with AGT's reason", async () => {
    const a = newAgent();
    const good = buildConnectFrame(a, { nonce: false });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ public_key: toBase64(a.publicKey).replace(/=+$/, '') }, 'invalid public_key encoding'],
      [{ public_key: toBase64(new Uint8Array(31)) }, 'public_key must be 32 bytes'],
      [{ from: newAgent().did }, 'DID does not match public_key (sha256 mismatch)'],
      [{ timestamp: 'yesterday' }, 'invalid timestamp format'],
      [{ timestamp: '2026-01-01T00:00:00' }, 'timestamp must include timezone offset'],
      [{ timestamp: new Date(Date.now() - 400_000).toISOString() }, 'timestamp outside replay window'],
      [{ signature: 'AAAA' }, 'invalid signature'],
      [{ signature: toBase64(new Uint8Array(64)) }, 'signature verification failed'],
    ];
    for (const [patch, reason] of cases) {
      const c = await raw();
      c.send({ ...good, ...patch });
      expect(await c.closeEvent()).toEqual({ code: 4005, reason: '', frames: [{ type: 'error', detail: `DID proof failed: ${reason}` }] });
    }
  });

  it("AGT's timestamp-only proof is accepted (+20 s passes; at most 30 s ahead since the review); no welcome frame without features (AGT behaviour)", async () => {
    const a = newAgent();
    const c = await raw();
    c.send(buildConnectFrame(a, { nonce: false, now: new Date(Date.now() + 20_000) }));
    expect(await c.quiet(150)).toBe(true);
    expect(server.relay.isConnected(a.did)).toBe(true);
    c.close();
  });

  it('with features: a connected frame listing them, the pending count and limits', async () => {
    const a = newAgent();
    const c = await connect(server.url, a, { welcome: false });
    expect(await c.frame()).toEqual({
      type: 'connected',
      did: a.did,
      features: ['welcome', 'receipts', 'heartbeat_ack'],
      pending: 0,
      limits: { max_frame_bytes: 4096, idle_timeout_ms: 90_000 },
    });
    c.close();
  });

  it('a second connect frame → "Unknown frame type: connect", socket stays open', async () => {
    const a = newAgent();
    const c = await connect(server.url, a, { agt: true });
    c.send(buildConnectFrame(a));
    expect(await c.frame()).toEqual({ type: 'error', detail: 'Unknown frame type: connect' });
    expect(c.closed).toBeNull();
    c.close();
  });

  it('a token-protected relay: missing or wrong token → 4003 "Authentication failed"; right token connects', async () => {
    const s = await startMeshServer({ port: 0, token: 's3cret' });
    try {
      const a = newAgent();
      for (const token of [undefined, 'wrong']) {
        const c = new TestClient(s.url);
        await c.opened;
        c.send(buildConnectFrame(a, token === undefined ? {} : { token }));
        expect(await c.closeEvent()).toEqual({ code: 4003, reason: '', frames: [{ type: 'error', detail: 'Authentication failed' }] });
      }
      const ok = new TestClient(s.url);
      await ok.opened;
      ok.send(buildConnectFrame(a, { token: 's3cret', features: [Feature.WELCOME] }));
      expect((await ok.frame()).type).toBe('connected');
      ok.close();
    } finally {
      await s.close();
    }
  });
});

describe('routing, store until ack', () => {
  it.each(['message', 'knock', 'knock_accept', 'knock_reject'])(
    '%s: forwarded verbatim with from stamped, receipt to the sender',
    async (type) => {
      const a = newAgent();
      const b = newAgent();
      const ca = await connect(server.url, a);
      const cb = await connect(server.url, b);
      const f = { ...message(b.did, `${type}-1`), type, extra: { kept: true } };
      ca.send(f);
      expect(await ca.frame()).toEqual({ type: 'accepted', id: `${type}-1`, to: b.did, duplicate: false });
      expect(await cb.frame()).toEqual({ ...f, from: a.did });
      // At rest: exactly the frame the relay saw and forwarded (its text), nothing more.
      const [stored] = inbox.pending(b.did, Date.now(), 10);
      expect(JSON.parse(stored!.frame)).toEqual({ ...f, from: a.did });
      expect(stored).toMatchObject({ recipient: b.did, id: `${type}-1`, sender: a.did });
      cb.send({ type: 'ack', id: `${type}-1` });
      await sleep(30);
      await server.relay.drain();
      expect(inbox.count(b.did)).toBe(0);
      ca.close();
      cb.close();
    },
  );

  it('a live-delivered frame is kept until acked: pushed again at the next connect, gone after the ack', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    let cb = await connect(server.url, b);
    ca.send(message(b.did, 'keep-1'));
    expect((await cb.frame()).id).toBe('keep-1');
    cb.close();
    await cb.closeEvent();
    cb = await connect(server.url, b, { welcome: false });
    expect(await cb.frame()).toMatchObject({ type: 'connected', pending: 1 });
    expect((await cb.frame()).id).toBe('keep-1');
    cb.send({ v: 1, type: 'ack', id: 'keep-1' });
    await sleep(30);
    await server.relay.drain();
    cb.close();
    await cb.closeEvent();
    cb = await connect(server.url, b, { welcome: false });
    expect(await cb.frame()).toMatchObject({ type: 'connected', pending: 0 });
    expect(await cb.quiet(100)).toBe(true);
    ca.close();
    cb.close();
  });

  it('offline recipient: stored, pushed oldest first at connect (knock before message)', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    ca.send({ ...message(b.did, 'k'), type: 'knock' });
    ca.send(message(b.did, 'm'));
    await ca.frame();
    await ca.frame();
    const cb = await connect(server.url, b, { agt: true });
    expect((await cb.frame()).id).toBe('k');
    expect((await cb.frame()).id).toBe('m');
    ca.close();
    cb.close();
  });

  it('dedup per (recipient, id): same sender → duplicate receipt, not delivered again; another sender → id_conflict', async () => {
    const a = newAgent();
    const c = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    const cc = await connect(server.url, c);
    const cb = await connect(server.url, b);
    ca.send(message(b.did, 'dup'));
    expect((await ca.frame()).duplicate).toBe(false);
    expect((await cb.frame()).id).toBe('dup');
    ca.send(message(b.did, 'dup'));
    expect(await ca.frame()).toEqual({ type: 'accepted', id: 'dup', to: b.did, duplicate: true });
    cc.send(message(b.did, 'dup'));
    expect(await cc.frame()).toEqual({
      type: 'error',
      detail: 'Message id already in use for this recipient',
      code: 'id_conflict',
      id: 'dup',
    });
    // The same id to another recipient is independent (AGT dedups globally, #3526).
    ca.send(message(c.did, 'dup'));
    expect(await ca.frame()).toEqual({ type: 'accepted', id: 'dup', to: c.did, duplicate: false });
    expect(await cb.quiet(50)).toBe(true);
    for (const x of [ca, cb, cc]) x.close();
  });

  it("ack only deletes the acking recipient's own frame", async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    ca.send(message(b.did, 'mine'));
    await ca.frame();
    ca.send({ type: 'ack', id: 'mine' }); // a is not the recipient
    await sleep(30);
    await server.relay.drain();
    expect(inbox.count(b.did)).toBe(1);
    ca.close();
  });

  it('from ≠ authenticated DID → error from_mismatch, not routed (G1)', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    ca.send({ ...message(b.did, 'forged'), from: newAgent().did });
    expect(await ca.frame()).toEqual({
      type: 'error',
      detail: "'from' does not match the authenticated DID",
      code: 'from_mismatch',
      id: 'forged',
    });
    await server.relay.drain();
    expect(inbox.count(b.did)).toBe(0);
    ca.close();
  });

  it('AGT error shape for AGT clients: {type, detail} only', async () => {
    const a = newAgent();
    const ca = await connect(server.url, a, { agt: true });
    ca.send({ ...message(newAgent().did, 'x'), from: newAgent().did });
    expect(await ca.frame()).toEqual({ type: 'error', detail: "'from' does not match the authenticated DID" });
    ca.close();
  });
});

describe('malformed and control frames (the socket stays open)', () => {
  it.each([
    ['not JSON', '{', 'Malformed frame: not JSON', 'malformed_frame'],
    ['an array', '[1]', 'Malformed frame: not a JSON object', 'malformed_frame'],
    [
      'to as a list',
      JSON.stringify({ type: 'message', to: ['did:mesh:a'], id: '1' }),
      "Malformed frame: 'to' must be a DID string",
      'malformed_frame',
    ],
    [
      'no id',
      JSON.stringify({ type: 'message', to: 'did:mesh:a' }),
      "Malformed frame: 'id' must be 1 to 128 printable characters",
      'malformed_frame',
    ],
    [
      'ack without id',
      JSON.stringify({ type: 'ack', id: 5 }),
      "Malformed frame: ack 'id' must be 1 to 128 printable characters",
      'malformed_frame',
    ],
    ['unknown type', JSON.stringify({ type: 'presence' }), 'Unknown frame type: presence', 'unknown_type'],
    [
      'fetch_pending (AGT MeshClient sends it)',
      JSON.stringify({ v: 1, type: 'fetch_pending' }),
      'Unknown frame type: fetch_pending',
      'unknown_type',
    ],
  ])('%s', async (_n, text, detail, code) => {
    const c = await connect(server.url, newAgent());
    c.send(text);
    expect(await c.frame()).toEqual({ type: 'error', detail, code });
    c.send({ type: 'heartbeat' });
    expect((await c.frame()).type).toBe('heartbeat_ack');
    c.close();
  });

  it('binary frame → error, open', async () => {
    const c = await connect(server.url, newAgent());
    c.ws.send(Buffer.from([1, 2, 3]));
    expect(await c.frame()).toEqual({ type: 'error', detail: 'Binary frames are not accepted', code: 'binary_frame' });
    c.close();
  });

  it('heartbeat: heartbeat_ack only when asked; AGT clients get no reply', async () => {
    const c = await connect(server.url, newAgent(), { agt: true });
    c.send({ v: 1, type: 'heartbeat', from: 'x', ts: new Date().toISOString() });
    expect(await c.quiet(100)).toBe(true);
    c.close();
  });

  it('disconnect → close 1000', async () => {
    const c = await connect(server.url, newAgent());
    c.send({ v: 1, type: 'disconnect' });
    expect((await c.closeEvent()).code).toBe(1000);
  });
});

describe('limits (G10)', () => {
  it('frame above maxFrameBytes → error frame_too_big, open; above the hard limit → 1009', async () => {
    const a = newAgent();
    const c = await connect(server.url, a);
    c.send(message(newAgent().did, 'big', { ciphertext: 'A'.repeat(5000) }));
    expect(await c.frame()).toEqual({ type: 'error', detail: 'Frame too large (max 4096 bytes)', code: 'frame_too_big' });
    c.send(message(newAgent().did, 'huge', { ciphertext: 'A'.repeat(20000) }));
    expect((await c.closeEvent()).code).toBe(CloseCode.TOO_BIG);
  });

  it('per-inbox quota → inbox_full; per-sender quota → sender_quota', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(server.url, a);
    for (let i = 0; i < 6; i++) ca.send(message(b.did, `q${i}`));
    const got = [];
    for (let i = 0; i < 6; i++) got.push(await ca.frame());
    expect(got.slice(0, 5).every((f) => f.type === 'accepted')).toBe(true);
    expect(got[5]).toEqual({ type: 'error', detail: 'Recipient inbox is full', code: 'inbox_full', id: 'q5' });
    // a has 5 unacked; 3 more to other inboxes hit maxPerSender = 8.
    for (let i = 0; i < 4; i++) ca.send(message(newAgent().did, `s${i}`));
    const more = [];
    for (let i = 0; i < 4; i++) more.push(await ca.frame());
    expect(more.slice(0, 3).every((f) => f.type === 'accepted')).toBe(true);
    expect(more[3]).toEqual({ type: 'error', detail: 'Too many unacknowledged messages from this sender', code: 'sender_quota', id: 's3' });
    ca.close();
  });

  it('per-sender message rate → rate_limited', async () => {
    const s = await startMeshServer({ port: 0, relay: { messageBurst: 3, messagesPerSecond: 1 } });
    try {
      const a = newAgent();
      const c = await connect(s.url, a);
      for (let i = 0; i < 4; i++) c.send(message(newAgent().did, `r${i}`));
      const frames = [];
      for (let i = 0; i < 4; i++) frames.push(await c.frame());
      expect(frames.filter((f) => f.type === 'error')).toEqual([
        { type: 'error', detail: 'Rate limit exceeded', code: 'rate_limited', id: 'r3' },
      ]);
      c.close();
    } finally {
      await s.close();
    }
  });

  it('every frame counts at twice the message rate: an ack flood is refused too', async () => {
    const s = await startMeshServer({ port: 0, relay: { messageBurst: 2, messagesPerSecond: 0.001 } });
    try {
      const c = await connect(s.url, newAgent());
      for (let i = 0; i < 5; i++) c.send({ type: 'ack', id: `a${i}` });
      expect(await c.frame()).toEqual({ type: 'error', detail: 'Rate limit exceeded', code: 'rate_limited' });
      c.close();
    } finally {
      await s.close();
    }
  });

  it('connection rate per address → error "Too many connections" and 4008', async () => {
    const s = await startMeshServer({ port: 0, relay: { connectionBurst: 2, connectionsPerSecond: 0.01 } });
    try {
      const ok1 = new TestClient(s.url);
      const ok2 = new TestClient(s.url);
      await ok1.opened;
      await ok2.opened;
      const third = new TestClient(s.url);
      await third.opened;
      expect(await third.closeEvent()).toEqual({
        code: 4008,
        reason: 'rate_limited',
        frames: [{ type: 'error', detail: 'Too many connections' }],
      });
      ok1.close();
      ok2.close();
    } finally {
      await s.close();
    }
  });

  it('the purge timer deletes expired frames by itself', async () => {
    const box = new MemoryInboxStore();
    const s = await startMeshServer({ port: 0, inbox: box, relay: { ttlMs: 50, purgeIntervalMs: 100 } });
    try {
      const ca = await connect(s.url, newAgent());
      ca.send(message(newAgent().did, 'expiring'));
      await ca.frame();
      expect(box.size()).toBe(1);
      await sleep(300);
      expect(box.size()).toBe(0);
      ca.close();
    } finally {
      await s.close();
    }
  });

  it('maxConnections: the socket over the limit gets "Too many connections" and 4008', async () => {
    const s = await startMeshServer({ port: 0, relay: { maxConnections: 1 } });
    try {
      const first = new TestClient(s.url);
      await first.opened;
      const second = new TestClient(s.url);
      await second.opened;
      expect(await second.closeEvent()).toEqual({
        code: 4008,
        reason: 'rate_limited',
        frames: [{ type: 'error', detail: 'Too many connections' }],
      });
      first.close();
    } finally {
      await s.close();
    }
  });

  it('TTL: expired frames are not pushed and are purged', async () => {
    const box = new MemoryInboxStore();
    const s = await startMeshServer({ port: 0, inbox: box, relay: { ttlMs: 100, purgeIntervalMs: 60_000 } });
    try {
      const a = newAgent();
      const b = newAgent();
      const ca = await connect(s.url, a);
      ca.send(message(b.did, 'old'));
      await ca.frame();
      await sleep(150);
      const cb = await connect(s.url, b, { welcome: false });
      await cb.frame(); // connected
      expect(await cb.quiet(100)).toBe(true);
      expect(box.size()).toBe(1);
      await s.relay.purgeNow();
      expect(box.size()).toBe(0);
      ca.close();
      cb.close();
    } finally {
      await s.close();
    }
  });
});

describe('takeover, idle, heartbeats', () => {
  it('a second connection of the same DID closes the first with 4006 session_replaced and gets the mail', async () => {
    const a = newAgent();
    const b = newAgent();
    const first = await connect(server.url, b);
    const ca = await connect(server.url, a);
    ca.send(message(b.did, 'to-b'));
    expect((await first.frame()).id).toBe('to-b');
    const second = await connect(server.url, b, { welcome: false });
    expect((await first.closeEvent()).code).toBe(4006);
    expect(first.closed).toEqual({ code: 4006, reason: 'session_replaced' });
    expect(await second.frame()).toMatchObject({ type: 'connected', pending: 1 });
    expect((await second.frame()).id).toBe('to-b');
    ca.send(message(b.did, 'to-b-2'));
    expect((await second.frame()).id).toBe('to-b-2');
    ca.close();
    second.close();
  });

  it('G8: pings keep a silent client (no heartbeats) alive and live-delivered; one that answers no pings is closed 4004', async () => {
    const s = await startMeshServer({ port: 0, relay: { idleTimeoutMs: 400, pingIntervalMs: 100 } });
    try {
      const a = newAgent();
      const b = newAgent();
      const silent = await connect(s.url, b, { agt: true });
      const deaf = new TestClient(s.url, { autoPong: false });
      await deaf.opened;
      deaf.send(buildConnectFrame(newAgent()));
      await sleep(700);
      expect(silent.closed).toBeNull();
      const ca = await connect(s.url, a);
      ca.send(message(b.did, 'live-after-idle'));
      expect((await silent.frame()).id).toBe('live-after-idle');
      expect((await deaf.closeEvent()).code).toBe(4004);
      ca.close();
      silent.close();
    } finally {
      await s.close();
    }
  });
});
