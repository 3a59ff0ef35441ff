/** The Double Ratchet: header and envelope codecs, state and its serialization, the ratchet. */
export * from './header';
export * from './message';
export * from './kdf';
export * from './skipped-keys';
export * from './state';
export * from './double-ratchet';
