/**
 * `startMeshServer`: one HTTP port serving the relay at `/ws`, the registry under `/v1/` and `GET /health`.
 * Storage: in memory by default, or one SQLite file (`db`) for inboxes, agent records and pre-keys.
 */
import { loadBackend } from '../store/backend';
import { createServer, IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer as WebSocketServerType } from 'ws';
import { E2EError } from '../errors';
import { storeFailure } from '../store/validate';
import { ready } from '../sodium';
import { InMemoryStore } from '../store/memory';
import { SqliteStore } from '../store/sqlite';
import type { PreKeyStore } from '../store/types';
import { PROOF_WINDOW_MS, RELAY_PATH } from '../mesh/frames';
import { InboxStore, MemoryInboxStore } from './inbox';
import { SqliteInboxStore } from './sqlite-inbox';
import { AgentDirectory, MemoryAgentDirectory, SqliteAgentDirectory } from './directory';
import { ProofCache } from './guards';
import { Relay, RelayLimits } from './relay';
import { Registry, RegistryLimits, send } from './registry';
import type { ProofGuard } from './guards';
import type { RelayBus } from './relay';
import { RedisAgentDirectory, RedisInboxStore, RedisProofGuard, RedisRelayBus } from './redis';
import { RedisStore } from '../store/redis';
import { StoreErrorReason } from '../store/reasons';

/** Options of {@link startMeshServer}. */
export interface MeshServerOptions {
  /** Interface to bind (default `127.0.0.1`). */
  host?: string;
  /** Port (default 8083; 0 picks a free one). */
  port?: number;
  /** SQLite file for everything (inboxes, agents, pre-keys); in memory when absent. */
  db?: string;
  /**
   * Redis URL (`redis://127.0.0.1:6379`): inboxes, agents, pre-keys and single-use proofs in Redis, live frames and
   * takeovers over pub/sub, so several server processes behind one address act as one. Excludes `db`.
   */
  redis?: string;
  /** Key prefix in Redis (default `agentmesh`); processes sharing one prefix share everything. */
  redisPrefix?: string;
  /** `synchronous` of the inbox file (default `FULL`). */
  synchronous?: 'FULL' | 'NORMAL';
  /** Storage overrides (e.g. a Redis pre-key store); each replaces what `db` would give. */
  inbox?: InboxStore;
  /** Pre-key store override (bundles, one-time and KEM pre-keys). */
  prekeys?: PreKeyStore;
  /** Agent directory override (agent records, the handed-out ledger). */
  directory?: AgentDirectory;
  /**
   * Live frames and takeovers between processes that share `inbox`, `directory` and `prekeys` over another
   * broker than Redis (with `redis`, a {@link RedisRelayBus} is used and this is refused).
   */
  bus?: RelayBus;
  /** Relay limits and timings. */
  relay?: Partial<RelayLimits>;
  /** Registry limits. */
  registry?: Partial<RegistryLimits>;
  /** AGT's shared relay token (`connect.token` must equal it). */
  token?: string;
  /**
   * Accept AGT SDK 4.0.0 clients, which send no proofs (default `false`; INSECURE — see
   * `RelayOptions.legacyClients` and `RegistryOptions.legacyClients`). For interop tests.
   */
  legacyClients?: boolean;
  /** Log lines (never message content). Default: none. */
  log?: (line: string) => void;
}

/** A running server. */
export interface MeshServer {
  /** `http://host:port` — the relay is at `url + '/ws'` (as `ws://`), the registry at `url + '/v1'`. */
  readonly url: string;
  /** The interface bound, as given (default `127.0.0.1`). */
  readonly host: string;
  /** The port bound (the one picked when `port` was 0). */
  readonly port: number;
  /** The relay behind `/ws`: its limits, stats and connections. */
  readonly relay: Relay;
  /** The registry behind `/v1/`: its limits. */
  readonly registry: Registry;
  /** Stops accepting, commits what is queued, closes sockets and stores. */
  close(): Promise<void>;
}

/**
 * Starts the relay + registry server.
 * @example
 * const server = await startMeshServer({ port: 0, db: 'relay.sqlite' });
 * console.log(server.url); // http://127.0.0.1:41234
 * await server.close();
 * @throws E2EError `INVALID_ARGUMENT` for bad options, `STORE_ERROR` if the database or Redis cannot be opened,
 *   `INVALID_STATE` (reason `listen_failed`) if the address is taken.
 */
