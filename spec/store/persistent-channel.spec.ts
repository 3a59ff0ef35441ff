import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { SecureChannel } from '../../lib/channel';
import { EncryptedMessage } from '../../lib/ratchet';
import {
  InMemoryStore,
  InboxRecord,
  PersistentChannel,
  SessionStore,
  SqliteStore,
  StorageCipher,
  StoredRecord,
  sessionContext,
} from '../../lib/store';
import { makeAgent, openPair } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-pc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A session store whose saves can be made to fail, as a disk or a network might. */
class FlakyStore implements SessionStore {
  failSaves = false;
  saves = 0;
  constructor(readonly inner = new InMemoryStore()) {}
  loadSession(a: string, b: string): StoredRecord | null {
    return this.inner.loadSession(a, b);
  }
  saveSession(a: string, b: string, d: Uint8Array, v: number): number {
    if (this.failSaves) throw new E2EError('STORE_ERROR', 'disk full', 'backend');
    this.saves++;
    return this.inner.saveSession(a, b, d, v);
  }
  deleteSession(a: string, b: string): boolean {
    return this.inner.deleteSession(a, b);
  }
  listSessions(a: string): string[] {
    return this.inner.listSessions(a);
  }
  saveSessionWithInbox(a: string, b: string, d: Uint8Array, v: number, entry: { id: string; data: Uint8Array }): number {
    if (this.failSaves) throw new E2EError('STORE_ERROR', 'disk full', 'backend');
    this.saves++;
    return this.inner.saveSessionWithInbox(a, b, d, v, entry);
  }
  loadInboxEntry(a: string, b: string, id: string): InboxRecord | null {
    return this.inner.loadInboxEntry(a, b, id);
  }
  listInbox(a: string, b: string): InboxRecord[] {
    return this.inner.listInbox(a, b);
  }
  deleteInboxEntry(a: string, b: string, id: string): boolean {
    return this.inner.deleteInboxEntry(a, b, id);
  }
}

const text = (m: Uint8Array): string => fromUtf8(m);

