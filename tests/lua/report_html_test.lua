-- bench.report.html: report.html beside report.md, from the same analysis.
-- Synthetic results (tests/data/gen_results.lua and a folder with a failed
-- request and a hostile cell name): every table and chart is there, text is
-- escaped, nothing points outside the file. tests/e2e/report_html.sh loads
-- the page in headless Chromium.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local G = dofile(os.getenv("BENCHRUN_TESTS") .. "/data/gen_results.lua")
local results = require("bench.results")
local report = require("bench.report")
local html = require("bench.report.html")

local function has(text, needle, what)
  if not text:find(needle, 1, true) then error(string.format("%s: %q not found", what or "page", needle), 2) end
end
local function count(text, needle)
  local n = 0
  for _ in text:gmatch(needle) do n = n + 1 end
  return n
end

-- nothing in the page loads from elsewhere, and no URL appears at all
local function offline(page)
  T.eq(page:find("https?://"), nil, "no URL")
  T.eq(page:find("url%("), nil, "no CSS url()")
  T.eq(page:find("@import", 1, true), nil, "no @import")
  for tag in page:gmatch("<(%w+)[^>]-%ssrc=") do error("a src attribute in <" .. tag .. ">") end
  for v in page:gmatch('href="([^"]*)"') do T.eq(v:sub(1, 1), "#", "only in-page links: " .. v) end
end

local dir = T.tmpdir()

