/**
 * The bridge's sessions: one live channel per peer DID, with what the trust checks established,
 * and the accepted establishments still waiting for their first message.
 */
import { ChannelEstablishment, SecureChannel } from '../channel';
import { TrustLevel } from './trust-level';

/** An open, trust-gated channel to one peer. */
export interface TrustSession {
  /** The peer's DID. */
  readonly peerDid: string;
  /** Whether this side opened (`initiator`) or accepted (`responder`) the channel. */
  readonly role: 'initiator' | 'responder';
  /** The encrypted channel to the peer. */
  readonly channel: SecureChannel;
  /** The X3DH establishment (sent by the initiator; public data). */
  readonly establishment: ChannelEstablishment;
  /** The peer's registry trust score when the session was set up. */
  readonly trustScore: number;
  /** The level of `trustScore`. */
  readonly trustLevel: TrustLevel;
  /** The peer's registry capabilities when the session was set up. */
  readonly capabilities: readonly string[];
  /** When the session was set up (ms since the epoch). */
  readonly establishedAt: number;
}

/**
 * Sessions by peer DID. An accepted establishment is only a claim until a message under it
 * decrypts (anyone who saw the peer's public keys can make one), so it waits beside the live
 * session and replaces it only then — as Signal keeps a new session record beside the current one
 * until it has been used. Closed channels are dropped as they are found.
 */
export class SessionTable {
  readonly #live = new Map<string, TrustSession>();
  readonly #pending = new Map<string, TrustSession[]>();
  /** Accepted sessions already seen to have decrypted a message (and so reported to `onPromote`). */
  readonly #authenticated = new WeakSet<TrustSession>();
  /** Acceptance order of accepted sessions. */
  readonly #seq = new WeakMap<TrustSession, number>();
  #nextSeq = 0;
  readonly #maxPendingPerPeer: number;
  readonly #onPromote: (session: TrustSession) => void;

  /**
   * @param maxPendingPerPeer most waiting establishments per peer (the oldest is forgotten, not closed: its channel stays the caller's)
   * @param onPromote called once per accepted session, when it is first seen to have decrypted a message
   */
  constructor(maxPendingPerPeer: number, onPromote: (session: TrustSession) => void) {
    this.#maxPendingPerPeer = maxPendingPerPeer;
    this.#onPromote = onPromote;
  }

  /** Installs `session` as the live one (this side's own open), closing (and wiping) the previous one. */
  replace(session: TrustSession): void {
    this.#closeLive(session.peerDid);
    this.#live.set(session.peerDid, session);
  }

  /**
   * Adds an accepted session. It becomes the live one at once when the peer has no live session
   * that has carried a message (what it replaces then waits on, unclosed, since it may be the
   * genuine one); otherwise it waits until its channel has decrypted a message.
   */
  addAccepted(session: TrustSession): void {
    const did = session.peerDid;
    this.#seq.set(session, this.#nextSeq++);
    this.#promote(did);
    const live = this.#live.get(did);
    if (live && !live.channel.isClosed && hasCarried(live)) {
      this.#addPending(session);
      return;
    }
    if (live && !live.channel.isClosed) this.#addPending(live);
    this.#live.set(did, session);
  }

  /** Every open session with `did`: the live one first, then the waiting ones, newest first. */
  candidates(did: string): TrustSession[] {
    const live = this.#live.get(did);
    const all = [...(live ? [live] : []), ...[...(this.#pending.get(did) ?? [])].reverse()];
    return all.filter((s) => !s.channel.isClosed);
  }

  #addPending(session: TrustSession): void {
    const list = this.#pending.get(session.peerDid) ?? [];
    if (list.length >= this.#maxPendingPerPeer) list.shift();
    list.push(session);
    this.#pending.set(session.peerDid, list);
  }

  /** The live session with `did`, if any (a waiting one that has decrypted a message first takes its place). */
  get(did: string): TrustSession | undefined {
    this.#promote(did);
    const s = this.#live.get(did);
    if (s?.channel.isClosed) this.#live.delete(did);
    return s && !s.channel.isClosed ? s : undefined;
  }

  /** A copy: peer DID → live session. */
  snapshot(): Map<string, TrustSession> {
    for (const did of [...this.#pending.keys()]) this.#promote(did);
    for (const [did, s] of this.#live) if (s.channel.isClosed) this.#live.delete(did);
    return new Map(this.#live);
  }

  /** Closes (wipes) and removes the sessions with `did`, live and waiting; `true` if a live one was open. */
  close(did: string): boolean {
    this.#promote(did);
    for (const p of this.#pending.get(did) ?? []) p.channel.close();
    this.#pending.delete(did);
    return this.#closeLive(did);
  }

  /** Closes (wipes) and removes every session. */
  closeAll(): void {
    for (const did of new Set([...this.#live.keys(), ...this.#pending.keys()])) this.close(did);
  }

  #closeLive(did: string): boolean {
    const s = this.#live.get(did);
    if (!s) return false;
    this.#live.delete(did);
    const wasOpen = !s.channel.isClosed;
    s.channel.close();
    return wasOpen;
  }

  /**
   * Waiting sessions whose channel has decrypted a message become live, in the order they were
   * accepted (a responder's channel cannot send before it has received, so a message count
   * above zero means a message from the peer authenticated under it).
   */
  #promote(did: string): void {
    const live = this.#live.get(did);
    let newest = -1; // acceptance order of the newest session seen to authenticate
    if (live && live.role === 'responder' && live.channel.messageCount > 0 && !this.#authenticated.has(live)) {
      this.#authenticated.add(live);
      this.#onPromote(live);
      newest = this.#seq.get(live) ?? -1;
    }
    const list = this.#pending.get(did);
    if (!list) return;
    let waiting: TrustSession[] = [];
    for (const p of list) {
      if (p.channel.isClosed) continue;
      if (p.channel.messageCount === 0) {
        waiting.push(p);
        continue;
      }
      this.replace(p);
      this.#authenticated.add(p);
      this.#onPromote(p);
      newest = Math.max(newest, this.#seq.get(p) ?? -1);
    }
    // The peer now uses a newer session than the ones still waiting from before it: those are
    // forgeries or abandoned attempts, closed (and wiped).
    waiting = waiting.filter((p) => {
      if ((this.#seq.get(p) ?? -1) > newest) return true;
      p.channel.close();
      return false;
    });
    if (waiting.length > 0) this.#pending.set(did, waiting);
    else this.#pending.delete(did);
  }
}

/** Whether a session has carried a message: always for this side's own open, after a decrypt for an accepted one. */
function hasCarried(s: TrustSession): boolean {
  return s.role === 'initiator' || s.channel.messageCount > 0;
}
