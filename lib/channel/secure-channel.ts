/**
 * `SecureChannel`: X3DH and the Double Ratchet behind `send`/`receive`/`close`. The channel's
 * associated data is `callerAD ‖ IK_A ‖ IK_B`, computed once and bound into every message.
 */
import { E2EError } from '../errors';
import { assertBytes, concatBytes, isUsableBytes, memzero, plainView } from '../crypto/bytes';
import { ByteReader, ByteWriter } from '../crypto/byte-io';
import { isInstance, readOptions } from '../crypto/input';
import { OneTimePreKey, PreKeyBundle, X3DHKeyManager, snapshotBundle } from '../x3dh';
import { DoubleRatchet, RatchetOptions, checkRatchetOptions } from '../ratchet/double-ratchet';
import { EncryptedMessage } from '../ratchet/message';
import { RatchetState } from '../ratchet/state';
import { ChannelEstablishment, ChannelEstablishmentFields } from './establishment';
import { MAX_ASSOCIATED_DATA_BYTES } from '../limits';

const EMPTY = new Uint8Array(0);
const MAGIC = Uint8Array.of(0x41, 0x4d, 0x43, 0x01); // "AMC", version 1

/** Options of a channel: the ratchet's limits (and clock, for tests). */
export type ChannelOptions = RatchetOptions;

/** The channel options read once and checked (`INVALID_ARGUMENT`), before anything is spent. */
function readChannelOptions(options: unknown): RatchetOptions {
  const opts = readOptions(options, ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now'] as const, 'channel options');
  checkRatchetOptions(opts);
  return opts as RatchetOptions;
}

/** Options of {@link SecureChannel.createReceiver}: the channel's, and a one-time pre-key the caller holds. */
export interface ReceiverOptions extends ChannelOptions {
  /** Answer with this caller-held one-time pre-key; nothing is consumed (see `X3DHRespondParams.heldOneTimePreKey`). */
  readonly heldOneTimePreKey?: OneTimePreKey;
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
  #closed = false;

  private constructor(ratchet: DoubleRatchet, ad: Uint8Array, messageCount: number) {
    this.#ratchet = ratchet;
    this.#ad = ad;
    this.#messageCount = messageCount;
  }

  /**
   * Opens a channel as the initiator: X3DH against `bundle` (checked: signature, identity binding,
   * low-order keys), then the sending ratchet. Send `establishment` to the peer with (or before)
   * the first message. The result destructures as an object or, like AGT's SDK, as a tuple.
   * @example
   * const { channel, establishment } = SecureChannel.createSender(aliceMgr, bobBundle, utf8('did:mesh:alice|did:mesh:bob'));
   * const [sameKind, ofResult] = SecureChannel.createSender(aliceMgr, bobBundle); // AGT style
   */
  static createSender(
    manager: X3DHKeyManager,
    bundle: PreKeyBundle,
    associatedData: Uint8Array = EMPTY,
    options: ChannelOptions = {},
  ): SenderChannel {
    assertManager(manager);
    assertAd(associatedData);
    const opts = readChannelOptions(options);
    // One read of the bundle: the key checked and signed is the key the ratchet starts from.
    const b = snapshotBundle(bundle);
    const x = manager.initiate(b);
    try {
      const ratchet = DoubleRatchet.initSender({ ...opts, sharedSecret: x.sharedSecret, remoteDhPublic: b.signedPreKey });
      const establishment = new ChannelEstablishment({
        initiatorIdentityKey: manager.identityKey.publicKey,
        ephemeralPublicKey: x.ephemeralPublicKey,
        usedOneTimeKeyId: x.usedOneTimeKeyId,
        signedPreKeyId: x.signedPreKeyId,
      });
      return senderChannel(new SecureChannel(ratchet, concatBytes(associatedData, x.associatedData), 0), establishment);
    } finally {
      memzero(x.sharedSecret);
    }
  }

  /**
   * Accepts a channel as the responder from the initiator's establishment (consumes the one-time
   * pre-key it names). Errors: `OTK_NOT_FOUND`, `SPK_NOT_FOUND`, `INVALID_KEY`, `MALFORMED_MESSAGE`,
   * `INVALID_ARGUMENT` (options, associated data). Everything is checked before the one-time pre-key
   * is spent: a failed call consumes nothing, and the same establishment can be accepted again.
   */
  static createReceiver(
    manager: X3DHKeyManager,
    establishment: ChannelEstablishment | ChannelEstablishmentFields,
    associatedData: Uint8Array = EMPTY,
    options: ReceiverOptions = {},
  ): SecureChannel {
    assertManager(manager);
    assertAd(associatedData);
    const { heldOneTimePreKey, ...channelOptions } = readOptions(
      options,
      ['maxSkip', 'maxSkippedKeys', 'skippedKeyMaxAgeMs', 'now', 'heldOneTimePreKey'] as const,
      'channel options',
    );
    const opts = readChannelOptions(channelOptions);
    const e = ChannelEstablishment.from(establishment);
    // respond spends the one-time pre-key only when it succeeds; what follows it cannot fail now.
    const r = manager.respond({
      peerIdentityKey: e.initiatorIdentityKey,
      ephemeralPublicKey: e.ephemeralPublicKey,
      usedOneTimeKeyId: e.usedOneTimeKeyId,
      signedPreKeyId: e.signedPreKeyId,
      heldOneTimePreKey: heldOneTimePreKey as OneTimePreKey | undefined,
    });
    try {
      const spk = manager.getSignedPreKey(r.signedPreKeyId);
      if (!spk) throw new E2EError('SPK_NOT_FOUND', 'signed pre-key vanished');
      const ratchet = DoubleRatchet.initReceiver({ ...opts, sharedSecret: r.sharedSecret, dhKeyPair: spk.keyPair });
      return new SecureChannel(ratchet, concatBytes(associatedData, r.associatedData), 0);
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

  /** The channel's associated data (`callerAD ‖ IK_A ‖ IK_B`), a copy. */
  get associatedData(): Uint8Array {
    return Uint8Array.from(this.#ad);
  }

  /**
   * The channel's saved state: `"AMC" 0x01 ‖ u32be(messageCount) ‖ u32be(AD length) ‖ AD ‖ ratchet
   * state`. It contains secrets: store it encrypted. {@link fromBytes} restores it.
   */
  toBytes(): Uint8Array {
    this.#assertOpen();
    const ratchet = this.#ratchet.state.toBytes();
    const w = new ByteWriter(12 + this.#ad.length + ratchet.length);
    w.bytes(MAGIC).u32(Math.min(this.#messageCount, 0xffffffff)).lengthPrefixed(this.#ad).bytes(ratchet);
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
    const r = new ByteReader(plainView(input), 'channel state'); // a plain view: the reader's copies are copies
    r.expect(MAGIC, 'not a channel state (or unknown version)');
    const messageCount = r.u32();
    const ad = r.lengthPrefixed();
    // The ratchet state is the rest; its own reader refuses truncation and trailing bytes.
    const state = RatchetState.fromBytes(plainView(input).subarray(12 + ad.length));
    return new SecureChannel(new DoubleRatchet(state, opts as { now?: () => number }), ad, messageCount);
  }

  #assertOpen(): void {
    if (this.#closed) throw new E2EError('CHANNEL_CLOSED', 'the channel is closed');
  }
}
