/**
 * `SecureChannel`: X3DH (or PQXDH, when the bundle carries a KEM pre-key) and the Double Ratchet
 * behind `send`/`receive`/`close`. The channel's associated data is `callerAD ‖ IK_A ‖ IK_B`,
 * computed once and bound into every message.
 */
import { E2EError } from '../errors';
import { assertBytes, concatBytes, isUsableBytes, memzero, plainView } from '../crypto/bytes';
import { ByteReader, ByteWriter } from '../crypto/byte-io';
import { isInstance, readExactOptions, readOptions } from '../crypto/input';
import { HeldKemPreKey, OneTimePreKey, PreKeyBundle, X3DHKeyManager, snapshotBundle } from '../x3dh';
import { DoubleRatchet, RatchetOptions, checkRatchetOptions } from '../ratchet/double-ratchet';
import { EncryptedMessage } from '../ratchet/message';
import { RatchetState } from '../ratchet/state';
import { ChannelEstablishment, ChannelEstablishmentFields } from './establishment';
import { MAX_ASSOCIATED_DATA_BYTES } from '../limits';

const EMPTY = new Uint8Array(0);
const MAGIC = Uint8Array.of(0x41, 0x4d, 0x43, 0x01); // "AMC", version 1: a classic channel
const MAGIC_V2 = Uint8Array.of(0x41, 0x4d, 0x43, 0x02); // version 2: flags follow
const FLAG_POST_QUANTUM = 1;

/** Options of a channel: the ratchet's limits (and clock, for tests). */
export type ChannelOptions = RatchetOptions;

/** Options of {@link SecureChannel.createSender}: the channel's, and whether to refuse a classic session. */
export interface SenderOptions extends ChannelOptions {
  /**
   * Refuse a bundle without a KEM pre-key (`POST_QUANTUM_REQUIRED`), before anything is computed:
   * a relay or directory that strips the KEM pre-key cannot downgrade the session to X25519 only.
   */
  readonly requirePostQuantum?: boolean;
}

/** `requirePostQuantum` read: `INVALID_ARGUMENT` unless a boolean or absent. */
function readRequirePostQuantum(v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new E2EError('INVALID_ARGUMENT', 'requirePostQuantum must be a boolean');
  return v;
}

