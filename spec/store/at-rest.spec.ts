/**
 * Encryption at rest: after a realistic run (published keys, KEM pre-keys among them, a
 * post-quantum channel with skipped keys and a DH ratchet step), no secret key appears in the
 * SQLite files or the Redis values, in any encoding.
 */
import { randomBytes as nodeRandomBytes } from 'crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { fromHex, randomBytes, readU32BE, toBase64, toBase64Url, toHex, utf8 } from '../../lib/crypto';
import { RatchetState } from '../../lib/ratchet';
import { SecureChannel } from '../../lib/channel';
import {
  AgentStore,
  PersistentChannel,
  RedisStore,
  SqliteStore,
  StorageCipher,
  StoredKeyManager,
  maintainPreKeys,
  sessionContext,
} from '../../lib/store';
import { clearPrefix, describeRedis, makePqAgent, randomNamespace } from './helpers';

const ALICE = 'did:mesh:alice';
const BOB = 'did:mesh:bob';

/** Every secret of a saved channel: ratchet private key, root and chain keys, skipped message keys. */
async function channelSecrets(store: AgentStore, cipher: StorageCipher, local: string, peer: string): Promise<Uint8Array[]> {
  const rec = await store.loadSession(local, peer);
  const bytes = cipher.open(rec?.data as Uint8Array, sessionContext(local, peer));
  // "AMC" 0x01 ‖ count ‖ AD, or "AMC" 0x02 ‖ flags ‖ count ‖ AD for a post-quantum channel; the ratchet state follows.
  const header = bytes[3] === 0x02 ? 13 : 12;
  const d = RatchetState.fromBytes(bytes.subarray(header + readU32BE(bytes, header - 4))).toDict();
  return [d.dh_self_private, d.root_key, d.chain_key_send, d.chain_key_recv, ...Object.values(d.skipped_keys)]
    .filter((h): h is string => typeof h === 'string')
    .map(fromHex);
}

/**
 * Every private key of a key manager: the identity seed, signed and one-time pre-keys, and of each
 * KEM pre-key the seed's halves d and z and two 32-byte pieces of the decapsulation key's secret
 * part (its first 1,152 bytes; the rest holds the public key).
 */
function managerSecrets(keys: StoredKeyManager): Uint8Array[] {
  const m = keys.manager;
  const s = m.exportState();
  const kem = (s.kemPreKeys ?? []).flatMap((k) => {
    const seed = fromHex(k.seed);
    const dk = (m.exportKemPreKeySecret(k.keyId) as { secretKey: Uint8Array }).secretKey;
    return [seed.slice(0, 32), seed.slice(32), dk.slice(0, 32), dk.slice(1120, 1152)];
  });
  return [
    ...[s.identitySecretKey.slice(0, 64), ...s.signedPreKeys.map((k) => k.privateKey), ...s.oneTimePreKeys.map((k) => k.privateKey)].map(
      fromHex,
    ),
    ...kem,
  ];
}

/** Which secrets occur in `haystack` as raw bytes, hex, base64 or base64url. */
function leaks(haystack: Buffer, secrets: Uint8Array[]): string[] {
  const found: string[] = [];
  for (const s of secrets) {
    const forms: [string, Buffer][] = [
      ['raw', Buffer.from(s)],
      ['hex', Buffer.from(toHex(s))],
      ['HEX', Buffer.from(toHex(s).toUpperCase())],
      ['base64', Buffer.from(toBase64(s).slice(0, 40))],
      ['base64url', Buffer.from(toBase64Url(s).slice(0, 40))],
    ];
    for (const [form, needle] of forms) if (haystack.includes(needle)) found.push(`${toHex(s).slice(0, 8)}… as ${form}`);
  }
  return found;
}

/** Distinctive plaintexts, received and left unacknowledged in the inboxes: they must be sealed too. */
// Module load, before ready(): Node's CSPRNG for the random tag.
const PLAINTEXTS = ['m0', 'm1', 'm2', 'reply', 'm3'].map(
  (m) => new Uint8Array(Buffer.from(`inbox plaintext ${m} ${nodeRandomBytes(12).toString('hex')}`)),
);

