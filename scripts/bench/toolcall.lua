-- bench.toolcall: the tool calls and structured output of one answer, and
-- the reasoning budget, checked into its record (docs/openai.md, "Tool calls
-- and structured output", "Reasoning budget"). bench.openai calls these
-- once per answer:
--
--   toolcall.fill(rec, calls, request)   -- calls: r.llm.tool_calls (streamed, decoded in C)
--                                        -- or message.tool_calls (a whole answer)
--   toolcall.reasoning(rec)              -- reasoning_exhausted
--
-- request: what the call sent ({tools = ..., response_format = ...,
-- format = ...}, the body's extra fields); the schemas come from there.
-- Nothing here raises for what a server sent: a malformed call is a note.
local json = require("cjson")
local jsonschema = require("bench.jsonschema")

local M = {}

-- The parameters schema of each function the request offered, by name.
local function offered(request)
  local by_name = {}
  for _, t in ipairs(type(request) == "table" and type(request.tools) == "table" and request.tools or {}) do
    local f = type(t) == "table" and (t["function"] or t)
    if type(f) == "table" and type(f.name) == "string" then
      by_name[f.name] = type(f.parameters) == "table" and f.parameters or false
    end
  end
  return by_name
end

-- The schema structured output asked for: OpenAI's response_format
-- {type = "json_schema", json_schema = {schema}}, llama.cpp's
-- {type = "json_object", schema}, or Ollama's format = {schema}.
local function output_schema(request)
  if type(request) ~= "table" then return nil end
  local rf = request.response_format
  if type(rf) == "table" then
    if rf.type == "json_schema" and type(rf.json_schema) == "table" then
      return type(rf.json_schema.schema) == "table" and rf.json_schema.schema or {}
    end
    if rf.type == "json_object" then return type(rf.schema) == "table" and rf.schema or {} end
  end
  if type(request.format) == "table" then return request.format end
  if request.format == "json" then return {} end
  return nil
end

local function note(rec, text)
  rec.tool_call_note = rec.tool_call_note and (rec.tool_call_note .. "; " .. text) or text
end

-- One call's arguments: parsed, and checked against its function's schema.
local function check_call(rec, c, i, schemas)
  local label = string.format("tool call %d (%s)", i, c.name or "no name")
  if c.split_utf8 and c.split_utf8 > 0 then
    rec.tool_args_split_utf8 = true
    note(rec, string.format("%s: %d argument piece(s) ended inside a UTF-8 character (joined before decoding)",
                            label, c.split_utf8))
  end
  if not utf8.len(c.arguments) then
    note(rec, label .. ": its arguments are not valid UTF-8")
  end
  local ok, v = pcall(json.decode, c.arguments ~= "" and c.arguments or "{}")
  c.arguments_json = ok and type(v) == "table"
  if not c.arguments_json then
    rec.tool_args_invalid = true
    c.arguments_error = ok and ("not a JSON object: " .. type(v)) or tostring(v):gsub("^.-: ", "")
    note(rec, string.format("%s: its arguments are not a JSON object (%s)", label, c.arguments_error))
    return
  end
  if c.name == nil then return end
  local schema = schemas[c.name]
  if schema == nil then
    if next(schemas) then
      c.schema_ok, c.schema_error = false, "the request offered no function of this name"
      rec.schema_mismatch = true
      note(rec, label .. ": the request offered no function of this name")
    end
    return
  end
  if schema == false then return end
  local sok, why = jsonschema.check(v, schema)
  c.schema_ok, c.schema_error = sok, why
  if not sok then
    rec.schema_mismatch = true
    note(rec, label .. ": arguments do not match its schema: " .. why)
  end
end

-- toolcall.fill(rec, calls, request): rec.tool_calls = {{index?, id?, name,
-- arguments (text), arguments_json, arguments_error?, schema_ok?,
-- schema_error?, split_utf8?}}, the flags tool_args_invalid,
-- tool_args_split_utf8 and schema_mismatch, tool_call_note (why), and for
-- structured output rec.structured = {json, schema_ok?, error?}.
function M.fill(rec, calls, request)
  local schemas = offered(request)
  if type(calls) == "table" and #calls > 0 then
    local list = {}
    for i, raw in ipairs(calls) do
      local f = type(raw["function"]) == "table" and raw["function"] or raw
      local args = f.arguments
      if type(args) == "table" then args = json.encode(args)    -- Ollama's whole calls: an object
      elseif type(args) ~= "string" then args = "" end
      local c = {index = math.tointeger(raw.index), id = type(raw.id) == "string" and raw.id or nil,
                 name = type(f.name) == "string" and f.name or raw.name, arguments = args,
                 split_utf8 = raw.split_utf8 ~= 0 and raw.split_utf8 or nil}
      if raw.bad_escape then note(rec, string.format("tool call %d: a bad escape in its arguments", i)) end
      check_call(rec, c, i, schemas)
      list[i] = c
    end
    rec.tool_calls = list
  end
  local schema = output_schema(request)
  if schema and not rec.tool_calls and not rec.error then
    local text = rec.text or ""
    local ok, v = pcall(json.decode, text)
    local s = {json = ok and type(v) == "table"}
    if not s.json then
      s.error = text == "" and "the answer is empty" or ("not a JSON object: " .. (ok and type(v) or tostring(v):gsub("^.-: ", "")))
    else
      s.schema_ok, s.error = jsonschema.check(v, schema)
    end
    if s.json == false or s.schema_ok == false then
      rec.schema_mismatch = true
      rec.structured_note = s.error
    end
    local left = jsonschema.unchecked(schema)
    if #left > 0 then s.unchecked = table.concat(left, ", ") end
    rec.structured = s
  end
end

-- toolcall.reasoning(rec): the reasoning used up max_tokens before any answer
-- (finish_reason "length", reasoning but no text and no tool call).
function M.reasoning(rec)
  if rec.finish_reason == "length" and rec.reasoning and (rec.text or "") == "" and not rec.tool_calls then
    rec.reasoning_exhausted = true
    rec.reasoning_exhausted_detail = string.format("max_tokens ran out in the reasoning (%s reasoning token(s)), "
      .. "before any answer", tostring(rec.reasoning_tokens or "?"))
  end
end

return M
