/**
 * Strategy families: generators of adversary action lists, each biased towards one kind of
 * attack, and the full mix. See network-adversary.spec.ts for which family finds what.
 */
import fc from 'fast-check';
import { ADVERSARIES, ALL, HONEST, MADE_UP } from './world';
import {
  Action,
  AdvAction,
  AdvOpenAction,
  BundleChoice,
  ChatAction,
  FloodAction,
  ForgeAction,
  ForgeKind,
  OpenAction,
  OptsName,
  Ref,
  RewriteField,
  Route,
} from './model';

const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const honestName = fc.constantFrom(...HONEST);
const advName = fc.constantFrom(...ADVERSARIES);
const anyName = fc.constantFrom(...ALL);
const ref: fc.Arbitrary<Ref> = fc.constantFrom<Ref>('opener', 'target', 'victim', ...ALL, ...MADE_UP);

// ---- routes ----
const honestRoute: fc.Arbitrary<Route> = fc.constant({ kind: 'honest', injectAtOpener: false, injectAtTarget: false });
const injectRoute: fc.Arbitrary<Route> = fc.record({
  kind: fc.constant('honest' as const),
  injectAtOpener: fc.boolean(),
  injectAtTarget: fc.boolean(),
});
const dropRoute: fc.Arbitrary<Route> = fc.record({
  kind: fc.constant('drop' as const),
  leg: fc.constantFrom('challenge' as const, 'answer' as const),
});
const redirectRoute: fc.Arbitrary<Route> = fc.record({ kind: fc.constant('redirect' as const), to: anyName, claimFrom: ref });
const substituteRoute = (signer: fc.Arbitrary<'target' | (typeof ALL)[number]>): fc.Arbitrary<Route> =>
  fc.record({
    kind: fc.constant('substitute' as const),
    signer,
    source: fc.oneof(w(2, fc.constant('harvest' as const)), w(1, fc.constant('this' as const))),
    harvestFrom: fc.oneof(w(3, fc.constant('signer' as const)), w(1, ref)),
    counter: fc.constantFrom('none' as const, 'own' as const),
  });
const relayRoute: fc.Arbitrary<Route> = fc.record({
  kind: fc.constant('relayCounter' as const),
  victim: honestName,
  nonce: fc.oneof(w(3, fc.constant('victim' as const)), w(1, fc.constant('fresh' as const))),
});
const FIELDS: RewriteField[] = [
  'agent_did',
  'signature',
  'public_key',
  'challenge_id',
  'response_nonce',
  'capabilities',
  'timestamp',
  'counter_nonce',
  'counter_id',
  'counter_drop',
  'counter_freshness',
];
const rewriteRoute: fc.Arbitrary<Route> = fc.record({
  kind: fc.constant('rewrite' as const),
  leg: fc.constantFrom('reply' as const, 'answer' as const),
  field: fc.constantFrom(...FIELDS),
});
const staleRoute: fc.Arbitrary<Route> = fc.record({ kind: fc.constant('stale' as const), idx: fc.nat(50) });

// ---- adversary actions ----
export const forgeArb = (kinds: ForgeKind[], to: fc.Arbitrary<Ref> = ref, claim: fc.Arbitrary<Ref> = ref): fc.Arbitrary<ForgeAction> =>
  fc.record({
    t: fc.constant('forge' as const),
    kind: fc.constantFrom(...kinds),
    original: fc.oneof(w(3, fc.constant(true)), w(1, fc.constant(false))),
    idx: fc.nat(20),
    to,
    claim,
    holder: advName,
    otk: fc.option(fc.nat(25), { nil: null }),
  });
export const floodArb = (n: fc.Arbitrary<number>): fc.Arbitrary<FloodAction> =>
  fc.record({
    t: fc.constant('flood' as const),
    to: fc.constantFrom<Ref>('opener', 'target', ...HONEST),
    n,
    from: fc.constantFrom('adv' as const, 'spoofHonest' as const, 'madeUp' as const),
    api: fc.oneof(w(3, fc.constant('answerChallenge' as const)), w(1, fc.constant('completeHandshake' as const))),
  });
const advOpenArb: fc.Arbitrary<AdvOpenAction> = fc.record({ t: fc.constant('advOpen' as const), adv: advName, target: honestName });
const chatArb: fc.Arbitrary<ChatAction> = fc
  .record({
    t: fc.constant('chat' as const),
    from: honestName,
    to: honestName,
    n: fc.integer({ min: 1, max: 4 }),
    order: fc.array(fc.nat(10), { maxLength: 4 }),
    dups: fc.array(fc.nat(4), { maxLength: 2 }),
    misdeliver: fc.option(honestName, { nil: null }),
  })
  .filter((c) => c.from !== c.to);
