/**
 * The mesh client's failures: `E2EError`s with the library's stable codes, and a `reason` from
 * {@link MeshErrorReason} saying which mesh condition it was.
 */
import { E2EError, ErrorCode } from '../errors';

/** Stable `reason` strings of the mesh client's errors. */
export const MeshErrorReason = {
  /** The relay refused the DID proof or token (close 4001/4002/4003/4005); retried with a long backoff. */
  RELAY_AUTH_FAILED: 'relay_auth_failed',
  /** Another connection took this DID's mailbox (close 4006); the agent does not reconnect by itself. */
  SESSION_REPLACED: 'session_replaced',
  /** The relay could not be reached in time. */
  RELAY_UNREACHABLE: 'relay_unreachable',
  /** The relay answered a frame with an error (`detail` in the message). */
  RELAY_ERROR: 'relay_error',
  /** The registry answered with an error status. */
  REGISTRY_ERROR: 'registry_error',
  /** The registry refused for now (HTTP 429); retried with a backoff at start-up. */
  REGISTRY_RATE_LIMITED: 'registry_rate_limited',
  /** The registry could not be reached. */
  REGISTRY_UNREACHABLE: 'registry_unreachable',
  /** The registry does not know this agent (it lost its records): the agent registers again. */
  NOT_REGISTERED: 'not_registered',
  /** The registry has no bundle for the peer. */
  UNKNOWN_PEER: 'unknown_peer',
  /** The peer's bundle or establishment is not bound to its DID (G1). */
  NOT_BOUND_TO_DID: 'not_bound_to_did',
  /** `close()` was called. */
  AGENT_CLOSED: 'agent_closed',
} as const;
/** One of {@link MeshErrorReason}. */
export type MeshErrorReason = (typeof MeshErrorReason)[keyof typeof MeshErrorReason];

const CODE: Record<MeshErrorReason, ErrorCode> = {
  relay_auth_failed: 'BAD_SIGNATURE',
  session_replaced: 'INVALID_STATE',
  relay_unreachable: 'INVALID_STATE',
  relay_error: 'INVALID_STATE',
  registry_error: 'STORE_ERROR',
  registry_unreachable: 'STORE_ERROR',
  registry_rate_limited: 'STORE_ERROR',
  unknown_peer: 'INVALID_STATE',
  not_registered: 'STORE_ERROR',
  not_bound_to_did: 'IDENTITY_MISMATCH',
  agent_closed: 'INVALID_STATE',
};

/** An `E2EError` for a mesh condition: code from the table above, `reason` = the mesh reason. */
export function meshError(reason: MeshErrorReason, message: string): E2EError {
  return new E2EError(CODE[reason], message, reason);
}
