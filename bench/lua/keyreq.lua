-- Phase (b): POST /v1/login/one-time-key/request, spread over many usernames.
--   BENCH_USERS   how many distinct usernames u<N>@myapp.myaccount.voximplant.com
--                 to cycle through (default 100000)
-- Most are unknown to the directory and get a decoy key, stored like a real one
-- (one SET with a TTL), which is what the endpoint does for anyone.

local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")

local users = tonumber(os.getenv("BENCH_USERS") or "100000")
local headers = { ["Content-Type"] = "application/json" }

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

-- Each thread walks the names in order from its own offset (tid * 7919), so two
-- threads rarely send the same name at the same moment.
local n = 0
function request()
  n = n + 1
  local name = (tid * 7919 + n) % users
  return wrk.format("POST", "/v1/login/one-time-key/request", headers,
    '{"username":"u' .. name .. '@myapp.myaccount.voximplant.com"}')
end

function done(summary, latency, requests)
  report.print(summary, latency, { distinct_users = users })
end
