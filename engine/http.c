/* bench.http: HTTP requests on benchrun's event loop through libcurl's multi
 * socket interface. One multi handle per Lua state (in the registry, closed
 * with the state); curl's sockets map onto br_io watchers and its timeout
 * onto a br_timer, so thousands of transfers share the loop with timers,
 * children and everything else.
 *
 * The streamed-body hot path stays in C: each read is timestamped first,
 * split into events by the SSE/NDJSON decoder (sse.c) and, with
 * decode = "openai"|"ollama", reduced to a few numbers and appended text
 * (llmchunk.c). Lua runs per event only when on_event is given.
 *
 * A transfer's state lives in malloc'd memory owned by the multi context;
 * the request userdata on the waiting thread's stack only points at it, so
 * either side may go first (cancellation, errors, lua_close). */
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "llmchunk.h"
#include "platform.h"
#include "sse.h"

#include <curl/curl.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define CTX_MT "bench.http.Context"
#define REQ_MT "bench.http.Request"

static const char CTX_KEY = 'H';   /* registry: the context userdata */

enum { STREAM_NONE = 0, STREAM_SSE = 1, STREAM_NDJSON = 2 };
enum { BODY_UNDECIDED = 0, BODY_PLAIN, BODY_STREAM, BODY_ERROR };
enum { DEFAULT_MAX_EVENT = 1 << 20, DEFAULT_ERROR_BODY = 16 << 10, MAX_HEADER_BYTES = 64 << 10, POOL_MAX = 1024 };
static const size_t DEFAULT_MAX_BODY = (size_t)256 << 20;

typedef struct hctx hctx;
typedef struct xfer xfer;
typedef struct req_ud { xfer *x; } req_ud;

typedef struct hsock {
  br_io io;
  hctx *ctx;
  curl_socket_t fd;
  struct hsock *prev, *next;
} hsock;

/* One raw event, kept when no decoding is asked (or raw = true). */
typedef struct evrec {
  size_t off, len;            /* data in xfer.evdata */
  size_t type_off, type_len;  /* type in xfer.evdata (len 0: "message") */
  int64_t t;
} evrec;

struct hctx {
  CURLM *multi;
  br_loop *loop;
  lua_State *main;
  br_timer timer;       /* curl's timeout; holds no loop reference (see weak_timer_*) */
  br_timer defer;       /* runs aborts asked for while curl was on the stack */
  int in_curl;          /* depth of calls into curl */
  int npending;         /* transfers with an abort waiting for curl to return */
  xfer *xfers;          /* every transfer not yet freed */
  hsock *socks;
  CURL **pool;          /* reset easy handles for reuse */
  int npool;
  long active;          /* transfers in the multi */
  int closed;
};

struct xfer {
  br_wait wait;
  hctx *ctx;
  CURL *easy;
  xfer *prev, *next;
  req_ud *owner;         /* NULL once the Lua side has let go */
  int in_multi, finished, abort_pending, orphan;
  const char *pending_error;
  /* options */
  int stream, decode, raw, check_type;
  size_t max_event, max_body, error_body_max;
  int64_t to_first_byte, to_idle, to_total;   /* ns; 0: none */
  int on_event_ref;
  struct curl_slist *hdrs;
  br_sse_buf reqbody;
  /* progress */
  br_timer deadline;
  int64_t t_start, t_first_byte, t_last_data, t_chunk, t_end;
  int body_mode;
  long status;
  const char *error;     /* static reason, or errtext */
  char errtext[32];
  char errbuf[CURL_ERROR_SIZE];
  char detail[256];
  br_sse_buf headers, body;
  int body_truncated;
  uint64_t bytes;
  br_sse sse;
  long dropped;          /* bytes of an unfinished SSE event at the end */
  /* raw events */
  br_sse_buf evdata;
  evrec *evs;
  size_t nev, capev;
  uint64_t nevents;
  /* decoded */
  br_llm llm;
  /* Per token event, 4 bytes each (long answers at high concurrency add
   * up): arrival as µs since t_start, and, once an event carried sim_ns,
   * the lateness in ns (saturated at ±2.1 s; NO_LAG where unknown). */
  uint32_t *tok_us;
  int32_t *tok_lag;
  size_t ntok, captok, ncontent, nreasoning;
  int64_t first_token_t, last_token_t;
  int64_t first_content_t, first_reasoning_t;
  int has_sim;
  /* curl's view, copied before the easy handle is recycled */
  curl_off_t i_dns, i_connect, i_tls, i_sent, i_starttransfer;
  long num_connects;
  char content_type[128];
};

