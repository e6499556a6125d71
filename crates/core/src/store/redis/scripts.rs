//! The Lua scripts of the Redis store: each operation that reads before it
//! writes runs as one script, so it is atomic on the server. Scripts are sent by
//! their SHA1 ([`sha`]); a Redis that forgot them gets the source again ([`source`]).

/// The window counter every counting script starts with: one more event in
/// `KEYS[1]`, a window of `ARGV[1]` ms that opens with the first event; leaves
/// the count in `n` and the time left in `t`.
macro_rules! count_in_window {
    () => {
        r"
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
"
    };
}

/// Counts one event in a window that opens with the first event.
pub(super) const HIT: &str = concat!(count_in_window!(), "return {n, t}\n");

/// Counts one event and, within the limit, writes a value: the limit guards the write.
/// (With no limit the store sends a plain SET instead.)
pub(super) const SET_UNDER_LIMIT: &str = concat!(
    count_in_window!(),
    r"if n <= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return {n, t, 1}
end
return {n, t, 0}
"
);

/// The code check both code scripts share, as a Lua function of the code's key
/// and the digest presented: 0 no code, 1 matched (and deleted), 2 wrong, 3 wrong
/// and burnt. The value is the code's digest, then "\n" and a digest for each
/// wrong try counted. Digests are keyed HMACs, so comparing them here in
/// variable time leaks nothing.
macro_rules! check_code_fn {
    () => {
        r"
local function check(key, d, max)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local cut = string.find(v, '\n', 1, true)
  if (cut and string.sub(v, 1, cut - 1) or v) == d then
    redis.call('DEL', key)
    return 1
  end
  if string.find(v .. '\n', '\n' .. d .. '\n', 1, true) then return 2 end
  local _, tries = string.gsub(v, '\n', '')
  if tries + 1 >= tonumber(max) then
    redis.call('DEL', key)
    return 3
  end
  redis.call('APPEND', key, '\n' .. d)
  return 2
end
"
    };
}

/// Checks a one-time code digest: single use on a match, burnt after the last wrong try.
pub(super) const CHECK_CODE: &str = concat!(
    check_code_fn!(),
    "return check(KEYS[1], ARGV[1], ARGV[2])\n"
);

/// The code check under a guess limit: nothing is checked once the counter
/// (`KEYS[2]`) has reached `ARGV[3]`; a wrong digest is counted once per window
/// of `ARGV[4]` ms (the set `KEYS[3]` remembers the digests counted). Answers
/// {outcome, ms left of the limit's window}, outcome 4 when limited.
pub(super) const CHECK_CODE_GUARDED: &str = concat!(
    check_code_fn!(),
    r"
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n >= tonumber(ARGV[3]) then
  return {4, redis.call('PTTL', KEYS[2])}
end
local r = check(KEYS[1], ARGV[1], ARGV[2])
if r >= 2 and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
  redis.call('INCR', KEYS[2])
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
end
return {r, 0}
"
);

/// Counts an event unless the same member was counted in this window.
pub(super) const HIT_UNLESS_SEEN: &str = concat!(
    r"
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  local n = tonumber(redis.call('GET', KEYS[1]) or '0')
  return {n, redis.call('PTTL', KEYS[1])}
end
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
",
    count_in_window!(),
    "return {n, t}\n"
);

/// Compare-and-swap of a session's refresh digest, with reuse detection.
/// The digests compared are SHA-256 of 256-bit random tokens, so the
/// non-constant-time string comparison here leaks nothing useful.
pub(super) const ROTATE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'r')
if not cur then return 0 end
local used = redis.call('HGET', KEYS[1], 'used') or ''
if cur == ARGV[1] then
  used = used .. ARGV[1] .. ','
  local keep = tonumber(ARGV[3])
  local parts = {}
  for p in string.gmatch(used, '([^,]+)') do parts[#parts + 1] = p end
  if #parts > keep then
    used = table.concat(parts, ',', #parts - keep + 1) .. ','
  end
  redis.call('HSET', KEYS[1], 'used', used)
  for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
for p in string.gmatch(used, '([^,]+)') do
  if p == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 2
  end
end
return 3
";

/// Reads new entries for a consumer, creating the group only when the read
/// finds it missing (a Redis without persistence forgets groups when it restarts).
pub(super) const STREAM_READ: &str = r"
local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if type(r) == 'table' and r.err then
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
end
return r
";

/// Takes over idle pending entries (creating the group when missing).
pub(super) const STREAM_CLAIM: &str = r"
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
return r[2]
";

/// Appends to the stream when the index has the field, and otherwise the same
/// amount of nothing to a stream kept at one entry.
pub(super) const STREAM_ADD_IF_PRESENT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
else
  redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'e', ARGV[3])
end
return 1
";

/// Moves due entries from the schedule to the stream, atomically.
pub(super) const RELEASE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, e in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'e', e)
  redis.call('ZREM', KEYS[1], e)
end
return #due
";

/// Adds a member that lives ARGV[2] ms to an index (a sorted set scored by each
/// member's end, server time), drops the members whose end has passed, and
/// extends the index's own lifetime to its newest member's, never shortening
/// it. An index kept as a plain set (before members had lifetimes of their
/// own) is converted when the first ZADD finds it (so the usual add pays no
/// TYPE), each member given what was left of the set's lifetime.
pub(super) const INDEX_ADD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local added = redis.pcall('ZADD', KEYS[1], now + ttl, ARGV[1])
if type(added) == 'table' and added.err then
  if redis.call('TYPE', KEYS[1]).ok ~= 'set' then return redis.error_reply(added.err) end
  local left = redis.call('PTTL', KEYS[1])
  local till = now + (left > 0 and left or ttl)
  local members = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
  for i = 1, #members, 500 do
    local args = {}
    for j = i, math.min(i + 499, #members) do
      args[#args + 1] = till
      args[#args + 1] = members[j]
    end
    redis.call('ZADD', KEYS[1], unpack(args))
  end
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
";

/// The live members of an index (INDEX_ADD's), or every member of one still
/// kept as a plain set.
pub(super) const INDEX_MEMBERS: &str = r"
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  return redis.call('SMEMBERS', KEYS[1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
";

/// Every script this store runs.
const SCRIPTS: [&str; 12] = [
    HIT,
    CHECK_CODE_GUARDED,
    SET_UNDER_LIMIT,
    CHECK_CODE,
    HIT_UNLESS_SEEN,
    ROTATE,
    INDEX_ADD,
    INDEX_MEMBERS,
    STREAM_READ,
    STREAM_CLAIM,
    RELEASE,
    STREAM_ADD_IF_PRESENT,
];

/// The SHA1 a script is cached under in Redis (computed once per process).
pub(super) fn sha(src: &'static str) -> &'static str {
    static SHAS: std::sync::OnceLock<Vec<(&'static str, String)>> = std::sync::OnceLock::new();
    let shas = SHAS.get_or_init(|| {
        SCRIPTS
            .iter()
            .map(|s| (*s, redis::Script::new(s).get_hash().to_owned()))
            .collect()
    });
    shas.iter()
        // Constants may live at several addresses: compare the text (lengths first).
        .find(|(s, _)| s.len() == src.len() && *s == src)
        .map(|(_, h)| h.as_str())
        .unwrap_or_else(|| unreachable!("every script is listed in SCRIPTS"))
}

/// The source of the script cached under `hash`.
pub(super) fn source(hash: &[u8]) -> Option<&'static str> {
    SCRIPTS.iter().copied().find(|s| sha(s).as_bytes() == hash)
}
