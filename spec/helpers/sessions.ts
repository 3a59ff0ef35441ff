/**
 * Fresh live sessions for tests: a pair of `SecureChannel`s from random identities (the full X3DH
 * path) and a pair of bare `DoubleRatchet`s over a random shared secret. Call after `await ready()`.
 */
import { ed25519KeyPair, randomBytes, x25519KeyPair } from '../../lib/crypto';
import { X3DHKeyManager } from '../../lib/x3dh';
import { ChannelEstablishment, ChannelOptions, SecureChannel } from '../../lib/channel';
import { DoubleRatchet, RatchetOptions } from '../../lib/ratchet';

/** Two open channels: `alice` initiated, `bob` accepted her establishment. */
export interface ChannelPair {
  readonly alice: SecureChannel;
  readonly bob: SecureChannel;
  readonly aliceManager: X3DHKeyManager;
  readonly bobManager: X3DHKeyManager;
  readonly establishment: ChannelEstablishment;
}

/**
 * Alice and Bob from fresh Ed25519 identities: Bob publishes a signed pre-key and one one-time
 * pre-key, Alice opens a channel to his bundle, Bob accepts it. Both channels get the same
 * caller associated data and ratchet options.
 * @example
 * const { alice, bob } = channelPair();
 * bob.receive(alice.send(utf8('hello')));
 */
export function channelPair(opts: { associatedData?: Uint8Array; options?: ChannelOptions } = {}): ChannelPair {
  const ad = opts.associatedData ?? new Uint8Array(0);
  const a = ed25519KeyPair();
  const b = ed25519KeyPair();
  const aliceManager = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
  const bobManager = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
  bobManager.generateSignedPreKey();
  const [otk] = bobManager.generateOneTimePreKeys(1);
  const bundle = bobManager.getPublicBundle({ otkId: otk.keyId });
  const { channel: alice, establishment } = SecureChannel.createSender(aliceManager, bundle, ad, opts.options);
  const bob = SecureChannel.createReceiver(bobManager, establishment, ad, opts.options);
  return { alice, bob, aliceManager, bobManager, establishment };
}

/** Two bare ratchets over one random shared secret: `alice` the sender, `bob` the receiver. */
export interface RatchetPair {
  readonly alice: DoubleRatchet;
  readonly bob: DoubleRatchet;
}

/**
 * Alice as sender to Bob's fresh ratchet key pair (standing in for his signed pre-key), with the
 * same options on both sides.
 */
export function ratchetPair(options: RatchetOptions = {}): RatchetPair {
  const sharedSecret = randomBytes(32);
  const spk = x25519KeyPair();
  const alice = DoubleRatchet.initSender({ ...options, sharedSecret, remoteDhPublic: spk.publicKey });
  const bob = DoubleRatchet.initReceiver({ ...options, sharedSecret, dhKeyPair: spk });
  return { alice, bob };
}
