/* bench.http: HTTP requests on benchrun's event loop (docs/http.md). This
 * file is the Lua API: a request's options are read and checked into an
 * http_opts, a transport is picked (native for plain HTTP/1.1 to an
 * address, curl for the rest), and the waiting task gets the response
 * table when the transfer ends. The transfer itself is http_xfer.c's; the
 * transports are http_native.c and http_curl.c (http_internal.h says
 * which file holds what). */
#include "class.h"
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "http_internal.h"
#include "platform.h"
#include "sock.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define CTX_MT "bench.http.Context"
#define REQ_MT "bench.http.Request"

static const char CTX_KEY = 'H';   /* registry: the context userdata */

enum { DEFAULT_MAX_EVENT = 1 << 20, DEFAULT_ERROR_BODY = 16 << 10 };
static const size_t DEFAULT_MAX_BODY = (size_t)256 << 20;

/* ---- the context ---- */

static int ctx_close(lua_State *L) {
  hctx *c = luaL_checkudata(L, 1, CTX_MT);
  if (c->closed) return 0;
  c->closed = 1;
  while (c->xfers) {
    xfer *x = c->xfers;
    if (x->in_flight) {
      x->tr->drop(x);
      x->in_flight = 0;
      br_timer_stop(c->loop, &x->deadline);
      br_loop_unref(c->loop);
    }
    if (x->owner) {
      /* The waiting task must not keep a pointer into freed memory: wake
       * it; it finds its request closed and ends as cancelled. */
      x->owner->x = NULL;
      br_wait_done(&x->wait);
    }
    http_xfer_free(x);
  }
  http_curl.shutdown(c);
  http_native.shutdown(c);
  br_timer_stop(c->loop, &c->defer);
  return 0;
}

static hctx *get_ctx(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY) == LUA_TUSERDATA) {
    hctx *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return c;
  }
  lua_pop(L, 1);
  hctx *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CTX_MT);
  c->loop = br_sched_loop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  c->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  const char *tr = getenv("BENCHRUN_HTTP_TRANSPORT");
  c->default_transport = tr && strcmp(tr, "curl") == 0 ? TRANSPORT_CURL : TRANSPORT_AUTO;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  return c;
}

/* ---- options ---- */

static int64_t opt_seconds(lua_State *L, int t, const char *k, const char *where) {
  int ty = lua_getfield(L, t, k);
  int64_t ns = 0;
  if (ty == LUA_TNUMBER) {
    lua_Number s = lua_tonumber(L, -1);
    if (!(s > 0 && s < 1e9)) luaL_error(L, "http.request: %s.%s: expected seconds > 0, got %f", where, k, (double)s);
    ns = (int64_t)(s * 1e9);
  } else if (ty != LUA_TNIL) {
    luaL_error(L, "http.request: %s.%s: expected seconds (a number), got %s", where, k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return ns;
}

static const char *opt_string(lua_State *L, int t, const char *k, size_t *len) {
  int ty = lua_getfield(L, t, k);
  const char *s = NULL;
  if (ty == LUA_TSTRING) s = lua_tolstring(L, -1, len);
  else if (ty != LUA_TNIL) luaL_error(L, "http.request: %s: expected a string, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);   /* the string stays alive in the options table */
  return s;
}

static size_t opt_size(lua_State *L, int t, const char *k, size_t dflt) {
  int ty = lua_getfield(L, t, k);
  size_t v = dflt;
  if (ty == LUA_TNUMBER) {
    lua_Integer i = lua_tointeger(L, -1);
    if (i <= 0) luaL_error(L, "http.request: %s: expected a positive integer", k);
    v = (size_t)i;
  } else if (ty != LUA_TNIL) {
    luaL_error(L, "http.request: %s: expected a number, got %s", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int t, const char *k, int dflt) {
  int ty = lua_getfield(L, t, k);
  int v = ty == LUA_TNIL ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A token of RFC 9110 (a method, a header name): letters, digits and
 * !#$%&'*+-.^_`|~, nothing else (no space, no control byte, no colon). */
static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)) ||
        c == 0)
      return 0;
  }
  return 1;
}

/* The first control byte (or, with space, space) in s; -1 when none. Tab
 * is let through where allow_tab (header values). */
static int bad_byte(const char *s, size_t n, int space, int allow_tab) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f || (space && c == ' ')) return c;
  }
  return -1;
}

