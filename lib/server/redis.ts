/**
 * Redis for several server processes behind one address: shared inboxes (`RedisInboxStore`), agent records
 * (`RedisAgentDirectory`), single-use proofs (`RedisProofGuard`) and a pub/sub bus (`RedisRelayBus`) that carries
 * live frames and 4006 takeovers to the process holding the recipient's socket. Pre-keys use `lib/store`'s
 * `RedisStore`. One Redis instance (not Redis Cluster: the scripts name keys they compute). Durability is Redis's:
 * run it with `appendonly yes` and `appendfsync always` for the SQLite backend's guarantee.
 */
import type Redis from 'ioredis';
import { E2EError } from '../errors';
import { storeError, storeFailure } from '../store/validate';
import type { AgentDirectory, AgentRecord } from './directory';
import type { ProofGuard } from './guards';
import type { InboxAck, InboxMessage, InboxQuota, InboxStore, PendingMessage, PutOutcome } from './inbox';
import type { RelayBus, BusEvent } from './relay';
import { StoreErrorReason } from '../store/reasons';

function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) throw new E2EError('INVALID_ARGUMENT', 'prefix must be 1 to 64 of [A-Za-z0-9._:-]');
  return prefix.endsWith(':') ? prefix : prefix + ':';
}

// One group = one script run: atomic, in order (acks, then puts), quotas checked against the shared state.
const COMMIT = `
local p = ARGV[1]
local maxIn = tonumber(ARGV[2])
local maxSnd = tonumber(ARGV[3])
local maxInB = tonumber(ARGV[4])
local maxSndB = tonumber(ARGV[5])
local maxPair = tonumber(ARGV[6])
local maxPairB = tonumber(ARGV[7])
local nA = tonumber(ARGV[8])
local i = 9
local function cnt(h, k) return tonumber(redis.call('HGET', p .. h, k) or '0') end
local function dec(h, k, d) if redis.call('HINCRBY', p .. h, k, -d) <= 0 then redis.call('HDEL', p .. h, k) end end
local function del(r, id)
  local v = redis.call('HGET', p .. 'm:' .. r, id)
  if not v then return 0 end
  local m = cjson.decode(v)
  local n = #m.x
  local pk = m.f .. '\\n' .. r
  redis.call('HDEL', p .. 'm:' .. r, id)
  redis.call('ZREM', p .. 'o:' .. r, id)
  redis.call('ZREM', p .. 'exp', r .. '\\n' .. id)
  dec('snd', m.f, 1)
  dec('sb', m.f, n)
  dec('ib', r, n)
  dec('pc', pk, 1)
  dec('pb', pk, n)
  redis.call('DECR', p .. 'size')
  return 1
end
for k = 1, nA do
  del(ARGV[i], ARGV[i + 1])
  i = i + 2
end
local out = {}
while i <= #ARGV do
  local r, id, s, a, e, f = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  local held = redis.call('HGET', p .. 'm:' .. r, id)
  local o
  if held then
    if cjson.decode(held).f == s then o = 'duplicate' else o = 'id_conflict' end
  elseif redis.call('HLEN', p .. 'm:' .. r) >= maxIn then
    o = 'inbox_full'
  elseif cnt('ib', r) + #f > maxInB then
    o = 'inbox_bytes'
  elseif cnt('snd', s) >= maxSnd then
    o = 'sender_quota'
  elseif cnt('sb', s) + #f > maxSndB then
    o = 'sender_bytes'
  elseif cnt('pc', s .. '\\n' .. r) >= maxPair or cnt('pb', s .. '\\n' .. r) + #f > maxPairB then
    o = 'pair_quota'
  else
    local seq = redis.call('INCR', p .. 'seq')
    redis.call('HSET', p .. 'm:' .. r, id, cjson.encode({ s = seq, f = s, a = a, e = e, x = f }))
    redis.call('ZADD', p .. 'o:' .. r, seq, id)
    redis.call('ZADD', p .. 'exp', tonumber(e), r .. '\\n' .. id)
    redis.call('HINCRBY', p .. 'snd', s, 1)
    redis.call('HINCRBY', p .. 'sb', s, #f)
    redis.call('HINCRBY', p .. 'ib', r, #f)
    redis.call('HINCRBY', p .. 'pc', s .. '\\n' .. r, 1)
    redis.call('HINCRBY', p .. 'pb', s .. '\\n' .. r, #f)
    redis.call('INCR', p .. 'size')
    o = 'stored'
  end
  out[#out + 1] = o
end
return out
`;