/** A realistic run: keys published, a channel opened, messages skipped, a DH ratchet step. Returns the secrets. */
async function run(store: AgentStore, cipher: StorageCipher): Promise<Uint8Array[]> {
  const aliceKeys = await StoredKeyManager.create({ store, cipher, did: ALICE }, makePqAgent());
  const bobKeys = await StoredKeyManager.create({ store, cipher, did: BOB }, makePqAgent());
  const policy = { minOneTimePreKeys: 10, targetOneTimePreKeys: 10, minKemPreKeys: 5, targetKemPreKeys: 5 };
  await maintainPreKeys(aliceKeys, store, policy);
  await maintainPreKeys(bobKeys, store, policy);
  const ad = utf8(`${ALICE}|${BOB}`);
  const { channel, establishment } = SecureChannel.createSender(aliceKeys.manager, (await store.claimBundle(BOB))!, ad);
  expect([channel.postQuantum, establishment.kemPreKeyId === undefined]).toEqual([true, false]);
  const alice = await PersistentChannel.create({ store, cipher, localDid: ALICE, peerDid: BOB }, channel);
  const bob = await bobKeys.acceptChannel(establishment, { sessions: store, peerDid: ALICE, associatedData: ad });
  expect(bob.postQuantum).toBe(true);
  const [p0, p1, p2, pReply, p3] = PLAINTEXTS;
  const sent = [await alice.send(p0), await alice.send(p1), await alice.send(p2)];
  await bob.receive(sent[2]); // m0 and m1 stay as skipped keys
  await alice.receive(await bob.send(pReply)); // a DH ratchet step on both sides
  await bob.receive(await alice.send(p3));
  await bob.receive(sent[0]); // from a skipped key
  // Received, not acknowledged: the plaintexts are in the inboxes (sealed).
  expect((await store.listInbox(BOB, ALICE)).length).toBe(3);
  expect((await store.listInbox(ALICE, BOB)).length).toBe(1);
  const secrets = [
    ...managerSecrets(aliceKeys),
    ...managerSecrets(bobKeys),
    ...(await channelSecrets(store, cipher, ALICE, BOB)),
    ...(await channelSecrets(store, cipher, BOB, ALICE)),
  ];
  expect(secrets.every((s) => s.length === 32)).toBe(true);
  return secrets;
}

/** Which inbox plaintexts occur in `haystack` as text, hex or base64. */
function plaintextLeaks(haystack: Buffer): string[] {
  const found: string[] = [];
  for (const p of PLAINTEXTS) {
    for (const [form, needle] of [
      ['text', Buffer.from(p)],
      ['hex', Buffer.from(toHex(p))],
      ['base64', Buffer.from(toBase64(p).slice(0, 40))],
    ] as [string, Buffer][]) {
      if (haystack.includes(needle)) found.push(`${Buffer.from(p).toString().slice(0, 20)}… as ${form}`);
    }
  }
  return found;
}

