-- KV v2 read over many keys (bench/scale.sh): GET <BENCH_READ_PREFIX>f<n / BENCH_LOAD_FOLDER>/k<n>
-- for n = 0, S, 2S, ... (BENCH_READ_KEYS keys, stride S = BENCH_READ_STRIDE), the keys
-- bench/load.lua writes with the same BENCH_LOAD_FOLDER. Each wrk thread prebuilds its
-- interleaved share of the requests in init(), so the client's per-request cost is one table
-- lookup, as for a fixed GET. Env: BENCH_THREADS (the -t wrk runs with).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local prefix = os.getenv("BENCH_READ_PREFIX") or "/v1/secret/data/scale/"
local nkeys = tonumber(os.getenv("BENCH_READ_KEYS") or "1000")
local stride = tonumber(os.getenv("BENCH_READ_STRIDE") or "1")
local folder = tonumber(os.getenv("BENCH_LOAD_FOLDER") or "0")

local next_id = 0
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
end

local reqs, i = {}, 0
function init(args)
   local me, step = tid or 0, tonumber(os.getenv("BENCH_THREADS") or "1")
   if me >= step then step = me + 1 end
   for j = me, nkeys - 1, step do
      local n = j * stride
      local f = 0
      if folder > 0 then f = math.floor(n / folder) end
      reqs[#reqs + 1] = wrk.format("GET", prefix .. "f" .. f .. "/k" .. n)
   end
   if #reqs == 0 then reqs[1] = wrk.format("GET", prefix .. "f0/k0") end
end

function request()
   i = i % #reqs + 1
   return reqs[i]
end