describe('PersistentChannel', () => {
  let cipher: StorageCipher;
  beforeAll(async () => {
    await ready();
    cipher = new StorageCipher(randomBytes(32));
  });

  it('saves every step: a reload in a "new process" continues both ways', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    expect([alice.version, bob.version]).toEqual([1, 1]);
    const m1 = await alice.send(utf8('one'));
    expect(text(await bob.receive(m1))).toBe('one');
    const where = (l: string, p: string) => ({ store, cipher, localDid: l, peerDid: p });
    const alice2 = (await PersistentChannel.load(where('did:mesh:alice', 'did:mesh:bob'))) as PersistentChannel;
    const bob2 = (await PersistentChannel.load(where('did:mesh:bob', 'did:mesh:alice'))) as PersistentChannel;
    expect([alice2.version, bob2.version, alice2.messageCount, bob2.messageCount]).toEqual([2, 2, 1, 1]);
    expect(text(await alice2.receive(await bob2.send(utf8('two'))))).toBe('two');
    expect(text(await bob2.receive(await alice2.send(utf8('three'))))).toBe('three');
    expect([alice2.localDid, alice2.peerDid]).toEqual(['did:mesh:alice', 'did:mesh:bob']);
    expect(await PersistentChannel.load(where('did:mesh:bob', 'did:mesh:carol'))).toBeNull();
  });

  it('never returns a ciphertext it could not save, and reuses no key for anything returned', async () => {
    const flaky = new FlakyStore();
    const { alice, bob } = await openPair(flaky, cipher);
    const m0 = await alice.send(utf8('m0'));
    flaky.failSaves = true;
    await expectE2EErrorAsync(() => alice.send(utf8('lost')), 'STORE_ERROR', 'backend');
    expect(alice.version).toBe(2);
    flaky.failSaves = false;
    const m1 = await alice.send(utf8('m1'));
    // The failed send left no trace: the next message takes the same chain position.
    expect([m0.header.messageNumber, m1.header.messageNumber]).toEqual([0, 1]);
    expect(text(await bob.receive(m1))).toBe('m1');
    expect(text(await bob.receive(m0))).toBe('m0');
  });

  it('on a failed save after decrypting, returns nothing and the message can be received again', async () => {
    const flaky = new FlakyStore();
    const { alice, bob } = await openPair(flaky, cipher);
    const m = await alice.send(utf8('important'));
    flaky.failSaves = true;
    await expectE2EErrorAsync(() => bob.receive(m), 'STORE_ERROR');
    flaky.failSaves = false;
    expect(text(await bob.receive(m))).toBe('important');
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE');
  });

  it('delivers after saving in the inbox: a failing deliver keeps the message there, a later one gets it and acks', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const m = await alice.send(utf8('job 1'));
    const appError = new Error('application database down');
    await expect(bob.receive(m, { deliver: () => Promise.reject(appError) })).rejects.toBe(appError);
    expect(bob.version).toBe(2); // saved, with the message in the inbox
    expect(store.listInbox('did:mesh:bob', 'did:mesh:alice').length).toBe(1);
    const got: string[] = [];
    expect(text(await bob.receive(m, { deliver: async (pt) => void got.push(text(pt)) }))).toBe('job 1');
    expect(got).toEqual(['job 1']);
    expect(store.listInbox('did:mesh:bob', 'did:mesh:alice')).toEqual([]);
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE');
    await expectE2EErrorAsync(() => bob.receive(m, { deliver: 'no' as never }), 'INVALID_ARGUMENT');
  });

  it('saves nothing when decryption fails, and goes on', async () => {
    const flaky = new FlakyStore();
    const { alice, bob } = await openPair(flaky, cipher);
    const m = await alice.send(utf8('x'));
    const bytes = Uint8Array.from(m.serialize());
    bytes[bytes.length - 1] ^= 1;
    const before = flaky.saves;
    await expectE2EErrorAsync(() => bob.receive(bytes), 'DECRYPT_FAILED');
    await expectE2EErrorAsync(() => bob.receive(new Uint8Array(10)), 'MALFORMED_MESSAGE');
    expect([flaky.saves, bob.version]).toEqual([before, 1]);
    expect(text(await bob.receive(m.serialize()))).toBe('x');
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE');
    await expectE2EErrorAsync(() => alice.send('text' as never), 'INVALID_ARGUMENT');
  });

  it('refuses a save based on a stale state (two processes on one session, SQLite)', async () => {
    const path = join(dir, 'cas.sqlite');
    const p1 = new SqliteStore(path);
    const p2 = new SqliteStore(path); // a second connection, as a second process has
    const { alice, bob } = await openPair(p1, cipher);
    const where = { store: p2, cipher, localDid: 'did:mesh:alice', peerDid: 'did:mesh:bob' };
    const aliceInP2 = (await PersistentChannel.load(where)) as PersistentChannel;
    const a = await alice.send(utf8('from process 1'));
    let conflicts = 0;
    try {
      await aliceInP2.send(utf8('from process 2'));
    } catch (e) {
      expect((e as E2EError).code).toBe('STALE_STATE');
      conflicts++;
    }
    expect(conflicts).toBe(1);
    await aliceInP2.refresh();
    const b = await aliceInP2.send(utf8('from process 2, again'));
    expect([a.header.messageNumber, b.header.messageNumber]).toEqual([0, 1]);
    expect(text(await bob.receive(b))).toBe('from process 2, again');
    expect(text(await bob.receive(a))).toBe('from process 1');
    // The stale process 1 is refused in turn, also for a receive (whose plaintext it then withholds).
    const c = await bob.send(utf8('reply'));
    await expectE2EErrorAsync(() => alice.send(utf8('stale')), 'STALE_STATE');
    const bobInP2 = (await PersistentChannel.load({ ...where, localDid: 'did:mesh:bob', peerDid: 'did:mesh:alice' })) as PersistentChannel;
    await bobInP2.send(utf8('moves bob on'));
    const d = await aliceInP2.send(utf8('to a stale bob'));
    await expectE2EErrorAsync(() => bob.receive(d), 'STALE_STATE');
    await bob.refresh();
    expect(text(await bob.receive(d))).toBe('to a stale bob');
    await alice.refresh();
    expect(text(await alice.receive(c))).toBe('reply');
    p1.close();
    p2.close();
  });

  it('runs concurrent calls on one object one at a time', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const sent = await Promise.all([1, 2, 3, 4, 5].map((i) => alice.send(utf8(`m${i}`))));
    expect(sent.map((m) => m.header.messageNumber)).toEqual([0, 1, 2, 3, 4]);
    expect(alice.version).toBe(6);
    const got = await Promise.all(sent.reverse().map((m) => bob.receive(m)));
    expect(got.map(text)).toEqual(['m5', 'm4', 'm3', 'm2', 'm1']);
    expect(bob.messageCount).toBe(5);
  });

  it('closes, optionally deleting the saved session; a deleted session closes on refresh', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    await alice.close();
    await alice.close();
    expect(alice.isClosed).toBe(true);
    await expectE2EErrorAsync(() => alice.send(utf8('x')), 'CHANNEL_CLOSED');
    await expectE2EErrorAsync(() => alice.receive(new Uint8Array(60)), 'CHANNEL_CLOSED');
    await expectE2EErrorAsync(() => alice.refresh(), 'CHANNEL_CLOSED');
    expect(store.loadSession('did:mesh:alice', 'did:mesh:bob')).not.toBeNull();
    const alive = (await PersistentChannel.load({
      store,
      cipher,
      localDid: 'did:mesh:alice',
      peerDid: 'did:mesh:bob',
    })) as PersistentChannel;
    await bob.receive(await alive.send(utf8('before the delete')));
    await alive.close({ deleteSaved: true });
    expect(store.loadSession('did:mesh:alice', 'did:mesh:bob')).toBeNull();
    store.deleteSession('did:mesh:bob', 'did:mesh:alice');
    await expectE2EErrorAsync(() => bob.send(utf8('x')), 'STALE_STATE');
    await expectE2EErrorAsync(() => bob.refresh(), 'CHANNEL_CLOSED', 'session_deleted');
    expect(bob.isClosed).toBe(true);
  });

  it('creates only where no session is saved, unless replacing; takes ownership of the channel', async () => {
    const store = new InMemoryStore();
    await openPair(store, cipher);
    const bobMgr = makeAgent(1);
    const loc = { store, cipher, localDid: 'did:mesh:alice', peerDid: 'did:mesh:bob' };
    const second = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle({ otkId: 0 })).channel;
    await expectE2EErrorAsync(() => PersistentChannel.create(loc, second), 'STALE_STATE');
    expect(second.isClosed).toBe(true);
    const third = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle({ otkId: 0 })).channel;
    const replaced = await PersistentChannel.create(loc, third, { replace: true });
    expect(replaced.version).toBe(2);
    const closed = SecureChannel.createSender(makeAgent(), bobMgr.getPublicBundle()).channel;
    closed.close();
    await expectE2EErrorAsync(() => PersistentChannel.create({ ...loc, peerDid: 'did:mesh:x' }, closed), 'CHANNEL_CLOSED');
    await expectE2EErrorAsync(() => PersistentChannel.create(loc, {} as never), 'INVALID_ARGUMENT');
  });

  it('validates where it is saved', async () => {
    const store = new InMemoryStore();
    const ch = () => SecureChannel.createSender(makeAgent(), makeAgent().getPublicBundle()).channel;
    const good = { store, cipher, localDid: 'did:mesh:a', peerDid: 'did:mesh:b' };
    const bad: unknown[] = [null, { ...good, cipher: {} }, { ...good, store: {} }, { ...good, localDid: '' }, { ...good, peerDid: 5 }];
    for (const loc of bad) {
      await expectE2EErrorAsync(() => PersistentChannel.create(loc as never, ch()), 'INVALID_ARGUMENT');
      await expectE2EErrorAsync(() => PersistentChannel.load(loc as never), 'INVALID_ARGUMENT');
    }
    await expectE2EErrorAsync(() => PersistentChannel.load(good, { now: 5 as never }), 'INVALID_ARGUMENT');
  });

  it('refuses a saved blob that was tampered with, moved to another slot, or sealed under another key', async () => {
    const store = new InMemoryStore();
    await openPair(store, cipher);
    const rec = store.loadSession('did:mesh:alice', 'did:mesh:bob') as StoredRecord;
    const loc = (l: string, p: string, c = cipher) => ({ store, cipher: c, localDid: l, peerDid: p });
    store.saveSession('did:mesh:alice', 'did:mesh:carol', rec.data, 0);
    await expectE2EErrorAsync(() => PersistentChannel.load(loc('did:mesh:alice', 'did:mesh:carol')), 'STORE_ERROR', 'tampered');
    await expectE2EErrorAsync(
      () => PersistentChannel.load(loc('did:mesh:alice', 'did:mesh:bob', new StorageCipher(randomBytes(32)))),
      'STORE_ERROR',
      'unknown_storage_key',
    );
    const bad = Uint8Array.from(rec.data);
    bad[40] ^= 1;
    store.saveSession('did:mesh:alice', 'did:mesh:bob', bad, rec.version);
    await expectE2EErrorAsync(() => PersistentChannel.load(loc('did:mesh:alice', 'did:mesh:bob')), 'STORE_ERROR', 'tampered');
    store.saveSession(
      'did:mesh:alice',
      'did:mesh:dave',
      cipher.seal(utf8('not a channel'), sessionContext('did:mesh:alice', 'did:mesh:dave')),
      0,
    );
    await expectE2EErrorAsync(() => PersistentChannel.load(loc('did:mesh:alice', 'did:mesh:dave')), 'STORE_ERROR', 'corrupt');
  });

  it('passes the clock through to the restored ratchet', async () => {
    const store = new InMemoryStore();
    const { alice } = await openPair(store, cipher);
    await alice.send(utf8('x'));
    let calls = 0;
    const now = (): number => {
      calls++;
      return Date.now();
    };
    const loaded = (await PersistentChannel.load(
      { store, cipher, localDid: 'did:mesh:bob', peerDid: 'did:mesh:alice' },
      { now },
    )) as PersistentChannel;
    const m = (await alice.send(utf8('y'))) as EncryptedMessage;
    await loaded.receive(await alice.send(utf8('z')));
    await loaded.receive(m);
    expect(calls).toBeGreaterThan(0);
  });
});
