/**
 * Every limit and default of the library, each with the reason for its value (libsignal's
 * `consts.rs` is the model). A limit bounds what a hostile peer, relay or caller can make us
 * hold or compute; a default is a value the caller may change per object.
 *
 * Root entry: `import { limits } from 'agentmesh-e2e'`, then `limits.MAX_PLAINTEXT_BYTES`. The
 * relay's and registry's limits are per server and configurable: `DEFAULT_RELAY_LIMITS` and
 * `DEFAULT_REGISTRY_LIMITS` in `agentmesh-e2e/server`. Sizes that follow from a layout and a limit
 * here (the largest envelope, the longest message JSON) are computed beside their layout
 * (`crypto/envelope-layout.ts`, `ratchet/message.ts`).
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const DAY_MS = 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------
// Messages and primitives.

/** Largest plaintext `encrypt`/`send` accepts (16 MiB): far above any agent message, low enough that one message cannot exhaust memory; larger ones are refused before any work. */
export const MAX_PLAINTEXT_BYTES = 16 * MiB;
/** Largest input the AEAD, HMAC, HKDF and signature primitives accept (64 MiB), so no call can exhaust the WASM heap. */
export const MAX_AEAD_INPUT_BYTES = 64 * MiB;
/** Largest message counter (2^32 - 1, the header's u32); a chain at this value refuses to go on instead of wrapping and reusing a key. */
export const MAX_COUNTER = 0xffffffff;
/** Largest associated data the ratchet accepts (1 MiB): it is hashed into every message's AD; `SecureChannel` allows less. */
export const MAX_RATCHET_AD_BYTES = 1 * MiB;
/** Largest caller associated data a channel accepts (64 KiB): it is saved with the channel and travels in every AEAD call. */
export const MAX_ASSOCIATED_DATA_BYTES = 64 * KiB;

// ---------------------------------------------------------------------------------------------
// The Double Ratchet's skipped message keys.

/** Default most message keys skipped in one gap (the spec's MAX_SKIP): a relay that claims a far counter makes us derive at most this many keys. */
export const DEFAULT_MAX_SKIP = 100;
/** Default most skipped message keys kept in all; the oldest are evicted first, so a lossy network cannot grow the state without bound. */
export const DEFAULT_MAX_SKIPPED_KEYS = 2000;
/** Default age after which a skipped message key is deleted (7 days): a message delayed longer is given up, and the key stops being a liability. */
export const DEFAULT_SKIPPED_KEY_MAX_AGE_MS = 7 * DAY_MS;
/** Most skipped keys a saved state may carry when read (`fromBytes`/`fromDict`): a bound on hostile input, above any configurable limit. */
export const MAX_SKIPPED_KEYS_LIMIT = 100_000;
/** Most previous remote ratchet keys remembered (32), so a replay from an old chain is told apart (`DUPLICATE_MESSAGE`) from a forgery. */
export const MAX_RETIRED_REMOTE_KEYS = 32;

// ---------------------------------------------------------------------------------------------
// Text forms read from the wire (checked before JSON.parse or base64 runs).

/** Longest JSON text of a bundle `bundleFromJSON` reads (4,096 characters; a real one is about 330, or 2,050 with a KEM pre-key). */
export const MAX_BUNDLE_JSON_CHARS = 4096;
/** Longest JSON text `ChannelEstablishment.fromJSON` reads (2,048 characters; a real one is about 130, or 1,610 with a KEM ciphertext). */
export const MAX_ESTABLISHMENT_JSON_CHARS = 2048;
/** Longest JSON text the handshake parsers read (64 KiB: a challenge or response with its capability list). */
export const MAX_HANDSHAKE_MESSAGE_CHARS = 64 * KiB;

// ---------------------------------------------------------------------------------------------
// Pre-keys.

