/** A ratchet state's fields as spec/vectors/own/ratchet-state.json writes them (hex, in order). */
import { toHex } from '../../lib/crypto';
import type { RatchetState } from '../../lib/ratchet';

/** Every field of `s`, secrets and times included, as JSON values. */
export function ratchetStateFields(s: RatchetState): Record<string, unknown> {
  const hex = (b: Uint8Array | null): string | null => (b === null ? null : toHex(b));
  return {
    dhSelfPrivate: toHex(s.dhSelf.privateKey),
    dhSelfPublic: toHex(s.dhSelf.publicKey),
    dhRemote: hex(s.dhRemote),
    rootKey: toHex(s.rootKey),
    chainKeySend: hex(s.chainKeySend),
    chainKeyRecv: hex(s.chainKeyRecv),
    sendMessageNumber: s.sendMessageNumber,
    recvMessageNumber: s.recvMessageNumber,
    previousSendChainLength: s.previousSendChainLength,
    limits: { ...s.limits },
    retiredRemoteKeys: [...s.retiredRemoteKeys],
    skippedKeys: [...s.skippedKeys.values()].map((k) => ({
      dhPublicKey: toHex(k.dhPublicKey),
      messageNumber: k.messageNumber,
      messageKey: toHex(k.messageKey),
      storedAt: k.storedAt,
    })),
  };
}
