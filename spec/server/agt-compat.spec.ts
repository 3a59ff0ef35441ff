/**
 * AGT's own TypeScript clients (npm @microsoft/agent-governance-sdk 4.0.0, unmodified) through our server.
 * 4.0.0 sends no connect proof and registers without proof-of-possession, so it needs `legacyClients: true`
 * (off by default); the default server refuses it. Its KDF is legacy, so it talks only to 4.0.0 peers.
 * The clients run in a child process (fixtures/agt-pair.cjs): the SDK's ESM-only dependencies (@noble/*) do not load
 * in jest; plain Node loads them with require(esm) (default from Node 20.19; the flag covers older 20.x).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ready } from '../../lib/sodium';
import { MemoryInboxStore, startMeshServer } from '../../lib/server';
import { TestClient, connect, http, newAgent, sleep } from './helpers';

function runPair(url: string): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--experimental-require-module', join(__dirname, 'fixtures', 'agt-pair.cjs'), url],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(line) as Record<string, any>);
        } catch {
          reject(new Error(`agt-pair failed: ${String(err)} ${stderr.slice(0, 2000)}`));
        }
      },
    );
  });
}

describe('AGT SDK 4.0.0 MeshClient ↔ MeshClient through our server', () => {
  beforeAll(() => ready());

  it('register, upload, connect, knock, exchange both ways, and an offline message after reconnect', async () => {
    const lines: string[] = [];
    const inbox = new MemoryInboxStore();
    const server = await startMeshServer({ port: 0, legacyClients: true, inbox, log: (l) => lines.push(l) });
    try {
      const r = await runPair(server.url);
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.bInbox).toEqual([
        { from: r.a, payload: { hello: 'from a' } },
        { from: r.a, payload: { n: 2 } },
      ]);
      expect(r.aInbox).toEqual([{ from: r.b, payload: { hello: 'from b' } }]);
      await server.relay.drain();
      expect(server.relay.stats.messages_stored).toBeGreaterThanOrEqual(4);
      // Every message was acked by its recipient; only the unacked knock/knock_accept control frames remain
      // (AGT clients ack only what they decrypt).
      const left = [...inbox.pending(r.a, Date.now(), 100), ...inbox.pending(r.b, Date.now(), 100)].map((m) => JSON.parse(m.frame).type);
      expect(left.filter((t) => t === 'message')).toEqual([]);
      expect(lines.some((l) => l.includes('legacy AGT 4.0.0 mode'))).toBe(true);
    } finally {
      await server.close();
    }
  }, 40_000);

  it('/health counts a legacy connect (no proof) as connected, not as verified', async () => {
    const server = await startMeshServer({ port: 0, legacyClients: true });
    try {
      const legacy = new TestClient(server.url);
      await legacy.opened;
      legacy.send({ v: 1, type: 'connect', from: newAgent().did });
      const proven = await connect(server.url, newAgent());
      const health = async () => (await http(server.url, 'GET', '/health')).body as { connected_agents: number; verified_agents: number };
      for (let i = 0; i < 100 && (await health()).connected_agents < 2; i++) await sleep(20);
      expect(await health()).toMatchObject({ connected_agents: 2, verified_agents: 1 });
      legacy.close();
      proven.close();
    } finally {
      await server.close();
    }
  });

  it('the default server refuses 4.0.0: connect without proof → 4005, legacy registration → 422', async () => {
    const strict = await startMeshServer({ port: 0 });
    try {
      const agent = newAgent();
      const c = new TestClient(strict.url);
      await c.opened;
      c.send({ v: 1, type: 'connect', from: agent.did });
      const closed = await c.closeEvent();
      expect(closed.code).toBe(4005);
      expect(closed.frames[0]).toEqual({
        type: 'error',
        detail: 'DID proof failed: connect frame missing did/public_key/timestamp/signature',
      });
      const r = await http(strict.url, 'POST', '/v1/agents', { did: agent.did, public_key: 'A'.repeat(43) });
      expect(r.status).toBe(422);
    } finally {
      await strict.close();
    }
  });
});
