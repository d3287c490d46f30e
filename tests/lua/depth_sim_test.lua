-- Exact token counts and the context depth sweep against `benchrun sim`
-- (issue 16, items 1 and 2): the sim's llama.cpp /tokenize, /detokenize and
-- /props in the captured wire format (tests/fixtures/llama-server), its
-- counts equal to its usage.prompt_tokens, bench.tokenizer, bench.depth's
-- prompts built to the exact count, prefill rates beside the server's own,
-- input_tokens_source on every record, and the bad inputs: a server
-- without /tokenize (falls back, says so), a depth larger than the context
-- (a note in the record and the report), bad plan values.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http, json = require("bench.http"), require("cjson")
local openai, tokenizer, depth = require("bench.openai"), require("bench.tokenizer"), require("bench.depth")
local FIX = os.getenv("BENCHRUN_TESTS") .. "/fixtures/llama-server/"

local function post(url, body)
  local r = http.request{url = url, method = "POST", body = type(body) == "string" and body or json.encode(body),
                         headers = {["Content-Type"] = "application/json"}, timeout = 30}
  return r.status, r.body, r.headers
end

local function keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return table.concat(list, ",")
end

T.case("sim /tokenize, /detokenize and /props have llama.cpp's shapes", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--ctx-size", "2048"}
  local st, body = post(s.url .. "/tokenize", {content = "Hello world, this is a test.", add_special = true})
  T.eq(st, 200, "status")
  local fx = json.decode(T.read_file(FIX .. "tokenize.json"))
  local v = json.decode(body)
  T.eq(keys(v), keys(fx), "tokenize keys")
  assert(body:match('^{"tokens":%[%d+,') and not body:find(".", 1, true), "ids are integers on the wire: " .. body)
  -- pieces: a piece that is not valid UTF-8 is a list of its bytes, as llama.cpp sends
  st, body = post(s.url .. "/tokenize", {content = "Hi 🦙 llama", with_pieces = true})
  v = json.decode(body)
  fx = json.decode(T.read_file(FIX .. "tokenize-pieces.json"))
  T.eq(keys(v.tokens[1]), keys(fx.tokens[1]), "piece keys")
  local bytes_piece = false
  for _, p in ipairs(v.tokens) do if type(p.piece) == "table" then bytes_piece = true end end
  assert(bytes_piece, "a piece split inside the emoji is a list of bytes: " .. body)
  -- detokenize gives the text back
  local _, tb = post(s.url .. "/tokenize", {content = "Grüße, 🦙!"})
  local ids = json.decode(tb).tokens
  st, body = post(s.url .. "/detokenize", {tokens = ids})
  T.eq(keys(json.decode(body)), keys(json.decode(T.read_file(FIX .. "detokenize.json"))), "detokenize keys")
  T.eq(json.decode(body).content, "Grüße, 🦙!", "round trip")
  -- no content: an empty list; a body that is not JSON: 500 with an error object
  local _, nb = post(s.url .. "/tokenize", {})
  T.eq(nb, T.read_file(FIX .. "tokenize-no-content.json"), "no content")
  st, body = post(s.url .. "/tokenize", "{no")
  T.eq(st, 500, "bad JSON status")
  T.eq(keys(json.decode(body).error), keys(json.decode(T.read_file(FIX .. "tokenize-bad-json.json")).error), "error keys")
  -- /props: the keys of the real one, the slot's context
  local r = http.request{url = s.url .. "/props", timeout = 10}
  local props, fxp = json.decode(r.body), json.decode(T.read_file(FIX .. "props.json"))
  T.eq(keys(props), keys(fxp), "props keys")
  T.eq(keys(props.default_generation_settings), keys(fxp.default_generation_settings), "generation settings keys")
  T.eq(math.tointeger(props.default_generation_settings.n_ctx), 2048, "n_ctx")
end)

