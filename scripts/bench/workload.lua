-- bench.workload: the requests a load sends.
--
-- A workload is an object with w:next(i) -> request, where i = 1, 2, ... is
-- the request index and a request is a table
--   {name = "short", prompt = "..." or messages = {...}, max_tokens = n,
--    input_tokens = n? (an estimate), extra = {...}?}
-- next(i) is a pure function of i and the workload's seed: the same index
-- always gives the same request, whatever order concurrent users ask in, so
-- two runs (or two servers) see exactly the same prompts.
local json = require("cjson")
local util = require("bench.util")

local M = {}

local Workload = {}
Workload.__index = Workload
Workload.__name = "bench.workload.Workload"

function Workload:__tostring()
  return string.format("bench.workload.Workload (%s%s)", self.kind,
                       self.size and (", " .. self.size .. " distinct") or "")
end

-- w:with{max_tokens = n, extra = {...}, name = s} -> a workload whose
-- requests carry these fields instead (extra is merged).
function Workload:with(over)
  assert(type(over) == "table", "workload:with: expected a table of fields")
  local base = self
  return M.new(base.kind, function(i)
    local r = base:next(i)
    local out = {}
    for k, v in pairs(r) do out[k] = v end
    for k, v in pairs(over) do
      if k == "extra" then
        local e = {}
        for ek, ev in pairs(r.extra or {}) do e[ek] = ev end
        for ek, ev in pairs(v) do e[ek] = ev end
        out.extra = e
      else
        out[k] = v
      end
    end
    return out
  end, {size = base.size})
end

-- w:take(n) -> the list of the first n requests (for inspection and tests).
function Workload:take(n)
  local out = {}
  for i = 1, n do out[i] = self:next(i) end
  return out
end

-- workload.new(kind, fn(i) -> request, {size = n}?) -> a workload from a function.
function M.new(kind, fn, opts)
  assert(type(fn) == "function", "workload.new: expected a function(i) -> request")
  local w = setmetatable({kind = kind or "custom", size = opts and opts.size}, Workload)
  w.next = function(_, i)
    if math.type(i) ~= "integer" or i < 1 then
      error("workload:next: expected an index >= 1, got " .. tostring(i), 2)
    end
    return fn(i)
  end
  return w
end

-- Seeded random numbers, independent of math.random (splitmix64): a
-- generator is a function returning floats in [0, 1).
local function mix64(z)
  z = (z ~ (z >> 30)) * -4658895280553007687   -- 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * -7723592293110705685   -- 0x94d049bb133111eb
  return z ~ (z >> 31)
end

-- workload.rng(seed, stream?) -> fn() -> float in [0, 1). The same (seed,
-- stream) always gives the same sequence.
function M.rng(seed, stream)
  local state = mix64(math.tointeger(seed or 0) or math.floor(seed) + 0x51ed) ~ mix64((stream or 0) + 0x2545F491)
  return function()
    state = state + -7046029254386353131        -- 0x9e3779b97f4a7c15
    return (mix64(state) >> 11) * (1.0 / 9007199254740992.0)
  end
end

-- A standard normal variate from a generator (Box-Muller).
function M.normal(rand)
  local u1, u2 = rand(), rand()
  return math.sqrt(-2 * math.log(1 - u1)) * math.cos(2 * math.pi * u2)
end

local function here()
  local src = debug.getinfo(1, "S").source
  return (src:sub(1, 1) == "@" and src:sub(2) or src):match("^(.*)[/\\]") or "."
end

-- util.read_file, its error prefixed with who reads
local function read_file(path, who)
  local s, err = util.read_file(path)
  if not s then return nil, who .. ": " .. err end
  return s
end

-- The seed's five prompts, loaded once from prompts/seed.json.
local seed_cache
local function seed_prompts()
  if not seed_cache then
    local s, err = read_file(here() .. "/prompts/seed.json", "workload.seed")
    -- Loaded from somewhere other than a file (a preloaded chunk): look
    -- in the scripts folder benchrun uses.
    if not s and bench and bench.scripts_dir then
      s = read_file(bench.scripts_dir .. "/bench/prompts/seed.json", "workload.seed")
    end
    if not s then error(err, 0) end
    seed_cache = json.decode(s).prompts
    for _, p in ipairs(seed_cache) do p.max_tokens = math.tointeger(p.max_tokens) end
  end
  return seed_cache
