/** The X3DH key derivation of PROTOCOL.md. */
import { E2EError } from '../errors';
import { assertKey, concatBytes, hkdfSha256, memzero, typed, utf8 } from '../crypto';

const X3DH_INFO = utf8('AgentMesh_X3DH_v1');
const ZERO_SALT = new Uint8Array(32);
// X3DH §2.2: 32 bytes of 0xFF before the DH outputs (domain separation from XEdDSA, kept for AGT compatibility).
const F_PREFIX = new Uint8Array(32).fill(0xff);

/**
 * `SK = HKDF-SHA256(salt = 0³², IKM = 0xFF³² ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], "AgentMesh_X3DH_v1", 32)`. Wipes its copy of the IKM.
 * `dhOutputs` must be an array of 3 or 4 DH outputs of 32 bytes (`INVALID_ARGUMENT`, `INVALID_KEY`).
 */
export function x3dhKdf(dhOutputs: readonly Uint8Array[]): Uint8Array {
  const dhs = typed(
    () => {
      if (!Array.isArray(dhOutputs) || dhOutputs.length < 3 || dhOutputs.length > 4) {
        throw new E2EError('INVALID_ARGUMENT', 'x3dhKdf takes 3 or 4 DH outputs');
      }
      return Array.from(dhOutputs as readonly unknown[]);
    },
    'INVALID_ARGUMENT',
    'DH outputs',
  );
  dhs.forEach((d, i) => assertKey(d, `DH output ${i + 1}`, 32));
  const ikm = concatBytes(F_PREFIX, ...(dhs as Uint8Array[]));
  try {
    return hkdfSha256(ikm, ZERO_SALT, X3DH_INFO, 32);
  } finally {
    memzero(ikm);
  }
}
