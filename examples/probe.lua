-- Probe a server: which dialect it speaks, its models, one streamed request
-- (ttft, tokens/s, where the token count came from, the first words), then
-- a burst of 8 at once.
--
--   benchrun run examples/probe.lua                 # against a fresh `benchrun sim`
--   benchrun run examples/probe.lua http://127.0.0.1:1234
--
-- In the REPL the same is one line: probe "http://127.0.0.1:1234"
local probe = require("bench.probe")

local srv <close> = probe.target(arg and arg[1], {"--decode-tps", "80", "--slots", "4", "--reasoning", "field"})

local one = probe(srv.url)
if one.error then os.exit(1) end
probe{url = srv.url, concurrency = 8, max_tokens = 32}
