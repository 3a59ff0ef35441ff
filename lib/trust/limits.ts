/** The trust layer's limits and defaults in one place. */

/** Default lifetime of a handshake challenge (AGT's `expires_in_seconds`). */
export const DEFAULT_CHALLENGE_TTL_SECONDS = 30;
/** Longest challenge lifetime accepted (1 hour). */
export const MAX_CHALLENGE_TTL_SECONDS = 3600;
/** Default most challenges waiting for an answer at once (AGT's cap). */
export const DEFAULT_MAX_PENDING_CHALLENGES = 1000;
/** Default trust score a peer needs (AGT's `TIER_TRUSTED_THRESHOLD`). */
export const DEFAULT_MIN_TRUST_SCORE = 700;
/** Highest trust score. */
export const MAX_TRUST_SCORE = 1000;
/** Default trust score of a registry entry registered without one (AGT's `TRUST_SCORE_DEFAULT`). */
export const DEFAULT_TRUST_SCORE = 500;
/** Longest DID accepted, in characters. */
export const MAX_DID_LENGTH = 256;
/** Most capabilities one identity or response may list. */
export const MAX_CAPABILITIES = 256;
/** Longest capability name, in characters. */
export const MAX_CAPABILITY_LENGTH = 128;
/** Default one-time pre-keys a bridge keeps published. */
export const DEFAULT_ONE_TIME_PRE_KEY_POOL = 20;
/** Default time a peer's verified answer stays usable for accepting its establishment (5 minutes). */
export const DEFAULT_VERIFIED_PEER_TTL_SECONDS = 300;
/** Default time the opener waits for each handshake round trip (ms). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Most accepted establishments a bridge remembers to refuse replays. */
export const MAX_REMEMBERED_ESTABLISHMENTS = 10_000;

/**
 * Most counter-challenges kept per peer DID (the newest). A counter-challenge is made before the
 * peer has proven anything, so whoever can reach this agent can make them in any registered
 * DID's name: per-peer bounds keep such traffic from pushing out other peers' handshakes.
 */
export const MAX_COUNTER_CHALLENGES_PER_PEER = 16;
/** Most counter-challenges kept in all (a memory bound; the oldest goes first). */
export const MAX_COUNTER_CHALLENGES = 100_000;
/** Most answered challenge ids remembered, to tell a replay from an unknown id. */
export const MAX_SPENT_CHALLENGES = 10_000;
/**
 * Most accepted establishments per peer waiting for their first message. Until one decrypts a
 * message from the peer, the live session with the peer stays; the oldest waiting one goes first.
 */
export const MAX_PENDING_ESTABLISHMENTS_PER_PEER = 8;
