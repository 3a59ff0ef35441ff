/**
 * The sessions of one agent, per peer, each a `PersistentChannel` in the agent's store.
 *
 * A peer may have several: the one we opened, ones it opened (a simultaneous open, G6, or a fresh one after
 * it lost its state, G7), kept side by side so every message sent on any of them still decrypts. Which one
 * we *send* on is a pure function of what is saved, so a restarted agent chooses as before: among the
 * sessions we can send on (ours, or the peer's once its first message decrypted) and not reported dead,
 * the one opened by the lower DID, then the newest. Both ends apply the same rule, so after a simultaneous
 * open both converge on the lower DID's session, and nothing sent on the other is lost.
 *
 * Slots in the `SessionStore` (keyed by our DID): `<peer>#i.<seq>` for a session we opened and
 * `<peer>#r.<seq>.<fp>` for one we accepted, `fp` = 16 hex of the establishment's fingerprint, so a
 * redelivered knock is recognised after a restart too (G5).
 */
import { E2EError, isE2EError } from '../errors';
import { storeError } from '../store/validate';
import { utf8 } from '../crypto';
import { EncryptedMessage } from '../ratchet';
import { ChannelEstablishment, SecureChannel } from '../channel';
import { SessionStore } from '../store/types';
import { PersistentChannel } from '../store/persistent-channel';
import { StorageCipher } from '../store/storage-cipher';
import { StoredKeyManager, establishmentFingerprint } from '../store/stored-key-manager';
import { StoreErrorReason } from '../store/reasons';
import { BoundedMap } from '../util/bounded-map';
import { MAX_SENT_IDS, MAX_SESSIONS_PER_PEER } from '../limits';

/** Who opened a session. */
export type SessionRole = 'initiator' | 'responder';

/** One saved session with a peer. */
export interface SessionEntry {
  readonly peer: string;
  readonly slot: string;
  readonly role: SessionRole;
  readonly seq: number;
  /** 16 hex of the establishment fingerprint (accepted sessions). */
  readonly fp: string | null;
  readonly channel: PersistentChannel;
  /** The peer told us it cannot read it (in memory only: an unauthenticated notice never deletes). */
  dead: boolean;
}

/** Every session of one agent. */
export class SessionBook {
  readonly #store: SessionStore;
  readonly #cipher: StorageCipher;
  readonly #me: string;
  readonly #keys: StoredKeyManager;
  readonly #requirePq: boolean;
  readonly #peers = new Map<string, SessionEntry[]>();
  readonly #sentOn = new BoundedMap<string, SessionEntry>(MAX_SENT_IDS);
  #seq = 0;

  /**
   * The book of `o.localDid`, saving into `o.store` sealed with `o.cipher`; accepts with `o.keys`, only
   * post-quantum establishments with `o.requirePostQuantum`.
   */
  constructor(o: { store: SessionStore; cipher: StorageCipher; localDid: string; keys: StoredKeyManager; requirePostQuantum?: boolean }) {
    this.#store = o.store;
    this.#cipher = o.cipher;
    this.#me = o.localDid;
    this.#keys = o.keys;
    this.#requirePq = o.requirePostQuantum === true;
  }