T.case("the sim's /tokenize count equals its usage.prompt_tokens", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = "llama.cpp"}
  local tok = tokenizer.for_server{base_url = s.url, dialect = "llama.cpp"}
  for _, text in ipairs{"a", "Hello world", "Grüße, 🦙! " .. string.rep("lorem ipsum ", 50)} do
    local n, src = tok:count(text)
    T.eq(src, "tokenizer", "source")
    local rec = c:complete{prompt = text, max_tokens = 2}
    assert(rec.ok, tostring(rec.error))
    T.eq(rec.prompt_tokens, n, "usage.prompt_tokens of " .. #text .. " bytes")
    rec = c:chat{prompt = text, max_tokens = 2}
    T.eq(rec.prompt_tokens, n, "chat usage of " .. #text .. " bytes")
    T.eq(rec.input_tokens_source, "usage", "a chat record without a tokenizer count")
  end
  T.eq(tok:context(), 4096, "context from /props")
end)

T.case("depth.build makes prompts of the exact count", function()
  local s <close> = T.sim{"--dialect", "llama.cpp"}
  local tok = tokenizer.for_server{base_url = s.url, dialect = "llama.cpp"}
  for _, n in ipairs{1, 7, 512, 4096} do
    local text, count, src, exact = depth.build(tok, n, "seed" .. n)
    T.eq(src, "tokenizer", "source")
    assert(exact, "exact at " .. n)
    T.eq(count, n, "count")
    T.eq(#tok:tokenize(text), n, "the server agrees")
    local more, m = depth.build(tok, n + 100, "other", text)
    T.eq(more:sub(1, #text), text, "the prefix is kept")
    T.eq(m, n + 100, "prefix + suffix")
  end
end)

T.case("depth.measure: prefill = tokens / TTFT, within 10% of timings.prompt_per_second", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--prefill-tps", "40000", "--decode-tps", "400", "--ctx-size", "16384"}
  local c = openai.client{base_url = s.url, dialect = "llama.cpp"}
  local recs = {}
  local list = depth.sweep{client = c, depths = {0, 2048, 8192}, tg = 16,
                           on_record = function(r) recs[#recs + 1] = r end}
  T.eq(#list, 3, "three depths")
  T.eq(#recs, 6, "a cold and a warm request per depth")
  for _, r in ipairs(list) do
    T.eq(r.label_pp, "pp512 @ d" .. r.depth, "label")
    T.eq(r.label_tg, "tg16 @ d" .. r.depth, "tg label")
    assert(r.exact, "exact prompt at depth " .. r.depth)
    for _, ph in ipairs{"cold", "warm"} do
      local f = r[ph]
      assert(f.ok, ph .. " ok at " .. r.depth)
      T.eq(f.prompt_tokens, r.depth + 512, "prompt tokens")
      T.eq(f.input_tokens_source, "tokenizer", "source")
      local rel = math.abs(f.prefill_tps - f.server_prefill_tps) / f.server_prefill_tps
      assert(rel < 0.10, string.format("d%d %s: %.0f vs the server's %.0f", r.depth, ph, f.prefill_tps, f.server_prefill_tps))
      assert(f.decode_tps and f.decode_tps > 200 and f.decode_tps < 800, "decode near 400: " .. tostring(f.decode_tps))
    end
  end
  for _, rec in ipairs(recs) do
    T.eq(rec.input_tokens_source, "tokenizer", "record source")
    assert(rec.depth and rec.depth_phase, "depth fields on the record")
  end
end)

T.case("vLLM's /tokenize (the sim's openai dialect): counts = usage, max_model_len, found by probing", function()
  local s <close> = T.sim{"--dialect", "openai", "--decode-tps", "0", "--ctx-size", "8192"}
  local st, body = post(s.url .. "/tokenize", {model = "sim-model", prompt = "Hello world"})
  T.eq(st, 200, "status")
  local v = json.decode(body)
  T.eq(keys(v), "count,max_model_len,token_strs,tokens", "vLLM's TokenizeResponse")
  T.eq(v.count, #v.tokens, "count")
  st, body = post(s.url .. "/detokenize", {model = "sim-model", tokens = v.tokens})
  T.eq(json.decode(body).prompt, "Hello world", "vLLM's DetokenizeResponse")
  T.eq(post(s.url .. "/tokenize", {model = "sim-model"}), 400, "no prompt: 400 as vLLM")
  local c = openai.client{base_url = s.url, dialect = "vllm"}
  for _, dialect in ipairs{"vllm", "openai"} do
    local tok = tokenizer.for_server{base_url = s.url, dialect = dialect, model = "sim-model"}
    local text = "Grüße, 🦙! " .. string.rep("lorem ipsum ", 30)
    local n, src = tok:count(text)
    T.eq(src, "tokenizer", dialect .. ": source")
    T.eq(tok.kind, "vllm", dialect .. ": vLLM's format")
    T.eq(c:complete{prompt = text, max_tokens = 2}.prompt_tokens, n, dialect .. ": usage.prompt_tokens")
    T.eq(tok:detokenize(assert(tok:tokenize(text))), text, dialect .. ": round trip")
    T.eq(tok:context(), 8192, dialect .. ": max_model_len")
  end
end)

T.case("a server without /tokenize: usage, calibrated, and it says so", function()
  -- LM Studio's server has no tokenizer endpoint: the probe's 404s are the note
  local s <close> = T.sim{"--dialect", "lmstudio", "--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = "lmstudio"}
  local tok = tokenizer.for_server{base_url = s.url, dialect = "openai"}
  local n, src = tok:count(string.rep("x", 400))
  T.eq(src, "estimate", "no tokenizer: an estimate")
  T.eq(n, 100, "~4 bytes a token")
  T.eq(tok.kind, "usage", "kind")
  assert(tok.note:find("no tokenizer endpoint", 1, true), tok.note)
  assert(tok.note:find("404", 1, true), "the note says what the server answered: " .. tok.note)
  local r = depth.measure{client = c, tokenizer = tok, depth = 1024, tg = 4}
  T.eq(r.input_tokens_source, "estimate", "the prompt was built by estimate")
  assert(r.note:find("calibrated from the first response", 1, true), r.note)
  T.eq(r.cold.input_tokens_source, "usage", "its count is the server's usage")
  T.near(r.cold.prompt_tokens, 1536, 16, "calibrated prompt near the target")
  -- a record without usage: an estimate at the calibrated ratio, said so
  local plain = openai.client{base_url = s.url, dialect = "lmstudio", include_usage = false}
  local first = plain:chat{prompt = string.rep("y", 400), max_tokens = 2, stream = false}
  T.eq(first.input_tokens_source, "usage", "a whole answer has usage")
  local rec = plain:chat{prompt = string.rep("y", 400), max_tokens = 2}
  T.eq(rec.input_tokens_source, "estimate", "a stream without usage")
  assert(rec.input_tokens_note:find("calibrated", 1, true), rec.input_tokens_note)
  T.eq(rec.input_tokens, 100, "400 bytes at the calibrated 4 bytes a token")
end)

T.case("Ollama: prompt_eval_count is the count, the estimate calibrated from it", function()
  local s <close> = T.sim{"--dialect", "ollama", "--decode-tps", "0"}
  local c = openai.client{base_url = s.url, dialect = "ollama-native", model = "sim-model"}
  local r = depth.measure{client = c, depth = 1024, tg = 4}
  T.eq(tokenizer.for_server{base_url = s.url, dialect = "ollama-native"}.kind, "usage", "no tokenizer endpoint")
  assert(r.note:find("prompt_eval_count", 1, true), r.note)
  T.eq(r.cold.input_tokens_source, "usage", "prompt_eval_count")
  T.near(r.cold.prompt_tokens, 1536, 16, "calibrated prompt near the target")
end)

T.case("a depth larger than the context: a note, no request", function()
  local s <close> = T.sim{"--dialect", "llama.cpp", "--ctx-size", "1024"}
  local c = openai.client{base_url = s.url, dialect = "llama.cpp"}
  local sent = 0
  local r = depth.measure{client = c, depth = 4096, on_record = function() sent = sent + 1 end}
  assert(r.skipped, "skipped")
  T.eq(sent, 0, "no request")
  assert(r.note:find("more than the server's context of 1024", 1, true), r.note)
  T.checkerr("depth: expected an integer >= 0", depth.measure, {client = c, depth = -1})
end)

T.case("a plan's depth axis: cells, the report's table and charts, a depth over the context", function()
  local dir = T.tmpdir()
  local rc, data, rdir = T.run_plan(dir, [[
name: depth-test
server: {backend: sim, args: ["--dialect", "llama.cpp", "--ctx-size", "4096", "--prefill-tps", "50000", "--decode-tps", "0"]}
models:
  a: {model: a}
  b: {model: b}
workload: {prompts: seed}
max_tokens: 8
matrix:
  model: [a, b]
  depth: [0, 1024, 8192]
]])
  T.eq(#data.cells, 6, "six cells")
  -- --check's count: a depth cell sends a cold and a warm request, not the workload
  T.eq(require("bench.plan").cell_requests({}, {depth = 1024, max_tokens = 8}), 2, "two requests per repeat")
  local ids = {}
  for _, c in ipairs(data.cells) do ids[c.id] = c end
  assert(ids["a/d1024"], "ids carry d<depth>")
  T.eq(ids["a/d1024"].status, "ok", "a measured depth")
  T.eq(ids["a/d8192"].status, "failed", "a depth over the context fails the cell")
  local found = false
  for _, r in ipairs(data.records) do
    assert(r.input_tokens_source, "every record has input_tokens_source")
    if r.cell == "a/d8192" then
      T.eq(r.error, "depth_exceeds_context", "the record says why")
      found = true
    end
  end
  assert(found, "a record for the depth over the context")
  local md = T.read_file(rdir .. "/report.md")
  assert(md:find("## Context depth", 1, true), "the depth section")
  assert(md:find("| a | pp512 @ d1024 |", 1, true), "llama-bench's test names")
  assert(md:find("| a | tg8 @ d1024 |", 1, true), "tg rows")
  assert(md:find("| b | pp512 @ d8192 | not measured", 1, true), "not measured")
  assert(md:find("more than the server's context of 4096", 1, true), "the note")
  local chart = assert(T.read_file(rdir .. "/charts/depth_prefill.svg"), "prefill chart")
  assert(chart:find("a cold", 1, true) and chart:find("b warm", 1, true), "a line per variant and phase")
  assert(T.read_file(rdir .. "/charts/depth_decode.svg"), "decode chart")
  T.eq(rc ~= nil, true, "the run returned")
end)

T.case("a synthetic workload's prompts have exactly their input tokens by the server's tokenizer", function()
  local dir = T.tmpdir()
  for _, dialect in ipairs{"llama.cpp", "lmstudio"} do
    local _, data, rdir = T.run_plan(dir, string.format([[
name: exact-lengths
server: {backend: sim, args: ["--dialect", "%s", "--decode-tps", "0"]}
workload: {synthetic: {input: {dist: uniform, min: 40, max: 300}, output: 4}}
requests: 12
]], dialect))
    local targets = data.records[1] and {}
    local w = require("bench.workload").synthetic{input = {dist = "uniform", min = 40, max = 300}, output = 4}
    for i, r in ipairs(data.records) do
      targets[i] = w:next(r.index).input_tokens
      if dialect == "llama.cpp" then
        T.eq(r.prompt_tokens, targets[i], "request " .. r.index .. ": the sim counted the target")
      end
    end
    local cell = data.cells[1]
    -- report.md says so where the counts are estimates (an ordinary run, no depth)
    local md = assert(T.read_file(rdir .. "/report.md"))
    local flag = "prompt token counts estimated (no tokenizer endpoint)"
    if dialect == "llama.cpp" then
      assert(cell.prompt_lengths:find("exactly", 1, true), tostring(cell.prompt_lengths))
      T.eq(md:find(flag, 1, true), nil, "exact lengths: no estimate flag in report.md")
    else
      assert(cell.prompt_lengths:find("no tokenizer endpoint", 1, true), tostring(cell.prompt_lengths))
      assert(md:find("## Errors and warnings", 1, true), "report.md's warnings section:\n" .. md)
      assert(md:find(flag, 1, true), "the cell's flag in report.md:\n" .. md)
      assert(md:find("- **" .. tostring(cell.id) .. "**: " .. cell.prompt_lengths, 1, true),
             "the cell's note in full in report.md:\n" .. md)
    end
  end
end)

T.case("plan: depth values are checked with file, line and field", function()
  local P = require("bench.plan")
  local dir = T.tmpdir()
  for _, case in ipairs{{"[0, -1]", "matrix.depth[2]"}, {"[0, deep]", "matrix.depth[2]"}, {"[1.5]", "matrix.depth[1]"}} do
    local path = dir .. "/p.yaml"
    local f = assert(io.open(path, "w"))
    f:write("name: x\nserver: {backend: sim}\nmatrix:\n  depth: " .. case[1] .. "\n")
    f:close()
    local plan, errs = P.load(path, {})
    assert(not plan, "rejected: " .. case[1])
    local text = table.concat(errs, "\n")
    assert(text:find("p.yaml:4", 1, true), "file and line: " .. text)
    assert(text:find(case[2], 1, true), "field " .. case[2] .. ": " .. text)
  end
  local path = dir .. "/q.yaml"
  local f = assert(io.open(path, "w"))
  f:write("name: x\nserver: {backend: sim}\ndepth: 4096\n")
  f:close()
  local plan = assert(P.load(path, {}))
  T.eq(plan.depth, 4096, "a base depth")
end)

T.done()
