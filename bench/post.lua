-- Fixed-POST workloads (transit, PKI issue, AppRole and userpass logins): the same JSON body on
-- every request. Env: BENCH_BODY (the body; run.sh sets it to the exact body of its curl
-- pre-flight). wrk builds this static request once, so the client's per-request cost is as low
-- as for a fixed GET.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
