/**
 * The relay: AGT's WebSocket frames (AGT-WIRE.md §1), store-and-forward until ack for every frame, with the
 * sender bound to the authenticated connection. Where AGT's relay is looser we are strict and say so with an
 * error frame, never silently (the list is in the README, "Server").
 */
import type { IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { WebSocket } from 'ws';
import { E2EError, isE2EError } from '../errors';
import {
  AcceptedFrame,
  CloseCode,
  ConnectedFrame,
  FIRST_FRAME_TIMEOUT_MS,
  Feature,
  IDLE_TIMEOUT_MS,
  RelayErrorCode,
  RoutedFrame,
  SESSION_REPLACED_REASON,
  decodeClientFrame,
  decodeConnectFrame,
  encodeFrame,
  errorFrame,
  isFrameDid,
  verifyConnectProof,
} from '../mesh/frames';
import { InboxAck, InboxMessage, InboxQuota, InboxStore, PutOutcome, assertQuota } from './inbox';
import { MAX_FUTURE_SKEW_MS, ProofGuard, RateLimiter } from './guards';
import { DEFAULT_MAX_FRAME_BYTES } from '../limits';

/** Limits and timings of the relay. Every one has a default; tests shorten the timings. */
export interface RelayLimits {
  /** Frames above this many bytes are refused with an error frame (default 1 MiB; AGT: 16 MiB). */
  maxFrameBytes: number;
  /** Frames above this close the socket with 1009 (default 2 × maxFrameBytes). */
  hardMaxFrameBytes: number;
  /** Kept this long unacked, then purged (default 72 h, as AGT). */
  ttlMs: number;
  /** Most unacked frames per recipient (default 10,000). */
  maxPerInbox: number;
  /** Most unacked frames per sender over all inboxes (default 10,000). */
  maxPerSender: number;
  /** Most unacked frames one sender may hold in one recipient's inbox (default 1,000), so it cannot fill it for others. */
  maxPerPair: number;
  /** Most bytes per recipient (default 256 MiB), per sender (default 256 MiB), per (sender, recipient) (default 32 MiB). */
  maxBytesPerInbox: number;
  /** Most unacked bytes per sender over all inboxes (default 256 MiB). */
  maxBytesPerSender: number;
  /** Most unacked bytes one sender may hold in one recipient's inbox (default 32 MiB). */
  maxBytesPerPair: number;
  /** Sustained routed frames per second per sender DID (default 2,000), with `messageBurst` (default 4,000). */
  messagesPerSecond: number;
  /** Routed frames a sender DID may send at once, before `messagesPerSecond` applies (default 4,000). */
  messageBurst: number;
  /** New connections per second per remote address (default 20), with `connectionBurst` (default 100). */
  connectionsPerSecond: number;
  /** New connections a remote address may open at once, before `connectionsPerSecond` applies (default 100). */
  connectionBurst: number;
  /** Most open sockets (default 20,000). */
  maxConnections: number;
  /** No `connect` within this → close 1000 (default 10 s). */
  firstFrameTimeoutMs: number;
  /** No frame and no pong within this → close 4004 (default 90 s). */
  idleTimeoutMs: number;
  /** WebSocket ping interval (default 30 s): keeps AGT clients that never heartbeat alive (G8). */
  pingIntervalMs: number;
  /** Expired-frame purge interval (default 60 s). */
  purgeIntervalMs: number;
  /** Most frames committed in one group (default 2,000). */
  maxBatch: number;
  /**
   * Most bytes queued, unsent, to one socket (default 16 MiB; at least 2 × `maxFrameBytes`), live frames held back
   * behind a push included. A socket above it that drains no further for `slowReaderTimeoutMs`, or that goes above
   * four times it, is dropped (no close frame: the client sees 1006); its frames stay stored for its next connect.
   * The push of stored frames pauses above half of it and goes on below a quarter; a resync push stops above a
   * quarter and comes back later.
   */
  maxBufferedBytes: number;
  /** How long a socket over `maxBufferedBytes` may go without draining further before it is dropped (default 10 s). */
  slowReaderTimeoutMs: number;
}

/** The defaults of {@link RelayLimits}. */
export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  hardMaxFrameBytes: 2 * DEFAULT_MAX_FRAME_BYTES,
  ttlMs: 72 * 3600_000,
  maxPerInbox: 10_000,
  maxPerSender: 10_000,
  maxPerPair: 1_000,
  maxBytesPerInbox: 256 * 1024 * 1024,
  maxBytesPerSender: 256 * 1024 * 1024,
  maxBytesPerPair: 32 * 1024 * 1024,
  messagesPerSecond: 2_000,
  messageBurst: 4_000,
  connectionsPerSecond: 20,
  connectionBurst: 100,
  maxConnections: 20_000,
  firstFrameTimeoutMs: FIRST_FRAME_TIMEOUT_MS,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
  pingIntervalMs: 30_000,
  purgeIntervalMs: 60_000,
  maxBatch: 2_000,
  maxBufferedBytes: 16 * 1024 * 1024,
  slowReaderTimeoutMs: 10_000,
});