/** Most one-time pre-keys one call may make or store (10,000): one bound for `generateOneTimePreKeys` and `addOneTimePreKeys`, far above any refill. */
export const MAX_ONE_TIME_PRE_KEYS_PER_CALL = 10_000;
/** Most signed pre-keys a saved key manager may hold when read (1,024): rotation keeps a few; a bound on hostile input. */
export const MAX_SIGNED_PRE_KEYS_IN_STATE = 1024;
/** Most one-time pre-keys a saved key manager may hold when read (2^20): far above any pool; a bound on hostile input. */
export const MAX_ONE_TIME_PRE_KEYS_IN_STATE = 1 << 20;
/** Most KEM pre-keys (one-time and last-resort) a saved key manager may hold when read (4,096; 5.4 MB saved): far above a pool of 100, a bound on hostile input. */
export const MAX_KEM_PRE_KEYS_IN_STATE = 4096;
/** Most one-time KEM pre-keys one call may make (1,000): each is an ML-KEM-768 key pair, about 50 µs and 1.3 kB published. */
export const MAX_KEM_PRE_KEYS_PER_CALL = 1000;
/** Default one-time pre-keys a bridge keeps published (20). */
export const DEFAULT_ONE_TIME_PRE_KEY_POOL = 20;
/** Default floor of published one-time pre-keys below which `maintainPreKeys` refills (20). */
export const DEFAULT_MIN_ONE_TIME_PRE_KEYS = 20;
/** Default number `maintainPreKeys` refills up to (100): a burst of initiators still finds one-time keys. */
export const DEFAULT_TARGET_ONE_TIME_PRE_KEYS = 100;
/** Default floor of published one-time KEM pre-keys below which `maintainPreKeys` refills (20, as for one-time pre-keys). */
export const DEFAULT_MIN_KEM_PRE_KEYS = 20;
/** Default number of one-time KEM pre-keys `maintainPreKeys` refills up to (100; at most {@link MAX_KEM_PRE_KEYS_PER_CALL}): about 130 kB published, 250 kB saved. */
export const DEFAULT_TARGET_KEM_PRE_KEYS = 100;
/** Default age at which `maintainPreKeys` rotates the signed pre-key (7 days, as Signal's clients do). */
export const DEFAULT_SIGNED_PRE_KEY_MAX_AGE_MS = 7 * DAY_MS;
/** Default time a retired signed pre-key still accepts establishments (14 days), for initiators that fetched the bundle before it rotated. */
export const DEFAULT_SIGNED_PRE_KEY_GRACE_MS = 14 * DAY_MS;

// ---------------------------------------------------------------------------------------------
// Trust.

/** Default lifetime of a handshake challenge (30 s, AGT's `expires_in_seconds`). */
export const DEFAULT_CHALLENGE_TTL_SECONDS = 30;
/** Longest challenge lifetime accepted (1 hour): a longer one would let an answer be replayed for too long. */
export const MAX_CHALLENGE_TTL_SECONDS = 3600;
/** Default most challenges waiting for an answer at once (1,000, AGT's cap). */
export const DEFAULT_MAX_PENDING_CHALLENGES = 1000;
/** Default trust score a peer needs (700, AGT's `TIER_TRUSTED_THRESHOLD`). */
export const DEFAULT_MIN_TRUST_SCORE = 700;
/** Highest trust score (1,000, AGT's scale). */
export const MAX_TRUST_SCORE = 1000;
/** Default trust score of a registry entry registered without one (500, AGT's `TRUST_SCORE_DEFAULT`). */
export const DEFAULT_TRUST_SCORE = 500;
/** Longest DID accepted, in characters (256): DIDs are keys of maps and stores. */
export const MAX_DID_LENGTH = 256;
/** Most capabilities one identity or response may list (256). */
export const MAX_CAPABILITIES = 256;
/** Longest capability name, in characters (128). */
export const MAX_CAPABILITY_LENGTH = 128;
/** Default time a peer's verified answer stays usable for accepting its establishment (5 minutes): long enough for a relayed round trip, short enough that a stolen answer soon expires. */
export const DEFAULT_VERIFIED_PEER_TTL_SECONDS = 300;
/** Default time the opener waits for each handshake round trip (30 s). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Most accepted establishments a bridge remembers to refuse replays (10,000; the oldest goes first). */
export const MAX_REMEMBERED_ESTABLISHMENTS = 10_000;
/**
 * Most counter-challenges kept per peer DID (the newest 16). A counter-challenge is made before the
 * peer has proven anything, so whoever can reach this agent can make them in any registered
 * DID's name: per-peer bounds keep such traffic from pushing out other peers' handshakes.
 */
