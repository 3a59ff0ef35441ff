/**
 * Finding 12: no work before size checks. Oversized text is refused before JSON.parse, oversized
 * base64/hex fields before decoding, oversized envelopes before the WASM heap is touched; a forged
 * envelope within the cap leaves the scratch region at its working size. Asserted on work done
 * (decoders not called, heap not grown), never on timings.
 */
import naclUtil = require('tweetnacl-util');
import * as bytes from '../lib/crypto/bytes';
import { ed25519KeyPair, toBase64, utf8 } from '../lib/crypto';
import { SCRATCH_WORKING_BYTES, scratchCapacity } from '../lib/crypto/heap';
import { X3DHKeyManager, bundleFromJSON, bundleToJSON } from '../lib/x3dh';
import { ChannelEstablishment, SecureChannel } from '../lib/channel';
import { EncryptedMessage, MAX_CIPHERTEXT_BASE64_CHARS, MAX_ENVELOPE_BYTES, MAX_MESSAGE_JSON_CHARS, RatchetState } from '../lib/ratchet';
import { ready, sodium } from '../lib/sodium';
import { expectE2EError } from './helpers/expect-error';
import { channelPair, ratchetPair } from './helpers/sessions';
import { MAX_BUNDLE_JSON_CHARS, MAX_ESTABLISHMENT_JSON_CHARS } from '../lib/limits';

beforeAll(() => ready());
afterEach(() => jest.restoreAllMocks());

/** Spies on every decoder and parser the library uses, so a test can assert none of them ran. */
function spyDecoders(): jest.SpyInstance[] {
  return [
    jest.spyOn(JSON, 'parse'),
    jest.spyOn(bytes, 'fromBase64'),
    jest.spyOn(bytes, 'fromBase64Url'),
    jest.spyOn(bytes, 'fromHex'),
    jest.spyOn(naclUtil, 'decodeBase64'),
  ];
}
/** Calls that were handed more than `chars` characters (default: none at all, `chars` = -1). */
const calls = (spies: jest.SpyInstance[], chars = -1): number =>
  spies.reduce((n, s) => n + s.mock.calls.filter(([a]) => typeof a === 'string' && a.length > chars).length, 0);

describe('EncryptedMessage.fromJSON', () => {
  const m = (): EncryptedMessage => channelPair().alice.send(utf8('x'));

  test('a ciphertext one base64 quantum above the largest valid one: MESSAGE_TOO_LARGE, nothing decoded', () => {
    const j = m().toJSON();
    const forged = { header: j.header, ciphertext: 'A'.repeat(MAX_CIPHERTEXT_BASE64_CHARS + 4) };
    const spies = spyDecoders();
    expectE2EError(() => EncryptedMessage.fromJSON(forged), 'MESSAGE_TOO_LARGE');
    expect(calls(spies)).toBe(0);
  });

  test('a 64 MiB JSON text: MESSAGE_TOO_LARGE before JSON.parse', () => {
    const text = `{"header":{"dh":"","pn":0,"n":0},"ciphertext":"${'A'.repeat(64 * 1024 * 1024)}"}`;
    expect(text.length).toBeGreaterThan(MAX_MESSAGE_JSON_CHARS);
    const spies = spyDecoders();
    expectE2EError(() => EncryptedMessage.fromJSON(text), 'MESSAGE_TOO_LARGE');
    expect(calls(spies)).toBe(0);
  });

  test('a ratchet key that is not 44 characters: MALFORMED_MESSAGE, nothing decoded', () => {
    const j = m().toJSON();
    const spies = spyDecoders();
    expectE2EError(() => EncryptedMessage.fromJSON({ ...j, header: { ...j.header, dh: 'A'.repeat(1 << 20) } }), 'MALFORMED_MESSAGE');
    expect(calls(spies)).toBe(0);
  });

  test('the largest valid size still parses', () => {
    const j = m().toJSON();
    expect(EncryptedMessage.fromJSON(JSON.stringify(j)).toJSON()).toEqual(j);
    expect(MAX_CIPHERTEXT_BASE64_CHARS).toBe(4 * Math.ceil((MAX_ENVELOPE_BYTES - 44) / 3));
  });
});

