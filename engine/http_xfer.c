/* bench.http's transfer core (see http_internal.h): what is the same
 * whichever transport carries a request. The answer's head is judged here,
 * body bytes go to the SSE/NDJSON decoder (sse.c) and, with decode, to the
 * LLM chunk reader (llmchunk.c); on_event runs per event; the deadlines
 * (connect, first byte, idle, total) are kept; a finished transfer wakes its
 * waiter and its response table is built here.
 *
 * The streamed-body hot path stays in C: each read is timestamped first,
 * split into events and reduced to a few numbers and appended text. Lua runs
 * per event only when on_event is given.
 *
 * A transfer's state lives in malloc'd memory owned by the context; the
 * request userdata on the waiting thread's stack only points at it, so
 * either side may go first (cancellation, errors, lua_close). */
#include "http_internal.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- reasons ---- */

static const char *const err_names[] = {
  [HERR_NONE] = NULL,
  [HERR_STATUS] = "http_",
  [HERR_REDIRECT] = "redirect",
  [HERR_UNSUPPORTED_ENCODING] = "unsupported_encoding",
  [HERR_BAD_CONTENT_TYPE] = "bad_content_type",
  [HERR_EVENT_TOO_LARGE] = "event_too_large",
  [HERR_BODY_TOO_LARGE] = "body_too_large",
  [HERR_TRUNCATED] = "truncated",
  [HERR_ON_EVENT] = "on_event",
  [HERR_STOPPED] = "stopped",
  [HERR_BAD_RESPONSE] = "bad_response",
  [HERR_REFUSED] = "refused",
  [HERR_DNS] = "dns",
  [HERR_CONNECT] = "connect",
  [HERR_RESET] = "reset",
  [HERR_TLS] = "tls",
  [HERR_TIMEOUT_CONNECT] = "timeout_connect",
  [HERR_TIMEOUT_FIRST_BYTE] = "timeout_first_byte",
  [HERR_TIMEOUT_IDLE] = "timeout_idle",
  [HERR_TIMEOUT_TOTAL] = "timeout_total",
  [HERR_HTTP2] = "http2",
  [HERR_BAD_URL] = "bad_url",
  [HERR_NOMEM] = "nomem",
  [HERR_CURL] = "curl",
  [HERR_CANCELLED] = "cancelled",
};

/* r.error's text: the kind's name, "http_<status>" for a status. */
const char *http_err_name(http_err e, long status, char *buf, size_t n) {
  if (e != HERR_STATUS) return err_names[e];
  snprintf(buf, n, "http_%ld", status);
  return buf;
}

static void detail_vset(xfer *x, int replace, const char *fmt, va_list ap) {
  if (x->detail.len && !replace) return;
  char msg[256];   /* a sentence, not a log: long ones are cut */
  vsnprintf(msg, sizeof msg, fmt, ap);
  br_buf_clear(&x->detail);
  br_buf_str(&x->detail, msg);
}

void http_detail(xfer *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  detail_vset(x, 0, fmt, ap);
  va_end(ap);
}

void http_detail_replace(xfer *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  detail_vset(x, 1, fmt, ap);
  va_end(ap);
}

/* ---- the answer's head ---- */