describe('secrets at rest: SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmesh-at-rest-'));
  beforeAll(() => ready());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const fileBytes = (path: string): Buffer =>
    Buffer.concat(
      ['', '-wal', '-shm']
        .map((suffix) => path + suffix)
        .filter((p) => existsSync(p))
        .map((p) => readFileSync(p)),
    );

  it('leaves no key bytes in the clear in the database files', async () => {
    const path = join(dir, 'sealed.sqlite');
    const store = new SqliteStore(path);
    const secrets = await run(store, new StorageCipher(randomBytes(32)));
    // Per manager: identity, signed pre-key, 10 one-time pre-keys, 6 KEM pre-keys (4 pieces each); Bob spent one of each kind.
    expect(secrets.length).toBeGreaterThanOrEqual(2 * (1 + 1 + 10 + 6 * 4) - 1 - 4 + 4 + 4 + 1);
    const before = fileBytes(path);
    store.close(); // checkpoints the WAL into the main file
    const all = Buffer.concat([before, fileBytes(path)]);
    expect(leaks(all, secrets)).toEqual([]);
    expect(plaintextLeaks(all)).toEqual([]);
  });

  it('(control) finds an inbox plaintext written in the clear', async () => {
    const path = join(dir, 'clear-inbox.sqlite');
    const store = new SqliteStore(path);
    store.saveSessionWithInbox(ALICE, BOB, utf8('s'), 0, { id: 'm', data: PLAINTEXTS[0] });
    expect(plaintextLeaks(fileBytes(path))).toEqual([`${Buffer.from(PLAINTEXTS[0]).toString().slice(0, 20)}… as text`]);
    store.close();
  });

  it('(control) finds a KEM pre-key seed and decapsulation key written in the clear', async () => {
    const path = join(dir, 'clear-kem.sqlite');
    const store = new SqliteStore(path);
    const keys = await StoredKeyManager.create({ store, cipher: new StorageCipher(randomBytes(32)), did: ALICE }, makePqAgent(0, 1));
    const kemSecrets = managerSecrets(keys).slice(-8); // the 4 pieces of each of the 2 KEM pre-keys
    store.saveKeyManager(BOB, utf8(JSON.stringify(keys.manager.exportState())), 0); // the state as JSON, unsealed
    const dk = (keys.manager.exportKemPreKeySecret(0) as { secretKey: Uint8Array }).secretKey;
    store.saveSession(BOB, ALICE, dk, 0); // a decapsulation key, raw
    const found = leaks(fileBytes(path), kemSecrets);
    expect(found.filter((f) => f.endsWith('as hex')).length).toBe(4); // both seeds' halves, as the JSON state writes them
    expect(found.filter((f) => f.endsWith('as raw')).length).toBe(3); // the raw decapsulation key's two pieces, and z, its last 32 bytes
    store.close();
  });

  it('(control) finds a key written in the clear', async () => {
    const path = join(dir, 'clear.sqlite');
    const store = new SqliteStore(path);
    const secret = randomBytes(32);
    store.saveSession(ALICE, BOB, secret, 0);
    store.saveKeyManager(ALICE, utf8(toHex(randomBytes(32)) + toHex(secret)), 0);
    expect(leaks(fileBytes(path), [secret])).toEqual([`${toHex(secret).slice(0, 8)}… as raw`, `${toHex(secret).slice(0, 8)}… as hex`]);
    store.close();
  });
});

describeRedis('secrets at rest: Redis', (url) => {
  const ns = randomNamespace();
  let client: Redis;
  beforeAll(async () => {
    await ready();
    client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 3 ? null : 100) });
  });
  afterAll(async () => {
    await clearPrefix(client, ns);
    client.disconnect();
  });

  /** Every key name and value of a namespace, as bytes. */
  async function dump(prefix: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const key of await client.keys(`${prefix}:*`)) {
      parts.push(Buffer.from(key));
      const type = await client.type(key);
      if (type === 'string') parts.push((await client.getBuffer(key)) as Buffer);
      else if (type === 'hash') for (const [f, v] of Object.entries(await client.hgetallBuffer(key))) parts.push(Buffer.from(f), v);
      else if (type === 'set') parts.push(...(await client.smembersBuffer(key)));
      else if (type === 'zset') parts.push(...(await client.zrangeBuffer(key, 0, -1)));
      else throw new Error(`unexpected type ${type}`);
    }
    return Buffer.concat(parts);
  }

  it('leaves no key bytes in the clear in any value', async () => {
    const store = new RedisStore({ client, namespace: `${ns}-sealed` });
    const secrets = await run(store, new StorageCipher(randomBytes(32)));
    const all = await dump(`${ns}-sealed`);
    expect(all.length).toBeGreaterThan(2000);
    expect(leaks(all, secrets)).toEqual([]);
    expect(plaintextLeaks(all)).toEqual([]);
  });

  it('(control) finds an inbox plaintext written in the clear', async () => {
    const store = new RedisStore({ client, namespace: `${ns}-clear-inbox` });
    await store.saveSessionWithInbox(ALICE, BOB, utf8('s'), 0, { id: 'm', data: PLAINTEXTS[0] });
    expect(plaintextLeaks(await dump(`${ns}-clear-inbox`))).toEqual([`${Buffer.from(PLAINTEXTS[0]).toString().slice(0, 20)}… as text`]);
  });

  it('(control) finds a key written in the clear', async () => {
    const store = new RedisStore({ client, namespace: `${ns}-clear` });
    const secret = randomBytes(32);
    await store.saveSession(ALICE, BOB, secret, 0);
    expect(leaks(await dump(`${ns}-clear`), [secret])).toEqual([`${toHex(secret).slice(0, 8)}… as raw`]);
  });
});
