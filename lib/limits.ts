/**
 * Every limit and default of the library, each with the reason for its value (libsignal's
 * `consts.rs` is the model). A limit bounds what a hostile peer, relay or caller can make us
 * hold or compute; a default is a value the caller may change per object.
 *
 * Root entry: `import { limits } from 'agentmesh-e2e'`, then `limits.MAX_PLAINTEXT_BYTES`. The
 * relay's and registry's limits are per server and configurable: `DEFAULT_RELAY_LIMITS` and
 * `DEFAULT_REGISTRY_LIMITS` in `agentmesh-e2e/server`.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const DAY_MS = 24 * 3600 * 1000;

/** Largest plaintext `encrypt`/`send` accepts (16 MiB): far above any agent message, low enough that one message cannot exhaust memory; larger ones are refused before any work. */
export const MAX_PLAINTEXT_BYTES = 16 * MiB;
/** Largest input the AEAD, HMAC, HKDF and signature primitives accept (64 MiB), so no call can exhaust the WASM heap. */
export const MAX_AEAD_INPUT_BYTES = 64 * MiB;
/** Largest message counter (2^32 - 1, the header's u32); a chain at this value refuses to go on instead of wrapping and reusing a key. */
export const MAX_COUNTER = 0xffffffff;
/** Default most message keys skipped in one gap (the spec's MAX_SKIP): a relay that claims a far counter makes us derive at most this many keys. */
export const DEFAULT_MAX_SKIP = 100;
/** Default most skipped message keys kept in all; the oldest are evicted first, so a lossy network cannot grow the state without bound. */
export const DEFAULT_MAX_SKIPPED_KEYS = 2000;
/** Default age after which a skipped message key is deleted (7 days): a message delayed longer is given up, and the key stops being a liability. */
export const DEFAULT_SKIPPED_KEY_MAX_AGE_MS = 7 * DAY_MS;
/** Most previous remote ratchet keys remembered (32), so a replay from an old chain is told apart (`DUPLICATE_MESSAGE`) from a forgery. */
export const MAX_RETIRED_REMOTE_KEYS = 32;
/** Most skipped keys a saved state may carry when read (`fromBytes`/`fromDict`): a bound on hostile input, above any configurable limit. */
export const MAX_SKIPPED_KEYS_LIMIT = 100_000;
/** Largest associated data the ratchet accepts (1 MiB): it is hashed into every message's AD; `SecureChannel` allows less. */
export const MAX_RATCHET_AD_BYTES = 1 * MiB;