/* ---- small helpers ---- */

static void set_detail(xfer *x, const char *fmt, const char *s) {
  if (!x->detail[0]) snprintf(x->detail, sizeof x->detail, fmt, s);
}

static void fail(xfer *x, const char *reason) {
  if (!x->error) x->error = reason;
}

/* A br_timer that does not keep the loop alive: curl keeps a timeout around
 * for idle connections, which must not stop a script from ending. The loop
 * counts a reference per active timer; we give it back while ours runs. */
static void weak_timer_start(hctx *c, br_timer *t, int64_t when, br_timer_cb cb) {
  int was = br_timer_active(t);
  br_timer_start(c->loop, t, when, cb, c);
  if (!was) br_loop_unref(c->loop);
}

static void weak_timer_stop(hctx *c, br_timer *t) {
  if (!br_timer_active(t)) return;
  br_loop_ref(c->loop);
  br_timer_stop(c->loop, t);
}

/* ---- the multi context ---- */

static void check_multi_info(hctx *c);
static void process_deferred(hctx *c);
static void xfer_finish(xfer *x, CURLcode rc, const char *forced);
static void xfer_free(xfer *x);

static void socket_action(hctx *c, curl_socket_t fd, int flags) {
  int running;
  c->in_curl++;
  curl_multi_socket_action(c->multi, fd, flags, &running);
  c->in_curl--;
  if (c->in_curl == 0) {
    check_multi_info(c);
    process_deferred(c);
  }
}

static void io_cb(br_loop *loop, br_io *io, int events) {
  hsock *s = io->data;
  int flags = 0;
  if (events & BR_READ) flags |= CURL_CSELECT_IN;
  if (events & BR_WRITE) flags |= CURL_CSELECT_OUT;
  socket_action(s->ctx, s->fd, flags);
}

