-- bench.yaml from Lua: results and errors as scripts see them. The corpus of
-- real documents is in tests/yaml-cases (tests/c/test_yaml.c).
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")

local function tmpfile(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(content)
  f:close()
  return p
end

T.case("decode types scalars by the YAML 1.2 core schema", function()
  local d = assert(yaml.decode("a: 1\nb: 0x10\nc: 0o10\nd: 1.0\ne: -.inf\nf: true\ng: ~\nh: '1'\ni: yes\n"))
  T.eq(math.type(d.a), "integer", "a")
  T.eq(d.b, 16, "hex")
  T.eq(d.c, 8, "octal")
  T.eq(math.type(d.d), "float", "d")
  T.eq(d.e, -math.huge, "-.inf")
  T.eq(d.f, true, "bool")
  T.eq(d.g, yaml.null, "null")
  T.eq(d.h, "1", "quoted stays a string")
  T.eq(d.i, "yes", "yes is a string in 1.2")
  local n = yaml.decode("x: .nan").x
  T.eq(n ~= n, true, "nan")
end)

T.case("yaml.null is cjson's null", function()
  T.eq(yaml.null, json.null, "same sentinel")
  T.eq(json.encode(yaml.decode("[1, ~]")), "[1,null]", "through json")
  T.eq(yaml.decode(""), yaml.null, "empty stream")
end)

T.case("errors are nil, 'name:line:col: what was expected'", function()
  local v, err = yaml.decode("a: [1, 2\n", "plan.yaml")
  T.eq(v, nil, "value")
  T.eq(err, "plan.yaml:2:1: did not find expected ',' or ']' while parsing a flow sequence (which started at 1:4)", "message")
  v, err = yaml.decode("a: 1\nb: 2\na: 3\n")
  T.eq(err, "(string):3:1: duplicate key 'a' in a mapping (expected unique keys)", "duplicate")
  v, err = yaml.decode("--- 1\n--- 2\n", "two.yaml")
  T.eq(err:find("^two.yaml:2:1: a second document") ~= nil, true, err)
end)

T.case("load_file: missing file, non-UTF-8, success", function()
  local v, err = yaml.load_file("/nonexistent/plan.yaml")
  T.eq(v, nil, "missing")
  T.eq(err, "/nonexistent/plan.yaml: No such file or directory", "missing message")
  local p = tmpfile("ok: true\nname: caf\xe9 au lait\n")
  v, err = yaml.load_file(p)
  os.remove(p)
  T.eq(v, nil, "latin-1")
  T.eq(err:find(p .. ":2:11: ", 1, true) == 1 and err:find("expected UTF-8 text", 1, true) ~= nil, true, err)
  p = tmpfile("--- {a: 1}\n--- [2]\n")
  local docs = assert(yaml.load_file_all(p))
  os.remove(p)
  T.eq(docs.n, 2, "documents")
  T.eq(docs[1].a, 1, "first")
  T.eq(docs[2][1], 2, "second")
end)

T.case("limits: depth, recursive aliases, billion laughs", function()
  local v, err = yaml.decode(string.rep("[", 10000) .. string.rep("]", 10000))
  T.eq(v, nil, "deep")
  T.eq(err, "(string):1:1001: nesting deeper than 1000 levels (expected at most 1000; see opts.max_depth)", "deep message")
  T.eq(yaml.decode("[[[1]]]", {max_depth = 2}), nil, "custom depth")
  T.eq(yaml.decode("[[1]]", {max_depth = 2})[1][1], 1, "custom depth ok")
  v, err = yaml.decode("a: &a\n  - *a\n")
  T.eq(err:find("recursive alias *a", 1, true) ~= nil, true, err)
  local lines = {"l0: &l0 [a, a, a, a, a, a, a, a, a, a]"}
  for i = 1, 9 do
    lines[#lines + 1] = ("l%d: &l%d [%s]"):format(i, i, ("*l" .. (i - 1) .. ", "):rep(9) .. "*l" .. (i - 1))
  end
  v, err = yaml.decode(table.concat(lines, "\n"))
  T.eq(v, nil, "laughs")
  T.eq(err:find("aliases expand to more than 1000000 nodes", 1, true) ~= nil, true, err)
  -- a few aliases are fine, and share the anchored table
  local d = assert(yaml.decode("base: &b {x: 1}\nuse: *b\n"))
  T.eq(d.base, d.use, "shared table")
end)

T.case("merge keys", function()
  local d = assert(yaml.decode("d: &d {a: 1, b: 2}\nm:\n  <<: *d\n  b: 3\n"))
  T.eq(d.m.a, 1, "merged")
  T.eq(d.m.b, 3, "explicit key wins")
  T.eq(d.m["<<"], nil, "no << key")
end)

T.case("positions side table", function()
  local doc, pos = yaml.decode("name: x\nload:\n  - {concurrency: 4}\n  - concurrency: [1, bad]\n",
                               "p.yaml", {positions = true})
  T.eq(pos[doc].line, 1, "root line")
  T.eq(pos[doc].keys.load.line, 2, "key line")
  T.eq(pos[doc].values.name.col, 7, "value col")
  local item = doc.load[2]
  T.eq(pos[doc.load].items[2].line, 4, "item line")
  T.eq(pos[item].values.concurrency.col, 18, "nested value col")
  T.eq(pos[item.concurrency].items[2].col, 22, "bad item col")
  T.eq(getmetatable(pos).__mode, "k", "weak keys")
  local v, p2 = yaml.decode("a: 1")
  T.eq(p2, nil, "no positions unless asked")
  T.eq(v.a, 1, "value")
end)

T.case("caller mistakes raise", function()
  T.checkerr("bad argument #1 to 'bench.yaml.decode'", yaml.decode, {})
  T.checkerr("max_depth must be", yaml.decode, "a", {max_depth = 0})
  T.checkerr("bad argument #1 to 'bench.yaml.load_file'", yaml.load_file)
end)

T.case("encode: sorted keys, quoted look-alikes, round trip", function()
  local plan = {name = "phase5", repeat_ = 3, env = {GGML_METAL_N_CB = "2", FLAG = "true"},
                args = {"--ctx-size", 8192, "-1", ""}, ratio = 0.5, whole = 2.0,
                empty = {}, nothing = yaml.null, text = "line1\nline2", colon = "a: b"}
  local text = yaml.encode(plan)
  T.eq(text, table.concat({
    "args:",
    "  - --ctx-size",
    "  - 8192",
    "  - \"-1\"",
    "  - \"\"",
    "colon: \"a: b\"",
    "empty: {}",
    "env:",
    "  FLAG: \"true\"",
    "  GGML_METAL_N_CB: \"2\"",
    "name: phase5",
    "nothing: null",
    "ratio: 0.5",
    "repeat_: 3",
    "text: \"line1\\nline2\"",
    "whole: 2.0",
    ""}, "\n"), "text")
  local back = assert(yaml.decode(text))
  T.eq(back.env.FLAG, "true", "string stays string")
  T.eq(back.args[3], "-1", "string -1")
  T.eq(math.type(back.whole), "float", "float stays float")
  T.eq(back.text, "line1\nline2", "newline")
  T.eq(back.nothing, yaml.null, "null")
  T.eq(yaml.encode(yaml.decode(text)), text, "stable")
  -- keys longer than YAML's 1024-character limit for implicit keys
  local long = ("k"):rep(1500)
  local t2 = {[long] = {a = 1}, short = "v"}
  local text2 = yaml.encode(t2)
  T.eq(text2:sub(1, 2), "? ", "explicit key")
  local back2 = assert(yaml.decode(text2))
  T.eq(back2[long].a, 1, "long key round trip")
end)

T.case("encode refuses what YAML cannot hold", function()
  local t = {}
  t.self = t
  T.checkerr("yaml.encode: value.self: a table contains itself", yaml.encode, t)
  T.checkerr("cannot encode a function", yaml.encode, {f = print})
  T.checkerr("not valid UTF-8", yaml.encode, {s = "\xff"})
  -- a shared table that is not a cycle is written twice
  local shared = {1}
  T.eq(yaml.encode({a = shared, b = shared}), "a:\n  - 1\nb:\n  - 1\n", "shared")
end)

T.case("100 MB input decodes (or fails with a message), no crash", function()
  if os.getenv("BENCHRUN_SANITIZED") then return end   -- too slow under ASan
  local line = "- {name: item, value: 12345, tags: [a, b, c], text: 'some quoted text here'}\n"
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  local chunk = line:rep(1000)
  local size = 0
  while size < 100 * 1024 * 1024 do f:write(chunk); size = size + #chunk end
  f:close()
  local v, err = yaml.load_file(p)
  os.remove(p)
  if v == nil then
    T.eq(type(err), "string", "message")
  else
    T.eq(v[1].value, 12345, "first")
    T.eq(#v, size // #line, "items")
  end
  v = nil
  collectgarbage()
end)

T.done()