/* s as printable text for an error message: control bytes, quotes and
 * backslashes written as \r, \n or \xNN (the message stays on one line). */
static const char *printable(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n && i < 200; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') luaL_addstring(&b, "\\r");
    else if (c == '\n') luaL_addstring(&b, "\\n");
    else if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char e[8];
      snprintf(e, sizeof e, "\\x%02x", c);
      luaL_addstring(&b, e);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* A header of the caller as a name and a value: a Lua error when it would
 * put anything but that one line into the request (CR LF injection). */
static void check_header(lua_State *L, const char *name, size_t nl, const char *value, size_t vl) {
  if (!is_token(name, nl))
    luaL_error(L, "http.request: headers: \"%s\" is not a header name (letters, digits and !#$%%&'*+-.^_`|~ only)",
               printable(L, name, nl));
  int c = bad_byte(value, vl, 0, 1);
  if (c >= 0) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%02x", c);
    luaL_error(L, "http.request: headers: the value of %s holds the control byte %s (no CR, LF or other control "
                  "byte but tab)", printable(L, name, nl), hex);
  }
}

/* The caller's headers as one string of "Name: value\r\n" lines, left on
 * the stack (it lives there for the call); "" when none. */
static void read_headers(lua_State *L, int t) {
  int ty = lua_getfield(L, t, "headers");
  lua_pushliteral(L, "");
  if (ty == LUA_TNIL) { lua_remove(L, -2); return; }
  if (ty != LUA_TTABLE) luaL_error(L, "http.request: headers: expected a table, got %s", luaL_typename(L, -2));
  int h = lua_gettop(L) - 1, acc = h + 1;
  lua_pushnil(L);
  while (lua_next(L, h)) {
    size_t nl, vl;
    const char *name, *value;
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (!lua_isstring(L, -1)) {
        const char *got = luaL_typename(L, -1);
        luaL_error(L, "http.request: headers[%s]: expected a string, got %s",
                   printable(L, lua_tostring(L, -2), lua_rawlen(L, -2)), got);
      }
      name = lua_tolstring(L, -2, &nl);
      value = lua_tolstring(L, -1, &vl);
    } else if (lua_type(L, -1) == LUA_TSTRING) {   /* "Name: value" in a list */
      size_t n;
      name = lua_tolstring(L, -1, &n);
      const char *colon = memchr(name, ':', n);
      if (!colon)
        luaL_error(L, "http.request: headers: \"%s\" is not \"Name: value\"", printable(L, name, n));
      nl = (size_t)(colon - name);
      value = colon + 1;
      while (value < name + n && (*value == ' ' || *value == '\t')) value++;
      vl = (size_t)(name + n - value);
    } else {
      luaL_error(L, "http.request: headers: expected name = value or \"Name: value\" entries");
      return;
    }
    check_header(L, name, nl, value, vl);
    lua_pushvalue(L, acc);
    lua_pushlstring(L, name, nl);
    lua_pushliteral(L, ": ");
    lua_pushlstring(L, value, vl);
    lua_pushliteral(L, "\r\n");
    lua_concat(L, 5);
    lua_replace(L, acc);
    lua_pop(L, 1);   /* the value; the key stays for lua_next */
  }
  lua_remove(L, h);
}

