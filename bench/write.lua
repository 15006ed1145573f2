-- KV v2 write workload: POST <prefix><n> with a small JSON body, cycling over BENCH_WRITE_KEYS
-- distinct keys (default 1000) so writes hit a spread of keys, not one hot key.
-- Env: BENCH_WRITE_PREFIX (default /v1/secret/data/bench-w), BENCH_WRITE_KEYS.
-- Each wrk thread takes an interleaved slice of the key space and prebuilds its requests in
-- init(), so the per-request client cost is one table lookup (as cheap as a fixed GET).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local prefix = os.getenv("BENCH_WRITE_PREFIX") or "/v1/secret/data/bench-w"
local nkeys = tonumber(os.getenv("BENCH_WRITE_KEYS") or "1000")

-- wrk calls setup() and then init() for one thread before it sets up the next, so the thread
-- count comes from the environment (run.sh exports BENCH_THREADS, the value it passes to -t).
local next_id = 0
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
end

local reqs, i = {}, 0
function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   local me, step = tid or 0, tonumber(os.getenv("BENCH_THREADS") or "1")
   if me >= step then step = me + 1 end
   for n = me, nkeys - 1, step do
      local body = string.format(
         '{"data":{"username":"bench","password":"correct-horse-battery-staple","n":%d}}', n)
      reqs[#reqs + 1] = wrk.format("POST", prefix .. n, nil, body)
   end
   if #reqs == 0 then reqs[1] = wrk.format("POST", prefix .. me, nil, '{"data":{"n":0}}') end
end

function request()
   i = i % #reqs + 1
   return reqs[i]
end