export async function startMeshServer(options: MeshServerOptions = {}): Promise<MeshServer> {
  await ready();
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8083;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new E2EError('INVALID_ARGUMENT', 'port must be an integer in [0, 65535]');
  const log = options.log ?? (() => undefined);
  if (options.db !== undefined && options.redis !== undefined) throw new E2EError('INVALID_ARGUMENT', 'db and redis exclude each other');
  const owned: { close(): unknown }[] = [];
  const own = <T extends { close(): unknown }>(x: T): T => (owned.push(x), x);
  let inbox: InboxStore;
  let directory: AgentDirectory;
  let prekeys: PreKeyStore;
  let proofs: ProofGuard;
  let bus: RelayBus | undefined = options.bus;
  if (
    bus !== undefined &&
    (typeof bus !== 'object' ||
      bus === null ||
      typeof bus.publish !== 'function' ||
      typeof bus.onEvent !== 'function' ||
      (bus.onResync !== undefined && typeof bus.onResync !== 'function'))
  ) {
    throw new E2EError('INVALID_ARGUMENT', 'bus must have publish(event), onEvent(handler) and, if any, onResync(handler) functions');
  }
  if (options.redis !== undefined) {
    if (bus !== undefined) throw new E2EError('INVALID_ARGUMENT', 'bus and redis exclude each other (redis brings its own bus)');
    const ns = options.redisPrefix ?? 'agentmesh';
    if (typeof ns !== 'string' || !/^[A-Za-z0-9._-]{1,100}$/.test(ns)) {
      throw new E2EError('INVALID_ARGUMENT', 'redisPrefix must be 1 to 100 of A-Z a-z 0-9 . _ - (no colon)');
    }
    const Driver = loadBackend<typeof import('ioredis').default>('ioredis', 'the relay (--redis)');
    const connect = () => new Driver(options.redis as string, { maxRetriesPerRequest: 2, connectTimeout: 3000 });
    const main = connect();
    const sub = connect();
    // Without a listener ioredis prints errors to the console; the server's log names the connection instead.
    for (const [name, client] of [
      ['main', main],
      ['subscription', sub],
    ] as const) {
      client.on('error', (e: unknown) => log(`server: redis ${name} connection: ${e instanceof Error ? e.message : 'error'}`));
    }
    try {
      await main.ping();
    } catch (e) {
      main.disconnect();
      sub.disconnect();
      throw storeFailure(StoreErrorReason.BACKEND, 'Redis does not answer', e);
    }
    const redisBus = new RedisRelayBus(main, sub, `${ns}:relay:bus`);
    try {
      await redisBus.ready();
    } catch (e) {
      main.disconnect();
      sub.disconnect();
      throw e;
    }
    // Closed last (owned is closed in reverse): the bus, then the clients.
    owned.push({
      close: () => {
        main.disconnect();
        sub.disconnect();
      },
    });
    owned.push({ close: () => redisBus.close() });
    inbox = options.inbox ?? new RedisInboxStore(main, `${ns}:relay:`);
    directory = options.directory ?? new RedisAgentDirectory(main, `${ns}:registry:`);
    prekeys = options.prekeys ?? new RedisStore({ client: main, namespace: `${ns}.prekeys` }); // a namespace has no colon
    proofs = new RedisProofGuard(main, PROOF_WINDOW_MS, `${ns}:proof:`);
    bus = redisBus;
  } else {
    inbox =
      options.inbox ??
      own(options.db ? new SqliteInboxStore(options.db, { synchronous: options.synchronous ?? 'FULL' }) : new MemoryInboxStore());
    directory = options.directory ?? own(options.db ? new SqliteAgentDirectory(options.db) : new MemoryAgentDirectory());
    prekeys = options.prekeys ?? own(options.db ? new SqliteStore(options.db) : new InMemoryStore());
    proofs = new ProofCache(PROOF_WINDOW_MS);
  }
  const legacyClients = options.legacyClients === true;
  if (legacyClients) log('server: legacy AGT 4.0.0 mode is ON — connects and registrations without proofs are accepted (insecure)');
  const relay = new Relay({
    inbox,
    proofs,
    legacyClients,
    limits: options.relay ?? {},
    log,
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(bus ? { bus } : {}),
  });
  const registry = new Registry({
    directory,
    prekeys,
    proofs,
    legacyClients,
    limits: options.registry ?? {},
    log,
    isConnected: (d) => relay.isConnected(d),
  });
  // ws is an optional peer dependency (a SecureChannel-only install never needs it): loaded here, with a hint if missing.
  const { WebSocketServer } = loadBackend<{ WebSocketServer: typeof WebSocketServerType }>('ws', 'the relay server');
  const wss = new WebSocketServer({ noServer: true, maxPayload: relay.limits.hardMaxFrameBytes, perMessageDeflate: false });

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (path === '/health' && req.method === 'GET') {
      send(res, 200, {
        status: 'healthy',
        service: 'agentmesh-e2e',
        connected_agents: relay.connectedAgents,
        verified_agents: relay.verifiedAgents,
        entra_verify_enabled: false,
        stats: { ...relay.stats },
      });
      return;
    }
    if (path === '/v1' || path.startsWith('/v1/')) {
      void registry.handle(req, res);
      return;
    }
    send(res, 404, { detail: 'Not Found' });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== RELAY_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => relay.accept(ws, req));
  });
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await relay.close();
    for (const x of owned.reverse()) await x.close();
    const code = (e as { code?: unknown }).code;
    throw new E2EError('INVALID_STATE', `cannot listen on ${host}:${port} (${typeof code === 'string' ? code : 'error'})`, 'listen_failed');
  }
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost}:${boundPort}`,
    host,
    port: boundPort,
    relay,
    registry,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        await relay.close();
        wss.close();
        server.closeAllConnections();
        await stopped;
        for (const x of owned.reverse()) await x.close();
      })();
      return closing;
    },
  };
}
