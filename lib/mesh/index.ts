/**
 * The mesh client: `MeshAgent`, an agent on a relay and a registry (AGT's wire, AGT-WIRE.md), end to end
 * encrypted, with persistent sessions, pre-key upkeep, acknowledgements and reconnection.
 */
export { MeshAgent } from './agent';
export type { MeshAgentOptions, MeshAgentEvents, SessionResetEvent, RejectedEvent, SessionEvent, PostQuantumMode } from './agent';
export { MeshMessage } from './message';
export type { Emitter } from './emitter';
export type { MeshPayload } from './message';
export type { MeshTrustOptions } from './trust';
export type { BackoffOptions, ConnectionState } from './connection';
export type { SocketFactory, MeshSocket, MeshSocketHandlers } from './socket';
export type { FetchLike } from './registry-client';
export { MeshErrorReason } from './errors';