static int read_stream(lua_State *L, int t) {
  int stream = STREAM_NONE;
  int ty = lua_getfield(L, t, "stream");
  if (ty == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "sse") == 0) stream = STREAM_SSE;
    else if (strcmp(s, "ndjson") == 0) stream = STREAM_NDJSON;
    else luaL_error(L, "http.request: stream: expected \"sse\", \"ndjson\" or false, got \"%s\"", s);
  } else if (ty == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
    stream = STREAM_SSE;
  } else if (ty != LUA_TNIL && ty != LUA_TBOOLEAN) {
    luaL_error(L, "http.request: stream: expected \"sse\", \"ndjson\" or false, got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return stream;
}

/* timeout = seconds (the whole request) or {connect, first_byte, idle, total} */
static void read_timeouts(lua_State *L, int t, http_opts *o) {
  int ty = lua_getfield(L, t, "timeout");
  if (ty == LUA_TNUMBER) {
    o->to_total = opt_seconds(L, t, "timeout", "request");
  } else if (ty == LUA_TTABLE) {
    int tt = lua_gettop(L);
    o->to_connect = opt_seconds(L, tt, "connect", "timeout");
    o->to_first_byte = opt_seconds(L, tt, "first_byte", "timeout");
    o->to_idle = opt_seconds(L, tt, "idle", "timeout");
    o->to_total = opt_seconds(L, tt, "total", "timeout");
  } else if (ty != LUA_TNIL) {
    luaL_error(L, "http.request: timeout: expected seconds or {connect, first_byte, idle, total}, got %s",
               luaL_typename(L, -1));
  }
  lua_pop(L, 1);
}

static int read_transport(lua_State *L, int t, int dflt) {
  const char *tr = opt_string(L, t, "transport", NULL);
  if (!tr) return dflt;
  if (strcmp(tr, "auto") == 0) return TRANSPORT_AUTO;
  if (strcmp(tr, "curl") == 0) return TRANSPORT_CURL;
  if (strcmp(tr, "native") == 0) return TRANSPORT_NATIVE;
  return luaL_error(L, "http.request: transport: expected \"auto\", \"curl\" or \"native\", got \"%s\"", tr);
}

/* Every option of http.request{...} (the table at index 1) into *o; a
 * mistake raises "http.request: <option>: ...". Leaves the header block on
 * the stack. */
static void read_opts(lua_State *L, hctx *c, http_opts *o) {
  memset(o, 0, sizeof *o);
  o->url = opt_string(L, 1, "url", &o->urllen);
  if (!o->url) luaL_argerror(L, 1, "expected a url field (a string)");
  o->body = opt_string(L, 1, "body", &o->bodylen);
  size_t mlen = 0;
  o->method = opt_string(L, 1, "method", &mlen);
  if (!o->method) o->method = o->body ? "POST" : "GET";
  else if (!is_token(o->method, mlen))
    luaL_error(L, "http.request: method: \"%s\" is not a method (letters, digits and !#$%%&'*+-.^_`|~ only: "
                  "no space, CR, LF or other control byte)", printable(L, o->method, mlen));
  int bad = bad_byte(o->url, o->urllen, 1, 0);
  if (bad >= 0)
    luaL_error(L, "http.request: url: \"%s\" holds %s (percent-encode it)", printable(L, o->url, o->urllen),
               bad == ' ' ? "a space" : "a control byte");
  o->stream = read_stream(L, 1);
  const char *dec = opt_string(L, 1, "decode", NULL);
  if (dec) {
    if (strcmp(dec, "openai") != 0 && strcmp(dec, "ollama") != 0 && strcmp(dec, "llm") != 0)
      luaL_error(L, "http.request: decode: expected \"openai\" or \"ollama\", got \"%s\"", dec);
    if (!o->stream) luaL_error(L, "http.request: decode needs stream = \"sse\" or \"ndjson\"");
    o->decode = 1;
  }
  read_timeouts(L, 1, o);
  int ty = lua_getfield(L, 1, "on_event");
  if (ty != LUA_TNIL && ty != LUA_TFUNCTION)
    luaL_error(L, "http.request: on_event: expected a function, got %s", luaL_typename(L, -1));
  lua_pop(L, 1);
  o->ca_file = opt_string(L, 1, "ca_file", NULL);
  const char *h2 = opt_string(L, 1, "http2", NULL);
  o->http2 = h2 && strcmp(h2, "prior") == 0 ? H2_PRIOR : h2 && strcmp(h2, "off") == 0 ? H2_OFF : H2_TLS;
  o->transport = read_transport(L, 1, c->default_transport);
  o->raw = opt_bool(L, 1, "raw", 0);
  o->check_type = opt_bool(L, 1, "check_content_type", 1);
  o->max_event = opt_size(L, 1, "max_event_bytes", DEFAULT_MAX_EVENT);
  o->max_body = opt_size(L, 1, "max_body_bytes", DEFAULT_MAX_BODY);
  o->error_body_max = opt_size(L, 1, "error_body_bytes", DEFAULT_ERROR_BODY);
  o->insecure = opt_bool(L, 1, "insecure", 0);
  read_headers(L, 1);
  o->headers = lua_tolstring(L, -1, &o->headerslen);
}

/* Native for plain HTTP/1.1 to an address (docs/http.md, Transports),
 * unless the caller or the environment says curl. */
static const http_transport *pick_transport(lua_State *L, http_opts *o) {
  int native_ok = o->http2 != H2_PRIOR && http_native_target(o->url, o->urllen, &o->target);
  if (o->transport == TRANSPORT_NATIVE && !native_ok)
    luaL_error(L, "http.request: transport \"native\" takes http:// to an IP address or localhost, not %s", o->url);
  return native_ok && o->transport != TRANSPORT_CURL ? &http_native : &http_curl;
}

/* ---- the request userdata ---- */

/* The request userdata (pushed) and its transfer, owned by the context:
 * an error after this leaves nothing behind (the userdata's __gc frees
 * it). */
static xfer *new_request(lua_State *L, hctx *c, const http_transport *tr, const http_opts *o) {
  http_req *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->x = NULL;
  luaL_setmetatable(L, REQ_MT);
  xfer *x = calloc(1, tr->xfer_size);
  if (!x) luaL_error(L, "http.request: out of memory");
  x->ctx = c;
  x->tr = tr;
  x->on_event_ref = LUA_NOREF;
  x->next = c->xfers;
  if (c->xfers) c->xfers->prev = x;
  c->xfers = x;
  u->x = x;
  x->owner = u;
  x->stream = o->stream;
  x->decode = o->decode;
  x->raw = o->raw;
  x->check_type = o->check_type;
  x->max_event = o->max_event;
  x->max_body = o->max_body;
  x->error_body_max = o->error_body_max;
  x->to_connect = o->to_connect;
  x->to_first_byte = o->to_first_byte;
  x->to_idle = o->to_idle;
  x->to_total = o->to_total;
  x->head_request = strcmp(o->method, "HEAD") == 0;
  if (o->stream) br_sse_init(&x->sse, o->stream == STREAM_NDJSON ? BR_SSE_MODE_NDJSON : BR_SSE_MODE_SSE, o->max_event);
  br_llm_init(&x->llm);
  if (br_buf_add(&x->reqhdrs, o->headers, o->headerslen) ||
      (o->body && br_buf_add(&x->reqbody, o->body, o->bodylen)))
    luaL_error(L, "http.request: out of memory");
  if (lua_getfield(L, 1, "on_event") == LUA_TFUNCTION) x->on_event_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  return x;
}

static int request_k(lua_State *L, int status, lua_KContext kctx) {
  http_req *u = (http_req *)kctx;
  xfer *x = u->x;
  if (!x) return br_wait_raise(L, NULL);   /* closed with the state */
  if (br_wait_cancelled(&x->wait)) {
    br_wait w = x->wait;
    u->x = NULL;
    http_xfer_release(x);
    return br_wait_raise(L, &w);
  }
  http_push_response(L, x);
  u->x = NULL;
  http_xfer_release(x);
  return 1;
}

/* the request of the options at index 1, built and not sent; its userdata
 * pushed */
static xfer *prepare_request(lua_State *L, const char *who) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  hctx *c = get_ctx(L);
  http_opts o;
  read_opts(L, c, &o);
  const http_transport *tr = pick_transport(L, &o);
  xfer *x = new_request(L, c, tr, &o);
  const char *err = http_xfer_prepare(x, &o);
  if (err) luaL_error(L, "%s: %s", who, err);
  return x;
}