static void curl_timer_fired(br_loop *loop, br_timer *t) {
  hctx *c = t->data;
  br_loop_ref(c->loop);   /* the loop dropped the reference we had given back */
  socket_action(c, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  hctx *c = userp;
  if (timeout_ms < 0) weak_timer_stop(c, &c->timer);
  else weak_timer_start(c, &c->timer, br_now() + (int64_t)timeout_ms * 1000000, curl_timer_fired);
  return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  hctx *c = userp;
  hsock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      br_io_stop(c->loop, &s->io);
      if (s->prev) s->prev->next = s->next; else c->socks = s->next;
      if (s->next) s->next->prev = s->prev;
      free(s);
      curl_multi_assign(c->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->ctx = c;
    s->fd = fd;
    s->io.weak = 1;   /* transfers keep the loop alive, not idle connections */
    s->next = c->socks;
    if (c->socks) c->socks->prev = s;
    c->socks = s;
    curl_multi_assign(c->multi, fd, s);
  }
  int ev = (what == CURL_POLL_IN ? BR_READ : what == CURL_POLL_OUT ? BR_WRITE : BR_READ | BR_WRITE);
  return br_io_start(c->loop, &s->io, fd, ev, io_cb, s) == 0 ? 0 : -1;
}

static void deferred_fired(br_loop *loop, br_timer *t) { process_deferred(t->data); }

static void process_deferred(hctx *c) {
  if (c->npending == 0) return;   /* the common case: no list walk per event */
  c->npending = 0;
  xfer *x = c->xfers, *next;
  for (; x; x = next) {
    next = x->next;
    if (x->abort_pending && x->in_multi) xfer_finish(x, CURLE_OK, x->pending_error);
  }
}

/* Stop a transfer with a reason; safe from anywhere (curl's callbacks
 * included: then it happens right after curl returns). */
static void xfer_abort(xfer *x, const char *reason) {
  if (!x->in_multi) return;
  if (x->ctx->in_curl) {
    if (!x->abort_pending) x->ctx->npending++;
    x->abort_pending = 1;
    x->pending_error = reason;
    br_timer_start(x->ctx->loop, &x->ctx->defer, br_now(), deferred_fired, x->ctx);
    return;
  }
  xfer_finish(x, CURLE_OK, reason);
}

static int ctx_close(lua_State *L) {
  hctx *c = luaL_checkudata(L, 1, CTX_MT);
  if (c->closed) return 0;
  c->closed = 1;
  while (c->xfers) {
    xfer *x = c->xfers;
    if (x->in_multi) {
      curl_multi_remove_handle(c->multi, x->easy);
      x->in_multi = 0;
      br_timer_stop(c->loop, &x->deadline);
      br_loop_unref(c->loop);
    }
    if (x->easy) curl_easy_cleanup(x->easy);
    x->easy = NULL;
    if (x->owner) {
      /* The waiting task must not keep a pointer into freed memory: wake
       * it; it finds its request closed and ends as cancelled. */
      x->owner->x = NULL;
      br_wait_done(&x->wait);
    }
    xfer_free(x);
  }
  for (int i = 0; i < c->npool; i++) curl_easy_cleanup(c->pool[i]);
  free(c->pool);
  c->pool = NULL;
  c->npool = 0;
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  while (c->socks) {
    hsock *s = c->socks;
    c->socks = s->next;
    br_io_stop(c->loop, &s->io);
    free(s);
  }
  weak_timer_stop(c, &c->timer);
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
  c->closed = 1;   /* closed until the multi handle exists */
  luaL_setmetatable(L, CTX_MT);
  c->multi = curl_multi_init();
  if (!c->multi) luaL_error(L, "http: cannot create a curl multi handle");
  c->closed = 0;
  c->loop = br_sched_loop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  c->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  return c;
}

/* ---- per-transfer callbacks ---- */

static int starts_with_ci(const char *s, const char *prefix) {
  return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int type_ok(const xfer *x, const char *ct) {
  if (!x->check_type) return 1;
  if (x->stream == STREAM_SSE) return starts_with_ci(ct, "text/event-stream");
  return starts_with_ci(ct, "application/x-ndjson") || starts_with_ci(ct, "application/json") ||
         starts_with_ci(ct, "application/jsonl") || starts_with_ci(ct, "application/ndjson");
}

static void decide_body(xfer *x) {
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  char *ct = NULL;
  curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) snprintf(x->content_type, sizeof x->content_type, "%s", ct);
  if (x->status >= 400) {
    snprintf(x->errtext, sizeof x->errtext, "http_%ld", x->status);
    fail(x, x->errtext);
    x->body_mode = BODY_ERROR;
  } else if (x->stream && !type_ok(x, ct)) {
    fail(x, "bad_content_type");
    set_detail(x, "expected a streamed content type, got %s", ct ? ct : "none");
    x->body_mode = BODY_ERROR;
  } else {
    x->body_mode = x->stream ? BODY_STREAM : BODY_PLAIN;
  }
}

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
  if (kind == BR_LLM_CONTENT) x->ncontent++; else x->nreasoning++;
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
  if (br_sse_buf_append(&x->evdata, ev->data, ev->data_len)) return -1;
  r->type_off = x->evdata.len;
  r->type_len = 0;
  if (ev->type_len && !(ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0)) {
    if (br_sse_buf_append(&x->evdata, ev->type, ev->type_len)) return -1;
    r->type_len = ev->type_len;
  }
  r->t = t;
  x->nev++;
  return 0;
}

static const char *const kind_names[] = {NULL, "content", "reasoning"};

/* on_event(ev): runs on the main thread, inside curl's write callback, in
 * protected mode; an error or a `false` result stops the transfer. */
