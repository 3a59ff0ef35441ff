/**
 * Finding 9: a message must not be lost when the store fails after committing. `receive` saves the
 * plaintext (sealed) in the session's inbox in the same atomic write as the advanced state; a retry
 * finds it there, `pending()` lists what a crash left unacknowledged, `ack` deletes it.
 */
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import fc from 'fast-check';
import Redis from 'ioredis';
import { ready } from '../../lib/sodium';
import { E2EError } from '../../lib/errors';
import { fromUtf8, randomBytes, utf8 } from '../../lib/crypto';
import { EncryptedMessage } from '../../lib/ratchet';
import {
  AgentStore,
  InMemoryStore,
  PersistentChannel,
  RedisStore,
  SessionLocation,
  SqliteStore,
  StorageCipher,
  inboxMessageId,
} from '../../lib/store';
import { BackendDown, FAULTS, Fault, faultyStore } from './faulty';
import { clearPrefix, openPair, randomNamespace, redisTarget } from './helpers';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { MAX_INBOX_ENTRIES } from '../../lib/limits';

const ALICE = 'did:mesh:alice';
const BOB = 'did:mesh:bob';
const dir = mkdtempSync(join(tmpdir(), 'agentmesh-inbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let cipher: StorageCipher;
beforeAll(async () => {
  await ready();
  cipher = new StorageCipher(randomBytes(32));
});

const text = (m: Uint8Array): string => fromUtf8(m);
const bobAt = (store: AgentStore): SessionLocation => ({ store, cipher, localDid: BOB, peerDid: ALICE });

describe('PersistentChannel inbox (finding 9)', () => {
  it('a save that commits and then fails loses nothing: the retry returns the message, once', async () => {
    const inner = new InMemoryStore();
    const { alice } = await openPair(inner, cipher);
    let fault: Fault = 'after';
    const f = faultyStore(inner, () => fault, ['saveSessionWithInbox']);
    const bob = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
    const m = await alice.send(utf8('important'));
    const err = await expectE2EErrorAsync(() => bob.receive(m), 'STORE_ERROR', 'backend');
    expect((err as { cause?: unknown }).cause).toBeInstanceOf(BackendDown);
    expect(err.message).not.toMatch(/secret-looking/);
    expect(err.message).toMatch(/\[backend\]$/);
    fault = 'ok';
    // The scenario of the review: refresh, then the same envelope again.
    await bob.refresh();
    expect(text(await bob.receive(m))).toBe('important');
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE', 'unacknowledged');
    expect(await bob.ack(m)).toBe(true);
    expect(await bob.ack(inboxMessageId(m))).toBe(false);
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE');
    expect(inner.listInbox(BOB, ALICE)).toEqual([]);
  });

  it('release: a message the application could not handle is handed out again, then acknowledged once', async () => {
    const inner = new InMemoryStore();
    const { alice } = await openPair(inner, cipher);
    const bob = (await PersistentChannel.load(bobAt(inner))) as PersistentChannel;
    const m = await alice.send(utf8('retry me'));
    expect(text(await bob.receive(m))).toBe('retry me');
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE', 'unacknowledged');
    expect(await bob.release(m)).toBe(true);
    expect(await bob.release(m)).toBe(false); // not handed out now
    expect(text(await bob.receive(m))).toBe('retry me'); // from the inbox: the ratchet consumed it already
    expect(await bob.release(inboxMessageId(m))).toBe(true);
    expect((await bob.pending()).map((p) => text(p.plaintext))).toEqual(['retry me']);
    expect(await bob.ack(m)).toBe(true);
    await expectE2EErrorAsync(() => bob.receive(m), 'DUPLICATE_MESSAGE');
    await expectE2EErrorAsync(() => bob.release('not an id'), 'INVALID_ARGUMENT');
  });

  it('also without refresh, and the next message goes on from the committed state', async () => {
    const inner = new InMemoryStore();
    const { alice } = await openPair(inner, cipher);
    let fault: Fault = 'after-reject';
    const f = faultyStore(inner, () => fault, ['saveSessionWithInbox']);
    const bob = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
    const [m1, m2] = [await alice.send(utf8('one')), await alice.send(utf8('two'))];
    await expectE2EErrorAsync(() => bob.receive(m1), 'STORE_ERROR', 'backend');
    fault = 'ok';
    expect(text(await bob.receive(m2))).toBe('two'); // reloads the committed state first: no STALE_STATE
    expect(text(await bob.receive(m1))).toBe('one');
    expect(bob.version).toBe(3);
  });

  it('a save that fails before committing: the retry decrypts and saves', async () => {
    const inner = new InMemoryStore();
    const { alice } = await openPair(inner, cipher);
    let fault: Fault = 'before';
    const f = faultyStore(inner, () => fault, ['saveSessionWithInbox']);
    const bob = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
    const m = await alice.send(utf8('x'));
    await expectE2EErrorAsync(() => bob.receive(m), 'STORE_ERROR', 'backend');
    expect(inner.loadSession(BOB, ALICE)?.version).toBe(1);
    fault = 'before-odd';
    const odd = await expectE2EErrorAsync(() => bob.receive(m), 'STORE_ERROR', 'backend');
    expect((odd as { cause?: unknown }).cause).toBe('down: saveSessionWithInbox');
    fault = 'ok';
    expect(text(await bob.receive(m))).toBe('x');
    expect(inner.loadSession(BOB, ALICE)?.version).toBe(2);
  });

  it('after a crash, pending() hands out each unacknowledged message once; ack deletes it', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const sent = [await alice.send(utf8('a')), await alice.send(utf8('b')), await alice.send(utf8('c'))];
    for (const m of sent) await bob.receive(m);
    await bob.ack(sent[1]);
    expect(await bob.pending()).toEqual([]); // all handed out in this process already
    // Loaded again in the same process: still handed out (never twice within a process).
    const sameProcess = (await PersistentChannel.load(bobAt(store))) as PersistentChannel;
    expect(await sameProcess.pending()).toEqual([]);
    await expectE2EErrorAsync(() => sameProcess.receive(sent[0]), 'DUPLICATE_MESSAGE', 'unacknowledged');
    // A restart: a new process has its own store object over the same data.
    const restart = (): AgentStore => faultyStore(store, () => 'ok').store;
    const restarted = (await PersistentChannel.load(bobAt(restart()))) as PersistentChannel;
    const pending = await restarted.pending();
    expect(pending.map((p) => [p.id, text(p.plaintext)])).toEqual([
      [inboxMessageId(sent[0]), 'a'],
      [inboxMessageId(sent[2]), 'c'],
    ]);
    expect(await restarted.pending()).toEqual([]);
    await expectE2EErrorAsync(() => restarted.receive(sent[0]), 'DUPLICATE_MESSAGE', 'unacknowledged');
    await expectE2EErrorAsync(() => restarted.receive(sent[1]), 'DUPLICATE_MESSAGE');
    for (const p of pending) expect(await restarted.ack(p.id)).toBe(true);
    await expectE2EErrorAsync(() => restarted.receive(sent[0]), 'DUPLICATE_MESSAGE');
    // A second restart: nothing left.
    expect(await ((await PersistentChannel.load(bobAt(restart()))) as PersistentChannel).pending()).toEqual([]);
    // Received before the restart but not acknowledged, then delivered again: handed out again (at least once).
    const d = await alice.send(utf8('d'));
    await restarted.receive(d);
    const again = (await PersistentChannel.load(bobAt(restart()))) as PersistentChannel;
    expect(text(await again.receive(d))).toBe('d');
    expect(await again.pending()).toEqual([]);
  });

  it('two channels over one store object racing for an unacknowledged message: exactly one gets it', async () => {
    for (let round = 0; round < 2; round++) {
      const inner = new InMemoryStore();
      const { alice } = await openPair(inner, cipher);
      let fault: Fault = 'after';
      const f = faultyStore(inner, () => fault, ['saveSessionWithInbox']);
      const bob1 = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
      const m = await alice.send(utf8('contested'));
      await expectE2EErrorAsync(() => bob1.receive(m), 'STORE_ERROR', 'backend');
      fault = 'ok';
      const bob2 = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
      const racers: Promise<unknown>[] =
        round === 0 ? [bob1.receive(m), bob2.pending()] : [bob2.pending(), bob1.receive(m), bob2.receive(m)];
      const results = await Promise.allSettled(racers);
      let got = 0;
      for (const r of results) {
        if (r.status === 'fulfilled') got += Array.isArray(r.value) ? r.value.length : 1;
        else expect([(r.reason as E2EError).code, (r.reason as E2EError).reason]).toEqual(['DUPLICATE_MESSAGE', 'unacknowledged']);
      }
      expect(got).toBe(1);
    }
  });

  it('seals inbox plaintexts for their slot', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const m = await alice.send(utf8('sealed'));
    await bob.receive(m);
    const [entry] = store.listInbox(BOB, ALICE);
    expect(Buffer.from(entry.data).includes(Buffer.from('sealed'))).toBe(false);
    // Moved under another id, it does not open.
    store.saveSessionWithInbox(BOB, ALICE, store.loadSession(BOB, ALICE)?.data as Uint8Array, 2, { id: 'f'.repeat(64), data: entry.data });
    const other = (await PersistentChannel.load(bobAt(store))) as PersistentChannel; // this process handed out only the real id
    await expectE2EErrorAsync(() => other.pending(), 'STORE_ERROR', 'tampered');
  });

  it(`is bounded: ${MAX_INBOX_ENTRIES} unacknowledged messages, then INVALID_STATE (inbox_full) until an ack`, async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const ids: string[] = [];
    for (let i = 0; i < MAX_INBOX_ENTRIES; i++) {
      const m = await alice.send(utf8(`m${i}`));
      await bob.receive(m);
      ids.push(inboxMessageId(m));
    }
    const extra = await alice.send(utf8('one too many'));
    const v = bob.version;
    await expectE2EErrorAsync(() => bob.receive(extra), 'INVALID_STATE', 'inbox_full');
    expect(bob.version).toBe(v);
    await bob.ack(ids[0]);
    expect(text(await bob.receive(extra))).toBe('one too many');
  }, 60_000);

  it('delivers with deliver() and acknowledges on success', async () => {
    const store = new InMemoryStore();
    const { alice, bob } = await openPair(store, cipher);
    const got: string[] = [];
    await bob.receive(await alice.send(utf8('x')), { deliver: (pt) => void got.push(text(pt)) });
    expect(got).toEqual(['x']);
    expect(store.listInbox(BOB, ALICE)).toEqual([]);
  });

  it("turns a custom store's foreign errors into STORE_ERROR with the cause, on every path", async () => {
    for (const kind of ['before', 'before-reject', 'before-odd', 'after', 'after-reject'] as Fault[]) {
      const inner = new InMemoryStore();
      const { alice } = await openPair(inner, cipher);
      let fault: Fault = kind;
      const f = faultyStore(inner, () => fault);
      await expectE2EErrorAsync(() => PersistentChannel.load(bobAt(f.store)), 'STORE_ERROR', 'backend');
      fault = 'ok';
      const bob = (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
      const m = await alice.send(utf8('x'));
      await bob.receive(await alice.send(utf8('first')));
      fault = kind;
      const ops: (() => Promise<unknown>)[] = [
        () => bob.receive(m),
        () => bob.send(utf8('y')),
        () => bob.pending(),
        () => bob.ack(m),
        () => bob.refresh(),
        () => bob.close({ deleteSaved: true }),
      ];
      for (const op of ops) {
        const err = await expectE2EErrorAsync(op, 'STORE_ERROR', 'backend');
        const cause = (err as { cause?: unknown }).cause;
        expect(cause instanceof BackendDown || typeof cause === 'string').toBe(true);
        expect(Object.keys(err)).not.toContain('cause'); // not enumerable: not serialized by accident
      }
    }
  });
});