// How often a socket's backlog is looked at while it is over its bound, or while a push waits for it to drain.
const BACKLOG_CHECK_MS = 100;

// A resync re-reads every local inbox: a few at a time, at most one run a second (requests meanwhile merge into
// the next run), retried with a backoff when the store fails, and never into a socket that is not reading
// (over a quarter of maxBufferedBytes queued).
const RESYNC_CONCURRENCY = 8;
const RESYNC_INTERVAL_MS = 1000;
const RESYNC_RETRY_MAX_MS = 30_000;

/** Counters of `/health` (AGT's names). */
export interface RelayStats {
  /** Frames delivered live. */
  messages_routed: number;
  /** Frames stored (every accepted frame, on this relay). */
  messages_stored: number;
  /** Frames pushed from the inbox: at connect, and again at a bus resync. */
  messages_delivered: number;
}

/** Options of {@link Relay}. */
export interface RelayOptions {
  /** Where frames wait until acked or expired. */
  inbox: InboxStore;
  /** Single-use proofs, shared with the registry so a connect proof is never also a registry credential (G3). */
  proofs: ProofGuard;
  /** Several processes: live frames and takeovers for DIDs connected elsewhere go over this bus. */
  bus?: RelayBus;
  /** Overrides of {@link DEFAULT_RELAY_LIMITS}. */
  limits?: Partial<RelayLimits>;
  /** AGT's `AGENTMESH_RELAY_TOKEN`: when set, `connect.token` must equal it. */
  token?: string;
  /**
   * Accept AGT SDK 4.0.0 clients, whose `connect` is `{type, from}` with no proof (default `false`; INSECURE,
   * for interop tests only): anyone can then connect as any DID and take its mailbox, as with AGT's
   * `AGENTMESH_RELAY_ALLOW_UNAUTHED_DID`. The `from` binding still holds (to the claimed DID).
   */
  legacyClients?: boolean;
  /** Log lines (no message content is ever logged). */
  log?: (line: string) => void;
}

/** An event between relay processes. */
export type BusEvent =
  /** A stored frame for `to`, for the process holding its socket. */
  | { t: 'deliver'; to: string; id: string; frame: string }
  /** `did` authenticated elsewhere at `at`: an older socket of it here is closed with 4006. */
  | { t: 'takeover'; did: string; at: number };

/** Carries {@link BusEvent}s between relay processes (`RedisRelayBus`). Delivery is best effort: frames are stored anyway. */
export interface RelayBus {
  /** Sends `e` to the other processes (never back to this one). */
  publish(e: BusEvent): void;
  /** Sets the handler of the other processes' events. */
  onEvent(handler: (e: BusEvent) => void): void;
  /**
   * Sets the handler called when events may have been missed (the bus was away and is back): the relay then
   * re-sends every socket here its stored frames, so a frame whose live copy was lost waits for no reconnect.
   */
  onResync?(handler: () => void): void;
}

/** How a socket's backlog goes: the fewest bytes seen waiting, and when. */
interface Drain {
  low: number;
  at: number;
}

interface Conn {
  readonly ws: WebSocket;
  /** While the connect proof is being checked (asynchronously with a shared guard), later frames wait here. */
  early: Array<{ data: Buffer; isBinary: boolean }> | null;
  admittedAt: number;
  readonly ip: string;
  did: string | null;
  extended: boolean;
  receipts: boolean;
  heartbeatAck: boolean;
  lastSeen: number;
  /** While the stored mail is being pushed, live frames wait here (then go unless already pushed). */
  held: InboxMessage[] | null;
  /** Bytes of the frames in `held` (they count against `maxBufferedBytes`). */
  heldBytes: number;
  /** While over `maxBufferedBytes`: the check timer, and how the backlog went since. */
  backlogTimer: NodeJS.Timeout | null;
  backlog: Drain;
  /** Whether the DID was proven (false only for a legacy AGT 4.0.0 connect, which carries no proof). */
  verified: boolean;
  /** The push of stored frames running now, if any (one at a time per socket). */
  pushing: Promise<void> | null;
  /** A resync came while that push ran (it may have read the inbox too early): resync this socket after it. */
  resyncAfterPush: boolean;
  /**
   * Where a resync push stopped at a backlog (the last inbox seq it sent): the next goes on from there, so a
   * reader that acks nothing still gets to the end of its inbox. 0 when none stopped.
   */
  resyncFrom: number;
  firstTimer: NodeJS.Timeout | null;
}

interface QueuedPut {
  readonly msg: InboxMessage;
  readonly from: Conn;
}