static int call_on_event(xfer *x, const br_sse_event *ev, int64_t t, const br_llm_delta *d, size_t c0, size_t r0) {
  lua_State *L = x->ctx->main;
  if (!lua_checkstack(L, 8)) { fail(x, "nomem"); return 1; }
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, x->on_event_ref);
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
  if (x->decode) {
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
  int stop = 0;
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fail(x, "on_event");
    set_detail(x, "on_event: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error object is not a string");
    stop = 1;
  } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    fail(x, "stopped");
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
  if (x->decode) {
    if (br_llm_event(&x->llm, ev->data, ev->data_len, &d) == -2) { fail(x, "nomem"); return 1; }
    if (d.kind) {
      if (d.kind == BR_LLM_CONTENT && !x->first_content_t) x->first_content_t = t;
      if (d.kind == BR_LLM_REASONING && !x->first_reasoning_t) x->first_reasoning_t = t;
      if (push_token(x, t, d.kind, &d)) { fail(x, "nomem"); return 1; }
    }
  }
  if ((!x->decode || x->raw) && keep_raw(x, ev, t)) { fail(x, "nomem"); return 1; }
  if (x->on_event_ref != LUA_NOREF) return call_on_event(x, ev, t, &d, c0, r0);
  return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  int64_t now = br_loop_event_time(x->ctx->loop);   /* first: the arrival time of these bytes */
  size_t n = size * nmemb;
  x->t_last_data = now;
  x->bytes += n;
  if (x->body_mode == BODY_UNDECIDED) decide_body(x);
  switch (x->body_mode) {
  case BODY_STREAM: {
    x->t_chunk = now;
    int rc = br_sse_feed(&x->sse, p, n, event_cb, x);
    if (rc == BR_SSE_OK) return n;
    if (rc == BR_SSE_TOO_LARGE) {
      fail(x, "event_too_large");
      snprintf(x->detail, sizeof x->detail, "an event grew past max_event_bytes (%zu)", x->max_event);
    } else if (rc == BR_SSE_NOMEM) {
      fail(x, "nomem");
    }
    return 0;
  }
  case BODY_PLAIN:
    if (x->body.len + n > x->max_body) {
      fail(x, "body_too_large");
      snprintf(x->detail, sizeof x->detail, "the body grew past max_body_bytes (%zu)", x->max_body);
      return 0;
    }
    if (br_sse_buf_append(&x->body, p, n)) { fail(x, "nomem"); return 0; }
    return n;
  default: {   /* an error body: keep its start */
    size_t room = x->error_body_max > x->body.len ? x->error_body_max - x->body.len : 0;
    size_t k = n < room ? n : room;
    if (k && br_sse_buf_append(&x->body, p, k)) return 0;
    if (k < n) { x->body_truncated = 1; return 0; }
    return n;
  }
  }
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  int64_t now = br_loop_event_time(x->ctx->loop);
  size_t n = size * nmemb;
  if (!x->t_first_byte) x->t_first_byte = now;
  x->t_last_data = now;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) x->headers.len = 0;   /* a new response (after 1xx) */
  if (x->headers.len + n <= MAX_HEADER_BYTES) br_sse_buf_append(&x->headers, p, n);
  return n;
}

/* ---- deadlines ---- */

static int64_t next_deadline(const xfer *x) {
  int64_t d = INT64_MAX;
  if (x->to_total) d = x->t_start + x->to_total;
  if (!x->t_first_byte && x->to_first_byte && x->t_start + x->to_first_byte < d) d = x->t_start + x->to_first_byte;
  if (x->t_first_byte && x->to_idle) {
    int64_t idle = (x->t_last_data > x->t_first_byte ? x->t_last_data : x->t_first_byte) + x->to_idle;
    if (idle < d) d = idle;
  }
  return d;
}

/* The deadline timer is moved lazily: data arriving does not touch it; when
 * it fires it checks what really expired and re-arms otherwise. */
static void deadline_fired(br_loop *loop, br_timer *t) {
  xfer *x = t->data;
  int64_t now = br_now();
  const char *why = NULL;
  if (x->to_total && now >= x->t_start + x->to_total) why = "timeout_total";
  else if (!x->t_first_byte && x->to_first_byte && now >= x->t_start + x->to_first_byte) why = "timeout_first_byte";
  else if (x->t_first_byte && x->to_idle) {
    int64_t last = x->t_last_data > x->t_first_byte ? x->t_last_data : x->t_first_byte;
    if (now >= last + x->to_idle) why = "timeout_idle";
  }
  if (why) {
    const char *what = why[8] == 't' ? "the whole request took longer than total = %s s"
                     : why[8] == 'f' ? "no response byte within first_byte = %s s"
                                     : "no data for idle = %s s";
    char secs[32];
    int64_t limit = why[8] == 't' ? x->to_total : why[8] == 'f' ? x->to_first_byte : x->to_idle;
    snprintf(secs, sizeof secs, "%g", (double)limit / 1e9);
    set_detail(x, what, secs);
    xfer_abort(x, why);
    return;
  }
  int64_t d = next_deadline(x);
  if (d != INT64_MAX) br_timer_start(loop, &x->deadline, d, deadline_fired, x);
}

