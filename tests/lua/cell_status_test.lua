-- A cell's status reflects its requests, every request ends, and a dead
-- server stops the load: plans run by the real runner against `benchrun
-- sim` with faults (refused, 500s, a stall, a SIGKILL of its own).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

local dir = T.tmpdir()

local function read(path) return assert(T.read_file(path)) end

-- a plan on a real `benchrun sim` started with these extra flags
local function plan(name, sim_args, rest)
  return string.format([[
name: %s
server: {backend: sim, args: [--decode-tps, "2000", --load-time, 10ms%s]}
workload:
  prompts:
    - {name: a, prompt: "hello there", max_tokens: 8}
]], name, sim_args ~= "" and (", " .. sim_args) or "") .. (rest or "")
end

T.case("a cell whose every request failed is failed, and the run exits 1", function()
  local rc, data, rdir = T.run_plan(dir, plan("refused", "--fault, refuse", "requests: 5\n"))
  T.eq(rc, 1, "exit status")
  local c = data.cells[1]
  T.eq(c.status, "failed", "status")
  T.eq(c.summary.ok, 0, "no success")
  T.eq(c.summary.errors.total, 5, "five errors")
  T.eq(tostring(c.error):match("^no request succeeded") ~= nil, true, "error: " .. tostring(c.error))
  local md = read(rdir .. "/report.md")
  T.eq(md:find("## Errors and warnings", 1, true) ~= nil, true, "report.md has the errors section")
  local kind = next(c.summary.errors.by_kind)
  T.eq(md:find(kind .. " ×5", 1, true) ~= nil, true, "report.md names the kind and count: " .. kind)
end)

T.case("errors above max_error_rate make a cell degraded; below, ok with a warning", function()
  local sim = "--fault, \"http500:0.5\", --seed, \"3\""
  local rc, data = T.run_plan(dir, plan("degraded", sim, "requests: 12\n"))
  local c = data.cells[1]
  T.eq(c.summary.ok > 0 and c.summary.errors.total > 0, true,
       string.format("some of each: %d ok, %d errors", c.summary.ok, c.summary.errors.total))
  T.eq(c.status, "degraded", "status at the default max_error_rate 0")
  T.eq(rc, 1, "exit status")
  T.eq(c.error:find("http_500", 1, true) ~= nil, true, "error names the kind: " .. c.error)
  local rc2, data2 = T.run_plan(dir, plan("tolerated", sim, "requests: 12\nmax_error_rate: 0.9\n"))
  local c2 = data2.cells[1]
  T.eq(c2.status, "ok", "status within max_error_rate")
  T.eq(rc2, 0, "exit status")
  T.eq(c2.warning:find("within max_error_rate 0.9", 1, true) ~= nil, true, "warning: " .. tostring(c2.warning))
end)

T.case("a stalled server ends in timeouts of their kind and the plan goes on", function()
  local rc, data = T.run_plan(dir, plan("stall", "--fault, stall-first-byte",
                                        "requests: 2\ntimeout: {first_byte: 300ms}\n"))
  T.eq(rc, 1, "exit status")
  local c = data.cells[1]
  T.eq(c.status, "failed", "status")
  T.eq(c.summary.errors.by_kind.timeout_first_byte, 2, "kinds: " .. require("bench.summary").kinds_text(c.summary.errors.by_kind))
end)

T.case("a load scenario's timeout is the cell's", function()
  local rc, data = T.run_plan(dir, plan("scenario", "--fault, stall-first-byte", [[
timeout: {first_byte: 1h}
load:
  - {name: quick, requests: 1, timeout: {first_byte: 200ms}}
]]))
  T.eq(rc, 1, "exit status")
  T.eq(data.cells[1].summary.errors.by_kind.timeout_first_byte, 1, "the scenario's limit applied")
end)

T.case("a dead server stops the load of a duration cell", function()
  local _, data = T.run_plan(dir, plan("crash", "--crash-after, \"3\"", "load:\n  - {name: soak, duration: 5s, concurrency: 4}\n"))
  local c = data.cells[1]
  T.eq(c.status ~= "ok", true, "status: " .. tostring(c.status))
  T.eq(c.stopped ~= nil or c.server.exit ~= nil, true, "the cell says the server went away")
  local n = 0
  for _, r in ipairs(data.records) do if r.cell == c.id then n = n + 1 end end
  -- 3 answered, then at most the requests in flight or already sent when it died
  T.eq(n <= 3 + 4 + 4, true, "records after the crash: " .. n)
end)

T.done()
