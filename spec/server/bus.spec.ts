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
import { TestClient, connect, message, newAgent, sleep } from './helpers';

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

/** s2's view of the shared inbox: `pending` reads at once but answers only when the gate opens (a slow store). */
function gated(inner: InboxStore): InboxStore {
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === 'pending') {
        return async (...args: Parameters<InboxStore['pending']>): Promise<PendingMessage[]> => {
          const page = await target.pending(...args);
          if (gate) await gate.promise;
          return page;
        };
      }
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
  const inbox = new MemoryInboxStore();
  const shared = { directory: new MemoryAgentDirectory(), prekeys: new InMemoryStore() };
  s1 = await startMeshServer({ port: 0, inbox, ...shared, bus: hub.bus() });
  bus2 = hub.bus();
  s2 = await startMeshServer({ port: 0, inbox: gated(inbox), ...shared, bus: bus2 });
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
    gate.open();
    expect(await cb.frame()).toMatchObject({ type: 'message', id: 'late-1' });
    expect(await cb.quiet(300)).toBe(true);
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
    await sleep(50);
    await s2.relay.drain();
    bus2.resync();
    expect((await cb.frame()).id).toBe('keep-1');
    expect(await cb.quiet(300)).toBe(true);
    ca.close();
    cb.close();
  });
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