/** The relay. Attach sockets with {@link Relay.accept}; the HTTP upgrade is the server's. */
export class Relay {
  /** The limits in force: {@link DEFAULT_RELAY_LIMITS} with the options' overrides. */
  readonly limits: Readonly<RelayLimits>;
  /** The `/health` counters of this relay since it started (updated live). */
  readonly stats: RelayStats = { messages_routed: 0, messages_stored: 0, messages_delivered: 0 };
  readonly #inbox: InboxStore;
  readonly #proofs: ProofGuard;
  readonly #bus: RelayBus | null;
  readonly #token: Buffer | null;
  readonly #log: (line: string) => void;
  readonly #quota: InboxQuota;
  readonly #sockets = new Set<Conn>();
  /** Authenticated connection per DID (the latest; an older one was closed with 4006). */
  readonly #byDid = new Map<string, Conn>();
  readonly #connLimiter: RateLimiter;
  readonly #msgLimiter: RateLimiter;
  /** Every frame after connect (acks and heartbeats too), at twice the message rate: no free ack floods. */
  readonly #frameLimiter: RateLimiter;
  #puts: QueuedPut[] = [];
  #acks: InboxAck[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  readonly #timers: NodeJS.Timeout[] = [];
  #closed = false;
  // Bus resyncs (see #resync): one run at a time; a request during a run makes one more run after it.
  #resyncAll = false;
  // Acks queued and committed so far (counts), and who waits for a count to be committed (see #acksCommitted).
  #acksQueued = 0;
  #acksDone = 0;
  readonly #ackWaiters = new Set<{ mark: number; resolve: () => void }>();
  #resyncRun: Promise<void> | null = null;
  readonly #resyncSome = new Set<Conn>();
  #resyncFailures = false;
  #lastResyncAt = 0;
  #wake: (() => void) | null = null;
  readonly #legacy: boolean;

  /** A relay over `options.inbox`. */
  constructor(options: RelayOptions) {
    this.limits = Object.freeze({ ...DEFAULT_RELAY_LIMITS, ...options.limits });
    const l = this.limits;
    this.#quota = {
      maxPerInbox: l.maxPerInbox,
      maxPerSender: l.maxPerSender,
      maxPerPair: l.maxPerPair,
      maxBytesPerInbox: l.maxBytesPerInbox,
      maxBytesPerSender: l.maxBytesPerSender,
      maxBytesPerPair: l.maxBytesPerPair,
    };
    assertQuota(this.#quota);
    if (!Number.isSafeInteger(l.maxBufferedBytes) || l.maxBufferedBytes < 2 * l.maxFrameBytes) {
      throw new E2EError('INVALID_ARGUMENT', 'maxBufferedBytes must be an integer of at least 2 × maxFrameBytes');
    }
    if (!Number.isSafeInteger(l.slowReaderTimeoutMs) || l.slowReaderTimeoutMs < 1) {
      throw new E2EError('INVALID_ARGUMENT', 'slowReaderTimeoutMs must be a positive integer');
    }
    this.#inbox = options.inbox;
    this.#proofs = options.proofs;
    this.#bus = options.bus ?? null;
    this.#bus?.onEvent((e) => this.#onBus(e));
    this.#bus?.onResync?.(() => this.#resync());
    this.#token = options.token !== undefined ? Buffer.from(options.token, 'utf8') : null;
    this.#log = options.log ?? (() => undefined);
    this.#legacy = options.legacyClients === true;
    this.#connLimiter = new RateLimiter(this.limits.connectionBurst, this.limits.connectionsPerSecond);
    this.#msgLimiter = new RateLimiter(this.limits.messageBurst, this.limits.messagesPerSecond);
    this.#frameLimiter = new RateLimiter(2 * this.limits.messageBurst, 2 * this.limits.messagesPerSecond);
    this.#timers.push(setInterval(() => this.#sweep(), this.limits.pingIntervalMs).unref());
    this.#timers.push(setInterval(() => void this.#purge(), this.limits.purgeIntervalMs).unref());
  }

  /** Authenticated connections. */
  get connectedAgents(): number {
    return this.#byDid.size;
  }

