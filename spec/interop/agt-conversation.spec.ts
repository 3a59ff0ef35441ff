/**
 * Byte-for-byte replay of the AGT reference run (spec/vectors/agt/conversation-1.txt): every key,
 * DH output, SK, header, nonce, ciphertext, envelope and both final states.
 */
import { ready } from '../../lib/sodium';
import { setRandomSourceForTesting } from '../../lib/entropy';
import { ed25519KeyPairFromSeed, fromHex, toHex, utf8, fromUtf8, x25519 } from '../../lib/crypto';
import { X3DHKeyManager, x3dhKdf } from '../../lib/x3dh';
import { DoubleRatchet, EncryptedMessage, RatchetState, RatchetStateDict, encodeHeader } from '../../lib/ratchet';
import { ChannelEstablishment, SecureChannel } from '../../lib/channel';
import { agtDrbg, loadConversation } from '../helpers/agt-vectors';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const conv = loadConversation();
const sec = (title: string): Json => {
  const v = conv.get(title);
  if (v === undefined) throw new Error(`vector section missing: ${title}`);
  return v as Json;
};
const AD = utf8('did:mesh:alice|did:mesh:bob');

function managers() {
  const a = ed25519KeyPairFromSeed(new Uint8Array(32).fill(0xa1));
  const b = ed25519KeyPairFromSeed(new Uint8Array(32).fill(0xb0));
  return { alice: X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey), bob: X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey) };
}

function expectMessage(m: EncryptedMessage, v: Json): void {
  expect(toHex(m.header.dhPublicKey)).toBe(v.header.dh_public_key);
  expect(m.header.previousChainLength).toBe(v.header.previous_chain_length);
  expect(m.header.messageNumber).toBe(v.header.message_number);
  expect(toHex(encodeHeader(m.header))).toBe(v.header_serialized);
  expect(toHex(m.ciphertext)).toBe(v['ciphertext(nonce12||ct||tag16)']);
  expect(toHex(m.serialize())).toBe(v['EncryptedMessage.serialize()']);
}

beforeAll(() => ready());
afterEach(() => setRandomSourceForTesting(null));

