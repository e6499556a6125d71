-- Phase (f): POST /v2/account-members/tokens, passwordless, each (username, code) pair once.
--   BENCH_OTP_PROFILE, BENCH_OTP_BEARER (an implicit client token)
--   BENCH_PAIRS       lines "<username> <code>" for the measured run
--   BENCH_PAIRS_CAL   the same for the one-connection calibration run (BENCH_CAL=1)
--   BENCH_THREADS     wrk's -t (the threads split the list: thread i takes lines i, i+T, ...)
-- A code is single use: a thread stops when its share is used up, and the run's
-- duration is taken from the first request to the last answer (wrk reports -d).
-- 201 is a success; anything else (401 above all) is a failure and makes the run INVALID.

local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local now = dofile(os.getenv("BENCH_LUA") .. "/clock.lua")

local headers = { ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_OTP_BEARER") }
local profile = os.getenv("BENCH_OTP_PROFILE")
local file = os.getenv("BENCH_CAL") == "1" and os.getenv("BENCH_PAIRS_CAL") or os.getenv("BENCH_PAIRS")
local T = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

npairs = 0
pairs_, n, sent, ok, bad, first, last, bad_status = nil, 0, 0, 0, 0, nil, nil, ""

function init(args)
  pairs_ = {}
  local i = 0
  for line in io.lines(file) do
    i = i + 1
    if (i - tid) % T == 0 then
      local u, c = line:match("^(%S+) (%S+)$")
      pairs_[#pairs_ + 1] = { u, c }
      npairs = npairs + 1
    end
  end
end

-- The first thread answers wrk's script check with a filler (skipcheck.lua).
request = dofile(os.getenv("BENCH_LUA") .. "/skipcheck.lua")(function()
  first = first or now()
  n = n + 1
  local p = pairs_[n]
  if not p then
    -- Used up: stop once every answer is in (a request built after stop() is never sent).
    if ok + bad >= sent then wrk.thread:stop() end
    return wrk.format("GET", "/health/live")
  end
  sent = sent + 1
  return wrk.format("POST", "/v2/account-members/tokens", headers,
    '{"data":{"type":"account_management_authentication_token","authentication_mechanism":"passwordless",' ..
    '"password_profile_id":"' .. profile .. '","username":"' .. p[1] .. '","one_time_password_token":"' .. p[2] .. '"}}')
end)

function response(status, hdrs, body)
  if status == 201 then
    ok = ok + 1
    last = now()
  elseif status ~= 200 then
    bad = bad + 1
    last = now()
    if #bad_status < 200 then bad_status = bad_status .. status .. " " end
  end
  if n > #pairs_ and ok + bad >= sent then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local o, b, total, bs, f, l = report.tally(threads, "npairs")
  io.write(string.format("exchanges: %d ok (201), %d failed %s, of %d pairs\n", o, b, bs, total))
  if b > 0 or o + b < total then
    io.write("some failed or were not sent: INVALID\n")
  end
  report.print(summary, latency, {
    requests = o + b, exchange_ok = o, exchange_bad = b, pairs = total,
    duration_us = (f and l) and math.floor(l - f) or summary.duration,
  })
end
