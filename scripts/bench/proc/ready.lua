-- Readiness: proc.probe_http and proc.wait_ready, written in Lua on the C
-- primitives of bench.proc (p:lines_since, p:alive, proc.probe_port) and on
-- bench.http, the one HTTP client of benchrun. Loaded by luaopen_bench_proc
-- (engine/proc.c), which passes the module table: this file must not
-- require bench.proc itself.
local http = require("bench.http")
local clock = require("bench.clock")

return function(proc)
  -- proc.probe_http(url[, timeout = 2]) -> status, body | nil, message.
  -- One GET through bench.http (plain http:// only: a readiness probe of a
  -- local server needs no TLS); any answer with a status is returned with its
  -- body (an error status, a redirect, a body cut short too: the caller judges
  -- the status), anything else is nil and the transport's sentence.
  function proc.probe_http(url, timeout)
    if type(url) ~= "string" then
      error("bad argument #1 to 'probe_http' (string expected, got " .. (url == nil and "no value" or type(url)) .. ")", 2)
    end
    local host = url:sub(1, 7) == "http://" and url:sub(8):match("^[^/]*") or ""
    if host == "" or host:sub(-1) == ":" then
      error(string.format("bad argument #1 to 'probe_http' (expected http://host[:port]/path, got '%s')", url), 2)
    end
    if timeout ~= nil and type(timeout) ~= "number" then
      error("bad argument #2 to 'probe_http' (number expected, got " .. type(timeout) .. ")", 2)
    end
    local r = http.request{url = url, timeout = {total = timeout or 2}, error_body_bytes = 1 << 20,
                           headers = {["User-Agent"] = "benchrun", Accept = "*/*", Connection = "close"}}
    if r.status > 0 then return r.status, r.body or "" end
    return nil, r.error_detail or r.error
  end

  local function tail_of(p) return p and ('; last output:\n' .. p:tail(20)) or '' end
  -- proc.wait_ready{http = url, expect = status | function(status, body) -> bool,
  --   line = pattern, port = n, host = h, proc = p, timeout = s, interval = s,
  --   exit_info = function(p) -> info (an adapter's, with its evidence; default p:exit_info)}
  -- -> seconds since the process started (or since the call), resolution (s),
  -- or nil, message. Every condition given must hold; a process that exits
  -- first fails it. The load time is when the ready answer came; the
  -- server became ready after the last try that found it not ready began,
  -- `resolution` earlier at most. Polls are 2% of the time waited apart (at least
  -- `interval`, 5 ms, at most 0.5 s): a 1 s load is read to ~20 ms, not
  -- bucketed by a growing back-off, and a long load costs few probes.
  function proc.wait_ready(o)
    if type(o) ~= 'table' then error('proc.wait_ready: expected a table of options', 2) end
    if not (o.http or o.line or o.port) then error('proc.wait_ready: give http, line or port', 2) end
    if o.line and not o.proc then error('proc.wait_ready: line needs proc', 2) end
    local p = o.proc
    local t0 = p and p.started_ns or clock.now()
    local timeout = o.timeout or 60
    local deadline = clock.now() + math.floor(timeout * 1e9)
    local min_interval = o.interval or 0.005
    local t_not_ready = t0
    local expect = o.expect or 200
    local line_ok, seq, last = not o.line, 0, 'nothing tried yet'
    while true do
      local t_try = clock.now()
      if p and not p:alive() then
        local info = o.exit_info and o.exit_info(p) or p:exit_info()
        return nil, string.format('%s (pid %d) %s before it was ready%s', p.name, p.pid, info.reason, tail_of(p))
      end
      if not line_ok then
        local lines
        lines, seq = p:lines_since(seq)
        for _, l in ipairs(lines) do if l:find(o.line) then line_ok = true break end end
        if not line_ok then last = 'no line matching ' .. string.format('%q', o.line) end
      end
      local ok = line_ok
      if ok and o.port then
        local r, err = proc.probe_port(o.port, o.host or '127.0.0.1', 1)
        if not r then ok = false last = 'port ' .. o.port .. ': ' .. err end
      end
      if ok and o.http then
        local status, body = proc.probe_http(o.http, math.min(5, math.max(0.2, timeout)))
        if not status then ok = false last = o.http .. ': ' .. body
        else
          local good
          if type(expect) == 'function' then good = expect(status, body)
          else good = status == expect end
          if not good then ok = false last = o.http .. ' answered ' .. status .. ' ' .. body:sub(1, 200) end
        end
      end
      local now = clock.now()
      if ok then return (now - t0) / 1e9, (now - t_not_ready) / 1e9 end
      t_not_ready = t_try
      if now >= deadline then
        return nil, string.format('not ready after %g s (%s)%s', timeout, last, tail_of(p))
      end
      clock.sleep(math.max(min_interval, math.min(0.5, (now - t0) / 1e9 * 0.02)))
    end
  end
end
