-- Phase 1 (environment setup): is the server reachable, which versions run,
-- what the machine is. One short request per server proves the API answers;
-- the host facts (sys.info) and the server's version and model list go into
-- env.json and the report's notes.
local common = require("phases.common")

local phase = {phase = "baseline"}

function phase.after_cell(ctx, cell, res)
  local srv = ctx.server
  if srv and srv.models then
    local ok, models = pcall(srv.models, srv)
    if ok then res.server.models = models end
  end
end

function phase.finish(ctx, cells)
  local notes, lines = {environment = {}}, {""}
  local ok, info = pcall(function() return require("bench.sys").info() end)
  if ok and type(info) == "table" then
    notes.environment.host = info
    local os_name = info.os and (type(info.os) == "table" and (info.os.name or info.os.sysname) or info.os)
    lines[#lines + 1] = string.format("host: %s, %s, %s RAM", tostring(info.hostname or info.host or "?"),
      tostring(os_name or "?"), info.ram_bytes and require("bench.units").format_size(info.ram_bytes)
        or tostring(info.memory or info.ram or "?"))
  end
  lines[#lines + 1] = "benchrun " .. tostring(bench.version) .. " (" .. tostring(bench.git) .. ")"
  for _, c in ipairs(cells) do
    local f = common.figures(c)
    local reach = (c.status == "ok" and (f.ok or 0) > 0) and "reachable" or ("NOT reachable: " .. tostring(c.error or c.status))
    lines[#lines + 1] = string.format("server %s (%s, version %s): %s, TTFT %s ms", c.id, tostring(c.labels.backend),
      tostring(c.server and c.server.version or "unknown"), reach, common.fmt(f.ttft_ms))
    notes.environment[c.id] = {status = c.status, version = c.server and c.server.version, reachable = reach == "reachable"}
  end
  return notes, lines
end

return phase