/** The adversary: a store failing before or after each call, duplicated and reordered delivery, restarts. */
async function exactlyOnceRun(
  open: () => Promise<AgentStore>,
  faults: Fault[],
  order: number[],
  count: number,
  crashes: boolean,
  refreshes: boolean[],
): Promise<void> {
  const inner = await open();
  try {
    const { alice } = await openPair(inner, cipher);
    const sent: EncryptedMessage[] = [];
    for (let i = 0; i < count; i++) sent.push(await alice.send(utf8(`msg-${i}`)));
    let fi = 0;
    const nextFault = (): Fault => (fi < faults.length ? faults[fi++] : 'ok');
    let f = faultyStore(inner, nextFault);
    const got = new Map<string, number>(); // plaintext → times the application obtained it (this object)
    const total = new Map<string, number>();
    const acked = new Set<string>();
    const obtain = (pt: Uint8Array, perObject: Map<string, number>): string => {
      const t = text(pt);
      expect(acked.has(t)).toBe(false); // never again after an acknowledgement
      perObject.set(t, (perObject.get(t) ?? 0) + 1);
      expect(perObject.get(t)).toBe(1); // never twice within one process
      total.set(t, (total.get(t) ?? 0) + 1);
      return t;
    };
    const typed = (e: unknown): E2EError => {
      expect(e).toBeInstanceOf(E2EError); // no plain Error, TypeError or string escapes
      const err = e as E2EError;
      if (err.code === 'STORE_ERROR') expect(err.reason).toBe('backend');
      else expect(['DUPLICATE_MESSAGE', 'STALE_STATE']).toContain(err.code);
      return err;
    };
    const load = async (): Promise<PersistentChannel> => {
      for (;;) {
        try {
          return (await PersistentChannel.load(bobAt(f.store))) as PersistentChannel;
        } catch (e) {
          typed(e);
        }
      }
    };
    const tryAck = async (ch: PersistentChannel, t: string, id: string): Promise<void> => {
      try {
        await ch.ack(id);
        acked.add(t);
      } catch (e) {
        typed(e); // the entry may stay: handed out already in this object, again only after a restart
      }
    };
    let bob = await load();
    let perObject = got;
    let step = 0;
    for (const idx of [...order.map((o) => o % count), ...sent.keys()]) {
      if (crashes && step++ % 3 === 2) {
        f = faultyStore(inner, nextFault); // a restart: a new process, with its own connection (store object)
        bob = await load(); // pending() hands out what was not acknowledged
        perObject = new Map();
        for (;;) {
          try {
            for (const p of await bob.pending()) await tryAck(bob, obtain(p.plaintext, perObject), p.id);
            break;
          } catch (e) {
            typed(e);
          }
        }
      }
      const m = sent[idx];
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          const t = obtain(await bob.receive(m), perObject);
          await tryAck(bob, t, inboxMessageId(m));
          break;
        } catch (e) {
          const err = typed(e);
          if (err.code === 'DUPLICATE_MESSAGE') {
            // Only for a message the application has obtained: a retry never meets a "duplicate" it never saw.
            if (crashes) expect(total.get(`msg-${idx}`) ?? 0).toBeGreaterThanOrEqual(1);
            else expect(total.get(`msg-${idx}`)).toBe(1);
            break;
          }
          if (refreshes[attempt % refreshes.length]) await bob.refresh().catch(typed);
          else if (attempt % 2 === 1) bob = await load(); // the same process loading the channel again
        }
      }
    }
    f.off();
    for (const p of await bob.pending()) await tryAck(bob, obtain(p.plaintext, perObject), p.id);
    // Every message was obtained: exactly once without restarts, at least once with them.
    for (let i = 0; i < count; i++) {
      if (crashes) expect(total.get(`msg-${i}`) ?? 0).toBeGreaterThanOrEqual(1);
      else expect(total.get(`msg-${i}`)).toBe(1);
    }
    // The session never forked: the saved state goes on with the sender, both ways.
    const bobNow = (await PersistentChannel.load(bobAt(inner))) as PersistentChannel;
    expect(text(await bobNow.receive(await alice.send(utf8('after'))))).toBe('after');
    expect(text(await alice.receive(await bobNow.send(utf8('reply'))))).toBe('reply');
  } finally {
    await inner.close();
  }
}

