-- bench.load: closed-loop and open-loop load, and sweeps over levels.
--
-- Every request goes through the client (bench.openai) as
--   client:chat{messages = ... or prompt = ..., max_tokens = n, extra = {...}, on_event = fn?}
-- and its record gets, beside the client's own fields:
--   index (1..n; warm-up requests count 1..w separately), warmup (bool),
--   name (the workload item's), user (closed loop: the virtual user),
--   t_scheduled_ns (open loop: the intended send time; closed loop: when the
--   user decided to send), and in open loop send_lag_ms and the
--   *_from_scheduled_ms latencies (ttft, ttfb, ttfr, e2el), which include
--   any delay between the intended and the actual send (no coordinated
--   omission: a server that falls behind the rate shows it).
local clock = require("bench.clock")
local workload = require("bench.workload")
local summary = require("bench.summary")

local M = {}

local spawn, wait = bench.spawn, bench.wait

-- A cancelled or interrupted wait raises a value (bench.cancelled,
-- bench.interrupt), never words: an error that says "interrupted by peer"
-- is a failure of the request like any other.
local function is_cancel(err)
  return bench.is_cancel(err) or bench.is_interrupt(err)
end

-- A to-be-closed guard that cancels `tasks` when its scope is left by an
-- error (the load was cancelled, interrupted or failed), so no virtual user
-- or scheduled request outlives the call that started it.
local function cancel_on_error(tasks)
  return setmetatable({}, {__close = function(_, err)
    if err ~= nil then
      for _, t in ipairs(tasks) do t:cancel() end
    end
  end})
end

local function check_client(opts, who)
  if type(opts) ~= "table" then error(who .. ": expected a table of options", 3) end
  local c = opts.client
  if opts.send == nil and (type(c) ~= "table" and type(c) ~= "userdata" or c.chat == nil) then
    error(who .. ": client: expected a client with :chat (bench.openai.client{...}) or a send function", 3)
  end
  if opts.requests == nil and opts.duration == nil then
    error(who .. ": expected requests = n or duration = seconds", 3)
  end
  if opts.requests ~= nil and (math.type(opts.requests) ~= "integer" or opts.requests < 0) then
    error(who .. ": requests: expected an integer >= 0, got " .. tostring(opts.requests), 3)
  end
  if opts.duration ~= nil and (type(opts.duration) ~= "number" or opts.duration <= 0) then
    error(who .. ": duration: expected seconds > 0, got " .. tostring(opts.duration), 3)
  end
  local w = opts.warmup or 0
  if math.type(w) ~= "integer" or w < 0 then
    error(who .. ": warmup: expected an integer >= 0, got " .. tostring(w), 3)
  end
end

-- Build the client call for workload item `item`.
local function make_args(opts, item, i)
  local args = {}
  for k, v in pairs(item) do args[k] = v end
  if opts.max_tokens then args.max_tokens = opts.max_tokens end
  if opts.extra then
    local e = {}
    for k, v in pairs(item.extra or {}) do e[k] = v end
    for k, v in pairs(opts.extra) do e[k] = v end
    args.extra = e
  end
  if opts.on_event then
    local f = opts.on_event
    args.on_event = function(ev) return f(ev, i) end
  end
  if opts.request then args = opts.request(args, i) or args end
  return args
end

-- Send one request; never raises for the outside world's failures, and
-- turns a raised error (a bug in a custom send or the client) into an error
-- record of kind "exception" so one bad response cannot stop a run.
local function send_one(opts, item, i)
  local args = make_args(opts, item, i)
  local t_call = clock.now()
  local ok, rec = pcall(function()
    if opts.send then return opts.send(args, i) end
    if opts.api == "complete" or opts.api == "completions" then return opts.client:complete(args) end
    return opts.client:chat(args)
  end)
  if not ok then
    if is_cancel(rec) then error(rec, 0) end
    rec = {ok = false, error = "exception: " .. tostring(rec), error_kind = "exception"}
  elseif type(rec) ~= "table" then
    rec = {ok = false, error = "exception: the client returned " .. type(rec), error_kind = "exception"}
  end
  rec.t_sent_ns = rec.t_sent_ns or t_call
  rec.name = rec.name or item.name
  rec.max_tokens = rec.max_tokens or args.max_tokens
  if rec.ok == nil then rec.ok = rec.error == nil end
  return rec
end

-- Where finished records go: the summary's accumulator (counts and
-- histograms, whatever the run's length), on_record, and the list only when
-- it is kept (keep_records, or no on_record to see them otherwise).
local function new_sink(opts)
  local keep = opts.keep_records
  if keep == nil then keep = opts.on_record == nil end
  return {list = keep and {} or nil, acc = summary.accumulator{slo = opts.slo}, all_exceptions = true}
end

local function finish(opts, rec, sink)
  sink.acc:add(rec)
  if rec.ok or rec.error_kind ~= "exception" then sink.all_exceptions = false
  elseif not sink.first_exception then sink.first_exception = rec.error end
  if sink.list then sink.list[#sink.list + 1] = rec end
  if opts.on_record then opts.on_record(rec) end
end

-- Wait for every task; a task that raised (on_record, cancellation) stops the run.
local function wait_all(tasks, who)
  if #tasks == 0 then return end
  local ok, err = wait(tasks, {fail_fast = true})
  if not ok then
    if is_cancel(err) then error(err, 0) end
    error(who .. ": " .. tostring(err), 0)
  end
end

-- opts.stop() -> a reason (a string) to send no further request, e.g. the
-- server died: the requests in flight end as they will, and the result says
-- why the load stopped early (result.stopped).
local function stopped(opts)
  if opts.stop_reason then return true end
  if not opts.stop then return false end
  local why = opts.stop()
  if why then opts.stop_reason = type(why) == "string" and why or "stopped" return true end
  return false
end

-- One request of a closed loop's user in steps (client:prepare): built
-- by prepare_one and sent by send_prepared as soon as the user's last
-- request ends, its record made by end_one after that. The steps share
-- {i, item, args, prepared, t, pending} (or .raised: the error the client
-- raised, made into an exception record by end_one).
local function prepare_one(opts, item, i)
  local args = make_args(opts, item, i)
  local s = {i = i, item = item, args = args}
  local kind = (opts.api == "complete" or opts.api == "completions") and "complete" or "chat"
  local ok, p = pcall(opts.client.prepare, opts.client, kind, args)
  if ok then s.prepared = p
  elseif is_cancel(p) then error(p, 0)
  else s.raised = p end
  return s
end

local function send_prepared(s)
  s.t = clock.now()   -- when the user decided to send (t_scheduled_ns)
  if not s.prepared then return end
  local ok, p = pcall(s.prepared.start, s.prepared)
  if ok then s.pending = p
  elseif is_cancel(p) then error(p, 0)
  else s.raised = p end
end

local function end_one(s)
  local ok, rec = true, nil
  if s.pending then ok, rec = pcall(s.pending.record, s.pending) else ok, rec = false, s.raised end
  if not ok then
    if is_cancel(rec) then error(rec, 0) end
    rec = {ok = false, error = "exception: " .. tostring(rec), error_kind = "exception"}
  end
  rec.t_sent_ns = rec.t_sent_ns or s.t
  rec.name = rec.name or s.item.name
  rec.max_tokens = rec.max_tokens or s.args.max_tokens
  if rec.ok == nil then rec.ok = rec.error == nil end
  return rec
end

-- A closed loop's user in steps (client:prepare). Each request is built
-- (claimed, prepared) right after the one before it was sent, and chained
-- to it (prepared:start_after): the loop writes it the moment that answer
-- ends cleanly, with no Lua in between, as a client that did no work per
-- request would; the answer's record, summary and on_record come after.
-- After a failed transfer nothing goes until the failure is recorded, so
-- a stop() that looks for a dead server sees it first. claim() -> the
-- next index, or nil: the run is over; may_send() -> false once the
-- deadline passed or stop() said so; together: the user starts with the
-- others (no ramp); all_started() -> whether every user has claimed its
-- first index (a user that built ahead before then would take the indices
-- of the users a ramp has not started yet).
local function two_step_user(opts, w, claim, may_send, deadline_ns, u, warm, sink, together, all_started)
  local function build()
    local ni = claim()
    return ni and prepare_one(opts, w:next(ni), ni) or nil
  end
  local function next_request()
    local s = build()
    if s then send_prepared(s) end
    return s
  end
  local ahead   -- the request after the current one: built, chained to it
  local function chain(s, after)
    if not (s.prepared and s.prepared.start_after and after.pending) then return end
    local ok, p = pcall(s.prepared.start_after, s.prepared, after.pending, deadline_ns)
    if ok then s.pending = p
    elseif is_cancel(p) then error(p, 0)
    else s.raised = p end
  end
  -- the next request, in flight: the one the loop sent when the last
  -- answer ended, else the one built ahead sent now (or dropped: the run
  -- is over), else one built now
  local function take_next()
    local s = ahead
    ahead = nil
    if not s then return next_request() end
    if s.raised or (s.pending and s.pending:sent()) then return s end
    s.pending = nil
    if may_send() then
      send_prepared(s)
      return s
    end
    if s.prepared then s.prepared:close() end
    return nil
  end
  local cur
  if together then
    -- the first wave: every user builds its request and opens its
    -- connection, then all write theirs in one pass, as the C reader of
    -- the client benchmark does: requests meant to start together do (a
    -- wave started one request at a time spreads over ~25 µs per user,
    -- and paced streams that start apart cost a wake-up per token)
    cur = build()
    if cur then
      if cur.prepared and cur.prepared.connect then cur.prepared:connect() end
      coroutine.yield()
      send_prepared(cur)
      coroutine.yield()   -- every first request written before any is built ahead
    end
  else
    cur = next_request()
  end
  while cur do
    local nxt
    local ok, err = pcall(function()
      if cur.pending and all_started() then   -- the next one, ready to leave as this one ends
        ahead = build()
        if ahead then chain(ahead, cur) end
      end
      local clean = cur.pending and cur.pending:wait()
      if clean then
        nxt = take_next()
        -- the other users whose answers ended with this one write their
        -- next requests before this one's record is made
        coroutine.yield()
      end
      local rec = end_one(cur)
      rec.index, rec.warmup, rec.user, rec.t_scheduled_ns = cur.i, warm, u, cur.t or rec.t_sent_ns
      finish(opts, rec, sink)
      if not clean then nxt = take_next() end
    end)
    if not ok then   -- cancelled, or on_record raised: the next request goes too
      if nxt and nxt.pending then nxt.pending:close() end
      if ahead and ahead.prepared then ahead.prepared:close() end
      error(err, 0)
    end
    cur = nxt
  end
end

-- A closed loop's user in one step: each record before the next request
-- (a custom send, or a stop() that decides from the records).
local function one_step_user(opts, w, claim, u, warm, sink)
  while true do
    local i = claim()
    if not i then return end
    local t_sched = clock.now()
    local rec = send_one(opts, w:next(i), i)
    rec.index, rec.warmup, rec.user, rec.t_scheduled_ns = i, warm, u, t_sched
    finish(opts, rec, sink)
  end
end

-- N users in a closed loop over indices 1..total (or until deadline_ns).
local function closed_phase(opts, w, users, total, deadline_ns, warm, sink, ramp_s)
  local next_i = 0
  local t0 = clock.now()
  local tasks = {}
  local guard <close> = cancel_on_error(tasks)
  local function may_send()
    return not (deadline_ns and clock.now() >= deadline_ns) and not stopped(opts)
  end
  -- the next index to send, or nil: the run is over
  local function claim()
    if not may_send() then return nil end
    next_i = next_i + 1
    if total and next_i > total then return nil end
    return next_i
  end
  -- the next request before the last one's record (client:start), unless
  -- a custom send, or a stop() that decides from the records (steady state)
  local two_step = not opts.send and not opts.stop_reads_records and type(opts.client) == "table"
    and opts.client.prepare ~= nil
  local ramped = ramp_s and ramp_s > 0
  local started = 0   -- users past their ramp wait
  local function all_started() return started == users end
  for u = 1, users do
    tasks[u] = spawn(function()
      if ramped and u > 1 then clock.sleep_until(t0 + math.floor(ramp_s * 1e9 * (u - 1) / users)) end
      started = started + 1
      if two_step then two_step_user(opts, w, claim, may_send, deadline_ns, u, warm, sink, not ramped, all_started)
      else one_step_user(opts, w, claim, u, warm, sink) end
    end)
  end
  wait_all(tasks, warm and "load warm-up" or "load.closed")
end

-- If nothing succeeded and every failure was a raised error, the caller most
-- likely made a mistake (a bad client or send function): say so loudly.
local function raise_if_all_exceptions(sink, who)
  if sink.all_exceptions and sink.first_exception then
    error(who .. ": every request raised an error; the first: " .. sink.first_exception, 0)
  end
end

local function run_warmup(opts, w, users, sink)
  local n = opts.warmup or 0
  if n > 0 then closed_phase(opts, w, math.min(users, n), n, nil, true, sink, nil) end
end

local function sort_records(records)
  if not records then return end
  table.sort(records, function(a, b)
    if a.warmup ~= b.warmup then return a.warmup end
    return a.index < b.index
  end)
end

-- load.closed{client = c, concurrency = n, requests = n | duration = s,
-- warmup = 0, ramp = s?, workload = w (default: the seed prompts),
-- max_tokens = n?, extra = {...}?, on_record = fn(rec)?, on_event = fn?,
-- request = fn(args, i) -> args?, send = fn(args, i) -> rec?,
-- api = "chat" | "complete", slo = {...}?, stop = fn() -> reason?} -> result
-- on_event(ev, index) runs for each streamed event of request `index` (ev as
-- bench.http gives it: t (ns), data, content, reasoning, kind, index);
-- returning false stops that request.
--   {records = {...} (warm-up first, then by index), summary = summary.of(...),
--    level = {concurrency = n}, wall_s, t_start_ns, t_end_ns, stopped = reason?}
-- `concurrency` users each send their next request when their last one
-- ends. The warm-up requests run first (at up to `concurrency` at once)
-- and are left out of the summary; `ramp` starts the users evenly over
-- that many seconds. With `duration`, no request starts after it.
-- A per-call view of the caller's options: the run's own state (why it
-- stopped) is kept here, never written into the caller's table.
local function call_state(opts)
  return setmetatable({}, {__index = opts})
end

function M.closed(opts)
  check_client(opts, "load.closed")
  opts = call_state(opts)
  local n = opts.concurrency or 1
  if math.type(n) ~= "integer" or n < 1 then
    error("load.closed: concurrency: expected an integer >= 1, got " .. tostring(opts.concurrency), 2)
  end
  local w = workload.from(opts.workload)
  local sink = new_sink(opts)
  run_warmup(opts, w, n, sink)
  local t_start = clock.now()
  local deadline = opts.duration and t_start + math.floor(opts.duration * 1e9)
  closed_phase(opts, w, n, opts.requests, deadline, false, sink, opts.ramp)
  local t_end = clock.now()
  raise_if_all_exceptions(sink, "load.closed")
  sort_records(sink.list)
  local wall = (t_end - t_start) / 1e9
  return {records = sink.list, level = {concurrency = n},
          summary = sink.acc:result(wall),
          wall_s = wall, t_start_ns = t_start, t_end_ns = t_end, stopped = opts.stop_reason}
end

-- Gamma(k, 1) variate (Marsaglia and Tsang; k < 1 by the boost u^(1/k)).
local function gamma(rand, k)
  if k < 1 then
    local u = rand()
    return gamma(rand, k + 1) * (u > 0 and u or 1e-300) ^ (1 / k)
  end
  local d = k - 1 / 3
  local c = 1 / math.sqrt(9 * d)
  while true do
    local x, v
    repeat
      x = workload.normal(rand)
      v = 1 + c * x
    until v > 0
    v = v * v * v
    local u = rand()
    if u < 1 - 0.0331 * x ^ 4 or math.log(u) < 0.5 * x * x + d * (1 - v + math.log(v)) then
      return d * v
    end
  end
end

-- load.arrivals{rate = r, arrival = "poisson", burstiness = 1, seed = 0} ->
-- fn() -> the next gap in seconds. Poisson: exponential gaps; constant:
-- 1/rate; gamma: shape = burstiness (< 1 burstier than Poisson, > 1 more
-- regular), mean gap 1/rate either way.
function M.arrivals(opts)
  local rate = opts.rate
  if type(rate) ~= "number" or rate <= 0 then
    error("load.open: rate: expected requests per second > 0, got " .. tostring(rate), 3)
  end
  local kind = opts.arrival or "poisson"
  local rand = workload.rng(opts.seed or 0, 0x0a11)
  if kind == "constant" then
    return function() return 1 / rate end
  elseif kind == "poisson" then
    return function() return -math.log(1 - rand()) / rate end
  elseif kind == "gamma" then
    local k = opts.burstiness or 1
    if type(k) ~= "number" or k <= 0 then
      error("load.open: burstiness: expected a number > 0, got " .. tostring(k), 3)
    end
    return function() return gamma(rand, k) / (rate * k) end
  end
  error("load.open: arrival: expected \"poisson\", \"constant\" or \"gamma\", got " .. tostring(kind), 3)
end

local function add_scheduled(rec)
  -- from the intended send time to where the record's latencies start (the
  -- wire): the schedule's lateness and the client's own send delay
  local start = rec.t_latency_start_ns or rec.t_sent_ns
  local lag = start and rec.t_scheduled_ns and (start - rec.t_scheduled_ns) / 1e6 or 0
  if lag < 0 then lag = 0 end   -- sent a hair early: the timer fired before the instant
  rec.send_lag_ms = lag
  for _, k in ipairs{"ttft", "ttfb", "ttfr", "e2el"} do
    local v = rec[k .. "_ms"]
    if type(v) == "number" then rec[k .. "_from_scheduled_ms"] = v + lag end
  end
end

-- The open loop's schedule: when(i) -> request i's send time (ns), drawn
-- lazily in order from gap() (seconds), so a duration run needs no bound.
-- Send times are asked for in order, so only the recent ones are kept and an
-- hour-long run holds no more than a short one.
local SCHEDULE_KEEP = 1024
local function send_times(gap, t_start)
  local sched, drawn, t_next = {}, 0, t_start
  return function(i)
    while drawn < i do
      drawn = drawn + 1
      sched[drawn] = t_next
      sched[drawn - SCHEDULE_KEEP] = nil
      t_next = t_next + math.floor(gap() * 1e9 + 0.5)
    end
    return assert(sched[i], "load.open: a send time asked for out of order")
  end
end

-- load.open{client = c, rate = r (req/s), arrival = "poisson" | "constant"
-- | "gamma", burstiness = k?, requests = n | duration = s, seed = 0,
-- max_concurrency = n?, warmup = 0, workload = w, ...same as closed} -> result
--   {records, summary, level = {rate, arrival, burstiness}, wall_s, ...}
-- Send times are drawn ahead from the seeded arrival process and each
-- request is sent at its time whatever the others are doing (with
-- max_concurrency, at its time or when a slot frees, whichever is later).
-- Records carry t_scheduled_ns and the *_from_scheduled_ms latencies.
function M.open(opts)
  check_client(opts, "load.open")
  opts = call_state(opts)
  local gap = M.arrivals(opts)
  local w = workload.from(opts.workload)
  local mc = opts.max_concurrency
  if mc ~= nil and (math.type(mc) ~= "integer" or mc < 1) then
    error("load.open: max_concurrency: expected an integer >= 1, got " .. tostring(mc), 2)
  end
  local sink = new_sink(opts)
  run_warmup(opts, w, math.min(mc or 4, 4), sink)
  local t_start = clock.now()
  local deadline = opts.duration and t_start + math.floor(opts.duration * 1e9)
  local total = opts.requests
  local when = send_times(gap, t_start)
  local function in_run(i)
    if total and i > total then return false end
    if stopped(opts) then return false end
    if deadline and when(i) >= deadline then return false end
    return true
  end
  local function one(i, t_sched)
    local rec = send_one(opts, w:next(i), i)
    rec.index, rec.warmup, rec.t_scheduled_ns = i, false, t_sched
    add_scheduled(rec)
    finish(opts, rec, sink)
  end
  local tasks = {}
  local guard <close> = cancel_on_error(tasks)
  if mc then
    -- A pool: each worker takes the next arrival, waits for its time, sends.
    local next_i = 0
    for u = 1, mc do
      tasks[u] = spawn(function()
        while true do
          next_i = next_i + 1
          local i = next_i
          if not in_run(i) then return end
          local t = when(i)
          if t > clock.now() then clock.sleep_until(t) end
          if stopped(opts) then return end
          one(i, t)
        end
      end)
    end
  else
    -- A dispatcher spawns each request at its time.
    local i = 0
    while true do
      i = i + 1
      if not in_run(i) then break end
      local t = when(i)
      if t > clock.now() then clock.sleep_until(t) end
      if stopped(opts) then break end
      tasks[#tasks + 1] = spawn(one, i, t)
      -- keep only the requests still running (a failed one stays, for wait_all to raise)
      if #tasks >= 2 * SCHEDULE_KEEP then
        local live = {}
        for _, x in ipairs(tasks) do if x:status() ~= "done" then live[#live + 1] = x end end
        for k = 1, #tasks do tasks[k] = live[k] end
      end
    end
  end
  wait_all(tasks, "load.open")
  local t_end = clock.now()
  raise_if_all_exceptions(sink, "load.open")
  sort_records(sink.list)
  -- The arrival window is the duration even when the last request ends
  -- early: rates over less would overstate a sparse schedule.
  local wall = math.max((t_end - t_start) / 1e9, opts.duration or 0)
  return {records = sink.list,
          level = {rate = opts.rate, arrival = opts.arrival or "poisson", burstiness = opts.burstiness,
                   max_concurrency = mc},
          summary = sink.acc:result(wall),
          wall_s = wall, t_start_ns = t_start, t_end_ns = t_end, stopped = opts.stop_reason}
end

-- load.sweep{client = c, concurrency = {1, 2, 4, 8, 16} | rates = {...},
-- pause = 0 (s between levels), on_level = fn(result, k)?,
-- stop_when = fn(result, k) -> bool?, ...every option of closed / open} ->
-- the list of level results, each summary with scaling = summary.scaling
-- against the first level. stop_when ends the sweep after a level (e.g.
-- when an SLO is broken); on_level sees each result as it ends.
function M.sweep(opts)
  if type(opts) ~= "table" then error("load.sweep: expected a table of options", 2) end
  local levels, key, run
  if opts.concurrency ~= nil then
    levels, key, run = opts.concurrency, "concurrency", M.closed
  elseif opts.rates ~= nil then
    levels, key, run = opts.rates, "rate", M.open
  else
    error("load.sweep: expected concurrency = {levels} or rates = {levels}", 2)
  end
  if type(levels) ~= "table" or #levels == 0 then
    error("load.sweep: " .. (key == "rate" and "rates" or key) .. ": expected a non-empty list", 2)
  end
  local results = {}
  for k, level in ipairs(levels) do
    local o = {}
    for kk, v in pairs(opts) do o[kk] = v end
    o.concurrency, o.rates, o.on_level, o.stop_when, o.pause = nil, nil, nil, nil, nil
    o[key] = level
    if opts.pause and opts.pause > 0 and k > 1 then clock.sleep(opts.pause) end
    local r = run(o)
    r.summary.scaling = summary.scaling(r.summary, results[1] and results[1].summary or r.summary)
    results[k] = r
    if opts.on_level then opts.on_level(r, k) end
    if opts.stop_when and opts.stop_when(r, k) then break end
  end
  return results
end

return M
