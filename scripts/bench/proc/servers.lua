-- Servers: exits classified (proc.classify_exit) and the port checks
-- (proc.check_port_free, proc.check_port_owner), written in Lua on the C
-- primitives of bench.proc (port_owners, process_info, probe_port). Loaded
-- by luaopen_bench_proc (engine/proc.c), which passes the module table.
return function(proc)
  -- proc.classify_exit(info) -> {status, signal, signal_name, code, core_dumped, evidence, reason}.
  -- The one place that says why a process ended, from its exit info only
  -- (never from its output): 'oom' with evidence of an OOM kill (info.oom and
  -- info.evidence), 'stopped' by a signal benchrun sent (or any signal after
  -- one: info.asked_to_stop), 'crashed' by any other signal, 'failed' for an exit with a code (or no exit info).
  function proc.classify_exit(info)
    if type(info) ~= 'table' then
      return {status = 'failed', reason = 'no exit information'}
    end
    local c = {signal = info.signal, signal_name = info.signal_name, code = info.code,
               core_dumped = info.core_dumped, reason = info.reason}
    if info.oom and info.evidence then c.status, c.evidence = 'oom', info.evidence
    elseif info.signal and (info.sent_by_benchrun or info.asked_to_stop) then c.status = 'stopped'
    elseif info.signal then c.status = 'crashed'
    else c.status = 'failed' end
    if not c.reason then
      c.reason = c.signal and ('killed by ' .. (c.signal_name or ('signal ' .. c.signal)))
                 or ('exited with code ' .. tostring(c.code))
    end
    return c
  end
  local function describe(o)
    local s = string.format('pid %d (%s)', o.pid, o.command ~= '' and o.command or '?')
    -- a group whose leader is gone: what a killed benchrun's server leaves
    if o.pgid ~= o.pid and o.pgid > 0 and not proc.process_info(o.pgid) then
      s = s .. string.format(', left behind: the leader of its process group (pid %d) is gone,'
        .. ' as when an earlier benchrun was killed', o.pgid)
    elseif o.ppid == 1 then
      s = s .. ', whose parent is gone (now a child of pid 1)'
    end
    return s
  end
  local function names(r, keep)
    local list = {}
    for _, o in ipairs(r.owners) do if keep(o) then list[#list + 1] = describe(o) end end
    if r.unowned > 0 then
      list[#list + 1] = string.format('%d socket%s of a process benchrun may not inspect (another user\'s)',
        r.unowned, r.unowned == 1 and '' or 's')
    end
    return list
  end
  -- proc.check_port_free(port[, host]) -> true | nil, message naming who holds it.
  -- Before a spawn: whatever listens there would be measured instead of (or
  -- besides, with SO_REUSEPORT) the server benchrun starts.
  function proc.check_port_free(port, host)
    local r = proc.port_owners(port)
    local held = r and names(r, function() return true end) or {}
    if #held == 0 and proc.probe_port(port, host or '127.0.0.1', 1) then
      held[1] = 'a process benchrun cannot see (a connect to ' .. (host or '127.0.0.1') .. ' succeeds)'
    end
    if #held == 0 then return true end
    return nil, string.format('port %d is already in use by %s; benchrun measures only a server it starts:'
      .. ' stop that process or give the server another port', port, table.concat(held, '; '))
  end
  -- proc.check_port_owner(p, port) -> true[, note] | nil, message.
  -- After a spawn: every listener on port must be p, in its process group or
  -- a descendant of it. note: why it could not be checked (platform).
  function proc.check_port_owner(p, port)
    local r, why = proc.port_owners(port)
    if not r then return true, why end
    local function ours(o)
      if o.pid == p.pid or o.pgid == p.pid then return true end
      local q = o.ppid
      for _ = 1, 64 do
        if q == p.pid then return true end
        if q <= 1 then return false end
        local i = proc.process_info(q)
        if not i then return false end
        q = i.ppid
      end
      return false
    end
    local foreign = names(r, function(o) return not ours(o) end)
    if #foreign == 0 then return true end
    return nil, string.format('port %d is also held by %s, not by the server benchrun started (%s, pid %d):'
      .. ' requests could reach that process instead', port, table.concat(foreign, '; '), p.name, p.pid)
  end
end