/* send a prepared request (its userdata u); raises for what cannot start */
static void send_request(lua_State *L, http_req *u, const char *who) {
  xfer *x = u->x;
  if (x->ctx->busy) luaL_error(L, "%s: cannot start a request from inside on_event", who);
  const char *err = http_xfer_send(x, L);
  if (err) {
    lua_pushstring(L, err);   /* the message may live in the transfer */
    u->x = NULL;
    http_xfer_release(x);
    luaL_error(L, "%s: %s", who, lua_tostring(L, -1));
  }
}

/* the request of the options at index 1, started; its userdata pushed */
static xfer *start_request(lua_State *L, const char *who) {
  xfer *x = prepare_request(L, who);
  send_request(L, x->owner, who);
  return x;
}

/* http.request{url, method?, headers?, body?, stream?, decode?, raw?,
 *   timeout?, on_event?, max_event_bytes?, max_body_bytes?,
 *   error_body_bytes?, insecure?, ca_file?, http2?, check_content_type?,
 *   transport?} -> response table (never raises for failures of the
 *   outside world; see docs/http.md). Yields inside a task; runs the loop
 *   on the main thread. */
static int l_request(lua_State *L) {
  xfer *x = start_request(L, "http.request");
  return br_await(L, &x->wait, (lua_KContext)x->owner, request_k);
}