end

-- workload.seed_prompts() -> a copy of the list {name, prompt, max_tokens}.
function M.seed_prompts()
  local out = {}
  for i, p in ipairs(seed_prompts()) do out[i] = util.copy(p) end
  return out
end

local function list_workload(kind, items, opts)
  opts = opts or {}
  if #items == 0 then error(kind .. ": expected at least one prompt", 3) end
  local order = {}
  for i = 1, #items do order[i] = i end
  if opts.shuffle or opts.seed then
    local rand = M.rng(opts.seed or 0, 1)
    for i = #order, 2, -1 do
      local j = math.floor(rand() * i) + 1
      order[i], order[j] = order[j], order[i]
    end
  end
  return M.new(kind, function(i)
    local r = util.copy(items[order[(i - 1) % #order + 1]])
    if opts.max_tokens then r.max_tokens = opts.max_tokens end
    return r
  end, {size = #items})
end

-- workload.seed{names = {"short", ...}?, max_tokens = n?} -> the seed's
-- prompts in order (short, medium, long, reasoning, instruction), cycling.
function M.seed(opts)
  opts = opts or {}
  local items = {}
  local by = {}
  for _, p in ipairs(seed_prompts()) do by[p.name] = p end
  for _, name in ipairs(opts.names or {"short", "medium", "long", "reasoning", "instruction"}) do
    local p = by[name]
    if not p then error("workload.seed: unknown prompt " .. string.format("%q", name) ..
                        " (expected short, medium, long, reasoning or instruction)", 2) end
    items[#items + 1] = p
  end
  return list_workload("seed", items, {max_tokens = opts.max_tokens})
end

-- One prompt entry of a file: a string, or {prompt | messages, name?, max_tokens?}.
local function file_item(v, where, default_max)
  if type(v) == "string" then return {name = where, prompt = v, max_tokens = default_max} end
  if type(v) ~= "table" then error(where .. ": expected a string or an object", 0) end
  local prompt = v.prompt or v.text or v.input
  if prompt == nil and v.messages == nil then
    error(where .. ": expected a prompt or messages field", 0)
  end
  if prompt ~= nil and type(prompt) ~= "string" then error(where .. ": expected the prompt to be a string", 0) end
  if v.messages ~= nil and type(v.messages) ~= "table" then error(where .. ": expected messages to be a list", 0) end
  local mt = v.max_tokens or v.output_tokens
  local r = {name = v.name or v.id or where, prompt = prompt, messages = v.messages,
             max_tokens = math.tointeger(mt or default_max)}
  if not r.max_tokens or r.max_tokens < 1 then
    error(where .. ": expected max_tokens to be a positive integer, got " .. tostring(math.tointeger(mt) or mt), 0)
  end
  if type(r.name) ~= "string" then r.name = tostring(r.name) end
  return r
end

-- workload.file(path, {max_tokens = 256, shuffle = false, seed = n}) ->
-- prompts from a JSON file (a list, or {prompts = [...]}, or an object of
-- name -> {prompt, max_tokens} like the seed plan's test_prompts.json) or a
-- JSONL file (one entry a line). Raises with path:line on bad input.
function M.file(path, opts)
  opts = opts or {}
  local text, err = read_file(path, "workload.file")
  if not text then error(err, 2) end
  local default_max = opts.max_tokens or 256
  local items = {}
  -- a .jsonl file is one entry a line, even when it has only one line (a
  -- single object is not a name -> prompt mapping)
  local jsonl = path:match("%.jsonl$") or path:match("%.ndjson$")
  local ok, doc
  if not jsonl then ok, doc = pcall(json.decode, text) end
  if ok and type(doc) == "table" then
    local list = doc.prompts or doc
    if #list > 0 then
      for i, v in ipairs(list) do items[i] = file_item(v, path .. ": [" .. i .. "]", default_max) end
    else
      local names = {}
      for k in pairs(list) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do
        local it = file_item(list[k], path .. ": " .. k, default_max)
        it.name = k
        items[#items + 1] = it
      end
    end
  else
    local n = 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      if line:match("%S") then
        local lok, v = pcall(json.decode, line)
        if not lok then error(path .. ":" .. n .. ": expected a JSON value: " .. tostring(v), 2) end
        items[#items + 1] = file_item(v, path .. ":" .. n, default_max)
      end
    end
  end
  if #items == 0 then error(path .. ": no prompts in the file (expected at least one)", 0) end
  return list_workload("file", items, {shuffle = opts.shuffle, seed = opts.seed})
end

-- Rough token count of a text: about 4 bytes a token for English, one a
-- character for CJK (no tokenizer at hand; ShareGPT lengths only steer max_tokens).
function M.estimate_tokens(s)
  local ascii = select(2, s:gsub("[%z\1-\127]", ""))
  local other = utf8.len(s) and (utf8.len(s) - ascii) or 0
  return math.max(1, math.floor(ascii / 4 + other + 0.5))
end

-- workload.sharegpt(path, {seed = 0, max_tokens = n?, min_tokens = 4,
-- max_prompt_tokens = 1024, max_output_tokens = 2048, limit = n?}) -> the
-- first human turn of each conversation, with max_tokens = the estimated
-- length of the reply that followed (as vLLM's benchmark does), in a seeded
-- shuffled order.
function M.sharegpt(path, opts)
  opts = opts or {}
  local text, err = read_file(path, "workload.sharegpt")
  if not text then error(err, 2) end
  local ok, doc = pcall(json.decode, text)
  if not ok or type(doc) ~= "table" then
    error("workload.sharegpt: " .. path .. ": expected a JSON list of conversations", 2)
  end
  local items = {}
  local min_t = opts.min_tokens or 4
  for i, conv in ipairs(doc) do
    local turns = type(conv) == "table" and (conv.conversations or conv.conversation)
    if type(turns) == "table" and #turns >= 2 then
      local q, a = turns[1], turns[2]
      local qs, as = q.value or q.content, a.value or a.content
      if type(qs) == "string" and type(as) == "string" then
        local pt, ot = M.estimate_tokens(qs), M.estimate_tokens(as)
        if pt >= min_t and ot >= min_t and pt <= (opts.max_prompt_tokens or 1024) then
          items[#items + 1] = {name = tostring(conv.id or i), prompt = qs, input_tokens = pt,
                               max_tokens = opts.max_tokens or math.min(ot, opts.max_output_tokens or 2048)}
        end
      end
    end
  end
  if opts.limit and #items > opts.limit then
    -- Shuffle first so the limit takes a seeded sample, not the file's head.
    local w = list_workload("sharegpt", items, {seed = opts.seed or 0})
    local sample = w:take(opts.limit)
    return list_workload("sharegpt", sample, {})
  end
  if #items == 0 then error("workload.sharegpt: " .. path .. ": no usable conversations", 2) end
  return list_workload("sharegpt", items, {seed = opts.seed or 0})
end

-- A length distribution: a number (fixed), or {dist = "fixed", value = n},
-- {dist = "uniform", min = a, max = b}, {dist = "normal", mean = m,
-- stddev = s, min = 1?, max = ?}. Returns fn(rand) -> integer >= 1.
local function length_dist(d, what)
  if type(d) == "number" then
    local v = math.max(1, math.floor(d))
    return function() return v end
  end
  if type(d) ~= "table" then error("workload.synthetic: " .. what .. ": expected a number or a distribution table", 3) end
  local kind = d.dist or d[1] or "fixed"
  local lo, hi = d.min or 1, d.max or math.huge
  local function clamp(x) return math.floor(math.max(lo, math.min(hi, x)) + 0.5) end
  if kind == "fixed" then
    local v = clamp(d.value or d.mean)
    return function() return v end
  elseif kind == "uniform" then
    if not (d.min and d.max and d.max >= d.min) then
      error("workload.synthetic: " .. what .. ": uniform needs min <= max", 3)
    end
    return function(rand) return math.floor(d.min + rand() * (d.max - d.min + 1)) end
  elseif kind == "normal" then
    if not (d.mean and d.stddev) then error("workload.synthetic: " .. what .. ": normal needs mean and stddev", 3) end
    return function(rand) return clamp(d.mean + d.stddev * M.normal(rand)) end
  end
  error("workload.synthetic: " .. what .. ": unknown dist " .. string.format("%q", tostring(kind)) ..
        " (expected fixed, uniform or normal)", 3)
end
M.length_dist = length_dist

-- Words that are one token each in common tokenizers, so n words ~ n tokens.
local WORDS = {
  "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
  "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
  "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
  "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "water", "light",
  "house", "river", "city", "stone", "music", "paper", "garden", "market", "window", "road",
}

-- workload.text(n, rand) -> about n tokens of filler words.
function M.text(n, rand)
  local t = {}
  for k = 1, n do t[k] = WORDS[math.floor(rand() * #WORDS) + 1] end
  return table.concat(t, " ")
end

-- workload.synthetic{input = dist, output = dist, seed = 0, prefix = s?,
-- ignore_eos = false} -> random-word prompts of about `input` tokens asking
-- for `output` tokens (max_tokens). Each prompt starts with its index so no
-- two share a cached prefix unless `prefix` gives them one.
function M.synthetic(opts)
  opts = opts or {}
  local input = length_dist(opts.input or 128, "input")
  local output = length_dist(opts.output or 128, "output")
  local seed = opts.seed or 0
  return M.new("synthetic", function(i)
    local rand = M.rng(seed, i)
    local n_in, n_out = input(rand), output(rand)
    local body = M.text(math.max(1, n_in - 2), rand)
    local r = {name = "synthetic", prompt = (opts.prefix or "") .. i .. ": " .. body,
               max_tokens = n_out, input_tokens = n_in}
    if opts.ignore_eos then r.extra = {ignore_eos = true} end
    return r
  end)
end

-- Smooth weighted round robin: with integer weights the cycle holds each
-- part exactly weight times, spread evenly.
local function swrr_cycle(weights)
  local total, cur, cycle = 0, {}, {}
  for k, w in ipairs(weights) do total = total + w; cur[k] = 0 end
  for _ = 1, total do
    local best
    for k, w in ipairs(weights) do
      cur[k] = cur[k] + w
      if not best or cur[k] > cur[best] then best = k end
    end
    cur[best] = cur[best] - total
    cycle[#cycle + 1] = best
  end
  return cycle
end

-- workload.mix{short = 1, medium = 1, long = 1, seed = n?} or
-- workload.mix{{workload = w, weight = 2}, {workload = w2, weight = 1}} ->
-- a weighted mix. Names are the seed's prompts. Integer weights interleave
-- exactly (a cycle of sum(weights) requests); other weights draw at random
-- from the seed. Part k's own index advances only when it is chosen.
function M.mix(spec)
  if type(spec) ~= "table" then error("workload.mix: expected a table of weights", 2) end
  local parts, weights = {}, {}
  if #spec > 0 then
    for k, p in ipairs(spec) do
      if type(p) ~= "table" or getmetatable(p.workload) ~= Workload then
        error("workload.mix: [" .. k .. "]: expected {workload = w, weight = n}", 2)
      end
      parts[k], weights[k] = p.workload, p.weight or 1
    end
  else
    local names = {}
    for name, w in pairs(spec) do
      if name ~= "seed" and name ~= "max_tokens" then
        if type(w) ~= "number" or w < 0 then error("workload.mix: " .. name .. ": expected a weight >= 0", 2) end
        if w > 0 then names[#names + 1] = name end
      end
    end
    table.sort(names)
    -- The seed order (short, medium, long, ...) reads better than alphabetical.
    local rank = {}
    for i, p in ipairs(seed_prompts()) do rank[p.name] = i end
    table.sort(names, function(a, b) return (rank[a] or 99) < (rank[b] or 99) or
      ((rank[a] or 99) == (rank[b] or 99) and a < b) end)
    for k, name in ipairs(names) do
      if not rank[name] then
        error("workload.mix: unknown prompt " .. string.format("%q", name) ..
              " (expected short, medium, long, reasoning or instruction)", 2)
      end
      parts[k] = M.seed{names = {name}, max_tokens = spec.max_tokens}
      weights[k] = spec[name]
    end
  end
  if #parts == 0 then error("workload.mix: expected at least one weight > 0", 2) end
  local integral = true
  for _, w in ipairs(weights) do if math.type(w) ~= "integer" and w ~= math.floor(w) then integral = false end end
  local pick
  if integral then
    local iw = {}
    for k, w in ipairs(weights) do iw[k] = math.tointeger(w) end
    local cycle = swrr_cycle(iw)
    -- position of i within part k: how many times k was chosen up to i
    local before = {}
    for pos = 1, #cycle do
      local k = cycle[pos]
      before[pos] = 0
      for q = 1, pos - 1 do if cycle[q] == k then before[pos] = before[pos] + 1 end end
    end
    local shift = spec.seed and math.floor(M.rng(spec.seed, 7)() * #cycle) or 0
    pick = function(i)
      local n = i - 1 + shift
      local pos = n % #cycle + 1
      local k = cycle[pos]
      return k, (n // #cycle) * iw[k] + before[pos] + 1
    end
  else
    local total = 0
    for _, w in ipairs(weights) do total = total + w end
    pick = function(i)
      local x = M.rng(spec.seed or 0, i)() * total
      for k, w in ipairs(weights) do
        if x < w then return k, i end
        x = x - w
      end
      return #weights, i
    end
  end
  return M.new("mix", function(i)
    local k, j = pick(i)
    return parts[k]:next(j)
  end)
end

-- workload.multiturn{conversations = 4, turns = 4, system_tokens = 512,
-- user_tokens = 64, reply_tokens = 64, max_tokens = 128, seed = 0} ->
-- chat requests that grow a conversation turn by turn, so each request
-- repeats the previous one's messages as a prefix (what prefix caching
-- speeds up). Request i belongs to conversation (i-1) % conversations + 1
-- at turn ((i-1) // conversations) % turns + 1, so N users at concurrency N
-- each drive one conversation. Earlier replies are synthetic text (the
-- workload does not wait for the server's answers), so every run sends the
-- same bytes.
function M.multiturn(opts)
  opts = opts or {}
  local convs, turns = opts.conversations or 4, opts.turns or 4
  if math.type(convs) ~= "integer" or convs < 1 or math.type(turns) ~= "integer" or turns < 1 then
    error("workload.multiturn: expected integer conversations >= 1 and turns >= 1", 2)
  end
  local seed = opts.seed or 0
  local sys_n, user_n, reply_n = opts.system_tokens or 512, opts.user_tokens or 64, opts.reply_tokens or 64
  local sys_rand = M.rng(seed, -1)
  local system = opts.system or ("You are a helpful assistant. Context: " .. M.text(sys_n, sys_rand))
  return M.new("multiturn", function(i)
    local c = (i - 1) % convs + 1
    local t = ((i - 1) // convs) % turns + 1
    local msgs = {{role = "system", content = system}}
    for k = 1, t do
      local rand = M.rng(seed, c * 100003 + k)
      msgs[#msgs + 1] = {role = "user", content = "Question " .. k .. ": " .. M.text(user_n, rand)}
      if k < t then msgs[#msgs + 1] = {role = "assistant", content = M.text(reply_n, rand)} end
    end
    return {name = "conv" .. c .. "-turn" .. t, messages = msgs, max_tokens = opts.max_tokens or 128,
            conversation = c, turn = t}
  end, {size = convs * turns})
end

-- workload.tools{mode = "tools" | "json_schema", tool_choice = "auto"?,
-- max_tokens = n?} -> benchrun's tool-calling prompts (prompts/tools.json),
-- cycling. mode "tools" (the default): each request offers every function
-- (its own first) in extra.tools, and tool_choice when given; "json_schema":
-- each asks for its function's arguments as structured output
-- (extra.response_format, OpenAI's json_schema). bench.toolcall checks the
-- answers against those schemas (docs/openai.md).
local tools_cache
function M.tools(opts)
  opts = opts or {}
  local mode = opts.mode or "tools"
  if mode ~= "tools" and mode ~= "json_schema" then
    error("workload.tools: mode: expected \"tools\" or \"json_schema\", got " .. tostring(mode), 2)
  end
  if not tools_cache then
    local s, err = read_file(here() .. "/prompts/tools.json", "workload.tools")
    if not s and bench and bench.scripts_dir then s = read_file(bench.scripts_dir .. "/bench/prompts/tools.json", "workload.tools") end
    if not s then error(err, 0) end
    tools_cache = json.decode(s).prompts
  end
  local items = {}
  for i, p in ipairs(tools_cache) do
    local extra = {}
    if mode == "tools" then
      extra.tools = {{type = "function", ["function"] = util.copy(p["function"])}}
      for j, q in ipairs(tools_cache) do
        if j ~= i then extra.tools[#extra.tools + 1] = {type = "function", ["function"] = util.copy(q["function"])} end
      end
      extra.tool_choice = opts.tool_choice
    else
      extra.response_format = {type = "json_schema", json_schema = {name = p["function"].name, strict = true,
                                                                    schema = util.copy(p["function"].parameters)}}
    end
    items[i] = {name = p.name, max_tokens = opts.max_tokens or 256, extra = extra,
                prompt = mode == "tools" and p.prompt
                  or (p.prompt:gsub(" Use the tool%.$", "") .. " Answer only with a JSON object of the arguments for "
                      .. p["function"].name .. ".")}
  end
  return list_workload("tools", items)
end

-- workload.list{request, ...} -> cycles through a Lua list of requests.
function M.list(items, opts)
  if type(items) ~= "table" then error("workload.list: expected a list of requests", 2) end
  local norm = {}
  for i, v in ipairs(items) do norm[i] = file_item(v, "workload.list: [" .. i .. "]", (opts or {}).max_tokens or 256) end
  return list_workload("list", norm, opts)
end

-- workload.is(x) -> true when x is a workload.
function M.is(x) return getmetatable(x) == Workload end

-- workload.from(spec) -> a workload from what a plan or a script gives:
-- a workload (returned as is), "seed", a path to a JSON/JSONL file, a list
-- of prompts, or a table {prompts = "seed" | path | list, mix = {...},
-- synthetic = {...}, sharegpt = path, multiturn = {...}, tools = true | {mode,
-- tool_choice}, max_tokens = n?,
-- seed = n?}.
function M.from(spec)
  if M.is(spec) then return spec end
  if spec == nil or spec == "seed" then return M.seed() end
  if type(spec) == "string" then return M.file(spec) end
  if type(spec) ~= "table" then error("workload.from: expected a workload, a name, a path or a table", 2) end
  if #spec > 0 then return M.list(spec) end
  local w
  if spec.mix then
    local m = util.copy(spec.mix)
    m.seed = m.seed or spec.seed
    w = M.mix(m)
  elseif spec.synthetic then
    local s = util.copy(spec.synthetic)
    s.seed = s.seed or spec.seed
    w = M.synthetic(s)
  elseif spec.sharegpt then
    w = M.sharegpt(spec.sharegpt, {seed = spec.seed, limit = spec.limit})
  elseif spec.tools then
    w = M.tools(spec.tools == true and {} or spec.tools)
  elseif spec.multiturn then
    local s = util.copy(spec.multiturn)
    s.seed = s.seed or spec.seed
    w = M.multiturn(s)
  elseif spec.prompts == nil or spec.prompts == "seed" then
    w = M.seed{names = spec.names}
  elseif type(spec.prompts) == "string" then
    w = M.file(spec.prompts, {shuffle = spec.shuffle, seed = spec.seed})
  else
    w = M.list(spec.prompts)
  end
  if spec.max_tokens then w = w:with{max_tokens = spec.max_tokens} end
  return w
end

return M
