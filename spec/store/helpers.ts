/** Shared helpers of the store specs: typed-error assertions, agents with bundles, Redis, child processes. */
import { ChildProcess, spawn, spawnSync } from 'child_process';
import { randomBytes as nodeRandomBytes } from 'crypto';
import { join } from 'path';
import Database = require('better-sqlite3');
import type Redis from 'ioredis';
import { ALICE, BOB, NETWORK_SCHEMA } from './fixtures/network';
import { ed25519KeyPair, randomBytes, toHex, utf8 } from '../../lib/crypto';
import { SecureChannel } from '../../lib/channel';
import { PersistentChannel, PublicKemPreKeyEntry, SessionStore, SqliteStore, StorageCipher } from '../../lib/store';
import { PreKeyBundle, X3DHKeyManager } from '../../lib/x3dh';

/** A fresh agent: its key manager with a signed pre-key and `otks` one-time pre-keys. */
export function makeAgent(otks = 0): X3DHKeyManager {
  const id = ed25519KeyPair();
  const mgr = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
  mgr.generateSignedPreKey();
  if (otks > 0) mgr.generateOneTimePreKeys(otks);
  return mgr;
}

/**
 * A fresh post-quantum agent: {@link makeAgent}'s, with a last-resort KEM pre-key and `kems`
 * one-time KEM pre-keys (made after it, so their ids are higher).
 */
export function makePqAgent(otks = 0, kems = 0): X3DHKeyManager {
  const mgr = makeAgent(otks);
  mgr.generateLastResortKemPreKey();
  if (kems > 0) mgr.generateKemPreKeys(kems);
  return mgr;
}

/** The public halves of a manager's unused one-time KEM pre-keys (not the last-resort ones), lowest id first. */
export function publicKems(mgr: X3DHKeyManager): PublicKemPreKeyEntry[] {
  return mgr.kemPreKeyIds
    .map((id) => mgr.getKemPreKey(id))
    .filter((k): k is NonNullable<typeof k> => k !== undefined && !k.lastResort)
    .sort((a, b) => a.keyId - b.keyId)
    .map((k) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature }));
}

/** A bundle without its KEM pre-key (what a classic publisher, or an older release, stores). */
export function classicBundle(b: PreKeyBundle): PreKeyBundle {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { kemPreKey, kemPreKeyId, kemPreKeySignature, ...rest } = b;
  return rest;
}

/** The public halves of a manager's unused one-time pre-keys. */
export function publicOtks(mgr: X3DHKeyManager): { keyId: number; publicKey: Uint8Array }[] {
  return mgr.oneTimePreKeyIds.map((keyId) => ({ keyId, publicKey: mgr.getOneTimePreKey(keyId)?.keyPair.publicKey as Uint8Array }));
}

/** A bundle's fields as plain arrays (Jest compares Uint8Array and Buffer differently). */
export function plain(b: PreKeyBundle | null): unknown {
  if (b === null) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(b)) out[k] = v instanceof Uint8Array ? toHex(v) : v;
  return out;
}

/** A random namespace for one test run, so parallel runs against one Redis never collide. */
export function randomNamespace(): string {
  // Collection time, before ready(): Node's CSPRNG rather than the library's.
  return `agentmesh-test-${nodeRandomBytes(6).toString('hex')}`;
}

/** Test clean-up: deletes every key whose name starts with `prefix` (all namespaces of one run). */
export async function clearPrefix(client: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) deleted += await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

/** The Redis URL to test against, or `null` (with the reason) when the tests must skip. */
export function redisTarget(): { url: string | null; why: string } {
  const url = process.env.REDIS_URL ?? (process.env.CI ? 'redis://127.0.0.1:6399/0' : null);
  if (url === null) return { url: null, why: 'REDIS_URL is not set' };
  const u = new URL(url);
  // A synchronous probe, so the suite can be skipped at collection time on a machine without Redis.
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `
    const s = require('net').connect(${Number(u.port || 6379)}, ${JSON.stringify(u.hostname)});
    s.setTimeout(1000, () => process.exit(1)); s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));
  `,
    ],
    { timeout: 5000 },
  );
  if (probe.status === 0) return { url, why: '' };
  if (process.env.CI) return { url, why: '' }; // in CI the Redis tests must run, and so fail loudly
  return { url: null, why: `nothing answers at ${u.host}` };
}

