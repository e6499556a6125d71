-- Shared by the list-walking scripts (otpreq.lua in list mode, exchange.lua).
-- wrk calls request() once on the first thread's Lua state to check the script, and never
-- sends that request. wrap(f) returns a request() that answers that one call with a filler,
-- so no item of the list is lost, and otherwise calls f.
return function(f)
  local checking = nil
  return function()
    if checking == nil then checking = (tid == 1) end
    if checking then
      checking = false
      return wrk.format("GET", "/health/live")
    end
    return f()
  end
end
