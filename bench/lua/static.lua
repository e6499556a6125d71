-- Phases (a) and (d): one fixed request, repeated.
--   BENCH_PATH          the path (default /health/live)
--   BENCH_BEARER        if set, sent as `Authorization: Bearer <it>`
--   BENCH_BEARER_FILE   if set (and not empty): a file of tokens, one a line; each request
--                       carries the next (each thread cycles through them all). Phase (d) with
--                       VERIFY_TOKENS > 1: many sessions, so many keys (and cluster slots).

local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/health/live"
local bearer = os.getenv("BENCH_BEARER")
if bearer and bearer ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bearer
end

local bearer_file = os.getenv("BENCH_BEARER_FILE")
if bearer_file and bearer_file ~= "" then
  local tokens = {}
  for line in io.lines(bearer_file) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
  assert(#tokens > 0, "no token in " .. bearer_file)
  -- Formatted on the first call, after wrk's own init has set the Host header.
  local reqs, i = nil, 0
  function request()
    if not reqs then
      reqs = {}
      for k, t in ipairs(tokens) do
        reqs[k] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. t })
      end
    end
    i = i % #reqs + 1
    return reqs[i]
  end
end

function done(summary, latency, requests)
  report.print(summary, latency)
end