static int starts_with_ci(const char *s, const char *prefix) {
  return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int type_ok(const xfer *x, const char *ct) {
  if (!x->check_type) return 1;
  if (x->stream == STREAM_SSE) return starts_with_ci(ct, "text/event-stream");
  return starts_with_ci(ct, "application/x-ndjson") || starts_with_ci(ct, "application/json") ||
         starts_with_ci(ct, "application/jsonl") || starts_with_ci(ct, "application/ndjson");
}

const char *http_next_header(const xfer *x, const char *name, size_t *pos, size_t *vlen) {
  size_t nl = strlen(name);
  const char *base = x->headers.p, *end = base + x->headers.len;
  const char *p = base ? base + *pos : NULL;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    *pos = (size_t)(next - base);
    if ((size_t)(next - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1, *ve = next;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == '\n' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      *vlen = (size_t)(ve - v);
      return v;
    }
    p = next;
  }
  return NULL;
}

/* The first coding named in the `name` headers of the answer that is not
 * `plain` ("identity" or "chunked"); NULL when all are. */
static const char *other_coding(const xfer *x, const char *name, const char *plain, size_t *clen) {
  size_t pos = 0, n, pl = strlen(plain);
  const char *v;
  while ((v = http_next_header(x, name, &pos, &n))) {
    size_t at = 0, len;
    const char *t;
    while ((t = br_h1_list_next(v, n, &at, &len))) {
      if (!(len == pl && strncasecmp(t, plain, pl) == 0)) {
        *clen = len;
        return t;
      }
    }
  }
  return NULL;
}

int http_has_header(const xfer *x, const char *name) {
  size_t nl = strlen(name);
  const char *p = x->reqhdrs.p, *end = p + x->reqhdrs.len;
  while (p && p < end) {
    if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') return 1;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    p = eol ? eol + 1 : end;
  }
  return 0;
}

/* The head of the answer is in: x->status and x->content_type say what
 * the body is to us. The same for both transports, so that they agree on
 * what a head means: an error status, then a redirect (not followed), then
 * a body in a coding we did not ask for, then a stream's content type. */
void http_head_done(xfer *x) {
  const char *ct = x->content_type[0] ? x->content_type : NULL;
  size_t pos = 0, n = 0;
  const char *loc = x->status >= 300 && x->status < 400 ? http_next_header(x, "location", &pos, &n) : NULL;
  if (loc && !n) loc = NULL;
  int has_body = !x->head_request && x->status != 204 && x->status != 304;
  const char *coding = NULL;
  /* Transfer codings other than chunked are never asked for (no TE header);
   * a content coding only when the caller sent Accept-Encoding. */
  if (has_body) coding = other_coding(x, "transfer-encoding", "chunked", &n);
  if (has_body && !coding && !http_has_header(x, "accept-encoding"))
    coding = other_coding(x, "content-encoding", "identity", &n);
  if (x->status >= 400) {
    if (!x->error) x->error_status = x->status;
    http_fail(x, HERR_STATUS);
    x->body_mode = BODY_ERROR;
  } else if (loc && (x->status == 301 || x->status == 302 || x->status == 303 || x->status == 307 || x->status == 308)) {
    http_fail(x, HERR_REDIRECT);
    http_detail(x, "a %ld redirect to %.*s (bench.http does not follow redirects)", x->status,
                (int)(n < 200 ? n : 200), loc);
    x->body_mode = BODY_ERROR;
  } else if (coding) {
    http_fail(x, HERR_UNSUPPORTED_ENCODING);
    http_detail(x, "the body is encoded with %.*s, which was not asked for", (int)(n < 64 ? n : 64), coding);
    x->body_mode = BODY_ERROR;
  } else if (x->stream && !type_ok(x, ct)) {
    http_fail(x, HERR_BAD_CONTENT_TYPE);
    http_detail(x, "expected a streamed content type, got %s", ct ? ct : "none");
    x->body_mode = BODY_ERROR;
  } else {
    x->body_mode = x->stream ? BODY_STREAM : BODY_PLAIN;
  }
}

/* ---- events ---- */

#define NO_LAG INT32_MIN

static int push_token(xfer *x, int64_t t, int kind, const br_llm_delta *d) {
  if (x->ntok == x->captok) {
    size_t cap = x->captok ? x->captok * 2 : 64;
    uint32_t *a = realloc(x->tok_us, cap * sizeof *a);
    if (!a) return -1;
    x->tok_us = a;
    if (x->tok_lag) {
      int32_t *b = realloc(x->tok_lag, cap * sizeof *b);
      if (!b) return -1;
      x->tok_lag = b;
    }
    x->captok = cap;
  }
  if (d->has_sim_ns && !x->tok_lag) {   /* the first lateness seen: the list starts now */
    x->tok_lag = malloc(x->captok * sizeof *x->tok_lag);
    if (!x->tok_lag) return -1;
    for (size_t i = 0; i < x->ntok; i++) x->tok_lag[i] = NO_LAG;
    x->has_sim = 1;
  }
  int64_t us = (t - x->t_start) / 1000;
  x->tok_us[x->ntok] = us < 0 ? 0 : us > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  if (x->tok_lag) {
    int64_t lag = d->has_sim_ns ? t - d->sim_ns : (int64_t)NO_LAG;
    if (d->has_sim_ns) lag = lag < -INT32_MAX ? -INT32_MAX : lag > INT32_MAX ? INT32_MAX : lag;
    x->tok_lag[x->ntok] = (int32_t)lag;
  }
  if (!x->ntok) x->first_token_t = t;
  x->last_token_t = t;
  x->t_progress = t;
  if (kind == BR_LLM_CONTENT) x->ncontent++;
  else if (kind == BR_LLM_TOOL) x->ntool++;
  else x->nreasoning++;
  x->ntok++;
  return 0;
}

static int keep_raw(xfer *x, const br_sse_event *ev, int64_t t) {
  if (x->nev == x->capev) {
    size_t cap = x->capev ? x->capev * 2 : 64;
    evrec *e = realloc(x->evs, cap * sizeof *e);
    if (!e) return -1;
    x->evs = e;
    x->capev = cap;
  }
  evrec *r = &x->evs[x->nev];
  r->off = x->evdata.len;
  r->len = ev->data_len;
  if (br_buf_add(&x->evdata, ev->data, ev->data_len)) return -1;
  r->type_off = x->evdata.len;
  r->type_len = 0;
  if (ev->type_len && !(ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0)) {
    if (br_buf_add(&x->evdata, ev->type, ev->type_len)) return -1;
    r->type_len = ev->type_len;
  }
  r->t = t;
  x->nev++;
  return 0;
}

static const char *const kind_names[] = {NULL, "content", "reasoning", "tool_call"};

/* The table on_event gets for one event. */
static void push_event(lua_State *L, const xfer *x, const br_sse_event *ev, int64_t t, const br_llm_delta *d,
                       size_t c0, size_t r0) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, t);
  lua_setfield(L, -2, "t");
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  if (x->stream == STREAM_SSE) {
    lua_pushlstring(L, ev->type, ev->type_len);
    lua_setfield(L, -2, "type");
    if (ev->id_len) {
      lua_pushlstring(L, ev->id, ev->id_len);
      lua_setfield(L, -2, "id");
    }
  }
  lua_pushinteger(L, (lua_Integer)x->nevents);
  lua_setfield(L, -2, "index");
  if (!x->decode) return;
  if (d->content_added) {
    lua_pushlstring(L, x->llm.content.p + c0, d->content_added);
    lua_setfield(L, -2, "content");
  }
  if (d->reasoning_added) {
    lua_pushlstring(L, x->llm.reasoning.p + r0, d->reasoning_added);
    lua_setfield(L, -2, "reasoning");
  }
  if (d->kind) {
    lua_pushstring(L, kind_names[d->kind]);
    lua_setfield(L, -2, "kind");
  }
  if (d->has_sim_ns) {
    lua_pushinteger(L, d->sim_ns);
    lua_setfield(L, -2, "sim_ns");
  }
  if (d->done) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "done");
  }
}

