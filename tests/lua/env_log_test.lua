-- Does a setting reach the engine? The runner shows what the server's log
-- says about each variable a cell set (lines that name it), and which it
-- never names; report.md lists them under the tuning table. The simulator
-- logs a variable it reads (--speedup-env), as an engine that reads one does.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

local dir = T.tmpdir()

T.case("the server's log lines about a cell's variables are kept and reported", function()
  local _, data, rdir = T.run_plan(dir, [[
name: envlog
script: phases/tuning.lua
server: {backend: sim, args: [--decode-tps, "3000", --load-time, 10ms, --speedup-env, "GGML_METAL_N_CB=1.5"]}
workload:
  prompts:
    - {name: a, prompt: "hello", max_tokens: 4}
repeat: 2
matrix:
  config:
    - {name: baseline, tags: {baseline: true}}
    - {name: cb-2, env: {GGML_METAL_N_CB: "2", GGML_METAL_FORCE_PRIVATE: "1"}}
]])
  local cells = {}
  for _, c in ipairs(data.cells) do cells[c.id] = c end
  local s = cells["cb-2"].server
  T.eq(type(s.env_log), "table", "env_log kept")
  T.eq(s.env_log.GGML_METAL_N_CB[1]:find("read GGML_METAL_N_CB=2", 1, true) ~= nil, true,
       "the line the server logged: " .. tostring(s.env_log.GGML_METAL_N_CB[1]))
  T.eq(table.concat(s.env_not_logged, ","), "GGML_METAL_FORCE_PRIVATE", "never named")
  T.eq(cells.baseline.server.env_log, nil, "a cell without variables has none")
  local f = assert(io.open(rdir .. "/report.md"))
  local md = f:read("a")
  f:close()
  T.eq(md:find("cb-2, `GGML_METAL_N_CB`: `benchrun sim: read GGML_METAL_N_CB=2", 1, true) ~= nil, true,
       "report.md quotes the log line")
  T.eq(md:find("cb-2: the server's log never names GGML_METAL_FORCE_PRIVATE", 1, true) ~= nil, true,
       "report.md names the variable the log never mentions")
end)

T.done()
