/** The Double Ratchet's root-key KDF (PROTOCOL.md): `HKDF-SHA256(salt = RK, IKM = DH, "AgentMesh_Ratchet_v1", 64)`. */
import { hkdfSha256, memzero, utf8 } from '../crypto';

const RATCHET_INFO = utf8('AgentMesh_Ratchet_v1');

/** `KDF_RK`: the new root key (bytes 0..31) and the new chain key (bytes 32..63). */
export function kdfRootKey(rootKey: Uint8Array, dhOutput: Uint8Array): { rootKey: Uint8Array; chainKey: Uint8Array } {
  const out = hkdfSha256(dhOutput, rootKey, RATCHET_INFO, 64);
  const next = { rootKey: out.slice(0, 32), chainKey: out.slice(32, 64) };
  memzero(out);
  return next;
}
