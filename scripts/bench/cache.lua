-- bench.cache: prefix caching, per request and per cell.
--
--   cache.fill(rec, usage, timings, final)   -- a record's cached_tokens, cache_source
--   local acc = cache.accumulator()          -- acc:add(rec) ... acc:result()
--   cache.reset(base_url, backend, dialect)  -- -> {ok, how, detail}
--   cache.metrics(text, backend)             -- -> {queries, hits} from /metrics text
--
-- Where the servers say how much of a prompt came from their cache:
--   usage.prompt_tokens_details.cached_tokens   OpenAI, vLLM (with
--                       --enable-prompt-tokens-details), SGLang
--   timings.cache_n     llama.cpp since PR #15827 (September 2025): the
--                       timings of the last chunk or answer, cache_n first
--   timings.prompt_n    llama.cpp before that (b4748, the test suite's
--                       server): prompt_n counts only what the cache did not
--                       hold, so cached = prompt tokens - prompt_n
-- A record without any of these has no cached_tokens: the hit rate then
-- says "not reported", never 0 (docs/cache.md).
local stats = require("bench.stats")
local util = require("bench.util")

local cache = {}

local finite = util.finite

local function count(v)
  v = finite(v)
  if v == nil or v < 0 or v ~= math.floor(v) then return nil end
  return math.tointeger(v) or v
end

-- cache.fill(rec, usage, timings, final): rec.cached_tokens and
-- rec.cache_source ("usage", "cache_n", "prompt_n"); rec.tokens_cached is
-- llama.cpp's /completion tokens_cached (the slot's cache after the
-- request: prompt and answer, not a hit count).
function cache.fill(rec, usage, timings, final)
  local details = type(usage) == "table" and usage.prompt_tokens_details
  local n = type(details) == "table" and count(details.cached_tokens)
  if n then rec.cached_tokens, rec.cache_source = n, "usage"
  elseif type(timings) == "table" and count(timings.cache_n) then
    rec.cached_tokens, rec.cache_source = count(timings.cache_n), "cache_n"
  elseif rec.dialect == "llama.cpp" and type(timings) == "table" and count(timings.prompt_n) and rec.prompt_tokens then
    local pn = count(timings.prompt_n)
    -- prompt_tokens from usage or tokens_evaluated: the whole prompt
    local whole = type(usage) == "table" and count(usage.prompt_tokens)
      or type(final) == "table" and count(final.tokens_evaluated)
    if whole and pn <= whole then rec.cached_tokens, rec.cache_source = whole - pn, "prompt_n" end
  end
  if type(final) == "table" and count(final.tokens_cached) then rec.tokens_cached = count(final.tokens_cached) end
  if rec.cached_tokens then rec.cache_hit = rec.cached_tokens > 0 end
end

-- The per-cell figures: hit rate (cached prompt tokens / prompt tokens of
-- the requests that said), requests with a hit, and TTFT with and without.
local Acc = {}
Acc.__index = Acc

function cache.accumulator()
  return setmetatable({n = 0, said = 0, hits = 0, cached = 0, prompt = 0,
                       ttft_hit = stats.histogram(), ttft_miss = stats.histogram()}, Acc)
end

function Acc:add(r)
  if r.ok == false or r.error then return end
  self.n = self.n + 1
  if r.cached_tokens == nil or r.prompt_tokens == nil then return end
  self.said = self.said + 1
  self.cached = self.cached + r.cached_tokens
  self.prompt = self.prompt + r.prompt_tokens
  local h = r.cached_tokens > 0
  if h then self.hits = self.hits + 1 end
  local t = finite(r.ttft_ms)
  if t then (h and self.ttft_hit or self.ttft_miss):add(t) end
end

local function p50(h)
  if h:count() == 0 then return nil end
  return h:summary().p50
end

-- -> nil when no request succeeded; else {requests, reported, hit_rate?,
-- hit_requests, cached_tokens, prompt_tokens, ttft_hit_p50_ms?,
-- ttft_miss_p50_ms?, note?}
function Acc:result()
  if self.n == 0 then return nil end
  local res = {requests = self.n, reported = self.said, hit_requests = self.hits,
               cached_tokens = self.cached, prompt_tokens = self.prompt,
               ttft_hit_p50_ms = p50(self.ttft_hit), ttft_miss_p50_ms = p50(self.ttft_miss),
               ttft_hit_n = self.ttft_hit:count(), ttft_miss_n = self.ttft_miss:count()}
  if self.said > 0 and self.prompt > 0 then res.hit_rate = self.cached / self.prompt end
  if self.said == 0 then res.note = "the server reported no cached-token counts"
  elseif self.said < self.n then
    res.note = string.format("%d of %d requests reported cached tokens", self.said, self.n)
  end
  return res
end

-- The cache-reset request of each kind of server (POST, no body needed):
--   vllm        POST /reset_prefix_cache (200, empty body); a development
--               route: registered only with VLLM_SERVER_DEV_MODE=1 in the
--               server's environment (vllm/entrypoints/serve), else 404
--   sglang      POST /flush_cache (sglang/srt/entrypoints/http_server.py)
--   llama.cpp   POST /slots/{id}?action=erase per slot, ids from GET /slots
--               (tools/server/server.cpp; b4748 needs --slots for the list
--               and --slot-save-path for the action, else 501)
cache.RESET = {vllm = "/reset_prefix_cache", sglang = "/flush_cache"}

local function post(http, url)
  return http.request{url = url, method = "POST", body = "{}",
                      headers = {["Content-Type"] = "application/json"}, timeout = {total = 30}}
