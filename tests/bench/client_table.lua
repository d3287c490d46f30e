-- Print the JSON lines of tools/bench-client.sh as a table, with the
-- client's CPU per token as a multiple of the minimal reader's.
--   benchrun run tests/bench/client_table.lua results.jsonl
-- Each (load, streams) may have been run several times, the reader and the
-- client in turn (REPEAT): a row then shows the run with the median CPU per
-- token, the range of that figure over the runs, and the median of the
-- per-run ratios (client over the reader run just before it).
local groups, order = {}, {}
local last_reader = {}
for line in io.lines(arg[1]) do
  if line:match("^{") then
    local r = json.decode(line)
    local key = r.mode .. "/" .. r.streams .. "/" .. r.client
    if not groups[key] then
      groups[key] = {}
      order[#order + 1] = key
    end
    local g = groups[key]
    g[#g + 1] = r
    local lvl = r.mode .. "/" .. r.streams
    if r.client == "minimal-reader" then
      last_reader[lvl] = r
    elseif last_reader[lvl] and last_reader[lvl].cpu_us_per_token > 0 then
      r.ratio = r.cpu_us_per_token / last_reader[lvl].cpu_us_per_token
    end
  end
end

local function median(list, field)
  local v = {}
  for _, r in ipairs(list) do if r[field] then v[#v + 1] = r end end
  table.sort(v, function(a, b) return a[field] < b[field] end)
  return v[(#v + 1) // 2], v[1], v[#v]
end

print(string.format("%-8s %6s %-14s %11s %10s %13s %11s %8s %17s %17s %6s", "load", "streams", "client", "ok",
                    "cpu us/tok", "(range)", "tokens/s", "RSS MB", "ttft err p50/p99", "itl err p50/p99", "x min"))
for _, key in ipairs(order) do
  local g = groups[key]
  local r, lo, hi = median(g, "cpu_us_per_token")
  local q = median(g, "ratio")
  local ok, req = 0, 0
  for _, x in ipairs(g) do ok, req = ok + x.ok, req + (x.requests or x.ok) end
  local range = #g > 1 and string.format("%.2f-%.2f", lo.cpu_us_per_token, hi.cpu_us_per_token) or ""
  print(string.format("%-8s %6d %-14s %11s %10.2f %13s %11.0f %8.1f %8.2f/%-8.2f %8.2f/%-8.2f %6s%s", r.mode, r.streams,
                      r.client, string.format("%d/%d", ok, req), r.cpu_us_per_token, range, r.tokens_per_s, r.maxrss_mb,
                      r.ttft_err_p50_ms, r.ttft_err_p99_ms, r.itl_err_p50_ms, r.itl_err_p99_ms,
                      q and string.format("%.2f", q.ratio) or "", r.errors and ("  errors: " .. r.errors) or ""))
end
