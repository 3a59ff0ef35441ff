/**
 * Jest `setupFilesAfterEnv` for running a suite on one backend: with `AGENTMESH_BACKEND=wasm` or
 * `=native`, every spec file selects that backend before its own tests (and fails at once when it
 * cannot load: a run that asked for native never quietly runs on WASM). Unset, it does nothing.
 *
 *   AGENTMESH_BACKEND=native npx jest -c spec/helpers/jest-backend.config.js spec/crypto ...
 *
 * (spec/helpers/jest-backend.config.js is jest.config.js plus this file.)
 *
 * Files that must start with libsodium unloaded (spec/crypto/not-ready.spec.ts) are left alone.
 */
import { backend, ready } from '../../lib/sodium';
import { requestedBackend } from './backends';

const wanted = requestedBackend();
const unloaded = /not-ready\.spec\.ts$/.test(expect.getState().testPath ?? '');

if (wanted !== null && !unloaded) {
  beforeAll(async () => {
    await ready({ backend: wanted });
    expect(backend()).toBe(wanted);
  });
}
