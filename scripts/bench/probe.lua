-- bench.probe: look at a server in one line.
--
--   probe "http://127.0.0.1:1234"          -- models, one streamed request
--   probe{url = "...", concurrency = 8}    -- a small burst
--
-- The module is callable (probe(x) == probe.run(x)); the REPL and scripts
-- get it as the global `probe`.
local M = {}

local DEFAULT_PROMPT = "In two sentences, what is a benchmark?"

-- Where each dialect answers a model list, most specific first: LM Studio
-- and llama.cpp also serve /v1/models, so the generic path comes last.
M.DETECT = {
  {dialect = "lmstudio", path = "/api/v0/models"},
  {dialect = "llama.cpp", path = "/props"},
  {dialect = "llama.cpp", path = "/slots"},
  {dialect = "ollama", path = "/api/tags"},
  {dialect = "openai", path = "/v1/models"},
}

-- "http://h:p/v1/" -> "http://h:p"
function M.base(url)
  if type(url) ~= "string" or not url:match("^https?://") then
    error("probe: expected an http:// or https:// URL, got " .. tostring(url), 3)
  end
  url = url:gsub("/+$", "")
  url = url:gsub("/v1$", "")
  return url
end

local function get_json(url, timeout)
  local http = require("bench.http")
  local res = http.request{method = "GET", url = url,
                           timeout = {connect = timeout, total = timeout}}
  if not res or res.error or res.status ~= 200 then return nil end
  local ok, doc = pcall(require("cjson").decode, res.body or "")
  if ok and type(doc) == "table" then return doc end
  return nil
end