/* on_event's message handler: the message with the Lua stack where it
 * was raised, so a failing callback says where. */
static int on_event_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "error object is not a string", 1);
  return 1;
}

/* on_event(ev): runs on the main thread, inside a transport's read, in
 * protected mode; an error (its message and traceback go to error_detail)
 * or a `false` result stops the transfer. */
static int call_on_event(xfer *x, const br_sse_event *ev, int64_t t, const br_llm_delta *d, size_t c0, size_t r0) {
  lua_State *L = x->ctx->main;
  if (!lua_checkstack(L, 8)) { http_fail(x, HERR_NOMEM); return 1; }
  int top = lua_gettop(L);
  lua_pushcfunction(L, on_event_traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->on_event_ref);
  push_event(L, x, ev, t, d, c0, r0);
  int stop = 0;
  if (lua_pcall(L, 1, 1, top + 1) != LUA_OK) {
    http_fail(x, HERR_ON_EVENT);
    if (!x->detail.len) {
      const char *msg = lua_tostring(L, -1);
      if (br_buf_str(&x->detail, "on_event: ") || br_buf_str(&x->detail, msg ? msg : "error object is not a string"))
        br_buf_clear(&x->detail);
    }
    stop = 1;
  } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    http_fail(x, HERR_STOPPED);
    stop = 1;
  }
  lua_settop(L, top);
  return stop;
}