end

local function why(r)
  local b = r.body and r.body:sub(1, 200) or ""
  return (r.error or ("HTTP " .. tostring(r.status))) .. (b ~= "" and (": " .. b) or "")
end

-- cache.reset(base_url, backend, dialect) -> {ok = bool, how = "POST ...", detail = text}
function cache.reset(base_url, backend, dialect)
  local http = require("bench.http")
  local json = require("cjson")
  if backend == "llama-server" or backend == "llama.cpp" or dialect == "llama.cpp" then
    local ids = {}
    local r = http.request{url = base_url .. "/slots", timeout = {total = 30}}
    local ok, v = pcall(json.decode, r.body or "")
    if r.status == 200 and ok and type(v) == "table" then
      for _, s in ipairs(v) do if type(s) == "table" and math.tointeger(s.id) then ids[#ids + 1] = math.tointeger(s.id) end end
    end
    if #ids == 0 then ids = {0} end   -- /slots off (no --slots): slot 0 is always there
    local erased = 0
    for _, id in ipairs(ids) do
      local e = post(http, string.format("%s/slots/%d?action=erase", base_url, id))
      if e.status ~= 200 then
        return {ok = false, how = "POST /slots/{id}?action=erase",
                detail = string.format("slot %d: %s", id, why(e))}
      end
      local ok2, ev = pcall(json.decode, e.body or "")
      if ok2 and type(ev) == "table" and finite(ev.n_erased) then erased = erased + ev.n_erased end
    end
    return {ok = true, how = "POST /slots/{id}?action=erase", detail = string.format("%d slot(s), %d tokens erased", #ids, erased)}
  end
  local path = cache.RESET[backend]
  if not path and dialect == "openai" then path = cache.RESET.vllm end
  if not path then
    return {ok = false, detail = "this server (" .. tostring(backend or dialect) .. ") offers no way to reset its cache"}
  end
  local r = post(http, base_url .. path)
  if r.status ~= 200 then
    local detail = why(r)
    if r.status == 404 and path == cache.RESET.vllm then
      detail = detail .. " (vLLM serves it only with VLLM_SERVER_DEV_MODE=1 in the server's env:)"
    end
    return {ok = false, how = "POST " .. path, detail = detail}
  end
  return {ok = true, how = "POST " .. path}
end

-- Cumulative prefix-cache counters in /metrics text, per server kind (in
-- tokens): vLLM V1 vllm:prefix_cache_queries_total / _hits_total. SGLang
-- exports only a gauge (sglang:cache_hit_rate), llama.cpp none.
cache.METRICS = {vllm = {queries = "vllm:prefix_cache_queries_total", hits = "vllm:prefix_cache_hits_total"},
                 sglang = {rate = "sglang:cache_hit_rate"}}

local function metric_sum(text, name)
  local total, seen = 0, false
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #name) == name then
      local rest = line:sub(#name + 1)
      if rest:match("^[{ ]") then
        local v = tonumber(rest:match("(%S+)%s*$"))
        if v then total, seen = total + v, true end
      end
    end
  end
  return seen and total or nil
end

-- cache.metrics(text, backend) -> {queries?, hits?, rate?} or nil
function cache.metrics(text, backend)
  if type(text) ~= "string" then return nil end
  local names = cache.METRICS[backend] or cache.METRICS.vllm
  local out = {}
  for k, name in pairs(names) do out[k] = metric_sum(text, name) end
  if next(out) == nil then return nil end
  return out
end

-- The server's own hit rate over a cell from two /metrics snapshots.
function cache.metrics_delta(before, after)
  if not before or not after then return nil end
  if after.rate then return {rate = after.rate, source = "gauge"} end
  local q = after.queries and before.queries and after.queries - before.queries
  local h = after.hits and before.hits and after.hits - before.hits
  if not q or not h or q <= 0 then return nil end
  return {queries = q, hits = h, rate = h / q, source = "counters"}
end

-- Snapshot of a server's /metrics (nil when it has none).
function cache.scrape(base_url, backend)
  local http = require("bench.http")
  local r = http.request{url = base_url .. "/metrics", timeout = {total = 10}}
  if r.status ~= 200 then return nil end
  return cache.metrics(r.body, backend)
end

-- ---- a cell (bench.runner's hooks) ----

-- cache.begin_cell(plan, cell, srv) -> the cell's cache state: the reset
-- the cell asked for (cache: {reset: true}, on the cell or the plan), the
-- server's counters before it (only where the plan has a cache: key: no
-- request a plan did not ask for), and the per-request accumulator.
function cache.begin_cell(plan, cell, srv)
  local opt = cell.cache or plan.cache
  local st = {acc = cache.accumulator(), backend = srv.backend or (cell.server or {}).backend}
  if not opt then return st end
  if opt.reset then
    local ok, res = pcall(cache.reset, srv.base_url, st.backend, srv.dialect or (cell.server or {}).dialect)
    st.reset = ok and res or {ok = false, detail = tostring(res)}
  end
  st.before = cache.scrape(srv.base_url, st.backend)
  st.scraped = true
  return st
end

-- cache.end_cell(st, srv) -> the cell's `cache` table (nil: nothing to say)
function cache.end_cell(st, srv)
  local res = st.acc:result() or {}
  if st.scraped and st.before then
    local d = cache.metrics_delta(st.before, cache.scrape(srv.base_url, st.backend))
    if d then res.server_hit_rate, res.server_hit_source = d.rate, d.source end
  end
  res.reset = st.reset
  if next(res) == nil then return nil end
  return res
end

return cache
