-- bench.report.cache: the "Prefix cache" section (per configuration: the
-- cache hit rate, the requests with a hit, TTFT with and without one, the
-- server's own /metrics figure and the cache reset), from each cell's
-- `cache` table (bench.cache.end_cell). docs/reports.md, "Prefix cache".
local energy_report = require("bench.report.energy")

local report_cache = {}

local function pct(x) return x and string.format("%.1f%%", 100 * x) or "–" end
local function ms(x) return x and string.format("%.1f", x) or "–" end

-- report_cache.rows(an) -> {{config, hit_rate, hit_requests, requests,
-- ttft_hit_ms, ttft_miss_ms, server_hit_rate, reset, note}} (nil: no cell says)
function report_cache.rows(an)
  local rows = {}
  for _, c in ipairs(an.configs or {}) do
    for _, cell in ipairs(c.cells or {}) do
      local k = type(cell.cache) == "table" and cell.cache or nil
      if k then
        local reset = k.reset and (k.reset.ok and ("yes (" .. tostring(k.reset.how) .. ")")
          or ("failed: " .. tostring(k.reset.detail))) or nil
        rows[#rows + 1] = {config = c.name, cell = cell.id, hit_rate = k.hit_rate, hit_requests = k.hit_requests,
          requests = k.requests, reported = k.reported, ttft_hit_ms = k.ttft_hit_p50_ms, ttft_miss_ms = k.ttft_miss_p50_ms,
          server_hit_rate = k.server_hit_rate, reset = reset, note = k.note}
      end
    end
  end
  return #rows > 0 and rows or nil
end

-- Shown when some cell has cached-token counts or asked for a reset.
function report_cache.section(out, an, table_fn)
  local rows = report_cache.rows(an)
  if not rows then return end
  local shown, cell_of = {}, {}
  for _, c in ipairs(an.configs or {}) do for _, cell in ipairs(c.cells or {}) do cell_of[cell.id] = cell end end
  for _, r in ipairs(rows) do
    if (r.reported or 0) > 0 or r.reset or r.server_hit_rate then
      shown[#shown + 1] = {energy_report.mark(cell_of[r.cell], r.config), pct(r.hit_rate),   -- a throttled cell says so
        r.requests and string.format("%d / %d", r.hit_requests or 0, r.requests) or "–",
        ms(r.ttft_hit_ms), ms(r.ttft_miss_ms), pct(r.server_hit_rate), r.reset or "no",
        r.hit_rate == nil and (r.note or "not reported") or r.note or ""}
    end
  end
  if #shown == 0 then return end
  out[#out + 1] = "## Prefix cache"
  out[#out + 1] = ""
  out[#out + 1] = "Hit rate = cached prompt tokens / prompt tokens, over the requests whose server said "
    .. "(usage.prompt_tokens_details.cached_tokens, llama.cpp timings.cache_n, or llama.cpp's prompt tokens − "
    .. "timings.prompt_n); TTFT is the median of the requests with and without a hit; the server figure is "
    .. "its own /metrics counters over the cell."
  out[#out + 1] = ""
  out[#out + 1] = table_fn({"Configuration", "Hit rate", "Requests with a hit", "TTFT p50 hit (ms)",
                            "TTFT p50 miss (ms)", "Server hit rate", "Cache reset", "Note"},
                           shown, {"l", "r", "r", "r", "r", "r", "l", "l"})
  out[#out + 1] = ""
end

return report_cache
