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
#include "h1.h"
#include "llmchunk.h"
#include "platform.h"
#include "sock.h"
#include "sse.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CTX_MT "bench.http.Context"
#define REQ_MT "bench.http.Request"

static const char CTX_KEY = 'H';   /* registry: the context userdata */

enum { STREAM_NONE = 0, STREAM_SSE = 1, STREAM_NDJSON = 2 };
enum { BODY_UNDECIDED = 0, BODY_PLAIN, BODY_STREAM, BODY_ERROR };
enum { DEFAULT_MAX_EVENT = 1 << 20, DEFAULT_ERROR_BODY = 16 << 10, POOL_MAX = 1024 };
/* The head kept for r.headers: every head h1's limits let through fits,
 * a bare LF of each line made CR LF. */
enum { MAX_HEADER_BYTES = BR_H1_MAX_HEAD + BR_H1_MAX_HEADERS + 2 };
/* The native transport: one read buffer for every connection (one thread
 * reads one socket at a time), and how many idle connections it keeps. */
enum { READ_BUF = 64 << 10, IDLE_MAX = 4096 };
enum { TRANSPORT_AUTO = 0, TRANSPORT_CURL = 1, TRANSPORT_NATIVE = 2 };
static const size_t DEFAULT_MAX_BODY = (size_t)256 << 20;

typedef struct hctx hctx;
typedef struct xfer xfer;
typedef struct req_ud { xfer *x; } req_ud;

/* A connection of the native transport. */
typedef struct hconn {
  br_io io;
  hctx *ctx;
  int fd;
  xfer *x;                      /* the transfer on it; NULL while idle */
  struct hconn *prev, *next;    /* the idle list */
  struct sockaddr_storage addr; /* the peer, the key for reuse */
  socklen_t addrlen;
  int connected;
  br_h1 h1;                     /* its response parser (keeps its line buffer) */
} hconn;

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
  int in_curl;          /* depth of calls into curl or into the native transport's parsing */
  int npending;         /* transfers with an abort waiting for curl to return */
  xfer *xfers;          /* every transfer not yet freed */
  hsock *socks;
  CURL **pool;          /* reset easy handles for reuse */
  int npool;
  long active;          /* transfers in flight (both transports) */
  int closed;
  int curl_ready;       /* multi created (curl is set up on first use) */
  int default_transport;
  hconn *idle;          /* native: idle connections, most recent first */
  int nidle;
  char *rbuf;           /* native: the shared read buffer */
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
  br_sse_buf reqhdrs;    /* the caller's headers, "Name: value\r\n" each */
  struct curl_slist *hdrs;
  /* curl: the head lines curl hands over go through h1 too, so that both
   * transports refuse the same heads (see header_cb) */
  br_h1 hcheck;
  int hcheck_on;
  int h1_only;           /* curl: plain http:// without http2 = "prior" speaks HTTP/1.x only */
  br_sse_buf reqbody;
  /* native transport */
  int native, head_request, retried, reused, conn_keep, send_failed;
  hconn *conn;
  struct sockaddr_storage addrs[2];   /* where to connect: a literal, or localhost's two */
  socklen_t addrlens[2];
  int naddr, addr_i;
  br_sse_buf reqhead;    /* the request line and headers */
  size_t sent_off;       /* bytes of head + body written */
  int64_t to_connect;
  /* progress */
  br_timer deadline;
  int64_t t_start, t_first_byte, t_last_data, t_chunk, t_end;
  /* the idle clock: the last body byte, or for a decoded LLM stream the last
   * token event (comments, keep-alive events and empty deltas do not count,
   * so a server that only pings cannot hold a request forever) */
  int64_t t_progress;
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
  /* when name resolution, connecting, TLS and sending the request ended
   * (ns; 0: did not happen, e.g. on a reused connection) */
  int64_t t_dns, t_connect, t_tls, t_sent;
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
static void conn_close(hconn *k);
static void idle_unlink(hconn *k);

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
      if (x->native) {
        if (x->conn) conn_close(x->conn);
        x->conn = NULL;
      } else {
        curl_multi_remove_handle(c->multi, x->easy);
      }
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
  while (c->idle) {
    hconn *k = c->idle;
    idle_unlink(k);
    conn_close(k);
  }
  free(c->rbuf);
  c->rbuf = NULL;
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

/* curl is set up on its first use: a run that only talks plain HTTP to
 * addresses never pays for it (curl_global_init alone touches ~2 MB of the
 * TLS libraries). */
