-- bench.workload: the seed's prompts, files, ShareGPT, synthetic lengths,
-- weighted mixes and multi-turn conversations; every one reproducible.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local W = require("bench.workload")
local json = require("cjson")

-- A temporary file name prefix (no folder needed, so no bench.proc).
local function tmpbase()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local written = {}
local function write(path, s)
  written[#written + 1] = path
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

T.case("seed prompts: the plan's five, Chinese originals, real puzzle and task", function()
  local w = W.seed()
  local want = {{"short", 100, "请用一句话解释量子计算"}, {"medium", 500, "写一个Python快速排序算法"},
                {"long", 2000, "详细解释深度学习的反向传播算法"}, {"reasoning", 500, "逻辑推理题"},
                {"instruction", 400, "指令跟随任务"}}
  for i, x in ipairs(want) do
    local r = w:next(i)
    T.eq(r.name, x[1], "name " .. i)
    T.eq(r.max_tokens, x[2], "max_tokens " .. i)
    T.eq(math.type(r.max_tokens), "integer", "max_tokens is an integer")
    T.eq(r.prompt:sub(1, #x[3]), x[3], "prompt " .. i)
  end
  -- the placeholders are replaced by real content
  T.eq(#w:next(4).prompt > 60, true, "reasoning prompt is a real puzzle")
  T.eq(#w:next(5).prompt > 60, true, "instruction prompt is a real task")
  T.eq(w:next(6).name, "short", "cycles")
  T.eq(W.seed{names = {"long"}}:next(3).name, "long", "names")
  T.eq(W.seed{max_tokens = 7}:next(3).max_tokens, 7, "max_tokens override")
  T.checkerr('workload.seed: unknown prompt "huge"', W.seed, {names = {"huge"}})
  T.checkerr("workload:next: expected an index >= 1, got 0", w.next, w, 0)
end)

T.case("file: JSON list, name map and JSONL", function()
  local dir = tmpbase()
  write(dir .. "-a.json", json.encode{"hello", {prompt = "two", max_tokens = 9, name = "b"}})
  local w = W.file(dir .. "-a.json", {max_tokens = 33})
  T.eq(w:next(1).prompt, "hello", "string entry")
  T.eq(w:next(1).max_tokens, 33, "default max_tokens")
  T.eq(w:next(2).name, "b", "name")
  T.eq(w:next(2).max_tokens, 9, "max_tokens")
  write(dir .. "-b.json", '{"short": {"prompt": "x", "max_tokens": 100}, "long": {"prompt": "y", "max_tokens": 2000}}')
  local m = W.file(dir .. "-b.json")
  T.eq(m:next(1).name, "long", "map sorted by name")
  T.eq(m:next(2).max_tokens, 100, "map max_tokens")
  write(dir .. "-c.jsonl", '{"prompt": "one"}\n\n{"messages": [{"role": "user", "content": "two"}]}\n')
  local l = W.file(dir .. "-c.jsonl")
  T.eq(l:next(1).prompt, "one", "jsonl 1")
  T.eq(l:next(2).messages[1].content, "two", "jsonl messages")
  write(dir .. "-d.jsonl", '{"prompt": "one"}\n{"prompt": \n')
  T.checkerr(dir .. "-d.jsonl:2: expected a JSON value", W.file, dir .. "-d.jsonl")
  write(dir .. "-e.json", '[{"nothing": 1}]')
  T.checkerr(dir .. "-e.json: [1]: expected a prompt or messages field", W.file, dir .. "-e.json")
  T.checkerr("workload.file: /nonexistent/x.json", W.file, "/nonexistent/x.json")
  local s1, s2 = W.file(dir .. "-a.json", {shuffle = true, seed = 4}), W.file(dir .. "-a.json", {shuffle = true, seed = 4})
  T.eq(s1:next(1).prompt, s2:next(1).prompt, "shuffle is seeded")
end)

T.case("sharegpt: first human turn, reply length as max_tokens, seeded order", function()
  local dir = tmpbase()
  local convs = {}
  for i = 1, 20 do
    convs[i] = {id = "c" .. i, conversations = {
      {from = "human", value = "question number " .. i .. " " .. string.rep("word ", 10)},
      {from = "gpt", value = string.rep("abcd", 40 + i)}}}
  end
  convs[21] = {id = "short", conversations = {{from = "human", value = "hi"}}}
  write(dir .. "-sg.json", json.encode(convs))
  local a, b = W.sharegpt(dir .. "-sg.json", {seed = 1}), W.sharegpt(dir .. "-sg.json", {seed = 1})
  local c = W.sharegpt(dir .. "-sg.json", {seed = 2})
  local same, differs = true, false
  for i = 1, 20 do
    if a:next(i).prompt ~= b:next(i).prompt then same = false end
    if a:next(i).prompt ~= c:next(i).prompt then differs = true end
  end
  T.eq(same, true, "same seed, same order")
  T.eq(differs, true, "another seed, another order")
  T.eq(a.size, 20, "one-turn conversation skipped")
  local r = a:next(1)
  local k = tonumber(r.name:match("%d+"))
  T.eq(r.max_tokens, 40 + k, "reply length in tokens (4 bytes each)")
  T.eq(W.sharegpt(dir .. "-sg.json", {limit = 5}).size, 5, "limit")
end)

T.case("synthetic: lengths follow the distributions, reproducible", function()
  local w = W.synthetic{input = {dist = "uniform", min = 20, max = 40},
                        output = {dist = "normal", mean = 200, stddev = 20}, seed = 9}
  local w2 = W.synthetic{input = {dist = "uniform", min = 20, max = 40},
                         output = {dist = "normal", mean = 200, stddev = 20}, seed = 9}
  local sum, n, lo, hi = 0, 400, math.huge, 0
  for i = 1, n do
    local r = w:next(i)
    T.eq(r.prompt, w2:next(i).prompt, "reproducible " .. i)
    lo, hi = math.min(lo, r.input_tokens), math.max(hi, r.input_tokens)
    sum = sum + r.max_tokens
    local words = select(2, r.prompt:gsub("%S+", ""))
    T.eq(words, r.input_tokens - 1, "about input_tokens words")
  end
  T.eq(lo, 20, "uniform min reached")
  T.eq(hi, 40, "uniform max reached")
  T.near(sum / n, 200, 4, "normal mean")
  T.eq(W.synthetic{input = 5, output = 7}:next(1).max_tokens, 7, "fixed")
  T.eq(W.synthetic{seed = 1}:next(3).prompt == W.synthetic{seed = 2}:next(3).prompt, false, "seed matters")
  T.checkerr('unknown dist "zipf"', W.synthetic, {input = {dist = "zipf"}})
  T.checkerr("uniform needs min <= max", W.synthetic, {output = {dist = "uniform", min = 5, max = 1}})
end)

T.case("mix: exact interleave of integer weights, seeded otherwise", function()
  local m = W.mix{short = 1, medium = 1, long = 1}
  local names = {}
  for i = 1, 6 do names[i] = m:next(i).name end
  T.eq(table.concat(names, ","), "short,medium,long,short,medium,long", "1:1:1")
  local toks = {}
  for i = 1, 3 do toks[i] = m:next(i).max_tokens end
  T.eq(table.concat(toks, ","), "100,500,2000", "the seed's mixed scenario")
  local m2 = W.mix{short = 3, long = 1}
  local count = {short = 0, long = 0}
  for i = 1, 40 do local r = m2:next(i); count[r.name] = count[r.name] + 1 end
  T.eq(count.short, 30, "3:1 short")
  T.eq(count.long, 10, "3:1 long")
  local f = W.mix{short = 0.5, long = 1.5, seed = 3}
  local g = W.mix{short = 0.5, long = 1.5, seed = 3}
  local long = 0
  for i = 1, 400 do
    T.eq(f:next(i).name, g:next(i).name, "seeded " .. i)
    if f:next(i).name == "long" then long = long + 1 end
  end
  T.near(long / 400, 0.75, 0.08, "fractional weights in proportion")
  local parts = W.mix{{workload = W.synthetic{input = 4, output = 3}, weight = 1},
                      {workload = W.seed{names = {"short"}}, weight = 2}}
  T.eq(parts:next(1).name, "short", "parts: heavier first")
  T.eq(parts:next(2).name, "synthetic", "parts")
  T.checkerr('workload.mix: unknown prompt "tiny"', W.mix, {tiny = 1})
end)

T.case("multiturn: each turn extends the previous one's messages", function()
  local w = W.multiturn{conversations = 3, turns = 3, system_tokens = 50, user_tokens = 5, reply_tokens = 5, seed = 2}
  local r1, r4, r7 = w:next(1), w:next(4), w:next(7)
  T.eq(r1.conversation, 1, "conversation")
  T.eq(r4.turn, 2, "turn 2")
  T.eq(#r1.messages, 2, "system + user")
  T.eq(#r4.messages, 4, "+ assistant + user")
  T.eq(#r7.messages, 6, "turn 3")
  for k = 1, #r4.messages - 1 do
    T.eq(r7.messages[k].content, r4.messages[k].content, "prefix reused " .. k)
  end
  T.eq(w:next(2).messages[1].content, r1.messages[1].content, "shared system prompt")
  T.eq(w:next(2).messages[2].content == r1.messages[2].content, false, "conversations differ")
  T.eq(w:next(10).turn, 1, "wraps after the last turn")
end)

T.case("from: plan specs", function()
  T.eq(W.from("seed"):next(2).name, "medium", "seed")
  T.eq(W.from({prompts = "seed", max_tokens = 50}):next(3).max_tokens, 50, "max_tokens")
  T.eq(W.from({mix = {short = 1, long = 1}}):next(2).name, "long", "mix")
  T.eq(W.from({synthetic = {input = 8, output = 16}}):next(1).max_tokens, 16, "synthetic")
  T.eq(W.from({"a", "b"}):next(2).prompt, "b", "list")
  local w = W.seed()
  T.eq(W.from(w), w, "a workload as is")
  T.eq(tostring(w), "bench.workload.Workload (seed, 5 distinct)", "tostring")
  T.eq(#w:take(7), 7, "take")
end)

for _, p in ipairs(written) do os.remove(p) end
T.done()
