/**
 * `MeshAgent`: an agent on a relay and a registry (AGT's frames, AGT-WIRE.md), end to end encrypted.
 *
 * - Start-up: register (409 = already), publish and maintain pre-keys (`maintainPreKeys`), load every saved
 *   session, connect with the DID proof; then heartbeats, reconnection and hourly pre-key upkeep.
 * - Sending: the first message to a peer claims its bundle, checks it is the peer DID's key (G1; with
 *   `trust`, the registry key of a peer that passed the mutual handshake), runs X3DH and sends a `knock`
 *   carrying the establishment (§1.9) before the first `message`. Frames wait in an outbox while offline.
 * - Receiving: frames are processed one at a time. A message is decrypted, handed to the application, the
 *   advanced session saved, and only then acknowledged: at-least-once across crashes. A frame already
 *   processed (a redelivery, G5) is acknowledged and dropped, and never touches a session. A message no
 *   session can read waits briefly for its knock; then the sender is told (`session_unknown`), and the
 *   sender opens a fresh session and reports `session-reset` (G7). Nothing unauthenticated ever closes a
 *   session: a notice only makes the sender open a new one beside it.
 * - Post-quantum (option `postQuantum`, default `'prefer'`): sessions are PQXDH (X25519 and ML-KEM-768)
 *   whenever the peer's bundle carries a KEM pre-key; `'require'` refuses classic ones both ways; `'off'`
 *   is classic X3DH, AGT's wire byte for byte.
 */
import { E2EError, isE2EError } from '../errors';
import { storeError } from '../store/validate';
import { ready } from '../sodium';
import { constantTimeEqual, fromBase64, randomBytes, toBase64, utf8 } from '../crypto';
import { PreKeyBundle, x25519FormOfEd25519 } from '../x3dh';
import { EncryptedMessage } from '../ratchet';
import { MAX_PARKED, MAX_PLAINTEXT_BYTES, MAX_PROCESSED_IDS } from '../limits';
import { ChannelEstablishment, SecureChannel } from '../channel';
import {
  AgentIdentity,
  ChallengeReply,
  HandshakeChallenge,
  HandshakeResponse,
  TrustTransport,
  didFromPublicKey,
  isMeshDid,
} from '../trust';
// Module by module, not the store barrel (which holds the Redis store and its `node:crypto`).
import { AgentStore } from '../store/types';
import { InMemoryStore } from '../store/memory';
import { SqliteStore } from '../store/sqlite';
import { StorageCipher } from '../store/storage-cipher';
import { StoredKeyManager } from '../store/stored-key-manager';
import { MaintenanceReport, PreKeyPolicy } from '../store/prekey-maintenance';
import { BoundedSet } from '../util/bounded-map';
import { RELAY_PATH, RoutedFrame, ServerFrame } from './frames';
import { BackoffOptions, ConnectionState, RelayConnection } from './connection';
import { Emitter } from './emitter';
import { MeshErrorReason, meshError } from './errors';
import { MeshMessage, MeshPayload, encodePayload } from './message';
import { PreKeyUpkeep } from './prekeys';
import { FetchLike, RegistryClient } from './registry-client';
import { BatchingSessionStore } from './batching-store';
import { KeyedBudget } from './budget';
import { SessionBook, SessionEntry } from './sessions';
import { SocketFactory, openSocket } from './socket';
import { MeshTrust, MeshTrustOptions } from './trust';

/**
 * Post-quantum sessions of a {@link MeshAgent} (PQXDH: X25519 and ML-KEM-768; PROTOCOL.md "PQXDH").
 * - `'prefer'` (default): the agent keeps a last-resort KEM pre-key and a pool of one-time KEM pre-keys
 *   and publishes them to our registry (AGT's registry cannot carry them: there it publishes a classic
 *   bundle), and opens a post-quantum session whenever the peer's bundle has a KEM pre-key, a classic one
 *   otherwise (an AGT peer, an `'off'` peer). Inbound, it accepts both.
 * - `'require'`: as `'prefer'`, and classic sessions are refused both ways (`POST_QUANTUM_REQUIRED`): `send`
 *   to a peer whose bundle has no KEM pre-key rejects with it (so a registry or relay that strips the KEM
 *   pre-key cannot downgrade the session), and a classic establishment is refused (`knock_reject`, reason
 *   `post_quantum_required`). With `agt`, every peer's bundle is classic: nothing opens.
 * - `'off'`: classic X3DH only: no KEM pre-key is made or published (uploads are AGT's, byte for byte),
 *   a peer's KEM pre-key is ignored (knocks carry AGT's establishment), and post-quantum establishments
 *   find no KEM pre-key to answer with (`kem_not_found`).
 */
export type PostQuantumMode = 'require' | 'prefer' | 'off';

/** Options of {@link MeshAgent.connect}. Give `url`, or `relayUrl` and `registryUrl`. */
export interface MeshAgentOptions {
  /** Our server's base URL, `http(s)://host:port`: relay at `/ws`, registry under `/v1`. */
  readonly url?: string;
  /** The relay's WebSocket URL (`ws(s)://…/ws`), when relay and registry are apart (AGT). */
  readonly relayUrl?: string;
  /** The registry's base URL (`http(s)://host:port`), when apart from the relay. */
  readonly registryUrl?: string;
  /** The agent's identity; its DID must be its key's (`did:mesh:` + 32 hex of SHA-256), as relays enforce. */
  readonly identity: AgentIdentity;
  /** Where keys and sessions live: an `AgentStore`, or a path (SQLite). Default: in memory. */
  readonly store?: AgentStore | string;
  /** 32 bytes sealing everything at rest; required with a persistent store (same key on every start). */
  readonly storageKey?: Uint8Array;
  /** Gate both directions with the trust handshake (see {@link MeshTrustOptions}). */
  readonly trust?: MeshTrustOptions;
  /** Talk to AGT's own relay and registry (timestamp-only proofs, no extensions). Default false. */
  readonly agt?: boolean;
  /** Post-quantum sessions: `'prefer'` (default), `'require'` or `'off'` (see {@link PostQuantumMode}). */
  readonly postQuantum?: PostQuantumMode;
  /** Capabilities sent at registration. */
  readonly capabilities?: string[];
  /** Heartbeat interval (default 30 s, as AGT's spec). */
  readonly heartbeatMs?: number;
  /** Reconnection backoff. */
  readonly backoff?: BackoffOptions;
  /** Pre-key policy (refill thresholds, rotation). */
  readonly preKeys?: PreKeyPolicy;
  /** How often pre-key upkeep runs (default 1 h; also after one-time pre-keys were used). */
  readonly maintenanceIntervalMs?: number;
  /** How long `connect` waits for registry and relay (default 30 s). */
  readonly connectTimeoutMs?: number;
  /**
   * Save sessions and acknowledge received messages in groups (up to 256 per write) instead of one by one:
   * far fewer fsyncs under load; after a crash, up to one group of messages is handled again (each is
   * still delivered at least once). Default false: every message is saved and acknowledged on its own.
   */
  readonly groupCommit?: boolean;
  /** How long a message no session can read waits for its knock (default 3 s). */
  readonly undecryptableGraceMs?: number;
  /** WebSocket factory (default: global `WebSocket`, else `ws`). */
  readonly socketFactory?: SocketFactory;
  /** `fetch` (default: the global one). */
  readonly fetch?: FetchLike;
}

