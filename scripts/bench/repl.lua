-- The REPL's helpers (engine/repl.c): the pretty-printer of a line's
-- results (`benchrun -e` uses it too) and the completion candidates.
local M = {}
local null = require('bench.yaml').null
local MAX_DEPTH, MAX_ITEMS, MAX_LINE = 4, 40, 78
local keywords = {'and','break','do','else','elseif','end','false','for','function',
  'goto','if','in','local','nil','not','or','repeat','return','then','true','until','while'}
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = {['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r', ['"'] = '\\"', ['\\'] = '\\\\'}
    return named[c] or string.format('\\%03d', c:byte())
  end) .. '"'
end
local function scalar(v)
  if type(v) == 'string' then return quote(v) end
  if v == nil then return 'nil' end
  if v == null then return 'null' end
  return tostring(v)
end
local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == 'number' or ta == 'string' then return a < b end
  return tostring(a) < tostring(b)
end
local function render(v, depth, seen, indent)
  if type(v) ~= 'table' then return scalar(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  if seen[v] then return '<cycle: ' .. tostring(v) .. '>' end
  if next(v) == nil then return '{}' end
  if depth >= MAX_DEPTH then return '{...}' end
  seen[v] = true
  local parts, n, shown = {}, #v, 0
  local total = 0
  for _ in pairs(v) do total = total + 1 end
  for i = 1, n do
    if shown >= MAX_ITEMS then break end
    parts[#parts + 1] = render(v[i], depth + 1, seen, indent .. '  ')
    shown = shown + 1
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  for _, k in ipairs(keys) do
    if shown >= MAX_ITEMS then break end
    local ks = (type(k) == 'string' and k:match('^[%a_][%w_]*$')) and k or ('[' .. scalar(k) .. ']')
    parts[#parts + 1] = ks .. ' = ' .. render(v[k], depth + 1, seen, indent .. '  ')
    shown = shown + 1
  end
  if total > shown then parts[#parts + 1] = '... (' .. (total - shown) .. ' more)' end
  seen[v] = nil
  local one = '{' .. table.concat(parts, ', ') .. '}'
  if #one + #indent <= MAX_LINE and not one:find('\n') then return one end
  return '{\n' .. indent .. '  ' .. table.concat(parts, ',\n' .. indent .. '  ') .. '\n' .. indent .. '}'
end
-- M.show(...): the text the REPL prints for a line's results.
function M.show(...)
  local out = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    out[i] = type(v) == 'string' and v or render(v, 0, {}, '')
  end
  return table.concat(out, '\t')
end
local function fields(v, methods_only, into)
  local seen = {}
  for _ = 1, 8 do
    if v == nil or seen[v] then break end
    seen[v] = true
    if type(v) == 'table' then
      for k, x in next, v do
        if type(k) == 'string' and (not methods_only or type(x) == 'function') then into[k] = true end
      end
    end
    local mt = getmetatable(v)
    local idx = type(mt) == 'table' and rawget(mt, '__index') or nil
    if type(idx) ~= 'table' then break end
    v = idx
  end
end
-- M.complete(word): candidates for a word such as `cl`, `clock.s`, `w:el`.
function M.complete(word)
  local base, sep, part = word:match('^(.-)([.:])([%w_]*)$')
  local names, value = {}, nil
  if not base then
    part, base, sep = word, '', ''
    for _, k in ipairs(keywords) do names[k] = true end
    fields(_G, false, names)
  else
    value = _G
    for name in (base .. '.'):gmatch('([^.:]*)[.:]') do
      if not name:match('^[%a_][%w_]*$') then return {} end
      local ok, x = pcall(function() return value[name] end)
      if not ok or x == nil then return {} end
      value = x
    end
    fields(value, sep == ':', names)
  end
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #part) == part and k:match('^[%a_][%w_]*$') then out[#out + 1] = base .. sep .. k end
  end
  table.sort(out)
  return out
end
return M
