/**
 * The relay bus between processes, with an in-process bus that can lose events (what pub/sub does while a
 * subscriber is away): a lost live frame reaches its recipient at the resync, once; a resync during a connect
 * push pushes again after it; acknowledged frames are not re-sent. Loopback only.
 */
import { ready } from '../../lib/sodium';
import { BusEvent, InboxStore, MemoryInboxStore, MeshServer, PendingMessage, RelayBus, startMeshServer } from '../../lib/server';
import { MemoryAgentDirectory } from '../../lib/server';
import { InMemoryStore } from '../../lib/store';
import { expectE2EErrorAsync } from '../helpers/expect-error';
import { TestClient, connect, message, newAgent, sleep, until } from './helpers';

/** Buses of one hub see each other's events (never their own) unless the hub drops them. */
class LossyHub {
  dropping = false;
  readonly buses: LossyBus[] = [];
  bus(): LossyBus {
    const b = new LossyBus(this);
    this.buses.push(b);
    return b;
  }
}

class LossyBus implements RelayBus {
  handler: ((e: BusEvent) => void) | null = null;
  resyncHandler: (() => void) | null = null;
  constructor(readonly hub: LossyHub) {}
  publish(e: BusEvent): void {
    if (this.hub.dropping) return;
    for (const b of this.hub.buses) if (b !== this) setImmediate(() => b.handler?.(e));
  }
  onEvent(handler: (e: BusEvent) => void): void {
    this.handler = handler;
  }
  onResync(handler: () => void): void {
    this.resyncHandler = handler;
  }
  /** What a bus does when it is back after a gap. */
  resync(): void {
    this.resyncHandler?.();
  }
}

let hub: LossyHub;
let s1: MeshServer;
let s2: MeshServer;
let bus2: LossyBus;
let gate: { promise: Promise<void>; open(): void } | null;
let inbox: MemoryInboxStore;
let s2Log: string[];
/** How s2's view of the shared inbox misbehaves (reset before each test). */
interface StoreFaults {
  failPending: number;
  commitDelayMs: number;
  pendingNow: number;
  pendingMax: number;
  sameInboxMax: number;
  readonly pendingByInbox: Map<string, number>;
  /** The inboxes the gate holds (null: all of them). */
  gateOnly: Set<string> | null;
}
let s2Store: StoreFaults;

/**
 * s2's view of the shared inbox: `pending` reads at once but answers only when the gate opens (a slow store),
 * fails `failPending` times, and counts how many run at once; `commit` answers `commitDelayMs` late.
 */