/* ---- finishing ---- */

static const char *curl_reason(xfer *x, CURLcode rc) {
  switch (rc) {
  case CURLE_OK: return NULL;
  case CURLE_COULDNT_CONNECT: {
    long oserr = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    return oserr == ECONNREFUSED || oserr == 0 ? "refused" : "connect";
  }
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "dns";
  case CURLE_OPERATION_TIMEDOUT: return x->i_connect > 0 || x->t_first_byte ? "timeout_total" : "timeout_connect";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_USE_SSL_FAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE: return "tls";
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING: return "reset";
  case CURLE_PARTIAL_FILE: return "truncated";
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM: return "http2";
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return "bad_url";
  case CURLE_WEIRD_SERVER_REPLY: return "bad_response";
  case CURLE_OUT_OF_MEMORY: return "nomem";
  default: return "curl";
  }
}

static void release_easy(hctx *c, xfer *x) {
  if (!x->easy) return;
  if (c->npool < POOL_MAX) {
    if (!c->pool) c->pool = malloc(POOL_MAX * sizeof *c->pool);
    if (c->pool) {
      curl_easy_reset(x->easy);
      c->pool[c->npool++] = x->easy;
      x->easy = NULL;
      return;
    }
  }
  curl_easy_cleanup(x->easy);
  x->easy = NULL;
}

/* The transfer is over (curl said so, a deadline passed, or it was
 * cancelled): copy curl's figures, leave the multi, settle the error, wake
 * the waiter. Never called with curl on the stack. */
static void xfer_finish(xfer *x, CURLcode rc, const char *forced) {
  hctx *c = x->ctx;
  if (!x->in_multi) return;
  x->t_end = br_now();
  if (forced) fail(x, forced);
  CURL *e = x->easy;
  curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &x->i_dns);
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &x->i_connect);
  curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &x->i_tls);
  curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &x->i_sent);
  curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &x->i_starttransfer);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &x->num_connects);
  if (x->body_mode == BODY_UNDECIDED && x->t_first_byte) decide_body(x);
  else curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
  if (rc != CURLE_OK && !x->error) {
    fail(x, curl_reason(x, rc));
    set_detail(x, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
  }
  c->in_curl++;
  curl_multi_remove_handle(c->multi, e);
  c->in_curl--;
  x->in_multi = 0;
  x->abort_pending = 0;
  c->active--;
  release_easy(c, x);
  br_timer_stop(c->loop, &x->deadline);
  br_loop_unref(c->loop);
  if (x->stream && x->body_mode == BODY_STREAM && !x->error) {
    x->dropped = br_sse_finish(&x->sse, event_cb, x);
    if (x->dropped > 0) {
      fail(x, "truncated");
      snprintf(x->detail, sizeof x->detail, "the stream ended inside an event (%ld bytes dropped)", x->dropped);
    }
  }
  if (x->decode) {
    br_llm_finish(&x->llm);
    if (x->body_mode == BODY_STREAM && !x->error && !x->llm.done) {
      fail(x, "truncated");
      set_detail(x, "%s", "the stream ended without its end marker ([DONE], done or stop)");
    }
  }
  x->finished = 1;
  if (x->orphan) xfer_free(x);
  else br_wait_done(&x->wait);
}

static void check_multi_info(hctx *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x) xfer_finish(x, m->data.result, NULL);
  }
}

