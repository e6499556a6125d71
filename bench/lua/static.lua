-- Phases (a) and (d): one fixed request, repeated.
--   BENCH_PATH     the path (default /health/live)
--   BENCH_BEARER   if set, sent as `Authorization: Bearer <it>`

local report = dofile(os.getenv("BENCH_LUA") .. "/report.lua")

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/health/live"
local bearer = os.getenv("BENCH_BEARER")
if bearer and bearer ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bearer
end

function done(summary, latency, requests)
  report.print(summary, latency)
end