function misbehaving(inner: InboxStore, faults: StoreFaults): InboxStore {
  const s2Store = faults; // this server's own counters: a closed server's late calls never touch the next test's
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === 'pending') {
        return async (...args: Parameters<InboxStore['pending']>): Promise<PendingMessage[]> => {
          s2Store.pendingMax = Math.max(s2Store.pendingMax, ++s2Store.pendingNow);
          const same = (s2Store.pendingByInbox.get(args[0]) ?? 0) + 1;
          s2Store.pendingByInbox.set(args[0], same);
          s2Store.sameInboxMax = Math.max(s2Store.sameInboxMax, same);
          try {
            if (s2Store.failPending > 0) {
              s2Store.failPending--;
              throw new Error('store down');
            }
            const page = await target.pending(...args);
            await sleep(5);
            if (gate && (s2Store.gateOnly === null || s2Store.gateOnly.has(args[0]))) await gate.promise;
            return page;
          } finally {
            s2Store.pendingNow--;
            s2Store.pendingByInbox.set(args[0], (s2Store.pendingByInbox.get(args[0]) ?? 1) - 1);
          }
        };
      }
      if (key === 'commit') {
        return async (...args: Parameters<InboxStore['commit']>) => {
          if (s2Store.commitDelayMs > 0) await sleep(s2Store.commitDelayMs); // not applied yet meanwhile
          return target.commit(...args);
        };
      }
      if (key === 'commitDecided') return undefined;
      const v = Reflect.get(target, key, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function closedGate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

beforeAll(async () => {
  await ready();
});

beforeEach(async () => {
  hub = new LossyHub();
  gate = null;
  s2Store = { failPending: 0, commitDelayMs: 0, pendingNow: 0, pendingMax: 0, sameInboxMax: 0, pendingByInbox: new Map(), gateOnly: null };
  s2Log = [];
  inbox = new MemoryInboxStore();
  const shared = { directory: new MemoryAgentDirectory(), prekeys: new InMemoryStore() };
  s1 = await startMeshServer({ port: 0, inbox, ...shared, bus: hub.bus() });
  bus2 = hub.bus();
  s2 = await startMeshServer({ port: 0, inbox: misbehaving(inbox, s2Store), ...shared, bus: bus2, log: (l) => s2Log.push(l) });
});

afterEach(async () => {
  gate?.open();
  await s1.close();
  await s2.close();
});

async function pair(): Promise<{ ca: TestClient; cb: TestClient; bDid: string }> {
  const a = newAgent();
  const b = newAgent();
  const ca = await connect(s1.url, a);
  const cb = await connect(s2.url, b);
  return { ca, cb, bDid: b.did };
}

describe('a bus that loses events', () => {
  it('control: with the bus up, a frame sent on node 1 arrives live on node 2', async () => {
    const { ca, cb, bDid } = await pair();
    ca.send(message(bDid, 'up-1'));
    expect((await cb.frame()).id).toBe('up-1');
    ca.close();
    cb.close();
  });

  it('a live frame the bus lost waits in the inbox, and reaches its recipient at the resync, once', async () => {
    const { ca, cb, bDid } = await pair();
    hub.dropping = true;
    ca.send(message(bDid, 'lost-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'lost-1' });
    expect(await cb.quiet(300)).toBe(true);
    hub.dropping = false;
    bus2.resync();
    expect(await cb.frame()).toMatchObject({ type: 'message', id: 'lost-1' });
    expect(await cb.quiet(300)).toBe(true);
    ca.close();
    cb.close();
  });

  it('a resync while the connect push runs (its inbox read already done) pushes again after it', async () => {
    gate = closedGate();
    const { ca, cb, bDid } = await pair(); // the welcome is out; s2's push holds an empty page behind the gate
    hub.dropping = true;
    ca.send(message(bDid, 'late-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'late-1' });
    bus2.resync();
    await sleep(100);
    gate.open();
    expect(await cb.frame()).toMatchObject({ type: 'message', id: 'late-1' });
    expect(await cb.quiet(300)).toBe(true);
    expect(s2Store.sameInboxMax).toBe(1); // the resync push waited for the connect push: one at a time
    ca.close();
    cb.close();
  });

  it('sockets whose connect push is stuck (a reader that never reads) hold no resync worker: the others still get theirs', async () => {
    const stuck = Array.from({ length: 12 }, () => newAgent());
    s2Store.gateOnly = new Set(stuck.map((x) => x.did));
    gate = closedGate();
    const stuckClients = [];
    for (const x of stuck) stuckClients.push(await connect(s2.url, x)); // each push now waits behind the gate
    const { ca, cb, bDid } = await pair();
    hub.dropping = true;
    ca.send(message(bDid, 'unstalled-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'unstalled-1' });
    bus2.resync();
    expect(await cb.frame(3000)).toMatchObject({ type: 'message', id: 'unstalled-1' });
    for (const c of stuckClients) c.close();
    ca.close();
    cb.close();
  });

  it('a resync re-sends what is not acknowledged (at least once), and nothing that is', async () => {
    const { ca, cb, bDid } = await pair();
    ca.send(message(bDid, 'keep-1'));
    ca.send(message(bDid, 'acked-1'));
    const first = [(await cb.frame()).id, (await cb.frame()).id];
    expect(first).toEqual(['keep-1', 'acked-1']);
    cb.send({ type: 'ack', id: 'acked-1' });
    expect(await until(() => inbox.count(bDid) === 1)).toBe(true);
    bus2.resync();
    expect((await cb.frame()).id).toBe('keep-1');
    expect(await cb.quiet(300)).toBe(true);
    ca.close();
    cb.close();
  });
});

describe('resyncs are bounded and retried', () => {
  it('an ack still being committed when the resync starts is waited for: the acknowledged frame is not sent again', async () => {
    const { ca, cb, bDid } = await pair();
    ca.send(message(bDid, 'keep-2'));
    ca.send(message(bDid, 'acked-2'));
    expect([(await cb.frame()).id, (await cb.frame()).id]).toEqual(['keep-2', 'acked-2']);
    s2Store.commitDelayMs = 300; // the ack's group answers late
    cb.send({ type: 'ack', id: 'acked-2' });
    await sleep(30); // the ack is in, its commit not yet answered
    bus2.resync();
    expect((await cb.frame()).id).toBe('keep-2');
    expect(await cb.quiet(500)).toBe(true);
    ca.close();
    cb.close();
  });

  it('a resync push the store fails is retried by the relay (no error frame to the client)', async () => {
    const { ca, cb, bDid } = await pair();
    hub.dropping = true;
    ca.send(message(bDid, 'retry-1'));
    expect(await ca.frame()).toMatchObject({ type: 'accepted', id: 'retry-1' });
    expect(await until(() => s2Store.pendingNow === 0)).toBe(true); // b's connect push is done
    s2Store.failPending = 2; // the resync push and its first retry fail
    const t0 = Date.now();
    bus2.resync();
    // Retried after 1 s, then 2 s: the frame comes on the third try, and nothing else before it.
    expect(await cb.frame(8000)).toMatchObject({ type: 'message', id: 'retry-1' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2900);
    expect(s2Store.failPending).toBe(0);
    expect(await cb.quiet(300)).toBe(true);
    ca.close();
    cb.close();
  }, 15_000);

  it('resync requests that come together make one run, and the next waits a second', async () => {
    const { ca, cb } = await pair();
    for (let i = 0; i < 10; i++) bus2.resync();
    await sleep(1500);
    const runs = () => s2Log.filter((l) => l.startsWith('relay: bus resync')).length;
    expect(runs()).toBe(1); // one run for the ten, and none after it
    bus2.resync();
    await sleep(300);
    expect(runs()).toBe(1); // the next run waits for the interval
    expect(await until(() => runs() === 2, 3000)).toBe(true);
    ca.close();
    cb.close();
  });

  it('a resync reads at most 8 inboxes at once, however many sockets there are', async () => {
    const clients = await Promise.all(Array.from({ length: 30 }, () => connect(s2.url, newAgent())));
    expect(await until(() => s2Store.pendingNow === 0)).toBe(true); // the connect pushes are done
    s2Store.pendingMax = 0;
    bus2.resync();
    expect(await until(() => s2Log.some((l) => l.startsWith('relay: bus resync')))).toBe(true);
    await sleep(500);
    expect(s2Store.pendingMax).toBe(8);
    for (const c of clients) c.close();
  });

  it('a socket that does not read gets no more copies at a resync (a backlog of over 4 MiB), and its lost frame once it reads', async () => {
    const a = newAgent();
    const b = newAgent();
    const ca = await connect(s1.url, a);
    const cb = await connect(s2.url, b);
    // b stops reading: what s2 sends piles up in its socket's buffer.
    (cb.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const big = 'A'.repeat(60_000);
    for (let i = 0; i < 200; i++) ca.send(message(b.did, `big-${i}`, { ciphertext: big }));
    expect(await until(() => inbox.count(b.did) === 200, 10_000)).toBe(true);
    hub.dropping = true; // and one frame whose live copy the bus loses
    ca.send(message(b.did, 'lost-while-busy'));
    expect(await until(() => inbox.count(b.did) === 201)).toBe(true);
    await sleep(200);
    const pushedBefore = s2.relay.stats.messages_delivered;
    for (let i = 0; i < 3; i++) {
      bus2.resync();
      await sleep(1200);
    }
    expect(s2.relay.stats.messages_delivered).toBe(pushedBefore); // no copy went into the backlog
    hub.dropping = false;
    (cb.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.resume();
    // Once it reads again the busy socket's resync comes back: the lost frame arrives (with copies of the unacked).
    const ids = new Set<string>();
    while (!ids.has('lost-while-busy')) {
      const f = await cb.frame(10_000);
      if (f.type === 'message') ids.add(f.id as string);
    }
    expect(ids.size).toBeGreaterThanOrEqual(200);
    ca.close();
    cb.close();
  }, 40_000);
});

describe('startMeshServer bus option', () => {
  it.each([
    ['not an object', 'bus'],
    ['no publish', { onEvent: (): void => undefined }],
    ['no onEvent', { publish: (): void => undefined }],
    ['onResync not a function', { publish: (): void => undefined, onEvent: (): void => undefined, onResync: 1 }],
  ])('refuses a bus that is %s (INVALID_ARGUMENT)', async (_name, bus) => {
    await expectE2EErrorAsync(() => startMeshServer({ port: 0, bus: bus as unknown as RelayBus }), 'INVALID_ARGUMENT');
  });

  it('refuses bus with redis (INVALID_ARGUMENT)', async () => {
    await expectE2EErrorAsync(() => startMeshServer({ port: 0, redis: 'redis://127.0.0.1:1', bus: hub.bus() }), 'INVALID_ARGUMENT');
  });
});