static void xfer_free(xfer *x) {
  hctx *c = x->ctx;
  if (x->prev) x->prev->next = x->next; else if (c->xfers == x) c->xfers = x->next;
  if (x->next) x->next->prev = x->prev;
  if (x->easy) curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->hdrs);
  br_sse_buf_free(&x->reqbody);
  br_sse_buf_free(&x->headers);
  br_sse_buf_free(&x->body);
  br_sse_buf_free(&x->evdata);
  br_sse_free(&x->sse);
  br_llm_free(&x->llm);
  free(x->evs);
  free(x->tok_us);
  free(x->tok_lag);
  if (x->on_event_ref != LUA_NOREF && !c->closed) luaL_unref(c->main, LUA_REGISTRYINDEX, x->on_event_ref);
  free(x);
}

/* The Lua side lets go (result taken, cancelled, or collected). */
static void xfer_release(xfer *x) {
  if (!x) return;
  x->owner = NULL;
  if (x->in_multi) {
    if (x->ctx->in_curl) {   /* finish it after curl returns, then free */
      x->orphan = 1;
      xfer_abort(x, "cancelled");
      return;
    }
    xfer_finish(x, CURLE_OK, "cancelled");
  }
  xfer_free(x);
}

static void xfer_cancel(br_wait *w) {
  xfer *x = (xfer *)w;   /* the wait is the first member */
  xfer_abort(x, "cancelled");
}

static int req_gc(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  xfer *x = u->x;
  u->x = NULL;
  xfer_release(x);
  return 0;
}

/* ---- building the response ---- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n) {
  lua_pushlstring(L, s, n);
  lua_setfield(L, -2, k);
}

static void set_buf(lua_State *L, const char *k, const br_sse_buf *b) {
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

static void set_time(lua_State *L, const char *k, const xfer *x, curl_off_t us) {
  if (us > 0) set_int(L, k, x->t_start + (int64_t)us * 1000);
}

static void push_timings(lua_State *L, const xfer *x) {
  lua_createtable(L, 0, 8);
  set_int(L, "start", x->t_start);
  set_time(L, "dns", x, x->i_dns);
  set_time(L, "connect", x, x->i_connect);
  set_time(L, "tls", x, x->i_tls);
  set_time(L, "sent", x, x->i_sent);
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
  if (x->first_content_t) set_int(L, "first_content_t", x->first_content_t);
  if (x->first_reasoning_t) set_int(L, "first_reasoning_t", x->first_reasoning_t);
  set_int(L, "tokens", (lua_Integer)x->ntok);
  set_int(L, "content_events", (lua_Integer)x->ncontent);
  set_int(L, "reasoning_events", (lua_Integer)x->nreasoning);
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
  if (x->has_sim) {
    /* The client's lateness against the simulator's send time of each
     * token: the first one's is the ttft error, the change from one token
     * to the next the itl error. */
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
  lua_setfield(L, -2, "llm");
}

static void push_response(lua_State *L, const xfer *x) {
  lua_createtable(L, 0, 12);
  set_int(L, "status", x->status);
  if (x->error) {
    lua_pushstring(L, x->error);
    lua_setfield(L, -2, "error");
    if (x->detail[0]) {
      lua_pushstring(L, x->detail);
      lua_setfield(L, -2, "error_detail");
    }
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
  lua_pushboolean(L, x->num_connects == 0 && x->t_first_byte);
  lua_setfield(L, -2, "reused");
}

/* ---- http.request ---- */

static int request_k(lua_State *L, int status, lua_KContext kctx) {
  req_ud *u = (req_ud *)kctx;
  xfer *x = u->x;
  if (!x) return br_wait_raise(L, NULL);   /* closed with the state */
  if (br_wait_cancelled(&x->wait)) {
    br_wait w = x->wait;
    u->x = NULL;
    xfer_release(x);
    return br_wait_raise(L, &w);
  }
  push_response(L, x);
  u->x = NULL;
  xfer_release(x);
  return 1;
}

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

static void add_header(lua_State *L, xfer *x, const char *line) {
  struct curl_slist *l = curl_slist_append(x->hdrs, line);
  if (!l) luaL_error(L, "http.request: out of memory");
  x->hdrs = l;
}

static void read_headers(lua_State *L, xfer *x, int t) {
  int ty = lua_getfield(L, t, "headers");
  if (ty == LUA_TNIL) { lua_pop(L, 1); return; }
  if (ty != LUA_TTABLE) luaL_error(L, "http.request: headers: expected a table, got %s", luaL_typename(L, -1));
  int h = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, h)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      if (!lua_isstring(L, -1))
        luaL_error(L, "http.request: headers[%s]: expected a string, got %s", lua_tostring(L, -2), luaL_typename(L, -1));
      lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -1);   /* "Name: value" in a list */
    } else {
      luaL_error(L, "http.request: headers: expected name = value or \"Name: value\" entries");
    }
    const char *line = lua_tostring(L, -1);
    if (strchr(line, '\r') || strchr(line, '\n')) luaL_error(L, "http.request: headers: a header contains a line break");
    add_header(L, x, line);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