  /** Loads every saved session (after a restart). Unreadable ones are skipped and reported. */
  async load(onError: (e: E2EError, slot: string) => void): Promise<number> {
    const slots = await this.#store.listSessions(this.#me);
    let n = 0;
    for (const slot of slots) {
      const parsed = parseSlot(slot);
      if (!parsed) continue;
      this.#seq = Math.max(this.#seq, parsed.seq);
      try {
        const channel = await PersistentChannel.load({ store: this.#store, cipher: this.#cipher, localDid: this.#me, peerDid: slot });
        if (!channel) continue;
        this.#list(parsed.peer).push({ ...parsed, slot, channel, dead: false });
        n++;
      } catch (e) {
        onError(storeError('loading a saved session', e), slot);
      }
    }
    for (const list of this.#peers.values()) list.sort((a, b) => a.seq - b.seq);
    return n;
  }

  /** Peers with at least one session. */
  get peers(): string[] {
    return [...this.#peers.keys()].filter((p) => (this.#peers.get(p)?.length ?? 0) > 0);
  }

  /** The sessions with `peer`, oldest first (a copy). */
  sessionsOf(peer: string): SessionEntry[] {
    return [...(this.#peers.get(peer) ?? [])];
  }

  /** The session to send on, or `undefined` (then open one). See the module comment for the rule. */
  current(peer: string): SessionEntry | undefined {
    let best: SessionEntry | undefined;
    for (const e of this.#peers.get(peer) ?? []) {
      if (e.dead || e.channel.isClosed) continue;
      if (e.role === 'responder' && e.channel.messageCount === 0) continue; // a responder cannot send first
      if (best === undefined || better(e, best, this.#me)) best = e;
    }
    return best;
  }

  /** Saves a session we opened (takes ownership of `channel`). */
  async addInitiator(peer: string, channel: SecureChannel): Promise<SessionEntry> {
    const seq = ++this.#seq;
    const slot = `${peer}#i.${seq}`;
    const pc = await PersistentChannel.create({ store: this.#store, cipher: this.#cipher, localDid: this.#me, peerDid: slot }, channel);
    return this.#add({ peer, slot, role: 'initiator', seq, fp: null, channel: pc, dead: false });
  }

  /** The session accepted from this establishment, if we have it (a redelivered knock). */
  findAccepted(peer: string, e: ChannelEstablishment): SessionEntry | undefined {
    const fp = establishmentFingerprint(e).slice(0, 16);
    return this.#peers.get(peer)?.find((s) => s.fp === fp);
  }

  /**
   * Accepts `peer`'s establishment (one-time pre-key and one-time KEM pre-key consumed and saved with the
   * session): `'duplicate'` when it was accepted before. X3DH errors pass through, and
   * `POST_QUANTUM_REQUIRED` for a classic one when post-quantum sessions are required (nothing spent).
   */
  async accept(peer: string, e: ChannelEstablishment): Promise<SessionEntry | 'duplicate'> {
    if (this.findAccepted(peer, e)) return 'duplicate';
    const fp = establishmentFingerprint(e).slice(0, 16);
    const seq = ++this.#seq;
    const slot = `${peer}#r.${seq}.${fp}`;
    let channel: PersistentChannel;
    try {
      // Accepted against the agent's own store, not the write-behind one: there the spent one-time pre-key
      // (or the replay record) and the new session are one atomic write, so a crash leaves both or neither
      // and the relay's redelivery of the knock finds things as they were.
      const own = this.#keys.store as unknown as SessionStore;
      const accepted = await this.#keys.acceptChannel(e, {
        sessions: own,
        peerDid: slot,
        associatedData: utf8(`${peer}|${this.#me}`),
        requirePostQuantum: this.#requirePq,
      });
      await accepted.close(); // the saved state stays; the session goes on through the write-behind store
      const loaded = await PersistentChannel.load({ store: this.#store, cipher: this.#cipher, localDid: this.#me, peerDid: slot });
      if (!loaded) throw new E2EError('STORE_ERROR', 'the accepted session was not found after its save', StoreErrorReason.CORRUPT);
      channel = loaded;
    } catch (err) {
      if (isE2EError(err, 'DUPLICATE_MESSAGE')) return 'duplicate';
      throw err;
    }
    return this.#add({ peer, slot, role: 'responder', seq, fp, channel, dead: false });
  }

  /** Remembers which session message `id` went out on. */
  noteSent(id: string, entry: SessionEntry): void {
    this.#sentOn.set(id, entry);
  }

  /** The session message `id` (or knock `id`) went out on, if remembered. */
  sentOn(id: string): SessionEntry | undefined {
    return this.#sentOn.get(id);
  }

  /**
   * Decrypts `message` from `peer` with whichever session it belongs to (the one we send on first) and
   * saves the advanced session with the plaintext in its inbox (write-behind: durable at the next flush,
   * together): the plaintext and its session, `'duplicate'` when a session already consumed it,
   * `'undecryptable'` when none can read it. {@link commit} then acknowledges it once the application has
   * handled it, so a crash before that means the message comes again (at-least-once: from the relay, or
   * from the inbox when the state was already written).
   */
  async decrypt(
    peer: string,
    message: EncryptedMessage,
  ): Promise<{ entry: SessionEntry; plaintext: Uint8Array } | 'duplicate' | 'undecryptable'> {
    const list = this.#peers.get(peer);
    if (!list || list.length === 0) return 'undecryptable';
    const cur = this.current(peer);
    const order = [...list].sort((a, b) => (a === cur ? -1 : b === cur ? 1 : b.seq - a.seq));
    let duplicate = false;
    for (const s of order) {
      if (s.channel.isClosed) continue;
      try {
        return { entry: s, plaintext: await s.channel.receive(message) };
      } catch (e) {
        if (isE2EError(e, 'DUPLICATE_MESSAGE')) {
          duplicate = true;
          continue;
        }
        if (
          isE2EError(e, 'DECRYPT_FAILED') ||
          isE2EError(e, 'TOO_MANY_SKIPPED') ||
          isE2EError(e, 'MALFORMED_MESSAGE') ||
          isE2EError(e, 'INVALID_KEY') ||
          isE2EError(e, 'CHANNEL_CLOSED') ||
          isE2EError(e, 'MESSAGE_TOO_LARGE')
        )
          continue;
        throw e; // the store's
      }
    }
    return duplicate ? 'duplicate' : 'undecryptable';
  }

  /** Acknowledges `message` (decrypted before by {@link decrypt}): the application has handled it. */
  async commit(entry: SessionEntry, message: EncryptedMessage): Promise<void> {
    await entry.channel.ack(message);
  }

  /** Closes every session (keys wiped; saved state kept). */
  async closeAll(): Promise<void> {
    for (const list of this.#peers.values()) for (const s of list) await s.channel.close().catch(() => undefined);
    this.#peers.clear();
    this.#sentOn.clear();
  }

  #list(peer: string): SessionEntry[] {
    let l = this.#peers.get(peer);
    if (!l) this.#peers.set(peer, (l = []));
    return l;
  }

  async #add(entry: SessionEntry): Promise<SessionEntry> {
    const list = this.#list(entry.peer);
    list.push(entry);
    while (list.length > MAX_SESSIONS_PER_PEER) {
      const cur = this.current(entry.peer);
      // Sessions the peer never used go first (anyone who knows its public key can make one), oldest first.
      const spare = (s: SessionEntry): boolean => s !== cur && s !== entry;
      const victim = list.find((s) => spare(s) && s.role === 'responder' && s.channel.messageCount === 0) ?? list.find(spare);
      if (!victim) break;
      list.splice(list.indexOf(victim), 1);
      await victim.channel.close({ deleteSaved: true }).catch(() => undefined);
    }
    return entry;
  }
}

/** The DID that opened a session. */
function openerOf(e: SessionEntry, me: string): string {
  return e.role === 'initiator' ? me : e.peer;
}

/** True when `a` should be sent on rather than `b`: the lower opener DID, then the newer. */
function better(a: SessionEntry, b: SessionEntry, me: string): boolean {
  const oa = openerOf(a, me);
  const ob = openerOf(b, me);
  if (oa !== ob) return oa < ob;
  return a.seq > b.seq;
}

/** Parses a slot name; `null` for slots that are not sessions (e.g. `#published`). */
export function parseSlot(slot: string): { peer: string; role: SessionRole; seq: number; fp: string | null } | null {
  const at = slot.lastIndexOf('#');
  if (at <= 0) return null;
  const peer = slot.slice(0, at);
  const m = /^(i)\.(\d{1,15})$|^(r)\.(\d{1,15})\.([0-9a-f]{16})$/.exec(slot.slice(at + 1));
  if (!m) return null;
  if (m[1] === 'i') return { peer, role: 'initiator', seq: Number(m[2]), fp: null };
  return { peer, role: 'responder', seq: Number(m[4]), fp: m[5] as string };
}
