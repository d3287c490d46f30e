-- tools/check-layout.lua on a made-up tree: a require cycle and a library ->
-- phase edge fail the check; a long file and a long function are listed.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local proc = require("bench.proc")
local tool = os.getenv("BENCHRUN_TESTS") .. "/../tools/check-layout.lua"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function tree(files)
  local root = T.tmpdir()
  assert(proc.run{argv = {"mkdir", "-p", root .. "/scripts/bench/report", root .. "/scripts/phases", root .. "/engine"}}.code == 0)
  for path, text in pairs(files) do write(root .. "/" .. path, text) end
  return root
end

local function check(root)
  return proc.run{argv = {bench.executable, "run", tool, root}, timeout = 60}
end

T.case("a clean tree passes", function()
  local root = tree{["scripts/bench/a.lua"] = 'local b = require("bench.b")\nreturn {}\n',
                    ["scripts/bench/b.lua"] = 'return {}\n',
                    ["scripts/phases/p.lua"] = 'local a = require("bench.a")\nreturn {}\n'}
  local r = check(root)
  T.eq(r.code, 0, "exit: " .. r.stdout .. r.stderr)
  T.eq(r.stdout:find("0 failures", 1, true) ~= nil, true, r.stdout)
end)

T.case("a require cycle fails, lazy requires included", function()
  local root = tree{["scripts/bench/a.lua"] = 'local b = require("bench.b")\nreturn {}\n',
                    ["scripts/bench/b.lua"] = 'local M = {}\nfunction M.f() return require("bench.report").g() end\nreturn M\n',
                    ["scripts/bench/report/init.lua"] = 'local a = require("bench.a")\nreturn {}\n',
                    ["scripts/bench/c.lua"] = '-- require("bench.c") in a comment is no edge\nreturn {}\n'}
  local r = check(root)
  T.eq(r.code, 1, "exit: " .. r.stdout)
  T.eq(r.stdout:find("FAIL: require cycle: bench.a -> bench.b -> bench.report -> bench.a", 1, true) ~= nil, true, r.stdout)
  T.eq(r.stdout:find("bench.c -> bench.c", 1, true), nil, "comments are not code: " .. r.stdout)
end)

T.case("the library requiring a phase script fails", function()
  local root = tree{["scripts/bench/runner.lua"] = 'local ok, c = pcall(require, "phases.common")\nreturn {}\n',
                    ["scripts/phases/common.lua"] = 'return {}\n'}
  local r = check(root)
  T.eq(r.code, 1, "exit: " .. r.stdout)
  T.eq(r.stdout:find("FAIL: bench.runner (scripts/bench/runner.lua) requires phases.common", 1, true) ~= nil, true, r.stdout)
end)

T.case("long files and functions fail, unless they say why", function()
  local long = {"-- bench.x"}
  for i = 1, 720 do long[#long + 1] = "local v" .. i .. " = " .. i end
  local fn = {"local M = {}", "function M.big()"}
  for i = 1, 90 do fn[#fn + 1] = "  local x" .. i .. " = " .. i end
  fn[#fn + 1] = "end"
  fn[#fn + 1] = "-- long function: a parser's state machine"
  fn[#fn + 1] = "function M.parser()"
  for i = 1, 90 do fn[#fn + 1] = "  local y" .. i .. " = " .. i end
  fn[#fn + 1] = "end"
  fn[#fn + 1] = "return M"
  local reasoned = {"-- bench.z: long file: one table of 720 rows reads best whole"}
  for i = 1, 720 do reasoned[#reasoned + 1] = "local w" .. i .. " = " .. i end
  local cfn = {"/* engine/big.c */", "int big(int a) {"}
  for i = 1, 90 do cfn[#cfn + 1] = "  a += " .. i .. ";" end
  cfn[#cfn + 1] = "  return a;"
  cfn[#cfn + 1] = "}"
  local root = tree{["scripts/bench/x.lua"] = table.concat(long, "\n") .. "\n",
                    ["scripts/bench/y.lua"] = table.concat(fn, "\n") .. "\n",
                    ["scripts/bench/z.lua"] = table.concat(reasoned, "\n") .. "\n",
                    ["engine/big.c"] = table.concat(cfn, "\n") .. "\n"}
  local r = check(root)
  T.eq(r.code, 1, "exit: " .. r.stdout)
  T.eq(r.stdout:find("FAIL: scripts/bench/x.lua: 721 lines (over 700)", 1, true) ~= nil, true, r.stdout)
  T.eq(r.stdout:find("FAIL: scripts/bench/y.lua:2: function M.big is 92 lines", 1, true) ~= nil, true, r.stdout)
  T.eq(r.stdout:find("FAIL: engine/big.c:2: function big is 93 lines", 1, true) ~= nil, true, r.stdout)
  T.eq(r.stdout:find("M.parser", 1, true), nil, "a long function that says why: " .. r.stdout)
  T.eq(r.stdout:find("z.lua", 1, true), nil, "a long file that says why: " .. r.stdout)
  -- said why everywhere: it passes
  write(root .. "/scripts/bench/x.lua", "-- long file: generated\n" .. table.concat(long, "\n") .. "\n")
  table.insert(fn, 2, "-- long function: a test's")
  write(root .. "/scripts/bench/y.lua", table.concat(fn, "\n") .. "\n")
  table.insert(cfn, 2, "/* long function: a test's */")
  write(root .. "/engine/big.c", table.concat(cfn, "\n") .. "\n")
  r = check(root)
  T.eq(r.code, 0, "every reason given: " .. r.stdout)
end)

T.done()
