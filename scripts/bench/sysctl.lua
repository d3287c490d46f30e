-- bench.sysctl: a plan's sysctl values, cell by cell, with restore
-- (simulated in a dry run). bench.sys journals every original value on disk
-- before it changes one (engine/sys.c); that journal is the one record of
-- originals: "default" puts back the journal's original, and the end of the
-- run (or the next benchrun, after a crash) undoes the journal. This file
-- keeps only what the run asked for and a log for the report.
local sys = require("bench.sys")

local M = {}

local Sysctl = {}
Sysctl.__index = Sysctl

-- M.new(dry, ceilings) -> sysctl: ceilings = the plan's safety.max_sysctl
function M.new(dry, ceilings)
  return setmetatable({dry = dry, touched = {}, log = {}, ceilings = ceilings or {}, current = {}}, Sysctl)
end

local stamp = require("bench.util").utc_iso

-- The original of a name this run changed, from bench.sys's journal: the
-- journal holds one entry per name, and one of a name this run set is this
-- run's (bench.sys refuses a name another live benchrun holds, and takes
-- over the entry of one that is gone, with its original). -> value | nil
-- (never changed: nothing to put back) | nil, why (unreadable journal).
local function original(name)
  local entries, why = sys.journal()
  if not entries then return nil, why end
  for _, e in ipairs(entries) do
    if e.name == name then return e.original end
  end
  return nil
end

-- set(name, value) -> true or nil, why. "default" puts back the value found
-- before the plan changed it (or leaves it alone if it never did). The log
-- entry of a change that failed says so (ok = false, error): nothing may
-- call it applied.
function Sysctl:set(name, value)
  if self.current[name] == value then return true end
  local max = self.ceilings[name]
  if value ~= "default" and math.type(max) == "integer" and math.type(value) == "integer" and value > max then
    return nil, string.format("sysctl %s=%d is above the plan's safety.max_sysctl (%d)", name, value, max)
  end
  local entry = {name = name, value = value, simulated = self.dry or nil, t = stamp()}
  self.log[#self.log + 1] = entry
  local function failed(why)
    entry.ok, entry.error = false, why
    self.current[name] = nil   -- unknown: the next set tries again
    return nil, why
  end
  self.current[name] = value
  if self.dry then return true end
  if value == "default" then
    if not self.touched[name] then return true end
    local orig, jwhy = original(name)
    if orig == nil then
      if jwhy then return failed(string.format("sysctl %s: cannot read its original: %s", name, tostring(jwhy))) end
      return true
    end
    local ok, why = sys.sysctl_set(name, orig)
    if not ok then return failed(string.format("sysctl %s: cannot restore %s: %s", name, tostring(orig), tostring(why))) end
    return true
  end
  if not self.touched[name] then
    -- a name that cannot be read cannot be journaled: said before trying
    local now, why = sys.sysctl_get(name)
    if now == nil then return failed(string.format("sysctl %s: cannot read it: %s", name, tostring(why))) end
    self.touched[name] = true
  end
  local ok, why = sys.sysctl_set(name, value)
  if not ok then return failed(string.format("sysctl %s=%s: %s", name, tostring(value), tostring(why))) end
  return true
end

-- apply(wanted) -> in_effect | nil, why: a cell runs with exactly its sysctl
-- values; every other name this run changed goes back to its original
-- first (a value set for one cell must not leak into the next). in_effect:
-- {name = value} of every name this run has touched, as it now is ("default"
-- for an original whose value is not known: a dry run), for the cell record.
function Sysctl:apply(wanted)
  wanted = wanted or {}
  local names = {}
  for k in pairs(self.current) do if wanted[k] == nil then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local ok, why = self:set(k, "default")
    if not ok then return nil, why end
  end
  local keys = {}
  for k in pairs(wanted) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local ok, why = self:set(k, wanted[k])
    if not ok then return nil, why end
  end
  local in_effect = {}
  for k, v in pairs(self.current) do
    -- an original is named by its value where it is known (not in a dry run)
    in_effect[k] = v == "default" and not self.dry and self.touched[k] and original(k) or v
  end
  return in_effect
end

-- restore() puts every changed value back (bench.sys's journal).
function Sysctl:restore()
  if self.dry then
    for name in pairs(self.current) do
      if self.current[name] ~= "default" then
        self.log[#self.log + 1] = {name = name, value = "default", simulated = true, restore = true}
      end
    end
    self.current = {}
    return true
  end
  -- nothing changed by this run: nothing to put back (and a journal that
  -- cannot be read, which bench.sys already warned about, fails no plan
  -- that never touched a sysctl)
  if next(self.touched) == nil then
    self.current = {}
    return true
  end
  -- bench.sys journaled every original value as it changed it: restore_all
  -- puts them back (and says which it could not)
  local errs = {}
  local ok, res = pcall(sys.restore_all)
  if not ok then errs[#errs + 1] = "sys.restore_all: " .. tostring(res)
  elseif type(res) == "table" then
    for _, e in ipairs(res) do
      self.log[#self.log + 1] = {name = e.name, value = e.value, restore = true, ok = e.ok ~= false, error = e.error,
                                 t = stamp()}
      if e.ok == false then errs[#errs + 1] = string.format("%s: %s", tostring(e.name), tostring(e.error)) end
    end
  end
  self.touched, self.current = {}, {}
  if #errs > 0 then return nil, table.concat(errs, "; ") end
  return true
end

return M
