-- Prefix caching and quality by logprobs (issue 16, items 3 and 4) against
-- the simulator (--prefix-cache, --logprob-noise), a hostile server that
-- leaves logprobs out, and a whole plan: cached tokens per record and the
-- cell's hit rate, the cache resets, logprobs decoded from each dialect's
-- stream, KL of a variant with itself 0 and a Q4-like variant's above a
-- Q8-like one's, and the report's sections.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local openai = require("bench.openai")
local cache = require("bench.cache")
local logprobs = require("bench.logprobs")

-- a prompt of ~1,000 tokens at the simulator's 4 bytes a token
local LONG = string.rep("The same long context is sent again. ", 108)

T.case("cached tokens per record: usage (vLLM), timings.cache_n (llama.cpp); a hit prefills faster", function()
  for _, d in ipairs{"openai", "llama.cpp"} do
    local s <close> = T.sim{"--dialect", d, "--prefix-cache", "100000", "--prefill-tps", "5000", "--decode-tps", "0"}
    local c = openai.client{base_url = s.url, dialect = d, model = "m"}
    local a = c:chat{prompt = LONG, max_tokens = 2}
    local b = c:chat{prompt = LONG, max_tokens = 2}
    T.eq(a.ok and b.ok, true, d .. ": requests ok")
    T.eq(a.cached_tokens, 0, d .. ": the first prompt is not cached")
    T.eq(a.cache_hit, false, d .. ": no hit")
    T.eq(b.cached_tokens > 0.9 * b.prompt_tokens and b.cached_tokens < b.prompt_tokens, true,
         d .. ": the repeat is cached but one token: " .. tostring(b.cached_tokens) .. " of " .. tostring(b.prompt_tokens))
    T.eq(b.cache_source, d == "openai" and "usage" or "cache_n", d .. ": where the count came from")
    if d == "llama.cpp" then
      -- the sim's timings in llama.cpp's later form (PR #15827): cache_n is
      -- the cached part, prompt_n still only the computed part
      T.eq(b.cached_tokens, b.server.cache_n, "llama.cpp: cached_tokens is timings.cache_n")
      T.eq(b.server.cache_n + b.server.prompt_n, b.prompt_tokens, "llama.cpp: cache_n + prompt_n = the prompt")
    end
    T.eq(b.ttft_ms < a.ttft_ms / 4, true, string.format("%s: TTFT with a hit %.1f ms, without %.1f ms", d, b.ttft_ms, a.ttft_ms))
    -- the cell's figures: hit rate = cached / prompt tokens over the requests
    local acc = cache.accumulator()
    acc:add(a) acc:add(b)
    local res = acc:result()
    T.eq(res.hit_rate, (a.cached_tokens + b.cached_tokens) / (a.prompt_tokens + b.prompt_tokens), d .. ": hit rate")
    T.eq(res.hit_requests, 1, d .. ": requests with a hit")
    T.eq(res.ttft_hit_p50_ms < res.ttft_miss_p50_ms, true, d .. ": TTFT hit < miss")
    -- reset: the next one is cold again
    local r = cache.reset(s.url, d == "openai" and "vllm" or "llama-server", d)
    T.eq(r.ok, true, d .. ": reset: " .. tostring(r.detail))
    T.eq(c:chat{prompt = LONG, max_tokens = 2}.cached_tokens, 0, d .. ": cold after the reset")
  end
end)

-- llama.cpp's timings object since PR #15827 (tools/server/server.cpp,
-- result_timings::to_json; tools/server/server-task.cpp later): cache_n
-- first, then prompt_n (the computed part only) and the rest. The keys the
-- sim's /completion answer must have, in that order.
local LLAMA_TIMINGS = {"cache_n", "prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second",
                       "predicted_n", "predicted_ms", "predicted_per_token_ms", "predicted_per_second"}