static void curl_setup(lua_State *L, hctx *c) {
  static int global_done;
  if (c->curl_ready) return;
  if (!global_done && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    luaL_error(L, "http: curl_global_init failed");
  global_done = 1;
  c->multi = curl_multi_init();
  if (!c->multi) luaL_error(L, "http: cannot create a curl multi handle");
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  c->curl_ready = 1;
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

/* The value of the next header line of the answer named `name` (any case)
 * at or after *pos in x->headers, trimmed; NULL when there is none. */
static const char *next_header(const xfer *x, const char *name, size_t *pos, size_t *vlen) {
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
  while ((v = next_header(x, name, &pos, &n))) {
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

static int has_header(const xfer *x, const char *name);

/* The head of the answer is in: x->status and x->content_type say what
 * the body is to us. The same for both transports, so that they agree on
 * what a head means: an error status, then a redirect (not followed), then
 * a body in a coding we did not ask for, then a stream's content type. */
static void decide_body_as(xfer *x) {
  const char *ct = x->content_type[0] ? x->content_type : NULL;
  size_t pos = 0, n = 0;
  const char *loc = x->status >= 300 && x->status < 400 ? next_header(x, "location", &pos, &n) : NULL;
  if (loc && !n) loc = NULL;
  int has_body = !x->head_request && x->status != 204 && x->status != 304;
  const char *coding = NULL;
  /* Transfer codings other than chunked are never asked for (no TE header);
   * a content coding only when the caller sent Accept-Encoding. */
  if (has_body) coding = other_coding(x, "transfer-encoding", "chunked", &n);
  if (has_body && !coding && !has_header(x, "accept-encoding"))
    coding = other_coding(x, "content-encoding", "identity", &n);
  if (x->status >= 400) {
    snprintf(x->errtext, sizeof x->errtext, "http_%ld", x->status);
    fail(x, x->errtext);
    x->body_mode = BODY_ERROR;
  } else if (loc && (x->status == 301 || x->status == 302 || x->status == 303 || x->status == 307 || x->status == 308)) {
    fail(x, "redirect");
    if (!x->detail[0])
      snprintf(x->detail, sizeof x->detail, "a %ld redirect to %.*s (bench.http does not follow redirects)", x->status,
               (int)(n < 200 ? n : 200), loc);
    x->body_mode = BODY_ERROR;
  } else if (coding) {
    fail(x, "unsupported_encoding");
    if (!x->detail[0])
      snprintf(x->detail, sizeof x->detail, "the body is encoded with %.*s, which was not asked for",
               (int)(n < 64 ? n : 64), coding);
    x->body_mode = BODY_ERROR;
  } else if (x->stream && !type_ok(x, ct)) {
    fail(x, "bad_content_type");
    set_detail(x, "expected a streamed content type, got %s", ct ? ct : "none");
    x->body_mode = BODY_ERROR;
  } else {
    x->body_mode = x->stream ? BODY_STREAM : BODY_PLAIN;
  }
}

static void decide_body(xfer *x) {
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  char *ct = NULL;
  curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) snprintf(x->content_type, sizeof x->content_type, "%s", ct);
  decide_body_as(x);
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
  x->t_progress = t;
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
  if (x->decode && ev->type_len == 5 && memcmp(ev->type, "error", 5) == 0) {
    /* an error event (llama.cpp's "error:" line): its data is the message */
    if (x->llm.error.len == 0 && br_sse_buf_append(&x->llm.error, ev->data_len ? ev->data : "\"\"",
                                                   ev->data_len ? ev->data_len : 2)) { fail(x, "nomem"); return 1; }
  } else if (x->decode) {
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

/* Body bytes that arrived at `now` (both transports): 0, or -1 to stop the
 * transfer, its error set. */
static int deliver(xfer *x, const char *p, size_t n, int64_t now) {
  x->bytes += n;
  if (!(x->decode && x->body_mode == BODY_STREAM)) x->t_progress = now;
  switch (x->body_mode) {
  case BODY_STREAM: {
    x->t_chunk = now;
    int rc = br_sse_feed(&x->sse, p, n, event_cb, x);
    if (rc == BR_SSE_OK) return 0;
    if (rc == BR_SSE_TOO_LARGE) {
      fail(x, "event_too_large");
      snprintf(x->detail, sizeof x->detail, "an event grew past max_event_bytes (%zu)", x->max_event);
    } else if (rc == BR_SSE_NOMEM) {
      fail(x, "nomem");
    }
    return -1;
  }
  case BODY_PLAIN:
    if (x->body.len + n > x->max_body) {
      fail(x, "body_too_large");
      snprintf(x->detail, sizeof x->detail, "the body grew past max_body_bytes (%zu)", x->max_body);
      return -1;
    }
    if (br_sse_buf_append(&x->body, p, n)) { fail(x, "nomem"); return -1; }
    return 0;
  default: {   /* an error body: keep its start */
    size_t room = x->error_body_max > x->body.len ? x->error_body_max - x->body.len : 0;
    size_t k = n < room ? n : room;
    if (k && br_sse_buf_append(&x->body, p, k)) return -1;
    if (k < n) { x->body_truncated = 1; return -1; }
    return 0;
  }
  }
}

static int64_t next_deadline(const xfer *x);
static void deadline_fired(br_loop *loop, br_timer *t);

/* The first byte: from now on the idle limit applies, which may come before
 * the deadline armed at the start (first_byte or total, or none at all). */
static void first_byte_seen(xfer *x, int64_t now) {
  x->t_first_byte = now;
  int64_t d = next_deadline(x);
  if (d != INT64_MAX && (!br_timer_active(&x->deadline) || d < x->deadline.when))
    br_timer_start(x->ctx->loop, &x->deadline, d, deadline_fired, x);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  int64_t now = br_loop_event_time(x->ctx->loop);   /* first: the arrival time of these bytes */
  size_t n = size * nmemb;
  x->t_last_data = now;
  if (x->body_mode == BODY_UNDECIDED) decide_body(x);
  return deliver(x, p, n, now) == 0 ? n : 0;
}

static const br_h1_callbacks no_h1_cbs = {NULL, NULL, NULL};

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  int64_t now = br_loop_event_time(x->ctx->loop);
  size_t n = size * nmemb;
  if (!x->t_first_byte) first_byte_seen(x, now);
  x->t_last_data = now;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response (after 1xx, or a proxy's CONNECT answer) */
    x->headers.len = 0;
    /* HTTP/2 and 3 heads are curl's alone; on a connection that can only
     * be HTTP/1.x, "HTTP/2 200" is refused as the native transport does */
    x->hcheck_on = x->h1_only || (n >= 7 && memcmp(p, "HTTP/1.", 7) == 0);
    if (br_h1_head_complete(&x->hcheck)) br_h1_init(&x->hcheck, x->head_request);
  } else if (x->hcheck_on && br_h1_head_complete(&x->hcheck)) {
    /* a trailer after a chunked body: not one of the answer's headers (the
     * native transport keeps none); one without a colon is refused as h1
     * does (curl 7.88 refuses it itself before we see it: curl_reason) */
    size_t k = n;
    while (k && (p[k - 1] == '\r' || p[k - 1] == '\n')) k--;
    if (k && !memchr(p, ':', k)) {
      fail(x, "bad_response");
      set_detail(x, "%s", "a trailer line without a colon");
      return 0;
    }
    return n;
  }
  /* An HTTP/1.x head goes through the native transport's parser too: curl
   * is lenient where h1 is strict (a header line without a name, two
   * different Content-Lengths, an unasked-for 101) and has no limit on
   * header lines (curl 7), and the same bytes must give the same error.
   * Only head lines: trailers after the body are curl's. */
  if (x->hcheck_on && !br_h1_head_complete(&x->hcheck)) {
    size_t used;
    if (br_h1_feed(&x->hcheck, p, n, &no_h1_cbs, NULL, &used) == BR_H1_ERROR) {
      fail(x, "bad_response");
      set_detail(x, "%s", x->hcheck.error);
      return 0;   /* curl stops with CURLE_WRITE_ERROR; the reason is ours */
    }
  }
  if (x->headers.len + n <= MAX_HEADER_BYTES) br_sse_buf_append(&x->headers, p, n);
  return n;
}

/* ---- deadlines ---- */

static int connecting(const xfer *x) { return x->native && x->conn && !x->conn->connected; }

/* Where the idle clock starts: the last progress (see t_progress), else the
 * first byte: head bytes do not reset it, so a head trickled a byte at a
 * time cannot hold a request either. */
static int64_t idle_since(const xfer *x) {
  return x->t_progress > x->t_first_byte ? x->t_progress : x->t_first_byte;
}

static int64_t next_deadline(const xfer *x) {
  int64_t d = INT64_MAX;
  if (x->to_total) d = x->t_start + x->to_total;
  /* curl keeps its own connect timeout; the native transport needs ours */
  if (connecting(x) && x->to_connect && x->t_start + x->to_connect < d) d = x->t_start + x->to_connect;
  if (!x->t_first_byte && x->to_first_byte && x->t_start + x->to_first_byte < d) d = x->t_start + x->to_first_byte;
  if (x->t_first_byte && x->to_idle) {
    int64_t idle = idle_since(x) + x->to_idle;
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
  else if (connecting(x) && x->to_connect && now >= x->t_start + x->to_connect) why = "timeout_connect";
  else if (!x->t_first_byte && x->to_first_byte && now >= x->t_start + x->to_first_byte) why = "timeout_first_byte";
  else if (x->t_first_byte && x->to_idle && now >= idle_since(x) + x->to_idle) why = "timeout_idle";
  if (why) {
    const char *what = why[8] == 't' ? "the whole request took longer than total = %s s"
                     : why[8] == 'c' ? "not connected within connect = %s s"
                     : why[8] == 'f' ? "no response byte within first_byte = %s s"
                                     : x->decode && x->body_mode == BODY_STREAM ? "no token for idle = %s s"
                     : "no data for idle = %s s";
    char secs[32];
    int64_t limit = why[8] == 't' ? x->to_total : why[8] == 'c' ? x->to_connect
                  : why[8] == 'f' ? x->to_first_byte : x->to_idle;
    snprintf(secs, sizeof secs, "%g", (double)limit / 1e9);
    set_detail(x, what, secs);
    xfer_abort(x, why);
    return;
  }
  int64_t d = next_deadline(x);
  if (d != INT64_MAX) br_timer_start(loop, &x->deadline, d, deadline_fired, x);
}

/* ---- the native transport: plain HTTP/1.1 to an address ----
 *
 * curl is general; the servers benchrun measures mostly sit on this host
 * or the LAN and speak plain HTTP/1.1. For those the transfer is done
 * here: one read per wake-up into a buffer shared by every connection,
 * no poll() after each read (curl 7.88 checks its socket once more after
 * every read), and a few hundred bytes of state per connection instead of
 * curl's ~25 KB. Everything else (TLS, HTTP/2, host names, proxies) goes
 * through curl; see native_target. */

static void conn_close(hconn *k) {
  br_io_stop(k->ctx->loop, &k->io);
  if (k->fd >= 0) close(k->fd);
  br_h1_free(&k->h1);
  free(k);
}

static void idle_unlink(hconn *k) {
  hctx *c = k->ctx;
  if (k->prev) k->prev->next = k->next; else c->idle = k->next;
  if (k->next) k->next->prev = k->prev;
  k->prev = k->next = NULL;
  c->nidle--;
}

/* An idle connection became readable: the server closed it (or sent what
 * nobody asked for). Either way it cannot carry another request. */
static void idle_cb(br_loop *loop, br_io *io, int events) {
  hconn *k = io->data;
  idle_unlink(k);
  conn_close(k);
}

static void conn_park(hconn *k) {
  hctx *c = k->ctx;
  k->x = NULL;
  if (c->closed || c->nidle >= IDLE_MAX || br_io_start(c->loop, &k->io, k->fd, BR_READ, idle_cb, k) != 0) {
    conn_close(k);
    return;
  }
  k->next = c->idle;
  if (c->idle) c->idle->prev = k;
  c->idle = k;
  c->nidle++;
}

static hconn *idle_take(hctx *c, const struct sockaddr_storage *a, socklen_t len) {
  for (hconn *k = c->idle; k; k = k->next) {
    if (k->addrlen == len && memcmp(&k->addr, a, len) == 0) {
      idle_unlink(k);
      return k;
    }
  }
  return NULL;
}

/* The transfer is over: a connection whose response ended cleanly goes
 * back to the idle list, any other is closed. */
static void native_detach(xfer *x) {
  hconn *k = x->conn;
  x->conn = NULL;
  if (!k) return;
  if (x->conn_keep) conn_park(k);
  else conn_close(k);
}

static void native_end(xfer *x) { xfer_finish(x, CURLE_OK, NULL); }

/* A system error ends the transfer: the reason by what failed and when. */
static void native_os_error(xfer *x, int err, const char *during) {
  const char *why;
  if (err == ECONNREFUSED) why = "refused";
  else if (err == ETIMEDOUT && connecting(x)) why = "timeout_connect";
  else if (connecting(x) || !x->conn) why = "connect";
  else why = "reset";
  fail(x, why);
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s%s", during, strerror(err),
           err == EMFILE || err == ENFILE ? " (each stream needs a file descriptor: http.max_fds raises the limit)" : "");
  set_detail(x, "%s", msg);
  native_end(x);
}

static void conn_io(br_loop *loop, br_io *io, int events);

/* Open a connection to the next address; 0, or the error (the caller ends
 * the transfer). Connecting goes on in the loop. */
static void native_send(xfer *x, hconn *k);

/* A loopback connect often completes inside connect() or a moment after:
 * then the request goes out now, in the call, instead of after every other
 * ready event of the loop (that wait would be the client's own delay,
 * charged to the server's TTFT). */
/* 1: connected; 0: still connecting; else the connect's errno (reading
 * SO_ERROR clears it, so the caller must act on it here). */
static int connected_now(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLOUT | POLLERR | POLLHUP))) return 0;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err == 0 ? 1 : err;
}

static int native_connect(xfer *x) {
  hctx *c = x->ctx;
  int err = 0;
  for (; x->addr_i < x->naddr; x->addr_i++) {
    const struct sockaddr_storage *a = &x->addrs[x->addr_i];
    hconn *k = calloc(1, sizeof *k);
    if (!k) return ENOMEM;
    k->ctx = c;
    k->x = x;
    k->io.weak = 1;   /* the transfer keeps the loop alive, not its socket */
    memcpy(&k->addr, a, x->addrlens[x->addr_i]);
    k->addrlen = x->addrlens[x->addr_i];
    k->fd = socket(a->ss_family, SOCK_STREAM, 0);
    if (k->fd < 0) {
      err = errno;
      free(k);
      return err;
    }
    int one = 1;
    fcntl(k->fd, F_SETFD, FD_CLOEXEC);
    fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    br_sock_stamp_arrivals(k->fd);   /* arrival times from the kernel (native_read) */
#ifdef SO_NOSIGPIPE
    setsockopt(k->fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);   /* macOS: EPIPE, not a signal */
#endif
    if (!x->t_dns) x->t_dns = br_now();   /* an address literal: nothing to resolve */
    int rc = connect(k->fd, (const struct sockaddr *)a, k->addrlen);
    err = rc == 0 ? 0 : errno;
    int now = rc == 0 ? 1 : err == EINPROGRESS ? connected_now(k->fd) : 0;
    if (now > 1) { rc = -1; err = now; now = 0; }   /* refused at once (loopback) */
    if (rc == 0 || err == EINPROGRESS) {
      br_h1_init(&k->h1, x->head_request);
      k->connected = now == 1;
      if (k->connected) x->t_connect = br_now();
      if (br_io_start(c->loop, &k->io, k->fd, BR_WRITE, conn_io, k) != 0) {
        err = errno ? errno : EIO;
        conn_close(k);
        return err;
      }
      x->conn = k;
      if (k->connected) native_send(x, k);
      return 0;
    }
    conn_close(k);
    if (err != ECONNREFUSED) return err;   /* refused: try the next address (localhost's ::1) */
  }
  return err ? err : ECONNREFUSED;
}

static void native_start(xfer *x) {
  int err = native_connect(x);
  if (err) native_os_error(x, err, "connect");
}

/* A reused connection failed before any byte of the answer: the server
 * closed it while it sat idle. Send again on a new one, once. */
static void native_retry(xfer *x) {
  hconn *k = x->conn;
  x->conn = NULL;
  conn_close(k);
  x->retried = 1;
  x->reused = 0;
  x->sent_off = 0;
  x->headers.len = 0;
  x->addr_i = 0;
  native_start(x);
}

static void native_read(xfer *x, hconn *k);

/* Write what is left of the request. While a body is still going out the
 * socket is watched for reading too: a server may answer early (413, 401)
 * and stop reading, and that answer is the result. */
static void native_send(xfer *x, hconn *k) {
  size_t hl = x->reqhead.len, total = hl + x->reqbody.len, off = x->sent_off;
  struct iovec iov[2];
  int n = 0;
  if (off < hl) {
    iov[n].iov_base = x->reqhead.p + off;
    iov[n++].iov_len = hl - off;
  }
  if (x->reqbody.len) {
    size_t b = off > hl ? off - hl : 0;
    iov[n].iov_base = x->reqbody.p + b;
    iov[n++].iov_len = x->reqbody.len - b;
  }
  /* taken before the write: a server on the other core may answer before
   * writev returns to us, and the request's time on the wire must not come
   * after the first byte of its answer */
  int64_t t_write = br_now();
  ssize_t w = writev(k->fd, iov, n);
  if (w < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
    if (x->reused && !x->retried && (err == EPIPE || err == ECONNRESET)) {
      native_retry(x);
    } else if (err == EPIPE || err == ECONNRESET) {
      /* the server stopped reading: what it said before closing, if anything, is the answer */
      x->send_failed = 1;
      if (br_io_start(x->ctx->loop, &k->io, k->fd, BR_READ, conn_io, k) != 0) native_os_error(x, err, "sending the request");
      else native_read(x, k);
    } else {
      native_os_error(x, err, "sending the request");
    }
    return;
  }
  x->sent_off += (size_t)w;
  if (x->sent_off < total) {   /* the rest when the socket has room */
    if (k->io.events != (BR_READ | BR_WRITE) && br_io_start(x->ctx->loop, &k->io, k->fd, BR_READ | BR_WRITE, conn_io, k) != 0)
      native_os_error(x, errno, "epoll");
    return;
  }
  x->t_sent = t_write;
  if (br_io_start(x->ctx->loop, &k->io, k->fd, BR_READ, conn_io, k) != 0) native_os_error(x, errno, "epoll");
}

/* h1 callbacks: the head goes where curl's header callback puts it. */
static int h1_line(void *ud, const char *p, size_t n) {
  xfer *x = ud;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response (after a 1xx) */
    x->headers.len = 0;
    x->content_type[0] = 0;
  }
  if (x->headers.len + n + 2 <= MAX_HEADER_BYTES) {
    if (br_sse_buf_append(&x->headers, p, n) || br_sse_buf_append(&x->headers, "\r\n", 2)) {
      fail(x, "nomem");
      return 1;
    }
  }
  if (n > 13 && strncasecmp(p, "content-type:", 13) == 0) {
    const char *v = p + 13, *e = p + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    size_t vn = (size_t)(e - v) < sizeof x->content_type - 1 ? (size_t)(e - v) : sizeof x->content_type - 1;
    memcpy(x->content_type, v, vn);
    x->content_type[vn] = 0;
  }
  return 0;
}