/** A `session-reset` event: a peer could not read what we sent (it lost its state); the next send opens a new session. */
export interface SessionResetEvent {
  /** The peer's DID. */
  readonly peer: string;
  /** The message the peer could not read (earlier ones on that session may be lost too). */
  readonly messageId: string;
  /** The peer's `knock_reject` reason: `session_unknown`. */
  readonly reason: string;
}

/** A `rejected` event: a peer refused our session, or we refused its. */
export interface RejectedEvent {
  /** The peer's DID. */
  readonly peer: string;
  /** `'inbound'`: we refused the peer's knock; `'outbound'`: the peer refused ours. */
  readonly direction: 'inbound' | 'outbound';
  /** The `knock_reject` reason code, e.g. `policy_denied` (a peer's is cut to 64 characters). */
  readonly reason: string;
}

/** A `session` event: a session was opened or accepted. */
export interface SessionEvent {
  /** The peer's DID. */
  readonly peer: string;
  /** `'initiator'`: we opened the session; `'responder'`: we accepted the peer's. */
  readonly role: 'initiator' | 'responder';
  /** Whether it is a post-quantum (PQXDH) session. */
  readonly postQuantum: boolean;
}

/** Events of a {@link MeshAgent}. `message` listeners are awaited before the message is acknowledged. */
export type MeshAgentEvents = {
  message: (message: MeshMessage) => void | Promise<void>;
  connected: () => void;
  disconnected: (info: { code?: number }) => void;
  /** Another connection took this DID's mailbox (4006); call `reconnect()` to take it back. */
  replaced: (error: E2EError) => void;
  error: (error: E2EError) => void;
  'session-reset': (event: SessionResetEvent) => void;
  session: (event: SessionEvent) => void;
  rejected: (event: RejectedEvent) => void;
  /** A frame that was already processed arrived again; acknowledged and dropped (`DUPLICATE_MESSAGE`). */
  duplicate: (info: { peer: string; id: string }) => void;
};

type Routed = RoutedFrame & { from: string };

/** Frames waiting for the save of the state they advanced (`stamp`). */
interface Outgoing {
  readonly frames: RoutedFrame[];
  readonly stamp: number;
  resolve(): void;
  reject(e: E2EError): void;
}

interface PendingRoundTrip {
  readonly peer: string;
  resolve(f: Routed): void;
  reject(e: E2EError): void;
  timer: ReturnType<typeof setTimeout>;
}

/** An agent on the mesh. Create it with {@link MeshAgent.connect}. */
export class MeshAgent extends Emitter<MeshAgentEvents> {
  /** This agent's DID. */
  readonly did: string;
  readonly #identity: AgentIdentity;
  readonly #store: AgentStore;
  readonly #ownsStore: boolean;
  readonly #keys: StoredKeyManager;
  readonly #sessions: SessionBook;
  readonly #registry: RegistryClient;
  readonly #agt: boolean;
  readonly #pq: PostQuantumMode;
  /** Automatic `knock_reject`s: a few per peer per minute, 100 an hour in all (see budget.ts). */
  readonly #replies = new KeyedBudget({ perKeyBurst: 2, perKeyPerSecond: 1 / 60, allBurst: 100, allPerSecond: 100 / 3600 });
  /** Registry look-ups of the key behind an unauthenticated knock: a few per peer, 2 a second in all. */
  readonly #lookups = new KeyedBudget({ perKeyBurst: 3, perKeyPerSecond: 1 / 60, allBurst: 20, allPerSecond: 2 });
  readonly #upkeep: PreKeyUpkeep;
  readonly #conn: RelayConnection;
  readonly #trust: MeshTrust | null;
  readonly #graceMs: number;
  readonly #processed = new BoundedSet<string>(MAX_PROCESSED_IDS);
  readonly #peerLocks = new Map<string, Promise<unknown>>();
  readonly #roundTrips = new Map<string, PendingRoundTrip>();
  readonly #parked = new Map<string, { frame: Routed; timer: ReturnType<typeof setTimeout>; retried: boolean }>();
  readonly #iterators = new Set<MessageQueue>();
  readonly #pendingCommit = new Map<string, { entry: SessionEntry; message: EncryptedMessage }>();
  readonly #sessionStore: BatchingSessionStore;
  readonly #maxBatch: number;
  /** Frames processed but not yet acknowledged (their sessions wait for the next flush). */
  #pendingAcks: { id: string; key: string }[] = [];
  readonly #outgoing: Outgoing[] = [];
  #queuedFrames = 0;
  #inbox: Promise<void> = Promise.resolve();
  #consumerWaiters: (() => void)[] = [];
  #maintenance: ReturnType<typeof setInterval> | null = null;
  #maintenanceSoon: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  #connectedOnce = false;
  #reportingListenerError = false;