/** `describe` when Redis is reachable (always in CI), else `describe.skip` with a clear message. */
export function describeRedis(name: string, fn: (url: string) => void): void {
  const { url, why } = redisTarget();
  if (url === null) {
    console.warn(`[store] SKIPPING Redis tests "${name}": ${why}. Start redis-server and set REDIS_URL to run them (CI always runs them).`);
    describe.skip(name, () => fn(''));
    return;
  }
  describe(name, () => fn(url));
}

/** Runs a TypeScript fixture of spec/store/fixtures in a child Node process (through tsx). */
export function spawnFixture(file: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--require', 'tsx/cjs', join(__dirname, 'fixtures', file), ...args], {
    cwd: join(__dirname, '..', '..'),
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Collects a child's stdout lines, and resolves with its exit (code, signal). */
export function collect(child: ChildProcess): {
  lines: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  const lines: string[] = [];
  let buf = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return { lines, stderr: () => err, exited };
}

/** Resolves when `lines` contains a line satisfying `pred` (checked every 5 ms), or rejects after `ms`. */
export async function waitForLine(lines: string[], pred: (l: string) => boolean, ms: number): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const hit = lines.find(pred);
    if (hit !== undefined) return hit;
    if (Date.now() > end) throw new Error('timed out waiting for the child');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Two agents with a fresh channel each way, both attached to `store` (Alice initiated; Bob used one-time key 0). */
export async function openPair(
  store: SessionStore,
  cipher: StorageCipher,
  dids = { alice: 'did:mesh:alice', bob: 'did:mesh:bob' },
): Promise<{
  alice: PersistentChannel;
  bob: PersistentChannel;
  aliceMgr: X3DHKeyManager;
  bobMgr: X3DHKeyManager;
}> {
  const aliceMgr = makeAgent();
  const bobMgr = makeAgent(1);
  const ad = utf8(`${dids.alice}|${dids.bob}`);
  const { channel, establishment } = SecureChannel.createSender(aliceMgr, bobMgr.getPublicBundle({ otkId: 0 }), ad);
  const alice = await PersistentChannel.create({ store, cipher, localDid: dids.alice, peerDid: dids.bob }, channel);
  const bob = await PersistentChannel.create(
    { store, cipher, localDid: dids.bob, peerDid: dids.alice },
    SecureChannel.createReceiver(bobMgr, establishment, ad),
  );
  return { alice, bob, aliceMgr, bobMgr };
}

/**
 * Files for the child-process session tests: a SQLite store holding a saved Alice/Bob session (under
 * a fresh storage key, passed to children as STORAGE_KEY_HEX) and an empty "network" database in WAL
 * mode that the children exchange messages through. Returns the network database, open.
 */
export async function prepareSessionFiles(
  dir: string,
  name: string,
): Promise<{
  storePath: string;
  netPath: string;
  env: Record<string, string>;
  net: Database.Database;
}> {
  const storageKey = randomBytes(32);
  const storePath = join(dir, `store${name}.sqlite`);
  const netPath = join(dir, `network${name}.sqlite`);
  const store = new SqliteStore(storePath);
  const { alice, bob } = await openPair(store, new StorageCipher(storageKey), { alice: ALICE, bob: BOB });
  await alice.close();
  await bob.close();
  store.close();
  const net = new Database(netPath);
  net.pragma('journal_mode = WAL');
  net.exec(NETWORK_SCHEMA);
  return { storePath, netPath, env: { STORAGE_KEY_HEX: toHex(storageKey) }, net };
}