static int event_cb(void *ud, const br_sse_event *ev) {
  xfer *x = ud;
  int64_t t = x->t_chunk;
  x->nevents++;
  br_llm_delta d;
  memset(&d, 0, sizeof d);
  size_t c0 = x->llm.content.len, r0 = x->llm.reasoning.len;
  if (x->decode && ev->type_len == 5 && memcmp(ev->type, "error", 5) == 0) {
    /* an error event (llama.cpp's "error:" line): its data is the message */
    if (x->llm.error.len == 0 && br_buf_add(&x->llm.error, ev->data_len ? ev->data : "\"\"",
                                                   ev->data_len ? ev->data_len : 2)) { http_fail(x, HERR_NOMEM); return 1; }
  } else if (x->decode) {
    if (br_llm_event(&x->llm, ev->data, ev->data_len, &d) == -2) { http_fail(x, HERR_NOMEM); return 1; }
    if (d.kind) {
      if (d.kind == BR_LLM_CONTENT && !x->first_content_t) x->first_content_t = t;
      if (d.kind == BR_LLM_REASONING && !x->first_reasoning_t) x->first_reasoning_t = t;
      if (d.kind == BR_LLM_TOOL && !x->first_tool_t) x->first_tool_t = t;
      if (push_token(x, t, d.kind, &d)) { http_fail(x, HERR_NOMEM); return 1; }
    }
  }
  if ((!x->decode || x->raw) && keep_raw(x, ev, t)) { http_fail(x, HERR_NOMEM); return 1; }
  if (x->on_event_ref != LUA_NOREF) return call_on_event(x, ev, t, &d, c0, r0);
  return 0;
}

int http_deliver(xfer *x, const char *p, size_t n, int64_t now) {
  x->bytes += n;
  if (!(x->decode && x->body_mode == BODY_STREAM)) x->t_progress = now;
  switch (x->body_mode) {
  case BODY_STREAM: {
    x->t_chunk = now;
    int rc = br_sse_feed(&x->sse, p, n, event_cb, x);
    if (rc == BR_SSE_OK) return 0;
    if (rc == BR_SSE_TOO_LARGE) {
      http_fail(x, HERR_EVENT_TOO_LARGE);
      http_detail_replace(x, "an event grew past max_event_bytes (%zu)", x->max_event);
    } else if (rc == BR_SSE_NOMEM) {
      http_fail(x, HERR_NOMEM);
    }
    return -1;
  }
  case BODY_PLAIN:
    if (x->body.len + n > x->max_body) {
      http_fail(x, HERR_BODY_TOO_LARGE);
      http_detail_replace(x, "the body grew past max_body_bytes (%zu)", x->max_body);
      return -1;
    }
    if (br_buf_add(&x->body, p, n)) { http_fail(x, HERR_NOMEM); return -1; }
    return 0;
  default: {   /* an error body: keep its start */
    size_t room = x->error_body_max > x->body.len ? x->error_body_max - x->body.len : 0;
    size_t k = n < room ? n : room;
    if (k && br_buf_add(&x->body, p, k)) return -1;
    if (k < n) { x->body_truncated = 1; return -1; }
    return 0;
  }
  }
}

/* ---- deadlines ---- */

static int64_t next_deadline(const xfer *x);
static void deadline_fired(br_loop *loop, br_timer *t);

/* The first byte: from now on the idle limit applies, which may come before
 * the deadline armed at the start (first_byte or total, or none at all). */
void http_first_byte(xfer *x, int64_t now) {
  x->t_first_byte = now;
  int64_t d = next_deadline(x);
  if (d != INT64_MAX && (!br_timer_active(&x->deadline) || d < x->deadline.when))
    br_timer_start(x->ctx->loop, &x->deadline, d, deadline_fired, x);
}

/* Where the idle clock starts: the last progress (see t_progress), else the
 * first byte: head bytes do not reset it, so a head trickled a byte at a
 * time cannot hold a request either. */
static int64_t idle_since(const xfer *x) {
  return x->t_progress > x->t_first_byte ? x->t_progress : x->t_first_byte;
}

