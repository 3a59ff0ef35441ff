/** The X3DH key derivation of PROTOCOL.md. */
import { concatBytes, hkdfSha256, memzero, utf8 } from '../crypto';

const X3DH_INFO = utf8('AgentMesh_X3DH_v1');
const ZERO_SALT = new Uint8Array(32);
// X3DH §2.2: 32 bytes of 0xFF before the DH outputs (domain separation from XEdDSA, kept for AGT compatibility).
const F_PREFIX = new Uint8Array(32).fill(0xff);

/** `SK = HKDF-SHA256(salt = 0³², IKM = 0xFF³² ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], "AgentMesh_X3DH_v1", 32)`. Wipes its copy of the IKM. */
export function x3dhKdf(dhOutputs: readonly Uint8Array[]): Uint8Array {
  const ikm = concatBytes(F_PREFIX, ...dhOutputs);
  try {
    return hkdfSha256(ikm, ZERO_SALT, X3DH_INFO, 32);
  } finally {
    memzero(ikm);
  }
}
