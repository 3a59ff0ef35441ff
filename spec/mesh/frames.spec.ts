/** lib/mesh/frames.ts: the strict codecs, the proofs and AGT's encoding quirks (AGT-WIRE.md §1.2, §2.2, §2.3). */
import { ready } from '../../lib/sodium';
import { ed25519KeyPair, ed25519Sign, ed25519Verify, toBase64, toBase64Url, utf8 } from '../../lib/crypto';
import {
  CONNECT_PROOF_DOMAIN,
  FrameSigner,
  buildAgtRegistryAuth,
  buildConnectFrame,
  buildRegistration,
  buildRegistryAuth,
  connectProofMessage,
  decodeB64Lenient,
  decodeClientFrame,
  decodeConnectFrame,
  decodeServerFrame,
  errorFrame,
  isFrameDid,
  isMessageId,
  meshDidOf,
  parseProofTimestamp,
  parseRegistryAuth,
  registryProofMessage,
  verifyConnectProof,
} from '../../lib/mesh/frames';
import { thrownE2EError } from '../helpers/expect-error';

let signer: FrameSigner;
beforeAll(async () => {
  await ready();
  const kp = ed25519KeyPair();
  signer = { did: meshDidOf(kp.publicKey), publicKey: kp.publicKey, sign: (m) => ed25519Sign(kp.secretKey, m) };
});

describe('connect frame', () => {
  it('AGT form: signature over the timestamp only, standard padded base64, toISOString()', () => {
    const f = buildConnectFrame(signer, { nonce: false });
    expect(Object.keys(f)).toEqual(['v', 'type', 'from', 'public_key', 'timestamp', 'signature']);
    expect(f.public_key).toBe(toBase64(signer.publicKey));
    expect(ed25519Verify(decodeB64Lenient(f.signature)!, utf8(f.timestamp), signer.publicKey)).toBe(true);
    expect(verifyConnectProof(decodeConnectFrame(JSON.stringify(f)))).toMatchObject({ ok: true, strong: false });
  });

  it('our form: domain-separated message with the nonce; features kept, unknown ones dropped', () => {
    const f = buildConnectFrame(signer, { features: ['welcome', 'receipts'] });
    expect(connectProofMessage(f.from, f.timestamp, f.nonce)).toEqual(
      utf8(`${CONNECT_PROOF_DOMAIN}\n${f.from}\n${f.timestamp}\n${f.nonce}`),
    );
    const d = decodeConnectFrame(JSON.stringify({ ...f, features: ['receipts', 'teleport'] }));
    expect(d.features).toEqual(['receipts']);
    expect(verifyConnectProof(d)).toMatchObject({ ok: true, strong: true });
    // The nonce is signed: changing it breaks the proof.
    expect(verifyConnectProof({ ...d, nonce: toBase64(new Uint8Array(16)) })).toEqual({
      ok: false,
      detail: 'signature verification failed',
    });
  });

  it('decode errors carry the close code as reason', () => {
    expect(thrownE2EError(() => decodeConnectFrame('x')).reason).toBe('4001');
    expect(thrownE2EError(() => decodeConnectFrame('{"type":"heartbeat"}')).reason).toBe('4001');
    expect(thrownE2EError(() => decodeConnectFrame('{"type":"connect"}')).reason).toBe('4002');
    expect(thrownE2EError(() => decodeConnectFrame('{"type":"connect","from":"did:mesh:x"}')).reason).toBe('4005');
  });

  it('the ±300 s window, both ways', () => {
    const future = buildConnectFrame(signer, { nonce: false, now: new Date(Date.now() + 240_000) });
    const past = buildConnectFrame(signer, { nonce: false, now: new Date(Date.now() - 400_000) });
    expect(verifyConnectProof(future).ok).toBe(true);
    expect(verifyConnectProof(past)).toEqual({ ok: false, detail: 'timestamp outside replay window' });
  });
});