/** The channel options read once and checked (`INVALID_ARGUMENT`), before anything is spent. */
function readChannelOptions(options: unknown): RatchetOptions {
  const opts = readOptions(options, ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now'] as const, 'channel options');
  checkRatchetOptions(opts);
  return opts as RatchetOptions;
}

/** Options of {@link SecureChannel.createReceiver}: the channel's, pre-keys the caller holds, and whether to refuse a classic session. */
export interface ReceiverOptions extends ChannelOptions {
  /** Answer with this caller-held one-time pre-key; nothing is consumed (see `X3DHRespondParams.heldOneTimePreKey`). */
  readonly heldOneTimePreKey?: OneTimePreKey;
  /** Decapsulate with this caller-held KEM pre-key; nothing is consumed (see `X3DHRespondParams.heldKemPreKey`). */
  readonly heldKemPreKey?: HeldKemPreKey;
  /** Refuse an establishment without a KEM ciphertext (`POST_QUANTUM_REQUIRED`), before anything is spent. */
  readonly requirePostQuantum?: boolean;
}

/**
 * What {@link SecureChannel.createSender} returns: `{ channel, establishment }`, and also AGT's
 * tuple `[channel, establishment]` (a frozen two-element array with those two named properties),
 * so both `const { channel, establishment } = …` and `const [channel, establishment] = …` work.
 */
export type SenderChannel = readonly [channel: SecureChannel, establishment: ChannelEstablishment] & {
  readonly channel: SecureChannel;
  readonly establishment: ChannelEstablishment;
};

function senderChannel(channel: SecureChannel, establishment: ChannelEstablishment): SenderChannel {
  const out = [channel, establishment];
  Object.defineProperty(out, 'channel', { value: channel, enumerable: true });
  Object.defineProperty(out, 'establishment', { value: establishment, enumerable: true });
  return Object.freeze(out) as unknown as SenderChannel;
}

function assertManager(m: unknown): asserts m is X3DHKeyManager {
  if (!isInstance(m, X3DHKeyManager)) throw new E2EError('INVALID_ARGUMENT', 'manager must be an X3DHKeyManager');
}

function assertAd(ad: unknown): asserts ad is Uint8Array {
  assertBytes(ad, 'associated data');
  if (ad.length > MAX_ASSOCIATED_DATA_BYTES) throw new E2EError('INVALID_ARGUMENT', 'associated data above 64 KiB');
}

/** An end-to-end encrypted channel to one peer. */
export class SecureChannel {
  #ratchet: DoubleRatchet;
  readonly #ad: Uint8Array;
  #messageCount: number;
  readonly #postQuantum: boolean;
  #closed = false;

  private constructor(ratchet: DoubleRatchet, ad: Uint8Array, messageCount: number, postQuantum: boolean) {
    this.#ratchet = ratchet;
    this.#ad = ad;
    this.#messageCount = messageCount;
    this.#postQuantum = postQuantum;
  }

  /**
   * Opens a channel as the initiator: X3DH against `bundle` (checked: signature, identity binding,
   * low-order keys), then the sending ratchet. Send `establishment` to the peer with (or before)
   * the first message. The result destructures as an object or, like AGT's SDK, as a tuple. A
   * bundle with a KEM pre-key gives a post-quantum session (PQXDH: `channel.postQuantum`); with
   * `options.requirePostQuantum`, one without is refused (`POST_QUANTUM_REQUIRED`).
   * @example
   * const { channel, establishment } = SecureChannel.createSender(aliceMgr, bobBundle, utf8('did:mesh:alice|did:mesh:bob'));
   * const [sameKind, ofResult] = SecureChannel.createSender(aliceMgr, bobBundle); // AGT style
   */
  static createSender(
    manager: X3DHKeyManager,
    bundle: PreKeyBundle,
    associatedData: Uint8Array = EMPTY,
    options: SenderOptions = {},
  ): SenderChannel {
    assertManager(manager);
    assertAd(associatedData);
    const { requirePostQuantum, ...channelOptions } = readExactOptions(
      options,
      ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now', 'requirePostQuantum'] as const,
      'channel options',
    );
    const opts = readChannelOptions(channelOptions);
    const requirePq = readRequirePostQuantum(requirePostQuantum);
    // One read of the bundle: the key checked and signed is the key the ratchet starts from.
    const b = snapshotBundle(bundle);
    if (requirePq && !b.kemPreKey) {
      throw new E2EError('POST_QUANTUM_REQUIRED', 'the bundle has no KEM pre-key and a post-quantum session is required');
    }
    const x = manager.initiate(b);
    try {
      const ratchet = DoubleRatchet.initSender({ ...opts, sharedSecret: x.sharedSecret, remoteDhPublic: b.signedPreKey });
      const establishment = new ChannelEstablishment({
        initiatorIdentityKey: manager.identityKey.publicKey,
        ephemeralPublicKey: x.ephemeralPublicKey,
        usedOneTimeKeyId: x.usedOneTimeKeyId,
        signedPreKeyId: x.signedPreKeyId,
        kemPreKeyId: x.kemPreKeyId,
        kemCiphertext: x.kemCiphertext,
      });
      const channel = new SecureChannel(ratchet, concatBytes(associatedData, x.associatedData), 0, x.kemCiphertext !== undefined);
      return senderChannel(channel, establishment);
    } finally {
      memzero(x.sharedSecret);
    }
  }

  /**
   * Accepts a channel as the responder from the initiator's establishment (consumes the one-time
   * pre-key it names, and a one-time KEM pre-key). Errors: `OTK_NOT_FOUND`, `SPK_NOT_FOUND`,
   * `KEM_NOT_FOUND`, `INVALID_KEY`, `MALFORMED_MESSAGE`, `POST_QUANTUM_REQUIRED` (a classic
   * establishment under `options.requirePostQuantum`), `INVALID_ARGUMENT` (options, associated
   * data). Everything is checked before a pre-key is spent: a failed call consumes nothing, and
   * the same establishment can be accepted again. A KEM ciphertext altered on the way is not
   * detected here (ML-KEM's implicit rejection gives another secret): the first message fails to
   * decrypt, so accept the session only once it does (as `EncryptedTrustBridge` and the stores do).
   */
  static createReceiver(
    manager: X3DHKeyManager,
    establishment: ChannelEstablishment | ChannelEstablishmentFields,
    associatedData: Uint8Array = EMPTY,
    options: ReceiverOptions = {},
  ): SecureChannel {
    assertManager(manager);
    assertAd(associatedData);
    const { heldOneTimePreKey, heldKemPreKey, requirePostQuantum, ...channelOptions } = readExactOptions(
      options,
      ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now', 'heldOneTimePreKey', 'heldKemPreKey', 'requirePostQuantum'] as const,
      'channel options',
    );
    const opts = readChannelOptions(channelOptions);
    const requirePq = readRequirePostQuantum(requirePostQuantum);
    const e = ChannelEstablishment.from(establishment);
    if (requirePq && !e.postQuantum) {
      throw new E2EError('POST_QUANTUM_REQUIRED', 'the establishment is classic X3DH and a post-quantum session is required');
    }
    // respond spends the one-time pre-key only when it succeeds; what follows it cannot fail now.
    const r = manager.respond({
      peerIdentityKey: e.initiatorIdentityKey,
      ephemeralPublicKey: e.ephemeralPublicKey,
      usedOneTimeKeyId: e.usedOneTimeKeyId,
      signedPreKeyId: e.signedPreKeyId,
      heldOneTimePreKey: heldOneTimePreKey as OneTimePreKey | undefined,
      kemPreKeyId: e.kemPreKeyId,
      kemCiphertext: e.kemCiphertext,
      heldKemPreKey: heldKemPreKey as HeldKemPreKey | undefined,
    });
    try {
      const spk = manager.getSignedPreKey(r.signedPreKeyId);
      if (!spk) throw new E2EError('SPK_NOT_FOUND', 'signed pre-key vanished');
      const ratchet = DoubleRatchet.initReceiver({ ...opts, sharedSecret: r.sharedSecret, dhKeyPair: spk.keyPair });
      return new SecureChannel(ratchet, concatBytes(associatedData, r.associatedData), 0, r.postQuantum);
    } finally {
      memzero(r.sharedSecret);
    }
  }

  /** Encrypts `plaintext` for the peer. `CHANNEL_CLOSED` after `close()`. */
  send(plaintext: Uint8Array): EncryptedMessage {
    this.#assertOpen();
    const m = this.#ratchet.encrypt(plaintext, this.#ad);
    this.#messageCount++;
    return m;
  }

  /**
   * Decrypts a message from the peer (an `EncryptedMessage` or its serialized bytes). On any error
   * the channel is unchanged and goes on.
   */
  receive(message: EncryptedMessage | Uint8Array): Uint8Array {
    this.#assertOpen();
    const pt = this.#ratchet.decrypt(message, this.#ad);
    this.#messageCount++;
    return pt;
  }

  /** Closes the channel and wipes every secret it holds. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ratchet.wipe();
  }

  /** Whether `close()` was called. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Messages sent plus messages received. */
  get messageCount(): number {
    return this.#messageCount;
  }

  /**
   * Whether the session was established with PQXDH (X25519 and ML-KEM-768): every root key descends
   * from a secret that stays hidden from an attacker who records the traffic and later breaks
   * X25519, as long as ML-KEM-768 holds. The ratchet's DH steps are X25519 only: healing after a
   * compromise of the session state is classic.
   */
  get postQuantum(): boolean {
    return this.#postQuantum;
  }

  /** The channel's associated data (`callerAD ‖ IK_A ‖ IK_B`), a copy. */
  get associatedData(): Uint8Array {
    return Uint8Array.from(this.#ad);
  }

  /**
   * The channel's saved state: `"AMC" 0x01 ‖ u32be(messageCount) ‖ u32be(AD length) ‖ AD ‖ ratchet
   * state` for a classic channel, `"AMC" 0x02 ‖ flags(1; bit 0 post-quantum) ‖` the same for a
   * post-quantum one. It contains secrets: store it encrypted. {@link fromBytes} restores it.
   */
  toBytes(): Uint8Array {
    this.#assertOpen();
    const ratchet = this.#ratchet.state.toBytes();
    const w = new ByteWriter(13 + this.#ad.length + ratchet.length);
    if (this.#postQuantum) w.bytes(MAGIC_V2).u8(FLAG_POST_QUANTUM);
    else w.bytes(MAGIC);
    w.u32(Math.min(this.#messageCount, 0xffffffff)).lengthPrefixed(this.#ad).bytes(ratchet);
    memzero(ratchet);
    return w.finish();
  }

  /**
   * A channel restored from {@link toBytes}; `MALFORMED_MESSAGE` on any defect. Everything it keeps
   * is copied out of `bytes` (a Node `Buffer` included): the caller may reuse or wipe them.
   */
  static fromBytes(input: Uint8Array, options: { now?: () => number } = {}): SecureChannel {
    if (!isUsableBytes(input) || input.length < 12) throw new E2EError('MALFORMED_MESSAGE', 'channel state too short');
    const opts = readOptions(options, ['now'] as const, 'options');
    checkRatchetOptions(opts);
    const bytes = plainView(input); // a plain view: the reader's copies are copies
    const r = new ByteReader(bytes, 'channel state');
    let postQuantum = false;
    if (bytes[3] === MAGIC_V2[3]) {
      r.expect(MAGIC_V2, 'not a channel state (or unknown version)');
      const flags = r.u8();
      if (flags !== FLAG_POST_QUANTUM) throw new E2EError('MALFORMED_MESSAGE', 'unknown channel state flags');
      postQuantum = true;
    } else {
      r.expect(MAGIC, 'not a channel state (or unknown version)');
    }
    const header = postQuantum ? 13 : 12;
    const messageCount = r.u32();
    const ad = r.lengthPrefixed();
    // The ratchet state is the rest; its own reader refuses truncation and trailing bytes.
    const state = RatchetState.fromBytes(bytes.subarray(header + ad.length));
    return new SecureChannel(new DoubleRatchet(state, opts as { now?: () => number }), ad, messageCount, postQuantum);
  }

  #assertOpen(): void {
    if (this.#closed) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
  }
}