static int h1_head_done(void *ud, int status) {
  xfer *x = ud;
  x->status = status;
  decide_body_as(x);
  return 0;
}

static int h1_body(void *ud, const char *p, size_t n) {
  xfer *x = ud;
  return deliver(x, p, n, x->t_last_data) != 0;
}

static const br_h1_callbacks h1_cbs = {h1_line, h1_head_done, h1_body};

/* The connection closed (err 0) or failed while waiting for the answer. */
static void native_closed(xfer *x, hconn *k, int err) {
  if (!br_h1_started(&k->h1) && x->reused && !x->retried) {
    native_retry(x);
    return;
  }
  if (!err && br_h1_eof(&k->h1) == BR_H1_DONE) {   /* a body that runs to the close */
    x->conn_keep = 0;
    native_end(x);
    return;
  }
  /* a reset is a reset wherever it came (as curl says); a close mid-body is a truncation */
  fail(x, err || !br_h1_head_complete(&k->h1) ? "reset" : "truncated");
  if (err) {
    char msg[160];
    snprintf(msg, sizeof msg, "receiving the answer: %s", strerror(err));
    set_detail(x, "%s", msg);
  } else {
    br_h1_eof(&k->h1);
    set_detail(x, "%s", k->h1.error);
  }
  native_end(x);
}

