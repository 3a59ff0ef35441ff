/**
 * The Lua scripts of the Redis store. Each runs atomically on the server, which is what makes a
 * claim exactly-once and a save a compare-and-swap across every process and machine sharing Redis.
 * Every key a script touches is passed in KEYS, and all keys of one DID share a hash tag.
 */

/**
 * storeBundle. KEYS: base, pool, queue, claimed, KEM pool, KEM queue, KEM claimed (every key of
 * the DID's bundle, for the TTL). ARGV: base JSON, Ed25519 key (base64), one-time key id or '', its
 * public key (base64) or '', TTL ms (0: none), '1' when the base carries a KEM pre-key (it becomes
 * the last-resort one) or '0' (the stored base's last-resort KEM pre-key, if any, is kept).
 * Returns 'ok', 'identity_changed' or 'otk_id_reused'.
 */
export const STORE_BUNDLE = `
local raw = redis.call('GET', KEYS[1])
local cur = raw and cjson.decode(raw)
if cur and cur.ed ~= ARGV[2] then return 'identity_changed' end
if ARGV[3] ~= '' then
  local pooled = redis.call('HGET', KEYS[2], ARGV[3])
  if pooled and pooled ~= ARGV[4] then return 'otk_id_reused' end
end
if ARGV[6] == '0' and cur and cur.kem then
  local base = cjson.decode(ARGV[1])
  base.kid = cur.kid
  base.kem = cur.kem
  base.ksig = cur.ksig
  redis.call('SET', KEYS[1], cjson.encode(base))
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[4], ARGV[3]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[3])
end
local ttl = tonumber(ARGV[5])
for i = 1, #KEYS do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
return 'ok'
`;

/**
 * getBundle (a peek). KEYS: base, pool, queue, KEM pool, KEM queue. Returns nil or {base, one-time
 * key id, its public key, KEM pre-key id, its entry}, with '' for a pool that is empty.
 */
export const PEEK_BUNDLE = `
local base = redis.call('GET', KEYS[1])
if not base then return nil end
local out = {base, '', '', '', ''}
local first = redis.call('ZRANGE', KEYS[3], 0, 0)
if #first > 0 then
  out[2] = first[1]
  out[3] = redis.call('HGET', KEYS[2], first[1]) or ''
end
local kem = redis.call('ZRANGE', KEYS[5], 0, 0)
if #kem > 0 then
  out[4] = kem[1]
  out[5] = redis.call('HGET', KEYS[4], kem[1]) or ''
end
return out
`;

/**
 * claimBundle: the lowest one-time pre-key and the lowest one-time KEM pre-key leave their pools
 * together. KEYS: base, pool, queue, claimed, KEM pool, KEM queue, KEM claimed. Returns nil or
 * {base, one-time key id, its public key, KEM pre-key id, its entry}, with '' for a pool that was empty.
 */
export const CLAIM_BUNDLE = `
local base = redis.call('GET', KEYS[1])
if not base then return nil end
local out = {base, '', '', '', ''}
local popped = redis.call('ZPOPMIN', KEYS[3])
if #popped > 0 then
  local id = popped[1]
  out[2] = id
  out[3] = redis.call('HGET', KEYS[2], id) or ''
  redis.call('HDEL', KEYS[2], id)
  redis.call('SADD', KEYS[4], id)
end
local kem = redis.call('ZPOPMIN', KEYS[6])
if #kem > 0 then
  local id = kem[1]
  out[4] = id
  out[5] = redis.call('HGET', KEYS[5], id) or ''
  redis.call('HDEL', KEYS[5], id)
  redis.call('SADD', KEYS[7], id)
end
return out
`;

/** consumeOneTimeKey. KEYS: pool, queue, claimed. ARGV: id. Returns 1 or 0. */
export const CONSUME_ONE_TIME_KEY = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`;

/**
 * addOneTimePreKeys. KEYS: base, pool, queue, claimed. ARGV: id1, key1, id2, key2, ...
 * Checks all before adding any. Returns 'ok', 'no_bundle' or the id that may not be re-added.
 */
export const ADD_ONE_TIME_KEYS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'no_bundle' end
for i = 1, #ARGV, 2 do
  local pooled = redis.call('HGET', KEYS[2], ARGV[i])
  if redis.call('SISMEMBER', KEYS[4], ARGV[i]) == 1 or (pooled and pooled ~= ARGV[i + 1]) then return ARGV[i] end
end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[i]), ARGV[i])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 'ok'
`;

/**
 * addKemPreKeys. KEYS: base, KEM pool, KEM queue, KEM claimed. ARGV: the Ed25519 identity (base64)
 * the signatures were verified under, then id1, public key1 (base64), entry1, id2, ... Checks all
 * before adding any. Returns 'ok', 'no_bundle', 'identity_changed' (the DID was re-keyed since the
 * verification) or the id that may not be re-added.
 */
export const ADD_KEM_PRE_KEYS = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 'no_bundle' end
if cjson.decode(raw).ed ~= ARGV[1] then return 'identity_changed' end
for i = 2, #ARGV, 3 do
  if redis.call('SISMEMBER', KEYS[4], ARGV[i]) == 1 then return ARGV[i] end
  local pooled = redis.call('HGET', KEYS[2], ARGV[i])
  if pooled then
    local dot = string.find(pooled, '.', 1, true)
    if not dot or string.sub(pooled, 1, dot - 1) ~= ARGV[i + 1] then return ARGV[i] end
  end