const rotateArb: fc.Arbitrary<Action> = fc.record({ t: fc.constant('rotate' as const), who: honestName });
const advanceArb: fc.Arbitrary<Action> = fc.record({ t: fc.constant('advance' as const), ms: fc.constantFrom(1_000, 31_000, 301_000) });

interface OpenConfig {
  target?: fc.Arbitrary<(typeof ALL)[number]>;
  opts?: fc.Arbitrary<OptsName>;
  bundle?: fc.Arbitrary<BundleChoice>;
  route: fc.Arbitrary<Route>;
  between?: fc.Arbitrary<AdvAction>;
  maxBetween?: number;
}
const openArb = (c: OpenConfig): fc.Arbitrary<OpenAction> =>
  fc
    .record({
      t: fc.constant('open' as const),
      opener: honestName,
      target: c.target ?? fc.oneof(w(3, honestName), w(1, advName)),
      opts: c.opts ?? fc.constant('default' as const),
      bundle: c.bundle ?? fc.constant('genuine' as const),
      route: c.route,
      between: c.between ? fc.array(c.between, { maxLength: c.maxBetween ?? 2 }) : fc.constant<AdvAction[]>([]),
      deliver: fc.oneof(w(5, fc.constant(true)), w(1, fc.constant(false))),
    })
    .filter((o) => o.opener !== o.target && (o.route.kind !== 'relayCounter' || o.route.victim !== o.opener))
    // an opener does not sign its own challenge: the target does (prints the counterexample as it runs)
    .map((o) =>
      o.route.kind === 'substitute' && o.route.signer === o.opener ? { ...o, route: { ...o.route, signer: 'target' as const } } : o,
    );

export interface Family {
  readonly name: string;
  /** What it is built to find (on the old code), documented in the spec. */
  readonly finds: string;
  readonly actions: fc.Arbitrary<Action[]>;
  readonly numRuns: number;
}

const list = (maxLength: number, ...arbs: { weight: number; arbitrary: fc.Arbitrary<Action> }[]) =>
  fc.array(fc.oneof(...arbs), { minLength: 1, maxLength });

const allOpts: fc.Arbitrary<OptsName> = fc.oneof(
  w(2, fc.constant('default' as const)),
  w(1, fc.constantFrom('score900' as const, 'score0' as const, 'pay' as const, 'audit' as const)),
);
const mutatedBundle: fc.Arbitrary<BundleChoice> = fc.constantFrom<BundleChoice>('ik255', 'spk255', 'sig', 'edOfMallory', 'noOtk');