static void native_read(xfer *x, hconn *k) {
  hctx *c = x->ctx;
  for (int round = 0; round < 16; round++) {
    int64_t now;   /* the arrival time of these bytes: the kernel's, else the loop's wake-up */
    ssize_t n = br_recv_stamped(k->fd, c->rbuf, READ_BUF, br_loop_event_time(c->loop), &now);
    if (n > 0) {
      if (!x->t_first_byte) first_byte_seen(x, now);
      x->t_last_data = now;
      size_t used;
      int rc = br_h1_feed(&k->h1, c->rbuf, (size_t)n, &h1_cbs, x, &used);
      if (rc == BR_H1_MORE) {
        if (n < READ_BUF) return;   /* a short read: the socket is drained */
        continue;
      }
      if (rc == BR_H1_DONE) {   /* reusable if nothing is left over on it either way */
        x->conn_keep = k->h1.keep_alive && used == (size_t)n && !x->send_failed &&
                       x->sent_off == x->reqhead.len + x->reqbody.len;
      } else if (rc == BR_H1_ERROR) {
        fail(x, "bad_response");
        set_detail(x, "%s", k->h1.error);
      }   /* BR_H1_STOP: deliver() has set the error */
      native_end(x);
      return;
    }
    if (n == 0) {
      native_closed(x, k, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) native_closed(x, k, errno);
    return;
  }
}

static void conn_io(br_loop *loop, br_io *io, int events) {
  hconn *k = io->data;
  xfer *x = k->x;
  hctx *c = k->ctx;
  if (!x) return;
  c->in_curl++;   /* aborts asked for from on_event wait until this returns */
  if (!k->connected) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == ECONNREFUSED && x->addr_i + 1 < x->naddr) {
      x->conn = NULL;
      conn_close(k);
      x->addr_i++;
      native_start(x);
    } else if (err) {
      native_os_error(x, err, "connect");
    } else {
      k->connected = 1;
      x->t_connect = br_now();
      native_send(x, k);
    }
  } else if (x->sent_off < x->reqhead.len + x->reqbody.len && !x->send_failed && !(events & (BR_READ | BR_HUP))) {
    native_send(x, k);
  } else {
    native_read(x, k);
  }
  c->in_curl--;
  if (c->in_curl == 0) process_deferred(c);
}

