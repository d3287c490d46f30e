-- tools/check-layout.lua: the layout rules of the architecture (issue 14),
-- checked. Run with the built benchrun from the repository root:
--
--   benchrun run tools/check-layout.lua [ROOT] [--edges]
--
-- Fails (exit 1) on:
--   * a `require` cycle among the modules of scripts/ (a lazy require inside
--     a function counts: it is the same dependency, only later);
--   * an edge from the library (scripts/bench/**) to a phase script
--     (phases.*): phases use the library, never the other way round.
-- and on, for every Lua and C file of scripts/, engine/, include/ and tools/:
--   * a file over MAX_LINES lines without a reason at its top: a comment
--     among its first 40 lines that says "long file:" and why;
--   * a function over MAX_FUNCTION lines, unless the comment line just above
--     it says "long function:" and why (a parser's state machine).
-- --edges prints every require edge ("from -> to").
local MAX_LINES, MAX_FUNCTION = 700, 80

local args = {...}
local root, show_edges = ".", false
for _, a in ipairs(args) do
  if a == "--edges" then show_edges = true else root = a end
end

local proc = require("bench.proc")

-- every file under dir whose name ends in one of exts (find, argv only)
local function files_under(dir, exts)
  local r = proc.run{argv = {"find", root .. "/" .. dir, "-type", "f"}, timeout = 30}
  local out = {}
  for path in (r.stdout or ""):gmatch("[^\n]+") do
    for _, e in ipairs(exts) do
      if path:sub(-#e) == e then out[#out + 1] = path:sub(#root + 2) break end
    end
  end
  table.sort(out)
  return out
end

local function read_lines(rel)
  local lines = {}
  for l in io.lines(root .. "/" .. rel) do lines[#lines + 1] = l end
  return lines
end

-- the module a file under scripts/ provides ("bench/backends/init.lua" -> "bench.backends")
local function module_of(rel)
  local m = rel:match("^scripts/(.+)%.lua$")
  if not m then return nil end
  m = m:gsub("/init$", ""):gsub("/", ".")
  return m
end

-- a Lua line without its comment (strings holding "--" are rare enough in
-- require lines to ignore)
local function code_of(line, state)
  if state.block then
    local e = line:find("]]", 1, true)
    if not e then return "" end
    state.block = false
    line = line:sub(e + 2)
  end
  local s = line:find("--", 1, true)
  if s then
    if line:sub(s, s + 3) == "--[[" and not line:find("]]", s, true) then state.block = true end
    line = line:sub(1, s - 1)
  end
  return line
end

-- the modules a Lua file requires by a literal name
local function requires_of(lines)
  local out, seen, state = {}, {}, {}
  for _, line in ipairs(lines) do
    local code = code_of(line, state)
    for name in code:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
      if not seen[name] then seen[name] = true out[#out + 1] = name end
    end
    for name in code:gmatch("pcall%s*%(%s*require%s*,%s*[\"']([%w_%.]+)[\"']") do
      if not seen[name] then seen[name] = true out[#out + 1] = name end
    end
  end
  return out
end

-- functions longer than MAX_FUNCTION lines: {name, first line, length}.
-- Lua: a line that opens a function at indentation I ends at the next line
-- that is `end` at I. C: a line that opens a definition at column 0 ends at
-- the next `}` at column 0.
local function long_functions(rel, lines)
  local out = {}
  local lua = rel:sub(-4) == ".lua"
  for i, line in ipairs(lines) do
    local indent, name
    if lua then
      indent, name = line:match("^(%s*)local function%s+([%w_%.:]+)")
      if not indent then indent, name = line:match("^(%s*)function%s+([%w_%.:]+)") end
      if not indent then
        local ind, lhs = line:match("^(%s*)([%w_%.%[%]\"]+)%s*=%s*function%s*%(")
        if ind then indent, name = ind, lhs end
      end
      if not indent then
        local ind = line:match("^(%s*).-[%(,]%s*function%s*%([^)]*%)%s*$")
        if ind then indent, name = ind, "function (anonymous)" end
      end
    else
      if line:match("^[%a_][%w_%s%*]*[%s%*]([%a_][%w_]*)%s*%([^;]*$") and not line:match("^static%s+const")
         and not line:match("^typedef") and not line:match("^%a+%s*=") then
        name = line:match("([%a_][%w_]*)%s*%(")
        indent = ""
      end
    end
    -- a function opened and closed on one line
    if name and lua and line:match("function%s*[%w_%.:]*%s*%b()%s*.*%send[%s,%)]*$") then name = nil end
    if name then
      local last
      for j = i + 1, #lines do
        local l = lines[j]
        if lua then
          if l:match("^" .. indent .. "end[%s,%)%]};]*") and l:sub(#indent + 1, #indent + 3) == "end"
             and not l:sub(#indent + 4, #indent + 4):match("[%w_]") then last = j break end
        elseif l:match("^}") then last = j break
        elseif l:match("^%S") and not l:match("^{") and not l:match("^%s*$") and j == i + 1 and l:match(";%s*$") then break
        end
      end
      local len = last and (last - i + 1) or 0
      local exempt = i > 1 and lines[i - 1]:lower():find("long function:", 1, true)
      if len > MAX_FUNCTION and not exempt then out[#out + 1] = {name = name, line = i, len = len} end
    end
  end
  return out
end

local function has_reason(lines)
  for i = 1, math.min(40, #lines) do
    if lines[i]:lower():find("long file:", 1, true) then return true end
  end
  return false
end

---------------------------------------------------------------------------

local failures, warnings = {}, {}
local function fail(msg) failures[#failures + 1] = msg end
local function warn(msg) warnings[#warnings + 1] = msg end

-- the require graph of scripts/
local graph, order = {}, {}
for _, rel in ipairs(files_under("scripts", {".lua"})) do
  local m = module_of(rel)
  if m then
    graph[m] = {file = rel, deps = requires_of(read_lines(rel))}
    order[#order + 1] = m
  end
end
table.sort(order)
for _, m in ipairs(order) do
  for _, d in ipairs(graph[m].deps) do
    if show_edges then print(m .. " -> " .. d) end
    if m:match("^bench%.") or m == "bench" then
      if d:match("^phases%.") or d == "phases" then
        fail(string.format("%s (%s) requires %s: the library never requires a phase script", m, graph[m].file, d))
      end
    end
  end
end

-- cycles: depth-first search, a grey module met again closes one
local colour, stack, reported = {}, {}, {}
local function visit(m)
  colour[m] = "grey"
  stack[#stack + 1] = m
  for _, d in ipairs(graph[m].deps) do
    if graph[d] then
      if colour[d] == "grey" then
        local cyc, on = {}, false
        for _, s in ipairs(stack) do
          if s == d then on = true end
          if on then cyc[#cyc + 1] = s end
        end
        cyc[#cyc + 1] = d
        local key = table.concat(cyc, " -> ")
        if not reported[key] then reported[key] = true fail("require cycle: " .. key) end
      elseif not colour[d] then
        visit(d)
      end
    end
  end
  stack[#stack] = nil
  colour[m] = "black"
end
for _, m in ipairs(order) do if not colour[m] then visit(m) end end

-- sizes and function lengths
local sources = files_under("scripts", {".lua"})
for _, dir in ipairs({"engine", "include", "tools"}) do
  for _, f in ipairs(files_under(dir, {".c", ".h", ".lua"})) do sources[#sources + 1] = f end
end
for _, rel in ipairs(sources) do
  local lines = read_lines(rel)
  if #lines > MAX_LINES and not has_reason(lines) then
    fail(string.format("%s: %d lines (over %d) and no reason at its top (a comment saying \"long file:\")",
                         rel, #lines, MAX_LINES))
  end
  for _, f in ipairs(long_functions(rel, lines)) do
    fail(string.format("%s:%d: function %s is %d lines (over %d)", rel, f.line, f.name, f.len, MAX_FUNCTION))
  end
end

for _, w in ipairs(warnings) do io.stdout:write("warning: ", w, "\n") end
for _, f in ipairs(failures) do io.stdout:write("FAIL: ", f, "\n") end
io.stdout:write(string.format("check-layout: %d modules, %d failure%s, %d warning%s\n", #order,
                              #failures, #failures == 1 and "" or "s", #warnings, #warnings == 1 and "" or "s"))
if #failures > 0 then os.exit(1) end
