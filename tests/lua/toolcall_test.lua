-- Tool calls, structured output and the reasoning budget (issue 16 items 5
-- and 6) against `benchrun sim` in every dialect's wire format: the call
-- decoded in C (name, arguments, time to its first token), checked as JSON
-- and against the offered schema; arguments split mid-UTF-8 and invalid
-- JSON noted, never a crash; reasoning that uses up max_tokens flagged and
-- counted per cell; the workload kind and the report's section.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local openai = require("bench.openai")
local json = require("cjson")
local summary = require("bench.summary")
local workload = require("bench.workload")
local jsonschema = require("bench.jsonschema")

local WEATHER = {type = "function", ["function"] = {name = "get_weather", parameters = {
  type = "object", required = {"city"},
  properties = {city = {type = "string"}, unit = {type = "string", enum = {"celsius", "fahrenheit"}},
                days = {type = "integer"}}}}}

local DIALECTS = {
  {sim = "openai", client = "vllm", finish = "tool_calls"},
  {sim = "llama.cpp", client = "llama.cpp", finish = "tool_calls"},
  {sim = "lmstudio", client = "lmstudio", finish = "tool_calls"},
  {sim = "lmstudio", client = "lmstudio-v0", finish = "tool_calls"},
  {sim = "ollama", client = "ollama", finish = "tool_calls", whole = true},
  {sim = "ollama", client = "ollama-native", finish = "stop", whole = true},
}

