/** Known answers of the key manager's saved forms (`spec/vectors/own/key-manager.json`). */
import { ready } from '../../lib/sodium';
import { ErrorCode } from '../../lib/errors';
import { fromHex, toHex } from '../../lib/crypto';
import { KeyManagerState, X3DHKeyManager } from '../../lib/x3dh';
import { expectE2EError } from '../helpers/expect-error';
import vectors from '../vectors/own/key-manager.json';

beforeAll(() => ready());

interface Invalid {
  name: string;
  bytes?: string;
  error: string;
}

describe('key manager saved forms, known answers', () => {
  test('the file holds the cases it is meant to', () => {
    expect([vectors.valid.length, vectors.invalidBytes.length, vectors.invalidStates.length]).toEqual([5, 18, 8]);
  });

  test.each(vectors.valid)('$name: state → exact bytes, bytes → exact state', ({ state, bytes }) => {
    const mgr = X3DHKeyManager.fromState(state as KeyManagerState);
    expect(toHex(mgr.toBytes())).toBe(bytes);
    expect(mgr.exportState()).toEqual(state);
    const back = X3DHKeyManager.fromBytes(fromHex(bytes));
    expect(back.exportState()).toEqual(state);
    expect(toHex(back.toBytes())).toBe(bytes);
  });

  test.each(vectors.valid)('$name: read from a Node Buffer, nothing stays a view of it', ({ state, bytes }) => {
    const buf = Buffer.from(bytes, 'hex');
    const mgr = X3DHKeyManager.fromBytes(buf);
    buf.fill(0);
    expect(mgr.exportState()).toEqual(state);
  });

  test.each(vectors.invalidBytes as Invalid[])('bytes, $name: $error', ({ bytes, error }) => {
    expectE2EError(() => X3DHKeyManager.fromBytes(fromHex(bytes as string)), error as ErrorCode);
  });

  test.each(vectors.invalidStates as Invalid[])('state, $name: $error', (c) => {
    expectE2EError(() => X3DHKeyManager.fromState((c as unknown as { state: KeyManagerState }).state), c.error as ErrorCode);
  });
});