static int64_t next_deadline(const xfer *x) {
  int64_t d = INT64_MAX;
  if (x->to_total) d = x->t_start + x->to_total;
  if (x->tr->connecting(x) && x->to_connect && x->t_start + x->to_connect < d) d = x->t_start + x->to_connect;
  if (!x->t_first_byte && x->to_first_byte && x->t_start + x->to_first_byte < d) d = x->t_start + x->to_first_byte;
  if (x->t_first_byte && x->to_idle) {
    int64_t idle = idle_since(x) + x->to_idle;
    if (idle < d) d = idle;
  }
  return d;
}

/* The deadline that has passed at `now`, and its limit; HERR_NONE if none. */
static http_err expired(const xfer *x, int64_t now, int64_t *limit) {
  if (x->to_total && now >= x->t_start + x->to_total) { *limit = x->to_total; return HERR_TIMEOUT_TOTAL; }
  if (x->tr->connecting(x) && x->to_connect && now >= x->t_start + x->to_connect) {
    *limit = x->to_connect;
    return HERR_TIMEOUT_CONNECT;
  }
  if (!x->t_first_byte && x->to_first_byte && now >= x->t_start + x->to_first_byte) {
    *limit = x->to_first_byte;
    return HERR_TIMEOUT_FIRST_BYTE;
  }
  if (x->t_first_byte && x->to_idle && now >= idle_since(x) + x->to_idle) { *limit = x->to_idle; return HERR_TIMEOUT_IDLE; }
  return HERR_NONE;
}

/* The deadline timer is moved lazily: data arriving does not touch it; when
 * it fires it checks what really expired and re-arms otherwise. */
static void deadline_fired(br_loop *loop, br_timer *t) {
  xfer *x = t->data;
  int64_t limit = 0;
  http_err why = expired(x, br_now(), &limit);
  if (why) {
    const char *what = why == HERR_TIMEOUT_TOTAL ? "the whole request took longer than total = %s s"
                     : why == HERR_TIMEOUT_CONNECT ? "not connected within connect = %s s"
                     : why == HERR_TIMEOUT_FIRST_BYTE ? "no response byte within first_byte = %s s"
                     : x->decode && x->body_mode == BODY_STREAM ? "no token for idle = %s s"
                                                                : "no data for idle = %s s";
    char secs[32];
    snprintf(secs, sizeof secs, "%g", (double)limit / 1e9);
    http_detail(x, what, secs);
    http_abort(x, why);
    return;
  }
  int64_t d = next_deadline(x);
  if (d != INT64_MAX) br_timer_start(loop, &x->deadline, d, deadline_fired, x);
}

/* ---- aborting and finishing ---- */

void http_run_deferred(hctx *c) {
  if (c->npending == 0) return;   /* the common case: no list walk per event */
  c->npending = 0;
  xfer *x = c->xfers, *next;
  for (; x; x = next) {
    next = x->next;
    if (x->abort_pending && x->in_flight) http_finish(x, x->pending_error);
  }
}

static void deferred_fired(br_loop *loop, br_timer *t) { http_run_deferred(t->data); }

void http_abort(xfer *x, http_err why) {
  if (!x->in_flight) return;
  if (x->ctx->busy) {
    if (!x->abort_pending) x->ctx->npending++;
    x->abort_pending = 1;
    x->pending_error = why;
    br_timer_start(x->ctx->loop, &x->ctx->defer, br_now(), deferred_fired, x->ctx);
    return;
  }
  http_finish(x, why);
}

/* A stream that ended: an event cut short, or (decoded) no end marker. */
static void check_stream_end(xfer *x) {
  if (x->stream && x->body_mode == BODY_STREAM && !x->error) {
    x->dropped = br_sse_finish(&x->sse, event_cb, x);
    if (x->dropped > 0) {
      http_fail(x, HERR_TRUNCATED);
      http_detail_replace(x, "the stream ended inside an event (%ld bytes dropped)", x->dropped);
    }
  }
  if (x->decode) {
    br_llm_finish(&x->llm);
    if (x->body_mode == BODY_STREAM && !x->error && !x->llm.done) {
      http_fail(x, HERR_TRUNCATED);
      http_detail(x, "%s", "the stream ended without its end marker ([DONE], done or stop)");
    }
  }
}

