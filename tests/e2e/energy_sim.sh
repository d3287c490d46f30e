#!/usr/bin/env bash
# Issue 15 end to end: `benchrun PLAN.yaml` on the simulator as the power
# source (benchrun sim --power-sysfs: a RAPL package, a thermal zone and a
# CPU throttle count in the kernel's formats, read through
# BENCHRUN_SYSFS_ROOT). The simulator's energy is exact (idle W x time + J
# per generated token), so J/token is checked against the known value; a
# cell that heats the machine past its throttle temperature is flagged; the
# next cell's cooldown waits and then proceeds; a machine that never cools
# makes the cooldown give up at max with a note.
set -u
B="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The tree must exist when the run starts (the sampler finds its sources
# once); the simulators then continue its counters.
tree() {
  local r=$1
  mkdir -p "$r/class/powercap/intel-rapl:0" "$r/class/thermal/thermal_zone0" \
    "$r/devices/system/cpu/cpu0/thermal_throttle" "$r/devices/system/cpu/cpu0/topology"
  echo package-0 > "$r/class/powercap/intel-rapl:0/name"
  echo 0 > "$r/class/powercap/intel-rapl:0/energy_uj"
  echo 262143328850 > "$r/class/powercap/intel-rapl:0/max_energy_range_uj"
  echo sim > "$r/class/thermal/thermal_zone0/type"
  echo 40000 > "$r/class/thermal/thermal_zone0/temp"
  echo 0 > "$r/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count"
  echo 0 > "$r/devices/system/cpu/cpu0/topology/physical_package_id"
}

# --- 1: J/token, a throttled cell, cooldown that waits then proceeds
S=$tmp/sys1
tree "$S"
COOL="[--decode-tps, '400', --power-sysfs, '$S', --power-idle-w, '10', --power-j-per-token, '2']"
HOT="[--decode-tps, '400', --power-sysfs, '$S', --power-idle-w, '10', --power-j-per-token, '2', --heat-c-per-j, '0.05', --throttle-temp, '55']"
cat > "$tmp/plan1.yaml" <<EOF2
name: energy-sim
sampling: {power: 10ms}
energy: {idle: 1s}
cooldown: {until: nominal, idle_power_within: 10%, max: 30s}
cells:
  - {name: cool, server: {backend: sim, args: $COOL}, requests: 10, max_tokens: 200}
  - {name: hot, server: {backend: sim, args: $HOT}, requests: 6, max_tokens: 200}
  - {name: after, server: {backend: sim, args: $HOT}, requests: 1, max_tokens: 20}
EOF2
"$B" "$tmp/plan1.yaml" --check > "$tmp/check.txt" 2>&1 || { cat "$tmp/check.txt"; fail "--check"; }
grep -q "up to 30.0s of cooldown (its max: an upper bound)" "$tmp/check.txt" || { cat "$tmp/check.txt"; fail "--check does not count the cooldown"; }
BENCHRUN_SYSFS_ROOT=$S BENCHRUN_NVML=$tmp/no-nvml.so "$B" "$tmp/plan1.yaml" --out "$tmp/r1" --quiet \
  > "$tmp/out1.txt" 2> "$tmp/err1.txt" || { cat "$tmp/err1.txt"; fail "plan 1 exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out1.txt")")
for f in report.md summary.csv summary.json env.json samples.jsonl charts/power.svg; do [ -f "$dir/$f" ] || fail "no $f"; done

"$B" run - "$dir" <<'EOF2' || fail "plan 1's figures"
local dir = ...
local json = require("cjson")
local function read(p) local f = assert(io.open(dir .. "/" .. p)) local t = f:read("a") f:close() return t end
local env = json.decode(read("env.json"))
local names = {}
for _, s in ipairs(env.power.sources) do names[s.name] = s end
assert(names["rapl:package-0"] and names["rapl:package-0"].counted, "env.power names the RAPL source")
assert(names["cpu-throttle:package-0"], "env.power names the throttle source")
local cells = {}
for _, c in ipairs(json.decode(read("summary.json")).cells) do cells[c.id] = c end
local function near(a, b, rel, what)
  assert(type(a) == "number" and math.abs(a - b) <= rel * b, string.format("%s: %s, expected %.4g within %g%%", what, tostring(a), b, rel * 100))
end
local cool = cells.cool.energy
io.stderr:write(string.format("cool: J/token %.4f, above idle %.4f, idle %.3f W, window %.3f s\n", cool.j_per_token, cool.j_per_token_above_idle, cool.idle_w, cool.window_s))
local tokens = cells.cool.summary.output_tokens_total
assert(tokens == 2000, "cool: 2000 output tokens, got " .. tostring(tokens))
-- the known value: 2 J per token, plus 10 W of idle over the window
near(cool.j_per_token, 2 + 10 * cool.window_s / tokens, 0.02, "cool: J/token")
near(cool.j_per_token_above_idle, 2, 0.02, "cool: J/token above idle")
near(cool.idle_w, 10, 0.05, "cool: idle baseline (10 ms ticks of the simulator at its edges)")
near(cool.tok_per_w, 1 / cool.j_per_token, 1e-9, "cool: tok/s per W")
assert(cool.throttled == false, "cool: not throttled")
assert(cells.hot.energy.throttled == true and cells.hot.energy.throttled_pct > 0, "hot: flagged throttled")
assert(cells.hot.energy.max_temp_c >= 55, "hot: reached the throttle temperature")
local cd = cells.after.cooldown
assert(cd and cd.ready == true and cd.waited_s >= 1, "after: the cooldown waited, then proceeded: " .. json.encode(cd))
-- power samples in samples.jsonl, marked with cell and phase
local phases = {}
for line in io.lines(dir .. "/samples.jsonl") do
  local s = json.decode(line)
  if s.type == "power" and s.cell then phases[s.cell .. "/" .. tostring(s.phase)] = true end