/* Whether url is one for the native transport: http://, an IP address or
 * localhost, no user info, a path of plain characters. Fills x->addrs and
 * the request target; *authority and *alen: the Host header's value. */
static int native_target(xfer *x, const char *url, size_t len, const char **authority, size_t *alen,
                         const char **target, size_t *tlen) {
  if (len < 8 || strncasecmp(url, "http://", 7) != 0) return 0;
  const char *a = url + 7, *end = url + len;
  const char *ae = a;
  while (ae < end && *ae != '/' && *ae != '?' && *ae != '#') ae++;
  if (ae == a || memchr(a, '@', (size_t)(ae - a))) return 0;
  const char *h = a, *he, *port = NULL;
  if (*h == '[') {
    he = memchr(h, ']', (size_t)(ae - h));
    if (!he) return 0;
    h++;
    if (he + 1 < ae) {
      if (he[1] != ':') return 0;
      port = he + 2;
    }
  } else {
    he = memchr(h, ':', (size_t)(ae - h));
    if (he) port = he + 1;
    else he = ae;
  }
  long p = 80;
  if (port) {
    if (port == ae || ae - port > 5) return 0;
    p = 0;
    for (const char *q = port; q < ae; q++) {
      if (*q < '0' || *q > '9') return 0;
      p = p * 10 + (*q - '0');
    }
    if (p < 1 || p > 65535) return 0;
  }
  char host[64];
  size_t hl = (size_t)(he - h);
  if (hl == 0 || hl >= sizeof host) return 0;
  memcpy(host, h, hl);
  host[hl] = 0;
  memset(x->addrs, 0, sizeof x->addrs);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&x->addrs[0];
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&x->addrs[0];
  int loopback;
  if (a[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    x->addrlens[0] = sizeof *v4;
    x->naddr = 1;
    loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (a[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    x->addrlens[0] = sizeof *v6;
    x->naddr = 1;
    loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  } else if (a[0] != '[' && strcasecmp(host, "localhost") == 0) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    x->addrlens[0] = sizeof *v4;
    struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&x->addrs[1];
    l6->sin6_family = AF_INET6;
    l6->sin6_port = htons((uint16_t)p);
    l6->sin6_addr = in6addr_loopback;
    x->addrlens[1] = sizeof *l6;
    x->naddr = 2;
    loopback = 1;
  } else {
    return 0;   /* a name to resolve: curl has an asynchronous resolver */
  }
  if (!loopback) {   /* a proxy may be meant for it: curl knows the rules */
    static const char *const vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
      const char *v = getenv(vars[i]);
      if (v && *v) return 0;
    }
  }
  const char *t = ae, *te = memchr(ae, '#', (size_t)(end - ae));
  if (!te) te = end;
  for (const char *q = t; q < te; q++)
    if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) return 0;   /* curl's rules for odd URLs */
  *authority = a;
  *alen = (size_t)(ae - a);
  *target = t;
  *tlen = (size_t)(te - t);
  return 1;
}

