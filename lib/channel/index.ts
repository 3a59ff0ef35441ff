/** `SecureChannel` and its establishment message. */
export * from './establishment';
export * from './secure-channel';
