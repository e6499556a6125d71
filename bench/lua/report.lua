-- Shared by the phase scripts: one machine-readable line at the end of a wrk run,
--   BENCH {"requests":..,"duration_us":..,"p50_us":..,...}
-- which bench/run.sh picks out of wrk's output. wrk's own text report stays above it.

local report = {}

local function json_value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return "null"
    end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      return string.format("%d", v)
    end
    return string.format("%.3f", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = string.format("%q:%s", tostring(k), json_value(x))
    end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  elseif v == nil then
    return "null"
  end
  return string.format("%q", tostring(v))
end

report.json = json_value

--- Prints the BENCH line from wrk's done() arguments and any extra fields.
function report.print(summary, latency, extra)
  local e = summary.errors
  local out = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    -- wrk counts answers with a status above 399 here.
    errors_status = e.status,
    errors_socket = e.connect + e.read + e.write,
    errors_timeout = e.timeout,
    p50_us = latency:percentile(50),
    p90_us = latency:percentile(90),
    p99_us = latency:percentile(99),
    max_us = latency.max,
    mean_us = latency.mean,
  }
  for k, v in pairs(extra or {}) do
    out[k] = v
  end
  io.write("BENCH ", json_value(out), "\n")
end

--- The threads' tallies of a script that walks a list once (the exchange's pairs, the
--- peer's): answers ok and failed, the list's length (per-thread variable `count_name`),
--- the failed statuses, and the first and last answer's times (clock.lua).
function report.tally(threads, count_name)
  local ok, bad, first, last, total, statuses = 0, 0, nil, nil, 0, ""
  for _, t in ipairs(threads) do
    ok = ok + t:get("ok")
    bad = bad + t:get("bad")
    total = total + t:get(count_name)
    statuses = statuses .. t:get("bad_status")
    local tf, tl = t:get("first"), t:get("last")
    if tf and (not first or tf < first) then first = tf end
    if tl and (not last or tl > last) then last = tl end
  end
  return ok, bad, total, statuses, first, last
end

return report
