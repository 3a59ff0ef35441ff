/** `MeshMessage`: one decrypted message as the application receives it. */
import { E2EError } from '../errors';
import { fromUtf8, utf8 } from '../crypto';

/** What `agent.send` accepts: bytes as they are, a string as UTF-8, anything else as its JSON text. */
export type MeshPayload = Uint8Array | string | number | boolean | null | readonly unknown[] | { readonly [k: string]: unknown };

/** The bytes of a payload (see {@link MeshPayload}). AGT's MeshClient reads only JSON plaintexts. */
export function encodePayload(data: MeshPayload): Uint8Array {
  if (data instanceof Uint8Array) return Uint8Array.from(data);
  if (typeof data === 'string') return utf8(data);
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch {
    text = undefined;
  }
  if (typeof text !== 'string') throw new E2EError('INVALID_ARGUMENT', 'data must be bytes, a string or a JSON value');
  return utf8(text);
}

/** A message from a peer, decrypted. */
export class MeshMessage {
  /** The sender's DID (bound to the session's keys, not just the relay's word). */
  readonly from: string;
  /** The message id the sender gave it (unique per sender). */
  readonly id: string;
  /** The plaintext. */
  readonly data: Uint8Array;

  /** A message (made by the agent). */
  constructor(from: string, id: string, data: Uint8Array) {
    this.from = from;
    this.id = id;
    this.data = data;
  }

  /** The plaintext as UTF-8 text. */
  text(): string {
    return fromUtf8(this.data);
  }

  /** The plaintext parsed as JSON; `MALFORMED_MESSAGE` if it is not JSON. */
  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch {
      throw new E2EError('MALFORMED_MESSAGE', 'the message is not JSON');
    }
  }
}
