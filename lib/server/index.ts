/**
 * `agentmesh-e2e/server` (Node only): the relay + registry server, its stores and the `serve` command.
 */
export { startMeshServer } from './server';
export type { MeshServer, MeshServerOptions } from './server';
export { runServe, parseServeArgs } from './serve-command';
export type { ServeArgs } from './serve-command';
export { Relay, DEFAULT_RELAY_LIMITS } from './relay';
export type { RelayLimits, RelayOptions, RelayStats } from './relay';
export { Registry, DEFAULT_REGISTRY_LIMITS } from './registry';
export type { RegistryLimits, RegistryOptions } from './registry';
export { MemoryInboxStore } from './inbox';
export type { InboxStore, InboxMessage, PendingMessage, InboxAck, InboxQuota, PutOutcome, MemoryInboxOptions } from './inbox';
export { SqliteInboxStore } from './sqlite-inbox';
export type { SqliteInboxOptions } from './sqlite-inbox';
export { MemoryAgentDirectory, SqliteAgentDirectory } from './directory';
export type { AgentDirectory, AgentRecord, KemLastResortRecord } from './directory';
export { RedisInboxStore, RedisAgentDirectory, RedisProofGuard, RedisRelayBus } from './redis';
export { ProofCache, RateLimiter } from './guards';
export type { ProofGuard } from './guards';
export type { RelayBus, BusEvent } from './relay';
