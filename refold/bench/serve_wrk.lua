-- wrk script of `refold bench serve`: GET a random user's recommendations, spaced by the clock
-- to a fixed rate (0: as fast as the connections go), and write the counts and the latency
-- histogram as JSON.
-- Arguments (after --): users, rate (requests/s), seed. `done` runs in wrk's main Lua state,
-- where `init` never ran: it prints one line, "refold-result {json}", for the caller to parse.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } refold_timespec;
int clock_gettime(int clk_id, refold_timespec *tp);
]]
local ts = ffi.new("refold_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local users, interval, next_at = 1, 0, nil

function init(args)
  users = tonumber(args[1])
  local rate = tonumber(args[2])
  interval = rate > 0 and 1000 / rate or 0
  math.randomseed(tonumber(args[3]))
end

function delay()
  -- the next slot of the schedule; a late request goes at once (the schedule is not reset)
  if interval == 0 then return 0 end
  local t = now_ms()
  next_at = (next_at or t) + interval
  return math.max(0, next_at - t)
end

function request()
  local path = string.format("/v1/users/u%08d/recommendations", math.random(0, users - 1))
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  -- the whole histogram: latency(i) is the i-th distinct latency (µs) and its count
  local pairs = {}
  for i = 1, #latency do
    local value, count = latency(i)
    pairs[#pairs + 1] = string.format("[%d,%d]", value, count)
  end
  local e = summary.errors
  io.write(string.format(
    'refold-result {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"histogram":[%s]}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    table.concat(pairs, ",")))
end