end
assert(phases["cool/run"] and phases["cool/baseline"] and phases["after/cooldown"], "power samples marked: " .. json.encode(phases))
-- summary.csv: the energy columns
local head, rows = nil, {}
for line in io.lines(dir .. "/summary.csv") do
  local f = {}
  for x in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
  if not head then head = f else local r = {} for i, k in ipairs(head) do r[k] = r[k] or f[i] end rows[f[1]] = r end
end
near(tonumber(rows.cool.j_per_token), cool.j_per_token, 1e-4, "summary.csv j_per_token")
assert(rows.hot.throttled == "true", "summary.csv throttled")
EOF2
grep -q "J/tok | tok/s/W | W avg | °C max | throttled %" "$dir/report.md" || fail "report: energy columns"
grep -q "Most energy-efficient: \*\*" "$dir/report.md" || fail "report: most energy-efficient finding"
grep -q "hot.* 🔥 throttled" "$dir/report.md" || fail "report: throttled cell marked"
grep -q "after: cooled down in" "$dir/report.md" || fail "report: cooldown note"
grep -q "Power over time" "$dir/report.md" || fail "report: power chart"

# --- 2: a machine that never cools: the cooldown gives up at max
S=$tmp/sys2
tree "$S"
cat > "$tmp/plan2.yaml" <<EOF2
name: energy-hot
sampling: {power: 10ms}
cooldown: {max: 1s}
cells:
  - {name: stuck, server: {backend: sim, args: [--decode-tps, '0', --power-sysfs, '$S', --throttle-temp, '1']}, requests: 1, max_tokens: 5}
EOF2
BENCHRUN_SYSFS_ROOT=$S BENCHRUN_NVML=$tmp/no-nvml.so "$B" "$tmp/plan2.yaml" --out "$tmp/r2" --quiet \
  > "$tmp/out2.txt" 2> "$tmp/err2.txt" || { cat "$tmp/err2.txt"; fail "plan 2 exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out2.txt")")
grep -q "cooldown gave up after 1 s (max 1 s): throttled" "$dir/report.md" || { cat "$dir/summary.json"; fail "plan 2: give-up note"; }

# --- 3: no power source: said, never 0
S=$tmp/sys3
mkdir -p "$S"
cat > "$tmp/plan3.yaml" <<EOF2
name: energy-none
cells:
  - {name: none, server: {backend: sim}, requests: 1, max_tokens: 5}
EOF2
BENCHRUN_SYSFS_ROOT=$S BENCHRUN_NVML=$tmp/no-nvml.so "$B" "$tmp/plan3.yaml" --out "$tmp/r3" --quiet \
  > "$tmp/out3.txt" 2> "$tmp/err3.txt" || { cat "$tmp/err3.txt"; fail "plan 3 exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out3.txt")")
"$B" run - "$dir" <<'EOF2' || fail "plan 3: no power source"
local dir = ...
local json = require("cjson")
local f = assert(io.open(dir .. "/summary.json")) local s = json.decode(f:read("a")) f:close()
local e = s.cells[1].energy
assert(e and e.note == "no power source" and e.energy_j == nil and e.j_per_token == nil, json.encode(e))
local m = s.analysis.configs[1].metrics
assert(m.energy_note == "no power source" and m.j_per_token == nil, "analysis: " .. json.encode(m))
EOF2
# --- 4: a dry run of a real server's plan: the rehearsal's simulators are
# the power source (dry_run.args), the same path as a real run
S=$tmp/sys4
tree "$S"
cat > "$tmp/plan4.yaml" <<EOF2
name: energy-dry
cooldown: {max: 1s}
dry_run: {decode_tps: 400, args: [--power-sysfs, '$S', --heat-c-per-j, '0.05', --throttle-temp, '55']}
cells:
  - {name: real, server: {backend: llama-server, model: /no/such/model.gguf}, requests: 4, max_tokens: 200}
EOF2
BENCHRUN_SYSFS_ROOT=$S BENCHRUN_NVML=$tmp/no-nvml.so "$B" "$tmp/plan4.yaml" --dry-run --out "$tmp/r4" --quiet \
  > "$tmp/out4.txt" 2> "$tmp/err4.txt" || { cat "$tmp/err4.txt"; fail "plan 4 exited $?"; }
dir=$(dirname "$(tail -1 "$tmp/out4.txt")")
"$B" run - "$dir" <<'EOF2' || fail "plan 4: a dry run's energy"
local dir = ...
local json = require("cjson")
local f = assert(io.open(dir .. "/summary.json")) local s = json.decode(f:read("a")) f:close()
local e = s.cells[1].energy
assert(e and e.j_per_token and e.throttled == true, "dry run: energy and throttling from the simulators: " .. json.encode(e))
assert(e.idle_w == nil, "no idle baseline by default on the simulator")
EOF2
grep -q "🔥 throttled" "$dir/report.md" || fail "plan 4: throttled mark"

echo "ok energy_sim"