describe('AGT conversation-1 vectors', () => {
  test('the vector file has every section this suite checks', () => {
    expect(conv.size).toBe(16);
  });

  test('replays the whole run byte for byte (X3DH + DoubleRatchet level)', () => {
    const drbg = agtDrbg();
    setRandomSourceForTesting(drbg.source);
    const { alice, bob } = managers();
    const ids = sec('identities');
    expect(toHex(alice.identityKeyEd)).toBe(ids.alice_ed25519_pub);
    expect(toHex(alice.identityKey.privateKey)).toBe(ids.alice_x25519_priv);
    expect(toHex(alice.identityKey.publicKey)).toBe(ids.alice_x25519_pub);
    expect(toHex(bob.identityKey.publicKey)).toBe(ids.bob_x25519_pub);
    expect(toHex(bob.identityKey.privateKey)).toBe(ids.bob_x25519_priv);

    const pk = sec('bob prekeys');
    const spk = bob.generateSignedPreKey();
    expect(spk.keyId).toBe(pk.spk_id);
    expect(toHex(spk.keyPair.privateKey)).toBe(pk.spk_priv);
    expect(toHex(spk.keyPair.publicKey)).toBe(pk.spk_pub);
    expect(toHex(spk.signature)).toBe(pk['spk_sig(ed25519 over raw 32-byte spk_pub)']);
    const otks = bob.generateOneTimePreKeys(2);
    expect(otks.map((o) => [o.keyId, toHex(o.keyPair.privateKey), toHex(o.keyPair.publicKey)])).toEqual(
      pk.otks.map((o: Json) => [o.id, o.priv, o.pub]),
    );

    const bundle = bob.getPublicBundle({ otkId: 1 });
    const vb = sec('PreKeyBundle (dataclass fields, hex here; module itself has no wire encoding)');
    expect(toHex(bundle.identityKey)).toBe(vb.identity_key);
    expect(toHex(bundle.identityKeyEd)).toBe(vb.identity_key_ed);
    expect(toHex(bundle.signedPreKey)).toBe(vb.signed_pre_key);
    expect(toHex(bundle.signedPreKeySignature)).toBe(vb.signed_pre_key_signature);
    expect(bundle.signedPreKeyId).toBe(vb.signed_pre_key_id);
    expect(toHex(bundle.oneTimePreKey as Uint8Array)).toBe(vb.one_time_pre_key);
    expect(bundle.oneTimePreKeyId).toBe(vb.one_time_pre_key_id);

    const init = alice.initiate(bundle);
    const est = sec('ChannelEstablishment');
    expect(toHex(init.ephemeralPublicKey)).toBe(est.ephemeral_public_key);
    expect(init.usedOneTimeKeyId).toBe(est.used_one_time_key_id);
    const dh = sec('X3DH DH outputs (responder view) and SK');
    expect(toHex(init.sharedSecret)).toBe(dh.SK);
    const adv = sec('channel AD (bytes fed as AEAD AD prefix)');
    expect(toHex(AD) + toHex(init.associatedData)).toBe(adv.alice_side);

    // The responder's four DH outputs, recomputed from Bob's keys, equal the reference's.
    const spkPriv = fromHex(pk.spk_priv);
    const ek = init.ephemeralPublicKey;
    const dhs = [
      x25519(spkPriv, alice.identityKey.publicKey),
      x25519(bob.identityKey.privateKey, ek),
      x25519(spkPriv, ek),
      x25519(fromHex(pk.otks[1].priv), ek),
    ];
    expect(dhs.map(toHex)).toEqual([dh['DH1=DH(IKa,SPKb)'], dh['DH2=DH(EKa,IKb)'], dh['DH3=DH(EKa,SPKb)'], dh['DH4=DH(EKa,OPKb)']]);
    expect(toHex(x3dhKdf(dhs))).toBe(dh.SK);

    const a = DoubleRatchet.initSender({ sharedSecret: init.sharedSecret, remoteDhPublic: bundle.signedPreKey });
    expect(a.state.toDict()).toEqual(sec('alice ratchet state right after init_sender (to_dict)'));
    const resp = bob.respond({ peerIdentityKey: alice.identityKey.publicKey, ephemeralPublicKey: ek, usedOneTimeKeyId: 1 });
    expect(toHex(resp.sharedSecret)).toBe(dh.SK);
    expect(toHex(AD) + toHex(resp.associatedData)).toBe(adv.bob_side);
    const b = DoubleRatchet.initReceiver({ sharedSecret: resp.sharedSecret, dhKeyPair: spk.keyPair });
    expect(b.state.toDict()).toEqual(sec('bob ratchet state right after init_receiver (root_key == X3DH SK)'));

    const adA = new Uint8Array([...AD, ...init.associatedData]);
    const adB = new Uint8Array([...AD, ...resp.associatedData]);
    const m1 = a.encrypt(utf8('hello bob'), adA);
    const m2 = a.encrypt(utf8('second'), adA);
    expectMessage(m1, sec("A->B #1 'hello bob'"));
    expectMessage(m2, sec("A->B #2 'second'"));
    expect(fromUtf8(b.decrypt(m2.serialize(), adB))).toBe('second');
    expect(fromUtf8(b.decrypt(m1.serialize(), adB))).toBe('hello bob');
    const r1 = b.encrypt(utf8('hi alice'), adB);
    expectMessage(r1, sec("B->A #1 'hi alice'"));
    expect(fromUtf8(a.decrypt(r1, adA))).toBe('hi alice');
    const m3 = a.encrypt(utf8('third'), adA);
    expectMessage(m3, sec("A->B after turn change 'third'"));
    expect(fromUtf8(b.decrypt(m3, adB))).toBe('third');

    expect(a.state.toDict()).toEqual(sec('alice state after exchange (to_dict)'));
    expect(b.state.toDict()).toEqual(sec('bob state after exchange (to_dict)'));
    const vDraws = conv.get(
      'RNG draws in order (n, hex): spk, otk0, otk1, x3dh ephemeral, alice initial ratchet key, nonce#1, nonce#2, bob ratchet key (DH step), nonce B#1, alice ratchet key (DH step), nonce A#3',
    ) as Array<[number, string]>;
    expect(drbg.draws.map(([n, d]) => [n, toHex(d)])).toEqual(vDraws);
    expect(vDraws).toHaveLength(12);
  });

  test('replays the run through SecureChannel: same envelopes, 4 messages each side', () => {
    setRandomSourceForTesting(agtDrbg().source);
    const { alice, bob } = managers();
    bob.generateSignedPreKey();
    bob.generateOneTimePreKeys(2);
    const { channel: ac, establishment } = SecureChannel.createSender(alice, bob.getPublicBundle({ otkId: 1 }), AD);
    const est = sec('ChannelEstablishment');
    expect(toHex(establishment.initiatorIdentityKey)).toBe(est.initiator_identity_key);
    expect(toHex(establishment.ephemeralPublicKey)).toBe(est.ephemeral_public_key);
    expect(establishment.usedOneTimeKeyId).toBe(est.used_one_time_key_id);
    const m1 = ac.send(utf8('hello bob'));
    const m2 = ac.send(utf8('second'));
    const bc = SecureChannel.createReceiver(bob, ChannelEstablishment.fromJSON(JSON.stringify(establishment.toJSON())), AD);
    expect(fromUtf8(bc.receive(m2.serialize()))).toBe('second');
    expect(fromUtf8(bc.receive(m1.serialize()))).toBe('hello bob');
    const r1 = bc.send(utf8('hi alice'));
    expect(fromUtf8(ac.receive(EncryptedMessage.fromJSON(JSON.stringify(r1.toJSON()))))).toBe('hi alice');
    const m3 = ac.send(utf8('third'));
    expect(fromUtf8(bc.receive(m3.serialize()))).toBe('third');
    expectMessage(m1, sec("A->B #1 'hello bob'"));
    expectMessage(m2, sec("A->B #2 'second'"));
    expectMessage(r1, sec("B->A #1 'hi alice'"));
    expectMessage(m3, sec("A->B after turn change 'third'"));
    expect([ac.messageCount, bc.messageCount]).toEqual([4, 4]);
  });

  test('Bob decrypts the reference envelopes with no injected randomness', () => {
    const { bob } = managers();
    const pk = sec('bob prekeys');
    const state = RatchetState.fromDict(sec('bob ratchet state right after init_receiver (root_key == X3DH SK)') as RatchetStateDict);
    const bobRatchet = new DoubleRatchet(state);
    const ad = fromHex(sec('channel AD (bytes fed as AEAD AD prefix)').bob_side);
    expect(toHex(bob.identityKey.publicKey)).toBe(sec('identities').bob_x25519_pub);
    expect(toHex(state.dhSelf.privateKey)).toBe(pk.spk_priv);
    const e2 = fromHex(sec("A->B #2 'second'")['EncryptedMessage.serialize()']);
    const e1 = fromHex(sec("A->B #1 'hello bob'")['EncryptedMessage.serialize()']);
    expect(fromUtf8(bobRatchet.decrypt(e2, ad))).toBe('second');
    expect(fromUtf8(bobRatchet.decrypt(e1, ad))).toBe('hello bob');
    expect(bobRatchet.state.skippedKeys.size).toBe(0);
  });
});
