#!/usr/bin/env bash
# Engine speed figures (printed, never asserted):
#   startup: `benchrun --version` and `benchrun -e 'return 1'` (target < 10 ms)
#   YAML:    decoding a generated 1 MB plan (target < 50 ms), in-process and
#            as a whole command, with and without the positions side table.
# Usage: tools/bench-engine.sh [path/to/benchrun]   (default build/benchrun)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${1:-build/benchrun}")
[ -x "$B" ] || { echo "benchrun not found at $B: build first (tools/build.sh) or pass its path" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (tools/install-deps.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A plan-shaped document of about 1 MB, written by yaml.encode itself.
"$B" -e '
local path = arg[1]
local plan = {name = "bench-engine-1mb", script = "phases/tuning.lua",
  server = {backend = "llama-server", model = "~/models/model.gguf", args = {"--ctx-size", 8192, "--n-gpu-layers", 999}},
  matrix = {model = {}, env = {}}, load = {}, prompts = {}}
for i = 1, 40 do plan.matrix.model[i] = ("Model-%02d-Q4_K_M.gguf"):format(i) end
for i = 1, 40 do plan.matrix.env[i] = {GGML_METAL_N_CB = tostring(i % 4), FLAG = "true", LIMIT = i * 1024} end
local i = 0
local text = ""
while #text < 1024 * 1024 do
  for _ = 1, 200 do
    i = i + 1
    plan.load[#plan.load + 1] = {name = "step-" .. i, concurrency = {1, 2, 4, 8}, max_tokens = i % 2000,
      slo = {ttft_p95 = "2s", tpot_p95 = "100ms"}, stream = (i % 2 == 0), rate = i / 7}
    plan.prompts[#plan.prompts + 1] = "Explain, in about two hundred words, topic number " .. i .. ": why it matters."
  end
  text = yaml.encode(plan)
end
local f = assert(io.open(path, "w")); f:write(text); f:close()
print(("generated %s: %.2f MB, %d load entries"):format(path, #text / 1048576, #plan.load))
' "$tmp/plan.yaml"

echo
echo "== in-process yaml.load_file of the 1 MB plan (median of 30)"
"$B" -e '
local path = arg[1]
local function median_ms(opts)
  local t = {}
  for i = 1, 30 do
    local w = clock.stopwatch()
    local doc = assert(yaml.load_file(path, opts))
    t[i] = w:elapsed_ns() / 1e6
    doc = nil
  end
  table.sort(t)
  return t[15], t[1], t[30]
end
collectgarbage()
print(("decode            median %6.1f ms  (min %.1f, max %.1f)  target < 50 ms"):format(median_ms(nil)))
print(("decode+positions  median %6.1f ms  (min %.1f, max %.1f)"):format(median_ms({positions = true})))
local doc = assert(yaml.load_file(path))
local w = clock.stopwatch()
local text = yaml.encode(doc)
print(("encode            %6.1f ms  (%.2f MB)"):format(w:elapsed_ns() / 1e6, #text / 1048576))
' "$tmp/plan.yaml"

echo
echo "== hyperfine: whole commands"
hyperfine -N --warmup 5 --min-runs 30 --style basic --export-json "$tmp/hf.json" \
  "$B --version" \
  "$B -e 'return 1'" \
  "$B -e 'yaml.load_file(arg[1])' $tmp/plan.yaml"

echo
echo "== summary"
"$B" -e '
local r = json.decode(assert(io.open(arg[1])):read("a")).results
local names = {"benchrun --version", "benchrun -e \"return 1\"", "benchrun -e yaml.load_file(1 MB plan)"}
local targets = {10, 10, 60}
for i, x in ipairs(r) do
  print(("%-40s %6.2f ms ± %.2f  (target < %d ms%s)"):format(names[i], x.mean * 1000, x.stddev * 1000,
    targets[i], i == 3 and ": 50 ms decode + startup" or ""))
end
' "$tmp/hf.json"