export const FAMILIES: Family[] = [
  {
    name: 'relay-substitute',
    finds:
      'finding 1 (I1): the opener takes a response to ANY pending challenge (e.g. its counter-challenge to Mallory) for the peer it opens',
    numRuns: 200,
    actions: list(
      4,
      w(
        5,
        openArb({
          target: honestName,
          bundle: fc.oneof(w(3, fc.constant('signer' as const)), w(1, fc.constant('genuine' as const)), w(1, anyName)),
          route: fc.oneof(
            w(1, honestRoute),
            w(3, substituteRoute(fc.oneof(w(3, advName), w(1, fc.constant('target' as const)), w(1, honestName)))),
            w(1, redirectRoute),
          ),
        }),
      ),
      w(1, chatArb),
      w(1, advanceArb),
    ),
  },
  {
    name: 'requirements',
    finds:
      'finding 3 (I2): per-call requiredTrustScore/requiredCapabilities bypassed by answering an earlier default-requirements challenge',
    numRuns: 200,
    actions: list(
      4,
      w(
        5,
        openArb({
          target: honestName,
          opts: fc.oneof(
            w(1, fc.constant('default' as const)),
            w(3, fc.constantFrom('score900' as const, 'pay' as const, 'audit' as const, 'score0' as const)),
          ),
          route: fc.oneof(w(1, honestRoute), w(3, substituteRoute(fc.constant('target' as const)))),
        }),
      ),
      w(1, chatArb),
    ),
  },
  {
    name: 'counter-relay',
    finds:
      "finding 4 (I3): Mallory relays the victim's counter-challenge as its own (response nonce = the victim's), the opener signs it, the victim then accepts a forged establishment and wipes the live session",
    numRuns: 200,
    actions: list(
      4,
      w(2, openArb({ target: honestName, route: honestRoute })),
      w(
        5,
        openArb({
          target: advName,
          route: relayRoute,
          between: forgeArb(
            ['randomEk', 'advIk', 'advOwn'],
            fc.oneof(w(3, fc.constant<Ref>('victim')), w(1, ref)),
            fc.oneof(w(3, fc.constant<Ref>('opener')), w(1, ref)),
          ),
        }),
      ),
      w(
        2,
        forgeArb(
          ['randomEk', 'advIk', 'advOwn'],
          fc.oneof(w(3, fc.constant<Ref>('victim')), w(1, ref)),
          fc.oneof(w(3, fc.constant<Ref>('opener')), w(1, ref)),
        ),
      ),
      w(1, chatArb),
    ),
  },
  {
    name: 'flood',
    finds: 'finding 6 (I5): ~1,000 unauthenticated answerChallenge calls fill the shared pending table (too_many_pending for 30 s)',
    numRuns: 10,
    actions: list(
      3,
      w(3, floodArb(fc.oneof(w(1, fc.constantFrom(1, 100)), w(3, fc.constant(1000)), w(1, fc.constant(3000))))),
      w(1, openArb({ target: honestName, route: honestRoute })),
      w(1, advanceArb),
    ),
  },
  {
    name: 'replay',
    finds:
      'I6: a replayed establishment (exact or bit 255 of ek flipped) after a fresh verification is not DUPLICATE_MESSAGE and/or spends the verification',
    numRuns: 180,
    actions: list(
      4,
      w(
        3,
        openArb({
          target: honestName,
          route: honestRoute,
          between: forgeArb(['replay', 'flip255', 'stripIds', 'stripOtk']),
          maxBetween: 2,
        }),
      ),
      // an establishment without a one-time pre-key (the adversary stripped it from the bundle): only the replay memory stops its replays
      w(1, openArb({ target: honestName, route: honestRoute, bundle: fc.constant('noOtk' as const) })),
      w(2, forgeArb(['replay', 'flip255', 'stripIds', 'stripOtk'])),
      w(1, rotateArb),
      w(1, chatArb),
    ),
  },
  {
    name: 'inject',
    finds:
      'I4: unauthenticated answers naming an in-flight challenge, or forged establishments before the genuine one, kill an honest open',
    numRuns: 150,
    actions: list(
      4,
      w(
        4,
        openArb({
          target: honestName,
          route: fc.oneof(w(1, honestRoute), w(2, injectRoute)),
          between: forgeArb(
            ['randomEk', 'advIk', 'advOwn'],
            fc.oneof(w(3, fc.constant<Ref>('target')), w(1, ref)),
            fc.oneof(w(3, fc.constant<Ref>('opener')), w(1, ref)),
          ),
          maxBetween: 1,
        }),
      ),
      w(1, chatArb),
    ),
  },
  {
    name: 'rewrite-drop-redirect',
    finds:
      "control: field rewrites (bit flips, swapped DIDs/keys/ids), drops, stale answers, redirects, mutated bundles, the adversary's own opens",
    numRuns: 200,
    actions: list(
      5,
      w(
        5,
        openArb({
          opts: allOpts,
          bundle: fc.oneof(w(2, fc.constant('genuine' as const)), w(2, mutatedBundle), w(1, anyName)),
          route: fc.oneof(w(1, honestRoute), w(3, rewriteRoute), w(1, dropRoute), w(1, staleRoute), w(1, redirectRoute)),
        }),
      ),
      w(1, advOpenArb),
      w(1, forgeArb(['randomEk', 'advIk', 'advOwn'])),
      w(1, chatArb),
      w(1, advanceArb),
    ),
  },
];

const anyRoute: fc.Arbitrary<Route> = fc.oneof(
  w(2, honestRoute),
  w(1, injectRoute),
  w(1, dropRoute),
  w(1, redirectRoute),
  w(2, substituteRoute(fc.oneof(w(1, fc.constant('target' as const)), w(1, anyName)))),
  w(2, relayRoute),
  w(2, rewriteRoute),
  w(1, staleRoute),
);
const anyAdv: fc.Arbitrary<AdvAction> = fc.oneof(
  w(4, forgeArb(['replay', 'flip255', 'stripIds', 'stripOtk', 'randomEk', 'advIk', 'advOwn'])),
  w(1, floodArb(fc.oneof(w(6, fc.integer({ min: 1, max: 20 })), w(1, fc.constant(1000))))),
  w(1, advOpenArb),
);
FAMILIES.push({
  name: 'full-mix',
  finds: 'everything above at once: every route, bundle, requirement, forgery, replay, flood and delay',
  numRuns: 300,
  actions: list(
    6,
    w(
      5,
      openArb({
        target: anyName,
        opts: allOpts,
        bundle: fc.oneof(w(3, fc.constant('genuine' as const)), w(1, fc.constant('signer' as const)), w(1, anyName), w(1, mutatedBundle)),
        route: anyRoute,
        between: anyAdv,
        maxBetween: 2,
      }),
    ),
    w(3, anyAdv),
    w(1, chatArb),
    w(1, advanceArb),
    w(1, rotateArb),
  ),
});
