import { ready } from '../../lib/sodium';
import { ed25519KeyPair, ed25519Verify, fromBase64, fromHex, toHex, utf8 } from '../../lib/crypto';
import { X3DHKeyManager } from '../../lib/x3dh';
import { AgentIdentity, didFromPublicKey } from '../../lib/trust';
import { expectE2EError } from '../helpers/expect-error';

beforeAll(() => ready());

// RFC 8032 §7.1 test 1.
const SEED = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
const PK = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const SIG_EMPTY =
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

describe('AgentIdentity', () => {
  test('generate(): a fresh key whose DID certifies it', () => {
    const a = AgentIdentity.generate();
    const b = AgentIdentity.generate();
    expect(a.did).toBe(didFromPublicKey(a.publicKey));
    expect(a.isSelfCertifying).toBe(true);
    expect(a.did).not.toBe(b.did);
  });

  test('fromSeed is deterministic and signs as RFC 8032 says', () => {
    const id = AgentIdentity.fromSeed(SEED);
    expect(toHex(id.publicKey)).toBe(PK);
    expect(id.did).toBe('did:mesh:21fe31dfa154a261626bf854046fd227');
    expect(id.fingerprint).toBe('21FE 31DF A154 A261 626B F854 046F D227 1B7B ED4B');
    expect(toHex(id.sign(new Uint8Array(0)))).toBe(SIG_EMPTY);
    expect(id.verify(fromHex(SIG_EMPTY), new Uint8Array(0))).toBe(true);
    expect(id.verify(fromHex(SIG_EMPTY), utf8('x'))).toBe(false);
  });

  test("another DID form (AGT's random ids, names) is kept but not self-certifying", () => {
    const id = AgentIdentity.fromSeed(SEED, { did: 'did:mesh:0123456789abcdef0123456789abcdef' });
    expect(id.did).toBe('did:mesh:0123456789abcdef0123456789abcdef');
    expect(id.isSelfCertifying).toBe(false);
  });

  test('fromSecretKey copies the key and checks its halves agree', () => {
    const pair = ed25519KeyPair();
    const id = AgentIdentity.fromSecretKey(pair.secretKey, { did: 'did:mesh:alice' });
    pair.secretKey.fill(0);
    expect(ed25519Verify(id.sign(utf8('m')), utf8('m'), pair.publicKey)).toBe(true);
    const bad = ed25519KeyPair().secretKey;
    bad.set(ed25519KeyPair().publicKey, 32);
    expectE2EError(() => AgentIdentity.fromSecretKey(bad), 'INVALID_KEY');
    expectE2EError(() => AgentIdentity.fromSecretKey(new Uint8Array(32)), 'INVALID_KEY');
  });

  test('bad options are refused', () => {
    expectE2EError(() => AgentIdentity.fromSeed(SEED, { did: 'did:web:alice' }), 'INVALID_ARGUMENT');
    expectE2EError(() => AgentIdentity.fromSeed(SEED, null as never), 'INVALID_ARGUMENT');
    expectE2EError(() => AgentIdentity.fromSeed(new Uint8Array(31)), 'INVALID_KEY');
  });

  test('the publicKey getter returns a copy', () => {
    const id = AgentIdentity.fromSeed(SEED);
    id.publicKey.fill(0);
    expect(toHex(id.publicKey)).toBe(PK);
  });

  test('toJSON and printing show only public data', () => {
    const id = AgentIdentity.fromSeed(SEED, { did: 'did:mesh:alice' });
    const json = JSON.stringify(id);
    expect(JSON.parse(json)).toEqual({
      did: 'did:mesh:alice',
      publicKey: '11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
      fingerprint: id.fingerprint,
    });
    expect(json).not.toContain(toHex(SEED));
    expect(require('util').inspect(id)).not.toContain(toHex(SEED).slice(0, 16));
  });

  test('key managers: created from the identity, recognised, and read back', () => {
    const id = AgentIdentity.generate();
    const mgr = id.createKeyManager();
    expect(toHex(mgr.identityKeyEd)).toBe(toHex(id.publicKey));
    expect(id.ownsKeyManager(mgr)).toBe(true);
    expect(AgentIdentity.generate().ownsKeyManager(mgr)).toBe(false);
    const back = AgentIdentity.fromKeyManager(mgr, 'did:mesh:bob');
    expect(back.did).toBe('did:mesh:bob');
    expect(toHex(back.publicKey)).toBe(toHex(id.publicKey));
    expectE2EError(() => AgentIdentity.fromKeyManager({} as X3DHKeyManager, 'did:mesh:bob'), 'INVALID_ARGUMENT');
  });

  test('exportSecretKey returns a copy of seed ‖ public key', () => {
    const id = AgentIdentity.fromSeed(SEED);
    const sk = id.exportSecretKey();
    expect(toHex(sk)).toBe(toHex(SEED) + PK);
    sk.fill(0);
    expect(toHex(id.sign(new Uint8Array(0)))).toBe(SIG_EMPTY);
  });

  test('wipe() zeroes the secret key and refuses further use with INVALID_STATE', () => {
    const id = AgentIdentity.fromSeed(SEED);
    const exported = id.exportSecretKey();
    id.wipe();
    id.wipe();
    expect(id.isWiped).toBe(true);
    expectE2EError(() => id.sign(new Uint8Array(0)), 'INVALID_STATE');
    expectE2EError(() => id.exportSecretKey(), 'INVALID_STATE');
    expectE2EError(() => id.createKeyManager(), 'INVALID_STATE');
    expect(toHex(exported)).toBe(toHex(SEED) + PK); // the caller's copy is the caller's
    expect(id.verify(fromHex(SIG_EMPTY), new Uint8Array(0))).toBe(true); // public side still works
  });

  test('sign refuses a non-byte message', () => {
    expectE2EError(() => AgentIdentity.generate().sign('text' as never), 'INVALID_ARGUMENT');
  });

  test('the base64 public key decodes to the key', () => {
    const id = AgentIdentity.generate();
    expect(toHex(fromBase64(id.toJSON().publicKey))).toBe(toHex(id.publicKey));
  });
});
