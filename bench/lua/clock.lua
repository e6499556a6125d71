-- Wall clock in microseconds for the Lua scripts (LuaJIT FFI, CLOCK_MONOTONIC), used by
-- the phases that stop once their list is used up: wrk itself always reports the full -d.
local ffi = require("ffi")
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")
return function()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