describe('client and server frames', () => {
  it('routed frames keep every field; to must be a DID, id 1–128 printable', () => {
    const f = {
      v: 1,
      type: 'knock',
      to: signer.did,
      id: 'k1',
      establishment: { ik: 'a', ek: 'b', otk: 3 },
      intent: { action: 'establish_session' },
    };
    expect(decodeClientFrame(JSON.stringify(f))).toEqual(f);
    expect(thrownE2EError(() => decodeClientFrame(JSON.stringify({ ...f, to: 'bob' }))).reason).toBe('malformed_frame');
    expect(thrownE2EError(() => decodeClientFrame(JSON.stringify({ ...f, id: 'x'.repeat(129) }))).reason).toBe('malformed_frame');
    expect(thrownE2EError(() => decodeClientFrame(JSON.stringify({ ...f, from: 5 }))).reason).toBe('malformed_frame');
    expect(thrownE2EError(() => decodeClientFrame('{"type":"pending_messages"}')).reason).toBe('unknown_type');
    expect(decodeClientFrame('{"v":1,"type":"ack","id":"u-1","extra":1}')).toEqual({ type: 'ack', id: 'u-1' });
  });

  it('server frames: routed (from required), error, connected, accepted, heartbeat_ack; unknown → unknown_type', () => {
    expect(decodeServerFrame(JSON.stringify({ type: 'message', from: signer.did, to: signer.did, id: '1', ciphertext: 'x' })).type).toBe(
      'message',
    );
    expect(thrownE2EError(() => decodeServerFrame(JSON.stringify({ type: 'message', to: signer.did, id: '1' }))).reason).toBe(
      'malformed_frame',
    );
    expect(decodeServerFrame('{"type":"error","detail":"Unknown frame type: fetch_pending"}')).toEqual({
      type: 'error',
      detail: 'Unknown frame type: fetch_pending',
    });
    expect(decodeServerFrame(`{"type":"accepted","id":"1","to":"${signer.did}","duplicate":false}`).type).toBe('accepted');
    expect(thrownE2EError(() => decodeServerFrame('{"type":"presence"}')).reason).toBe('unknown_type');
  });

  it("error frames: AGT's exact {type, detail} unless extended", () => {
    expect(errorFrame('x', false, 'inbox_full', 'id1')).toEqual({ type: 'error', detail: 'x' });
    expect(errorFrame('x', true, 'inbox_full', 'id1')).toEqual({ type: 'error', detail: 'x', code: 'inbox_full', id: 'id1' });
  });

  it('isFrameDid / isMessageId bounds', () => {
    expect(isFrameDid(signer.did)).toBe(true);
    expect(isFrameDid('did:mesh:a|b')).toBe(false);
    expect(isFrameDid('did:' + 'a'.repeat(300))).toBe(false);
    expect(isMessageId(crypto.randomUUID())).toBe(true);
    expect(isMessageId('has space')).toBe(false);
  });
});

describe('registry auth and registration', () => {
  it('our header binds method, path+query, body, timestamp and nonce', () => {
    const h = buildRegistryAuth(signer, { method: 'put', path: '/v1/agents/x/prekeys?y=1', body: '{"a":1}' });
    const a = parseRegistryAuth(h);
    expect(a).toMatchObject({ scheme: 'mesh', did: signer.did });
    if (a?.scheme !== 'mesh') throw new Error('scheme');
    const msg = (over: Partial<Parameters<typeof registryProofMessage>[0]>) =>
      registryProofMessage({
        did: a.did,
        method: 'PUT',
        path: '/v1/agents/x/prekeys?y=1',
        timestamp: a.timestamp,
        nonce: a.nonce,
        body: utf8('{"a":1}'),
        ...over,
      });
    const sig = decodeB64Lenient(a.signature)!;
    expect(ed25519Verify(sig, msg({}), signer.publicKey)).toBe(true);
    for (const over of [{ method: 'DELETE' }, { path: '/v1/agents/x/prekeys' }, { body: utf8('{"a":2}') }, { nonce: 'other' }]) {
      expect(ed25519Verify(sig, msg(over), signer.publicKey)).toBe(false);
    }
  });

  it("AGT header and registration body as AGT's registry reads them", () => {
    const h = buildAgtRegistryAuth(signer);
    const a = parseRegistryAuth(h);
    expect(a).toMatchObject({ scheme: 'agt', did: signer.did });
    expect(parseRegistryAuth('Ed25519-Timestamp a b')).toBeNull();
    expect(parseRegistryAuth('Bearer x')).toBeNull();
    const r = buildRegistration(signer, { capabilities: ['c'] });
    expect(r.public_key).toBe(toBase64Url(signer.publicKey));
    expect(ed25519Verify(decodeB64Lenient(r.proof)!, utf8(r.public_key + r.proof_timestamp), signer.publicKey)).toBe(true);
  });

  it('timestamps: offset required; Z and +00:00; more than ms digits accepted', () => {
    expect(parseProofTimestamp('2026-01-01T00:00:00Z')).toBe(Date.UTC(2026, 0, 1));
    expect(parseProofTimestamp('2026-01-01T00:00:00.123456+00:00')).toBe(Date.UTC(2026, 0, 1) + 123);
    expect(parseProofTimestamp('2026-01-01T01:00:00+01:00')).toBe(Date.UTC(2026, 0, 1));
    expect(parseProofTimestamp('2026-01-01T00:00:00')).toBe('naive');
    expect(parseProofTimestamp('2026-01-01 00:00:00Z')).toBeNull();
  });

  it('lenient base64 as AGT decodes: standard, url-safe, with or without padding', () => {
    const bytes = Uint8Array.from([251, 255, 0, 1, 2]);
    for (const s of [toBase64(bytes), toBase64(bytes).replace(/=+$/, ''), toBase64Url(bytes), toBase64Url(bytes) + '=']) {
      expect(decodeB64Lenient(s)).toEqual(bytes);
    }
    expect(decodeB64Lenient('!!')).toBeNull();
  });
});
