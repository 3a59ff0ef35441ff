/**
 * The mutual handshake's binding. AGT's signed payload does not name the verifier, so an answer
 * could be relayed: a peer could pass a third party's challenge off as its own counter-challenge
 * and forward our signature. To rule that out, a counter-challenge's nonce is derived from
 * everything the exchange has fixed so far — which agent opened, which answered, the opener's
 * challenge and the answerer's fresh response nonce — and the opener signs only a
 * counter-challenge whose nonce is exactly that for the peer it is opening to. A relay that
 * forwards Bob's counter-challenge to Alice as its own fails: Bob derived it with Bob as the
 * answerer, Alice expects the relay's DID there. The messages keep AGT's format.
 */
import { E2EError } from '../errors';
import { readFields, sha256, toHex, utf8, writeU32BE } from '../crypto';
import { assertMeshDid } from './did';
import { HandshakeChallenge, parseHandshakeChallenge } from './handshake-messages';

const LABEL = 'AgentMesh_MutualHandshake_v2';

/** Who sent the first challenge (`opener`, who will sign the counter-challenge) and who answered it. */
export interface MutualRoles {
  /** The DID of the agent that sent the first challenge. */
  readonly openerDid: string;
  /** The DID of the agent that answered it and sends the counter-challenge. */
  readonly answererDid: string;
}

/**
 * The nonce of the counter-challenge that `roles.answererDid` sends back to `roles.openerDid`
 * after answering `challenge` with a response carrying `responseNonce`: lowercase hex of
 * SHA-256 over UTF-8 `AgentMesh_MutualHandshake_v2` ‖ 0x00 and then, each as u32be(length) ‖ UTF-8
 * bytes: openerDid, answererDid, challenge_id, nonce, response_nonce. 64 characters.
 */
export function counterChallengeNonce(challenge: HandshakeChallenge, responseNonce: string, roles: MutualRoles): string {
  const c = parseHandshakeChallenge(challenge); // one read of each field
  const { openerDid, answererDid } = readFields(roles, ['openerDid', 'answererDid'] as const, 'roles');
  assertMeshDid(openerDid, 'roles.openerDid');
  assertMeshDid(answererDid, 'roles.answererDid');
  if (typeof responseNonce !== 'string' || responseNonce.length > 256)
    throw new E2EError('INVALID_ARGUMENT', 'responseNonce must be a string of at most 256 characters');
  const fields = [openerDid, answererDid, c.challenge_id, c.nonce, responseNonce].map((f) => utf8(f));
  const label = utf8(LABEL);
  const out = new Uint8Array(label.length + 1 + fields.reduce((n, f) => n + 4 + f.length, 0));
  out.set(label, 0);
  let off = label.length + 1;
  for (const f of fields) {
    writeU32BE(out, off, f.length);
    out.set(f, off + 4);
    off += 4 + f.length;
  }
  return toHex(sha256(out));
}
