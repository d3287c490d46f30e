-- bench.phase: phase scripts as the library sees them (docs/phases.md).
-- A plan names its phase script (`script: phases/compare.lua`); the runner
-- loads it by that path and calls its hooks (labels, prepare, after_cell,
-- finish). The report finds the script of a phase by the phase's name
-- (scripts/phases/<phase>.lua) and asks its `report` hook for the sections
-- and findings only that phase knows. The library never `require`s a phase
-- script: it loads the file the plan or the phase names, as a plug-in.
local M = {}

-- M.load(path) -> the script's table ({} for no path); errors name the file.
function M.load(path)
  if not path then return {} end
  local chunk, err = loadfile(path)
  if not chunk then error("phase script: " .. err, 0) end
  local s = chunk()
  if type(s) ~= "table" then error(path .. ": expected the phase script to return a table", 0) end
  return s
end

local by_name_cache = {}

-- M.by_name(phase) -> the script of that phase (scripts/phases/<phase>.lua)
-- or nil when there is none; loaded once.
function M.by_name(name)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") or not bench or not bench.scripts_dir then return nil end
  local cached = by_name_cache[name]
  if cached ~= nil then return cached or nil end
  local path = bench.scripts_dir .. "/phases/" .. name .. ".lua"
  local f = io.open(path, "r")
  if not f then by_name_cache[name] = false return nil end
  f:close()
  local s = M.load(path)
  by_name_cache[name] = s
  return s
end

-- The phases a report covers: its own (ctx.phase), then those of the runs
-- an analysis merged (summary.runs), each once.
local function phases_of(data, ctx)
  local names, seen = {}, {}
  local function add(p) if type(p) == "string" and not seen[p] then seen[p] = true names[#names + 1] = p end end
  add(ctx.phase)
  for _, r in ipairs(type(data.summary.runs) == "table" and data.summary.runs or {}) do add(r.phase) end
  return names
end

-- M.report_parts(data, an, ctx) -> {findings = {text...}, sections =
-- {{after = SECTION, lines = {...}}...}, answered = bool, analysis =
-- {key = value}}: what the `report` hooks of the report's phases add
-- (docs/phases.md); `analysis` goes into summary.json's analysis, the first
-- hook to name a key keeps it.
function M.report_parts(data, an, ctx)
  local parts = {findings = {}, sections = {}, answered = false, analysis = {}}
  for _, name in ipairs(phases_of(data, ctx)) do
    local s = M.by_name(name)
    if s and type(s.report) == "function" then
      local ok, got = pcall(s.report, an, ctx)
      if not ok then error(string.format("phase script phases/%s.lua: report: %s", name, tostring(got)), 0) end
      if type(got) == "table" then
        for _, f in ipairs(got.findings or {}) do parts.findings[#parts.findings + 1] = f end
        for _, sec in ipairs(got.sections or {}) do parts.sections[#parts.sections + 1] = sec end
        parts.answered = parts.answered or got.answered == true
        if type(got.analysis) == "table" then
          for k, v in pairs(got.analysis) do
            if parts.analysis[k] == nil then parts.analysis[k] = v end
          end
        end
      end
    end
  end
  return parts
end

return M
