-- The peer's phases (PEERS=1): Better Auth's emailOTP endpoints (bench/peer/server.mjs).
--   BENCH_PEER_MODE  send:     POST /api/auth/email-otp/send-verification-otp {"email","type":"sign-in"},
--                              cycling over BENCH_OTP_NAMES (default 100000) addresses n<N>@bench.invalid
--                              that are not users: the peer's side of phase (e)
--                    issue:    the same request, once for each address of BENCH_OTP_LIST (the threads
--                              split it), then the thread stops: the codes for the sign-in phase
--                    exchange: POST /api/auth/sign-in/email-otp {"email","otp"}, each line
--                              "<address> <code>" of BENCH_PAIRS once: the peer's side of phase (f)
--   BENCH_THREADS    wrk's -t (list modes)
-- Success is 200 (the sign-in answers 200 with a session token). In the list modes the run's
-- duration is measured from the first request to the last answer, as in otpreq.lua and
-- exchange.lua; a used-up thread sends GET /_bench/ready (204) until it stops.
local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local now = dofile(os.getenv("BENCH_LUA") .. "/clock.lua")

local mode = os.getenv("BENCH_PEER_MODE") or "send"
local headers = { ["Content-Type"] = "application/json" }
local names = tonumber(os.getenv("BENCH_OTP_NAMES") or "100000")
local T = tonumber(os.getenv("BENCH_THREADS") or "1")
local SEND = "/api/auth/email-otp/send-verification-otp"
local SIGNIN = "/api/auth/sign-in/email-otp"

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

local list, n = nil, 0
sent, ok, bad, first, last, bad_status, nlist = 0, 0, 0, nil, nil, "", 0

function init(args)
  local file = (mode == "issue" and os.getenv("BENCH_OTP_LIST")) or (mode == "exchange" and os.getenv("BENCH_PAIRS"))
  if file then
    list = {}
    local i = 0
    for line in io.lines(file) do
      i = i + 1
      if line ~= "" and (i - tid) % T == 0 then list[#list + 1] = line end
    end
    nlist = #list
  end
end

local function send_body(email)
  return '{"email":"' .. email .. '","type":"sign-in"}'
end

local function filler()
  return wrk.format("GET", "/_bench/ready")
end

-- The first thread answers wrk's script check with a filler (skipcheck.lua).
request = dofile(os.getenv("BENCH_LUA") .. "/skipcheck.lua")(function()
  first = first or now()
  n = n + 1
  if not list then
    sent = sent + 1
    return wrk.format("POST", SEND, headers, send_body("n" .. ((tid * 7919 + n) % names) .. "@bench.invalid"))
  end
  local item = list[n]
  if not item then
    -- Used up: stop once every answer is in (a request built after stop() is never sent).
    if ok + bad >= sent then wrk.thread:stop() end
    return filler()
  end
  sent = sent + 1
  if mode == "issue" then
    return wrk.format("POST", SEND, headers, send_body(item))
  end
  local email, code = item:match("^(%S+) (%S+)$")
  return wrk.format("POST", SIGNIN, headers, '{"email":"' .. email .. '","otp":"' .. code .. '"}')
end)

function response(status, hdrs, body)
  if status == 204 then
    -- a filler's answer
  elseif status == 200 then
    ok = ok + 1
    last = now()
  else
    bad = bad + 1
    last = now()
    if #bad_status < 200 then bad_status = bad_status .. status .. " " end
  end
  if list and n > #list and ok + bad >= sent then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local o, b, total, bs, f, l = report.tally(threads, "nlist")
  io.write(string.format("peer %s: %d ok (200), %d failed %s%s\n", mode, o, b, bs,
    mode ~= "send" and string.format(", of %d in the list", total) or ""))
  local extra = { peer_ok = o, peer_bad = b, mode = mode }
  -- (done() runs in the main Lua state, where init() never ran: no `list` here.)
  if mode ~= "send" and f and l then
    -- The run ended when the list was used up, not at -d: count only the list's requests.
    extra.requests = o + b
    extra.duration_us = math.floor(l - f)
    extra.list = total
  end
  report.print(summary, latency, extra)
end