-- probe.detect(url, {timeout = 3}?) -> dialect, model list (ids), or nil,
-- message when nothing answered like an LLM server.
function M.detect(url, opts)
  local base = M.base(url)
  local timeout = opts and opts.timeout or 3
  for _, d in ipairs(M.DETECT) do
    local doc = get_json(base .. d.path, timeout)
    if doc then
      -- /props and /slots describe the server, not its models: ask /v1/models
      if d.path == "/props" or d.path == "/slots" then doc = get_json(base .. "/v1/models", timeout) or {} end
      local ids = {}
      for _, m in ipairs(doc.data or doc.models or {}) do
        if type(m) == "table" then ids[#ids + 1] = m.id or m.name or m.model
        elseif type(m) == "string" then ids[#ids + 1] = m end
      end
      return d.dialect, ids
    end
  end
  return nil, "probe: " .. base .. " does not answer /v1/models, /api/v0/models, /api/tags, /props or /slots"
end

-- The first `words` words of s, at most `chars` characters (CJK text has
-- no spaces), with an ellipsis when cut.
local function first_words(s, words, chars)
  if type(s) ~= "string" or s == "" then return "" end
  s = s:gsub("%s+", " "):gsub("^ ", "")
  local out, n, cut = {}, 0, false
  for w in s:gmatch("%S+") do
    n = n + 1
    if n > words then cut = true break end
    out[n] = w
  end
  s = table.concat(out, " ")
  if utf8.len(s) and utf8.len(s) > chars then
    s = s:sub(1, (utf8.offset(s, chars + 1) or #s + 1) - 1)
    cut = true
  end
  return cut and (s .. "…") or s
end

local function answer(rec)
  if type(rec.text) == "string" and rec.text ~= "" then return rec.text end
  return rec.reasoning
end

local decimals = require("bench.summary").fmt   -- "12.3", "-" when not a number

-- probe.run(url | {url, dialect?, model?, prompt?, max_tokens = 64,
-- concurrency = 1, api_key_env?, quiet = false, out = print}) -> a report
-- table {url, dialect, models, model, record | result, lines (what was
-- printed)}. Prints as it goes unless quiet. A server that does not answer
-- is reported (error field), not raised.
function M.run(opts)
  if type(opts) == "string" then opts = {url = opts} end
  opts = opts or {}
  local out = opts.quiet and function() end or opts.out or print
  local url = M.base(opts.url or os.getenv("BENCHRUN_URL") or "http://127.0.0.1:1234")
  local rep = {url = url}
  local dialect, models = opts.dialect, nil
  if not dialect then
    dialect, models = M.detect(url, opts)
    if not dialect then
      rep.error = models
      out(models)
      return setmetatable(rep, {__tostring = function(r) return r.error end})
    end
  end
  rep.dialect = dialect
  local openai = require("bench.openai")
  local client = openai.client{base_url = url, dialect = dialect, model = opts.model,
                               api_key_env = opts.api_key_env, extra = opts.extra}
  if not models then
    local ok, list = pcall(client.models, client)
    models = {}
    if ok and type(list) == "table" then
      for _, m in ipairs(list.data or list) do models[#models + 1] = type(m) == "table" and (m.id or m.name) or m end
    end
  end
  rep.models = models
  rep.model = opts.model or models[1]
  if rep.model and not opts.model then
    client = openai.client{base_url = url, dialect = dialect, model = rep.model,
                           api_key_env = opts.api_key_env, extra = opts.extra}
  end
  out(string.format("%s  %s  models: %s", url, dialect,
                    #models > 0 and table.concat(models, ", ") or "(none listed)"))
  local n = opts.concurrency or 1
  local req = {prompt = opts.prompt or DEFAULT_PROMPT, max_tokens = opts.max_tokens or 64}
  local lines = {}
  if n <= 1 then
    local rec = client:chat(req)
    rep.record = rec
    if not rec.ok then
      lines[1] = "error: " .. tostring(rec.error)
    else
      lines[1] = string.format("ttft %s ms  %s tok/s  %s tokens (%s)  finish %s  e2e %s ms",
        decimals(rec.ttft_ms), decimals(rec.decode_tps), tostring(rec.output_tokens), tostring(rec.token_source),
        tostring(rec.finish_reason), decimals(rec.e2el_ms))
      if rec.ttfr_ms then lines[1] = lines[1] .. string.format("  (reasoning from %s ms)", decimals(rec.ttfr_ms)) end
      lines[2] = "> " .. first_words(answer(rec), 12, 80)
    end
  else
    local load = require("bench.load")
    local workload = require("bench.workload")
    local res = load.closed{client = client, concurrency = n, requests = n,
                            workload = workload.list{req}}
    rep.result = res
    local s = res.summary
    lines[1] = string.format("%d at once: %s", n, require("bench.summary").line(s))
    local first
    for _, r in ipairs(res.records) do if r.ok then first = r break end end
    if first then lines[2] = "> " .. first_words(answer(first), 12, 80) end
  end
  for _, l in ipairs(lines) do out(l) end
  rep.lines = lines
  -- Short: the lines are already printed (the REPL prints what probe returns).
  return setmetatable(rep, {__tostring = function(r)
    return string.format("bench.probe report (%s, %s, %s)", r.url, r.dialect, tostring(r.model))
  end})
end

-- probe.client(url, {dialect?, model?, api_key_env?, extra?, timeout?}) ->
-- a bench.openai client for the server at url, with the dialect detected
-- and the first listed model when not given (nil, message when nothing
-- answers). Lets a script point at LM Studio, llama-server, Ollama or
-- vLLM alike.
function M.client(url, opts)
  opts = opts or {}
  if type(url) == "table" then url = url.url end
  local base = M.base(url)
  local dialect, models = opts.dialect, nil
  if not dialect then
    dialect, models = M.detect(base, opts)
    if not dialect then return nil, models end
  end
  return require("bench.openai").client{base_url = base, dialect = dialect,
    model = opts.model or (models and models[1]), api_key_env = opts.api_key_env,
    extra = opts.extra, timeout = opts.timeout}
end

-- probe.target(url?, sim_args?) -> {url, close}: the server at url, or, when
-- url is nil or "", a fresh `benchrun sim` on a free loopback port started
-- with sim_args (a list of strings) and stopped when the handle is closed
-- (`local srv <close> = probe.target(arg[1])`) or collected. Examples use it
-- so they run against a real server or stand-alone.
function M.target(url, sim_args)
  if url and url ~= "" then
    return setmetatable({url = M.base(url)}, {__close = function() end})
  end
  local srv, err = require("bench.backends").get("sim").start{args = sim_args}
  if not srv then error("probe.target: " .. err, 2) end
  local function close(self) if self.server then self.server:stop(2) self.server = nil end end
  return setmetatable({url = srv.base_url, port = srv.port, server = srv, sim = true},
                      {__close = close, __gc = close, __index = {close = close}})
end

return setmetatable(M, {__call = function(_, ...) return M.run(...) end})