/* Whether the caller's headers name `name` (then ours is not sent). */
static int has_header(const xfer *x, const char *name) {
  size_t nl = strlen(name);
  const char *p = x->reqhdrs.p, *end = p + x->reqhdrs.len;
  while (p && p < end) {
    if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') return 1;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    p = eol ? eol + 1 : end;
  }
  return 0;
}

/* The request head, as curl would write it: the caller's headers, a header
 * given with an empty value removes ours of that name. */
static int native_head(xfer *x, const char *method, const char *authority, size_t alen, const char *target,
                       size_t tlen, int has_body) {
  br_sse_buf *b = &x->reqhead;
  char line[64];
  int bad = 0;
  bad |= br_sse_buf_append(b, method, strlen(method)) || br_sse_buf_append(b, " ", 1);
  if (tlen == 0 || target[0] == '?') bad |= br_sse_buf_append(b, "/", 1);
  bad |= br_sse_buf_append(b, target, tlen) || br_sse_buf_append(b, " HTTP/1.1\r\n", 11);
  if (!has_header(x, "host"))
    bad |= br_sse_buf_append(b, "Host: ", 6) || br_sse_buf_append(b, authority, alen) || br_sse_buf_append(b, "\r\n", 2);
  if (!has_header(x, "accept")) bad |= br_sse_buf_append(b, "Accept: */*\r\n", 13);
  if (has_body && !has_header(x, "content-length")) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", x->reqbody.len);
    bad |= br_sse_buf_append(b, line, strlen(line));
  }
  const char *p = x->reqhdrs.p, *end = p + x->reqhdrs.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    const char *colon = memchr(p, ':', (size_t)(next - p));
    const char *v = colon ? colon + 1 : next;
    while (v < next && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) v++;
    if (v < next) bad |= br_sse_buf_append(b, p, (size_t)(next - p));   /* empty: only removes ours */
    p = next;
  }
  bad |= br_sse_buf_append(b, "\r\n", 2);
  return bad ? -1 : 0;
}

