-- Phase (e) and the code issuing step: POST .../one-time-password-token-request (202).
--   BENCH_OTP_REALM, BENCH_OTP_PROFILE, BENCH_OTP_BEARER (an implicit client token)
--   BENCH_OTP_NAMES   phase (e): cycle over this many distinct usernames
--                     n<N>@bench.invalid (default 100000), which are not in the directory
--   BENCH_OTP_LIST    instead: a file of usernames; each is asked for exactly once (the
--                     threads split it), then the thread stops. Used to issue one code per
--                     user for phase (f).

local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local now = dofile(os.getenv("BENCH_LUA") .. "/clock.lua")

local path = "/v2/authentication-realms/" .. os.getenv("BENCH_OTP_REALM") .. "/password-profiles/"
  .. os.getenv("BENCH_OTP_PROFILE") .. "/one-time-password-token-request"
local headers = { ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_OTP_BEARER") }
local names = tonumber(os.getenv("BENCH_OTP_NAMES") or "100000")
local list_file = os.getenv("BENCH_OTP_LIST")

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

local list, n, nthreads = nil, 0, 0
sent, ok, bad, first, last = 0, 0, 0, nil, nil

function init(args)
  if list_file and list_file ~= "" then
    list = {}
    for line in io.lines(list_file) do list[#list + 1] = line end
  end
end

local function body(name)
  return '{"data":{"type":"one_time_password_token_request","username":"' .. name ..
    '","purpose":"passwordless_authentication"}}'
end

-- The first thread answers wrk's script check with a filler (skipcheck.lua).
request = dofile(os.getenv("BENCH_LUA") .. "/skipcheck.lua")(function()
  first = first or now()
  n = n + 1
  if list then
    -- Thread tid takes lines tid, tid + T, tid + 2T, ... (T threads in all).
    local i = tid + (n - 1) * tonumber(os.getenv("BENCH_THREADS") or "1")
    if i > #list then
      -- Used up: stop once every answer is in (a request built after stop() is never sent).
      if ok + bad >= sent then wrk.thread:stop() end
      return wrk.format("GET", "/health/live")
    end
    sent = sent + 1
    return wrk.format("POST", path, headers, body(list[i]))
  end
  return wrk.format("POST", path, headers, body("n" .. ((tid * 7919 + n) % names) .. "@bench.invalid"))
end)

function response(status, hdrs, b)
  if status == 202 then
    ok = ok + 1
    last = now()
  elseif status ~= 200 then
    bad = bad + 1
    last = now()
  end
  if list and ok + bad >= sent and tid + (n - 1) * tonumber(os.getenv("BENCH_THREADS") or "1") > #list then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local o, b, f, l = 0, 0, nil, nil
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    local tf, tl = t:get("first"), t:get("last")
    if tf and (not f or tf < f) then f = tf end
    if tl and (not l or tl > l) then l = tl end
  end
  local extra = { accepted = o, failed = b }
  if list_file and list_file ~= "" and f and l then
    -- The run ended when the list was used up, not at -d: count only the code requests.
    extra.requests = o + b
    extra.duration_us = math.floor(l - f)
  end
  io.write(string.format("otp requests: %d accepted (202), %d failed\n", o, b))
  report.print(summary, latency, extra)
end
