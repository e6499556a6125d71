-- Phase (c): the one-time-key login flow. A flow is one key request
--   POST /v1/login/one-time-key/request {"username": U}  ->  {"result":false,"code":302,"key":K}
-- then one login with the hash the customer's backend would compute,
--   POST /v1/login/one-time-key {"username": U, "hash": MD5(K "|" HA1(U))}  ->  200 {"result":true,...}
--
-- wrk keeps one Lua state per *thread*, not per connection, and does not say which
-- connection an answer came on. A key belongs to one user and a new key request
-- voids that user's previous key, so each thread must own one user and have one
-- request in flight: run.sh starts this phase with as many threads as connections.
--
--   BENCH_LUA        this folder
--   BENCH_USERS_FILE lines "<username> <ha1>"; thread i logs in as line i
--   BENCH_PASSWORD   the users' password (to cross-check the HA1s the gateway's CLI printed)
--   BENCH_MD5_VECTORS lines "<md5sum hex> <input>" for md5.lua's self-test

local dir = os.getenv("BENCH_LUA")
local report = dofile(dir .. "/report.lua")
local md5 = dofile(dir .. "/md5.lua")
local ffi = require("ffi")

ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local function read_users()
  local path = assert(os.getenv("BENCH_USERS_FILE"), "BENCH_USERS_FILE is not set")
  local users = {}
  for line in io.lines(path) do
    local name, ha1 = line:match("^(%S+) (%x+)$")
    if name then
      users[#users + 1] = { name = name, ha1 = ha1 }
    end
  end
  return users
end

-- ---- main state: self-test, hand each thread its user, add up at the end ----

local threads = {}
local users_all
function setup(thread)
  if #threads == 0 then
    -- The self-test runs once, before any thread sends anything.
    local ok, err = pcall(function()
      local n = md5.self_test(assert(os.getenv("BENCH_MD5_VECTORS"), "BENCH_MD5_VECTORS is not set"))
      users_all = read_users()
      local pw = assert(os.getenv("BENCH_PASSWORD"), "BENCH_PASSWORD is not set")
      for _, u in ipairs(users_all) do
        local bare = u.name:match("^([^@]+)@")
        local mine = md5.hex(bare .. ":voximplant.com:" .. pw)
        if mine ~= u.ha1 then
          error(string.format("HA1 of %s: md5.lua says %s, `authgate ha1` says %s", bare, mine, u.ha1))
        end
      end
      io.write(string.format("md5 self-test: %d md5sum vectors and %d HA1s from `authgate ha1` match\n",
        n, #users_all))
    end)
    if not ok then
      io.stderr:write("SELF-TEST FAILED: ", tostring(err), "\n")
      os.exit(3)
    end
  end
  threads[#threads + 1] = thread
  local u = users_all[#threads]
  if not u then
    io.stderr:write(string.format("flow.lua: %d threads but only %d users in BENCH_USERS_FILE\n",
      #threads, #users_all))
    os.exit(3)
  end
  thread:set("user_name", u.name)
  thread:set("user_ha1", u.ha1)
end

-- ---- thread state: one user, one request in flight ----

local headers = { ["Content-Type"] = "application/json" }
local key           -- the key from the last key answer, not yet used
local sent          -- "key" or "login": what the last request() returned
local sent_at = 0
-- Counters, read by done() through thread:get.
key_ok, key_bad, login_ok, login_bad, login_bad_status = 0, 0, 0, 0, ""
-- Latency histograms (microseconds, log buckets of ~2%), per request kind.
hist_key, hist_login = {}, {}
local LOG_BASE = math.log(1.02)

local function record(h, us)
  local b = math.floor(math.log(math.max(us, 1)) / LOG_BASE)
  h[b] = (h[b] or 0) + 1
end

function request()
  -- wrk also calls request() again after a reconnect, without an answer in between:
  -- whatever was last sent is then forgotten, and a used key is never resent.
  sent_at = now_us()
  if key then
    local hash = md5.hex(key .. "|" .. user_ha1)
    key = nil
    sent = "login"
    return wrk.format("POST", "/v1/login/one-time-key", headers,
      '{"username":"' .. user_name .. '","hash":"' .. hash .. '"}')
  end
  sent = "key"
  return wrk.format("POST", "/v1/login/one-time-key/request", headers,
    '{"username":"' .. user_name .. '"}')
end

function response(status, headers, body)
  local took = now_us() - sent_at
  if sent == "key" then
    record(hist_key, took)
    local k = status == 200 and body:match('"key"%s*:%s*"([^"]+)"')
    if k then
      key = k
      key_ok = key_ok + 1
    else
      key_bad = key_bad + 1
    end
  elseif sent == "login" then
    record(hist_login, took)
    if status == 200 and body:find('"result"%s*:%s*true') then
      login_ok = login_ok + 1
    else
      login_bad = login_bad + 1
      if #login_bad_status < 200 then
        login_bad_status = login_bad_status .. status .. ":" .. body:sub(1, 80) .. " | "
      end
    end
  end
  sent = nil
end

-- ---- main state again ----

local function percentile(h, p)
  local buckets, total = {}, 0
  for b, c in pairs(h) do
    buckets[#buckets + 1] = b
    total = total + c
  end
  if total == 0 then
    return 0
  end
  table.sort(buckets)
  local want, seen = total * p / 100, 0
  for _, b in ipairs(buckets) do
    seen = seen + h[b]
    if seen >= want then
      -- The bucket's geometric middle.
      return math.exp((b + 0.5) * LOG_BASE)
    end
  end
  return math.exp((buckets[#buckets] + 0.5) * LOG_BASE)
end

function done(summary, latency, requests)
  local k_ok, k_bad, l_ok, l_bad = 0, 0, 0, 0
  local hk, hl, bad = {}, {}, ""
  for _, t in ipairs(threads) do
    k_ok = k_ok + t:get("key_ok")
    k_bad = k_bad + t:get("key_bad")
    l_ok = l_ok + t:get("login_ok")
    l_bad = l_bad + t:get("login_bad")
    if #bad < 400 then
      bad = bad .. t:get("login_bad_status")
    end
    for b, c in pairs(t:get("hist_key")) do hk[b] = (hk[b] or 0) + c end
    for b, c in pairs(t:get("hist_login")) do hl[b] = (hl[b] or 0) + c end
  end
  io.write(string.format("flows: key requests ok %d, failed %d; logins ok (200, result:true) %d, failed %d\n",
    k_ok, k_bad, l_ok, l_bad))
  if l_bad > 0 then
    io.write("some failed logins: ", bad, "\n")
  end
  report.print(summary, latency, {
    key_ok = k_ok,
    key_bad = k_bad,
    login_ok = l_ok,
    login_bad = l_bad,
    flows = l_ok + l_bad,
    key_p50_us = percentile(hk, 50),
    key_p99_us = percentile(hk, 99),
    login_p50_us = percentile(hl, 50),
    login_p99_us = percentile(hl, 99),
  })
end