/* y no longer waits for the transfer it was chained to (if any). */
static void unchain(xfer *y) {
  if (!y->after) return;
  y->after->chained = NULL;
  y->after = NULL;
}

/* The request chained to x goes now if x ended cleanly (its connection,
 * parked by detach, is the one it takes); else it stays unsent, for the
 * Lua side to send or drop. */
static void send_chained(xfer *x) {
  xfer *y = x->chained;
  if (!y) return;
  unchain(y);
  if (y->in_flight || y->finished || x->error || x->ctx->closed || (y->chain_not_after && br_now() >= y->chain_not_after)) return;
  http_xfer_send(y, x->ctx->main);   /* a failure to start leaves it unsent: req:send reports it */
}

void http_xfer_send_after(xfer *y, xfer *x, int64_t not_after) {
  unchain(y);   /* chained to another before: this one wins */
  if (x->in_flight) {
    if (x->chained) unchain(x->chained);   /* one chained request a transfer */
    x->chained = y;
    y->after = x;
    y->chain_not_after = not_after;
  } else if (x->finished && !x->error && !x->ctx->closed && (!not_after || br_now() < not_after)) {
    http_xfer_send(y, x->ctx->main);
  }
}

void http_finish(xfer *x, http_err forced) {
  hctx *c = x->ctx;
  if (!x->in_flight) return;
  x->t_end = br_now();
  if (forced) http_fail(x, forced);
  x->tr->detach(x);
  x->in_flight = 0;
  x->abort_pending = 0;
  c->active--;
  br_timer_stop(c->loop, &x->deadline);
  br_loop_unref(c->loop);
  check_stream_end(x);
  x->finished = 1;
  send_chained(x);
  if (x->orphan) http_xfer_free(x);
  else br_wait_done(&x->wait);
}

static void xfer_cancel(br_wait *w) {
  xfer *x = (xfer *)w;   /* the wait is the first member */
  http_abort(x, HERR_CANCELLED);
}

const char *http_xfer_prepare(xfer *x, const http_opts *o) { return x->tr->prepare(x, o); }

const char *http_xfer_send(xfer *x, lua_State *L) {
  hctx *c = x->ctx;
  unchain(x);   /* sent by hand before the request it was chained to ended */
  x->t_start = br_now();
  br_wait_init(&x->wait, L);
  x->wait.cancel = xfer_cancel;
  x->in_flight = 1;
  c->active++;
  br_loop_ref(c->loop);
  http_busy_enter(c);   /* an error while sending ends the transfer after this call */
  const char *err = x->tr->start(x);
  http_busy_leave(c);
  if (err) {
    x->in_flight = 0;
    c->active--;
    br_loop_unref(c->loop);
    return err;
  }
  if (x->in_flight) {
    int64_t d = next_deadline(x);
    if (d != INT64_MAX) br_timer_start(c->loop, &x->deadline, d, deadline_fired, x);
  }
  return NULL;
}

void http_xfer_free(xfer *x) {
  hctx *c = x->ctx;
  if (x->chained) unchain(x->chained);
  unchain(x);
  if (x->prev) x->prev->next = x->next; else if (c->xfers == x) c->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  x->tr->release(x);
  br_buf_free(&x->reqhdrs);
  br_buf_free(&x->reqbody);
  br_buf_free(&x->headers);
  br_buf_free(&x->body);
  br_buf_free(&x->evdata);
  br_buf_free(&x->detail);
  br_sse_free(&x->sse);
  br_llm_free(&x->llm);
  free(x->evs);
  free(x->tok_us);
  free(x->tok_lag);
  if (x->on_event_ref != LUA_NOREF && !c->closed) luaL_unref(c->main, LUA_REGISTRYINDEX, x->on_event_ref);
  free(x);
}

void http_xfer_release(xfer *x) {
  if (!x) return;
  x->owner = NULL;
  if (x->in_flight) {
    if (x->ctx->busy) {   /* finish it after the transport returns, then free */
      x->orphan = 1;
      http_abort(x, HERR_CANCELLED);
      return;
    }
    http_finish(x, HERR_CANCELLED);
  }
  http_xfer_free(x);
}
