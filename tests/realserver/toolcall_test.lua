-- Tool calls and structured output against a real llama-server (issue 16,
-- item 5), started with --jinja. What the tiny random-weight model can do:
-- it completes a call or a JSON answer only when the grammar leaves it no
-- choice (an enum for every string), so the schemas here are such. The
-- snapshot (b4748) answers a call without streaming only ("Cannot use tools
-- with stream"); streamed tool-call deltas are tested against the simulator
-- (tests/lua/toolcall_test.lua) in later llama.cpp's wire format.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local R = dofile(os.getenv("BENCHRUN_TESTS") .. "/realserver/rslib.lua")
local rs = R.setup()
local openai, json = require("bench.openai"), require("cjson")
local summary = require("bench.summary")

local srv <close> = R.start(rs, "tiny.gguf", {"-c", "1024", "--jinja"})
local c = openai.client{base_url = srv.base_url, dialect = srv.dialect, model = srv.model}

-- this snapshot requires a description (else 500 "Failed to parse tools")
local WEATHER = {type = "function", ["function"] = {name = "get_weather", description = "Get the weather",
  parameters = {type = "object", required = {"city"}, properties = {city = {type = "string", enum = {"Málaga"}}}}}}

T.case("a tool call, not streamed: name, arguments, schema", function()
  local rec = c:chat{prompt = "What is the weather in Málaga?", max_tokens = 80, stream = false,
                     extra = {tools = {WEATHER}, tool_choice = "required", temperature = 0}}
  T.eq(rec.error, nil, "error: " .. tostring(rec.error_detail))
  T.eq(rec.finish_reason, "tool_calls", "finish_reason")
  T.eq(#rec.tool_calls, 1, "one call")
  local call = rec.tool_calls[1]
  T.eq(call.name, "get_weather", "name")
  T.eq(json.decode(call.arguments).city, "Málaga", "arguments")
  T.eq(call.arguments_json, true, "arguments parse")
  T.eq(call.schema_ok, true, "arguments match the schema")
  T.eq(rec.text, "", "no text (content null)")
  T.eq(summary.of({rec}).tools.args_json, 1, "counted")
end)

T.case("tools with stream: the server's refusal is the record's error", function()
  local rec = c:chat{prompt = "weather?", max_tokens = 16, extra = {tools = {WEATHER}}}
  T.eq(rec.ok, false, "ok")
  T.eq(rec.error, "http_500", "error")
  T.eq(rec.error_detail, "Cannot use tools with stream", "the server's words")
end)

T.case("structured output, streamed: JSON that matches the schema", function()
  local schema = {type = "object", required = {"city", "days"}, additionalProperties = false,
                  properties = {city = {type = "string", enum = {"Paris", "Rome"}}, days = {type = "integer", enum = {3}}}}
  -- this snapshot's form of structured output (it ignores type json_schema)
  local rec = c:chat{prompt = "weather?", max_tokens = 80,
                     extra = {response_format = {type = "json_object", schema = schema}, temperature = 0}}
  T.eq(rec.error, nil, "error: " .. tostring(rec.error_detail))
  T.eq(rec.finish_reason, "stop", "the grammar ended it")
  T.eq(rec.structured.json, true, "the answer parses: " .. tostring(rec.text))
  T.eq(rec.structured.schema_ok, true, "and matches: " .. tostring(rec.structured.error))
  T.eq(rec.schema_mismatch, nil, "not flagged")
  assert(rec.ttft_ms and rec.ttft_ms > 0, "ttft")
end)

T.done()
