/** Test helpers for the mesh client: agents on a real server, waiting for conditions, a scriptable fake relay. */
import { WebSocketServer, WebSocket } from 'ws';
import { AddressInfo } from 'net';
import { AgentIdentity } from '../../lib/trust';
import { MeshAgent, MeshMessage } from '../../lib/mesh';

/** Resolves once `cond()` holds; rejects after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects an agent's messages (as text) and errors. */
export function collect(agent: MeshAgent): { texts: string[]; messages: MeshMessage[]; errors: unknown[] } {
  const out = { texts: [] as string[], messages: [] as MeshMessage[], errors: [] as unknown[] };
  agent.on('message', (m) => {
    out.messages.push(m);
    out.texts.push(m.text());
  });
  agent.on('error', (e) => out.errors.push(e));
  return out;
}

/** A fake relay on 127.0.0.1 speaking our frames, without any checks, that tests can script. */
export class FakeRelay {
  readonly wss: WebSocketServer;
  readonly sockets = new Map<string, WebSocket>();
  /** Every frame received, parsed, with the sender's DID. */
  readonly received: { from: string; frame: Record<string, unknown> }[] = [];
  /** Return false to drop a frame instead of routing it. */
  route: (from: string, frame: Record<string, unknown>) => boolean = () => true;
  /** Close code for connect frames, or null to accept them. */
  refuseWith: number | null = null;
  /** Frames above this many bytes close the sender's socket with 1009 (as uvicorn does). */
  closeAbove = Infinity;
  /** Answer heartbeats with heartbeat_ack. */
  heartbeatAcks = true;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    wss.on('connection', (ws) => {
      let did: string | null = null;
      ws.on('message', (data) => {
        if (String(data).length > this.closeAbove) {
          ws.close(1009, 'too big');
          return;
        }
        const frame = JSON.parse(String(data)) as Record<string, unknown>;
        if (did === null) {
          if (this.refuseWith !== null) {
            ws.close(this.refuseWith, 'refused');
            return;
          }
          did = String(frame.from);
          this.sockets.get(did)?.close(4006, 'session_replaced');
          this.sockets.set(did, ws);
          ws.send(
            JSON.stringify({
              type: 'connected',
              did,
              features: ['welcome', 'receipts', 'heartbeat_ack'],
              pending: 0,
              limits: { max_frame_bytes: 1 << 20, idle_timeout_ms: 90000 },
            }),
          );
          return;
        }
        this.received.push({ from: did, frame });
        if (frame.type === 'heartbeat') {
          if (this.heartbeatAcks) ws.send(JSON.stringify({ type: 'heartbeat_ack', ts: new Date().toISOString() }));
          return;
        }
        if (frame.type === 'ack' || frame.type === 'disconnect') return;
        ws.send(JSON.stringify({ type: 'accepted', id: frame.id, to: frame.to, duplicate: false }));
        if (this.route(did, frame)) this.deliver(String(frame.to), { ...frame, from: did });
      });
      ws.on('close', () => {
        if (did !== null && this.sockets.get(did) === ws) this.sockets.delete(did);
      });
    });
  }

  /** Starts one on a free port. */
  static async start(): Promise<FakeRelay> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    return new FakeRelay(wss);
  }

  /** `ws://127.0.0.1:port/ws`. */
  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/ws`;
  }

  /** Sends `frame` to `did` as it is (a relay can put any `from` on it). */
  deliver(did: string, frame: Record<string, unknown>): boolean {
    const ws = this.sockets.get(did);
    if (!ws) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** Frames of `type` sent by `from`. */
  framesFrom(from: string, type: string): Record<string, unknown>[] {
    return this.received.filter((r) => r.from === from && r.frame.type === type).map((r) => r.frame);
  }

  /** Stops it (closing every socket). */
  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

/** A fresh self-certifying identity. */
export function newIdentity(): AgentIdentity {
  return AgentIdentity.generate();
}
