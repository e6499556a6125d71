-- MD5 (RFC 1321) for LuaJIT, on its `bit` library; written for this benchmark.
--
-- LuaJIT numbers are doubles and its bit operations return signed 32-bit
-- integers, so sums of a few 32-bit words stay exact and `bit.tobit` folds
-- them back modulo 2^32.
--
--   local md5 = dofile("bench/lua/md5.lua")
--   md5.hex("abc") --> "900150983cd24fb0d6963f7d28e17f72"

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rol = bit.lshift, bit.rol
local tobit, tohex, bswap = bit.tobit, bit.tohex, bit.bswap
local byte, char, rep, floor = string.byte, string.char, string.rep, math.floor

-- Per-step left rotations, four per round, each repeated four times.
local S = {}
do
  local rounds = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } }
  for r = 1, 4 do
    for i = 0, 15 do
      S[(r - 1) * 16 + i] = rounds[r][i % 4 + 1]
    end
  end
end

-- K[i] = floor(|sin(i + 1)| * 2^32), the RFC's table, derived rather than typed.
local K = {}
for i = 0, 63 do
  K[i] = tobit(floor(math.abs(math.sin(i + 1)) * 4294967296))
end

-- Message word index per step.
local G = {}
for i = 0, 63 do
  if i < 16 then
    G[i] = i
  elseif i < 32 then
    G[i] = (5 * i + 1) % 16
  elseif i < 48 then
    G[i] = (3 * i + 5) % 16
  else
    G[i] = (7 * i) % 16
  end
end

-- The message padded to a multiple of 64 bytes: 0x80, zeros, the bit length (64-bit LE).
local function pad(msg)
  local len = #msg
  local zeros = (55 - len) % 64
  local bits = len * 8
  local tail = {}
  for i = 0, 7 do
    tail[i + 1] = char(floor(bits / 2 ^ (8 * i)) % 256)
  end
  return msg .. "\128" .. rep("\0", zeros) .. table.concat(tail)
end

local M = {}

local function digest_words(msg)
  local data = pad(msg)
  local a0, b0, c0, d0 = 0x67452301, tobit(0xefcdab89), tobit(0x98badcfe), 0x10325476
  for chunk = 1, #data, 64 do
    for j = 0, 15 do
      local p = chunk + 4 * j
      local w0, w1, w2, w3 = byte(data, p, p + 3)
      M[j] = bor(w0, lshift(w1, 8), lshift(w2, 16), lshift(w3, 24))
    end
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f
      if i < 16 then
        f = bor(band(b, c), band(bnot(b), d))
      elseif i < 32 then
        f = bor(band(d, b), band(bnot(d), c))
      elseif i < 48 then
        f = bxor(b, c, d)
      else
        f = bxor(c, bor(b, bnot(d)))
      end
      f = tobit(f + a + K[i] + M[G[i]])
      a, d, c = d, c, b
      b = tobit(b + rol(f, S[i]))
    end
    a0, b0, c0, d0 = tobit(a0 + a), tobit(b0 + b), tobit(c0 + c), tobit(d0 + d)
  end
  return a0, b0, c0, d0
end

local md5 = {}

--- Lowercase hex MD5 of the bytes of `msg`.
function md5.hex(msg)
  local a, b, c, d = digest_words(msg)
  -- The digest is the four words in little-endian byte order.
  return tohex(bswap(a)) .. tohex(bswap(b)) .. tohex(bswap(c)) .. tohex(bswap(d))
end

--- Checks md5.hex against a file of `<expected hex> <input>` lines (one-line inputs) written with md5sum.
-- Returns the number of vectors checked, or raises an error naming the first mismatch.
function md5.self_test(path)
  local f = assert(io.open(path, "rb"), "cannot open md5 test vectors " .. tostring(path))
  local n = 0
  for line in f:lines() do
    local want, input = line:match("^(%x+) (.*)$")
    if want then
      local got = md5.hex(input)
      if got ~= want then
        f:close()
        error(string.format("md5 self-test failed for %q (%d bytes): got %s, md5sum says %s",
          input, #input, got, want))
      end
      n = n + 1
    end
  end
  f:close()
  if n == 0 then
    error("md5 self-test: no vectors in " .. path)
  end
  return n
end

return md5
