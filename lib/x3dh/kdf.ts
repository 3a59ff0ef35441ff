/** The X3DH and PQXDH key derivations of PROTOCOL.md. */
import { E2EError } from '../errors';
import { assertKey, concatBytes, hkdfSha256, memzero, typed, utf8 } from '../crypto';

const X3DH_INFO = utf8('AgentMesh_X3DH_v1');
/** PQXDH §2.1's info string names the curve, the hash and the KEM; a different string from X3DH's keeps the two KDFs apart. */
const PQXDH_INFO = utf8('AgentMesh_PQXDH_CURVE25519_SHA-256_ML-KEM-768_v1');
const ZERO_SALT = new Uint8Array(32);
// X3DH §2.2: 32 bytes of 0xFF before the DH outputs (domain separation from XEdDSA, kept for AGT compatibility).
const F_PREFIX = new Uint8Array(32).fill(0xff);

/** The 3 or 4 DH outputs, checked (`INVALID_ARGUMENT` for the array, `INVALID_KEY` for an output). */
function readDhOutputs(dhOutputs: readonly Uint8Array[]): Uint8Array[] {
  const dhs = typed(
    () => {
      if (!Array.isArray(dhOutputs) || dhOutputs.length < 3 || dhOutputs.length > 4) {
        throw new E2EError('INVALID_ARGUMENT', 'the KDF takes 3 or 4 DH outputs');
      }
      return Array.from(dhOutputs as readonly unknown[]);
    },
    'INVALID_ARGUMENT',
    'DH outputs',
  );
  dhs.forEach((d, i) => assertKey(d, `DH output ${i + 1}`, 32));
  return dhs as Uint8Array[];
}

function derive(ikmParts: Uint8Array[], info: Uint8Array): Uint8Array {
  const ikm = concatBytes(F_PREFIX, ...ikmParts);
  try {
    return hkdfSha256(ikm, ZERO_SALT, info, 32);
  } finally {
    memzero(ikm);
  }
}

/**
 * `SK = HKDF-SHA256(salt = 0³², IKM = 0xFF³² ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], "AgentMesh_X3DH_v1", 32)`. Wipes its copy of the IKM.
 * `dhOutputs` must be an array of 3 or 4 DH outputs of 32 bytes (`INVALID_ARGUMENT`, `INVALID_KEY`).
 */
export function x3dhKdf(dhOutputs: readonly Uint8Array[]): Uint8Array {
  return derive(readDhOutputs(dhOutputs), X3DH_INFO);
}

/**
 * The hybrid key of PQXDH (revision 3, §3.3): `SK = HKDF-SHA256(salt = 0³², IKM = 0xFF³² ‖ DH1 ‖ DH2 ‖
 * DH3 [‖ DH4] ‖ SS, "AgentMesh_PQXDH_CURVE25519_SHA-256_ML-KEM-768_v1", 32)`, with `SS` the ML-KEM-768
 * shared secret. Wipes its copy of the IKM. Errors as {@link x3dhKdf}; `INVALID_KEY` when
 * `kemSharedSecret` is not 32 bytes.
 */
export function pqxdhKdf(dhOutputs: readonly Uint8Array[], kemSharedSecret: Uint8Array): Uint8Array {
  const dhs = readDhOutputs(dhOutputs);
  assertKey(kemSharedSecret, 'KEM shared secret', 32);
  return derive([...dhs, kemSharedSecret], PQXDH_INFO);
}