const PURGE = `
local p = ARGV[1]
local function dec(h, k, d) if redis.call('HINCRBY', p .. h, k, -d) <= 0 then redis.call('HDEL', p .. h, k) end end
local items = redis.call('ZRANGEBYSCORE', p .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, 500)
for _, item in ipairs(items) do
  local nl = string.find(item, '\\n', 1, true)
  local r, id = string.sub(item, 1, nl - 1), string.sub(item, nl + 1)
  local v = redis.call('HGET', p .. 'm:' .. r, id)
  if v then
    local m = cjson.decode(v)
    local n = #m.x
    local pk = m.f .. '\\n' .. r
    redis.call('HDEL', p .. 'm:' .. r, id)
    redis.call('ZREM', p .. 'o:' .. r, id)
    dec('snd', m.f, 1)
    dec('sb', m.f, n)
    dec('ib', r, n)
    dec('pc', pk, 1)
    dec('pb', pk, n)
    redis.call('DECR', p .. 'size')
  end
  redis.call('ZREM', p .. 'exp', item)
end
return #items
`;

interface Stored {
  s: number;
  f: string;
  a: string;
  e: string;
  x: string;
}

/** Inboxes in one Redis, shared by every server process using the same `prefix`. */
export class RedisInboxStore implements InboxStore {
  readonly #r: Redis;
  readonly #p: string;

  /** Over a connected ioredis client (never closed by the store); keys under `prefix` (default `agentmesh:relay:`). */
  constructor(client: Redis, prefix = 'agentmesh:relay:') {
    this.#r = client;
    this.#p = checkPrefix(prefix);
  }