/* http.request{url, method?, headers?, body?, stream?, decode?, raw?,
 *   timeout?, on_event?, max_event_bytes?, max_body_bytes?,
 *   error_body_bytes?, insecure?, ca_file?, http2?, check_content_type?}
 *   -> response table (never raises for failures of the outside world; see
 *   docs/http.md). Yields inside a task; runs the loop on the main thread. */
static int l_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  hctx *c = get_ctx(L);
  if (c->in_curl) return luaL_error(L, "http.request: cannot start a request from inside on_event");
  size_t urllen;
  const char *url = opt_string(L, 1, "url", &urllen);
  if (!url) return luaL_argerror(L, 1, "expected a url field (a string)");
  size_t bodylen = 0;
  const char *body = opt_string(L, 1, "body", &bodylen);
  const char *method = opt_string(L, 1, "method", NULL);
  if (!method) method = body ? "POST" : "GET";
  size_t sl;
  int stream = STREAM_NONE;
  int ty = lua_getfield(L, 1, "stream");
  if (ty == LUA_TSTRING) {
    const char *s = lua_tolstring(L, -1, &sl);
    if (strcmp(s, "sse") == 0) stream = STREAM_SSE;
    else if (strcmp(s, "ndjson") == 0) stream = STREAM_NDJSON;
    else return luaL_error(L, "http.request: stream: expected \"sse\", \"ndjson\" or false, got \"%s\"", s);
  } else if (ty == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
    stream = STREAM_SSE;
  } else if (ty != LUA_TNIL && ty != LUA_TBOOLEAN) {
    return luaL_error(L, "http.request: stream: expected \"sse\", \"ndjson\" or false, got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  int decode = 0;
  const char *dec = opt_string(L, 1, "decode", NULL);
  if (dec) {
    if (strcmp(dec, "openai") != 0 && strcmp(dec, "ollama") != 0 && strcmp(dec, "llm") != 0)
      return luaL_error(L, "http.request: decode: expected \"openai\" or \"ollama\", got \"%s\"", dec);
    if (!stream) return luaL_error(L, "http.request: decode needs stream = \"sse\" or \"ndjson\"");
    decode = 1;
  }
  int64_t to_connect = 0, to_first = 0, to_idle = 0, to_total = 0;
  ty = lua_getfield(L, 1, "timeout");
  if (ty == LUA_TNUMBER) {
    to_total = opt_seconds(L, 1, "timeout", "request");
  } else if (ty == LUA_TTABLE) {
    int t = lua_gettop(L);
    to_connect = opt_seconds(L, t, "connect", "timeout");
    to_first = opt_seconds(L, t, "first_byte", "timeout");
    to_idle = opt_seconds(L, t, "idle", "timeout");
    to_total = opt_seconds(L, t, "total", "timeout");
  } else if (ty != LUA_TNIL) {
    return luaL_error(L, "http.request: timeout: expected seconds or {connect, first_byte, idle, total}, got %s",
                      luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  ty = lua_getfield(L, 1, "on_event");
  if (ty != LUA_TNIL && ty != LUA_TFUNCTION)
    return luaL_error(L, "http.request: on_event: expected a function, got %s", luaL_typename(L, -1));
  lua_pop(L, 1);
  const char *ca_file = opt_string(L, 1, "ca_file", NULL);
  const char *h2 = opt_string(L, 1, "http2", NULL);

  /* The userdata first, closed: an error below leaves nothing behind. */
  req_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->x = NULL;
  luaL_setmetatable(L, REQ_MT);
  xfer *x = calloc(1, sizeof *x);
  if (!x) return luaL_error(L, "http.request: out of memory");
  x->ctx = c;
  x->on_event_ref = LUA_NOREF;
  x->next = c->xfers;
  if (c->xfers) c->xfers->prev = x;
  c->xfers = x;
  u->x = x;
  x->owner = u;
  x->stream = stream;
  x->decode = decode;
  x->raw = opt_bool(L, 1, "raw", 0);
  x->check_type = opt_bool(L, 1, "check_content_type", 1);
  x->max_event = opt_size(L, 1, "max_event_bytes", DEFAULT_MAX_EVENT);
  x->max_body = opt_size(L, 1, "max_body_bytes", DEFAULT_MAX_BODY);
  x->error_body_max = opt_size(L, 1, "error_body_bytes", DEFAULT_ERROR_BODY);
  x->to_first_byte = to_first;
  x->to_idle = to_idle;
  x->to_total = to_total;
  if (stream) br_sse_init(&x->sse, stream == STREAM_NDJSON ? BR_SSE_MODE_NDJSON : BR_SSE_MODE_SSE, x->max_event);
  br_llm_init(&x->llm);
  read_headers(L, x, 1);
  add_header(L, x, "Expect:");   /* no 100-continue round trip for large bodies */
  if (lua_getfield(L, 1, "on_event") == LUA_TFUNCTION) x->on_event_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  if (body && br_sse_buf_append(&x->reqbody, body, bodylen)) return luaL_error(L, "http.request: out of memory");

  CURL *e = c->npool ? c->pool[--c->npool] : curl_easy_init();
  if (!e) return luaL_error(L, "http.request: cannot create a curl handle");
  x->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                   h2 && strcmp(h2, "prior") == 0 ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                   : h2 && strcmp(h2, "off") == 0 ? (long)CURL_HTTP_VERSION_1_1
                                                  : (long)CURL_HTTP_VERSION_2TLS);
  /* Waiting to multiplex only pays where HTTP/2 is certain: on plain
   * HTTP/1.1 it makes every other request wait for the first response. */
  if (h2 && strcmp(h2, "prior") == 0) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  if (to_connect) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(to_connect / 1000000 > 0 ? to_connect / 1000000 : 1));
  if (opt_bool(L, 1, "insecure", 0)) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->reqbody.p ? x->reqbody.p : "");
  }
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") == 0 && body) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET");
  else if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

  x->t_start = br_now();
  br_wait_init(&x->wait, L);
  x->wait.cancel = xfer_cancel;
  c->in_curl++;
  CURLMcode mc = curl_multi_add_handle(c->multi, e);
  c->in_curl--;
  if (mc != CURLM_OK) {
    u->x = NULL;
    xfer_free(x);
    return luaL_error(L, "http.request: curl_multi_add_handle: %s", curl_multi_strerror(mc));
  }
  x->in_multi = 1;
  c->active++;
  br_loop_ref(c->loop);
  int64_t d = next_deadline(x);
  if (d != INT64_MAX) br_timer_start(c->loop, &x->deadline, d, deadline_fired, x);
  return br_await(L, &x->wait, (lua_KContext)u, request_k);
}

/* http.max_fds([n]) -> the soft limit on open files after raising it to n
 * (default: the hard limit); thousands of streams need thousands of fds. */
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

/* http.version() -> curl's version string and whether it speaks HTTP/2 */
static int l_version(lua_State *L) {
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  return 3;
}

static int req_tostring(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  lua_pushfstring(L, "bench.http.Request (%s)", u->x ? (u->x->finished ? "finished" : "in flight") : "closed");
  return 1;
}

static int ctx_tostring(lua_State *L) {
  hctx *c = luaL_checkudata(L, 1, CTX_MT);
  lua_pushfstring(L, "bench.http.Context (%d in flight)", (int)c->active);
  return 1;
}

int luaopen_bench_http(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"request", l_request}, {"max_fds", l_max_fds}, {"active", l_active}, {"version", l_version},
    {"rusage", l_rusage},
    {NULL, NULL}};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newmetatable(L, CTX_MT);
  lua_pushcfunction(L, ctx_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ctx_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, ctx_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, REQ_MT);
  lua_pushcfunction(L, req_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, req_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, req_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
