/** The bridge's sessions: one channel per peer DID, with what the trust checks established. */
import { ChannelEstablishment, SecureChannel } from '../channel';
import { TrustLevel } from './trust-level';

/** An open, trust-gated channel to one peer. */
export interface TrustSession {
  readonly peerDid: string;
  /** Whether this side opened (`initiator`) or accepted (`responder`) the channel. */
  readonly role: 'initiator' | 'responder';
  readonly channel: SecureChannel;
  /** The X3DH establishment (sent by the initiator; public data). */
  readonly establishment: ChannelEstablishment;
  /** The peer's registry trust score when the session was set up. */
  readonly trustScore: number;
  readonly trustLevel: TrustLevel;
  /** The peer's registry capabilities when the session was set up. */
  readonly capabilities: readonly string[];
  /** When the session was set up (ms since the epoch). */
  readonly establishedAt: number;
}

/** Sessions by peer DID. Closed channels are dropped as they are found. */
export class SessionTable {
  readonly #sessions = new Map<string, TrustSession>();

  /** Installs `session`, closing (and wiping) the previous session with the same peer. */
  replace(session: TrustSession): void {
    this.close(session.peerDid);
    this.#sessions.set(session.peerDid, session);
  }

  /** The open session with `did`, if any. */
  get(did: string): TrustSession | undefined {
    const s = this.#sessions.get(did);
    if (s?.channel.isClosed) this.#sessions.delete(did);
    return s && !s.channel.isClosed ? s : undefined;
  }

  /** A copy: peer DID → open session. */
  snapshot(): Map<string, TrustSession> {
    for (const [did, s] of this.#sessions) if (s.channel.isClosed) this.#sessions.delete(did);
    return new Map(this.#sessions);
  }

  /** Closes (wipes) and removes the session with `did`; `true` if one was open. */
  close(did: string): boolean {
    const s = this.#sessions.get(did);
    if (!s) return false;
    this.#sessions.delete(did);
    const wasOpen = !s.channel.isClosed;
    s.channel.close();
    return wasOpen;
  }

  /** Closes (wipes) and removes every session. */
  closeAll(): void {
    for (const did of [...this.#sessions.keys()]) this.close(did);
  }
}