/* http.start{...same options as http.request} -> req: the request is sent
 * (written at once where it can be) and goes on in the loop; req:wait()
 * waits for its end without building the response, req:result() builds
 * it (once), req:close() (or dropping req) aborts it. A closed loop
 * writes its next request between wait and result, so a response's table
 * and record never stand before that write (bench.load). */
static int l_start(lua_State *L) {
  start_request(L, "http.start");
  return 1;   /* the request's userdata */
}

/* http.prepare{...same options as http.request} -> req, not sent: the
 * options are read and checked and the request built now; req:connect()
 * opens its connection ahead (the native transport; curl connects when
 * it sends), req:send() sends it, and from then on it is what http.start
 * returns. The clock starts at the send. A closed loop builds and
 * connects its first wave this way, then writes every request in one pass
 * (bench.load). */
static int l_prepare(lua_State *L) {
  prepare_request(L, "http.prepare");
  return 1;
}

static int was_sent(const xfer *x) { return x->in_flight || x->finished; }

/* the request userdata at index 1 that has not been sent */
static http_req *unsent(lua_State *L, const char *who) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  if (!u->x) luaL_error(L, "%s: the request was closed", who);
  if (was_sent(u->x)) luaL_error(L, "%s: the request was sent already", who);
  return u;
}

static int req_connect(lua_State *L) {
  http_req *u = unsent(L, "request:connect");
  if (u->x->tr->connect_ahead) u->x->tr->connect_ahead(u->x);
  return 0;
}

static int req_send(lua_State *L) {
  http_req *u = unsent(L, "request:send");
  send_request(L, u, "request:send");
  lua_settop(L, 1);
  return 1;
}

/* req:send_after(prev[, not_after_ns]): send req (not sent yet) the
 * moment prev ends without a transfer error, from the loop, with no Lua in
 * between (at once if prev already has); if prev fails, or the clock has
 * reached not_after_ns by then, req stays unsent (req:sent() says which).
 * A closed loop chains each user's next request to its last one, so the
 * write leaves as the answer ends, as a client with no work per request
 * would send it. */
static int req_send_after(lua_State *L) {
  http_req *u = unsent(L, "request:send_after");
  http_req *p = luaL_checkudata(L, 2, REQ_MT);
  lua_Integer not_after = luaL_optinteger(L, 3, 0);
  if (!p->x) return luaL_error(L, "request:send_after: the request to wait for was closed");
  if (!was_sent(p->x)) return luaL_error(L, "request:send_after: the request to wait for was not sent");
  if (u->x->ctx->busy) return luaL_error(L, "request:send_after: cannot start a request from inside on_event");
  http_xfer_send_after(u->x, p->x, not_after > 0 ? (int64_t)not_after : 0);
  lua_settop(L, 1);
  return 1;
}

/* req:sent() -> whether it was sent (in flight or finished) */
static int req_sent(lua_State *L) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  lua_pushboolean(L, u->x && was_sent(u->x));
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  http_req *u = (http_req *)kctx;
  xfer *x = u->x;
  if (!x) return br_wait_raise(L, NULL);
  if (br_wait_cancelled(&x->wait)) {
    br_wait w = x->wait;
    u->x = NULL;
    http_xfer_release(x);
    return br_wait_raise(L, &w);
  }
  lua_pushboolean(L, x->error == 0);
  return 1;
}

/* req:wait() -> true if it ended without an error of the transfer (a
 * refused or reset connection, a timeout...), false otherwise */
static int req_wait(lua_State *L) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  if (!u->x) return luaL_error(L, "request:wait: the request's result was taken or it was closed");
  if (!was_sent(u->x)) return luaL_error(L, "request:wait: the request was not sent (request:send())");
  return br_await(L, &u->x->wait, (lua_KContext)u, wait_k);
}

static int req_result(lua_State *L) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  xfer *x = u->x;
  if (!x) return luaL_error(L, "request:result: the request's result was taken or it was closed");
  if (!x->finished) return luaL_error(L, "request:result: the request has not ended (request:wait() first)");
  http_push_response(L, x);
  u->x = NULL;
  http_xfer_release(x);
  return 1;
}

