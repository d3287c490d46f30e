-- bench.measure: a cell's requests, once its server runs (the runner's
-- cell loop calls it; docs/phases.md): the client and the workload, the
-- warm-ups, each repeat through bench.load (closed or open loop, steady
-- state for requests: auto), every record to the results store and the
-- cell's summary accumulator as it ends, the prefix cache's figures and the
-- logprobs quality pass after the load, and a plan's capacity search
-- (bench.search) as levels of the same measurement.
local clock = require("bench.clock")
local steady = require("bench.steady")
local summary = require("bench.summary")

local measure = {}

local function now_ns() return clock.now() end

-- whether the server still runs (a server without a process: its probe)
function measure.server_alive(srv)
  if not srv then return false end
  local ok, r = pcall(srv.alive, srv)
  return ok and r ~= false
end

-- The request limits of a cell: the plan's timeout:, then its server's,
-- then the cell's (each a mapping of connect, first_byte, idle, total,
-- min_tps); nil fields keep bench.openai's defaults.
function measure.cell_timeout(plan, cell)
  local t
  for _, over in ipairs{plan.timeout or false, (cell.real_server or cell.server or {}).timeout or false,
                        cell.timeout or false} do
    if type(over) == "table" then
      t = t or {}
      for k, v in pairs(over) do t[k] = v end
    end
  end
  return t
end

-- The cell's workload (the plan's, narrowed to the cell's prompt, mix or
-- synthetic lengths) and how many prompts it has.
function measure.cell_workload(ctx, cell)
  local workload = require("bench.workload")
  local plan = ctx.plan
  local spec = {}
  for k, v in pairs(plan.workload or {prompts = "seed"}) do spec[k] = v end
  if spec.prompts == nil and spec.file == nil and spec.synthetic == nil then spec.prompts = "seed" end
  if spec.file then spec.prompts, spec.file = spec.file, nil end
  if type(spec.prompts) == "table" then
    -- a prompt's system text becomes the chat's first message
    local list = {}
    for i, p in ipairs(spec.prompts) do
      if p.system and p.prompt and not p.messages then
        list[i] = {name = p.name, max_tokens = p.max_tokens,
                   messages = {{role = "system", content = p.system}, {role = "user", content = p.prompt}}}
      else
        list[i] = p
      end
    end
    spec.prompts = list
  end
  local w
  if cell.mix then
    w = workload.mix(cell.mix)
  else
    if cell.prompt and type(spec.prompts) == "table" then
      local keep = {}
      for _, p in ipairs(spec.prompts) do if p.name == cell.prompt then keep[#keep + 1] = p end end
      spec.prompts = keep
    end
    w = workload.from(spec)
  end
  -- count of distinct prompts: a single-user cell sends each once per repeat
  local n = w.size
  if cell.prompt and spec.prompts == "seed" then
    local list = workload.seed_prompts()
    for _, p in ipairs(list) do if p.name == cell.prompt then w = workload.list({p}) n = 1 end end
  end
  local over = {}
  if cell.max_tokens then over.max_tokens = cell.max_tokens end
  if spec.temperature then over.extra = {temperature = spec.temperature} end
  if next(over) then w = w:with(over) end
  if cell.max_tokens_cap then
    local cap, base = cell.max_tokens_cap, w
    w = workload.new("capped", function(i)
      local r = base:next(i)
      local out = {}
      for k, v in pairs(r) do out[k] = v end
      if (out.max_tokens or cap + 1) > cap then
        out.requested_max_tokens = out.max_tokens
        out.max_tokens = cap
      end
      return out
    end, {size = base.size})
  end
  return w, n
end

-- The cell's summary, built as its records arrive (bench.summary's
-- accumulator: memory that does not grow with the run's length); a plan's
-- slo the summary cannot use is said in it, not raised.
function measure.new_summary(slo)
  local ok, acc = pcall(summary.accumulator, {slo = slo})
  if ok then return acc end
  local plain = summary.accumulator{}
  plain.slo_error = tostring(acc)
  return plain
end

function measure.summarize(acc, wall_s)
  local s = acc:result(wall_s)
  if acc.slo_error then s.error = acc.slo_error end
  return s
end

-- Requests per repeat: the cell's, the steady bound (requests: auto), or
-- for one user every prompt once, for N users 4 rounds of N (nil: a duration).
local function requests_of(cell, nprompts, sw)
  if sw then return sw.max end
  if cell.requests or cell.duration then return cell.requests end
  if (cell.concurrency or 1) == 1 then return cell.prompt and 1 or (nprompts or 5) end
  return cell.concurrency * 4
end

-- errors of a request whose connection went away under it
local LOST_CONNECTION = {reset = true, refused = true, truncated = true}

-- The cell's client, workload and request count per repeat (and its
-- steady-state rule, bench.steady, for requests: auto).
local function cell_load(ctx, cell, srv, out)
  local s = cell.server
  -- server.extra is the backend's (docs/servers.md), never request fields
  local client = require("bench.openai").client{base_url = srv.base_url, dialect = srv.dialect or s.dialect,
                               model = srv.model or s.model, api_key_env = s.api_key_env,
                               timeout = measure.cell_timeout(ctx.plan, cell)}
  local w, nprompts = measure.cell_workload(ctx, cell)
  local conc = cell.concurrency or 1
  local sw = steady.of(ctx.plan.steady, cell)   -- requests/duration: auto (bench.steady)
  local requests = requests_of(cell, nprompts, sw)
  out.requests_per_repeat = requests
  if type((ctx.plan.workload or {}).synthetic) == "table" then   -- exact prompt lengths (docs/tokenizer.md)
    local tokenizer = require("bench.tokenizer")
    w, out.prompt_lengths = tokenizer.exact_lengths(w, tokenizer.for_server{base_url = srv.base_url,
      dialect = client.dialect, model = client.model, backend = s.backend}, requests or conc * 4)
  end
  return client, w, requests, conc, nprompts, sw
