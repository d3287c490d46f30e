-- benchrun sim: the wire format of each dialect, checked with curl (the
-- command-line tool) against the captured llama-server fixtures and the
-- formats the real servers document.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")
local json = require("cjson")
local FIX = os.getenv("BENCHRUN_TESTS") .. "/fixtures/llama-server/"

-- curl: returns status, headers (lower-case names), body
local function curl(url, body, extra)
  local argv = {"curl", "-sS", "-N", "-D", "-", url}
  if body then
    for _, a in ipairs{"-H", "Content-Type: application/json", "--data-binary", body} do argv[#argv + 1] = a end
  end
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local r = assert(proc.run{argv = argv, timeout = 20})
  local out = r.stdout
  local head, rest = out:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no response head from " .. url .. ": " .. tostring(r.stderr))
  local status = tonumber(head:match("^HTTP/1%.%d (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[name:lower()] = value end
  return status, headers, rest
end

-- SSE events: list of raw data strings
local function sse(body)
  local evs = {}
  for block in (body .. "\n\n"):gmatch("(.-)\n\n") do
    local d = block:match("^data: (.*)$")
    if d then evs[#evs + 1] = d end
  end
  return evs
end

local function ndjson(body)
  local evs = {}
  for line in body:gmatch("([^\n]+)\n") do evs[#evs + 1] = json.decode(line) end
  return evs
end

local function keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return table.concat(ks, ",")
end

-- every key of `want` is in `got` (sim_ns and sim_arrival_ns aside, the sim adds nothing else)
local function same_keys(got, want, what)
  local g = {}
  for k in pairs(got) do g[k] = true end
  g.sim_ns, g.sim_arrival_ns = nil, nil
  T.eq(keys(g), keys(want), what .. " keys")
end

local function read(path) return assert(T.read_file(path)) end

local function chat_body(t)
  t.messages = t.messages or {{role = "user", content = "hello there, simulator"}}   -- 22 bytes -> 6 tokens
  return json.encode(t)
end

T.case("openai: streamed chat with usage", function()
  local s <close> = T.sim{"--decode-tps", "0", "--model", "m1"}
  local st, h, body = curl(s.url .. "/v1/chat/completions",
    chat_body{model = "m1", max_tokens = 5, stream = true, stream_options = {include_usage = true}})
  T.eq(st, 200, "status")
  T.eq(h["content-type"], "text/event-stream; charset=utf-8", "content type")
  assert(tonumber(h["x-sim-request-id"]), "X-Sim-Request-Id")
  local evs = sse(body)
  T.eq(#evs, 8, "role + 5 tokens + usage + [DONE]")
  T.eq(evs[8], "[DONE]", "last event")
  local first = json.decode(evs[1])
  T.eq(first.object, "chat.completion.chunk", "object")
  T.eq(first.model, "m1", "model")
  T.eq(first.choices[1].delta.role, "assistant", "role chunk")
  assert(first.id:match("^chatcmpl%-"), first.id)
  local prev = 0
  for i = 2, 6 do
    local e = json.decode(evs[i])
    T.eq(e.id, first.id, "same id")
    assert(e.choices[1].delta.content:match("^ %a+$"), "one word per token: " .. evs[i])
    assert(type(e.sim_ns) == "number" and e.sim_ns % 1 == 0 and e.sim_ns >= prev, "sim_ns rises")
    prev = e.sim_ns
    T.eq(e.choices[1].finish_reason, i == 6 and "length" or json.null, "finish_reason " .. i)
  end
  local u = json.decode(evs[7])
  T.eq(#u.choices, 0, "usage chunk has no choices")
  T.eq(u.usage.prompt_tokens, 6, "prompt tokens = ceil(22/4)")
  T.eq(u.usage.completion_tokens, 5, "completion tokens")
  T.eq(u.usage.total_tokens, 11, "total")
end)

T.case("openai: non-streamed chat, completions, models, health", function()
  local s <close> = T.sim{"--decode-tps", "0"}
  local st, h, body = curl(s.url .. "/v1/chat/completions", chat_body{max_completion_tokens = 4})
  T.eq(st, 200, "status")
  T.eq(h["content-type"], "application/json", "content type")
  local r = json.decode(body)
  T.eq(r.object, "chat.completion", "object")
  T.eq(r.model, "sim-model", "default model")
  T.eq(r.usage.completion_tokens, 4, "max_completion_tokens")
  local _, n = r.choices[1].message.content:gsub(" %a+", "")
  T.eq(n, 4, "4 words")
  -- deterministic: the same request gives the same text
  local _, _, body2 = curl(s.url .. "/v1/chat/completions", chat_body{max_completion_tokens = 4})
  T.eq(json.decode(body2).choices[1].message.content, r.choices[1].message.content, "same text")
  -- text completions, streamed, without usage
  st, h, body = curl(s.url .. "/v1/completions", json.encode{prompt = "abcdefgh", max_tokens = 3, stream = true})
  local evs = sse(body)
  T.eq(#evs, 4, "3 tokens + [DONE]")
  local e = json.decode(evs[1])
  T.eq(e.object, "text_completion", "object")
  assert(e.id:match("^cmpl%-"), e.id)
  assert(e.choices[1].text:match("^ %a+$"), "text")
  T.eq(json.decode(evs[3]).choices[1].finish_reason, "length", "finish")
  st, h, body = curl(s.url .. "/v1/models")
  T.eq(json.decode(body).data[1].id, "sim-model", "models")
  st = curl(s.url .. "/health")
  T.eq(st, 200, "health")
  -- stop strings end the answer with finish_reason "stop"
  local _, _, full = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 40})
  local text = json.decode(full).choices[1].message.content
  local w = text:match("^ %a+ (%a+)")
  _, _, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 40, stop = {w}})
  r = json.decode(body)
  T.eq(r.choices[1].finish_reason, "stop", "stopped")
  assert(not r.choices[1].message.content:find(w, 1, true) or text:find(w, 1, true) < #r.choices[1].message.content,
         "text before the stop string")
  T.eq(text:sub(1, #r.choices[1].message.content), r.choices[1].message.content, "prefix of the full text")
end)

T.case("several models; --strict-models answers 404 for others", function()
  local s <close> = T.sim{"--model", "a", "--model", "b", "--strict-models", "--decode-tps", "0"}
  local _, _, body = curl(s.url .. "/v1/models")
  local m = json.decode(body)
  T.eq(#m.data, 2, "two models")
  T.eq(m.data[2].id, "b", "second")
  local st
  st, _, body = curl(s.url .. "/v1/chat/completions", chat_body{model = "b", max_tokens = 1})
  T.eq(st, 200, "listed model")
  T.eq(json.decode(body).model, "b", "echoed")
  st, _, body = curl(s.url .. "/v1/chat/completions", chat_body{model = "c", max_tokens = 1})
  T.eq(st, 404, "unlisted model")
  T.eq(json.decode(body).message, "The model `c` does not exist.", "vLLM's message")
  -- a long stop string spanning many tokens
  _, _, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 200})
  local text = json.decode(body).choices[1].message.content
  local long = text:sub(101, 400)
  _, _, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 200, stop = long})
  local r = json.decode(body)
  T.eq(r.choices[1].finish_reason, "stop", "long stop string found")
  T.eq(r.choices[1].message.content, text:sub(1, 100), "text before it")
end)

T.case("llama.cpp: the shapes of the captured fixtures", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--decode-tps", "0", "--model", "tiny-random"}
  local st, h, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 3, stream = true})
  T.eq(st, 200, "status")
  T.eq(h["content-type"], "text/event-stream", "content type")
  T.eq(h["server"], "llama.cpp", "server header")
  T.eq(h["transfer-encoding"], "chunked", "chunked")
  local fx = sse(read(FIX .. "chat-stream.sse"))
  local evs = sse(body)
  T.eq(#evs, 5, "3 tokens + final + [DONE] (no role chunk)")
  assert(evs[1]:find('^{"choices":%[{"finish_reason":null,"index":0,"delta":{"content":"'), evs[1])
  same_keys(json.decode(evs[1]), json.decode(fx[1]), "token chunk")
  same_keys(json.decode(evs[1]).choices[1], json.decode(fx[1]).choices[1], "token choice")
  local last, fxlast = json.decode(evs[4]), json.decode(fx[#fx - 1])
  same_keys(last, fxlast, "final chunk")
  same_keys(last.timings, fxlast.timings, "timings")
  same_keys(last.usage, fxlast.usage, "usage")
  T.eq(last.usage.completion_tokens, 3, "usage without include_usage")
  T.eq(last.choices[1].finish_reason, "length", "finish")
  T.eq(evs[5], "[DONE]", "done")
  -- /v1/completions
  fx = sse(read(FIX .. "completions-stream.sse"))
  _, _, body = curl(s.url .. "/v1/completions", json.encode{prompt = "Once upon a time", max_tokens = 2, stream = true})
  evs = sse(body)
  same_keys(json.decode(evs[1]), json.decode(fx[1]), "completion chunk")
  same_keys(json.decode(evs[3]), json.decode(fx[#fx - 1]), "completion final")
  -- native /completion: no [DONE], last has stop = true and timings
  fx = sse(read(FIX .. "native-completion-stream.sse"))
  _, _, body = curl(s.url .. "/completion", json.encode{prompt = "Once upon a time", n_predict = 2, stream = true})
  evs = sse(body)
  T.eq(#evs, 3, "2 tokens + final")
  same_keys(json.decode(evs[1]), json.decode(fx[1]), "native chunk")
  local nl = json.decode(evs[3])
  T.eq(nl.stop, true, "stop")
  T.eq(nl.tokens_predicted, 2, "tokens_predicted")
  T.eq(nl.prompt, "Once upon a time", "prompt echoed")
  local fl = json.decode(fx[#fx])
  for k in pairs(fl) do assert(nl[k] ~= nil, "native final lacks " .. k) end
  same_keys(nl.timings, fl.timings, "native timings")
  -- non-streamed chat
  _, _, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 3})
  same_keys(json.decode(body), json.decode(read(FIX .. "chat.json")), "chat.json")
  -- a malformed body: 500 with an error object, as llama-server does
  st, _, body = curl(s.url .. "/v1/chat/completions", "{no")
  T.eq(st, 500, "bad json status")
  local err = json.decode(body).error
  same_keys(err, json.decode(read(FIX .. "bad-json.json")).error, "error object")
  T.eq(err.type, "server_error", "error type")
  -- models, health, slots, metrics
  _, _, body = curl(s.url .. "/v1/models")
  local m = json.decode(body)
  same_keys(m.data[1], json.decode(read(FIX .. "models.json")).data[1], "model entry")
  T.eq(m.data[1].id, "tiny-random", "model id")
  _, _, body = curl(s.url .. "/health")
  T.eq(body, read(FIX .. "health.json"), "health body")
  st, _, body = curl(s.url .. "/slots")
  T.eq(st, 200, "slots")
  local slots = json.decode(body)
  T.eq(#slots, 4, "4 slots")
  T.eq(slots[1].is_processing, false, "idle slot")
  _, _, body = curl(s.url .. "/metrics")
  for name in read(FIX .. "metrics.txt"):gmatch("\n(llamacpp:[%w_]+) ") do
    if name ~= "llamacpp:n_decode_total" and name ~= "llamacpp:n_busy_slots_per_decode"
       and name ~= "llamacpp:prompt_tokens_seconds" and name ~= "llamacpp:predicted_tokens_seconds" then
      assert(body:find("\n" .. name .. " ", 1, true), "metric " .. name)
    end
  end
end)

T.case("lmstudio: /api/v0 with stats (non-streamed only) and model state", function()
  local s <close> = T.sim{"--dialect", "lmstudio", "--decode-tps", "0"}
  local st, _, body = curl(s.url .. "/api/v0/chat/completions", chat_body{max_tokens = 3, stream = true})
  T.eq(st, 200, "status")
  local evs = sse(body)
  T.eq(#evs, 5, "3 tokens + final + [DONE]")
  local e = json.decode(evs[1])
  T.eq(e.choices[1].delta.role, "assistant", "role in every delta")
  local f = json.decode(evs[4])
  T.eq(f.choices[1].finish_reason, "length", "finish")
  -- LM Studio streams carry no stats (lmstudio-bug-tracker#676): the simulator invents none
  T.eq(f.stats, nil, "no stats in a stream")
  T.eq(f.model_info, nil, "no model_info in a stream")
  st, _, body = curl(s.url .. "/api/v0/chat/completions", chat_body{max_tokens = 3})
  local nc = json.decode(body)
  T.eq(keys(nc.stats), "generation_time,stop_reason,time_to_first_token,tokens_per_second", "stats")
  T.eq(nc.stats.stop_reason, "maxPredictedTokensReached", "stop reason")
  assert(nc.model_info and nc.runtime, "model_info and runtime")
  _, _, body = curl(s.url .. "/api/v0/completions", json.encode{prompt = "the meaning of life is", max_tokens = 2})
  local r = json.decode(body)
  T.eq(r.object, "text_completion", "object")
  assert(r.stats and r.stats.time_to_first_token > 0, "stats")
  _, _, body = curl(s.url .. "/api/v0/models")
  local m = json.decode(body).data[1]
  T.eq(keys(m), "arch,compatibility_type,id,max_context_length,object,publisher,quantization,state,type", "model keys")
  T.eq(m.state, "loaded", "state")
  st, _, body = curl(s.url .. "/api/v0/models/sim-model")
  T.eq(json.decode(body).id, "sim-model", "one model")
end)

T.case("ollama: NDJSON chat and generate with eval counts", function()
  local s <close> = T.sim{"--dialect", "ollama", "--decode-tps", "200", "--model", "llama3.2"}
  local st, h, body = curl(s.url .. "/api/chat",
    json.encode{model = "llama3.2", messages = {{role = "user", content = "why is the sky blue?"}}, options = {num_predict = 4}})
  T.eq(st, 200, "status")
  T.eq(h["content-type"], "application/x-ndjson", "content type")
  local evs = ndjson(body)
  T.eq(#evs, 5, "4 tokens + final (streams by default)")
  T.eq(evs[1].message.role, "assistant", "role")
  T.eq(evs[1].done, false, "not done")
  assert(evs[1].created_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$"), evs[1].created_at)
  local f = evs[5]
  T.eq(f.done, true, "done")
  T.eq(f.done_reason, "length", "done_reason")
  T.eq(f.eval_count, 4, "eval_count")
  T.eq(f.prompt_eval_count, 5, "prompt_eval_count = ceil(20/4)")
  assert(f.eval_duration % 1 == 0 and f.eval_duration > 10e6, "eval_duration ns: " .. tostring(f.eval_duration))
  for _, k in ipairs{"total_duration", "load_duration", "prompt_eval_duration"} do
    assert(type(f[k]) == "number" and f[k] % 1 == 0, k)
  end
  _, _, body = curl(s.url .. "/api/generate", json.encode{model = "llama3.2", prompt = "hi", stream = false, options = {num_predict = 3}})
  local r = json.decode(body)
  T.eq(r.done, true, "generate done")
  assert(r.response:match("^ %a+ %a+ %a+$"), "response: " .. r.response)
  _, _, body = curl(s.url .. "/api/tags")
  T.eq(json.decode(body).models[1].name, "llama3.2", "tags")
  _, _, body = curl(s.url .. "/api/ps")
  assert(json.decode(body).models[1].size_vram, "ps")
  _, _, body = curl(s.url .. "/api/version")
  assert(json.decode(body).version, "version")
  st, _, body = curl(s.url .. "/api/chat", "{")
  T.eq(st, 400, "bad json")
  assert(type(json.decode(body).error) == "string", "ollama error is a string")
end)

T.case("reasoning: field and <think>", function()
  local s <close> = T.sim{"--decode-tps", "0", "--reasoning", "field", "--reasoning-tokens", "3"}
  local _, _, body = curl(s.url .. "/v1/chat/completions", chat_body{max_tokens = 5, stream = true})
  local evs = sse(body)
  T.eq(#evs, 7, "role + 5 + [DONE]")
  for i = 2, 4 do assert(json.decode(evs[i]).choices[1].delta.reasoning_content, "reasoning " .. i) end
  for i = 5, 6 do assert(json.decode(evs[i]).choices[1].delta.content, "content " .. i) end
  local t <close> = T.sim{"--decode-tps", "0", "--reasoning", "think", "--reasoning-tokens", "4"}
  _, _, body = curl(t.url .. "/v1/chat/completions", chat_body{max_tokens = 6})
  local text = json.decode(body).choices[1].message.content
  assert(text:match("^<think> %a+ %a+</think> %a+ %a+$"), "think text: " .. text)
end)

T.case("benchrun's own client reads every dialect (tokens, usage, sim_ns)", function()
  local http = require("bench.http")
  local cases = {
    {"openai", "/v1/chat/completions", "openai", true},
    {"llama.cpp", "/v1/chat/completions", "openai", false},
    {"llama.cpp", "/completion", "openai", false},
    {"lmstudio", "/api/v0/chat/completions", "openai", true},
    {"ollama", "/api/chat", "ollama", false},
    {"ollama", "/api/generate", "ollama", false},
  }
  for _, c in ipairs(cases) do
    local dialect, path, decode, usage = c[1], c[2], c[3], c[4]
    local s <close> = T.sim{"--dialect", dialect, "--decode-tps", "400", "--reasoning", "think", "--reasoning-tokens", "3"}
    local what = dialect .. " " .. path
    local r = http.request{url = s.url .. path, method = "POST", headers = {["Content-Type"] = "application/json"},
      body = json.encode{messages = {{role = "user", content = "count these bytes"}}, prompt = "count these bytes",
                         max_tokens = 6, n_predict = 6, options = {num_predict = 6}, stream = true,
                         stream_options = usage and {include_usage = true} or nil},
      stream = decode == "ollama" and "ndjson" or "sse", decode = decode, timeout = 10}
    T.eq(r.error, nil, what .. " error")
    T.eq(r.llm.tokens, 6, what .. " tokens")
    T.eq(r.llm.reasoning_events, 3, what .. " reasoning events (<think>, a word, </think>)")
    T.eq(r.llm.content_events, 3, what .. " content events")
    T.eq(r.llm.done, true, what .. " end marker")
    assert(r.llm.sim_lag_max_ms and r.llm.sim_lag_max_ms >= 0 and r.llm.sim_lag_max_ms < 1000,
           what .. " sim_ns lag " .. tostring(r.llm.sim_lag_max_ms))
    if dialect ~= "ollama" and path ~= "/completion" then
      T.eq(json.decode(r.llm.usage).completion_tokens, 6, what .. " usage")
    end
  end
end)

T.done()