export const MAX_COUNTER_CHALLENGES_PER_PEER = 16;
/** Most counter-challenges kept in all (100,000: a memory bound; the oldest goes first). */
export const MAX_COUNTER_CHALLENGES = 100_000;
/** Most answered challenge ids remembered (10,000), to tell a replay from an unknown id. */
export const MAX_SPENT_CHALLENGES = 10_000;
/**
 * Most accepted establishments per peer waiting for their first message (8). Until one decrypts a
 * message from the peer, the live session with the peer stays; the oldest waiting one goes first.
 */
export const MAX_PENDING_ESTABLISHMENTS_PER_PEER = 8;

// ---------------------------------------------------------------------------------------------
// Stores.

/** Longest DID (or other identifier) a store accepts, in UTF-16 code units (1,024): ids become keys and file names. */
export const MAX_STORE_ID_LENGTH = 1024;
/** Largest record (sealed session or key-manager state) a store accepts (16 MiB), as large as the largest message. */
export const MAX_RECORD_BYTES = 16 * MiB;
/**
 * Most unacknowledged messages the inbox of one session holds (1,024). A receive that would add one more is
 * refused (`INVALID_STATE`, reason `inbox_full`, nothing saved) until the application acknowledges some.
 */
export const MAX_INBOX_ENTRIES = 1024;
/** Longest storage context (the text a sealed record is bound to), in characters (4,096). */
export const MAX_STORAGE_CONTEXT_LENGTH = 4096;
/** Most attempts of one compare-and-swap change when other processes keep saving first (8), so contention ends in `STALE_STATE` rather than a livelock. */
export const MAX_CAS_ATTEMPTS = 8;
/** Longest Redis TTL accepted (10 years): a larger one overflows what Redis takes as milliseconds in practice. */
export const MAX_REDIS_TTL_MS = 10 * 365 * DAY_MS;
/** Most Ed25519 → X25519 identity conversions cached (1,024): each is a public value that costs a scalar multiplication to make. */
export const MAX_IDENTITY_CACHE_ENTRIES = 1024;

// ---------------------------------------------------------------------------------------------
// The mesh client (`agentmesh-e2e/mesh`).

/** Default largest frame our server accepts, in bytes of UTF-8 JSON (1 MiB; AGT allows 16 MiB, ours is stricter). */
export const DEFAULT_MAX_FRAME_BYTES = 1 * MiB;
/** Longest message `id` accepted in a frame (128; AGT clients send 36-character UUIDs). */
export const MAX_MESSAGE_ID_LENGTH = 128;
/** Most sessions kept per peer (6); the oldest one we do not send on goes first. */
export const MAX_SESSIONS_PER_PEER = 6;
/** Most sent message ids remembered (4,096), to map a reset notice to its session. */
export const MAX_SENT_IDS = 4096;
/** Most peers with a pending admission (10,000). */
export const MAX_ADMISSIONS = 10_000;
/** Most frame ids remembered as processed, per process (50,000), beyond the ratchet's own replay check. */
export const MAX_PROCESSED_IDS = 50_000;
/** Most undecryptable messages parked per agent while their knock may still come (1,000). */
export const MAX_PARKED = 1000;
