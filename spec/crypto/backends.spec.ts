/**
 * The two backends of X25519 and Ed25519 give the same bytes and the same refusals: random keys,
 * seeds, messages and altered signatures, computed on WASM and on sodium-native and compared one by
 * one. (The vector suites, x25519.spec.ts and ed25519.spec.ts, run on each backend too.)
 */
import fc from 'fast-check';
import { ed25519KeyPairFromSeed, ed25519Sign, ed25519Verify, toHex, x25519, x25519PublicKey } from '../../lib/crypto';
import { Backend, backend, ready } from '../../lib/sodium';

const N = 300;

interface Input {
  sk: Uint8Array;
  pk: Uint8Array;
  seed: Uint8Array;
  msg: Uint8Array;
  flip: number;
}

const inputs: Input[] = fc.sample(
  fc.record({
    sk: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    pk: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    seed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    msg: fc.uint8Array({ maxLength: 300 }),
    flip: fc.nat({ max: 64 * 8 - 1 }),
  }),
  { numRuns: N, seed: 20240613 },
);

// Small-order points and other edge inputs: both must refuse them the same way.
const edgePublicKeys = [
  '00'.repeat(32),
  `01${'00'.repeat(31)}`,
  `e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800`,
  'ec'.concat('ff'.repeat(30), '7f'),
  'ff'.repeat(32),
];

/** Everything the two backends compute, as strings (a refusal by its code). */
async function run(b: Backend): Promise<string[]> {
  await ready({ backend: b });
  expect(backend()).toBe(b);
  const out: string[] = [];
  const attempt = (f: () => Uint8Array | boolean): void => {
    try {
      const r = f();
      out.push(typeof r === 'boolean' ? String(r) : toHex(r));
    } catch (e) {
      out.push(`error ${(e as { code?: string }).code ?? String(e)}`);
    }
  };
  for (const i of inputs) {
    attempt(() => x25519PublicKey(i.sk));
    attempt(() => x25519(i.sk, i.pk));
    attempt(() => x25519(i.sk, x25519PublicKey(i.seed)));
    const pair = ed25519KeyPairFromSeed(i.seed);
    out.push(toHex(pair.publicKey), toHex(pair.secretKey));
    const sig = ed25519Sign(pair.secretKey, i.msg);
    out.push(toHex(sig));
    attempt(() => ed25519Verify(sig, i.msg, pair.publicKey));
    const altered = Uint8Array.from(sig);
    altered[i.flip >> 3] ^= 1 << (i.flip & 7);
    attempt(() => ed25519Verify(altered, i.msg, pair.publicKey));
    attempt(() => ed25519Verify(sig, i.msg, i.pk));
    const mismatched = Uint8Array.from(pair.secretKey);
    mismatched[40] ^= 1;
    attempt(() => ed25519Sign(mismatched, i.msg));
  }
  for (const pk of edgePublicKeys) attempt(() => x25519(inputs[0].sk, Buffer.from(pk, 'hex')));
  return out;
}

afterAll(() => ready({ backend: 'auto' }));

test('WASM and sodium-native agree on every output and every refusal', async () => {
  const wasm = await run('wasm');
  const native = await run('native');
  expect(native).toHaveLength(wasm.length);
  for (let i = 0; i < wasm.length; i++) if (native[i] !== wasm[i]) expect([i, native[i]]).toEqual([i, wasm[i]]);
  // The refusals are there: all-zero X25519 results and inconsistent Ed25519 secret keys.
  expect(wasm.filter((r) => r === 'error INVALID_KEY').length).toBeGreaterThanOrEqual(N + 2);
  expect(wasm.filter((r) => r === 'false').length).toBeGreaterThanOrEqual(N);
});
