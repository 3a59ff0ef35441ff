/** Trust: identities and DIDs, the identity registry, the trust handshake and `EncryptedTrustBridge`. */
export * from './bridge';
export * from './did';
export * from './fingerprint';
export * from './handshake';
export * from './handshake-messages';
export * from './identity';
export * from '../limits';
export * from './mutual';
export * from './reasons';
export * from './registry';
export * from './transport';
export * from './trust-level';
export type { TrustSession } from './session';
