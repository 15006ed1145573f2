-- GET workloads (KV v2 read, token lookup-self, hello-world): wrk's own fixed request (the URL
-- and -H headers from the command line, prebuilt once, so the client spends as little CPU as
-- possible) plus the shared done() hook.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
