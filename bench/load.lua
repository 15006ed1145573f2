-- Loader (not a measurement): sends requests numbered 0 .. BENCH_LOAD_COUNT-1 once each, spread
-- over the wrk threads (thread t sends n = t, t + T, t + 2T, ...), then the thread stops. wrk
-- itself only stops at its -d deadline or on SIGINT: each thread that is done creates the file
-- BENCH_LOAD_DONE.<thread> and the caller (bench/scale.sh, bench/run.sh) sends SIGINT once all
-- are there. The shared done() hook prints the BENCH_RESULT line (status_errors must be 0).
--
-- Env:
--   BENCH_LOAD_KIND    kv: POST <BENCH_LOAD_PREFIX>f<n / BENCH_LOAD_FOLDER>/k<n> (a KV v2 write;
--                          BENCH_LOAD_FOLDER keys per folder, default: all in folder 0)
--                      flat: POST <BENCH_LOAD_PREFIX><n> (a KV v2 write, keys side by side)
--                      token: POST <BENCH_LOAD_PREFIX> (e.g. /v1/auth/token/create-orphan) with
--                          the body BENCH_BODY (one new token per request)
--   BENCH_LOAD_COUNT   requests in all
--   BENCH_LOAD_STRIDE  kv and flat: request i writes key n = i * stride (default 1)
--   BENCH_LOAD_DONE    path prefix of the per-thread "done" files
--   BENCH_THREADS      the -t wrk runs with (run.sh and scale.sh export it)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local kind = os.getenv("BENCH_LOAD_KIND") or "kv"
local prefix = os.getenv("BENCH_LOAD_PREFIX") or "/v1/secret/data/scale/"
local count = tonumber(os.getenv("BENCH_LOAD_COUNT") or "1000")
local folder = tonumber(os.getenv("BENCH_LOAD_FOLDER") or "0")
local stride = tonumber(os.getenv("BENCH_LOAD_STRIDE") or "1")
local done_path = os.getenv("BENCH_LOAD_DONE") or "/tmp/bench-load-done"
local body = os.getenv("BENCH_BODY") or "{}"

local next_id = 0
function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
end

local me, step, n, answered, mine, fixed
function init(args)
   me = tid or 0
   step = tonumber(os.getenv("BENCH_THREADS") or "1")
   if me >= step then step = me + 1 end
   n = me
   answered = 0
   mine = 0
   for _ = me, count - 1, step do mine = mine + 1 end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   -- Sent by connections still open once this thread's share is out; answered with status
   -- 299 (activecode), so response() can tell these answers from the counted ones.
   fixed = wrk.format("GET", "/v1/sys/health?activecode=299", nil, nil)
   if mine == 0 then
      io.open(done_path .. "." .. me, "w"):close()
      wrk.thread:stop()
   end
end

-- wrk calls request() once on thread 0 before anything is sent, to check that it parses: that
-- call gets the fixed request, so that no numbered request is skipped.
local verified = false
function request()
   if not verified then
      verified = true
      if me == 0 then return fixed end
   end
   if n >= count then return fixed end
   local i = n * stride
   n = n + step
   if kind == "token" then
      return wrk.format("POST", prefix, nil, body)
   end
   local path
   if kind == "flat" then
      path = prefix .. i
   else
      local f = 0
      if folder > 0 then f = math.floor(i / folder) end
      path = prefix .. "f" .. f .. "/k" .. i
   end
   return wrk.format("POST", path, nil,
      string.format('{"data":{"username":"svc-%d","password":"correct-horse-battery-staple","n":%d}}', i, i))
end

function response(status, headers, body)
   if status == 299 then return end
   answered = answered + 1
   if answered == mine then
      io.open(done_path .. "." .. me, "w"):close()
      wrk.thread:stop()
   end
end
