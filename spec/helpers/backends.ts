/**
 * The backends of X25519 and Ed25519 (lib/sodium.ts), for suites that run once per backend, and
 * the `AGENTMESH_BACKEND` switch for running a whole suite on one of them.
 */
import { Backend, backend, ready } from '../../lib/sodium';

/** Every backend: a vector suite runs on each (sodium-native is a devDependency, so CI has both). */
export const BACKENDS: readonly Backend[] = ['wasm', 'native'];

/**
 * Inside a `describe.each(BACKENDS)`: selects `b` before the block's tests, checks that it is the
 * one active, and puts back the default (`AGENTMESH_BACKEND`, else auto) after them.
 */
export function useBackend(b: Backend): void {
  beforeAll(async () => {
    await ready({ backend: b });
    expect(backend()).toBe(b);
  });
  afterAll(() => ready({ backend: requestedBackend() ?? 'auto' }));
}

/**
 * The backend `AGENTMESH_BACKEND` asks for (`wasm` or `native`), or `null` when it is unset or empty.
 * Any other value throws, so a typo cannot silently run the default.
 */
export function requestedBackend(): Backend | null {
  const v = process.env.AGENTMESH_BACKEND;
  if (v === undefined || v === '') return null;
  if (v === 'wasm' || v === 'native') return v;
  throw new Error(`AGENTMESH_BACKEND must be wasm or native, not ${JSON.stringify(v)}`);
}
