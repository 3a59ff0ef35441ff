/**
 * The trust layer against a network adversary (fast-check).
 *
 * The transport IS the adversary (spec/trust/adversary/world.ts): it carries every handshake
 * message, bundle, establishment and envelope, and may drop, delay, reorder, replay, redirect
 * (another bridge, another `fromDid`) and rewrite any of them (bit 255 of keys included). It also
 * holds two registered identities, Mallory and Mallet (score 900, every capability, full bridges
 * and key managers), runs their handshakes and opens, relays honest agents' challenges to other
 * honest agents, answers with its own signatures, substitutes its bundles, forges establishments
 * and floods `answerChallenge`/`completeHandshake` with made-up and spoofed DIDs. Honest: Alice
 * (850, audit+pay), Bob (850, pay), Carol (750, none); every bridge requires 700 by default.
 *
 * A run: a fresh world, the three honest pairs connected (live), then a generated action list
 * (spec/trust/adversary/model.ts). Invariants, each its own assertion (`assertI…`, InvariantViolation
 * names the one that broke):
 *  I1 confidentiality/binding — every envelope an honest agent sends on a session recorded under X
 *     is tried against every channel the adversary holds or can build with its keys from what it saw
 *     (Oracle); none but X may read it; and when X is honest and accepted the establishment, X reads it.
 *  I2 requirements — the peer a session is recorded under meets the open's requirements (per call and
 *     the bridge defaults), per the registry.
 *  I3 no loss of live sessions — after any action not sent by the peer itself, every live honest pair
 *     still exchanges a message both ways through `getSession(peer).channel`.
 *  I4 liveness — an honest open (honest route, genuine bundle, requirements met) completes and carries a
 *     message both ways when its messages are finally delivered unmodified, whatever was injected before
 *     or between them.
 *  I5 no lockout — right after a flood of unauthenticated calls, the flooded agent can open and be opened.
 *  I6 replays — a replay of an accepted establishment (exact, or bit 255 of ek flipped) is never accepted;
 *     with the sender's fresh verification held it is DUPLICATE_MESSAGE and spends nothing (the genuine
 *     establishment that follows is accepted: a failure there is reported as I6).
 *
 * Strategy families (describe.each; the full mix last). What each finds on the OLD code (c23874b):
 *  - relay-substitute → finding 1 (I1): Alice opens Bob; the adversary first calls
 *    alice.answerChallenge(did:mallory, …), gets Alice's counter-challenge to Mallory, answers it with
 *    Mallory's signature as "Bob's" reply and substitutes Mallory's bundle: Alice records a session under
 *    did:bob keyed to Mallory, and Mallory reads it.
 *  - requirements → finding 3 (I2): same hole with an honest signer: the adversary harvests Alice's
 *    default-requirements counter-challenge "to Carol" and relays it to Carol to sign; Alice's
 *    open(carol, { requiredTrustScore: 900 } / { requiredCapabilities: ['pay'] }) passes.
 *  - counter-relay → finding 4 (I3): Alice opens Mallory; Mallory relays Alice's challenge to Bob as
 *    from Alice, answers Alice with response nonce = Bob's, passes Bob's counter-challenge off as its own;
 *    Alice signs it, Bob records Alice verified and accepts an establishment Alice never made, wiping
 *    the live Alice–Bob session.
 *  - flood → finding 6 (I5): 1,000 answerChallenge calls (adversary or spoofed DIDs) fill the shared pending
 *    table: too_many_pending both ways for 30 s.
 *  - replay → I6: (a) an exact replay in the window of a fresh verification IS refused DUPLICATE_MESSAGE
 *    but only after taking the verification, so the genuine establishment that follows is refused
 *    (peer_not_verified); (b) bit 255 of ek flipped is not recognised as the same establishment
 *    (OTK_NOT_FOUND instead of DUPLICATE_MESSAGE; and when the establishment carried no one-time pre-key,
 *    e.g. the adversary stripped it from the bundle, the flipped replay is ACCEPTED and replaces the session).
 *  - inject → I4: (a) an unauthenticated completeHandshake naming the in-flight challenge id (at the opener,
 *    or at the target for its counter-challenge) consumes it, so the genuine answer that follows fails
 *    (challenge_replayed / peer_refused); (b) a forged establishment {ik: the opener's registry key, fresh ek},
 *    delivered before the genuine one, is accepted, takes the opener's verification and the genuine one is
 *    refused (peer_not_verified).
 *  - rewrite-drop-redirect → a control: field rewrites, drops, stale answers, redirects, mutated bundles
 *    and the adversary's own opens; it holds on the old code too (it can fail: I1/I2/I3 are all checked).
 *  - full-mix → all of the above together.
 *
 * Run one family: `npx jest spec/trust/network-adversary -t relay-substitute`. FC_SEED (and FC_PATH)
 * replay a failure; ADV_RUNS scales the number of runs (e.g. 0.2 or 5).
 */
import fc from 'fast-check';
import { ready } from '../../lib/sodium';
import { utf8 } from '../../lib/crypto';
import { FAMILIES } from './adversary/arbitraries';
import { runScenario } from './adversary/model';
import { InvariantViolation, ekKey, makeWorld } from './adversary/world';

beforeAll(() => ready());

const FC_PARAMS: { seed?: number; path?: string } = process.env.FC_SEED
  ? { seed: Number(process.env.FC_SEED), ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}) }
  : {};
const SCALE = process.env.ADV_RUNS ? Number(process.env.ADV_RUNS) : 1;

describe('network adversary: the model is not vacuous', () => {
  test('with an honest network every invariant holds and the three pairs stay live', async () => {
    const w = await runScenario([
      { t: 'chat', from: 'alice', to: 'bob', n: 3, order: [2, 0, 1], dups: [0], misdeliver: 'carol' },
      { t: 'advance', ms: 1000 },
    ]);
    expect([...w.live].sort()).toEqual(['alice|bob', 'alice|carol', 'bob|carol']);
  });

  test('the I1 oracle reads what the adversary can read (a session Alice opened to Mallory)', async () => {
    const w = makeWorld();
    const { alice, mallory } = w.agents;
    const ch = await alice.bridge.openSecureChannel(mallory.did, await mallory.bridge.publishPrekeyBundle());
    const est = alice.bridge.getSession(mallory.did)!.establishment;
    w.oracle.seeEstablishment(est, alice.did, [mallory.did]);
    const env = ch.send(utf8('for mallory')).serialize();
    expect(() => w.oracle.assertUnreadable(env, alice.did, mallory.did, est, 'control')).not.toThrow(); // Mallory may read her own
    expect(() => w.oracle.assertUnreadable(env, alice.did, 'did:mesh:bob', est, 'control')).toThrow(InvariantViolation);
    expect(ekKey(est.ephemeralPublicKey)).toHaveLength(64);
  });
});

describe.each(FAMILIES.map((f) => [f.name, f] as const))('network adversary: %s', (_name, family) => {
  test(`I1–I6 hold (${family.finds})`, async () => {
    await fc.assert(
      fc.asyncProperty(family.actions, async (actions) => {
        await runScenario(actions);
      }),
      { numRuns: Math.max(1, Math.round(family.numRuns * SCALE)), ...FC_PARAMS },
    );
  });
});