/* ---- finishing ---- */

/* curl's result as one of our reasons (docs/http.md): the one place where
 * curl's codes are read. in_head: no byte of the body had come. */
static const char *curl_reason(xfer *x, CURLcode rc, int in_head) {
  switch (rc) {
  case CURLE_OK: return NULL;
  case CURLE_COULDNT_CONNECT: {
    long oserr = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    return oserr == ECONNREFUSED || oserr == 0 ? "refused" : "connect";
  }
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return "dns";
  case CURLE_OPERATION_TIMEDOUT: return x->t_connect || x->t_first_byte ? "timeout_total" : "timeout_connect";
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
  case CURLE_RECV_ERROR: {
    /* a socket error ("Recv failure: Connection reset by peer"), or what
     * curl found wrong in the bytes (a bad chunk; a head too large in curl
     * 8). curl keeps the errno of an earlier failure (of another transfer
     * on a reused handle, too): a socket error is one whose message names
     * its errno. */
    long oserr = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    return oserr && strstr(x->errbuf, strerror((int)oserr)) ? "reset" : "bad_response";
  }
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING: return "reset";
  case CURLE_PARTIAL_FILE: return "truncated";
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM: return "http2";
  case CURLE_UNSUPPORTED_PROTOCOL:
    /* after a connection, what curl says of an answer that is not HTTP/1.x
     * ("HTTP/0.9", "Unsupported HTTP version", "Unsupported response code") */
    return x->t_connect ? "bad_response" : "bad_url";
  case CURLE_URL_MALFORMAT: return "bad_url";
  case CURLE_BAD_FUNCTION_ARGUMENT:
    /* what curl 7.88's header store says of a trailer line without a colon */
    return x->hcheck_on && br_h1_head_complete(&x->hcheck) ? "bad_response" : "curl";
  case CURLE_WEIRD_SERVER_REPLY: return "bad_response";
  case CURLE_OUT_OF_MEMORY:
#if LIBCURL_VERSION_NUM >= 0x080600
  case CURLE_TOO_LARGE:   /* curl 8.6+ */
#endif
    /* curl 7 says "out of memory" of a head line over its limit (100 KiB,
     * BR_H1_MAX_HEAD_LINE), curl 8.6+ "too large": say which */
    if (!in_head || !x->t_connect) return "nomem";
    snprintf(x->detail, sizeof x->detail, "a line of the response head is longer than 100 KiB (curl: %.150s)",
             x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    return "bad_response";
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
static int64_t curl_time(const xfer *x, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(x->easy, what, &us);
  return us > 0 ? x->t_start + (int64_t)us * 1000 : 0;
}

/* curl's side of finishing: its figures, then the handle back to the pool. */
static void curl_detach(xfer *x, CURLcode rc) {
  hctx *c = x->ctx;
  CURL *e = x->easy;
  x->t_dns = curl_time(x, CURLINFO_NAMELOOKUP_TIME_T);
  x->t_connect = curl_time(x, CURLINFO_CONNECT_TIME_T);
  x->t_tls = curl_time(x, CURLINFO_APPCONNECT_TIME_T);
  x->t_sent = curl_time(x, CURLINFO_PRETRANSFER_TIME_T);
  long connects = 0;
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
  x->reused = connects == 0 && x->t_first_byte;
  const char *reason = curl_reason(x, rc, x->body_mode == BODY_UNDECIDED);
  if (x->hcheck_on && br_h1_started(&x->hcheck) && !br_h1_head_complete(&x->hcheck)) {
    /* The head did not end well: no status, as the native transport says.
     * curl 7 takes a head cut short by the close for a whole answer with
     * no body; like the native transport we call that a reset. */
    if (rc == CURLE_OK) {
      fail(x, "reset");
      set_detail(x, "%s", "the connection closed in the response head");
    }
  } else if (x->body_mode == BODY_UNDECIDED && x->t_first_byte) {
    decide_body(x);
  } else {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
  }
  if (reason && !x->error) {
    fail(x, reason);
    set_detail(x, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
  }
  c->in_curl++;
  curl_multi_remove_handle(c->multi, e);
  c->in_curl--;
  release_easy(c, x);
}

static void native_detach(xfer *x);

static void xfer_finish(xfer *x, CURLcode rc, const char *forced) {
  hctx *c = x->ctx;
  if (!x->in_multi) return;
  x->t_end = br_now();
  if (forced) fail(x, forced);
  if (x->native) native_detach(x);
  else curl_detach(x, rc);
  x->in_multi = 0;
  x->abort_pending = 0;
  c->active--;
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
  br_h1_free(&x->hcheck);
  br_sse_buf_free(&x->reqhdrs);
  br_sse_buf_free(&x->reqhead);
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
  if (x->llm.sim_arrival_ns) set_int(L, "sim_arrival_ns", x->llm.sim_arrival_ns);
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
    size_t pos = 0, n;
    const char *loc = strcmp(x->error, "redirect") == 0 ? next_header(x, "location", &pos, &n) : NULL;
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
  lua_pushstring(L, x->native ? "native" : "curl");
  lua_setfield(L, -2, "transport");
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
  if (br_sse_buf_append(&x->reqhdrs, line, strlen(line)) || br_sse_buf_append(&x->reqhdrs, "\r\n", 2))
    luaL_error(L, "http.request: out of memory");
}

/* The caller's headers as curl takes them, and no 100-continue round trip
 * for large bodies. */
static int curl_headers(xfer *x) {
  char line[1024];
  const char *p = x->reqhdrs.p, *end = p + x->reqhdrs.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    size_t n = (size_t)((eol ? eol : end) - p);
    char *big = n < sizeof line ? line : malloc(n + 1);
    if (!big) return -1;
    memcpy(big, p, n);
    big[n] = 0;
    struct curl_slist *l = curl_slist_append(x->hdrs, big);
    if (big != line) free(big);
    if (!l) return -1;
    x->hdrs = l;
    p = eol ? eol + 2 : end;
  }
  struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
  if (!l) return -1;
  x->hdrs = l;
  return 0;
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

static void read_headers(lua_State *L, xfer *x, int t) {
  int ty = lua_getfield(L, t, "headers");
  if (ty == LUA_TNIL) { lua_pop(L, 1); return; }
  if (ty != LUA_TTABLE) luaL_error(L, "http.request: headers: expected a table, got %s", luaL_typename(L, -1));
  int h = lua_gettop(L);
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
    lua_pushlstring(L, name, nl);
    lua_pushliteral(L, ": ");
    lua_pushlstring(L, value, vl);
    lua_concat(L, 3);
    add_header(L, x, lua_tostring(L, -1));
    lua_pop(L, 2);   /* the line and the value; the key stays for lua_next */
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
  size_t mlen = 0;
  const char *method = opt_string(L, 1, "method", &mlen);
  if (!method) method = body ? "POST" : "GET";
  else if (!is_token(method, mlen))
    return luaL_error(L, "http.request: method: \"%s\" is not a method (letters, digits and !#$%%&'*+-.^_`|~ only: "
                         "no space, CR, LF or other control byte)", printable(L, method, mlen));
  int bad = bad_byte(url, urllen, 1, 0);
  if (bad >= 0)
    return luaL_error(L, "http.request: url: \"%s\" holds %s (percent-encode it)", printable(L, url, urllen),
                      bad == ' ' ? "a space" : "a control byte");
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
  int transport = c->default_transport;
  const char *tr = opt_string(L, 1, "transport", NULL);
  if (tr) {
    if (strcmp(tr, "auto") == 0) transport = TRANSPORT_AUTO;
    else if (strcmp(tr, "curl") == 0) transport = TRANSPORT_CURL;
    else if (strcmp(tr, "native") == 0) transport = TRANSPORT_NATIVE;
    else return luaL_error(L, "http.request: transport: expected \"auto\", \"curl\" or \"native\", got \"%s\"", tr);
  }

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
  if (lua_getfield(L, 1, "on_event") == LUA_TFUNCTION) x->on_event_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  if (body && br_sse_buf_append(&x->reqbody, body, bodylen)) return luaL_error(L, "http.request: out of memory");
  x->to_connect = to_connect;
  x->head_request = strcmp(method, "HEAD") == 0;

  const char *authority, *target;
  size_t alen, tlen;
  int native_ok = !(h2 && strcmp(h2, "prior") == 0) && native_target(x, url, urllen, &authority, &alen, &target, &tlen);
  if (transport == TRANSPORT_NATIVE && !native_ok)
    return luaL_error(L, "http.request: transport \"native\" takes http:// to an IP address or localhost, not %s", url);
  if (native_ok && transport != TRANSPORT_CURL) {
    if (!c->rbuf && !(c->rbuf = malloc(READ_BUF))) return luaL_error(L, "http.request: out of memory");
    if (native_head(x, method, authority, alen, target, tlen, body != NULL))
      return luaL_error(L, "http.request: out of memory");
    x->native = 1;
    x->t_start = br_now();
    br_wait_init(&x->wait, L);
    x->wait.cancel = xfer_cancel;
    x->in_multi = 1;
    c->active++;
    br_loop_ref(c->loop);
    hconn *k = NULL;
    for (int i = 0; i < x->naddr && !k; i++) k = idle_take(c, &x->addrs[i], x->addrlens[i]);
    c->in_curl++;   /* an error while sending ends the transfer after this call */
    if (k) {   /* a kept connection: write now, in the call */
      k->x = x;
      x->conn = k;
      x->reused = 1;
      br_h1_init(&k->h1, x->head_request);
      if (br_io_start(c->loop, &k->io, k->fd, BR_WRITE, conn_io, k) != 0) native_os_error(x, errno, "epoll");
      else native_send(x, k);
    } else {
      native_start(x);
    }
    c->in_curl--;
    if (c->in_curl == 0) process_deferred(c);
    if (x->in_multi) {
      int64_t d = next_deadline(x);
      if (d != INT64_MAX) br_timer_start(c->loop, &x->deadline, d, deadline_fired, x);
    }
    return br_await(L, &x->wait, (lua_KContext)u, request_k);
  }

  curl_setup(L, c);
  if (curl_headers(x)) return luaL_error(L, "http.request: out of memory");
  br_h1_init(&x->hcheck, x->head_request);
  CURL *e = c->npool ? c->pool[--c->npool] : curl_easy_init();
  if (!e) return luaL_error(L, "http.request: cannot create a curl handle");
  x->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, url);
  x->h1_only = strncasecmp(url, "http://", 7) == 0 && !(h2 && strcmp(h2, "prior") == 0);
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