static int req_gc(lua_State *L) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  xfer *x = u->x;
  u->x = NULL;
  http_xfer_release(x);
  return 0;
}

static int req_tostring(lua_State *L) {
  http_req *u = luaL_checkudata(L, 1, REQ_MT);
  const xfer *x = u->x;
  lua_pushfstring(L, "bench.http.Request (%s)",
                  !x ? "closed" : x->finished ? "finished" : x->in_flight ? "in flight" : "not sent");
  return 1;
}

static int ctx_tostring(lua_State *L) {
  hctx *c = luaL_checkudata(L, 1, CTX_MT);
  lua_pushfstring(L, "bench.http.Context (%d in flight)", (int)c->active);
  return 1;
}

/* ---- the other functions ---- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* http.max_fds([n]) -> the soft limit on open files after raising it to n
 * (default: the hard limit); thousands of streams need thousands of fds.
 * The process's file table is grown to that size at once (br_fd_reserve). */
static int l_max_fds(lua_State *L) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return luaL_fileresult(L, 0, "getrlimit");
  rlim_t want = luaL_optinteger(L, 1, 0) > 0 ? (rlim_t)luaL_optinteger(L, 1, 0) : rl.rlim_max;
  if (want > rl.rlim_max) want = rl.rlim_max;
  if (want > rl.rlim_cur) {
    struct rlimit nl = {want, rl.rlim_max};
    /* macOS refuses more than OPEN_MAX (10240) for the soft limit when the
     * hard limit is "unlimited": fall back to that. */
    if (setrlimit(RLIMIT_NOFILE, &nl) != 0) {
      nl.rlim_cur = want < 10240 ? want : 10240;
      if (setrlimit(RLIMIT_NOFILE, &nl) != 0) return luaL_fileresult(L, 0, "setrlimit");
    }
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  /* the file table grown now, not while requests are being sent (sock.h);
   * at most 65,536 slots (512 KB of kernel memory) */
  rlim_t room = want < rl.rlim_cur ? want : rl.rlim_cur;
  br_fd_reserve(room > 65536 ? 65536 : (int)room);
  lua_pushinteger(L, (lua_Integer)rl.rlim_cur);
  return 1;
}

/* http.rusage() -> {user_ns, sys_ns, cpu_ns, maxrss} of this process: what
 * the client benchmark divides by the tokens it received. */
static int l_rusage(lua_State *L) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return luaL_fileresult(L, 0, "getrusage");
  int64_t user = (int64_t)ru.ru_utime.tv_sec * 1000000000 + (int64_t)ru.ru_utime.tv_usec * 1000;
  int64_t sys = (int64_t)ru.ru_stime.tv_sec * 1000000000 + (int64_t)ru.ru_stime.tv_usec * 1000;
  lua_createtable(L, 0, 4);
  set_int(L, "user_ns", user);
  set_int(L, "sys_ns", sys);
  set_int(L, "cpu_ns", user + sys);
  set_int(L, "maxrss", br_platform_self_maxrss());
  return 1;
}

/* http.active() -> transfers in flight */
static int l_active(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  hctx *c = lua_touserdata(L, -1);
  lua_pushinteger(L, c ? c->active : 0);
  return 1;
}

int luaopen_bench_http(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"request", l_request}, {"start", l_start}, {"prepare", l_prepare}, {"max_fds", l_max_fds}, {"active", l_active}, {"version", http_curl_version},
    {"rusage", l_rusage},
    {NULL, NULL}};
  static const luaL_Reg ctx_meta[] = {
    {"__gc", ctx_close}, {"__close", ctx_close}, {"__tostring", ctx_tostring}, {NULL, NULL}};
  static const luaL_Reg req_meta[] = {
    {"__gc", req_gc}, {"__close", req_gc}, {"__tostring", req_tostring}, {NULL, NULL}};
  br_class(L, CTX_MT, ctx_meta, NULL);
  static const luaL_Reg req_methods[] = {{"wait", req_wait}, {"result", req_result}, {"close", req_gc},
                                               {"connect", req_connect}, {"send", req_send},
                                               {"send_after", req_send_after}, {"sent", req_sent}, {NULL, NULL}};
  br_class(L, REQ_MT, req_meta, req_methods);
  lua_pop(L, 2);
  luaL_newlib(L, funcs);
  return 1;
}