  /** See {@link InboxStore.commit}. One script: atomic across processes. */
  async commit(puts: readonly InboxMessage[], acks: readonly InboxAck[], quota: InboxQuota): Promise<PutOutcome[]> {
    const lim = (v: number | undefined) => String(v ?? Number.MAX_SAFE_INTEGER);
    const argv: string[] = [
      this.#p,
      String(quota.maxPerInbox),
      String(quota.maxPerSender),
      lim(quota.maxBytesPerInbox),
      lim(quota.maxBytesPerSender),
      lim(quota.maxPerPair),
      lim(quota.maxBytesPerPair),
      String(acks.length),
    ];
    for (const a of acks) argv.push(a.recipient, a.id);
    for (const m of puts) argv.push(m.recipient, m.id, m.sender, String(m.storedAt), String(m.expiresAt), m.frame);
    try {
      return (await this.#r.eval(COMMIT, 0, ...argv)) as PutOutcome[];
    } catch (e) {
      throw storeError('redis commit', e);
    }
  }

  /** See {@link InboxStore.pending}. */
  async pending(recipient: string, now: number, limit: number, afterSeq = 0): Promise<PendingMessage[]> {
    try {
      const ids = await this.#r.zrangebyscore(this.#p + 'o:' + recipient, `(${afterSeq}`, '+inf', 'LIMIT', 0, limit);
      if (ids.length === 0) return [];
      const values = await this.#r.hmget(this.#p + 'm:' + recipient, ...ids);
      const out: PendingMessage[] = [];
      values.forEach((v, i) => {
        if (v === null) return;
        const m = JSON.parse(v) as Stored;
        const expiresAt = Number(m.e);
        if (expiresAt <= now) return;
        out.push({ seq: m.s, recipient, id: ids[i] as string, sender: m.f, frame: m.x, storedAt: Number(m.a), expiresAt });
      });
      return out;
    } catch (e) {
      throw storeError('redis pending', e);
    }
  }

  /** See {@link InboxStore.count}. */
  async count(recipient: string): Promise<number> {
    try {
      return await this.#r.hlen(this.#p + 'm:' + recipient);
    } catch (e) {
      throw storeError('redis count', e);
    }
  }

  /** See {@link InboxStore.size}. */
  async size(): Promise<number> {
    try {
      return Number((await this.#r.get(this.#p + 'size')) ?? 0);
    } catch (e) {
      throw storeError('redis size', e);
    }
  }

  /** See {@link InboxStore.purgeExpired}. In steps of 500, so one call never blocks Redis for long. */
  async purgeExpired(now: number): Promise<number> {
    let total = 0;
    try {
      for (let i = 0; i < 10_000; i++) {
        const n = Number(await this.#r.eval(PURGE, 0, this.#p, String(now)));
        total += n;
        if (n < 500) break;
      }
      return total;
    } catch (e) {
      throw storeError('redis purge', e);
    }
  }

  /** See {@link InboxStore.close}. The client is the caller's. */
  close(): void {
    // nothing to release
  }
}

function recordToJson(r: AgentRecord): string {
  return JSON.stringify({
    ...r,
    publicKey: Buffer.from(r.publicKey).toString('base64'),
    legacyIdentityKey: r.legacyIdentityKey ? Buffer.from(r.legacyIdentityKey).toString('base64') : undefined,
  });
}

function recordFromJson(text: string): AgentRecord {
  const o = JSON.parse(text) as Omit<AgentRecord, 'publicKey' | 'legacyIdentityKey'> & { publicKey: string; legacyIdentityKey?: string };
  const { legacyIdentityKey, ...rest } = o;
  const r: AgentRecord = { ...rest, publicKey: new Uint8Array(Buffer.from(o.publicKey, 'base64')) };
  if (legacyIdentityKey !== undefined) r.legacyIdentityKey = new Uint8Array(Buffer.from(legacyIdentityKey, 'base64'));
  return r;
}

/** Agent records in Redis: a hash of records, a sorted set for registration order, a set per DID of handed-out keys. */
export class RedisAgentDirectory implements AgentDirectory {
  readonly #r: Redis;
  readonly #p: string;

  /** Over a connected client; keys under `prefix` (default `agentmesh:registry:`). */
  constructor(client: Redis, prefix = 'agentmesh:registry:') {
    this.#r = client;
    this.#p = checkPrefix(prefix);
  }

  async #run<T>(op: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw storeError(`redis ${op}`, e);
    }
  }

  /** See {@link AgentDirectory.get}. */
  get(did: string): Promise<AgentRecord | null> {
    return this.#run('get', async () => {
      const v = await this.#r.hget(this.#p + 'agents', did);
      return v === null ? null : recordFromJson(v);
    });
  }
  /** See {@link AgentDirectory.insert}. */
  insert(rec: AgentRecord): Promise<boolean> {
    return this.#run('insert', async () => {
      const ok = (await this.#r.hsetnx(this.#p + 'agents', rec.did, recordToJson(rec))) === 1;
      if (ok) await this.#r.zadd(this.#p + 'order', rec.registeredAt, rec.did);
      return ok;
    });
  }
  /** See {@link AgentDirectory.update}. Only an existing record is replaced. */
  update(rec: AgentRecord): Promise<void> {
    return this.#run('update', async () => {
      await this.#r.eval(
        "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0",
        1,
        this.#p + 'agents',
        rec.did,
        recordToJson(rec),
      );
    });
  }
  /** See {@link AgentDirectory.remove}. */
  remove(did: string): Promise<boolean> {
    return this.#run('remove', async () => {
      const n = await this.#r.hdel(this.#p + 'agents', did);
      await this.#r.zrem(this.#p + 'order', did);
      return n === 1;
    });
  }
  /** See {@link AgentDirectory.find}. Scans every record. */
  find(capability: string | undefined, limit: number): Promise<{ results: AgentRecord[]; total: number }> {
    return this.#run('find', async () => {
      const dids = await this.#r.zrange(this.#p + 'order', 0, -1);
      const values = dids.length === 0 ? [] : await this.#r.hmget(this.#p + 'agents', ...dids);
      const all = values
        .filter((v): v is string => v !== null)
        .map(recordFromJson)
        .filter((r) => capability === undefined || r.capabilities.includes(capability));
      return { results: all.slice(0, limit), total: all.length };
    });
  }
  /** See {@link AgentDirectory.markHandedOut}. */
  markHandedOut(did: string, keyHash: string): Promise<void> {
    return this.#run('markHandedOut', async () => {
      await this.#r.sadd(this.#p + 'handed:' + did, keyHash);
    });
  }
  /** See {@link AgentDirectory.wasHandedOut}. */
  wasHandedOut(did: string, keyHash: string): Promise<boolean> {
    return this.#run('wasHandedOut', async () => (await this.#r.sismember(this.#p + 'handed:' + did, keyHash)) === 1);
  }
  /** See {@link AgentDirectory.close}. */
  close(): void {
    // the client is the caller's
  }
}

/** Single-use proofs shared by every process: `SET key NX PX`. */
export class RedisProofGuard implements ProofGuard {
  readonly #r: Redis;
  readonly #p: string;
  readonly #windowMs: number;

  /** Proofs are remembered until they leave the ±`windowMs` window. */
  constructor(client: Redis, windowMs: number, prefix = 'agentmesh:proof:') {
    this.#r = client;
    this.#p = checkPrefix(prefix);
    this.#windowMs = windowMs;
  }