function generative(name: string, open: () => Promise<AgentStore>, runs: number): void {
  const faultsArb = fc.array(fc.constantFrom(...FAULTS), { maxLength: 40 });
  const args = [
    faultsArb,
    fc.array(fc.nat(), { maxLength: 12 }),
    fc.integer({ min: 1, max: 6 }),
    fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
  ] as const;
  it(`${name}: every accepted message is obtained exactly once across failed saves (generative)`, async () => {
    await fc.assert(
      fc.asyncProperty(...args, (faults, order, count, refreshes) => exactlyOnceRun(open, faults, order, count, false, refreshes)),
      { numRuns: runs },
    );
  }, 300_000);
  it(`${name}: at least once across restarts, never twice within a process, never after ack (generative)`, async () => {
    await fc.assert(
      fc.asyncProperty(...args, (faults, order, count, refreshes) => exactlyOnceRun(open, faults, order, count, true, refreshes)),
      { numRuns: runs },
    );
  }, 300_000);
}

describe('inbox under a failing store (generative)', () => {
  let files = 0;
  generative('InMemoryStore', async () => new InMemoryStore(), 150);
  generative('SqliteStore', async () => new SqliteStore(join(dir, `gen-${++files}.sqlite`), { synchronous: 'NORMAL' }), 60);
  const { url } = redisTarget();
  if (url !== null) {
    const ns = randomNamespace();
    let client: Redis;
    let n = 0;
    beforeAll(() => {
      client = new Redis(url, { maxRetriesPerRequest: 1 });
    });
    afterAll(async () => {
      await clearPrefix(client, ns);
      client.disconnect();
    });
    generative('RedisStore', async () => new RedisStore({ client, namespace: `${ns}-g${++n}` }), 25);
  }
});
