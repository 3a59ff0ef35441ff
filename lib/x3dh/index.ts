/** X3DH: bundles, the key manager, initiate and respond. */
export * from './bundle';
export * from './kdf';
export * from './key-manager';
export type { PublicKemPreKey } from './kem-prekey';
export { x25519FormOfEd25519 } from './identity-cache';