  /** See {@link ProofGuard.use}. A Redis failure refuses the proof (`'full'`): fail closed. */
  async use(key: string, proofTimeMs: number): Promise<'fresh' | 'replayed' | 'full'> {
    const ttl = Math.max(1000, Math.ceil(proofTimeMs + this.#windowMs + 1000 - Date.now()));
    try {
      return (await this.#r.set(this.#p + key, '1', 'PX', ttl, 'NX')) === 'OK' ? 'fresh' : 'replayed';
    } catch {
      return 'full';
    }
  }
}

/**
 * Live frames and takeovers between server processes, on one pub/sub channel. Every process sees every event
 * and acts on those for DIDs it holds: fine for a few processes; a large deployment would shard channels.
 * Pub/sub keeps nothing for a subscriber that is away: after the subscription connection comes back, the bus
 * subscribes again and then tells the relay to resync (re-send its sockets their stored frames).
 */
export class RedisRelayBus implements RelayBus {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #node: string;
  #handler: ((e: BusEvent) => void) | null = null;
  #resync: (() => void) | null = null;
  #subscribed = false;
  #closed = false;
  readonly #ready: Promise<void>;

  /**
   * `pub` publishes; `sub` is a second connection given over to subscribing (ioredis cannot do both on one).
   * Neither is closed by the bus. `readyTimeoutMs` bounds the wait for `sub` to connect (default 10 s).
   */
  constructor(pub: Redis, sub: Redis, channel = 'agentmesh:relay:bus', readyTimeoutMs = 10_000) {
    this.#pub = pub;
    this.#sub = sub;
    this.#channel = channel;
    this.#node = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this.#sub.on('message', (ch: string, text: string) => {
      if (ch !== this.#channel || this.#handler === null) return;
      let e: BusEvent & { node?: string };
      try {
        e = JSON.parse(text) as BusEvent & { node?: string };
      } catch {
        return;
      }
      if (typeof e !== 'object' || e === null) return;
      const { node, ...event } = e;
      if (node === this.#node) return; // our own event
      this.#handler(event);
    });
    this.#sub.on('ready', () => {
      if (this.#subscribed && !this.#closed) void this.#resubscribe();
    });
    this.#ready = this.#subscribe(readyTimeoutMs);
    this.#ready.catch(() => undefined); // the rejection is ready()'s to report
  }

  // SUBSCRIBE only once the connection is ready: ioredis 5.8.2+ may send its handshake (CLIENT SETINFO, the
  // INFO ready check) after a SUBSCRIBE issued while connecting; it then refuses its own INFO in subscriber mode,
  // fails the queued commands and reconnects, and events published meanwhile are lost (redis/ioredis#2037).
  async #subscribe(timeoutMs: number): Promise<void> {
    await whenReady(this.#sub, timeoutMs);
    if (this.#closed) return;
    try {
      await this.#sub.subscribe(this.#channel);
    } catch (e) {
      throw storeError('redis subscribe', e);
    }
    this.#subscribed = true;
  }

  // After a reconnect: ioredis resubscribes on its own, but without telling us when it is done. Our own SUBSCRIBE
  // (harmless twice) answers once the channel is live again; only then is a resync complete.
  async #resubscribe(): Promise<void> {
    try {
      await this.#sub.subscribe(this.#channel);
    } catch {
      return; // the next 'ready' tries again
    }
    if (!this.#closed) this.#resync?.();
  }

  /** Resolves once subscribed (the server awaits it before listening); `STORE_ERROR` if Redis does not answer. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** See {@link RelayBus.publish}. */
  publish(e: BusEvent): void {
    this.#pub.publish(this.#channel, JSON.stringify({ ...e, node: this.#node })).catch(() => undefined);
  }

  /** See {@link RelayBus.onEvent}. */
  onEvent(handler: (e: BusEvent) => void): void {
    this.#handler = handler;
  }

  /** See {@link RelayBus.onResync}. */
  onResync(handler: () => void): void {
    this.#resync = handler;
  }

  /** Unsubscribes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#handler = null;
    this.#resync = null;
    await this.#sub.unsubscribe(this.#channel).catch(() => undefined);
  }
}

/**
 * Resolves when `client` is connected and past ioredis's handshake; `STORE_ERROR` after `timeoutMs`, or at once
 * when the client has ended (disconnected, or out of reconnection attempts).
 */
function whenReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  const ended = () => storeFailure(StoreErrorReason.BACKEND, 'the Redis subscription connection has ended');
  if (client.status === 'end') return Promise.reject(ended());
  if (client.status === 'wait') client.connect().catch(() => undefined); // lazyConnect: errors arrive as events
  return new Promise((resolve, reject) => {
    const settle = (error: E2EError | null): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (error) reject(error);
      else resolve();
    };
    const onReady = (): void => settle(null);
    const onEnd = (): void => settle(ended());
    const timer = setTimeout(
      () => settle(storeFailure(StoreErrorReason.BACKEND, 'Redis does not answer (subscription connection)')),
      timeoutMs,
    );
    timer.unref(); // the client's own socket keeps the process up while it connects; a closed bus must not
    client.on('ready', onReady);
    client.on('end', onEnd);
  });
}
