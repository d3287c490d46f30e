#!/usr/bin/env bash
# report.html in a real browser: the demo plan's page loads in headless
# Chromium without a script error (the page marks itself ready; an error
# would be written into it), its tables and charts are in the rendered DOM,
# sorting and filtering work when a header is clicked and text typed, and a
# screenshot goes to the test's output folder (build/tests/report_html/).
# A second page, a capacity search's, must show the answer in words, the
# SLO and goodput tables and the run length, as report.md does.
# Chromium is Debian's `chromium` (tools/install-deps.sh), or Google Chrome;
# a snap's (Ubuntu's `chromium`) is passed over: its private /tmp hides the
# page. Without one the test skips, except in CI, where that is a failure
# unless BENCHRUN_ALLOW_SKIP names chromium (tests/helpers/ci_skip.sh).
set -u
B="$1"
SRC="${BENCHRUN_SOURCE:?BENCHRUN_SOURCE is not set}"
. "${BENCHRUN_TESTS:?BENCHRUN_TESTS is not set}/helpers/ci_skip.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
outdir="$PWD/report_html"
mkdir -p "$outdir"

# a snap's browser: the binary under /snap, or Ubuntu's wrapper script that starts it
is_snap() {
  local p
  p=$(readlink -f "$1" 2> /dev/null || echo "$1")
  case "$p" in /snap/*) return 0 ;; esac
  head -c 4 "$p" 2> /dev/null | grep -q '^#!' && grep -q '/snap/' "$p" 2> /dev/null
}
chrome="" snaps=""
for c in chromium chromium-browser google-chrome google-chrome-stable \
         "/Applications/Chromium.app/Contents/MacOS/Chromium" \
         "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"; do
  command -v "$c" > /dev/null 2>&1 || continue
  if is_snap "$(command -v "$c")"; then snaps="${snaps:+$snaps, }$c"; continue; fi
  chrome=$(command -v "$c"); break
done
if [ -z "$chrome" ]; then
  [ -n "$snaps" ] && ci_skip chromium "only a snap's browser ($snaps): its private /tmp cannot open the test's page (install Google Chrome or a .deb Chromium)"
  ci_skip chromium "no chromium or Chrome found (Debian: apt-get install chromium; tools/install-deps.sh does)"
fi
# root (CI) needs --no-sandbox; a private profile keeps runs apart
browse() {   # browse FILE ARGS... -> DOM on stdout, the browser's log in $tmp/chrome.log
  local f=$1; shift
  timeout 60 "$chrome" --headless --disable-gpu --no-sandbox --no-first-run --user-data-dir="$tmp/profile" \
    --enable-logging=stderr --v=0 "$@" "file://$f" 2>> "$tmp/chrome.log"
}

"$B" "$SRC/plans/demo.yaml" --out "$tmp/r" --quiet --no-history > "$tmp/out.txt" 2> "$tmp/err.txt" ||
  { cat "$tmp/err.txt"; fail "demo plan exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out.txt")")
page="$dir/report.html"
[ -f "$page" ] || fail "no report.html beside report.md"
if grep -Eq 'https?://|url\(|@import' "$page"; then fail "report.html holds a URL: $(grep -Eo '.{20}https?://.{30}' "$page" | head -1)"; fi

# --- the page as it loads
browse "$page" --dump-dom > "$tmp/dom.html" || { tail -5 "$tmp/chrome.log"; fail "chromium --dump-dom exited $?"; }
# (the handler's own source names the attribute: look in the <html> tag only)
js_error() { grep -o '<html[^>]*>' "$1" | grep -o 'data-js-error="[^"]*"'; }
js_error "$tmp/dom.html" && fail "a script error in the page"
grep -q '<body data-report-ready="1"' "$tmp/dom.html" || fail "the page's script did not finish (no data-report-ready)"
grep -q 'Uncaught' "$tmp/chrome.log" && fail "an uncaught error in the browser's log: $(grep Uncaught "$tmp/chrome.log" | head -1)"
for id in t-results t-latency t-requests; do
  grep -q "<table class=\"sortable\" id=\"$id\">" "$tmp/dom.html" || fail "table $id missing"
done
[ "$(grep -o '<th tabindex="0" aria-sort="none"' "$tmp/dom.html" | wc -l)" -ge 30 ] ||
  fail "the script did not make the headers sortable"
[ "$(grep -o '<svg role="img"' "$tmp/dom.html" | wc -l)" -ge 3 ] || fail "fewer than 3 charts (bars, memory, timeline)"
grep -q '<title>Requests over time</title>' "$tmp/dom.html" || fail "no request timeline"

# --- sorting and filtering, driven the way a person would: a click on a
# header, text typed into a filter box. A copy of the page with a script
# appended that does both and writes what it saw into the page.
with_script() {   # with_script PAGE OUT < script: the page with a script added before </body>
  sed '/^<\/body>$/,$d' "$1" > "$2"
  cat >> "$2"
  printf '</body>\n</html>\n' >> "$2"
}
with_script "$page" "$tmp/probe.html" <<'EOF'
<script>
var q = function (s) { return document.querySelector(s); };
var head = Array.prototype.slice.call(q("#t-results thead tr").cells);
var col = head.findIndex(function (th) { return th.textContent === "TPS (decode)"; });
head[col].click();
var asc = Array.prototype.map.call(q("#t-results tbody").rows, function (r) { return r.cells[0].textContent; }).join(",");
head[col].click();
var desc = Array.prototype.map.call(q("#t-results tbody").rows, function (r) { return r.cells[0].textContent; }).join(",");
var rhead = Array.prototype.slice.call(q("#t-requests thead tr").cells);
var e2e = rhead.findIndex(function (th) { return th.textContent === "E2E (ms)"; });
rhead[e2e].click();
var vals = Array.prototype.map.call(q("#t-requests tbody").rows, function (r) { return parseFloat(r.cells[e2e].getAttribute("data-v")); });
var sorted = vals.every(function (v, i) { return i === 0 || vals[i - 1] <= v; });
var box = q("input.filter[data-table=t-requests]");
box.value = "sim-8bit";
box.dispatchEvent(new Event("input"));
var shown = Array.prototype.filter.call(q("#t-requests tbody").rows, function (r) { return !r.hidden; }).length;
document.body.setAttribute("data-probe", [asc, desc, sorted, shown, q("#t-requests-count").textContent].join("|"));
</script>
EOF
browse "$tmp/probe.html" --dump-dom > "$tmp/probe-dom.html" || fail "chromium (probe) exited $?"
js_error "$tmp/probe-dom.html" && fail "a script error while sorting"
probe=$(grep -o 'data-probe="[^"]*"' "$tmp/probe-dom.html")
[ "$probe" = 'data-probe="sim-8bit,sim-4bit|sim-4bit,sim-8bit|true|10|10 of 20 rows"' ] ||
  fail "sort/filter: expected ascending sim-8bit,sim-4bit, then descending, E2E sorted, 10 of 20 rows; got $probe"

# --- the error detection itself: a page whose script throws says so
echo '<script>no_such_function();</script>' | with_script "$page" "$tmp/broken.html"
browse "$tmp/broken.html" --dump-dom > "$tmp/broken-dom.html" || fail "chromium (broken) exited $?"
js_error "$tmp/broken-dom.html" | grep -q no_such_function || fail "a thrown error is not caught by the page"

# --- a capacity search with an objective and warmup: auto: the answer in
# words, the search's steps, the SLO and goodput tables and the run length,
# in the rendered page as in report.md
"$B" "$BENCHRUN_TESTS/data/capacity_knee.yaml" --out "$tmp/k" --quiet --no-history > "$tmp/kout.txt" 2> "$tmp/kerr.txt" ||
  { cat "$tmp/kerr.txt"; fail "the capacity plan exited $?"; }
kdir=$(dirname "$(tail -1 "$tmp/kout.txt")")
browse "$kdir/report.html" --dump-dom > "$tmp/knee-dom.html" || fail "chromium (capacity page) exited $?"
js_error "$tmp/knee-dom.html" && fail "a script error in the capacity page"
grep -q '<body data-report-ready="1"' "$tmp/knee-dom.html" || fail "the capacity page's script did not finish"
for id in capacity slo steady; do
  grep -q "<section id=\"$id\">" "$tmp/knee-dom.html" || fail "section $id missing from the capacity page"
done
for id in t-capacity-1 t-slo-1; do
  grep -q "<table class=\"sortable\" id=\"$id\">" "$tmp/knee-dom.html" || fail "table $id missing"
done
grep -q '<p class="answer"><strong>7 concurrent users</strong> meet every objective' "$tmp/knee-dom.html" ||
  fail "no capacity answer in words (7 concurrent users)"
grep -q '<p class="goodput">Goodput: <strong>' "$tmp/knee-dom.html" || fail "no goodput"
grep -q '<ul class="run-length"><li><strong>knee</strong>, warm-up: warm after' "$tmp/knee-dom.html" ||
  fail "no run length"
rm -f "$outdir/report-capacity.png"
browse "$kdir/report.html" --window-size=1400,2400 --screenshot="$outdir/report-capacity.png" > /dev/null ||
  fail "chromium --screenshot (capacity page) exited $?"

# --- a screenshot for a person to look at
rm -f "$outdir/report.png"
browse "$page" --window-size=1400,2400 --screenshot="$outdir/report.png" > /dev/null || fail "chromium --screenshot exited $?"
[ "$(wc -c < "$outdir/report.png")" -gt 20000 ] || fail "the screenshot is (nearly) empty"
cp "$page" "$outdir/report.html"
echo "ok (screenshot: $outdir/report.png)"
