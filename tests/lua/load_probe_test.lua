-- bench.probe: dialect detection against the simulator's four dialects,
-- one streamed request, a burst, and a server that is not there.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local probe = require("bench.probe")

T.case("detect each dialect and its models", function()
  for _, d in ipairs{"openai", "llama.cpp", "lmstudio", "ollama"} do
    local sim <close> = T.sim{"--dialect", d, "--model", "m-" .. d}
    local dialect, models = probe.detect(sim.url .. "/v1/")
    T.eq(dialect, d, "dialect")
    T.eq(models[1], "m-" .. d, d .. " model list")
  end
end)

T.case("one request, then a burst", function()
  local sim <close> = T.sim{"--decode-tps", "500", "--model", "tiny", "--reasoning", "field", "--reasoning-tokens", "4"}
  local lines = {}
  local rep = probe{url = sim.url, max_tokens = 16, out = function(l) lines[#lines + 1] = l end}
  T.eq(rep.dialect, "openai", "dialect")
  T.eq(rep.model, "tiny", "model from the list")
  T.eq(rep.record.ok, true, "request ok: " .. tostring(rep.record.error))
  T.eq(rep.record.output_tokens, 16, "tokens")
  T.eq(lines[1], sim.url .. "  openai  models: tiny", "first line")
  T.eq(lines[2]:match("^ttft [%d.]+ ms  [%d.]+ tok/s  16 tokens %(%a+%)") ~= nil, true, "second line: " .. lines[2])
  T.eq(lines[3]:sub(1, 2), "> ", "first words")
  local burst = probe{url = sim.url, concurrency = 4, max_tokens = 8, quiet = true}
  T.eq(burst.result.summary.ok, 4, "burst ok")
  T.eq(burst.lines[1]:sub(1, 17), "4 at once: 4/4 ok", "burst line: " .. burst.lines[1])
end)

T.case("probe.client: detected dialect and model", function()
  local sim <close> = T.sim{"--dialect", "ollama", "--model", "llama3:8b", "--strict-models", "--decode-tps", "0"}
  local c = assert(probe.client(sim.url))
  T.eq(c.dialect, "ollama", "dialect")
  T.eq(c.model, "llama3:8b", "model")
  local rec = c:chat{prompt = "hi", max_tokens = 4}
  T.eq(rec.ok, true, "a request with the listed model: " .. tostring(rec.error))
  local nope, msg = probe.client("http://127.0.0.1:1", {timeout = 1})
  T.eq(nope, nil, "nothing there")
  T.eq(msg:find("does not answer", 1, true) ~= nil, true, msg)
end)

T.case("nothing there", function()
  local sim = T.sim{}
  local url = sim.url
  sim.proc:stop(2)
  local rep = probe{url = url, quiet = true, timeout = 1}
  T.eq(rep.error:find("does not answer", 1, true) ~= nil, true, "error: " .. tostring(rep.error))
  T.checkerr("probe: expected an http:// or https:// URL", probe, "localhost:1234")
end)

T.done()