end
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', KEYS[3], tonumber(ARGV[i]), ARGV[i])
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 'ok'
`;

/** consumeKemPreKey. KEYS: KEM pool, KEM queue, KEM claimed. ARGV: id. Returns 1 or 0. */
export const CONSUME_KEM_PRE_KEY = CONSUME_ONE_TIME_KEY;

/**
 * removeBundle. KEYS: base, pool, queue, claimed, KEM pool, KEM queue, KEM claimed (the last-resort
 * KEM pre-key is in the base). Returns 1 if there was a bundle.
 */
export const REMOVE_BUNDLE = `
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', unpack(KEYS))
return existed
`;

/**
 * Compare-and-swap save of a record (a hash {v = version, d = data}; without d it is a tombstone
 * keeping the version). KEYS: record, index (a set, or the record key again when there is none), and
 * for a session its inbox keys, whose TTL follows the session's (an inbox must not expire first).
 * ARGV: data, expected version, TTL ms (0: none), index member ('' for none).
 * Returns {1, new version} or {0, stored version}.
 */
export const SAVE_RECORD = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local live = 0
if redis.call('HEXISTS', KEYS[1], 'd') == 1 then live = v end
if tonumber(ARGV[2]) ~= live then return {0, live} end
local nv = v + 1
redis.call('HSET', KEYS[1], 'v', nv, 'd', ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
end
for i = 3, #KEYS do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
return {1, nv}
`;

/** Delete a record, keeping its version as a tombstone. KEYS: record, index. ARGV: index member or ''. Returns 1 or 0. */
export const DELETE_RECORD = `
if redis.call('HDEL', KEYS[1], 'd') == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
`;

/** markEstablishment. KEYS: replay set, replay index. ARGV: fingerprint, signed pre-key id. Returns 1 or 0. */
export const MARK_ESTABLISHMENT = `
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return added
`;

/**
 * Compare-and-swap save of a session together with a new inbox entry (one atomic step).
 * KEYS: session record, session index, inbox hash (id → sealed plaintext), inbox order (zset id by version).
 * ARGV: data, expected version, TTL ms (0: none), index member, entry id, entry data, most entries.
 * Returns {1, new version}, {0, stored version} (stale), {2, 0} (inbox full) or {3, 0} (id stored already).
 */
export const SAVE_SESSION_WITH_INBOX = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local live = 0
if redis.call('HEXISTS', KEYS[1], 'd') == 1 then live = v end
if tonumber(ARGV[2]) ~= live then return {0, live} end
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return {3, 0} end
if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[7]) then return {2, 0} end
local nv = v + 1
redis.call('HSET', KEYS[1], 'v', nv, 'd', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[4], nv, ARGV[5])
local ttl = tonumber(ARGV[3])
for i = 1, 4 do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
return {1, nv}
`;

/** One inbox entry. KEYS: inbox hash, inbox order. ARGV: id. Returns nil or {version, data}. */
export const LOAD_INBOX_ENTRY = `
local d = redis.call('HGET', KEYS[1], ARGV[1])
if not d then return nil end
return {redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0', d}
`;

/** The whole inbox, oldest first. KEYS: inbox hash, inbox order. Returns {id1, version1, data1, ...}. */
export const LIST_INBOX = `
local ids = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local d = redis.call('HGET', KEYS[1], ids[i])
  if d then
    out[#out + 1] = ids[i]
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = d
  end
end
return out
`;

/** Acknowledge an inbox entry. KEYS: inbox hash, inbox order. ARGV: id. Returns 1 or 0. */
export const DELETE_INBOX_ENTRY = `
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
`;

/**
 * Delete a session (keeping its version as a tombstone) and its inbox.
 * KEYS: record, index, inbox hash, inbox order. ARGV: index member. Returns 1 or 0.
 */
export const DELETE_SESSION = `
redis.call('DEL', KEYS[3], KEYS[4])
if redis.call('HDEL', KEYS[1], 'd') == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`;

/**
 * An accepted establishment, in one atomic step: the key-manager state (a one-time pre-key spent) or
 * the replay record, and the new session. Checks everything before writing anything.
 * KEYS: key-manager record, session record, session index, replay set, replay index.
 * ARGV: key-manager data or '', its expected version, session data, its expected version, session
 * TTL ms, index member, fingerprint or '', signed pre-key id.
 * Returns {1, key-manager version or 0, session version}, {0, stored version, 1} (key manager stale),
 * {0, stored version, 2} (session stale) or {2, 0, 0} (establishment replayed).
 */
export const SAVE_ACCEPTANCE = `
local function live(key)
  local v = tonumber(redis.call('HGET', key, 'v') or '0')
  if redis.call('HEXISTS', key, 'd') == 1 then return v, v end
  return 0, v
end
local kv = 0
if ARGV[1] ~= '' then
  local l, v = live(KEYS[1])
  if tonumber(ARGV[2]) ~= l then return {0, l, 1} end
  kv = v + 1
end
local sl, sv = live(KEYS[2])
if tonumber(ARGV[4]) ~= sl then return {0, sl, 2} end
if ARGV[7] ~= '' and redis.call('SISMEMBER', KEYS[4], ARGV[7]) == 1 then return {2, 0, 0} end
if kv > 0 then redis.call('HSET', KEYS[1], 'v', kv, 'd', ARGV[1]) end
redis.call('HSET', KEYS[2], 'v', sv + 1, 'd', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[6])
local ttl = tonumber(ARGV[5])
for i = 2, 3 do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
if ARGV[7] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[7])
  redis.call('SADD', KEYS[5], ARGV[8])
end
return {1, kv, sv + 1}
`;