  private constructor(p: {
    identity: AgentIdentity;
    store: AgentStore;
    ownsStore: boolean;
    keys: StoredKeyManager;
    cipher: StorageCipher;
    registry: RegistryClient;
    relayUrl: string;
    options: MeshAgentOptions;
  }) {
    super();
    const o = p.options;
    this.did = p.identity.did;
    this.#identity = p.identity;
    this.#store = p.store;
    this.#ownsStore = p.ownsStore;
    this.#keys = p.keys;
    this.#registry = p.registry;
    this.#agt = o.agt === true;
    this.#pq = o.postQuantum ?? 'prefer';
    this.#graceMs = o.undecryptableGraceMs ?? 3_000;
    this.#sessionStore = new BatchingSessionStore(p.store);
    this.#maxBatch = o.groupCommit === true ? 256 : 1;
    this.#sessions = new SessionBook({
      store: this.#sessionStore,
      cipher: p.cipher,
      localDid: this.did,
      keys: p.keys,
      requirePostQuantum: this.#pq === 'require',
    });
    this.#upkeep = new PreKeyUpkeep({
      keys: p.keys,
      registry: p.registry,
      store: p.store,
      cipher: p.cipher,
      ...(o.preKeys ? { policy: o.preKeys } : {}),
      ...(o.capabilities ? { capabilities: o.capabilities } : {}),
      // AGT's registry cannot carry KEM pre-keys.
      kem: this.#pq !== 'off' && !this.#agt,
    });
    this.#trust = o.trust ? new MeshTrust(p.identity, o.trust, this.#trustTransport()) : null;
    this.#conn = new RelayConnection({
      url: p.relayUrl,
      signer: p.identity,
      agt: o.agt === true,
      socketFactory: o.socketFactory ?? openSocket,
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
      ...(o.backoff !== undefined ? { backoff: o.backoff } : {}),
      onFrame: (f) => this.#onFrame(f),
      onState: (s, d) => this.#onState(s, d),
      onError: (e) => this.emit('error', e),
    });
  }

  /**
   * Starts an agent: opens its store, registers it, publishes its pre-keys, loads its sessions and connects
   * to the relay. Rejects when the relay refuses its proof (`BAD_SIGNATURE`, reason `relay_auth_failed`),
   * or registry or relay cannot be reached within `connectTimeoutMs`.
   * @example
   * const agent = await MeshAgent.connect({ url: 'http://relay.example:8083', identity, store: 'agent.sqlite', storageKey });
   * agent.on('message', (m) => console.log(m.from, m.text()));
   * await agent.send(peerDid, { hello: 'world' });
   */
  static async connect(options: MeshAgentOptions): Promise<MeshAgent> {
    await ready();
    if (typeof options !== 'object' || options === null) throw new E2EError('INVALID_ARGUMENT', 'options are required');
    const identity = options.identity;
    if (!(identity instanceof AgentIdentity)) throw new E2EError('INVALID_ARGUMENT', 'identity must be an AgentIdentity');
    if (!identity.isSelfCertifying) throw new E2EError('INVALID_ARGUMENT', 'identity.did must be derived from its key (relays enforce it)');
    const pq: unknown = options.postQuantum;
    if (pq !== undefined && pq !== 'require' && pq !== 'prefer' && pq !== 'off')
      throw new E2EError('INVALID_ARGUMENT', "postQuantum must be 'require', 'prefer' or 'off'");
    const { relayUrl, registryUrl } = endpoints(options);
    const persistent = options.store !== undefined;
    if (persistent && options.storageKey === undefined) throw new E2EError('INVALID_ARGUMENT', 'a persistent store needs a storageKey');
    const cipher = new StorageCipher(options.storageKey ?? randomBytes(32));
    const ownsStore = typeof options.store === 'string' || options.store === undefined;
    const store: AgentStore = typeof options.store === 'string' ? new SqliteStore(options.store) : (options.store ?? new InMemoryStore());
    let agent: MeshAgent | null = null;
    try {
      const loc = { store, cipher, did: identity.did };
      const keys = (await StoredKeyManager.load(loc)) ?? (await StoredKeyManager.create(loc, identity.createKeyManager()));
      if (!identity.ownsKeyManager(keys.manager))
        throw new E2EError('IDENTITY_MISMATCH', "the store holds another identity's keys for this DID");
      const registry = new RegistryClient({
        baseUrl: registryUrl,
        signer: identity,
        agt: options.agt === true,
        ...(options.fetch ? { fetch: options.fetch } : {}),
      });
      agent = new MeshAgent({ identity, store, ownsStore, keys, cipher, registry, relayUrl, options });
      await agent.#start(options);
      return agent;
    } catch (e) {
      if (agent) await agent.close().catch(() => undefined);
      else if (ownsStore) await Promise.resolve(store.close()).catch(() => undefined);
      throw e;
    }
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#conn.state;
  }

  /** Frames waiting for the relay to take them (e.g. while offline). */
  get queued(): number {
    return this.#conn.queued;
  }

  /**
   * The sessions with `peer`, oldest first: who opened each, whether it is the one we send on, messages
   * sent and received on it, and whether the peer said it cannot read it.
   */
  sessions(
    peer: string,
  ): { role: 'initiator' | 'responder'; current: boolean; messageCount: number; dead: boolean; postQuantum: boolean }[] {
    const cur = this.#sessions.current(peer);
    return this.#sessions.sessionsOf(peer).map((e) => ({
      role: e.role,
      current: e === cur,
      messageCount: e.channel.messageCount,
      dead: e.dead,
      postQuantum: e.channel.postQuantum,
    }));
  }

  /** Peers this agent has a session with. */
  get peers(): string[] {
    return this.#sessions.peers;
  }

  /**
   * Encrypts `data` for `peerDid` and hands it to the relay; resolves to the message id once the relay has
   * taken it (persisted, on our server). Opens the session on first use. While offline it waits in the
   * outbox. `TRUST_REJECTED` when `trust` refuses the peer; `IDENTITY_MISMATCH` (reason
   * `not_bound_to_did`) when the registry's bundle is not the DID's key; `INVALID_STATE` (reason
   * `unknown_peer`) when the registry has no bundle for it; `POST_QUANTUM_REQUIRED` under
   * `postQuantum: 'require'` when its bundle has no KEM pre-key.
   */
  async send(peerDid: string, data: MeshPayload): Promise<string> {
    this.#assertOpen();
    if (!isMeshDid(peerDid)) throw new E2EError('INVALID_ARGUMENT', 'peerDid must be a did:mesh DID');
    if (peerDid === this.did) throw new E2EError('INVALID_ARGUMENT', 'an agent cannot send to itself');
    const bytes = encodePayload(data);
    // Refused before a session is opened for it (a session opened for a message that then fails would
    // go unannounced: its knock is sent with its first message).
    if (bytes.length > MAX_PLAINTEXT_BYTES) throw new E2EError('MESSAGE_TOO_LARGE', `message above ${MAX_PLAINTEXT_BYTES} bytes`);
    const taken = await this.#withPeer(peerDid, async () => {
      this.#assertOpen();
      // A reply from the handler of this peer's message commits that message first: a responder can only
      // send once its session holds the message (and the reply is the handling's visible effect).
      await this.#commitPending(peerDid);
      let entry = this.#sessions.current(peerDid);
      let knock: RoutedFrame | null = null;
      if (!entry) ({ entry, knock } = await this.#open(peerDid));
      let m: EncryptedMessage;
      try {
        m = await entry.channel.send(bytes);
      } catch (e) {
        // The session is open and saved: announce it anyway, so the next message on it can be read.
        if (knock) void this.#stage([knock]).catch(() => undefined);
        throw e;
      }
      const id = uuid();
      this.#sessions.noteSent(id, entry);
      const j = m.toJSON();
      const frame: RoutedFrame = {
        v: 1,
        type: 'message',
        from: this.did,
        to: peerDid,
        id,
        ts: new Date().toISOString(),
        header: j.header,
        ciphertext: j.ciphertext,
      };
      // Queued in send order; each leaves only once the state it advanced is saved.
      return { id, taken: this.#stage(knock ? [knock, frame] : [frame]) };
    });
    // Outside the peer lock, one turn later: concurrent sends share one write (group commit of sends).
    try {
      await this.#sessionStore.flush({ gather: true });
    } catch (e) {
      this.#dropUnsaved(e);
    }
    this.#release();
    await taken.taken;
    return taken.id;
  }

  /**
   * Queues frames to leave once the sessions they advanced are saved (a restart can never reuse a sending
   * key); resolves when the relay has taken the last one.
   */
  #stage(frames: RoutedFrame[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#outgoing.push({ frames, stamp: this.#sessionStore.stamp, resolve, reject });
    });
  }

  /** Hands every saved frame to the connection, in the order they were made. */
  #release(): void {
    while (this.#outgoing.length > 0 && (this.#outgoing[0] as Outgoing).stamp <= this.#sessionStore.durable) {
      const o = this.#outgoing.shift() as Outgoing;
      const last = o.frames.length - 1;
      o.frames.forEach((f, i) => {
        const p = this.#conn.send(f);
        if (i === last) p.then(o.resolve, o.reject);
        else p.catch(() => undefined);
      });
    }
  }

  /** A failed save: the frames waiting for it never leave; their sends fail. */
  #dropUnsaved(e: unknown): void {
    const err = storeError('saving the session', e);
    const keep: Outgoing[] = [];
    for (const o of this.#outgoing.splice(0)) {
      if (o.stamp <= this.#sessionStore.durable) keep.push(o);
      else o.reject(err);
    }
    this.#outgoing.push(...keep);
  }

  /** Messages as an async iterator; a message counts as handled when the loop asks for the next one. */
  messages(): AsyncIterableIterator<MeshMessage> {
    const q = new MessageQueue(() => this.#iterators.delete(q));
    this.#iterators.add(q);
    this.#wakeConsumers();
    return q;
  }

  /** Same as {@link messages}. */
  [Symbol.asyncIterator](): AsyncIterableIterator<MeshMessage> {
    return this.messages();
  }

  /** Adds a listener (see {@link MeshAgentEvents}); a `message` listener starts delivery. */
  override on<K extends keyof MeshAgentEvents>(event: K, listener: MeshAgentEvents[K]): this {
    super.on(event, listener);
    if (event === 'message') this.#wakeConsumers();
    return this;
  }

  /** Connects again, e.g. after a `replaced` event (which does not reconnect by itself). */
  reconnect(): void {
    this.#assertOpen();
    this.#conn.reconnectNow();
  }

  /** Runs pre-key upkeep now (refill, rotation, retirement). */
  maintainPreKeys(): Promise<MaintenanceReport> {
    this.#assertOpen();
    return this.#upkeep.run();
  }

  /**
   * Disconnects, lets the frame in progress finish, closes sessions (their keys wiped; saved state kept)
   * and the store if the agent opened it. Queued frames are rejected. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#maintenance) clearInterval(this.#maintenance);
    if (this.#maintenanceSoon) clearTimeout(this.#maintenanceSoon);
    for (const p of this.#parked.values()) clearTimeout(p.timer);
    this.#parked.clear();
    for (const [, rt] of this.#roundTrips) {
      clearTimeout(rt.timer);
      rt.reject(meshError(MeshErrorReason.AGENT_CLOSED, 'the agent was closed'));
    }
    this.#roundTrips.clear();
    for (const q of this.#iterators) q.end();
    for (const w of this.#consumerWaiters.splice(0)) w();
    await this.#inbox.catch(() => undefined);
    await Promise.allSettled([...this.#peerLocks.values()]);
    // What was handled is saved and acknowledged before the socket goes.
    if (this.#pendingAcks.length > 0) await this.#flushAcks();
    else await this.#sessionStore.flush().catch(() => undefined);
    this.#release();
    for (const o of this.#outgoing.splice(0))
      o.reject(meshError(MeshErrorReason.AGENT_CLOSED, 'the agent was closed before the message was saved'));
    this.#conn.close();
    await this.#sessions.closeAll();
    this.#trust?.close();
    this.#keys.manager.wipe();
    if (this.#ownsStore) await Promise.resolve(this.#store.close()).catch(() => undefined);
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** A listener's exception becomes an `error` event (once: an `error` listener that throws is not re-reported). */
  protected override onListenerError(e: unknown): void {
    if (this.#reportingListenerError || this.listenerCount('error') === 0) return;
    this.#reportingListenerError = true;
    try {
      this.emit('error', isE2EError(e) ? e : new E2EError('INVALID_STATE', 'an event listener threw', 'listener'));
    } finally {
      this.#reportingListenerError = false;
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Start-up and upkeep

  async #start(o: MeshAgentOptions): Promise<void> {
    const deadline = Date.now() + (o.connectTimeoutMs ?? 30_000);
    await retryUntil(deadline, () => this.#registry.register(o.capabilities));
    await retryUntil(deadline, () => this.#upkeep.run());
    await this.#sessions.load((e) => this.emit('error', e));
    this.#conn.start();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(meshError(MeshErrorReason.RELAY_UNREACHABLE, 'the relay could not be reached in time')),
        Math.max(1, deadline - Date.now()),
      );
    });
    try {
      await Promise.race([this.#conn.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.#maintenance = setInterval(() => this.#maintain(), o.maintenanceIntervalMs ?? 3_600_000);
    (this.#maintenance as { unref?: () => void }).unref?.();
  }

  #maintain(): void {
    if (this.#closed) return;
    this.#upkeep
      .run()
      .catch((e: unknown) => this.emit('error', isE2EError(e) ? e : meshError(MeshErrorReason.REGISTRY_ERROR, 'pre-key upkeep failed')));
  }

  /** Upkeep soon after one-time pre-keys were used (debounced). */
  #maintainSoon(): void {
    if (this.#maintenanceSoon || this.#closed) return;
    this.#maintenanceSoon = setTimeout(() => {
      this.#maintenanceSoon = null;
      this.#maintain();
    }, 1_000);
    (this.#maintenanceSoon as { unref?: () => void }).unref?.();
  }

  // -------------------------------------------------------------------------------------------------------
  // Opening sessions

  /** Opens a session to `peer` (caller holds the peer lock): trust, bundle bound to the DID, X3DH; returns the knock to send. */
  async #open(peer: string): Promise<{ entry: SessionEntry; knock: RoutedFrame }> {
    const trustedKey = this.#trust ? await this.#trust.verifyOutbound(peer) : null;
    const bundle = await this.#registry.claimBundle(peer);
    if (!bundle) throw meshError(MeshErrorReason.UNKNOWN_PEER, 'the registry has no bundle for this DID');
    // G1: the bundle must be the DID's own key (and, with trust, the registry's key for it).
    if (didFromPublicKey(bundle.identityKeyEd) !== peer || (trustedKey && !constantTimeEqual(trustedKey, bundle.identityKeyEd))) {
      throw meshError(MeshErrorReason.NOT_BOUND_TO_DID, "the registry's bundle is not this DID's key");
    }
    const { channel, establishment } = SecureChannel.createSender(
      this.#keys.manager,
      this.#pq === 'off' ? classicOf(bundle) : bundle,
      utf8(`${this.did}|${peer}`),
      { requirePostQuantum: this.#pq === 'require' },
    );
    const entry = await this.#sessions.addInitiator(peer, channel);
    const id = uuid();
    this.#sessions.noteSent(id, entry);
    const knock: RoutedFrame = {
      v: 1,
      type: 'knock',
      from: this.did,
      to: peer,
      id,
      ts: new Date().toISOString(),
      intent: { action: 'establish_session' },
      establishment: establishment.toJSON(),
      identity_key_ed: toBase64(this.#identity.publicKey),
    };
    this.emit('session', { peer, role: 'initiator', postQuantum: channel.postQuantum });
    return { entry, knock };
  }

  // -------------------------------------------------------------------------------------------------------
  // Receiving

  #onState(s: ConnectionState, d?: { code?: number; error?: E2EError }): void {
    if (s === 'connected') {
      // After a reconnect the server may have restarted: check (and, if it lost us, restore) our pre-keys.
      if (this.#connectedOnce) this.#maintain();
      this.#connectedOnce = true;
      this.emit('connected');
    } else if (s === 'disconnected') this.emit('disconnected', d?.code !== undefined ? { code: d.code } : {});
    else if (s === 'replaced' && d?.error) this.emit('replaced', d.error);
  }

  #onFrame(f: ServerFrame): void {
    if (this.#closed) return;
    const frame = f as Routed;
    if (!isMeshDid(frame.from)) {
      this.#conn.ack(frame.id);
      return;
    }
    // Answers to our own round trips and trust messages never wait behind the inbox (whose handler may be
    // waiting for them: a handler that sends to a new peer).
    if (frame.type === 'knock_accept' || frame.type === 'knock_reject') {
      const rt = typeof frame.knock_id === 'string' ? this.#roundTrips.get(frame.knock_id) : undefined;
      if (rt && rt.peer === frame.from) {
        this.#roundTrips.delete(frame.knock_id as string);
        clearTimeout(rt.timer);
        rt.resolve(frame);
        this.#conn.ack(frame.id);
        return;
      }
    }
    const action = frame.type === 'knock' ? (frame.intent as { action?: unknown } | undefined)?.action : undefined;
    if (action === 'trust_challenge' || action === 'trust_answer') {
      void this.#onTrustKnock(frame, action).finally(() => this.#conn.ack(frame.id));
      return;
    }
    this.#enqueue(frame);
  }

  #enqueue(frame: Routed): void {
    this.#queuedFrames++;
    this.#inbox = this.#inbox
      .then(() => this.#process(frame))
      .catch((e: unknown) => {
        this.emit('error', isE2EError(e) ? e : new E2EError('INVALID_STATE', 'processing a frame failed'));
      })
      .then(() => {
        this.#queuedFrames--;
        // Acknowledge once the inbox is drained or a group is full, after the sessions are saved.
        if (this.#pendingAcks.length > 0 && (this.#queuedFrames === 0 || this.#pendingAcks.length >= this.#maxBatch))
          return this.#flushAcks();
        return undefined;
      });
  }

  /** Saves every pending session, then acknowledges the frames it covers. */
  async #flushAcks(): Promise<void> {
    const done = this.#pendingAcks;
    this.#pendingAcks = [];
    try {
      await this.#sessionStore.flush();
    } catch (e) {
      // Not saved: not acknowledged either, and processed anew when the relay delivers them again.
      for (const d of done) this.#processed.delete(d.key);
      this.emit('error', storeError('saving sessions', e));
      return;
    }
    for (const d of done) this.#conn.ack(d.id);
  }

  async #process(frame: Routed): Promise<void> {
    if (this.#closed) return;
    const key = `${frame.from}\n${frame.id}`;
    if (this.#processed.has(key)) {
      this.#pendingAcks.push({ id: frame.id, key });
      this.emit('duplicate', { peer: frame.from, id: frame.id });
      return;
    }
    let done: boolean;
    switch (frame.type) {
      case 'message':
        done = await this.#onMessage(frame);
        break;
      case 'knock':
        done = await this.#onKnock(frame);
        break;
      case 'knock_reject':
        this.#onKnockReject(frame);
        done = true;
        break;
      default:
        done = true; // knock_accept of an establishment: nothing to do
    }
    if (!done) return;
    this.#remember(key);
    this.#pendingAcks.push({ id: frame.id, key });
  }

  /** `true` when the frame is finished with (acknowledge it). */
  async #onMessage(frame: Routed): Promise<boolean> {
    let message: EncryptedMessage;
    try {
      message = EncryptedMessage.fromJSON({ header: frame.header, ciphertext: frame.ciphertext } as never);
    } catch {
      this.emit('error', new E2EError('MALFORMED_MESSAGE', 'a malformed message frame was dropped'));
      return true;
    }
    const peer = frame.from;
    await this.#waitForConsumer();
    if (this.#closed) return false;
    const opened = await this.#withPeer(peer, () => this.#sessions.decrypt(peer, message));
    if (opened === 'undecryptable') return this.#park(frame);
    this.#unpark(frame);
    if (opened === 'duplicate') {
      this.emit('duplicate', { peer, id: frame.id });
      return true; // G5: acknowledged and dropped; the session is untouched
    }
    const pending = { entry: opened.entry, message };
    this.#pendingCommit.set(peer, pending);
    try {
      // Outside the peer lock: a handler may send to this peer and await it.
      await this.#deliver(new MeshMessage(peer, frame.id, opened.plaintext));
    } catch (e) {
      if (this.#pendingCommit.get(peer) === pending) {
        this.#pendingCommit.delete(peer);
        this.emit('error', isE2EError(e) ? e : new E2EError('INVALID_STATE', 'the message handler threw', 'handler_failed'));
        // Not acknowledged: the relay delivers it again, and the session hands it out again from its inbox.
        await opened.entry.channel.release(message).catch(() => undefined);
        return false;
      }
      // The handler replied before it threw, which committed the message: it counts as handled.
      this.emit('error', isE2EError(e) ? e : new E2EError('INVALID_STATE', 'the message handler threw', 'handler_failed'));
    }
    await this.#withPeer(peer, () => this.#commitPending(peer));
    return true;
  }

  /** Keeps an unreadable message a while (its knock may come later); then tells the sender and drops it. */
  #park(frame: Routed): boolean {
    const key = `${frame.from}\n${frame.id}`;
    const parked = this.#parked.get(key);
    if (parked?.retried) {
      this.#parked.delete(key);
      this.#giveUp(frame);
      return true;
    }
    if (parked || this.#parked.size >= MAX_PARKED) {
      if (!parked) this.#giveUp(frame);
      return !parked;
    }
    const timer = setTimeout(() => {
      const p = this.#parked.get(key);
      if (!p) return;
      p.retried = true;
      this.#enqueue(frame);
    }, this.#graceMs);
    (timer as { unref?: () => void }).unref?.();
    this.#parked.set(key, { frame, timer, retried: false });
    return false;
  }

  #unpark(frame: Routed): void {
    const key = `${frame.from}\n${frame.id}`;
    const p = this.#parked.get(key);
    if (p) {
      clearTimeout(p.timer);
      this.#parked.delete(key);
    }
  }

  /** Retries the parked messages of `peer` now (a session with it was just accepted). */
  #retryParked(peer: string): void {
    for (const p of [...this.#parked.values()]) {
      if (p.frame.from !== peer || p.retried) continue;
      clearTimeout(p.timer);
      p.retried = true;
      this.#enqueue(p.frame);
    }
  }

  #giveUp(frame: Routed): void {
    // G7: the peer is told, so it opens a fresh session instead of sending into the void — within a
    // budget, since anyone can send junk to make us answer.
    if (this.#replies.take(frame.from))
      this.#conn
        .send({
          v: 1,
          type: 'knock_reject',
          from: this.did,
          to: frame.from,
          id: uuid(),
          knock_id: frame.id,
          reason: 'session_unknown',
          ts: new Date().toISOString(),
        })
        .catch(() => undefined);
    this.emit('error', new E2EError('DECRYPT_FAILED', 'a message no session can read was dropped; the sender was told', 'undecryptable'));
  }

  async #onKnock(frame: Routed): Promise<boolean> {
    const peer = frame.from;
    const intent = (frame.intent as { action?: unknown } | undefined)?.action;
    if (intent !== undefined && intent !== 'establish_session') return true;
    if (frame.establishment === undefined) return true; // a knock without establishment: nothing to build
    let e: ChannelEstablishment;
    try {
      e = ChannelEstablishment.fromJSON(frame.establishment as never);
    } catch {
      this.#refuse(frame, 'malformed_establishment');
      return true;
    }
    return this.#withPeer(peer, async () => {
      if (this.#closed) return false;
      if (this.#sessions.findAccepted(peer, e)) {
        this.emit('duplicate', { peer, id: frame.id });
        return true; // G5: a redelivered knock never touches the session it made
      }
      try {
        await this.#bindEstablishment(frame, e);
        if (this.#trust) await this.#trust.admitInbound(peer, e.initiatorIdentityKey);
      } catch (err) {
        this.#refuse(frame, isE2EError(err) && err.reason ? err.reason : 'identity_key_mismatch');
        return true;
      }
      let accepted: SessionEntry | 'duplicate';
      try {
        accepted = await this.#sessions.accept(peer, e);
      } catch (err) {
        const reason = refusalOf(err);
        if (reason) {
          this.#refuse(frame, reason);
          return true;
        }
        throw err;
      }
      if (accepted === 'duplicate') {
        this.emit('duplicate', { peer, id: frame.id });
        return true;
      }
      // One-time pre-keys were used (a one-time KEM pre-key is any but the last-resort one): refill soon.
      if (
        e.usedOneTimeKeyId !== undefined ||
        (e.kemPreKeyId !== undefined && e.kemPreKeyId !== this.#keys.manager.lastResortKemPreKey?.keyId)
      )
        this.#maintainSoon();
      this.#conn
        .send({ v: 1, type: 'knock_accept', from: this.did, to: peer, id: uuid(), knock_id: frame.id, ts: new Date().toISOString() })
        .catch(() => undefined);
      this.emit('session', { peer, role: 'responder', postQuantum: accepted.channel.postQuantum });
      this.#retryParked(peer);
      return true;
    });
  }

  /** G1: the establishment's identity key must be the key of the DID that sent it. */
  async #bindEstablishment(frame: Routed, e: ChannelEstablishment): Promise<void> {
    let ed: Uint8Array | null = null;
    if (typeof frame.identity_key_ed === 'string') {
      try {
        ed = fromBase64(frame.identity_key_ed);
      } catch {
        ed = null;
      }
    }
    // An AGT peer sends no Ed25519 key: ask the registry (ours gives the key; AGT's only inside a bundle),
    // within a budget: each look-up spends our own registry allowance, and anyone can send knocks.
    if (ed === null) {
      if (!this.#lookups.take(frame.from))
        throw meshError(MeshErrorReason.NOT_BOUND_TO_DID, 'too many key look-ups for unauthenticated knocks; try later');
      ed = await this.#registry.publicKeyOf(frame.from);
      if (ed === null && this.#agt) ed = (await this.#registry.claimBundle(frame.from).catch(() => null))?.identityKeyEd ?? null;
    }
    if (
      ed === null ||
      ed.length !== 32 ||
      didFromPublicKey(ed) !== frame.from ||
      !constantTimeEqual(x25519FormOfEd25519(ed), e.initiatorIdentityKey)
    ) {
      throw meshError(MeshErrorReason.NOT_BOUND_TO_DID, "the establishment is not the sender DID's key");
    }
  }

  #refuse(frame: Routed, reason: string): void {
    if (this.#replies.take(frame.from))
      this.#conn
        .send({
          v: 1,
          type: 'knock_reject',
          from: this.did,
          to: frame.from,
          id: uuid(),
          knock_id: frame.id,
          reason,
          ts: new Date().toISOString(),
        })
        .catch(() => undefined);
    this.emit('rejected', { peer: frame.from, direction: 'inbound', reason });
  }

  #onKnockReject(frame: Routed): void {
    const ref = typeof frame.knock_id === 'string' ? frame.knock_id : '';
    const reason = typeof frame.reason === 'string' ? frame.reason.slice(0, 64) : 'policy_denied';
    const entry = this.#sessions.sentOn(ref);
    // Unauthenticated (G9): it only stops us sending on that session; a new one opens beside it.
    if (entry && entry.peer === frame.from) entry.dead = true;
    if (reason === 'session_unknown') this.emit('session-reset', { peer: frame.from, messageId: ref, reason });
    else this.emit('rejected', { peer: frame.from, direction: 'outbound', reason });
  }

  // -------------------------------------------------------------------------------------------------------
  // Trust over the relay

  #trustTransport(): TrustTransport {
    return {
      sendChallenge: async (_from: string, to: string, challenge: HandshakeChallenge): Promise<ChallengeReply> => {
        const reply = await this.#roundTrip(to, 'trust_challenge', { challenge });
        const trust = reply.trust as ChallengeReply | undefined;
        if (typeof trust !== 'object' || trust === null)
          throw new E2EError('TRUST_REJECTED', 'the peer sent no trust reply', 'malformed_response');
        return trust;
      },
      sendAnswer: async (_from: string, to: string, response: HandshakeResponse): Promise<void> => {
        await this.#roundTrip(to, 'trust_answer', { response });
      },
    };
  }

  /** Sends a trust knock and waits for its `knock_accept`; a `knock_reject` is `TRUST_REJECTED` (`peer_refused`). */
  async #roundTrip(to: string, action: string, trust: unknown): Promise<Routed> {
    const id = uuid();
    const reply = new Promise<Routed>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#roundTrips.delete(id);
        reject(new E2EError('TRUST_REJECTED', 'the peer did not answer in time', 'handshake_timeout'));
      }, 60_000);
      (timer as { unref?: () => void }).unref?.();
      this.#roundTrips.set(id, { peer: to, resolve, reject, timer });
    });
    await this.#conn.send({ v: 1, type: 'knock', from: this.did, to, id, ts: new Date().toISOString(), intent: { action }, trust });
    const f = await reply;
    if (f.type === 'knock_reject') {
      throw new E2EError(
        'TRUST_REJECTED',
        `the peer refused: ${typeof f.reason === 'string' ? f.reason.slice(0, 64) : 'policy_denied'}`,
        'peer_refused',
      );
    }
    return f;
  }

  async #onTrustKnock(frame: Routed, action: 'trust_challenge' | 'trust_answer'): Promise<void> {
    const reply = (extra: Record<string, unknown>, ok: boolean): void => {
      this.#conn
        .send({
          v: 1,
          type: ok ? 'knock_accept' : 'knock_reject',
          from: this.did,
          to: frame.from,
          id: uuid(),
          knock_id: frame.id,
          ts: new Date().toISOString(),
          ...extra,
        })
        .catch(() => undefined);
    };
    const trust = (frame.trust ?? {}) as { challenge?: HandshakeChallenge; response?: HandshakeResponse };
    if (!this.#trust) {
      reply({ reason: 'trust_not_enabled' }, false);
      return;
    }
    try {
      if (action === 'trust_challenge') {
        const r = await this.#trust.answerChallenge(frame.from, trust.challenge as HandshakeChallenge);
        reply({ trust: r }, true);
      } else {
        await this.#trust.completeHandshake(frame.from, trust.response as HandshakeResponse);
        reply({}, true);
      }
    } catch (e) {
      const reason = isE2EError(e) && e.reason ? e.reason : 'policy_denied';
      reply({ reason }, false);
      this.emit('rejected', { peer: frame.from, direction: 'inbound', reason });
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Delivery to the application

  async #deliver(m: MeshMessage): Promise<void> {
    for (const l of this.listeners('message')) await l(m);
    await Promise.all([...this.#iterators].map((q) => q.push(m)));
  }

  /** Saves the session advanced by the message being handled from `peer`, if any (caller holds the peer lock). */
  async #commitPending(peer: string): Promise<void> {
    const p = this.#pendingCommit.get(peer);
    if (!p) return;
    this.#pendingCommit.delete(peer);
    await this.#sessions.commit(p.entry, p.message);
  }

  #hasConsumer(): boolean {
    return this.listenerCount('message') > 0 || this.#iterators.size > 0;
  }

  /** Messages wait (unacknowledged) until the application listens. */
  async #waitForConsumer(): Promise<void> {
    while (!this.#hasConsumer() && !this.#closed) await new Promise<void>((r) => this.#consumerWaiters.push(r));
  }

  #wakeConsumers(): void {
    for (const w of this.#consumerWaiters.splice(0)) w();
  }

  #remember(key: string): void {
    this.#processed.add(key);
  }

  /** Runs `fn` after every earlier operation on `peer` (sends and receives never interleave per peer). */
  #withPeer<T>(peer: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#peerLocks.get(peer) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#peerLocks.set(peer, tail);
    void tail.then(() => {
      if (this.#peerLocks.get(peer) === tail) this.#peerLocks.delete(peer);
    });
    return run;
  }

  #assertOpen(): void {
    if (this.#closed) throw meshError(MeshErrorReason.AGENT_CLOSED, 'the agent is closed');
  }
}

