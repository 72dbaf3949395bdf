//! The Lua scripts: each backend operation is one script, so one round trip, atomic on the
//! Redis side. Every script gets `n` (the number of tables) as `ARGV[1]` and the keys
//! `KEYS[1..n]` (the tables' tokens) then `KEYS[n+1..2n]` (their lock holders), all of one
//! database (one hash slot). Time comes from Redis's own `TIME`, never from a client clock.
//!
//! A table is locked iff its sorted set holds a member whose score (deadline, in ms) is after
//! now. A token is set only while no lock is live (`LOCK` deletes it, `BUMP` and `INIT` set
//! it only without a live holder), so a present token proves the table unlocked: reads check
//! the locks, and the clock, only of a table without one. Replies per table: `0` missing, `1`
//! locked, or the 16-byte token.

use deadpool_redis::redis::Script;

use super::layout::ENTRY_FORMAT;

/// Redis's clock in milliseconds, as a Lua number (exact: below 2^53). A function: the read
/// scripts need it only for a table whose token is missing.
const NOW: &str = r"
local function now_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
";

/// The state of every table and, only if every token is present and the entry was stored
/// with exactly those tokens, the entry (`KEYS[2n+1]`, optional). A token is only ever set
/// while no lock is live, so a present token needs no lock check: the clock and the lock set
/// are read only for a table without one.
const FETCH: &str = r"
local n = tonumber(ARGV[1])
local out = {}
local tokens = {}
local present = true
local above = nil
for i = 1, n do
  local token = redis.call('GET', KEYS[i])
  if token and #token == 16 then
    out[i] = token
    tokens[i] = token
  else
    present = false
    above = above or ('(' .. now_ms())
    if redis.call('ZCOUNT', KEYS[n + i], above, '+inf') > 0 then
      out[i] = 1
    else
      out[i] = 0
    end
  end
end
out[n + 1] = false
if present and #KEYS > 2 * n then
  local entry = redis.call('GET', KEYS[2 * n + 1])
  local header = string.char(FORMAT, math.floor(n / 256), n % 256) .. table.concat(tokens)
  if entry and string.sub(entry, 1, #header) == header then
    out[n + 1] = entry
  end
end
return out
";

/// Sets a fresh token (`ARGV[1+i]`) on every table that has neither a token nor a live lock;
/// returns every table's effective state.
const INIT: &str = r"
local n = tonumber(ARGV[1])
local now = now_ms()
local out = {}
for i = 1, n do
  local lock = KEYS[n + i]
  redis.call('ZREMRANGEBYSCORE', lock, '-inf', now)
  if redis.call('ZCARD', lock) > 0 then
    out[i] = 1
  else
    local token = redis.call('GET', KEYS[i])
    if not token or #token ~= 16 then
      token = ARGV[1 + i]
      redis.call('SET', KEYS[i], token)
    end
    out[i] = token
  end
end
return out
";

/// Stores the entry `ARGV[3]` under `KEYS[2n+1]` for `ARGV[2]` ms if every token is still
/// the one in the entry's header (a present token means no live lock). Returns 1 if stored,
/// 0 if not.
const STORE: &str = r"
local n = tonumber(ARGV[1])
local entry = ARGV[3]
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= string.sub(entry, 4 + 16 * (i - 1), 3 + 16 * i) then
    return 0
  end
end
redis.call('SET', KEYS[2 * n + 1], entry, 'PX', ARGV[2])
return 1
";

/// Removes every token, adds the holder `ARGV[2]` with a deadline `ARGV[3]` ms from now, and
/// lets the lock key expire with its last deadline: a dead writer leaves nothing behind.
const LOCK: &str = r"
local n = tonumber(ARGV[1])
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
for i = 1, n do
  local lock = KEYS[n + i]
  redis.call('DEL', KEYS[i])
  redis.call('ZREMRANGEBYSCORE', lock, '-inf', now)
  redis.call('ZADD', lock, deadline, ARGV[2])
  local last = redis.call('ZRANGE', lock, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', lock, last[2])
end
return n
";

/// Removes the holder `ARGV[2]` (if not empty) and sets the fresh token `ARGV[2+i]` on every
/// table no other live holder locks; a table still locked keeps no token until its last
/// holder bumps or its lock expires.
const BUMP: &str = r"
local n = tonumber(ARGV[1])
local now = now_ms()
for i = 1, n do
  local lock = KEYS[n + i]
  redis.call('ZREMRANGEBYSCORE', lock, '-inf', now)
  if ARGV[2] ~= '' then
    redis.call('ZREM', lock, ARGV[2])
  end
  if redis.call('ZCARD', lock) == 0 then
    redis.call('SET', KEYS[i], ARGV[2 + i])
  end
end
return n
";

/// The scripts, with their SHA1 computed once.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) fetch: Script,
    pub(super) init: Script,
    pub(super) store: Script,
    pub(super) lock: Script,
    pub(super) bump: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let make = |body: &str| {
            let body = body.replace("FORMAT", &ENTRY_FORMAT.to_string());
            Script::new(&format!("{NOW}{body}"))
        };
        Scripts {
            fetch: make(FETCH),
            init: make(INIT),
            store: make(STORE),
            lock: make(LOCK),
            bump: make(BUMP),
        }
    }

    pub(super) fn all(&self) -> [&Script; 5] {
        [&self.fetch, &self.init, &self.store, &self.lock, &self.bump]
    }
}