T.case("llama.cpp timings.cache_n: the sim's /completion in the source's format; the record reads it", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--prefix-cache", "100000", "--prefill-tps", "5000", "--decode-tps", "0"}
  local http = require("bench.http")
  local body = '{"prompt":"' .. LONG .. '","n_predict":2}'
  http.request{url = s.url .. "/completion", method = "POST", body = body}
  local r = http.request{url = s.url .. "/completion", method = "POST", body = body}
  T.eq(r.status, 200, "/completion")
  local t = r.body:match('"timings":(%b{})')
  local keys = {}
  for k in t:gmatch('"([%a_]+)":') do keys[#keys + 1] = k end
  T.eq(table.concat(keys, " "), table.concat(LLAMA_TIMINGS, " "), "the timings' keys in llama.cpp's order")
  local v = require("cjson").decode(r.body)
  T.eq(v.timings.cache_n > 0 and v.timings.cache_n + v.timings.prompt_n == v.tokens_evaluated, true,
       "cache_n + prompt_n = tokens_evaluated: " .. t)
  -- through the client, native and OpenAI-style, streamed and not
  local c = openai.client{base_url = s.url, dialect = "llama.cpp"}
  for _, stream in ipairs{true, false} do
    local n = c:complete{prompt = LONG, max_tokens = 2, native = true, stream = stream}
    T.eq(n.cache_source, "cache_n", "/completion stream=" .. tostring(stream) .. ": the source")
    T.eq(n.cached_tokens, n.server.cache_n, "/completion stream=" .. tostring(stream) .. ": cached_tokens = cache_n")
    T.eq(n.cache_hit, true, "/completion: a hit")
    local o = c:complete{prompt = LONG, max_tokens = 2, stream = stream}
    T.eq(o.cache_source, "cache_n", "/v1/completions stream=" .. tostring(stream) .. ": the source")
    T.eq(o.cached_tokens > 0, true, "/v1/completions: cached")
  end
  -- without --prefix-cache the llama.cpp dialect stays b4748's: no cache_n
  local n <close> = T.sim{"--dialect", "llama.cpp", "--decode-tps", "0"}
  local plain = http.request{url = n.url .. "/completion", method = "POST", body = body}
  T.eq(plain.body:find('"cache_n"', 1, true), nil, "b4748's timings have no cache_n")
end)

-- the plans' workload: conversations whose turns repeat the system prompt
-- and the turns before them
local MULTITURN = [[
workload:
  multiturn: {conversations: 2, turns: 3, system_tokens: 400, user_tokens: 20, reply_tokens: 20, max_tokens: 8}
]]

local LLAMA_PLAN = [[
name: cache-llama
server: {backend: sim}
]] .. MULTITURN .. [[
cache: {reset: true}
dry_run: {decode_tps: 5000, prefill_tps: 4000, prefix_cache: 100000, dialect: llama.cpp}
]]

T.case("a plan on the llama.cpp dialect: the cell's hit rate is the records' timings.cache_n", function()
  local dir = T.tmpdir()
  local rc, data, rdir = T.run_plan(dir, LLAMA_PLAN, {dry_run = true})
  T.eq(rc, 0, "exit status")
  T.eq(#data.cells, 1, "one cell")
  local cell = data.cells[1]
  local cached, prompt, hits, n = 0, 0, 0, 0
  for _, r in ipairs(data.records) do
    if r.cell == cell.id and r.ok ~= false and not r.error then
      n = n + 1
      T.eq(r.cache_source, "cache_n", "record " .. n .. ": counted from timings.cache_n")
      cached, prompt = cached + r.cached_tokens, prompt + r.prompt_tokens
      if r.cached_tokens > 0 then hits = hits + 1 end
    end
  end
  T.eq(n, 6, "the cell's requests")
  T.eq(cell.cache.requests, 6, "the cell counted them")
  T.eq(cell.cache.reported, 6, "every one reported")
  T.eq(cell.cache.hit_requests, hits, "requests with a hit")
  T.eq(hits, 5, "all but the first repeat the system prompt")
  T.eq(math.abs(cell.cache.hit_rate - cached / prompt) < 1e-12, true,
       string.format("hit rate %s = sum cache_n / sum prompt tokens %s", tostring(cell.cache.hit_rate), tostring(cached / prompt)))
  T.eq(cell.cache.reset.ok, true, "reset by slot erase: " .. tostring(cell.cache.reset.detail))
  T.eq(T.read_file(rdir .. "/report.md"):find("## Prefix cache", 1, true) ~= nil, true, "the report's cache section")
end)

T.case("reset paths: SGLang /flush_cache; a server with no way says so; counters from /metrics", function()
  local s <close> = T.sim{"--prefix-cache", "100000", "--decode-tps", "0"}
  local c = openai.client{base_url = s.url, model = "m"}
  local before = cache.scrape(s.url, "vllm")
  c:chat{prompt = LONG, max_tokens = 1}
  c:chat{prompt = LONG, max_tokens = 1}
  local d = cache.metrics_delta(before, cache.scrape(s.url, "vllm"))
  T.eq(d.source, "counters", "vLLM's prefix-cache counters")
  T.eq(d.rate > 0.4 and d.rate < 0.5, true, "the server's hit rate over the two: " .. tostring(d.rate))
  T.eq(cache.reset(s.url, "sglang", "openai").how, "POST /flush_cache", "SGLang's path")
  -- a vLLM without VLLM_SERVER_DEV_MODE has no such route: 404, and the reason
  local notfound = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"detail\":\"Not Found\"}"
  local v <close> = T.raw{"expect-request", T.send_step(notfound), "close"}
  local vr = cache.reset(v.url, "vllm", "openai")
  T.eq(vr.ok, false, "404: not reset")
  T.eq(vr.detail:match("VLLM_SERVER_DEV_MODE=1") ~= nil, true, vr.detail)
  local o <close> = T.sim{"--dialect", "ollama"}
  local r = cache.reset(o.url, "ollama", "ollama")
  T.eq(r.ok, false, "Ollama has no reset")
  T.eq(r.detail:match("offers no way") ~= nil, true, r.detail)
  -- without --prefix-cache the simulator says nothing of a cache: no count, never a 0
  local n <close> = T.sim{"--decode-tps", "0"}
  local rec = openai.client{base_url = n.url, model = "m"}:chat{prompt = LONG, max_tokens = 1}
  T.eq(rec.cached_tokens, nil, "no cached_tokens where the server says nothing")
  local acc = cache.accumulator()
  acc:add(rec)
  T.eq(acc:result().note, "the server reported no cached-token counts", "the cell's note")
end)

-- the answers of a sim with this noise to a few prompts, with 5 top logprobs
local function answers(noise, dialect, api)
  local s <close> = T.sim{"--dialect", dialect or "openai", "--logprob-noise", tostring(noise), "--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = dialect or "openai", model = "m"}
  local out = {}
  for i = 1, 6 do
    local args = {prompt = string.rep("question " .. i .. " ", i * 3), max_tokens = 48, logprobs = 5}
    local r = api == "complete" and c:complete(args) or c:chat(args)
    assert(r.ok, tostring(r.error_detail))
    out[i] = r
  end
  return out
end

local function mean_kl(ref, var)
  local s, n = 0, 0
  for i = 1, #ref do
    local cmp = logprobs.compare(ref[i].logprobs, var[i].logprobs)
    if cmp.kl_mean then s, n = s + cmp.kl_mean, n + 1 end
  end
  return s / n
end

T.case("logprobs: a variant against itself is KL 0; Q4-like noise diverges more than Q8-like", function()
  local ref, again = answers(0), answers(0)
  for i = 1, #ref do
    T.eq(#ref[i].logprobs, 48, "one entry a token")
    T.eq(#ref[i].logprobs[1].top, 5, "top 5")
    local cmp = logprobs.compare(ref[i].logprobs, again[i].logprobs)
    T.eq(cmp.kl_mean, 0, "KL with itself")
    T.eq(cmp.top1_agreement, 1, "top-1 agreement with itself")
    T.eq(cmp.first_divergence, nil, "never diverges")
  end
  local q8, q4 = answers(0.3), answers(1.5)
  local k8, k4 = mean_kl(ref, q8), mean_kl(ref, q4)
  T.eq(k8 > 0 and k4 > k8, true, string.format("KL Q8-like %.4f < Q4-like %.4f", k8, k4))
  -- the text agrees with the tokens the logprobs name
  local text = {}
  for _, e in ipairs(q4[1].logprobs) do text[#text + 1] = e.t end
  T.eq(table.concat(text), q4[1].text, "the tokens make the text")
end)

T.case("logprobs in each dialect's wire format: llama.cpp chat and /completion, vLLM legacy completions", function()
  for _, v in ipairs{{"llama.cpp", "chat"}, {"openai", "complete"}} do
    local a = answers(0, v[1], v[2])
    T.eq(#a[1].logprobs, 48, v[1] .. " " .. v[2] .. ": entries")
    T.eq(#a[1].logprobs[1].top, 5, v[1] .. " " .. v[2] .. ": top 5")
  end
  local s <close> = T.sim{"--dialect", "llama.cpp", "--decode-tps", "0"}
  local r = openai.client{base_url = s.url, dialect = "llama.cpp"}:complete{prompt = "hi", max_tokens = 4, native = true, logprobs = 3}
  T.eq(#r.logprobs, 4, "n_probs on /completion: completion_probabilities")
  T.eq(#r.logprobs[4].top, 3, "n_probs 3")
end)

T.case("no logprobs from the server: a note, not an error (Ollama, LM Studio)", function()
  for _, d in ipairs{"ollama", "lmstudio"} do
    local s <close> = T.sim{"--dialect", d, "--decode-tps", "0"}
    local r = openai.client{base_url = s.url, dialect = d, model = "m"}:chat{prompt = "hi", max_tokens = 4, logprobs = 2}
    T.eq(r.ok, true, d .. ": the request is fine")
    T.eq(r.logprobs, nil, d .. ": no logprobs")
    T.eq(r.logprobs_note:match("sent no logprobs") ~= nil, true, d .. ": " .. tostring(r.logprobs_note))
  end
  T.eq(pcall(function() openai.client{base_url = "http://127.0.0.1:1", model = "m"}:chat{prompt = "x", logprobs = 99} end),
       false, "logprobs above 20 is refused")
end)

T.case("bad input: logprobs missing on some tokens -> counted and noted, the comparison skips them", function()
  local function chunk(content, lp)
    return "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" .. content .. "\"}" ..
      (lp and (",\"logprobs\":" .. lp) or "") .. ",\"finish_reason\":null}]}\r\n\r\n"
  end
  local entry = '{"content":[{"token":" a","logprob":-0.1,"top_logprobs":[{"token":" a","logprob":-0.1}]}]}'
  local body = chunk(" a", entry) .. chunk(" b", nil) .. chunk(" c", '{"content":[{"token":" c","logprob":null}]}')
    .. chunk(" d", entry) .. "data: [DONE]\r\n\r\n"
  local head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " .. #body .. "\r\n\r\n"
  local s <close> = T.raw{"expect-request", T.send_step(head .. body), "close"}
  local r = openai.client{base_url = s.url, model = "m"}:chat{prompt = "x", max_tokens = 4, logprobs = 1}
  T.eq(r.ok, true, "the request stands: " .. tostring(r.error_detail))
  T.eq(r.text, " a b c d", "text")
  T.eq(#r.logprobs, 3, "three entries came (one without a number)")
  T.eq(r.logprobs_missing, 2, "one event without logprobs, one entry without a logprob")
  T.eq(r.logprobs_note, "2 token(s) or event(s) came without logprobs", "the note")
  local cmp = logprobs.compare(r.logprobs, r.logprobs)
  T.eq(cmp.missing, 1, "the entry without a logprob is skipped in the KL")
  T.eq(cmp.kl_mean, 0, "KL of the rest")
  T.eq(logprobs.decode("[{\"token\":"), nil, "broken JSON: nil")
end)

T.case("the real llama-server's captures: cached tokens from prompt_n, logprobs decoded", function()
  local dir = os.getenv("BENCHRUN_TESTS") .. "/fixtures/llama-server/"
  for _, v in ipairs{{"chat-stream-logprobs.sse", 0, 4}, {"chat-stream-logprobs-cached.sse", 38, 4}} do
    local body = assert(T.read_file(dir .. v[1]))
    local head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " .. #body .. "\r\n\r\n"
    local s <close> = T.raw{"expect-request", T.send_step(head .. body), "close"}
    local r = openai.client{base_url = s.url, dialect = "llama.cpp", model = "tiny-random"}:chat{prompt = "x", max_tokens = 4, logprobs = 3}
    T.eq(r.ok, true, v[1])
    T.eq(r.prompt_tokens, 39, v[1] .. ": prompt tokens")
    T.eq(r.cached_tokens, v[2], v[1] .. ": cached = prompt_tokens - timings.prompt_n")
    T.eq(#r.logprobs, v[3], v[1] .. ": entries")
    T.eq(r.logprobs[1].t, " Mundial", v[1] .. ": first token")
    T.eq(#r.logprobs[1].top, 3, v[1] .. ": top 3")
    T.eq(r.logprobs_note, nil, v[1] .. ": nothing missing")
  end
  local body = assert(T.read_file(dir .. "native-completion-stream-probs.sse"))
  local head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " .. #body .. "\r\n\r\n"
  local s <close> = T.raw{"expect-request", T.send_step(head .. body), "close"}
  local r = openai.client{base_url = s.url, dialect = "llama.cpp"}:complete{prompt = "x", max_tokens = 3, logprobs = 3, native = true}
  T.eq(#r.logprobs, 3, "/completion: completion_probabilities")
  T.eq(r.tokens_cached, 32, "/completion: tokens_cached (the slot's cache after the request)")
  T.eq(r.cached_tokens, 1, "/completion: tokens_evaluated 30 - prompt_n 29")
end)

local PLAN = [[
name: cache-quality
server: {backend: sim}
]] .. MULTITURN .. [[
models:
  f16: {model: f16, bits: 16, size: 2GB}
  q8: {model: q8, bits: 8, size: 1GB}
  q4: {model: q4, bits: 4, size: 600MB}
matrix:
  model: [f16, q8, q4]
cells_defaults: {}
cache: {reset: true}
quality: {logprobs: 5}
dry_run:
  decode_tps: 5000
  prefill_tps: 4000
  prefix_cache: 100000
  memory_scale: 0.0001
  models:
    f16: {logprob_noise: 0}
    q8: {logprob_noise: 0.3}
    q4: {logprob_noise: 1.5}
]]

T.case("a plan: multiturn workload, cache reset per cell, quality by logprobs in the report", function()
  local dir = T.tmpdir()
  local rc, data, rdir = T.run_plan(dir, PLAN:gsub("cells_defaults: {}\n", ""), {dry_run = true})
  T.eq(rc, 0, "exit status")
  local by = {}
  for _, c in ipairs(data.cells) do by[c.labels.model] = c end
  for name, c in pairs(by) do
    T.eq(c.status, "ok", name .. " ran")
    T.eq(c.cache.reset.ok, true, name .. ": cache reset before the cell")
    -- 6 requests: all but the very first repeat the system prompt (the
    -- later turns their conversation's earlier turns too)
    T.eq(c.cache.hit_requests, 5, name .. ": requests with a hit")
    T.eq(c.cache.requests, 6, name .. ": requests")
    T.eq(c.cache.hit_rate > 0.3, true, name .. ": hit rate " .. tostring(c.cache.hit_rate))
    T.eq(math.abs(c.cache.server_hit_rate - c.cache.hit_rate) < 1e-9, true,
         name .. ": the server's /metrics agree: " .. tostring(c.cache.server_hit_rate))
    T.eq(type(c.quality_logprobs), "table", name .. ": the quality pass")
  end
  local md = T.read_file(rdir .. "/report.md")
  T.eq(md:find("## Quality by logprobs", 1, true) ~= nil, true, "the logprobs section")
  T.eq(md:find("## Prefix cache", 1, true) ~= nil, true, "the cache section")
  T.eq(md:find("Quality/GB", 1, true) ~= nil, true, "quality per GB beside TPS/GB")
  local cmp = require("bench.report.logprobs").compare(require("bench.report.analysis").analyze(data).configs)
  local rows = {}
  for _, r in ipairs(cmp.rows) do rows[r.config.labels.model] = r end
  T.eq(cmp.reference.labels.model, "f16", "the reference is the highest precision")
  T.eq(rows.f16.kl, 0, "the reference against itself")
  T.eq(rows.q4.kl > rows.q8.kl, true, string.format("Q4 KL %s > Q8 KL %s", tostring(rows.q4.kl), tostring(rows.q8.kl)))
  T.eq(rows.q8.quality_per_gb ~= nil, true, "quality per GB")
end)

T.case("plan keys: multiturn and sharegpt workloads are accepted; bad cache and quality values are named", function()
  local P = require("bench.plan")
  local dir = T.tmpdir()
  local function load(text)
    local path = dir .. "/p.yaml"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    local plan, errs = P.load(path, {})
    return plan, errs and table.concat(errs, " | ") or ""
  end
  local base = "name: t\nserver: {backend: sim}\n"
  local sg = dir .. "/sg.json"
  local f = assert(io.open(sg, "w"))
  f:write('[{"conversations":[{"from":"human","value":"hello there, how are you"},{"from":"gpt","value":"fine thanks"}]}]')
  f:close()
  T.eq(load(base .. "workload: {multiturn: {conversations: 2, turns: 3}}\n") ~= nil, true, "multiturn")
  T.eq(load(base .. "workload: {sharegpt: " .. sg .. ", limit: 1}\ncache: {reset: true}\n") ~= nil, true, "sharegpt")
  local _, e = load(base .. "cache: {reset: 3}\n")
  T.eq(e:match("cache.reset") ~= nil or e:match("reset") ~= nil, true, "cache.reset named: " .. e)
  _, e = load(base .. "quality: {logprobs: 50}\n")
  T.eq(e:match("logprobs") ~= nil, true, "quality.logprobs named: " .. e)
  _, e = load(base .. "workload: {multiturn: {turns: 0}}\n")
  T.eq(e:match("turns") ~= nil, true, "multiturn.turns named: " .. e)
end)

T.done()
