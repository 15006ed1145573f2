-- Mixed workload: 90% KV v2 reads, 10% KV v2 writes, over BENCH_WRITE_KEYS keys
-- <BENCH_WRITE_PREFIX><n> (run.sh writes every one of them before, so each read finds its key).
-- Every 10th request of each wrk thread's sequence is a write (POST, the ~80-byte body of
-- write.lua), the other nine are reads (GET); reads and writes each walk the thread's
-- interleaved share of the keys in turn. Requests are prebuilt per thread in init(), so the client's
-- per-request cost is one table lookup. Env: BENCH_WRITE_PREFIX, BENCH_WRITE_KEYS, BENCH_THREADS.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local prefix = os.getenv("BENCH_WRITE_PREFIX") or "/v1/secret/data/bench-m"
local nkeys = tonumber(os.getenv("BENCH_WRITE_KEYS") or "1000")

local next_id = 0
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
end

local reqs, i = {}, 0
function init(args)
   local me, step = tid or 0, tonumber(os.getenv("BENCH_THREADS") or "1")
   if me >= step then step = me + 1 end
   local keys = {}
   for n = me, nkeys - 1, step do keys[#keys + 1] = n end
   if #keys == 0 then keys[1] = me end
   -- The writes' headers: wrk's (the -H token) plus the JSON content type; the reads use wrk's.
   local headers = { ["Content-Type"] = "application/json" }
   for k, v in pairs(wrk.headers) do headers[k] = headers[k] or v end
   -- 10 * #keys requests: each key is read 9 times and written once per pass.
   local nr, nw = 0, 0
   for r = 0, 10 * #keys - 1 do
      if r % 10 == 9 then
         local n = keys[nw % #keys + 1]
         nw = nw + 1
         local body = string.format(
            '{"data":{"username":"bench","password":"correct-horse-battery-staple","n":%d}}', n)
         reqs[#reqs + 1] = wrk.format("POST", prefix .. n, headers, body)
      else
         reqs[#reqs + 1] = wrk.format("GET", prefix .. keys[nr % #keys + 1])
         nr = nr + 1
      end
   end
end

function request()
   i = i % #reqs + 1
   return reqs[i]
end