/** An async iterator fed by the agent; `push` resolves when the consumer asks for the next message. */
function notTaken(): E2EError {
  return new E2EError('INVALID_STATE', 'the message iterator ended before this message was taken', 'not_consumed');
}

class MessageQueue implements AsyncIterableIterator<MeshMessage> {
  readonly #onEnd: () => void;
  #waiting: ((r: IteratorResult<MeshMessage>) => void) | null = null;
  #handed: (() => void) | null = null;
  #queue: { m: MeshMessage; handled: () => void; untaken: (e: E2EError) => void }[] = [];
  #ended = false;

  constructor(onEnd: () => void) {
    this.#onEnd = onEnd;
  }

  /** Resolves once the consumer has handled `m`; rejects if the iterator ends before it took `m` (so it is not acknowledged). */
  push(m: MeshMessage): Promise<void> {
    if (this.#ended) return Promise.reject(notTaken());
    return new Promise<void>((handled, untaken) => {
      if (this.#waiting) {
        const w = this.#waiting;
        this.#waiting = null;
        this.#handed = handled;
        w({ value: m, done: false });
      } else {
        this.#queue.push({ m, handled, untaken });
      }
    });
  }

  next(): Promise<IteratorResult<MeshMessage>> {
    // Asking for the next message means the previous one was handled.
    this.#handed?.();
    this.#handed = null;
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    const q = this.#queue.shift();
    if (q) {
      this.#handed = q.handled;
      return Promise.resolve({ value: q.m, done: false });
    }
    return new Promise((r) => {
      this.#waiting = r;
    });
  }

  return(): Promise<IteratorResult<MeshMessage>> {
    this.#handed?.();
    this.#handed = null;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd();
    // Never seen by the consumer: not handled, so not acknowledged (the relay delivers them again).
    for (const q of this.#queue.splice(0)) q.untaken(notTaken());
    this.#waiting?.({ value: undefined, done: true });
    this.#waiting = null;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<MeshMessage> {
    return this;
  }
}

function endpoints(o: MeshAgentOptions): { relayUrl: string; registryUrl: string } {
  if (typeof o.url === 'string') {
    const base = o.url.replace(/\/+$/, '');
    if (!/^https?:\/\//.test(base)) throw new E2EError('INVALID_ARGUMENT', 'url must be http(s)://host:port');
    return { relayUrl: base.replace(/^http/, 'ws') + RELAY_PATH, registryUrl: o.registryUrl ?? base };
  }
  if (typeof o.relayUrl !== 'string' || typeof o.registryUrl !== 'string') {
    throw new E2EError('INVALID_ARGUMENT', 'give url, or relayUrl and registryUrl');
  }
  const relay = /^https?:\/\//.test(o.relayUrl) ? o.relayUrl.replace(/\/+$/, '').replace(/^http/, 'ws') + RELAY_PATH : o.relayUrl;
  return { relayUrl: relay, registryUrl: o.registryUrl.replace(/\/+$/, '') };
}

/** `bundle` without its KEM pre-key: what `postQuantum: 'off'` opens with (a classic establishment). */
function classicOf(bundle: PreKeyBundle): PreKeyBundle {
  const { kemPreKey: _k, kemPreKeyId: _i, kemPreKeySignature: _s, ...classic } = bundle;
  return classic;
}

/** The `knock_reject` reason of an acceptance error the peer can do something about; `null` for the others (ours). */
function refusalOf(err: unknown): string | null {
  if (isE2EError(err, 'OTK_NOT_FOUND')) return 'otk_not_found';
  if (isE2EError(err, 'KEM_NOT_FOUND')) return 'kem_not_found';
  if (isE2EError(err, 'POST_QUANTUM_REQUIRED')) return 'post_quantum_required';
  if (isE2EError(err, 'SPK_NOT_FOUND') || isE2EError(err, 'INVALID_KEY')) return 'spk_not_found';
  return null;
}

function uuid(): string {
  return (globalThis.crypto as Crypto).randomUUID();
}

/** Retries `fn` on unreachable-registry errors until `deadline`. */
async function retryUntil<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable =
        isE2EError(e) && (e.reason === MeshErrorReason.REGISTRY_UNREACHABLE || e.reason === MeshErrorReason.REGISTRY_RATE_LIMITED);
      if (!retryable || Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt) * (0.8 + 0.4 * Math.random())));
    }
  }
}
