/**
 * The connection loop of a `MeshAgent`: one relay WebSocket at a time, the DID proof, heartbeats (G8),
 * reconnection with exponential backoff and jitter, an outbox that survives reconnects, and receipts.
 *
 * A routed frame stays in the outbox until the relay has taken it: with our server's `accepted` receipt
 * (asked for with the `receipts` feature) once it is persisted, and re-sent after a reconnect under the same
 * id (the relay deduplicates per (recipient, id), so a re-send is never a second message); with AGT's relay,
 * which sends no receipt, once the socket has written it.
 */
import { E2EError } from '../errors';
import {
  CloseCode,
  ConnectedFrame,
  Feature,
  FrameSigner,
  HEARTBEAT_INTERVAL_MS,
  RoutedFrame,
  ServerFrame,
  buildConnectFrame,
  decodeServerFrame,
  encodeFrame,
} from './frames';
import { MeshErrorReason, meshError } from './errors';
import { MeshSocket, SocketFactory } from './socket';

/** Connection states. */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'replaced' | 'closed';

/** Backoff of reconnection attempts (ms). */
export interface BackoffOptions {
  /** First delay (default 250). */
  readonly baseMs?: number;
  /** Longest delay (default 30 000). */
  readonly maxMs?: number;
  /** First delay after the relay refused the proof (default 5 000; it doubles up to 5 min). */
  readonly authBaseMs?: number;
}

/** Options of a {@link RelayConnection}. */
export interface RelayConnectionOptions {
  readonly url: string;
  readonly signer: FrameSigner;
  /** AGT's relay: timestamp-only proof, no features asked. */
  readonly agt: boolean;
  readonly socketFactory: SocketFactory;
  readonly heartbeatMs?: number;
  readonly backoff?: BackoffOptions;
  /** Every frame the relay sends except our control frames. */
  readonly onFrame: (frame: ServerFrame & { type: 'message' | 'knock' | 'knock_accept' | 'knock_reject' }) => void;
  readonly onState: (state: ConnectionState, detail?: { code?: number; error?: E2EError }) => void;
  readonly onError: (error: E2EError) => void;
}

interface Pending {
  readonly id: string;
  readonly text: string;
  resolve(): void;
  reject(e: E2EError): void;
}

const AUTH_CODES: ReadonlySet<number> = new Set([
  CloseCode.FIRST_FRAME_NOT_CONNECT,
  CloseCode.MISSING_FROM,
  CloseCode.AUTH_FAILED,
  CloseCode.PROOF_FAILED,
]);
/** Without a welcome frame (AGT), a socket still open this long after the proof counts as accepted. */
const AGT_GRACE_MS = 300;
/** AGT's relay (uvicorn) closes the socket of a frame above 16 MiB. */
const AGT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** How long to wait for our server's `connected` frame. */
const WELCOME_TIMEOUT_MS = 10_000;

/** One agent's link to the relay. */
export class RelayConnection {
  readonly #o: RelayConnectionOptions;
  readonly #heartbeatMs: number;
  readonly #outbox = new Map<string, Pending>();
  #socket: MeshSocket | null = null;
  #state: ConnectionState = 'disconnected';
  #attempt = 0;
  #authFailures = 0;
  #receipts = false;
  #heartbeatAck = false;
  #lastHeard = 0;
  /** The relay's frame limit: from its welcome, else AGT's 16 MiB. */
  #maxFrameBytes = AGT_MAX_FRAME_BYTES;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #stopped = false;
  #everConnected = false;
  #first: { resolve(): void; reject(e: E2EError): void } | null = null;
  /** Resolves on the first accepted connection; rejects if the relay refuses the proof before that. */
  readonly ready: Promise<void>;