  /** Of those, the DIDs that proved their key at connect (all of them unless `legacyClients` let some in without). */
  get verifiedAgents(): number {
    let n = 0;
    for (const c of this.#byDid.values()) if (c.verified) n++;
    return n;
  }

  /** Whether `did` has a live authenticated connection here. */
  isConnected(did: string): boolean {
    return this.#byDid.has(did);
  }

  /** Takes a new WebSocket from the HTTP upgrade of `req`. */
  accept(ws: WebSocket, req: IncomingMessage): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const conn: Conn = {
      ws,
      ip,
      early: null,
      admittedAt: 0,
      did: null,
      extended: false,
      receipts: false,
      heartbeatAck: false,
      lastSeen: Date.now(),
      held: null,
      heldBytes: 0,
      backlogTimer: null,
      backlog: { low: 0, at: 0 },
      verified: false,
      pushing: null,
      resyncAfterPush: false,
      resyncFrom: 0,
      firstTimer: null,
    };
    if (this.#closed || this.#sockets.size >= this.limits.maxConnections || !this.#connLimiter.take(ip)) {
      this.#send(conn, errorFrame('Too many connections', false));
      ws.close(CloseCode.RATE_LIMITED, 'rate_limited');
      return;
    }
    this.#sockets.add(conn);
    // AGT: no first frame within 10 s → close 1000, no error frame.
    conn.firstTimer = setTimeout(() => ws.close(CloseCode.NORMAL), this.limits.firstFrameTimeoutMs);
    ws.on('pong', () => {
      conn.lastSeen = Date.now();
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onFrame(conn, data, isBinary));
    ws.on('close', () => this.#onClose(conn));
    ws.on('error', () => undefined);
  }

  #onClose(conn: Conn): void {
    if (conn.firstTimer) clearTimeout(conn.firstTimer);
    this.#stopBacklogWatch(conn);
    this.#sockets.delete(conn);
    if (conn.did !== null && this.#byDid.get(conn.did) === conn) this.#byDid.delete(conn.did);
  }

  /** Sends `frame` to `conn`; `false` when the socket is not open (nothing sent). */
  #send(conn: Conn, frame: object | string): boolean {
    if (conn.ws.readyState !== 1) return false;
    conn.ws.send(typeof frame === 'string' ? frame : encodeFrame(frame));
    this.#checkBacklog(conn);
    return true;
  }

  /**
   * A group of frames is sent in one go, so a reading socket may be over `maxBufferedBytes` for a moment: it is
   * watched, and dropped only if it drains no further for `slowReaderTimeoutMs` (or goes over four times the bound).
   */
  #checkBacklog(conn: Conn): void {
    const waiting = conn.ws.bufferedAmount + conn.heldBytes;
    if (waiting <= this.limits.maxBufferedBytes || conn.backlogTimer !== null) return;
    if (waiting > 4 * this.limits.maxBufferedBytes) return this.#dropSlow(conn);
    conn.backlog = { low: waiting, at: Date.now() };
    conn.backlogTimer = setInterval(() => {
      const left = conn.ws.bufferedAmount + conn.heldBytes;
      if (conn.ws.readyState !== 1 || left <= this.limits.maxBufferedBytes) return this.#stopBacklogWatch(conn);
      if (left > 4 * this.limits.maxBufferedBytes || this.#stalled(conn.backlog, left)) this.#dropSlow(conn);
    }, BACKLOG_CHECK_MS);
    conn.backlogTimer.unref();
  }

  #stopBacklogWatch(conn: Conn): void {
    if (conn.backlogTimer !== null) clearInterval(conn.backlogTimer);
    conn.backlogTimer = null;
  }