-- a text as the page escapes it
local function esc_note(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

T.case("phase 3: report.html beside report.md with every section, chart and table", function()
  local run = G.phase3(dir .. "/p3")
  T.eq(report.finish(run, {phase = "compare"}), dir .. "/p3/report.md", "report path")
  local page = assert(T.read_file(dir .. "/p3/report.html"), "report.html written")
  offline(page)
  has(page, "<!DOCTYPE html>")
  for _, id in ipairs({"findings", "results", "latency", "charts", "timeline", "requests", "environment"}) do
    has(page, '<section id="' .. id .. '">', "section " .. id)
    has(page, '<a href="#' .. id .. '">', "nav link " .. id)
  end
  for _, id in ipairs({"t-results", "t-latency", "t-requests"}) do
    has(page, '<table class="sortable" id="' .. id .. '">', id)
    has(page, 'data-table="' .. id .. '"', id .. " filter box")
  end
  -- the charts report.render wrote, drawn inline, and the request timeline
  local files = 0
  for _ in io.popen("ls " .. dir .. "/p3/charts"):lines() do files = files + 1 end
  T.eq(count(page, "<svg role=\"img\""), files + 1, "one inline SVG per chart file, plus the timeline")
  has(page, "<title>Requests over time</title>", "timeline")
  -- 5 configurations ran (the OOM one has no request): 5 × 10 measured requests
  T.eq(count(page, '<tr><td data%-v="%d+">'), 50, "50 request rows (warm-ups left out)")
  has(page, "<li>Fastest single-request decode: <strong>mlx-4bit</strong>", "findings, bold as <strong>")
  has(page, "<td>oom: server killed by SIGKILL (out of memory)</td>", "the OOM cell's status")
  has(page, '<td data-v="45.73">45.7</td>', "decode TPS: its value to sort by, its text to read")
  has(page, "<th>OS</th><td>macOS 15.2</td>", "environment")
  has(page, "Apple M3 Ultra", "the CPU")
  has(page, "<summary>The plan as run</summary>", "the plan")
  has(page, 'document.body.setAttribute("data-report-ready", "1")', "the ready marker")
end)

T.case("names and errors are escaped; failed requests are drawn dashed; the request table is capped", function()
  local evil = '<img src=x onerror="alert(1)">&'
  local run = assert(results.create{dir = dir .. "/evil", name = "evil</title>", plan_text = "name: x\n",
                                    env = {host = {hostname = "h<b>"}}})
  local t = 1000000000
  for i = 1, 6 do
    local ok = i ~= 3
    run:record(evil, {ok = ok, error = not ok and "http_500 <script>" or nil, ttft_ms = ok and 10 or nil,
                      e2el_ms = 50, output_tokens = ok and 20 or 0, t_sent_ns = t + i * 100000000,
                      t_end_ns = t + i * 100000000 + 50000000, prompt = "p" .. i})
  end
  run:cell{id = evil, labels = {variant = evil}, status = "degraded", error = "1 of 6 failed",
           server = {version = "v<1>"}}
  local saved = html.MAX_REQUESTS
  html.MAX_REQUESTS = 4
  local ok, err = pcall(report.finish, run, {})
  html.MAX_REQUESTS = saved
  assert(ok and err, tostring(err))
  local page = T.read_file(dir .. "/evil/report.html")
  offline(page)
  T.eq(page:find("<img", 1, true), nil, "no tag from a name")
  T.eq(page:find("<script>\"", 1, true), nil, "no tag from an error")
  has(page, "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;", "the name, escaped")
  has(page, "<title>benchrun report: evil&lt;/title&gt;</title>", "the title, escaped")
  has(page, "failed: http_500 &lt;script&gt;", "the error, escaped")
  has(page, "<td>h&lt;b&gt;</td>", "the host, escaped")
  has(page, 'stroke-dasharray="3,2"', "a failed request is dashed")
  T.eq(count(page, '<tr><td data%-v="%d+">'), 4, "the request table stops at MAX_REQUESTS")
  has(page, "The first 4 of 6 measured requests (records.jsonl holds all).", "and says so")
end)

-- a capacity search with an objective and an automatic warm-up: report.md's
-- Capacity, Service level objectives and Run length, all in the page too
local KNEE = assert(T.read_file(os.getenv("BENCHRUN_TESTS") .. "/data/capacity_knee.yaml"))

T.case("capacity in words, SLO and goodput tables, run length: in report.html as in report.md", function()
  local capacity, slo, steady = require("bench.report.capacity"), require("bench.report.slo"), require("bench.report.steady")
  local rc, data, rdir = T.run_plan(dir, KNEE)
  T.eq(rc, 0, "exit status")
  local page = assert(T.read_file(rdir .. "/report.html"), "report.html written")
  local md = assert(T.read_file(rdir .. "/report.md"), "report.md written")
  offline(page)
  for _, id in ipairs({"capacity", "slo", "steady"}) do
    has(page, '<section id="' .. id .. '">', "section " .. id)
    has(page, '<a href="#' .. id .. '">', "nav link " .. id)
  end
  -- the same entries both reports print (no second computation)
  local cap = capacity.tables(data.cells)
  T.eq(#cap, 1, "one search")
  has(md, cap[1].sentence, "report.md's answer")
  has(page, "<strong>7 concurrent users</strong> meet every objective (decode rate p50 ≥ 47.0 tok/s); "
    .. "8 concurrent users fail on decode rate p50", "the answer in words")
  has(page, '<table class="sortable" id="t-capacity-1">', "the search's steps")
  T.eq(select(2, page:match('<table class="sortable" id="t%-capacity%-1">(.-)</table>'):gsub("<tr><td data%-v=", "")),
       #data.cells[1].search.steps, "a row per step, its load sortable by value")
  has(page, esc_note(cap[1].note), "how it searched")
  local s = slo.tables(data.cells)
  T.eq(#s, 1, "one judged cell")
  has(page, "<h3>knee: every objective met</h3>", "the verdict")
  has(page, '<table class="sortable" id="t-slo-1">', "the objectives table")
  has(page, "<tr><td>decode rate p50 ≥ 47.0 tok/s</td><td>" .. s[1].rows[1][2] .. "</td><td>✅ met</td></tr>", "an objective")
  has(md, s[1].goodput, "report.md's goodput")
  has(page, '<p class="goodput">Goodput: <strong>', "the goodput")
  local lines = steady.lines(data.cells)
  T.eq(#lines, 1, "the warm-up said why it stopped")
  has(md, "- " .. lines[1], "report.md's run length")
  has(page, "<li><strong>knee</strong>, warm-up: warm after ", "the run length")
end)

T.done()
