/**
 * The floors: what the protocol's cryptography alone costs, summed from the primitive rows of the
 * same run, once from the raw WASM exports (the true floor) and once through the libsodium.js
 * wrapper calls. Everything a row of ours costs above its raw floor is overhead.
 *
 *   message(n)  = 4 HMAC (KDF_CK on both sides) + seal(n) + open(n) + 12 random bytes (the nonce)
 *   DH step     = 1 X25519 key pair + 2 X25519 + 2 HKDF (one receiver's DH ratchet step)
 *   round trip  = 2 × (message(64) + DH step): A→B then B→A, a DH step on each side
 *   X3DH        = 1 Ed25519 verify + 2 X25519 key pairs + 9 X25519 + 3 HKDF (both sides: initiate with
 *                 a one-time pre-key, the sender's first ratchet key and KDF_RK, respond)
 *   set-up      = X3DH + message(64) + DH step (the first message, which the responder's ratchet
 *                 steps on)
 *   PQ set-up   = set-up + 1 Ed25519 verify (the KEM pre-key's signature) + ML-KEM-768 encapsulate +
 *                 decapsulate (raw only: the ML-KEM rows are lib/crypto/mlkem.ts's calls, which are
 *                 the WASM exports behind a copy; the wrapper has no ML-KEM)
 *   burst(10)   = 10 × message(64)
 */
import { Result, derivedResult } from './harness';
import { AEAD_SIZES, RAW, WRAP, sizeLabel } from './primitives';
import { MLKEM_ROWS } from './backends';

/** Ids of the floors. */
export const FLOOR = {
  message: (n: number) => `floor.message.${n}`,
  roundTrip: 'floor.roundtrip',
  x3dh: 'floor.x3dh',
  setup: 'floor.setup',
  setupPq: 'floor.setup.pq',
  burst: 'floor.burst10',
} as const;

/** Messages in the out-of-order burst. */
export const BURST = 10;

type Ids = typeof RAW | typeof WRAP;

/** The floors computed from `results` for one flavour (`raw` or `wrapper`); missing inputs skip a floor. */
function floorsOf(flavour: 'raw' | 'wrapper', ids: Ids, get: (id: string) => number | undefined): Result[] {
  const group = 'floors';
  const out: Result[] = [];
  const hmac = get(ids.hmac);
  const rnd = get(ids.random12);
  const kp = get(ids.x25519KeyPair);
  const dh = get(ids.x25519);
  const hkdf = get(ids.hkdf);
  const verify = get(ids.verify);
  const message = new Map<number, number>();
  for (const n of AEAD_SIZES) {
    const seal = get(ids.seal(n));
    const open = get(ids.open(n));
    if (hmac === undefined || rnd === undefined || seal === undefined || open === undefined) continue;
    const us = 4 * hmac + seal + open + rnd;
    message.set(n, us);
    out.push(
      derivedResult(
        group,
        `${FLOOR.message(n)}.${flavour}`,
        `message ${sizeLabel(n)} sent + received — ${flavour} floor`,
        us,
        '4 HMAC + seal + open + 12 random B',
      ),
    );
  }
  const m64 = message.get(64);
  const step = kp !== undefined && dh !== undefined && hkdf !== undefined ? kp + 2 * dh + 2 * hkdf : undefined;
  if (m64 !== undefined && step !== undefined) {
    out.push(
      derivedResult(
        group,
        `${FLOOR.roundTrip}.${flavour}`,
        `ping-pong round trip 64 B — ${flavour} floor`,
        2 * (m64 + step),
        '2 × (message 64 B + X25519 key pair + 2 X25519 + 2 HKDF)',
      ),
    );
  }
  if (m64 !== undefined) {
    out.push(
      derivedResult(
        group,
        `${FLOOR.burst}.${flavour}`,
        `burst of ${BURST} × 64 B — ${flavour} floor`,
        BURST * m64,
        `${BURST} × message 64 B`,
      ),
    );
  }
  if (kp !== undefined && dh !== undefined && hkdf !== undefined && verify !== undefined) {
    const x3dh = verify + 2 * kp + 9 * dh + 3 * hkdf;
    out.push(
      derivedResult(
        group,
        `${FLOOR.x3dh}.${flavour}`,
        `X3DH both sides — ${flavour} floor`,
        x3dh,
        'Ed25519 verify + 2 X25519 key pairs + 9 X25519 + 3 HKDF',
      ),
    );
    if (m64 !== undefined && step !== undefined) {
      out.push(
        derivedResult(
          group,
          `${FLOOR.setup}.${flavour}`,
          `set-up + first 64 B message — ${flavour} floor`,
          x3dh + m64 + step,
          'X3DH + message 64 B + DH step',
        ),
      );
      const encaps = get(MLKEM_ROWS.encaps);
      const decaps = get(MLKEM_ROWS.decaps);
      if (flavour === 'raw' && encaps !== undefined && decaps !== undefined) {
        out.push(
          derivedResult(
            group,
            `${FLOOR.setupPq}.${flavour}`,
            `PQ set-up + first 64 B message — ${flavour} floor`,
            x3dh + m64 + step + verify + encaps + decaps,
            'set-up + Ed25519 verify + ML-KEM-768 encapsulate + decapsulate',
          ),
        );
      }
    }
  }
  return out;
}

/** Raw and wrapper floors from the primitive results of this run. */
export function computeFloors(results: readonly Result[]): Result[] {
  const byId = new Map(results.filter((r) => !r.error).map((r) => [r.id, r.medianUs]));
  const get = (id: string): number | undefined => byId.get(id);
  const raw = floorsOf('raw', RAW, get);
  const wrap = floorsOf('wrapper', WRAP, get);
  // Interleave so each raw floor is followed by its wrapper twin.
  const out: Result[] = [];
  for (const r of raw) {
    out.push(r);
    const twin = wrap.find((w) => w.id === r.id.replace(/\.raw$/, '.wrapper'));
    if (twin) out.push(twin);
  }
  return out;
}