  /** Drops a socket that stopped reading; a close frame would wait behind its backlog. Its frames stay stored. */
  #dropSlow(conn: Conn): void {
    this.#log(`relay: ${conn.did ?? 'a socket'} stopped reading (${conn.ws.bufferedAmount + conn.heldBytes} bytes waiting): dropped`);
    this.#stopBacklogWatch(conn);
    conn.held = [];
    conn.heldBytes = 0;
    conn.ws.terminate();
  }

  /**
   * Resolves when `conn` has drained to a quarter of `maxBufferedBytes`, is closed, or the relay closes; drops it
   * if it drains no further for `slowReaderTimeoutMs` (a reader that never reads holds nothing for long).
   */
  async #drained(conn: Conn): Promise<void> {
    const drain: Drain = { low: conn.ws.bufferedAmount, at: Date.now() };
    while (conn.ws.readyState === 1 && !this.#closed && conn.ws.bufferedAmount > this.limits.maxBufferedBytes / 4) {
      await new Promise((r) => setTimeout(r, BACKLOG_CHECK_MS).unref());
      if (this.#stalled(drain, conn.ws.bufferedAmount)) return this.#dropSlow(conn);
    }
  }

  /** Records `left` bytes still waiting; `true` once they have gone no lower for `slowReaderTimeoutMs`. */
  #stalled(drain: Drain, left: number): boolean {
    const now = Date.now();
    if (left < drain.low) {
      drain.low = left;
      drain.at = now;
      return false;
    }
    return now - drain.at >= this.limits.slowReaderTimeoutMs;
  }

  #error(conn: Conn, detail: string, code: RelayErrorCode, id?: string): void {
    this.#send(conn, errorFrame(detail, conn.extended, code, id));
  }

  #onFrame(conn: Conn, data: Buffer, isBinary: boolean): void {
    conn.lastSeen = Date.now();
    if (conn.early !== null) {
      // AGT's MeshClient sends fetch_pending right behind connect: keep a few frames until the proof is checked.
      if (conn.early.length < 32) conn.early.push({ data, isBinary });
      return;
    }
    if (conn.did === null) {
      conn.early = [];
      void this.#onConnect(conn, isBinary ? '' : data.toString('utf8')).finally(() => {
        const early = conn.early ?? [];
        conn.early = null;
        if (conn.did !== null) for (const f of early) this.#onFrame(conn, f.data, f.isBinary);
      });
      return;
    }
    if (!this.#frameLimiter.take(conn.did)) return this.#error(conn, 'Rate limit exceeded', RelayErrorCode.RATE_LIMITED);
    if (isBinary) return this.#error(conn, 'Binary frames are not accepted', RelayErrorCode.BINARY);
    if (data.length > this.limits.maxFrameBytes) {
      return this.#error(conn, `Frame too large (max ${this.limits.maxFrameBytes} bytes)`, RelayErrorCode.TOO_BIG);
    }
    let frame;
    const text = data.toString('utf8');
    try {
      frame = decodeClientFrame(text);
    } catch (e) {
      // AGT drops the socket with 1000 here (which stops MeshClient's reconnects, G12); we answer and stay open.
      const reason = isE2EError(e) && e.reason === RelayErrorCode.UNKNOWN_TYPE ? RelayErrorCode.UNKNOWN_TYPE : RelayErrorCode.MALFORMED;
      return this.#error(conn, isE2EError(e) ? e.message : 'Malformed frame', reason);
    }
    switch (frame.type) {
      case 'ack':
        this.#acks.push({ recipient: conn.did, id: frame.id });
        this.#acksQueued++;
        this.#schedule();
        return;
      case 'heartbeat':
        if (conn.heartbeatAck) this.#send(conn, { type: 'heartbeat_ack', ts: new Date().toISOString() });
        return;
      case 'disconnect':
        conn.ws.close(CloseCode.NORMAL);
        return;
      case 'fetch_pending':
        // AGT's MeshClient sends it on every connect and AGT's relay rejects it; pushing again would duplicate.
        return this.#error(conn, 'Unknown frame type: fetch_pending', RelayErrorCode.UNKNOWN_TYPE);
      default:
        return this.#route(conn, frame as RoutedFrame);
    }
  }

  async #onConnect(conn: Conn, text: string): Promise<void> {
    if (conn.firstTimer) clearTimeout(conn.firstTimer);
    conn.firstTimer = null;
    const fail = (detail: string, close: number, code: RelayErrorCode): void => {
      this.#send(conn, errorFrame(detail, conn.extended, code));
      conn.ws.close(close);
    };
    if (this.#legacy && this.#tryLegacyConnect(conn, text)) return;
    let f;
    try {
      f = decodeConnectFrame(text);
    } catch (e) {
      const close = isE2EError(e) && e.reason ? Number(e.reason) : CloseCode.FIRST_FRAME_NOT_CONNECT;
      const code =
        close === CloseCode.FIRST_FRAME_NOT_CONNECT
          ? RelayErrorCode.FIRST_FRAME
          : close === CloseCode.MISSING_FROM
            ? RelayErrorCode.MISSING_FROM
            : close === CloseCode.AUTH_FAILED
              ? RelayErrorCode.AUTH_FAILED
              : RelayErrorCode.PROOF_FAILED;
      return fail(isE2EError(e) ? e.message : "First frame must be 'connect'", close, code);
    }
    const features = new Set(f.features ?? []);
    conn.extended = features.has(Feature.WELCOME);
    const proof = verifyConnectProof(f);
    if (!proof.ok) return fail(`DID proof failed: ${proof.detail}`, CloseCode.PROOF_FAILED, RelayErrorCode.PROOF_FAILED);
    // The past window is the proof's; the future one is narrower, so no proof holds a cache entry much past the window.
    if (proof.timestampMs - Date.now() > MAX_FUTURE_SKEW_MS) {
      return fail('DID proof failed: timestamp too far in the future', CloseCode.PROOF_FAILED, RelayErrorCode.PROOF_FAILED);
    }
    if (this.#token !== null) {
      const given = Buffer.from(f.token ?? '', 'utf8');
      if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
        return fail('Authentication failed', CloseCode.AUTH_FAILED, RelayErrorCode.AUTH_FAILED);
      }
    }
    // Single use (G2). The timestamp-only proof shares its key with the registry's AGT header (G3).
    const key = f.nonce === undefined ? `w|${f.from}|${f.timestamp}` : `c|${f.from}|${f.timestamp}|${f.nonce}`;
    let use: 'fresh' | 'replayed' | 'full';
    try {
      use = await this.#proofs.use(key, proof.timestampMs);
    } catch {
      use = 'full';
    }
    if (conn.ws.readyState !== 1) return;
    if (use === 'replayed')
      return fail('DID proof failed: connect proof already used', CloseCode.PROOF_FAILED, RelayErrorCode.PROOF_REPLAYED);
    if (use === 'full') return fail('Too many connections', CloseCode.RATE_LIMITED, RelayErrorCode.TOO_MANY_CONNECTIONS);
    if (!proof.strong) this.#log(`relay: ${f.from} connected with AGT's timestamp-only proof (weaker: not bound to a nonce)`);
    this.#admit(conn, f.from, features, true);
  }

  /** AGT 4.0.0's proof-less `{type:'connect', from}`, in legacy mode only. */
  #tryLegacyConnect(conn: Conn, text: string): boolean {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (typeof o !== 'object' || o === null || o.type !== 'connect' || !isFrameDid(o.from)) return false;
    if (o.public_key !== undefined || o.signature !== undefined || o.timestamp !== undefined) return false;
    this.#log(`relay: ${o.from} connected WITHOUT a DID proof (legacy AGT 4.0.0 mode)`);
    this.#admit(conn, o.from, new Set(), false);
    return true;
  }

  /** Registers an authenticated connection: 4006 for an older one of the same DID, then the stored mail. */
  #admit(conn: Conn, did: string, features: Set<string>, verified: boolean): void {
    conn.verified = verified;
    const old = this.#byDid.get(did);
    if (old) {
      this.#byDid.delete(did);
      old.ws.close(CloseCode.SESSION_REPLACED, SESSION_REPLACED_REASON);
    }
    conn.did = did;
    conn.admittedAt = Date.now();
    this.#bus?.publish({ t: 'takeover', did, at: conn.admittedAt });
    conn.receipts = features.has(Feature.RECEIPTS);
    conn.heartbeatAck = features.has(Feature.HEARTBEAT_ACK);
    this.#byDid.set(did, conn);
    void this.#pushPending(conn, did, true);
  }

  /**
   * Sends `did`'s stored frames to `conn`: at admission (after the welcome) or at a resync. Live frames that
   * arrive meanwhile are held, then sent unless the push already did.
   */
  #pushPending(conn: Conn, did: string, welcome: boolean): Promise<void> {
    const run = this.#push(conn, did, welcome).finally(() => {
      if (conn.pushing === run) conn.pushing = null;
      if (conn.resyncAfterPush) {
        conn.resyncAfterPush = false;
        if (conn.ws.readyState === 1 && this.#byDid.get(did) === conn) this.#resyncSocket(conn, false);
      }
    });
    conn.pushing = run;
    return run;
  }

  async #push(conn: Conn, did: string, welcome: boolean): Promise<void> {
    // A resync push stops at a backlog: more copies for a reader that does not read only fill memory.
    const backlogged = (): boolean => !welcome && conn.ws.bufferedAmount > this.limits.maxBufferedBytes / 4;
    if (backlogged()) return this.#resyncSocket(conn, false); // busy: this socket's resync comes back later
    // Seqs only grow, so frames lost since a resync stopped are all after the point it stopped at.
    let after = welcome ? 0 : conn.resyncFrom;
    conn.held = [];
    conn.heldBytes = 0;
    const pushed = new Set<string>();
    try {
      if (welcome && conn.extended) {
        const granted = [Feature.WELCOME, conn.receipts ? Feature.RECEIPTS : null, conn.heartbeatAck ? Feature.HEARTBEAT_ACK : null].filter(
          (x): x is Feature => x !== null,
        );
        const welcome: ConnectedFrame = {
          type: 'connected',
          did,
          features: granted,
          pending: await this.#inbox.count(did),
          limits: { max_frame_bytes: this.limits.maxFrameBytes, idle_timeout_ms: this.limits.idleTimeoutMs },
        };
        this.#send(conn, welcome);
      }
      for (;;) {
        const page = await this.#inbox.pending(did, Date.now(), 500, after);
        for (const m of page) {
          // At connect, a slow reader is waited for, never buried under its whole inbox (nor dropped for it).
          if (welcome && conn.ws.bufferedAmount > this.limits.maxBufferedBytes / 2) await this.#drained(conn);
          if (conn.ws.readyState !== 1) return;
          if (backlogged()) {
            conn.resyncFrom = after;
            return this.#resyncSocket(conn, false);
          }
          if (!this.#send(conn, m.frame)) return;
          pushed.add(m.id);
          after = m.seq;
          this.stats.messages_delivered++;
        }
        if (page.length < 500) break;
      }
      if (!welcome) conn.resyncFrom = 0;
    } catch {
      // A store failure stops the push; the mail stays. At connect the client is told (as AGT: "reconnect will
      // retry"); a resync push is retried by the relay itself.
      if (welcome) this.#error(conn, 'Pending messages could not be read; reconnect to retry', RelayErrorCode.STORE_FAILED);
      else this.#resyncSocket(conn, true);
    } finally {
      const held = conn.held ?? [];
      conn.held = null;
      conn.heldBytes = 0;
      for (const m of held) {
        if (!pushed.has(m.id) && this.#send(conn, m.frame)) this.stats.messages_routed++;
      }
    }
  }

  #route(conn: Conn, frame: RoutedFrame): void {
    const did = conn.did as string;
    // G1: the sender is the authenticated DID. AGT drops a mismatch silently; we say why.
    if (frame.from !== undefined && frame.from !== null && frame.from !== did) {
      return this.#error(conn, "'from' does not match the authenticated DID", RelayErrorCode.FROM_MISMATCH, frame.id);
    }
    if (!this.#msgLimiter.take(did)) return this.#error(conn, 'Rate limit exceeded', RelayErrorCode.RATE_LIMITED, frame.id);
    const now = Date.now();
    this.#puts.push({
      msg: {
        recipient: frame.to,
        id: frame.id,
        sender: did,
        frame: stampFrom(frame, did),
        storedAt: now,
        expiresAt: now + this.limits.ttlMs,
      },
      from: conn,
    });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  /** Commits queued frames and acks (one group per turn), then delivers and answers. */
  async #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      while (this.#puts.length > 0 || this.#acks.length > 0) {
        await this.#commitGroup();
      }
    })();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = null;
    }
  }

  /** Commits one group: the acks queued so far and up to `maxBatch` puts. */
  async #commitGroup(): Promise<void> {
    const puts = this.#puts.length <= this.limits.maxBatch ? this.#puts : this.#puts.slice(0, this.limits.maxBatch);
    this.#puts = puts === this.#puts ? [] : this.#puts.slice(this.limits.maxBatch);
    const acks = this.#acks;
    this.#acks = [];
    const acksUpTo = this.#acksQueued; // every ack queued so far is in this group
    try {
      await this.#commitPutsAndAcks(puts, acks);
    } finally {
      this.#acksDone = acksUpTo;
      for (const w of [...this.#ackWaiters]) {
        if (w.mark <= acksUpTo) {
          this.#ackWaiters.delete(w);
          w.resolve();
        }
      }
    }
  }

  async #commitPutsAndAcks(puts: QueuedPut[], acks: InboxAck[]): Promise<void> {
    let outcomes: PutOutcome[];
    let delivered = false;
    try {
      const msgs = puts.map((p) => p.msg);
      outcomes = this.#inbox.commitDecided
        ? await this.#inbox.commitDecided(msgs, acks, this.#quota, (o) => {
            // Live delivery overlaps the group's fsync; receipts wait for it (below).
            delivered = true;
            for (let i = 0; i < puts.length; i++) if (o[i] === 'stored') this.#deliver((puts[i] as QueuedPut).msg);
          })
        : await this.#inbox.commit(msgs, acks, this.#quota);
    } catch {
      this.#log('relay: inbox commit failed');
      for (const p of puts) this.#error(p.from, 'Message could not be stored', RelayErrorCode.STORE_FAILED, p.msg.id);
      return;
    }
    for (let i = 0; i < puts.length; i++) this.#settle(puts[i] as QueuedPut, outcomes[i] as PutOutcome, !delivered);
  }

  /**
   * Resolves once every ack received so far has been committed (or its group failed). Unlike {@link drain} it
   * does not wait for traffic that keeps arriving: at most the group being committed and the next.
   */
  #acksCommitted(): Promise<void> {
    const mark = this.#acksQueued;
    if (this.#acksDone >= mark) return Promise.resolve();
    return new Promise((resolve) => this.#ackWaiters.add({ mark, resolve }));
  }

  /** Sends a stored frame to its recipient: here, or through the bus to the process holding its socket. */
  #deliver(msg: InboxMessage): void {
    if (!this.#deliverLocal(msg)) this.#bus?.publish({ t: 'deliver', to: msg.recipient, id: msg.id, frame: msg.frame });
  }

  #settle(p: QueuedPut, outcome: PutOutcome, deliver: boolean): void {
    const { msg, from } = p;
    switch (outcome) {
      case 'stored': {
        this.stats.messages_stored++;
        if (deliver) this.#deliver(msg);
        if (from.receipts) this.#send(from, receipt(msg, false));
        return;
      }
      case 'duplicate':
        if (from.receipts) this.#send(from, receipt(msg, true));
        return;
      case 'id_conflict':
        return this.#error(from, 'Message id already in use for this recipient', RelayErrorCode.ID_CONFLICT, msg.id);
      case 'inbox_full':
        return this.#error(from, 'Recipient inbox is full', RelayErrorCode.INBOX_FULL, msg.id);
      case 'sender_quota':
        return this.#error(from, 'Too many unacknowledged messages from this sender', RelayErrorCode.SENDER_QUOTA, msg.id);
      case 'inbox_bytes':
        return this.#error(from, 'Recipient inbox is full (bytes)', RelayErrorCode.INBOX_FULL, msg.id);
      case 'store_full':
        return this.#error(from, 'Relay storage is full', RelayErrorCode.INBOX_FULL, msg.id);
      case 'sender_bytes':
        return this.#error(from, 'Too many unacknowledged bytes from this sender', RelayErrorCode.SENDER_QUOTA, msg.id);
      case 'pair_quota':
        return this.#error(
          from,
          'Too many unacknowledged messages from this sender to this recipient',
          RelayErrorCode.SENDER_QUOTA,
          msg.id,
        );
    }
  }

  /** Delivers a stored frame to a socket of its recipient here; `false` when there is none. */
  #deliverLocal(msg: { recipient: string; id: string; frame: string }): boolean {
    const to = this.#byDid.get(msg.recipient);
    if (!to || to.ws.readyState !== 1) return false;
    if (to.held) {
      to.held.push(msg as InboxMessage);
      to.heldBytes += msg.frame.length;
      // The push may be waiting for this reader to drain: what piles up behind it counts against the same bound.
      this.#checkBacklog(to);
    } else if (this.#send(to, msg.frame)) this.stats.messages_routed++;
    return true;
  }

  /** The bus may have lost live frames: every admitted socket here gets its stored frames again (at least once). */
  #resync(): void {
    if (this.#closed) return;
    this.#resyncAll = true;
    this.#startResyncs();
  }

  /**
   * Resyncs one socket in the next run: its resync push could not read the store (`failed`: the run waits a
   * backoff first), or a push was running on it when its resync came.
   */
  #resyncSocket(conn: Conn, failed: boolean): void {
    if (this.#closed) return;
    this.#resyncSome.add(conn);
    if (failed) this.#resyncFailures = true;
    this.#startResyncs();
  }

  #startResyncs(): void {
    if (this.#resyncRun === null) this.#resyncRun = this.#runResyncs().finally(() => (this.#resyncRun = null));
  }

  async #runResyncs(): Promise<void> {
    let retryMs = RESYNC_INTERVAL_MS;
    await new Promise((r) => setImmediate(r)); // requests made in the same turn merge into this first run
    while ((this.#resyncAll || this.#resyncSome.size > 0) && !this.#closed) {
      const wait = this.#lastResyncAt + RESYNC_INTERVAL_MS - Date.now();
      if (wait > 0) await this.#pause(wait); // at most one run a second; requests meanwhile merge into the next
      if (this.#closed) return;
      this.#lastResyncAt = Date.now();
      const all = this.#resyncAll;
      const some = new Set(this.#resyncSome);
      this.#resyncAll = false;
      this.#resyncSome.clear();
      await this.#acksCommitted(); // an acknowledged frame is not sent again
      const conns = [...this.#byDid].filter(([, c]) => all || some.has(c));
      if (all) this.#log(`relay: bus resync, re-sending stored frames to ${conns.length} sockets`);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < conns.length && !this.#closed) {
          const [did, conn] = conns[next++] as [string, Conn];
          if (conn.ws.readyState !== 1 || this.#byDid.get(did) !== conn) continue;
          // A push running now may have read the inbox before the gap ended: this socket comes again after it.
          // Not waited for here: a connect push waits for its reader, and a reader that never reads must not hold
          // a worker (eight of them would stall every resync).
          if (conn.pushing) conn.resyncAfterPush = true;
          else await this.#pushPending(conn, did, false);
        }
      };
      await Promise.all(Array.from({ length: Math.min(RESYNC_CONCURRENCY, conns.length) }, worker));
      if (this.#resyncFailures) {
        this.#resyncFailures = false;
        await this.#pause(retryMs);
        retryMs = Math.min(2 * retryMs, RESYNC_RETRY_MAX_MS);
      } else retryMs = RESYNC_INTERVAL_MS;
    }
  }

  /** Waits `ms`, or less if the relay closes. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      timer.unref?.();
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }

  #onBus(e: BusEvent): void {
    if (e.t === 'deliver') {
      this.#deliverLocal({ recipient: e.to, id: e.id, frame: e.frame });
      return;
    }
    const here = this.#byDid.get(e.did);
    if (here && here.admittedAt <= e.at) {
      this.#byDid.delete(e.did);
      here.ws.close(CloseCode.SESSION_REPLACED, SESSION_REPLACED_REASON);
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of this.#sockets) {
      if (c.did === null) continue;
      if (now - c.lastSeen > this.limits.idleTimeoutMs) c.ws.close(CloseCode.IDLE);
      else if (c.ws.readyState === 1) c.ws.ping();
    }
  }

  async #purge(): Promise<void> {
    try {
      const n = await this.#inbox.purgeExpired(Date.now());
      if (n > 0) this.#log(`relay: purged ${n} expired messages`);
    } catch {
      this.#log('relay: purge failed');
    }
  }

  /** Purges expired frames now (the timer does it every `purgeIntervalMs`). */
  purgeNow(): Promise<void> {
    return this.#purge();
  }

  /** Waits until every queued frame and ack is committed. */
  async drain(): Promise<void> {
    while (this.#puts.length > 0 || this.#acks.length > 0 || this.#flushing || this.#scheduled) {
      await (this.#flushing ?? new Promise((r) => setImmediate(r)));
    }
  }

  /** Stops the timers, commits what is queued and closes every socket with 1001. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#wake?.();
    await this.drain();
    for (const c of this.#sockets) c.ws.close(CloseCode.GOING_AWAY, 'server_shutdown');
  }
}

/**
 * The frame as forwarded: always re-serialized from the parsed, validated object with `from` set to the sender,
 * never the client's text. A verbatim text could carry a second `from` (or `to`, `id`) under an escaped key
 * (`"fr\\u006fm"`) that a first-key-wins parser would read as the sender.
 */
function stampFrom(frame: RoutedFrame, did: string): string {
  frame.from = did;
  return encodeFrame(frame);
}

/** An `accepted` receipt's text (ids are short; a template avoids building an object per frame). */
function receipt(msg: InboxMessage, duplicate: boolean): string {
  const f: AcceptedFrame = { type: 'accepted', id: msg.id, to: msg.recipient, duplicate };
  return `{"type":"accepted","id":${JSON.stringify(f.id)},"to":${JSON.stringify(f.to)},"duplicate":${f.duplicate}}`;
}