describe('establishments, bundles, saved states', () => {
  test('ChannelEstablishment.fromJSON: long text or long keys are refused undecoded', () => {
    const { establishment } = channelPair();
    const j = establishment.toJSON();
    const spies = spyDecoders();
    expectE2EError(() => ChannelEstablishment.fromJSON(' '.repeat(MAX_ESTABLISHMENT_JSON_CHARS + 1)), 'MALFORMED_MESSAGE');
    expectE2EError(() => ChannelEstablishment.fromJSON({ ...j, ek: 'A'.repeat(1 << 24) }), 'MALFORMED_MESSAGE');
    expect(calls(spies)).toBe(0);
    jest.restoreAllMocks();
    expect(ChannelEstablishment.fromJSON(JSON.stringify(j)).toJSON()).toEqual(j);
  });

  test('bundleFromJSON: long text or long keys are refused undecoded', () => {
    const id = ed25519KeyPair();
    const mgr = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey);
    mgr.generateSignedPreKey();
    const j = bundleToJSON(mgr.getPublicBundle());
    const spies = spyDecoders();
    expectE2EError(() => bundleFromJSON(' '.repeat(MAX_BUNDLE_JSON_CHARS + 1)), 'MALFORMED_MESSAGE');
    expectE2EError(() => bundleFromJSON({ ...j, identity_key: 'A'.repeat(1 << 24) }), 'INVALID_KEY');
    expectE2EError(
      () => bundleFromJSON({ ...j, signed_pre_key: { ...j.signed_pre_key, signature: 'A'.repeat(1 << 24) } }),
      'BAD_SIGNATURE',
    );
    expect(calls(spies, 100)).toBe(0); // the genuine short fields before it may be decoded; the long one never
  });

  test('RatchetState.fromDict: a key that is not 64 hex characters is refused undecoded', () => {
    const { alice } = ratchetPair();
    const d = alice.state.toDict();
    const spies = spyDecoders();
    expectE2EError(() => RatchetState.fromDict({ ...d, root_key: 'a'.repeat(1 << 24) }), 'MALFORMED_MESSAGE');
    expectE2EError(() => RatchetState.fromDict({ ...d, dh_self_private: 'a'.repeat(1 << 24) }), 'MALFORMED_MESSAGE');
    expect(calls(spies, 64)).toBe(0); // genuine 64-character keys before it may be decoded; the long one never
  });

  test('X3DHKeyManager.fromState: an oversized key is refused undecoded', () => {
    const id = ed25519KeyPair();
    const s = X3DHKeyManager.fromEd25519Keys(id.secretKey, id.publicKey).exportState();
    const spies = spyDecoders();
    expectE2EError(() => X3DHKeyManager.fromState({ ...s, identitySecretKey: '0'.repeat(1 << 24) }), 'INVALID_KEY');
    expect(calls(spies)).toBe(0);
  });
});

describe('the WASM heap', () => {
  const forgedEnvelope = (size: number, from: Uint8Array): Uint8Array => {
    const env = new Uint8Array(size);
    env.set(from.subarray(0, 44)); // a genuine prefix and header: the current chain
    return env;
  };

  test('an envelope above MAX_ENVELOPE_BYTES is refused (MESSAGE_TOO_LARGE) before the heap is touched', () => {
    const { alice, bob } = channelPair();
    const first = alice.send(utf8('1')).serialize();
    bob.receive(first);
    const env = forgedEnvelope(MAX_ENVELOPE_BYTES + 1, first);
    const raw = sodium().raw;
    const heapBefore = raw.HEAPU8.length;
    const capBefore = scratchCapacity();
    const malloc = jest.spyOn(raw, '_malloc');
    expectE2EError(() => bob.receive(env), 'MESSAGE_TOO_LARGE');
    expectE2EError(() => EncryptedMessage.deserialize(env), 'MESSAGE_TOO_LARGE');
    expect(malloc).not.toHaveBeenCalled();
    expect(raw.HEAPU8.length).toBe(heapBefore);
    expect(scratchCapacity()).toBe(capBefore);
  });

  test('a forged envelope at the cap fails (DECRYPT_FAILED) without growing the WASM memory or the scratch region', () => {
    const { alice, bob } = channelPair();
    const first = alice.send(utf8('1')).serialize();
    bob.receive(first);
    const env = forgedEnvelope(MAX_ENVELOPE_BYTES, alice.send(utf8('2')).serialize());
    const raw = sodium().raw;
    const heapBefore = raw.HEAPU8.length;
    expectE2EError(() => bob.receive(env), 'DECRYPT_FAILED');
    expect(scratchCapacity()).toBeLessThanOrEqual(SCRATCH_WORKING_BYTES);
    // Through a fixed window: the memory did not grow at all.
    expect(raw.HEAPU8.length).toBe(heapBefore);
    expectE2EError(() => bob.receive(env), 'DECRYPT_FAILED');
    expect(raw.HEAPU8.length).toBe(heapBefore);
    expect(scratchCapacity()).toBeLessThanOrEqual(SCRATCH_WORKING_BYTES);
    // The channel is unchanged and goes on.
    expect(bob.receive(alice.send(utf8('3')))).toEqual(utf8('3'));
  });

  test('a large genuine message decrypts, then the region returns to its working size', () => {
    const { alice, bob } = channelPair();
    const big = new Uint8Array(2 * 1024 * 1024).fill(7);
    expect(Buffer.compare(bob.receive(alice.send(big)), big)).toBe(0); // (toEqual is slow on MiBs)
    expect(scratchCapacity()).toBeLessThanOrEqual(SCRATCH_WORKING_BYTES);
    expect(toBase64(bob.receive(alice.send(utf8('small'))))).toBe(toBase64(utf8('small')));
  });
});

describe('SecureChannel.send', () => {
  test('a plaintext above the cap is refused before the heap is touched', () => {
    const { alice } = channelPair();
    const raw = sodium().raw;
    const malloc = jest.spyOn(raw, '_malloc');
    expectE2EError(() => alice.send(new Uint8Array(16 * 1024 * 1024 + 1)), 'MESSAGE_TOO_LARGE');
    expect(malloc).not.toHaveBeenCalled();
    void SecureChannel;
  });
});
