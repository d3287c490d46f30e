/* bench.http's response table (docs/http.md, "the response"): what a
 * finished transfer (http_internal.h's xfer) becomes for Lua. The same for
 * both transports; r.transport says which one ran. */
#include "http_internal.h"

#include <lauxlib.h>
#include <string.h>

#define NO_LAG INT32_MIN

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n) {
  lua_pushlstring(L, s, n);
  lua_setfield(L, -2, k);
}

static void set_buf(lua_State *L, const char *k, const br_buf *b) {
  if (b->len) set_str(L, k, b->p, b->len);
}

static void push_headers(lua_State *L, const xfer *x) {
  lua_newtable(L);
  const char *p = x->headers.p, *end = p + x->headers.len;
  char name[128];
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon && (size_t)(colon - p) < sizeof name && !(line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
      size_t nl = (size_t)(colon - p);
      for (size_t i = 0; i < nl; i++) name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
      name[nl] = 0;
      const char *v = colon + 1, *ve = line_end;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      if (lua_getfield(L, -1, name) == LUA_TSTRING) {   /* repeated: join with ", " */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_setfield(L, -2, name);
    }
    p = eol ? eol + 1 : end;
  }
}

static void set_time(lua_State *L, const char *k, int64_t t) {
  if (t) set_int(L, k, t);
}

static void push_timings(lua_State *L, const xfer *x) {
  lua_createtable(L, 0, 8);
  set_int(L, "start", x->t_start);
  set_time(L, "dns", x->t_dns);
  set_time(L, "connect", x->t_connect);
  set_time(L, "tls", x->t_tls);
  set_time(L, "sent", x->t_sent);
  if (x->t_first_byte) set_int(L, "first_byte", x->t_first_byte);
  set_int(L, "end", x->t_end);
  if (x->nev) {
    lua_createtable(L, (int)x->nev, 0);
    for (size_t i = 0; i < x->nev; i++) {
      lua_pushinteger(L, x->evs[i].t);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "events");
  }
  lua_setfield(L, -2, "timings");
}

