/** The primitives: synchronous after `await ready()`, each a few lines over libsodium. */
export * from './aead';
export * from './bytes';
export * from './byte-io';
export * from './ed25519';
export * from './hash';
export * from './hkdf';
export * from './hmac';
export * from './input';
export * from './json';
export * from './message-aead';
export * from './mlkem';
export * from './random';
export * from './x25519';