  /** A connection (call {@link start}). */
  constructor(options: RelayConnectionOptions) {
    this.#o = options;
    this.#heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#first = { resolve, reject };
    });
    this.ready.catch(() => undefined);
  }

  /** The current state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Frames waiting for the relay to take them. */
  get queued(): number {
    return this.#outbox.size;
  }

  /** Starts connecting (and reconnecting) until {@link close}. */
  start(): void {
    void this.#connect();
  }

  /** Connects again after a takeover (4006) or while waiting for a backoff. */
  reconnectNow(): void {
    if (this.#stopped) return;
    if (this.#state === 'connected' || this.#state === 'connecting') return;
    this.#clearTimers();
    this.#attempt = 0;
    void this.#connect();
  }

  /** Queues a routed frame; resolves once the relay has taken it (see the module comment). */
  send(frame: RoutedFrame): Promise<void> {
    if (this.#stopped) return Promise.reject(meshError(MeshErrorReason.AGENT_CLOSED, 'the agent is closed'));
    const text = encodeFrame(frame);
    if (byteLength(text) > this.#maxFrameBytes) return Promise.reject(tooLarge(this.#maxFrameBytes));
    return new Promise<void>((resolve, reject) => {
      const p: Pending = { id: frame.id, text, resolve, reject };
      this.#outbox.set(frame.id, p);
      if (this.#state === 'connected') this.#write(p);
    });
  }

  /** Acknowledges a frame; dropped when offline (the relay then delivers it again, and it is acked as a duplicate). */
  ack(id: string): void {
    if (this.#state !== 'connected' || this.#socket === null) return;
    try {
      this.#socket.send(encodeFrame({ v: 1, type: 'ack', id }));
    } catch {
      // the close handler reconnects
    }
  }

  /** Sends `disconnect`, closes the socket and stops; queued frames are rejected. */
  close(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clearTimers();
    const s = this.#socket;
    this.#socket = null;
    if (s) {
      try {
        if (this.#state === 'connected') s.send(encodeFrame({ v: 1, type: 'disconnect', from: this.#o.signer.did }));
      } catch {
        // closing anyway
      }
      s.close(1000, 'client closing');
    }
    this.#failAll(meshError(MeshErrorReason.AGENT_CLOSED, 'the agent was closed before the relay took the message'));
    this.#first?.reject(meshError(MeshErrorReason.AGENT_CLOSED, 'the agent was closed before it connected'));
    this.#first = null;
    this.#setState('closed');
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    this.#setState('connecting');
    let socket: MeshSocket | null = null;
    let settled = false;
    let grace: ReturnType<typeof setTimeout> | null = null;
    const established = (welcome?: ConnectedFrame): void => {
      if (settled || socket !== this.#socket) return;
      settled = true;
      if (grace) this.#clear(grace);
      const features = welcome?.features ?? [];
      this.#receipts = features.includes(Feature.RECEIPTS);
      this.#heartbeatAck = features.includes(Feature.HEARTBEAT_ACK);
      const max = welcome?.limits?.max_frame_bytes;
      if (typeof max === 'number' && max > 0) this.#maxFrameBytes = max;
      // Frames queued before we knew the limit: refuse those the relay would refuse (it closes on them).
      for (const p of [...this.#outbox.values()]) {
        if (byteLength(p.text) > this.#maxFrameBytes) {
          this.#outbox.delete(p.id);
          p.reject(tooLarge(this.#maxFrameBytes));
        }
      }
      this.#attempt = 0;
      this.#authFailures = 0;
      this.#everConnected = true;
      this.#setState('connected');
      this.#startHeartbeat();
      for (const p of this.#outbox.values()) this.#write(p);
      this.#first?.resolve();
      this.#first = null;
    };
    try {
      socket = await this.#o.socketFactory(this.#o.url, {
        open: () => {
          if (socket !== this.#socket || socket === null) return;
          const features = this.#o.agt ? [] : [Feature.WELCOME, Feature.RECEIPTS, Feature.HEARTBEAT_ACK];
          socket.send(encodeFrame(buildConnectFrame(this.#o.signer, { nonce: this.#o.agt ? false : undefined, features })));
          this.#lastHeard = Date.now();
          // AGT's relay says nothing on success; ours answers with `connected` when asked.
          grace = this.#after(this.#o.agt ? AGT_GRACE_MS : WELCOME_TIMEOUT_MS, () => {
            if (this.#o.agt) established();
            else socket?.close(1000, 'no welcome');
          });
        },
        message: (text) => {
          if (socket !== this.#socket) return;
          this.#lastHeard = Date.now();
          this.#onText(text, established);
        },
        close: (code, reason) => {
          if (socket !== this.#socket) return; // a socket we already gave up on
          if (grace) this.#clear(grace);
          this.#onClose(code, reason, settled);
        },
      });
      if (this.#stopped) {
        socket.close(1000);
        return;
      }
      this.#socket = socket;
    } catch (e) {
      if (e instanceof E2EError && e.reason === 'no_websocket') {
        // Nothing to retry: this runtime cannot open a WebSocket at all.
        this.#o.onError(e);
        this.#first?.reject(e);
        this.#first = null;
        this.#setState('closed');
        return;
      }
      this.#onClose(1006, e instanceof Error ? e.message : 'connect failed', false);
    }
  }

  #onText(text: string, established: (w?: ConnectedFrame) => void): void {
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(text);
    } catch {
      return; // unknown or malformed: ignored, for forward compatibility
    }
    switch (frame.type) {
      case 'connected':
        established(frame);
        return;
      case 'accepted': {
        const p = this.#outbox.get(frame.id);
        if (p) {
          this.#outbox.delete(frame.id);
          p.resolve();
        }
        return;
      }
      case 'heartbeat_ack':
        return;
      case 'error': {
        const err = meshError(MeshErrorReason.RELAY_ERROR, `relay error: ${frame.detail.slice(0, 200)}`);
        const p = frame.id !== undefined ? this.#outbox.get(frame.id) : undefined;
        if (p) {
          this.#outbox.delete(p.id);
          p.reject(err);
        } else if (!/Unknown frame type: fetch_pending/.test(frame.detail)) {
          this.#o.onError(err);
        }
        return;
      }
      default:
        this.#o.onFrame(frame);
    }
  }

  #onClose(code: number, reason: string, wasEstablished: boolean): void {
    this.#socket = null;
    this.#stopHeartbeat();
    if (this.#stopped) return;
    if (code === CloseCode.SESSION_REPLACED) {
      // Someone else holds this DID's mailbox now: an event, not a reconnect loop.
      const error = meshError(MeshErrorReason.SESSION_REPLACED, 'another connection took over this DID (close 4006)');
      this.#setState('replaced', { code, error });
      this.#first?.reject(error);
      this.#first = null;
      return;
    }
    if (code === CloseCode.TOO_BIG) {
      // The relay closed on a frame it found too big: drop the largest pending one, or it would loop forever.
      let big: Pending | undefined;
      for (const p of this.#outbox.values()) if (!big || p.text.length > big.text.length) big = p;
      if (big) {
        this.#outbox.delete(big.id);
        big.reject(tooLarge(this.#maxFrameBytes));
      }
    }
    let delay: number;
    if (AUTH_CODES.has(code)) {
      this.#authFailures++;
      const error = meshError(
        MeshErrorReason.RELAY_AUTH_FAILED,
        `the relay refused this agent's proof (close ${code}${reason ? `: ${reason.slice(0, 120)}` : ''})`,
      );
      this.#o.onError(error);
      if (!this.#everConnected) {
        // A first connect that is refused fails loudly instead of looping.
        this.#first?.reject(error);
        this.#first = null;
      }
      const base = this.#o.backoff?.authBaseMs ?? 5_000;
      delay = Math.min(300_000, base * 2 ** Math.min(this.#authFailures - 1, 10));
    } else {
      const base = this.#o.backoff?.baseMs ?? 250;
      const max = this.#o.backoff?.maxMs ?? 30_000;
      delay = Math.min(max, base * 2 ** Math.min(this.#attempt, 20));
      this.#attempt++;
    }
    this.#setState('disconnected', { code });
    void wasEstablished;
    this.#after(delay * (0.8 + 0.4 * Math.random()), () => void this.#connect());
  }

  #write(p: Pending): void {
    const s = this.#socket;
    if (s === null) return;
    try {
      s.send(p.text);
    } catch {
      return; // stays queued; the close handler reconnects and re-sends
    }
    if (!this.#receipts) {
      // AGT's relay sends no receipt: the frame is taken once written.
      this.#outbox.delete(p.id);
      p.resolve();
    }
  }

  #startHeartbeat(): void {
    this.#stopHeartbeat();
    this.#heartbeat = setInterval(() => {
      const s = this.#socket;
      if (s === null || this.#state !== 'connected') return;
      // With heartbeat acks, silence means a dead link (a half-open TCP connection): reconnect.
      if (this.#heartbeatAck && Date.now() - this.#lastHeard > 2.5 * this.#heartbeatMs) {
        this.#socket = null;
        s.close(1000, 'heartbeat timeout');
        this.#onClose(1006, 'heartbeat timeout', true);
        return;
      }
      try {
        s.send(encodeFrame({ v: 1, type: 'heartbeat', from: this.#o.signer.did, ts: new Date().toISOString() }));
      } catch {
        // the close handler reconnects
      }
    }, this.#heartbeatMs);
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  #failAll(e: E2EError): void {
    const all = [...this.#outbox.values()];
    this.#outbox.clear();
    for (const p of all) p.reject(e);
  }

  #setState(state: ConnectionState, detail?: { code?: number; error?: E2EError }): void {
    this.#state = state;
    this.#o.onState(state, detail);
  }

  #after(ms: number, fn: () => void): ReturnType<typeof setTimeout> {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  #clear(t: ReturnType<typeof setTimeout>): void {
    clearTimeout(t);
    this.#timers.delete(t);
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#stopHeartbeat();
  }
}

/** UTF-8 length of `text` (exact only when it could matter). */
function byteLength(text: string): number {
  return text.length < 1024 ? text.length : new TextEncoder().encode(text).length;
}

function tooLarge(max: number): E2EError {
  return new E2EError('MESSAGE_TOO_LARGE', `the frame is larger than the relay accepts (${max} bytes)`, 'frame_too_big');
}
