/** Fixtures of the server specs: agents with keys, a ws client with a frame queue, registry calls. Loopback only. */
import WebSocket from 'ws';
import { ed25519KeyPair, ed25519PublicKeyToX25519, ed25519Sign, toBase64Url, x25519KeyPair } from '../../lib/crypto';
import {
  Feature,
  FrameSigner,
  buildAgtRegistryAuth,
  buildConnectFrame,
  buildRegistration,
  buildRegistryAuth,
  meshDidOf,
} from '../../lib/mesh/frames';

/** A test agent: Ed25519 keys, its DID, a signer. */
export interface TestAgent extends FrameSigner {
  readonly secretKey: Uint8Array;
}

/** A fresh agent. */
export function newAgent(): TestAgent {
  const kp = ed25519KeyPair();
  return { did: meshDidOf(kp.publicKey), publicKey: kp.publicKey, secretKey: kp.secretKey, sign: (m) => ed25519Sign(kp.secretKey, m) };
}

/** A received frame or a close. */
export type Event = { kind: 'frame'; frame: Record<string, unknown>; raw: string } | { kind: 'close'; code: number; reason: string };

/** A ws client whose frames queue up for `next()`. */
export class TestClient {
  readonly ws: WebSocket;
  readonly events: Event[] = [];
  #waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;
  readonly opened: Promise<void>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => undefined);
    this.ws.on('message', (d: Buffer) =>
      this.#push({ kind: 'frame', frame: JSON.parse(d.toString('utf8')) as Record<string, unknown>, raw: d.toString('utf8') }),
    );
    this.ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.#push({ kind: 'close', code, reason: reason.toString('utf8') });
    });
  }

  #push(e: Event): void {
    this.events.push(e);
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Sends a frame (object as JSON, or raw text). */
  send(frame: object | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /**
   * The next event, or throws after `ms` (generous: frames that cross two server processes and Redis
   * under a full parallel test run on 2 cores can take seconds; tests of silence use {@link quiet}).
   */
  async next(ms = 15_000): Promise<Event> {
    const deadline = Date.now() + ms;
    while (this.events.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for a frame');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.events.shift() as Event;
  }

  /** The next frame (throws on a close). */
  async frame(ms = 15_000): Promise<Record<string, unknown>> {
    const e = await this.next(ms);
    if (e.kind !== 'frame') throw new Error(`closed ${e.code} ${e.reason} while waiting for a frame`);
    return e.frame;
  }

  /** Waits for the close (skipping frames); returns it and the frames seen before. */
  async closeEvent(ms = 3000): Promise<{ code: number; reason: string; frames: Record<string, unknown>[] }> {
    const frames: Record<string, unknown>[] = [];
    for (;;) {
      const e = await this.next(ms);
      if (e.kind === 'close') return { code: e.code, reason: e.reason, frames };
      frames.push(e.frame);
    }
  }

  /** Resolves `true` if nothing arrives within `ms`. */
  async quiet(ms = 200): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.events.length === 0;
  }

  close(): void {
    this.ws.close();
  }
}

/** Opens a client and sends `agent`'s connect frame (nonce proof and all features unless told). */
export async function connect(
  url: string,
  agent: TestAgent,
  opts: { features?: Feature[]; agt?: boolean; welcome?: boolean } = {},
): Promise<TestClient> {
  const c = new TestClient(url);
  await c.opened;
  const features = opts.features ?? (opts.agt ? [] : [Feature.WELCOME, Feature.RECEIPTS, Feature.HEARTBEAT_ACK]);
  c.send(buildConnectFrame(agent, opts.agt ? { nonce: false } : { features }));
  if (features.includes(Feature.WELCOME) && opts.welcome !== false) {
    const f = await c.frame();
    if (f.type !== 'connected') throw new Error(`expected connected, got ${JSON.stringify(f)}`);
  }
  return c;
}

/** An HTTP call; returns status, JSON body (or null) and headers. */
export async function http(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const init: RequestInit = { method, headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } };
  if (text !== undefined) init.body = text;
  const r = await fetch(url + path, init);
  const t = await r.text();
  let parsed: unknown = null;
  try {
    parsed = t.length > 0 ? JSON.parse(t) : null;
  } catch {
    parsed = t;
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** An authenticated call with our request-bound header (or AGT's with `agt`). */
export function authed(url: string, agent: TestAgent, method: string, path: string, body?: unknown, agt = false) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const opts: { method: string; path: string; body?: string } = { method, path };
  if (text !== undefined) opts.body = text;
  const auth = agt ? buildAgtRegistryAuth(agent) : buildRegistryAuth(agent, opts);
  return http(url, method, path, text, { authorization: auth });
}

/** Registers `agent` (201 expected). */
export async function register(url: string, agent: TestAgent, capabilities: string[] = []): Promise<void> {
  const r = await http(url, 'POST', '/v1/agents', buildRegistration(agent, { capabilities }));
  if (r.status !== 201) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
}

/** A valid pre-key upload for `agent` with `n` one-time keys (ids from `firstId`). */
export function bundleBody(agent: TestAgent, n = 3, firstId = 0, spkId = 1) {
  const spk = x25519KeyPair();
  return {
    identity_key: toBase64Url(ed25519PublicKeyToX25519(agent.publicKey)),
    identity_key_ed: toBase64Url(agent.publicKey),
    signed_pre_key: {
      key_id: spkId,
      public_key: toBase64Url(spk.publicKey),
      signature: toBase64Url(ed25519Sign(agent.secretKey, spk.publicKey)),
    },
    one_time_pre_keys: Array.from({ length: n }, (_, i) => ({ key_id: firstId + i, public_key: toBase64Url(x25519KeyPair().publicKey) })),
  };
}

/** Registers and uploads a bundle. */
export async function publish(url: string, agent: TestAgent, n = 3): Promise<void> {
  await register(url, agent);
  const r = await authed(url, agent, 'PUT', `/v1/agents/${agent.did}/prekeys`, bundleBody(agent, n));
  if (r.status !== 200) throw new Error(`upload: ${r.status} ${JSON.stringify(r.body)}`);
}

/** A message frame from `from` to `to`. */
export function message(to: string, id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    type: 'message',
    to,
    id,
    ts: new Date().toISOString(),
    header: { dh: 'AAAA', pn: 0, n: 0 },
    ciphertext: 'Y2lwaGVy',
    ...extra,
  };
}

/** Sleeps. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` (sync or async) every 20 ms until it holds; `false` if `ms` pass first. */
export async function until(f: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}
