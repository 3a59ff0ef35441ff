/**
 * The `backends` group: X25519 and Ed25519 on each backend (libsodium's WASM build and
 * sodium-native, through the crypto layer's own functions, so the checks are included), and the
 * ML-KEM-768 operations (WASM only: sodium-native has no KEM). A backend row selects its backend
 * before it runs and puts the previous one back after; where sodium-native is not installed the
 * native rows fail as "did not run".
 */
import {
  ed25519KeyPairFromSeed,
  ed25519Sign,
  ed25519Verify,
  mlkem768Decapsulate,
  mlkem768Encapsulate,
  mlkem768KeyPair,
  randomBytes,
  x25519,
  x25519KeyPair,
  Ed25519KeyPair,
  MlKem768Encapsulation,
  MlKem768KeyPair,
} from '../lib/crypto';
import { Backend, backend, ready } from '../lib/sodium';
import { Row } from './harness';

const BACKENDS: readonly Backend[] = ['wasm', 'native'];

/** `before`/`after` of a row that runs on `b`. */
function on(b: Backend, setup: () => void): Pick<Row, 'before' | 'after'> {
  let previous: Backend = 'wasm';
  return {
    before: async () => {
      previous = backend();
      await ready({ backend: b });
      setup();
    },
    after: () => ready({ backend: previous }),
  };
}

function curveRows(b: Backend): Row[] {
  const g = 'backends';
  let key: Uint8Array;
  let peer: Uint8Array;
  let seed: Uint8Array;
  let id: Ed25519KeyPair;
  let msg: Uint8Array;
  let sig: Uint8Array;
  const setup = (): void => {
    key = randomBytes(32);
    peer = x25519KeyPair().publicKey;
    seed = randomBytes(32);
    id = ed25519KeyPairFromSeed(seed);
    msg = randomBytes(32);
    sig = ed25519Sign(id.secretKey, msg);
  };
  return [
    { group: g, id: `${b}.x25519kp`, name: `X25519 key pair (x25519KeyPair) — ${b}`, ...on(b, setup), op: () => x25519KeyPair() },
    { group: g, id: `${b}.x25519`, name: `X25519 DH (x25519) — ${b}`, ...on(b, setup), op: () => x25519(key, peer) },
    { group: g, id: `${b}.ed25519kp`, name: `Ed25519 key pair from seed — ${b}`, ...on(b, setup), op: () => ed25519KeyPairFromSeed(seed) },
    {
      group: g,
      id: `${b}.sign`,
      name: `Ed25519 sign 32 B (with the key check) — ${b}`,
      ...on(b, setup),
      op: () => ed25519Sign(id.secretKey, msg),
    },
    {
      group: g,
      id: `${b}.verify`,
      name: `Ed25519 verify 32 B — ${b}`,
      ...on(b, setup),
      op: () => {
        if (!ed25519Verify(sig, msg, id.publicKey)) throw new Error('verify failed');
      },
    },
  ];
}

/** Ids of the ML-KEM-768 rows (the PQ set-up floor uses encapsulate and decapsulate). */
export const MLKEM_ROWS = { keypair: 'mlkem768.keypair', encaps: 'mlkem768.encaps', decaps: 'mlkem768.decaps' } as const;

/** The ML-KEM-768 rows (WASM: sodium-native has no KEM). */
export function mlkemRows(): Row[] {
  const g = 'backends';
  let pair: MlKem768KeyPair;
  let enc: MlKem768Encapsulation;
  const before = (): void => {
    pair = mlkem768KeyPair();
    enc = mlkem768Encapsulate(pair.publicKey);
  };
  return [
    { group: g, id: MLKEM_ROWS.keypair, name: 'ML-KEM-768 key pair (mlkem768KeyPair) — wasm', op: () => mlkem768KeyPair() },
    {
      group: g,
      id: MLKEM_ROWS.encaps,
      name: 'ML-KEM-768 encapsulate (mlkem768Encapsulate) — wasm',
      before,
      op: () => mlkem768Encapsulate(pair.publicKey),
    },
    {
      group: g,
      id: MLKEM_ROWS.decaps,
      name: 'ML-KEM-768 decapsulate (mlkem768Decapsulate) — wasm',
      before,
      op: () => mlkem768Decapsulate(enc.ciphertext, pair.secretKey),
    },
  ];
}

/** Every row of the group: the curve rows per backend, side by side, then ML-KEM-768. */
export function backendRows(): Row[] {
  const perBackend = BACKENDS.map(curveRows);
  const sideBySide = perBackend[0].flatMap((_, i) => perBackend.map((rows) => rows[i]));
  return [...sideBySide, ...mlkemRows()];
}
