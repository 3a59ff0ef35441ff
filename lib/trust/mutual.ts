/**
 * The mutual handshake's binding. AGT's signed payload does not name the verifier, so an answer
 * could be relayed: a peer could pass a third party's challenge off as its own counter-challenge
 * and forward our signature. To rule that out, a counter-challenge's nonce is derived from the
 * challenge it answers and the answer's fresh response nonce, and the opener signs only a
 * counter-challenge whose nonce is exactly that. The messages keep AGT's format.
 */
import { concatBytes, sha256, toHex, utf8 } from '../crypto';
import { HandshakeChallenge } from './handshake-messages';

const LABEL = 'AgentMesh_MutualHandshake_v1';

/**
 * The nonce of the counter-challenge that answers `challenge` with a response carrying
 * `responseNonce`: lowercase hex of SHA-256(UTF-8 `AgentMesh_MutualHandshake_v1` ‖ 0x00 ‖
 * UTF-8 `challenge_id:nonce:response_nonce`), 64 characters.
 */
export function counterChallengeNonce(challenge: HandshakeChallenge, responseNonce: string): string {
  const input = concatBytes(utf8(LABEL), new Uint8Array(1), utf8(`${challenge.challenge_id}:${challenge.nonce}:${responseNonce}`));
  return toHex(sha256(input));
}