end

-- After a cell's load, while its server still runs: the prefix cache's
-- figures (bench.cache) and the quality pass by logprobs (bench.logprobs).
local function after_load(ctx, cell, srv, out, cache_state, client, w, nprompts)
  out.cache = require("bench.cache").end_cell(cache_state, srv)
  if out.status == "ok" then
    out.quality_logprobs = require("bench.logprobs").run_cell(ctx.plan, client, w, nprompts, cell.max_tokens)
  end
end

-- The cell's requests: warm-ups, then each repeat (closed loop of N users
-- or, with a rate, open loop: arrivals at their scheduled times whatever the
-- server does; latency also from those times). -> wall seconds of the
-- repeats, whether the server died, why the load stopped (or nil). acc:
-- the cell's summary accumulator.
function measure.cell(ctx, cell, srv, out, acc)
  local load = require("bench.load")
  local s = cell.server
  local client, w, requests, conc, nprompts, sw = cell_load(ctx, cell, srv, out)
  local watch   -- the repeat's steady-state watch (requests: auto)

  -- the load stops when the server is gone: its process exited, or a
  -- refused connection and a probe say nobody listens any more
  local gone
  local function server_gone()
    if not gone and srv.proc and not measure.server_alive(srv) then gone = "the server exited" end
    return gone
  end
  local cache_state = require("bench.cache").begin_cell(ctx.plan, cell, srv)   -- prefix caching (bench.cache)
  local lost_connection = false
  local function on_record(r, rep, warm)
    r.cell = cell.id
    r["repeat"] = rep
    r.search_step, r.search_level = cell.search_step, cell.search_level   -- a capacity search's step (bench.search)
    if warm then r.warmup = true end
    ctx.run:record(cell.id, r)
    local kind = not r.ok and summary.error_kind(r) or nil
    if kind == "refused" and not gone and not measure.server_alive(srv) then gone = "the server stopped listening" end
    if LOST_CONNECTION[kind] then lost_connection = true end
    if not warm then
      acc:add(r)
      cache_state.acc:add(r)
      if watch then watch:add(r) end
      if r.prompt == nil and r.name then r.prompt = r.name end
      local pname = r.prompt or r.name
      if pname and r.text and out.outputs[pname] == nil and (r.ok ~= false and not r.error) then out.outputs[pname] = r.text end
      ctx.progress:request(r)
    end
  end
  local function send(rep)
    if cell.depth then   -- a depth cell measures bench.depth instead of the workload
      return require("bench.depth").cell{client = client, cell = cell, out = out, backend = s.backend,
                                         on_record = function(r) on_record(r, rep, false) end}
    end
    local args = {client = client, requests = requests, duration = cell.duration, workload = w,
                  on_record = function(r) on_record(r, rep, false) end, stop = server_gone}
    watch = sw and sw.new()
    if watch then args.stop, args.stop_reads_records = watch:guard(server_gone), true end
    if cell.rate then
      args.rate, args.arrival, args.burstiness = cell.rate, cell.arrival or "poisson", cell.burstiness
      args.seed = rep
      if cell.concurrency_set then args.max_concurrency = conc end
      return load.open(args)
    end
    args.concurrency, args.ramp = conc, cell.ramp
    return load.closed(args)
  end

  local wall_total, died = 0, false
  if cell.warmup_auto or (cell.warmup or 0) > 0 then ctx.monitor:mark("warmup") end
  out.warmup_auto = steady.warm_up(cell, ctx.plan.steady, {client = client, workload = w, stop = server_gone,
                                                         on_record = function(r) on_record(r, 0, true) end})
  for rep = 1, cell["repeat"] or 1 do
    if not measure.server_alive(srv) then died = true break end
    ctx.monitor:mark("run")
    local t0 = now_ns()
    local ok, res = pcall(send, rep)
    wall_total = wall_total + (now_ns() - t0) / 1e9
    if watch then out.steady = out.steady or {} out.steady[rep] = watch:result() end
    ctx.power:window(t0, now_ns())   -- the measured window (bench.powerwatch)
    if not ok then
      if bench.is_interrupt(res) then error(res, 0) end
      out.status, out.error = "failed", tostring(res)
      break
    end
    if gone or not measure.server_alive(srv) then died = true break end
  end
  ctx.monitor:mark("idle")
  -- a server that died as the last requests ended may not be reaped yet:
  -- requests that lost their connection give it a moment to show it
  if not died and lost_connection and srv.proc then pcall(srv.proc.wait, srv.proc, 0.5) end
  died = died or not measure.server_alive(srv)
  if not died and not gone then after_load(ctx, cell, srv, out, cache_state, client, w, nprompts) end
  return wall_total, died, gone
end

-- A plan's search: (bench.search) measures the cell at the levels the
-- search picks, each as a cell of its own load, and records the search in
-- out.search. -> wall seconds, died, gone, the found level's summary
function measure.search(ctx, cell, srv, out)
  local search = require("bench.search")
  local spec = search.spec(ctx.plan.search, cell)
  local wall, died, gone = 0, false, nil
  local res = search.run(spec, function(level, step)
    ctx.progress:log(string.format("cell %s: search step %d: %s", cell.id, step, search.level_text(spec.over, level)))
    local acc = measure.new_summary(spec.slo)
    local w, d, g = measure.cell(ctx, search.level_cell(spec, cell, level, step), srv, out, acc)
    wall = wall + w
    if d then died, gone = true, g end
    return measure.summarize(acc, w), d and (g or "the server died")
  end)
  out.search = search.record(res)
  if not res.converged then
    out.warning = res.why
    ctx.progress:log(string.format("cell %s: %s", cell.id, res.why))
  end
  return wall, died, gone, res.best_summary
end

return measure