local function check_call(rec, what)
  T.eq(rec.error, nil, what .. ": error")
  T.eq(rec.ok, true, what .. ": ok")
  T.eq(#rec.tool_calls, 1, what .. ": one call")
  local c = rec.tool_calls[1]
  T.eq(c.name, "get_weather", what .. ": name")
  T.eq(c.arguments_json, true, what .. ": arguments parse")
  T.eq(c.schema_ok, true, what .. ": arguments match the schema")
  local args = json.decode(c.arguments)
  T.eq(args.city, "Málaga ☀", what .. ": arguments assembled byte for byte")
  T.eq(args.unit, "celsius", what .. ": enum value")
  T.eq(args.days, 3, what .. ": integer value")
  T.eq(rec.text, "", what .. ": no text")
  T.eq(rec.tool_args_invalid, nil, what .. ": not flagged")
end

for _, d in ipairs(DIALECTS) do
  T.case("tool call, " .. d.client .. " (sim " .. d.sim .. ")", function()
    local s <close> = T.sim{"--dialect", d.sim, "--decode-tps", "2000"}
    local c = openai.client{base_url = s.url, dialect = d.client, model = "sim-model"}
    local rec = c:chat{prompt = "What is the weather in Málaga?", max_tokens = 64, extra = {tools = {WEATHER}}}
    check_call(rec, d.client)
    T.eq(rec.finish_reason, d.finish, "finish_reason")
    assert(rec.ttftc_ms and rec.ttftc_ms > 0, "time to the first tool-call token")
    T.eq(rec.ttft_ms, rec.ttftc_ms, "the first tool-call token is the answer's first token")
    assert(rec.tool_events >= 1, "tool-call token events")
    if d.whole then T.eq(rec.tool_events, 1, "the whole call in one event")
    else assert(rec.tool_events > 5, "arguments streamed in pieces: " .. rec.tool_events) end
    local whole = c:chat{prompt = "What is the weather in Málaga?", max_tokens = 64, stream = false,
                         extra = {tools = {WEATHER}}}
    check_call(whole, d.client .. " non-streamed")
  end)
end

T.case("arguments split inside UTF-8 characters are joined and noted", function()
  for _, dialect in ipairs{"llama.cpp", "openai"} do
    local s <close> = T.sim{"--dialect", dialect, "--decode-tps", "0", "--tool-args", "split-utf8"}
    local c = openai.client{base_url = s.url, dialect = dialect, model = "sim-model"}
    local rec = c:chat{prompt = "weather?", max_tokens = 64, extra = {tools = {WEATHER}}}
    check_call(rec, dialect .. " split")
    T.eq(rec.tool_args_split_utf8, true, "flagged")
    T.eq(rec.tool_calls[1].split_utf8, 2, "both characters were cut")
    assert(rec.tool_call_note:find("inside a UTF-8 character", 1, true), rec.tool_call_note)
  end
end)

T.case("invalid JSON arguments: a note, the record stays ok", function()
  for _, dialect in ipairs{"llama.cpp", "openai", "lmstudio"} do
    local s <close> = T.sim{"--dialect", dialect, "--decode-tps", "0", "--tool-args", "invalid"}
    local c = openai.client{base_url = s.url, dialect = dialect, model = "sim-model"}
    local rec = c:chat{prompt = "weather?", max_tokens = 64, extra = {tools = {WEATHER}}}
    T.eq(rec.ok, true, dialect .. ": ok")
    T.eq(rec.tool_args_invalid, true, dialect .. ": flagged")
    T.eq(rec.tool_calls[1].arguments_json, false, dialect .. ": arguments_json")
    assert(rec.tool_calls[1].arguments_error, "why")
    assert(rec.tool_call_note:find("not a JSON object", 1, true), rec.tool_call_note)
    local sm = summary.of({rec})
    T.eq(sm.flags.tool_args_invalid, 1, "counted per cell")
    T.eq(sm.tools.args_json, 0, "no call with JSON arguments")
  end
end)

T.case("arguments that miss the schema's required property", function()
  local s <close> = T.sim{"--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = "vllm", model = "sim-model"}
  local tool = json.decode(json.encode(WEATHER))
  tool["function"].parameters.required = {"city", "zip"}
  local rec = c:chat{prompt = "weather?", max_tokens = 64, extra = {tools = {tool}}}
  T.eq(rec.schema_mismatch, true, "flagged")
  T.eq(rec.tool_calls[1].schema_ok, false, "schema_ok")
  T.eq(rec.tool_calls[1].schema_error, "$: missing required property \"zip\"", "where and why")
end)

T.case("structured output checked against response_format", function()
  local s <close> = T.sim{"--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = "vllm", model = "sim-model"}
  local rf = {type = "json_schema", json_schema = {name = "w", schema = WEATHER["function"].parameters}}
  local rec = c:chat{prompt = "weather?", max_tokens = 8, extra = {response_format = rf}}
  -- the simulator answers words, not JSON: a mismatch, said, not an error
  T.eq(rec.ok, true, "ok")
  T.eq(rec.structured.json, false, "not JSON")
  T.eq(rec.schema_mismatch, true, "flagged")
end)

T.case("reasoning that uses up max_tokens", function()
  local s <close> = T.sim{"--decode-tps", "2000", "--reasoning", "field", "--reasoning-tokens", "4",
                          "--reasoning-exhaust"}
  local c = openai.client{base_url = s.url, dialect = "vllm", model = "sim-model"}
  local rec = c:chat{prompt = "think hard", max_tokens = 12}
  T.eq(rec.ok, true, "ok")
  T.eq(rec.finish_reason, "length", "finish_reason")
  T.eq(rec.reasoning_exhausted, true, "reasoning_exhausted")
  assert(rec.reasoning_exhausted_detail:find("before any answer", 1, true), "detail")
  T.eq(rec.ttft_ms, nil, "no answer token")
  assert(rec.ttft_any_ms and rec.ttft_any_ms > 0, "the first token of any kind")
  local whole = c:chat{prompt = "think hard", max_tokens = 12, stream = false}
  T.eq(whole.reasoning_exhausted, true, "non-streamed too")

  local s2 <close> = T.sim{"--decode-tps", "2000", "--reasoning", "field", "--reasoning-tokens", "4"}
  local c2 = openai.client{base_url = s2.url, dialect = "vllm", model = "sim-model"}
  local ok = c2:chat{prompt = "think a little", max_tokens = 20}
  T.eq(ok.reasoning_exhausted, nil, "an answer came")
  assert(ok.ttft_any_ms < ok.ttft_ms, "first token (reasoning) before the answer's")
  assert(ok.answer_decode_tps and ok.answer_decode_tps > 0, "answer-only decode rate")
  local sm = summary.of({rec, ok, whole})
  T.eq(sm.flags.reasoning_exhausted, 2, "counted per cell")
  assert(sm.ttft_any_ms and sm.answer_decode_tps, "answer-only distributions beside the totals")
end)

-- Hostile and captured servers (tests/helpers/rawserver), both transports.
local HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
local FIX = os.getenv("BENCHRUN_TESTS") .. "/fixtures/llama-server/"
local function ev(delta, finish)
  return "data: " .. json.encode({choices = {{index = 0, delta = delta, finish_reason = finish}}}) .. "\n\n"
end
local function ask(transport, bytes, args)
  local srv <close> = T.raw{"expect-request", T.send_step(bytes), "close"}
  local c = openai.client{base_url = srv.url, model = "m", transport = transport}
  local call = {prompt = "weather?", max_tokens = 32, extra = {tools = {WEATHER}}}
  for k, v in pairs(args or {}) do call[k] = v end
  return c:chat(call)
end
local function piece(args) return ev({tool_calls = {{index = 0, ["function"] = {arguments = args}}}}) end

for _, tr in ipairs{"native", "curl"} do
  T.case(tr .. ": a stream of only tool-call deltas is a generation (was empty_response)", function()
    local r = ask(tr, HEAD .. ev({role = "assistant", content = json.null}) ..
      ev({tool_calls = {{index = 0, id = "c1", type = "function", ["function"] = {name = "get_weather", arguments = ""}}}}) ..
      piece("{\"city\": \"Par") .. piece("is\"}") .. ev({}, "tool_calls") .. "data: [DONE]\n\n")
    T.eq(r.error, nil, "error")
    T.eq(r.ok, true, "ok")
    assert(r.ttft_ms and r.ttftc_ms, "ttft from the first tool-call token")
    T.eq(r.tool_calls[1].id, "c1", "id")
    T.eq(r.tool_calls[1].arguments, "{\"city\": \"Paris\"}", "arguments assembled")
    T.eq(r.output_tokens, 3, "tool-call token events counted")
  end)

  T.case(tr .. ": a malformed tool-call event is bad_json, never a crash", function()
    local r = ask(tr, HEAD .. ev({tool_calls = {{index = 0, ["function"] = {name = "f", arguments = ""}}}}) ..
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\"}}\n\n" ..
      piece(42) .. "data: [DONE]\n\n")
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "bad_json", "error")
    T.eq(r.tool_calls[1].arguments, "", "the malformed event added nothing")
  end)

  T.case(tr .. ": llama-server's captured tool call (non-streamed)", function()
    local body = assert(T.read_file(FIX .. "tools-chat.json"))
    local r = ask(tr, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body ..
                      "\r\nConnection: close\r\n\r\n" .. body, {stream = false})
    T.eq(r.ok, true, "ok")
    T.eq(r.finish_reason, "tool_calls", "finish_reason")
    T.eq(r.tool_calls[1].name, "get_weather", "name")
    T.eq(r.tool_calls[1].arguments, "{\"city\":\"Málaga\"}", "arguments")
    T.eq(r.tool_calls[1].id, "", "llama-server's empty id kept as sent")
    T.eq(r.tool_calls[1].schema_ok, true, "schema")
  end)

  T.case(tr .. ": llama-server's captured refusal of streamed tools", function()
    local head = assert(T.read_file(FIX .. "tools-stream.headers"))
    local body = assert(T.read_file(FIX .. "tools-stream.json"))
    local r = ask(tr, head:gsub("Keep%-Alive[^\n]*\n", "") .. body)
    T.eq(r.ok, false, "ok")
    T.eq(r.error, "http_500", "error")
    T.eq(r.error_detail, "Cannot use tools with stream", "the server's words")
  end)
end

T.case("bench.jsonschema: the subset", function()
  local schema = {type = "object", required = {"a"}, additionalProperties = false,
                  properties = {a = {type = "integer"}, b = {type = {"string", "null"}},
                                c = {type = "array", items = {enum = {1, 2}}}}}
  T.eq(jsonschema.check({a = 1, b = json.null, c = {1, 2}}, schema), true, "valid")
  local _, why = jsonschema.check({a = 1.5}, schema)
  T.eq(why, "$.a: expected integer, got number", "integer")
  _, why = jsonschema.check({a = 1, c = {1, 3}}, schema)
  T.eq(why, "$.c[1]: 3 is not one of the enum's values", "enum in items")
  _, why = jsonschema.check({a = 1, d = true}, schema)
  T.eq(why, "$: property \"d\" is not allowed", "additionalProperties")
  _, why = jsonschema.check({}, schema)
  T.eq(why, "$: missing required property \"a\"", "required")
  T.eq(table.concat(jsonschema.unchecked({type = "string", pattern = "x", minLength = 1}), ","), "minLength,pattern",
       "what is not checked is listed")
end)

T.case("workload.tools and a plan that runs it against the simulator", function()
  local w = workload.tools()
  local r = w:next(1)
  T.eq(r.extra.tools[1]["function"].name, "get_weather", "its own function first")
  T.eq(#r.extra.tools, 4, "every function offered")
  local js = workload.tools{mode = "json_schema"}:next(2)
  T.eq(js.extra.response_format.type, "json_schema", "structured output")
  T.checkerr("mode", workload.tools, {mode = "x"})
  T.eq(workload.from({tools = true}).kind, "tools", "workload.from")
  -- a bad value in a plan is an error naming the key
  local P = require("bench.plan")
  local bad = T.tmpdir() .. "/bad.yaml"
  local f = assert(io.open(bad, "w"))
  f:write("name: bad\nserver: {backend: sim}\nworkload:\n  tools: {mode: yaml}\n")
  f:close()
  local plan, errs = P.load(bad, {})
  T.eq(plan, nil, "rejected")
  assert(table.concat(errs, "\n"):find("workload.tools", 1, true), table.concat(errs, "\n"))

  local dir = T.tmpdir()
  local rc, res, rdir = T.run_plan(dir, [[
name: tools
server: {backend: sim, args: [--tool-args, split-utf8]}
workload:
  tools: {mode: tools}
requests: 4
dry_run: {decode_tps: 2000}
]])
  T.eq(rc, 0, "the plan ran")
  local cell = res.cells[1]
  T.eq(cell.summary.tools.answers, 4, "four answers with a call")
  T.eq(cell.summary.tools.args_json, 4, "their arguments parse")
  T.eq(cell.summary.flags.tool_args_split_utf8 ~= nil, true, "split pieces counted")
  local report = T.read_file(rdir .. "/report.md")
  assert(report and report:find("## Tool calls, structured output and reasoning budget", 1, true), "report section")
  assert(report:find("tool arguments split mid-UTF-8", 1, true), "flag in the warnings")
end)

T.done()
