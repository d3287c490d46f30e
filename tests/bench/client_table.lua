-- Print the JSON lines of tools/bench-client.sh as a table, with the
-- client's CPU per token as a multiple of the minimal reader's.
--   benchrun run tests/bench/client_table.lua results.jsonl
local rows, reader = {}, {}
for line in io.lines(arg[1]) do
  if line:match("^{") then
    local r = json.decode(line)
    rows[#rows + 1] = r
    if r.client == "minimal-reader" then reader[r.mode .. "/" .. r.streams] = r end
  end
end
print(string.format("%-8s %6s %-14s %11s %10s %11s %8s %17s %17s %6s", "load", "streams", "client", "ok",
                    "cpu us/tok", "tokens/s", "RSS MB", "ttft err p50/p99", "itl err p50/p99", "x min"))
for _, r in ipairs(rows) do
  local base = reader[r.mode .. "/" .. r.streams]
  local ratio = base and base.cpu_us_per_token > 0 and r.client ~= "minimal-reader"
    and string.format("%.2f", r.cpu_us_per_token / base.cpu_us_per_token) or ""
  print(string.format("%-8s %6d %-14s %11s %10.2f %11.0f %8.1f %8.2f/%-8.2f %8.2f/%-8.2f %6s%s", r.mode, r.streams,
                      r.client, string.format("%d/%d", r.ok, r.requests or r.ok), r.cpu_us_per_token, r.tokens_per_s, r.maxrss_mb,
                      r.ttft_err_p50_ms, r.ttft_err_p99_ms, r.itl_err_p50_ms, r.itl_err_p99_ms, ratio,
                      r.errors and ("  errors: " .. r.errors) or ""))
end
