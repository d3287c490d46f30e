-- bench.mem: readings and the sampler thread, against real processes.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc, mem, clock = require("bench.proc"), require("bench.mem"), require("bench.clock")
local MiB = 1024 * 1024

T.case("system memory is consistent", function()
  local s = assert(mem.system())
  assert(s.total > 0 and s.used > 0 and s.available > 0, "positive figures")
  assert(s.used + s.available <= s.total + MiB, "used + available <= total")
end)

T.case("process memory of this benchrun and of a gone pid", function()
  local p = assert(proc.spawn{argv = {"sleep", "30"}})
  local m = assert(mem.process(p))
  assert(m.rss > 0 and m.real > 0, "rss and real")
  T.eq(m[mem.real_kind], m.real, "named real figure")
  T.eq(m.nprocs, 1, "nprocs")
  p:stop(1)
  local gone, err = mem.process(p.pid)
  T.eq(gone, nil, "gone")
  T.eq(err, "mem.process: no process with pid " .. p.pid, "message")
  T.checkerr("expected a pid > 0", mem.process, 0)
end)

T.case("gpu answers a list or a clear 'not available'", function()
  local g, err = mem.gpu()
  if g then
    for _, d in ipairs(g) do assert(d.total > 0 and d.used >= 0, "gpu figures") end
  else
    assert(err:find("^not available"), err)
  end
end)

T.case("a process tree is summed", function()
  local p = assert(proc.spawn{argv = {"sh", "-c", "sleep 30 & sleep 30 & echo up; wait"}})
  assert(p:wait_for_line("up", 10))
  clock.sleep(0.1)
  local m = assert(mem.process(p))
  T.eq(m.nprocs, 3, "nprocs of sh + 2 sleeps")
  local alone = assert(mem.process(p, {tree = false}))
  T.eq(alone.nprocs, 1, "tree = false")
  assert(m.rss > alone.rss, "tree rss > leader rss")
  p:stop(2)
end)

T.case("the sampler sees memory rise and fall, writes JSON lines, costs little", function()
  local dir = T.tmpdir()
  local file = dir .. "/samples.jsonl"
  -- A child that touches 64 MiB, holds it, frees it (the simulator's
  -- --model-memory does the same; this needs nothing but sh + head + sleep).
  local p = assert(proc.spawn{argv = {"sh", "-c",
    "sleep 0.3; echo hold; x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 0.6; x=; echo freed; sleep 0.5"}})
  local s = assert(mem.sampler{pid = p.pid, interval = 0.02, file = file, gpu = false})
  s:start()
  p:wait(20)
  local r = s:stop()
  assert(r.count >= 20, "samples: " .. r.count)
  local first, last = r.samples[1], r.samples[#r.samples]
  assert(r.peak.rss >= 60 * MiB, "peak rss " .. r.peak.rss)
  assert(first.rss < 20 * MiB, "rss before " .. first.rss)
  -- after the exit the sampler records the process as gone
  T.eq(last.nprocs, 0, "nprocs after exit")
  T.eq(last.rss, nil, "rss after exit")
  for i = 2, #r.samples do assert(r.samples[i].t_ns > r.samples[i - 1].t_ns, "timestamps increase") end
  assert(r.cost < 0.2, "cost " .. r.cost)
  local n = 0
  for line in io.lines(file) do
    n = n + 1
    local j = json.decode(line)
    T.eq(j.type, "memory", "type")
    assert(j.t_ns and j.sys_used, "fields")
  end
  T.eq(n, r.count, "one JSON line per sample")
end)

T.case("sampler errors and lifecycle", function()
  T.checkerr("interval: expected 0.001..3600 seconds", mem.sampler, {interval = 0})
  local s, err = mem.sampler{file = "/nonexistent/dir/samples.jsonl"}
  T.eq(s, nil, "sampler")
  assert(err:find("cannot open '/nonexistent/dir/samples.jsonl'", 1, true), err)
  local sys = assert(mem.sampler{interval = 0.01, gpu = false})
  sys:start()
  T.checkerr("already started", sys.start, sys)
  clock.sleep(0.1)
  assert(sys:latest().sys_used > 0, "latest")
  local r = sys:stop()
  assert(r.count >= 3, "count " .. r.count)
  sys:close()
  T.checkerr("closed", sys.stop, sys)
  local g = mem.sampler{interval = 0.01}
  g:start()
  g = nil
  collectgarbage()   -- __gc joins the running thread
end)

T.case("sampler:series(since_ns) returns only the newer samples", function()
  local s = mem.sampler{interval = 0.02}
  s:start()
  clock.sleep(0.15)
  local a = s:series()
  assert(#a.samples >= 3, "samples so far: " .. #a.samples)
  local t = a.samples[#a.samples].t_ns
  clock.sleep(0.1)
  local b = s:series(t)
  local all = s:stop()
  assert(#b.samples >= 1, "new samples")
  for _, x in ipairs(b.samples) do assert(x.t_ns > t, "only after since_ns") end
  assert(#b.samples < #all.samples, "not the whole series")
  T.eq(b.dropped, 0, "dropped counts the ring, not the selection")
end)


T.case("sample_now: a sample at once, in time order, whole lines in the file", function()
  local p = assert(proc.spawn{argv = {"sleep", "30"}})
  local file = os.tmpname()
  -- an interval far longer than the test: every sample after the first is sample_now's
  local s = assert(mem.sampler{pid = p.pid, interval = 60, file = file, gpu = false})
  T.eq(s:sample_now(), false, "not started: no sample")
  s:start()
  for _ = 1, 20 do assert(s:sample_now()) end
  local list = s:series().samples
  assert(#list >= 20, "samples: " .. #list)   -- the thread's first may come later
  for i = 2, #list do assert(list[i].t_ns >= list[i - 1].t_ns, "in time order at " .. i) end
  assert(list[#list].rss > 0, "the process's memory")
  s:stop()
  p:stop(1)
  local n = 0
  for line in io.lines(file) do
    n = n + 1
    assert(line:match('^{"type":"memory".*}$'), "a whole line: " .. line)
  end
  assert(n >= 20, "lines: " .. n)
  os.remove(file)
end)

T.case("a cell shorter than the sampling interval has its own peak", function()
  local dir = T.tmpdir()
  local plan = [[
name: short
server: {backend: sim, args: [--decode-tps, "5000"]}
sampling: {memory: 30s}
workload: {prompts: [{name: a, prompt: hi, max_tokens: 4}]}
matrix: {concurrency: [1, 2, 3]}
warmup: 0
]]
  local rc, data = T.run_plan(dir, plan)
  T.eq(rc, 0, "run")
  -- each cell's measured phase has memory samples of its own (the edges)
  local run_samples = {}
  for _, x in ipairs(data.samples or {}) do
    if (x.type or "memory") == "memory" and x.phase == "run" and x.cell then
      run_samples[tostring(x.cell)] = (run_samples[tostring(x.cell)] or 0) + 1
    end
  end
  T.eq(#data.cells, 3, "three cells")
  for _, c in ipairs(data.cells) do
    assert((run_samples[tostring(c.id)] or 0) >= 1, "memory samples in " .. c.id .. "'s run")
  end
end)
T.done()
