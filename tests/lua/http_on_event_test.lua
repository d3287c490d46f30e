-- An error in on_event: the request ends with error "on_event" and its
-- error_detail holds the message and the Lua traceback of where it was
-- raised (docs/http.md, on_event), through both transports.
local T = dofile(os.getenv("BENCHRUN_TESTS") .. "/lua/testlib.lua")
local http = require("bench.http")

local sim <close> = T.sim{"--decode-tps", "1000", "--slots", "8"}

local function chat(transport, on_event)
  return http.request{url = sim.url .. "/v1/chat/completions", transport = transport,
                      body = json.encode{model = "m", stream = true, max_tokens = 5,
                                         messages = {{role = "user", content = "hi"}}},
                      headers = {["Content-Type"] = "application/json"}, stream = "sse", decode = "openai",
                      timeout = {connect = 5, first_byte = 10, idle = 10}, on_event = on_event}
end

local function check_the_token(ev)
  if ev.content then error("no tokens wanted here") end
end

for _, transport in ipairs{"native", "curl"} do
  T.case(transport .. ": an on_event error says where it was raised", function()
    local r = chat(transport, function(ev) check_the_token(ev) end)
    T.eq(r.error, "on_event", "error")
    T.eq(r.transport, transport, "transport")
    local d = r.error_detail
    assert(d:find("^on_event: .*http_on_event_test%.lua:%d+: no tokens wanted here"), d)
    assert(d:find("stack traceback:", 1, true), "a traceback: " .. d)
    assert(d:find("check_the_token", 1, true), "the failing function is named: " .. d)
  end)

  T.case(transport .. ": an error object that is not a string", function()
    local r = chat(transport, function() error({}) end)
    T.eq(r.error, "on_event", "error")
    assert(r.error_detail:find("^on_event: error object is not a string"), r.error_detail)
    assert(r.error_detail:find("stack traceback:", 1, true), r.error_detail)
  end)
end
T.done()