static void push_events(lua_State *L, const xfer *x) {
  lua_createtable(L, (int)x->nev, 0);
  for (size_t i = 0; i < x->nev; i++) {
    const evrec *r = &x->evs[i];
    lua_createtable(L, 0, 3);
    set_str(L, "data", x->evdata.p + r->off, r->len);
    set_int(L, "t", r->t);
    if (r->type_len) set_str(L, "type", x->evdata.p + r->type_off, r->type_len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "events");
}

/* The tool calls a stream carried (llmchunk.h's br_llm_tool): tool_calls =
 * {{index?, id?, name?, arguments, arguments_raw?, bad_escape?, pieces,
 * split_utf8}}, first_tool_t, tool_events, tools_dropped. */
static void push_tool_calls(lua_State *L, const xfer *x) {
  const br_llm *m = &x->llm;
  br_buf a = {0};
  lua_createtable(L, m->ntools, 0);
  for (int i = 0; i < m->ntools; i++) {
    const br_llm_tool *t = &m->tools[i];
    lua_createtable(L, 0, 8);
    if (t->index >= 0) set_int(L, "index", (lua_Integer)t->index);
    if (t->id.len) set_str(L, "id", t->id.p, t->id.len);
    if (t->name.len) set_str(L, "name", t->name.p, t->name.len);
    br_buf_clear(&a);
    int r = br_llm_tool_arguments(t, &a);
    set_str(L, "arguments", a.p ? a.p : "", r == -2 ? 0 : a.len);
    if (r == -1) { lua_pushboolean(L, 1); lua_setfield(L, -2, "bad_escape"); }
    if (t->args_raw) { lua_pushboolean(L, 1); lua_setfield(L, -2, "arguments_raw"); }
    set_int(L, "pieces", t->pieces);
    set_int(L, "split_utf8", t->split_utf8);
    lua_rawseti(L, -2, i + 1);
  }
  br_buf_free(&a);
  lua_setfield(L, -2, "tool_calls");
  if (x->first_tool_t) set_int(L, "first_tool_t", x->first_tool_t);
  set_int(L, "tool_events", (lua_Integer)x->ntool);
  if (m->tools_dropped) set_int(L, "tools_dropped", (lua_Integer)m->tools_dropped);
}

/* Token arrival times: first/last, the gaps (itl_ms) and, for raw
 * requests, every arrival (token_t); into the table on top. */
static void push_token_times(lua_State *L, const xfer *x) {
  if (x->ntok) {
    set_int(L, "first_token_t", x->first_token_t);
    set_int(L, "last_token_t", x->last_token_t);
  }
  /* Gaps between token events, in ms, built here: a list per request
   * costs far less in C than in Lua. */
  lua_createtable(L, x->ntok ? (int)x->ntok - 1 : 0, 0);
  for (size_t i = 1; i < x->ntok; i++) {
    lua_pushnumber(L, (lua_Number)(x->tok_us[i] - x->tok_us[i - 1]) / 1e3);
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  lua_setfield(L, -2, "itl_ms");
  if (x->raw) {   /* arrival times, µs resolution */
    lua_createtable(L, (int)x->ntok, 0);
    for (size_t i = 0; i < x->ntok; i++) {
      lua_pushinteger(L, x->t_start + (int64_t)x->tok_us[i] * 1000);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "token_t");
  }
}

/* The client's lateness against the simulator's send time of each
 * token (x->has_sim): the first one's is the ttft error, the change from
 * one token to the next the itl error; into the table on top. */
static void push_sim_lag(lua_State *L, const xfer *x) {
  int64_t prev = INT64_MIN, maxlag = INT64_MIN;
  lua_Integer j = 0;
  lua_createtable(L, (int)x->ntok, 0);
  for (size_t i = 0; i < x->ntok; i++) {
    int64_t lag = x->tok_lag[i];
    if (lag == NO_LAG) continue;
    if (lag > maxlag) maxlag = lag;
    if (prev == INT64_MIN) {
      lua_pushnumber(L, (lua_Number)lag / 1e6);
      lua_setfield(L, -3, "sim_ttft_err_ms");
    } else {
      lua_pushnumber(L, (lua_Number)(lag - prev) / 1e6);
      lua_rawseti(L, -2, ++j);
    }
    prev = lag;
  }
  lua_setfield(L, -2, "sim_itl_err_ms");
  lua_pushnumber(L, (lua_Number)maxlag / 1e6);
  lua_setfield(L, -2, "sim_lag_max_ms");
  if (x->raw) {
    lua_createtable(L, (int)x->ntok, 0);
    j = 0;
    for (size_t i = 0; i < x->ntok; i++) {
      if (x->tok_lag[i] == NO_LAG) continue;
      lua_pushinteger(L, x->tok_lag[i]);
      lua_rawseti(L, -2, ++j);
    }
    lua_setfield(L, -2, "sim_lag_ns");
  }
}

static void push_llm(lua_State *L, const xfer *x) {
  const br_llm *m = &x->llm;
  lua_createtable(L, 0, 20);
  set_str(L, "content", m->content.p ? m->content.p : "", m->content.len);
  set_str(L, "reasoning", m->reasoning.p ? m->reasoning.p : "", m->reasoning.len);
  if (m->finish[0]) set_str(L, "finish_reason", m->finish, strlen(m->finish));
  lua_pushboolean(L, m->done);
  lua_setfield(L, -2, "done");
  lua_pushboolean(L, m->think_seen);
  lua_setfield(L, -2, "think_tags");
  set_int(L, "chunks", (lua_Integer)m->events);
  set_int(L, "bad_json", (lua_Integer)m->bad_json);
  set_buf(L, "usage", &m->usage);
  set_buf(L, "timings", &m->timings);
  set_buf(L, "stats", &m->stats);
  set_buf(L, "final", &m->final);
  set_buf(L, "error", &m->error);
  if (m->logprob_events) {   /* the entries as one JSON array text */
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    luaL_addchar(&lb, '[');
    luaL_addlstring(&lb, m->logprobs.p ? m->logprobs.p : "", m->logprobs.len);
    luaL_addchar(&lb, ']');
    luaL_pushresult(&lb);
    lua_setfield(L, -2, "logprobs");
  }
  set_int(L, "logprob_events", (lua_Integer)m->logprob_events);
  set_int(L, "text_no_logprobs", (lua_Integer)m->text_no_logprobs);
  if (x->first_content_t) set_int(L, "first_content_t", x->first_content_t);
  if (x->first_reasoning_t) set_int(L, "first_reasoning_t", x->first_reasoning_t);
  set_int(L, "tokens", (lua_Integer)x->ntok);
  if (x->llm.sim_arrival_ns) set_int(L, "sim_arrival_ns", x->llm.sim_arrival_ns);
  set_int(L, "content_events", (lua_Integer)x->ncontent);
  set_int(L, "reasoning_events", (lua_Integer)x->nreasoning);
  if (m->ntools || m->tools_dropped) push_tool_calls(L, x);
  push_token_times(L, x);
  if (x->has_sim) push_sim_lag(L, x);
  lua_setfield(L, -2, "llm");
}

void http_push_response(lua_State *L, const xfer *x) {
  lua_createtable(L, 0, 12);
  set_int(L, "status", x->status);
  if (x->error) {
    char name[32];
    lua_pushstring(L, http_err_name(x->error, x->error_status, name, sizeof name));
    lua_setfield(L, -2, "error");
    if (x->detail.len) {
      lua_pushlstring(L, x->detail.p, x->detail.len);
      lua_setfield(L, -2, "error_detail");
    }
    size_t pos = 0, n;
    const char *loc = x->error == HERR_REDIRECT ? http_next_header(x, "location", &pos, &n) : NULL;
    if (loc) set_str(L, "location", loc, n);
  }
  push_headers(L, x);
  lua_setfield(L, -2, "headers");
  if (x->body_mode != BODY_STREAM) {
    set_str(L, "body", x->body.p ? x->body.p : "", x->body.len);
    if (x->body_truncated) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "body_truncated");
    }
  }
  if (x->stream && (x->nev || !x->decode || x->raw)) push_events(L, x);
  if (x->stream) set_int(L, "event_count", (lua_Integer)x->nevents);
  if (x->decode) push_llm(L, x);
  push_timings(L, x);
  set_int(L, "bytes", (lua_Integer)x->bytes);
  if (x->content_type[0]) set_str(L, "content_type", x->content_type, strlen(x->content_type));
  lua_pushboolean(L, x->reused);
  lua_setfield(L, -2, "reused");
  if (x->resent) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "resent");
  }
  lua_pushstring(L, x->tr->name);
  lua_setfield(L, -2, "transport");
}

