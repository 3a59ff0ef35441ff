/**
 * The WebSocket under a `MeshAgent`: the runtime's global `WebSocket` where there is one (browsers,
 * Deno, Bun, Node ≥ 22), else the `ws` package, loaded only then so other runtimes never need it.
 */
import { E2EError } from '../errors';

/** The few things the connection loop needs from a WebSocket. */
export interface MeshSocket {
  /** Sends one text frame. */
  send(text: string): void;
  /** Closes the socket (our own close is 1000). */
  close(code?: number, reason?: string): void;
  /** Bytes queued but not yet written (0 once a frame has left). */
  readonly bufferedAmount: number;
}

/** What the connection loop hears from its socket. */
export interface MeshSocketHandlers {
  /** The socket is open. */
  open(): void;
  /** A text frame arrived (binary frames are not passed on). */
  message(text: string): void;
  /** The socket closed, or failed to open: its close code and reason. */
  close(code: number, reason: string): void;
}

/** Opens a socket; returns at once, the handlers tell the rest. */
export type SocketFactory = (url: string, handlers: MeshSocketHandlers) => Promise<MeshSocket>;

interface WhatwgLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  readonly bufferedAmount: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
type WhatwgCtor = new (url: string) => WhatwgLike;

let wsCtor: Promise<WhatwgCtor> | null = null;

function constructor(): Promise<WhatwgCtor> {
  const g = (globalThis as { WebSocket?: WhatwgCtor }).WebSocket;
  if (typeof g === 'function') return Promise.resolve(g);
  // Node 20 has no global WebSocket: `ws` implements the same event-handler API.
  wsCtor ??= import('ws')
    .then(
      (m) =>
        (m as unknown as { WebSocket?: WhatwgCtor; default?: WhatwgCtor }).WebSocket ?? (m as unknown as { default: WhatwgCtor }).default,
    )
    .catch(() => {
      wsCtor = null;
      throw new E2EError(
        'INVALID_STATE',
        'no global WebSocket in this runtime: install the optional peer dependency ws (npm install ws)',
        'no_websocket',
      );
    });
  return wsCtor;
}

/** The default {@link SocketFactory}: global `WebSocket`, or `ws`. */
export const openSocket: SocketFactory = async (url, handlers) => {
  const Ctor = await constructor();
  const ws = new Ctor(url);
  let closed = false;
  ws.onopen = () => handlers.open();
  ws.onmessage = (ev) => {
    // Binary frames are never part of the protocol; a text frame is a string in both APIs.
    if (typeof ev.data === 'string') handlers.message(ev.data);
  };
  ws.onclose = (ev) => {
    if (closed) return;
    closed = true;
    handlers.close(ev.code, ev.reason ?? '');
  };
  ws.onerror = () => {
    // A failed connect reports error then close; the close carries what we need.
  };
  return {
    send: (text) => ws.send(text),
    close: (code, reason) => {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
  };
};
