-- bench.power's sources and sampler (issue 15), on the real code paths:
-- the sysfs files are the kernel's formats in a fake tree that an inner
-- benchrun reads through BENCHRUN_SYSFS_ROOT (powercap's RAPL zones with
-- max_energy_range_uj, hwmon chips and amd_energy, thermal zones, the CPUs'
-- thermal_throttle counters and cpufreq clocks, with /proc/stat under
-- BENCHRUN_PROC_ROOT), and NVML is tests/helpers/fake_nvml.c (NVML
-- 12.2's signatures and return codes) loaded through BENCHRUN_NVML. The
-- test changes the files while the sampler thread runs (each write is a
-- rename, as atomic as the kernel's own files).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")

local FAKE = assert(os.getenv("BENCHRUN_FAKE_NVML"), "BENCHRUN_FAKE_NVML: the fake NVML (ctest sets it)")
local LEGACY = assert(os.getenv("BENCHRUN_FAKE_NVML_LEGACY"), "BENCHRUN_FAKE_NVML_LEGACY")
local dir = T.tmpdir()

local function mkdir(p) assert(proc.run{argv = {"mkdir", "-p", p}}.code == 0, "mkdir " .. p) end

-- write a sysfs-style file ("value\n") atomically
local function put(path, value)
  local f = assert(io.open(path .. ".tmp", "w"))
  f:write(tostring(value), "\n")
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

-- A machine with RAPL (a package with core and dram sub-zones, its MMIO
-- twin), an AMD GPU's hwmon (power and temperature), coretemp, amd_energy,
-- two thermal zones (one that answers no temperature) and one CPU package's
-- throttle counter. -> the tree's root
local function fake_tree(name)
  local root = dir .. "/" .. name
  local pc = root .. "/class/powercap"
  local zones = {
    ["intel-rapl:0"] = {"package-0", 999000000}, ["intel-rapl:0:0"] = {"core", 5000000},
    ["intel-rapl:0:1"] = {"dram", 100000000}, ["intel-rapl-mmio:0"] = {"package-0", 1}}
  for z, v in pairs(zones) do
    mkdir(pc .. "/" .. z)
    put(pc .. "/" .. z .. "/name", v[1])
    put(pc .. "/" .. z .. "/energy_uj", v[2])
    put(pc .. "/" .. z .. "/max_energy_range_uj", 1000000000)
  end
  mkdir(pc .. "/intel-rapl")   -- the control type itself: no energy
  local hw = root .. "/class/hwmon"
  for n, chip in pairs({hwmon0 = "coretemp", hwmon1 = "amdgpu", hwmon2 = "amd_energy"}) do
    mkdir(hw .. "/" .. n)
    put(hw .. "/" .. n .. "/name", chip)
  end
  put(hw .. "/hwmon0/temp1_input", 55000)
  put(hw .. "/hwmon0/temp1_label", "Package id 0")
  put(hw .. "/hwmon1/power1_average", 50000000)
  put(hw .. "/hwmon1/temp1_input", 60000)
  put(hw .. "/hwmon1/temp1_label", "edge")
  put(hw .. "/hwmon2/energy1_input", 123456789)
  put(hw .. "/hwmon2/energy1_label", "Esocket0")
  local th = root .. "/class/thermal"
  mkdir(th .. "/thermal_zone0")
  put(th .. "/thermal_zone0/type", "x86_pkg_temp")
  put(th .. "/thermal_zone0/temp", 57000)
  mkdir(th .. "/thermal_zone1/temp")   -- reading it fails (EISDIR): not a source
  put(th .. "/thermal_zone1/type", "acpitz")
  local cpu = root .. "/devices/system/cpu/cpu0"
  mkdir(cpu .. "/thermal_throttle")
  mkdir(cpu .. "/topology")
  put(cpu .. "/thermal_throttle/package_throttle_count", 10)
  put(cpu .. "/topology/physical_package_id", 0)
  return root
end

-- what every inner script has: put(path, value) as above; each(path,
-- values), each value written in turn, 0.1 s apart; gaps_of(series), the
-- gaps' reasons, checking that no sample's power or energy is negative or
-- absurd
local PRELUDE = [[
local function put(path, value)
  local f = assert(io.open(path .. '.tmp', 'w')) f:write(tostring(value), '\n') f:close()
  assert(os.rename(path .. '.tmp', path))
end
local function each(path, values)
  for _, v in ipairs(values) do
    put(path, v)
    clock.sleep(0.1)
  end
end
local function gaps_of(series)
  local gaps = {}
  for _, x in ipairs(series.samples) do
    if x.gap then gaps[#gaps + 1] = x.gap end
    assert(not x.w or (x.w >= 0 and x.w <= power.max_watts), "power: " .. tostring(x.w))
    assert(not x.energy_j or x.energy_j >= 0, "negative energy")
  end
  return gaps
end
]]

-- run `script` in a benchrun with env; -> the JSON it prints last
local function inner(script, env)
  local path = string.format("%s/inner%d.lua", dir, math.random(1e9))
  local f = assert(io.open(path, "w"))
  f:write(PRELUDE, script)
  f:close()
  local r = assert(proc.run{argv = {bench.executable, "run", path}, env = env, timeout = 60})
  if r.code ~= 0 then error("inner benchrun failed: " .. tostring(r.code) .. "\n" .. r.stdout .. r.stderr, 2) end
  local last
  for line in r.stdout:gmatch("[^\n]+") do last = line end
  return json.decode(last)
end

local function by_name(list)
  local m = {}
  for _, s in ipairs(list) do m[s.name] = s end
  return m
end

T.case("sources: what a sysfs tree has, named, counted where it adds to the total", function()
  local root = fake_tree("sources")
  local r = inner([[
local s, notes = power.sources()
print(json.encode({sources = s, notes = notes, read = power.read()}))
]], {BENCHRUN_SYSFS_ROOT = root, BENCHRUN_NVML = dir .. "/no-such-nvml.so"})
  local s = by_name(r.sources)
  T.eq(#r.sources, 9, "sources: " .. json.encode(r.sources))
  T.eq(s["rapl:package-0"].counted, true, "package counted")
  T.eq(s["rapl:package-0"].domain, "cpu", "package domain")
  T.eq(s["rapl:package-0/core"].counted, false, "core: inside the package")
  T.eq(s["rapl:package-0/dram"].counted, true, "dram counted")
  T.eq(s["rapl:package-0/dram"].domain, "dram", "dram domain")
  T.eq(s["hwmon1:amdgpu/power1"].domain, "gpu", "amdgpu power")
  T.eq(s["hwmon1:amdgpu/power1"].gives[1], "power", "amdgpu gives power")
  T.eq(s["hwmon2:amd_energy/Esocket0"].counted, false, "amd_energy beside RAPL's package: listed only")
  T.eq(s["hwmon1:amdgpu/edge"].domain, "gpu", "amdgpu temperature")
  T.eq(s["hwmon0:coretemp/Package id 0"].gives[1], "temp", "coretemp")
  T.eq(s["thermal:zone0/x86_pkg_temp"].gives[1], "temp", "thermal zone")
  T.eq(s["thermal:zone1/acpitz"], nil, "a zone without a temperature is no source")
  T.eq(s["cpu-throttle:package-0"].gives[1], "throttle", "throttle counter")
  assert(r.notes[1]:find("^nvml: not available: BENCHRUN_NVML="), "the NVML note: " .. json.encode(r.notes))
  T.eq(r.read["rapl:package-0"].energy_j, 999, "package J")
  T.eq(r.read["rapl:package-0"].range_j, 1000, "range J")
  T.eq(r.read["hwmon1:amdgpu/power1"].power_w, 50, "amdgpu W")
  T.eq(r.read["thermal:zone0/x86_pkg_temp"].temp_c, 57, "zone °C")
  T.eq(r.read["cpu-throttle:package-0"].throttled, false, "first throttle reading")
end)

T.case("sources: RAPL readable by root only says so; no tree at all says what is missing", function()
  local root = dir .. "/denied"
  mkdir(root .. "/class/powercap/intel-rapl:0")
  put(root .. "/class/powercap/intel-rapl:0/name", "package-0")
  put(root .. "/class/powercap/intel-rapl:0/energy_uj", 1)
  assert(proc.run{argv = {"chmod", "000", root .. "/class/powercap/intel-rapl:0/energy_uj"}}.code == 0)
  local r = inner([[
local s, notes = power.sources()
print(json.encode({n = #s, notes = notes}))
]], {BENCHRUN_SYSFS_ROOT = root, BENCHRUN_NVML = dir .. "/no-such-nvml.so"})
  local all = table.concat(r.notes, "\n")
  -- root reads a mode-000 file anyway: then the zone is a source and no note is due
  local f = io.open(root .. "/class/powercap/intel-rapl:0/energy_uj")
  if f then
    f:close()
    T.eq(r.n, 1, "root: the zone is a source")
  else
    T.eq(r.n, 0, "no source")
    assert(all:find("not readable: root only since Linux 5.10", 1, true), all)
  end
  assert(all:find("hwmon: no " .. root .. "/class/hwmon", 1, true), all)
end)

-- A window over writes made while the sampler runs: RAPL's package wraps at
-- its range (999 J -> 1000 J = 0 -> 4 J: 5 J), DRAM rises 3 J, the AMD GPU
-- draws a steady 50 W, and the package throttle counter rises once.
local WINDOW = [[
local root = os.getenv("T_ROOT")
local pc = root .. "/class/powercap"
local s = assert(power.sampler{interval = 0.02, file = os.getenv("T_FILE")})
s:start()
clock.sleep(0.15)
local t0 = clock.now()
clock.sleep(0.1)
put(pc .. "/intel-rapl:0/energy_uj", 999900000)
put(pc .. "/intel-rapl:0:1/energy_uj", 101000000)
clock.sleep(0.1)
put(pc .. "/intel-rapl:0/energy_uj", 4000000)
put(pc .. "/intel-rapl:0:1/energy_uj", 103000000)
put(root .. "/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count", 11)
clock.sleep(0.15)
local t1 = clock.now()
clock.sleep(0.1)
local series = s:stop()
print(json.encode({w = s:window(t0, t1), n = #series.samples, gaps = series.gaps, last = series.samples[#series.samples]}))
]]

T.case("window: a counter's wrap at max_energy_range_uj, a power source integrated, throttling seen", function()
  local root = fake_tree("window")
  local file = dir .. "/window-samples.jsonl"
  local r = inner(WINDOW, {BENCHRUN_SYSFS_ROOT = root, BENCHRUN_NVML = dir .. "/none.so", T_ROOT = root, T_FILE = file})
  local w = r.w
  T.eq(r.gaps, 0, "no gap")
  T.near(w.window_s, w.covered_s, 1e-9, "covered the whole window")
  T.near(w.by_domain.cpu, 5, 1e-6, "the package's 5 J across the wrap")
  T.near(w.by_domain.dram, 3, 1e-6, "dram")
  T.near(w.by_domain.gpu, 50 * w.covered_s, 1e-6, "the GPU's steady 50 W")
  T.near(w.energy_j, 8 + 50 * w.covered_s, 1e-6, "total")
  T.near(w.avg_w, w.energy_j / w.covered_s, 1e-9, "avg_w")
  assert(w.peak_w > 50 + 5 / 0.05, "peak_w: the wrap's interval: " .. w.peak_w)
  T.eq(w.max_temp_c, 60, "the hottest source")
  T.eq(w.gpu_max_temp_c, 60, "the GPU's")
  assert(w.throttled_s > 0 and w.throttled_s < 0.1, "one interval throttled: " .. tostring(w.throttled_s))
  T.near(w.throttle_known_s, w.window_s, 1e-9, "throttle known throughout")
  -- samples.jsonl: one JSON line per sample, as the sampler took them
  local lines = 0
  for line in io.lines(file) do
    local x = json.decode(line)
    T.eq(x.type, "power", "type")
    assert(x.t_ns and x.wall, "times")
    lines = lines + 1
  end
  T.eq(lines, r.n, "a line per sample")
  assert(r.last.energy_j >= w.energy_j, "a sample's energy_j is the running total")
end)

-- Bad readings while the sampler runs: a value past the counter's range, a
-- jump of 100 kJ in one interval, the file gone; then normal again.
local BAD = [[
local root = os.getenv("T_ROOT")
local e = root .. "/class/powercap/intel-rapl:0/energy_uj"
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.1)
local t0 = clock.now()
put(e, 2000000000)                 -- above max_energy_range_uj
clock.sleep(0.1)
put(e, 100000000)
clock.sleep(0.1)
put(e, 999000000)                  -- 899 J in one 20 ms interval: tens of kW
clock.sleep(0.1)
os.remove(e)                       -- gone
clock.sleep(0.1)
put(e, 999000000)
clock.sleep(0.15)
local t1 = clock.now()
local series = s:stop()
print(json.encode({w = s:window(t0, t1), gaps = gaps_of(series), count = series.gaps}))
]]

T.case("bad readings are gaps with a reason, never negative or absurd figures", function()
  local root = fake_tree("bad")
  local r = inner(BAD, {BENCHRUN_SYSFS_ROOT = root, BENCHRUN_NVML = dir .. "/none.so", T_ROOT = root})
  local all = table.concat(r.gaps, "\n")
  assert(all:find("rapl:package-0: energy_uj 2000000000 is outside 0..max_energy_range_uj", 1, true), all)
  assert(all:find("rapl:package-0: absurd reading: ", 1, true), all)
  assert(all:find("No such file or directory", 1, true), all)
  assert(r.count >= 4, "gap intervals: " .. r.count)
  local w = r.w
  assert(w.gaps >= 4 and w.gap_s > 0, "the window's gaps")
  assert(w.covered_s < w.window_s, "not covered throughout")
  assert(w.energy_j >= 0 and w.energy_j < 10000, "energy: " .. w.energy_j)
  assert(w.gap and w.gap:find("^rapl:package%-0: "), "the window names a gap: " .. tostring(w.gap))
end)

-- NVML: a steady 250 W through the fake's energy counter; temperature, SM
-- clock; the reason bits from a file the test changes.
local NV = [[
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.1)
local t0 = clock.now()
clock.sleep(0.2)
put(os.getenv("T_REASONS"), 4)     -- SwPowerCap: not throttling
clock.sleep(0.1)
put(os.getenv("T_REASONS"), 0x20)  -- SwThermalSlowdown
clock.sleep(0.1)
put(os.getenv("T_REASONS"), 0)
clock.sleep(0.2)
local t1 = clock.now()
s:stop()
local w = s:window(t0, t1)
local energy = require("bench.energy")
local idle = energy.idle(w)
print(json.encode({w = w, sources = (s:sources()), cell = energy.cell(w, {output_tokens = 1000, idle = idle})}))
]]

T.case("NVML: the energy counter gives J and J/token within 2% of the known power", function()
  local reasons = dir .. "/reasons"
  put(reasons, 0)
  for _, lib in ipairs({FAKE, LEGACY}) do
    local r = inner(NV, {BENCHRUN_SYSFS_ROOT = dir .. "/empty", BENCHRUN_NVML = lib, FAKE_NVML_POWER_MW = "250000",
                         FAKE_NVML_TEMP = "71", FAKE_NVML_REASONS = "@" .. reasons, T_REASONS = reasons})
    local what = lib == FAKE and "current " or "legacy "
    local src = r.sources[1]
    T.eq(src.name, "nvml:0", what .. "source")
    T.eq(src.detail, "Fake NVML GPU 0 (energy counter)", what .. "detail")
    T.eq(table.concat(src.gives, ","), "energy,temp,clock,throttle", what .. "gives")
    local w = r.w
    T.near(w.avg_w, 250, 250 * 0.02, what .. "avg W")
    T.near(w.energy_j, 250 * w.window_s, 250 * w.window_s * 0.02, what .. "J")
    T.near(r.cell.j_per_token, 250 * w.window_s / 1000, 250 * w.window_s / 1000 * 0.02, what .. "J/token")
    T.near(r.cell.tok_per_w, 1000 / (250 * w.window_s), 1000 / (250 * w.window_s) * 0.02, what .. "tok/s per W")
    T.eq(w.max_temp_c, 71, what .. "°C")
    T.eq(w.min_clock_mhz, 1980, what .. "SM clock")
    T.eq(w.reasons, 0x24, what .. "reason bits seen")
    assert(w.throttled_s > 0.05 and w.throttled_s < 0.2, what .. "throttled only under 0x20: " .. w.throttled_s)
    T.eq(r.cell.throttled, true, what .. "the cell ran throttled")
  end
end)

-- Power readings no GPU can give are gaps that name the source and the
-- value: above 10 kW, and the driver's -1 through the unsigned mW
-- (4294967.295 W); so are a counter's gigajoule jump, a reset, a lost GPU.
T.case("NVML without an energy counter: power integrated; absurd and negative power, a counter's absurd jump, "
    .. "a reset and a lost GPU are gaps", function()
  local mw = dir .. "/mw"
  put(mw, 300000)
  local r = inner([[
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.1)
each(os.getenv("T_MW"), {20000000, 300000, -1, 300000})   -- 20 kW; -1 as the unsigned mW NVML returns
local series = s:stop()
print(json.encode({w = s:window(series.samples[1].t_ns, series.samples[#series.samples].t_ns),
                   src = (s:sources())[1], gaps = gaps_of(series)}))
]], {BENCHRUN_SYSFS_ROOT = dir .. "/empty", BENCHRUN_NVML = FAKE, FAKE_NVML_ENERGY_MJ = "na",
     FAKE_NVML_POWER_MW = "@" .. mw, T_MW = mw})
  T.eq(r.src.detail, "Fake NVML GPU 0 (power, integrated)", "detail")
  T.eq(r.src.gives[1], "power", "gives power")
  T.near(r.w.avg_w, 300, 1e-6, "integrated W over the covered part")
  local reasons = table.concat(r.gaps, "\n")
  assert(reasons:find("nvml:0: absurd reading: 20000.0 W", 1, true), reasons)
  assert(reasons:find("nvml:0: absurd reading: 4294967.3 W", 1, true), reasons)
  assert(r.w.gaps >= 4, "two intervals each (the reading, and the one after it): " .. r.w.gaps)
  assert(r.w.covered_s < r.w.window_s, "not covered throughout")
  local mj = dir .. "/mj"
  put(mj, 5000000)
  local g = inner([[
local f = os.getenv("T_MJ")
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.1)
-- then a gigajoule in one interval (absurd), back (the driver reloaded), NVML_ERROR_GPU_IS_LOST
each(f, {5001000, 1000005001000, 1000, "err:15"})
print(json.encode({gaps = gaps_of(s:stop())}))
]], {BENCHRUN_SYSFS_ROOT = dir .. "/empty", BENCHRUN_NVML = FAKE, FAKE_NVML_ENERGY_MJ = "@" .. mj, T_MJ = mj})
  local all = table.concat(g.gaps, "\n")
  assert(all:find("nvml:0: absurd reading: 1000000000 J in ", 1, true), all)
  assert(all:find("nvml:0: the counter went back from 1000005001.000 J to 1.000 J (reset)", 1, true), all)
  assert(all:find("nvml:0: NVML: GPU is lost", 1, true), all)
end)

-- AMD without RAPL in powercap (a kernel with the amd_energy hwmon driver
-- instead): hwmonN/name "amd_energy", energyN_input in µJ, energyN_label
-- "EcoreNNN" per core and "EsocketN" per socket.
T.case("amd_energy: the sockets' counters are the CPU source where RAPL has no package", function()
  local root = dir .. "/amd"
  local hw = root .. "/class/hwmon/hwmon3"
  mkdir(hw)
  put(hw .. "/name", "amd_energy")
  local files = {{"Ecore000", 1000000}, {"Ecore001", 2000000}, {"Esocket0", 50000000}, {"Esocket1", 60000000}}
  for k, f in ipairs(files) do
    put(hw .. "/energy" .. k .. "_label", f[1])
    put(hw .. "/energy" .. k .. "_input", f[2])
  end
  local r = inner([[
local hw = os.getenv("T_HW")
local list, notes = power.sources()
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.1)
local t0 = clock.now()
clock.sleep(0.05)
put(hw .. "/energy1_input", 9000000)    -- a core: inside its socket, not counted
put(hw .. "/energy3_input", 53000000)   -- socket 0: 3 J
put(hw .. "/energy4_input", 62000000)   -- socket 1: 2 J
clock.sleep(0.15)
local t1 = clock.now()
clock.sleep(0.05)
s:stop()
print(json.encode({sources = list, notes = notes, w = s:window(t0, t1)}))
]], {BENCHRUN_SYSFS_ROOT = root, BENCHRUN_NVML = dir .. "/none.so", T_HW = hw})
  local s = by_name(r.sources)
  T.eq(#r.sources, 4, "the four counters: " .. json.encode(r.sources))
  for _, name in ipairs({"Esocket0", "Esocket1"}) do
    local src = s["hwmon3:amd_energy/" .. name]
    T.eq(src.counted, true, name .. " counted")
    T.eq(src.domain, "cpu", name .. " is CPU energy")
    T.eq(src.detail, "hwmon energy counter", name .. " detail")
  end
  T.eq(s["hwmon3:amd_energy/Ecore000"].counted, false, "a core's counter: listed only")
  T.eq(s["hwmon3:amd_energy/Ecore000"].detail, "hwmon energy counter (listed, not counted)", "core detail")
  assert(table.concat(r.notes, "\n"):find("rapl: no " .. root .. "/class/powercap", 1, true), json.encode(r.notes))
  T.eq(r.w.gaps, 0, "no gap")
  T.near(r.w.by_domain.cpu, 5, 1e-6, "the sockets' 3 J + 2 J, not the core's")
  T.near(r.w.energy_j, 5, 1e-6, "total")
end)

-- CPU throttling from the clock (docs/power.md): 4 CPUs with acpi-cpufreq's
-- files (kHz; cpuinfo_max_freq the base clock) and /proc/stat in the
-- kernel's format under BENCHRUN_PROC_ROOT. The test says which CPUs are
-- busy (their jiffies go to user time, the others' to idle) and what clock
-- each runs at. With `counter`, Intel's thermal_throttle counter is there too.
local function cpufreq_tree(name, counter)
  local root = dir .. "/" .. name
  for n = 0, 3 do
    local c = root .. "/sys/devices/system/cpu/cpu" .. n .. "/cpufreq"
    mkdir(c)
    put(c .. "/scaling_cur_freq", 800000)
    put(c .. "/scaling_max_freq", 3000000)
    put(c .. "/cpuinfo_max_freq", 3000000)
    put(c .. "/cpuinfo_min_freq", 800000)
  end
  mkdir(root .. "/sys/devices/system/cpu/cpufreq")   -- the policies' folder: no CPU
  mkdir(root .. "/proc")
  if counter then
    local c = root .. "/sys/devices/system/cpu/cpu0"
    mkdir(c .. "/thermal_throttle")
    put(c .. "/thermal_throttle/package_throttle_count", 5)
  end
  return {BENCHRUN_SYSFS_ROOT = root .. "/sys", BENCHRUN_PROC_ROOT = root .. "/proc", BENCHRUN_NVML = dir .. "/none.so",
          T_CPU = root .. "/sys/devices/system/cpu/cpu", T_STAT = root .. "/proc/stat"}
end

-- phase(name, busy CPUs, their clocks, cap): each changes the machine, lets
-- the sampler see it, then measures a window of 0.15 s
local CPUFREQ = [==[
local cpu, stat = os.getenv("T_CPU"), os.getenv("T_STAT")
local jiffies = {}
for n = 0, 3 do jiffies[n] = {busy = 0, idle = 0} end
local function tick(busy)   -- 100 jiffies pass on every CPU
  local lines, bu, id = {}, 0, 0
  for n = 0, 3 do
    local j = jiffies[n]
    if busy[n] then j.busy = j.busy + 100 else j.idle = j.idle + 100 end
    bu, id = bu + j.busy, id + j.idle
    lines[#lines + 1] = string.format("cpu%d %d 0 0 %d 0 0 0 0 0 0", n, j.busy, j.idle)
  end
  table.insert(lines, 1, string.format("cpu  %d 0 0 %d 0 0 0 0 0 0", bu, id))
  lines[#lines + 1] = "intr 12345 0 0\nctxt 67890\nbtime 1733456789\nprocesses 100"
  put(stat, table.concat(lines, "\n"))
end
tick({})
local list = power.sources()
local s = assert(power.sampler{interval = 0.02})
s:start()
clock.sleep(0.06)
local windows = {}
local function phase(name, busy, khz, cap)
  tick(busy)
  for n, v in pairs(khz) do put(cpu .. n .. "/cpufreq/scaling_cur_freq", v) end
  if cap then put(cpu .. "0/cpufreq/scaling_max_freq", cap) end
  clock.sleep(0.15)
  local t0 = clock.now()
  clock.sleep(0.15)
  windows[#windows + 1] = {name, t0, clock.now()}
  clock.sleep(0.06)   -- a sample past the window's end before the next change (its interval is the window's last)
end
local B2, B4 = {[0] = true, [1] = true}, {[0] = true, [1] = true, [2] = true, [3] = true}
phase("light", B2, {[0] = 3000000, [1] = 3000000})
phase("hot", B2, {[0] = 2400000, [1] = 2400000})
phase("heavy", B4, {[0] = 2400000, [1] = 2400000, [2] = 2400000, [3] = 2400000})
phase("heavy-hot", B4, {[0] = 2000000, [1] = 2000000, [2] = 2000000, [3] = 2000000})
phase("idle", {}, {[0] = 800000, [1] = 800000, [2] = 800000, [3] = 800000})
phase("capped", {}, {}, 2000000)
clock.sleep(0.05)
s:stop()
local out = {sources = list}
for _, w in ipairs(windows) do out[w[1]] = s:window(w[2], w[3]) end
print(json.encode(out))
]==]

T.case("cpufreq: busy CPUs' clock drop and a lowered cap are throttling; idle CPUs' low clock is not", function()
  local r = inner(CPUFREQ, cpufreq_tree("cpufreq"))
  local src = by_name(r.sources).cpufreq
  T.eq(src.detail, "4 CPUs: throttled when scaling_max_freq is lowered or the busy CPUs' clock drops 15%", "detail")
  T.eq(src.gives[1], "throttle", "gives throttling")
  T.eq(src.counted, false, "no energy")
  local function check(name, throttled)
    local w = r[name]
    T.near(w.throttle_known_s, w.window_s, 1e-9, name .. ": known throughout")
    if throttled then
      assert(w.throttled_s > 0.5 * w.window_s, name .. ": throttled: " .. json.encode(w))
    else
      T.eq(w.throttled_s, 0, name .. ": not throttled")
    end
  end
  check("light", false)       -- 2 CPUs busy at 3.0 GHz, 2 idle at 0.8 GHz
  check("hot", true)          -- the same load at 2.4 GHz: 80% of 3.0
  check("heavy", false)       -- 4 busy at 2.4 GHz: a heavier load than any before, no yardstick yet
  check("heavy-hot", true)    -- 4 busy at 2.0 GHz: 83% of 2.4
  check("idle", false)        -- nothing busy, every clock at 0.8 GHz
  check("capped", true)       -- idle, but cpu0's scaling_max_freq lowered from 3.0 to 2.0 GHz
end)

T.case("cpufreq: with thermal_throttle counters (Intel) the clock is not judged; a lowered cap still is", function()
  local r = inner(CPUFREQ, cpufreq_tree("cpufreq-intel", true))
  local s = by_name(r.sources)
  T.eq(s.cpufreq.detail, "4 CPUs: throttled when scaling_max_freq is lowered (the clock: thermal_throttle counters tell)",
       "detail")
  T.eq(s["cpu-throttle:package-0"].gives[1], "throttle", "the counter")
  for _, name in ipairs({"light", "hot", "heavy", "heavy-hot", "idle"}) do
    T.eq(r[name].throttled_s, 0, name .. ": the counter did not rise")
  end
  assert(r.capped.throttled_s > 0.5 * r.capped.window_s, "capped: " .. json.encode(r.capped))
end)

T.case("no source at all: no energy figure, not 0", function()
  local r = inner([[
local s = assert(power.sampler{interval = 0.02})
s:start()
local t0 = clock.now()
clock.sleep(0.1)
local t1 = clock.now()
s:stop()
local w = s:window(t0, t1)
print(json.encode({w = w, cell = require("bench.energy").cell(w, {output_tokens = 10})}))
]], {BENCHRUN_SYSFS_ROOT = dir .. "/empty", BENCHRUN_NVML = dir .. "/none.so"})
  T.eq(r.w.energy_j, nil, "no energy_j")
  T.eq(r.w.by_domain, nil, "no domains")
  T.eq(r.cell.note, "no power source", "the cell says so")
  T.eq(r.cell.j_per_token, nil, "no J/token")
end)

T.case("sampler: arguments checked, close is safe twice", function()
  T.checkerr("interval: expected 0.001..3600", power.sampler, {interval = 0})
  T.checkerr("capacity: expected 2..100000000", power.sampler, {capacity = 1})
  local s = power.sampler()
  T.checkerr("expected t1 > t0", s.window, s, 10, 5)
  s:close()
  s:close()
  T.checkerr("power.sampler: closed", s.start, s)
end)

T.done()
