-- bench.errors: an error is a value with a kind, not a sentence.
--
-- Code that must tell one failure from another asks for its kind
-- (errors.kind_of(e) == "write_failed"), never for words in its message:
-- messages are for people and change; kinds are the contract. An error value
-- is a table {kind = "...", err = "message", ...fields} (as Redis scripting
-- returns {err = "..."}) whose tostring is its message, so printing it, or
-- concatenating it into a sentence, reads as the plain message did. It passes
-- through pcall, coroutines and tasks (task:join, bench.wait) unchanged.
--
-- The interruption (bench.interrupt, Ctrl-C) and the cancellation
-- (bench.cancelled, task:cancel()) are values of the engine; kind_of names
-- them too, so one function classifies every error.
local bench = require("bench")

local errors = {}

local Error = {__name = "bench.error"}

function Error.__tostring(e) return e.err end

-- "stopped: " .. e reads as the message would
function Error.__concat(a, b) return tostring(a) .. tostring(b) end

-- errors.new(kind, message[, fields]) -> an error value. kind: a short word
-- ("write_failed", "timeout"); message: the sentence for people (default:
-- the kind); fields: more facts for the code that handles it (copied in).
function errors.new(kind, message, fields)
  if type(kind) ~= "string" or kind == "" then error("errors.new: kind: expected a non-empty string", 2) end
  if message ~= nil and type(message) ~= "string" then error("errors.new: message: expected a string", 2) end
  if fields ~= nil and type(fields) ~= "table" then error("errors.new: fields: expected a table", 2) end
  local e = {}
  for k, v in pairs(fields or {}) do e[k] = v end
  e.kind, e.err = kind, message or kind
  return setmetatable(e, Error)
end

-- errors.raise(kind, message[, fields]): error(errors.new(...)). A value
-- carries no "file:line:" prefix: the message is what the user reads.
function errors.raise(kind, message, fields)
  error(errors.new(kind, message, fields), 0)
end

-- errors.is_error(v) -> whether v is an error value made by errors.new
function errors.is_error(v)
  return getmetatable(v) == Error
end

-- errors.kind_of(v) -> the kind of any error: an error value's kind;
-- "interrupted" for bench.interrupt; "cancelled" for bench.cancelled; a plain
-- table's string `kind` field ({err = ..., kind = ...} from elsewhere);
-- "error" for anything else (a message string: it has no kind); nil for nil.
function errors.kind_of(v)
  if v == nil then return nil end
  if getmetatable(v) == Error then return v.kind end
  if bench.is_interrupt(v) then return "interrupted" end
  if bench.is_cancel(v) then return "cancelled" end
  if type(v) == "table" and type(rawget(v, "kind")) == "string" then return rawget(v, "kind") end
  return "error"
end

-- errors.is(v, kind) -> whether v is an error of that kind
function errors.is(v, kind)
  return v ~= nil and errors.kind_of(v) == kind
end

-- errors.message(v) -> the text for people: an error value's message, a
-- string as is, a plain table's `err`, else tostring(v).
function errors.message(v)
  if getmetatable(v) == Error then return v.err end
  if type(v) == "string" then return v end
  if type(v) == "table" and getmetatable(v) == nil and type(rawget(v, "err")) == "string" then return rawget(v, "err") end
  return tostring(v)
end

return errors
