/* bench.http's curl transport: everything the native transport does not
 * take (TLS, HTTP/2, host names, proxies), through libcurl's multi socket
 * interface, shaped as curl's own multi-socket examples (hiperfifo.c):
 *
 *   - CURLMOPT_SOCKETFUNCTION (socket_cb): curl says which sockets to watch
 *     for what; they become br_io watchers on benchrun's loop;
 *   - CURLMOPT_TIMERFUNCTION (timer_cb): curl's one timeout becomes a
 *     br_timer;
 *   - either firing calls curl_multi_socket_action, then check_multi_info
 *     reads the transfers curl has finished.
 *
 * One multi handle per context, made on first use; easy handles are reset
 * and kept for reuse. curl's result codes are read in one place
 * (curl_reason) and become the engine's reasons (http_err). */
#include "http_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { POOL_MAX = 1024 };

/* A socket curl asked us to watch. */
typedef struct hsock {
  br_io io;
  struct http_curl_state *cs;
  curl_socket_t fd;
  struct hsock *prev, *next;
} hsock;

struct http_curl_state {
  CURLM *multi;
  hctx *ctx;
  br_timer timer;       /* curl's timeout; holds no loop reference (see weak_timer_*) */
  hsock *socks;
  CURL **pool;          /* reset easy handles for reuse */
  int npool;
};

typedef struct cxfer {
  xfer x;
  CURL *easy;
  struct curl_slist *hdrs;
  /* the head lines curl hands over go through h1 too, so that both
   * transports refuse the same heads (see header_cb) */
  br_h1 hcheck;
  int hcheck_on;
  int h1_only;           /* plain http:// without http2 = "prior" speaks HTTP/1.x only */
  CURLcode result;       /* what curl said when it finished the transfer */
  char errbuf[CURL_ERROR_SIZE];
} cxfer;

/* ---- the multi handle on the loop ---- */

/* A br_timer that does not keep the loop alive: curl keeps a timeout around
 * for idle connections, which must not stop a script from ending. The loop
 * counts a reference per active timer; we give it back while ours runs. */
static void weak_timer_start(hctx *c, br_timer *t, int64_t when, br_timer_cb cb, void *data) {
  int was = br_timer_active(t);
  br_timer_start(c->loop, t, when, cb, data);
  if (!was) br_loop_unref(c->loop);
}

static void weak_timer_stop(hctx *c, br_timer *t) {
  if (!br_timer_active(t)) return;
  br_loop_ref(c->loop);
  br_timer_stop(c->loop, t);
}

/* Transfers curl has finished: each ends with curl's result. */
static void check_multi_info(struct http_curl_state *cs) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(cs->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    cxfer *cx = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&cx);
    if (!cx) continue;
    cx->result = m->data.result;
    http_finish(&cx->x, HERR_NONE);
  }
}

static void socket_action(struct http_curl_state *cs, curl_socket_t fd, int flags) {
  hctx *c = cs->ctx;
  int running;
  c->busy++;
  curl_multi_socket_action(cs->multi, fd, flags, &running);
  c->busy--;
  if (c->busy == 0) {
    check_multi_info(cs);
    http_run_deferred(c);
  }
}

static void event_cb(br_loop *loop, br_io *io, int events) {
  hsock *s = io->data;
  int flags = 0;
  if (events & BR_READ) flags |= CURL_CSELECT_IN;
  if (events & BR_WRITE) flags |= CURL_CSELECT_OUT;
  socket_action(s->cs, s->fd, flags);
}

static void timer_fired(br_loop *loop, br_timer *t) {
  struct http_curl_state *cs = t->data;
  br_loop_ref(loop);   /* the loop dropped the reference we had given back */
  socket_action(cs, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  struct http_curl_state *cs = userp;
  if (timeout_ms < 0) weak_timer_stop(cs->ctx, &cs->timer);
  else weak_timer_start(cs->ctx, &cs->timer, br_now() + (int64_t)timeout_ms * 1000000, timer_fired, cs);
  return 0;
}

static void sock_remove(struct http_curl_state *cs, hsock *s) {
  br_io_stop(cs->ctx->loop, &s->io);
  if (s->prev) s->prev->next = s->next; else cs->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
}

/* CURLMOPT_SOCKETFUNCTION */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  struct http_curl_state *cs = userp;
  hsock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      sock_remove(cs, s);
      curl_multi_assign(cs->multi, fd, NULL);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->cs = cs;
    s->fd = fd;
    s->io.weak = 1;   /* transfers keep the loop alive, not idle connections */
    s->next = cs->socks;
    if (cs->socks) cs->socks->prev = s;
    cs->socks = s;
    curl_multi_assign(cs->multi, fd, s);
  }
  int ev = (what == CURL_POLL_IN ? BR_READ : what == CURL_POLL_OUT ? BR_WRITE : BR_READ | BR_WRITE);
  return br_io_start(cs->ctx->loop, &s->io, fd, ev, event_cb, s) == 0 ? 0 : -1;
}

/* curl is set up on its first use: a run that only talks plain HTTP to
 * addresses never pays for it (curl_global_init alone touches ~2 MB of the
 * TLS libraries). NULL, or what failed. */
static const char *curl_setup(hctx *c) {
  static int global_done;
  if (c->curl) return NULL;
  if (!global_done && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return "curl_global_init failed";
  global_done = 1;
  struct http_curl_state *cs = calloc(1, sizeof *cs);
  if (!cs) return "out of memory";
  cs->ctx = c;
  cs->multi = curl_multi_init();
  if (!cs->multi) {
    free(cs);
    return "cannot create a curl multi handle";
  }
  curl_multi_setopt(cs->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(cs->multi, CURLMOPT_SOCKETDATA, cs);
  curl_multi_setopt(cs->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(cs->multi, CURLMOPT_TIMERDATA, cs);
  curl_multi_setopt(cs->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  c->curl = cs;
  return NULL;
}

/* ---- a transfer's callbacks ---- */

/* The head is in: its status and type, as the native transport has them. */
static void decide_body(cxfer *cx) {
  xfer *x = &cx->x;
  curl_easy_getinfo(cx->easy, CURLINFO_RESPONSE_CODE, &x->status);
  char *ct = NULL;
  curl_easy_getinfo(cx->easy, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) snprintf(x->content_type, sizeof x->content_type, "%s", ct);
  http_head_done(x);
}

/* CURLOPT_WRITEFUNCTION: body bytes */
static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud) {
  cxfer *cx = ud;
  xfer *x = &cx->x;
  int64_t now = br_loop_event_time(x->ctx->loop);   /* first: the arrival time of these bytes */
  size_t n = size * nmemb;
  x->t_last_data = now;
  if (x->body_mode == BODY_UNDECIDED) decide_body(cx);
  return http_deliver(x, p, n, now) == 0 ? n : 0;
}

static const br_h1_callbacks no_h1_cbs = {NULL, NULL, NULL};

/* A trailer after a chunked body: not one of the answer's headers (the
 * native transport keeps none); one without a colon is refused as h1 does
 * (curl 7.88 refuses it itself before we see it: curl_reason). */
static size_t trailer_line(xfer *x, const char *p, size_t n) {
  size_t k = n;
  while (k && (p[k - 1] == '\r' || p[k - 1] == '\n')) k--;
  if (k && !memchr(p, ':', k)) {
    http_fail(x, HERR_BAD_RESPONSE);
    http_detail(x, "%s", "a trailer line without a colon");
    return 0;
  }
  return n;
}

/* CURLOPT_HEADERFUNCTION: one line of a head (or a trailer) */
static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud) {
  cxfer *cx = ud;
  xfer *x = &cx->x;
  int64_t now = br_loop_event_time(x->ctx->loop);
  size_t n = size * nmemb;
  if (!x->t_first_byte) http_first_byte(x, now);
  x->t_last_data = now;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response (after 1xx, or a proxy's CONNECT answer) */
    br_buf_clear(&x->headers);
    /* HTTP/2 and 3 heads are curl's alone; on a connection that can only
     * be HTTP/1.x, "HTTP/2 200" is refused as the native transport does */
    cx->hcheck_on = cx->h1_only || (n >= 7 && memcmp(p, "HTTP/1.", 7) == 0);
    if (br_h1_head_complete(&cx->hcheck)) br_h1_init(&cx->hcheck, x->head_request);
  } else if (cx->hcheck_on && br_h1_head_complete(&cx->hcheck)) {
    return trailer_line(x, p, n);
  }
  /* An HTTP/1.x head goes through the native transport's parser too: curl
   * is lenient where h1 is strict (a header line without a name, two
   * different Content-Lengths, an unasked-for 101) and has no limit on
   * header lines (curl 7), and the same bytes must give the same error.
   * Only head lines: trailers after the body are curl's. */
  if (cx->hcheck_on && !br_h1_head_complete(&cx->hcheck)) {
    size_t used;
    if (br_h1_feed(&cx->hcheck, p, n, &no_h1_cbs, NULL, &used) == BR_H1_ERROR) {
      http_fail(x, HERR_BAD_RESPONSE);
      http_detail(x, "%s", cx->hcheck.error);
      return 0;   /* curl stops with CURLE_WRITE_ERROR; the reason is ours */
    }
  }
  if (x->headers.len + n <= MAX_HEADER_BYTES) br_buf_add(&x->headers, p, n);
  return n;
}

/* ---- finishing ---- */

/* curl's result as one of our reasons (docs/http.md): the one place where
 * curl's codes are read. in_head: no byte of the body had come. */
static http_err curl_reason(cxfer *cx, CURLcode rc, int in_head) {
  xfer *x = &cx->x;
  long oserr = 0;
  switch (rc) {
  case CURLE_OK: return HERR_NONE;
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(cx->easy, CURLINFO_OS_ERRNO, &oserr);
    return oserr == ECONNREFUSED || oserr == 0 ? HERR_REFUSED : HERR_CONNECT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return HERR_DNS;
  case CURLE_OPERATION_TIMEDOUT: return x->t_connect || x->t_first_byte ? HERR_TIMEOUT_TOTAL : HERR_TIMEOUT_CONNECT;
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
  case CURLE_SSL_CRL_BADFILE: return HERR_TLS;
  case CURLE_RECV_ERROR:
    /* a socket error ("Recv failure: Connection reset by peer"), or what
     * curl found wrong in the bytes (a bad chunk; a head too large in curl
     * 8). curl keeps the errno of an earlier failure (of another transfer
     * on a reused handle, too): a socket error is one whose message names
     * its errno. */
    curl_easy_getinfo(cx->easy, CURLINFO_OS_ERRNO, &oserr);
    return oserr && strstr(cx->errbuf, strerror((int)oserr)) ? HERR_RESET : HERR_BAD_RESPONSE;
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING: return HERR_RESET;
  case CURLE_PARTIAL_FILE: return HERR_TRUNCATED;
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM: return HERR_HTTP2;
  case CURLE_UNSUPPORTED_PROTOCOL:
    /* after a connection, what curl says of an answer that is not HTTP/1.x
     * ("HTTP/0.9", "Unsupported HTTP version", "Unsupported response code") */
    return x->t_connect ? HERR_BAD_RESPONSE : HERR_BAD_URL;
  case CURLE_URL_MALFORMAT: return HERR_BAD_URL;
  case CURLE_BAD_FUNCTION_ARGUMENT:
    /* what curl 7.88's header store says of a trailer line without a colon */
    return cx->hcheck_on && br_h1_head_complete(&cx->hcheck) ? HERR_BAD_RESPONSE : HERR_CURL;
  case CURLE_WEIRD_SERVER_REPLY: return HERR_BAD_RESPONSE;
  case CURLE_OUT_OF_MEMORY:
#if LIBCURL_VERSION_NUM >= 0x080600
  case CURLE_TOO_LARGE:   /* curl 8.6+ */
#endif
    /* curl 7 says "out of memory" of a head line over its limit (100 KiB,
     * BR_H1_MAX_HEAD_LINE), curl 8.6+ "too large": say which */
    if (!in_head || !x->t_connect) return HERR_NOMEM;
    http_detail_replace(x, "a line of the response head is longer than 100 KiB (curl: %.150s)",
                        cx->errbuf[0] ? cx->errbuf : curl_easy_strerror(rc));
    return HERR_BAD_RESPONSE;
  default: return HERR_CURL;
  }
}

static void release_easy(struct http_curl_state *cs, cxfer *cx) {
  if (!cx->easy) return;
  if (cs->npool < POOL_MAX) {
    if (!cs->pool) cs->pool = malloc(POOL_MAX * sizeof *cs->pool);
    if (cs->pool) {
      curl_easy_reset(cx->easy);
      cs->pool[cs->npool++] = cx->easy;
      cx->easy = NULL;
      return;
    }
  }
  curl_easy_cleanup(cx->easy);
  cx->easy = NULL;
}

/* One of curl's times (µs from the start) on our clock; 0: did not happen. */
static int64_t curl_time(const cxfer *cx, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(cx->easy, what, &us);
  return us > 0 ? cx->x.t_start + (int64_t)us * 1000 : 0;
}

/* The transfer is over: curl's figures, its reason, then the handle back
 * to the pool. */
static void curl_detach(xfer *x) {
  cxfer *cx = (cxfer *)x;
  hctx *c = x->ctx;
  CURL *e = cx->easy;
  CURLcode rc = cx->result;
  x->t_dns = curl_time(cx, CURLINFO_NAMELOOKUP_TIME_T);
  x->t_connect = curl_time(cx, CURLINFO_CONNECT_TIME_T);
  x->t_tls = curl_time(cx, CURLINFO_APPCONNECT_TIME_T);
  x->t_sent = curl_time(cx, CURLINFO_PRETRANSFER_TIME_T);
  long connects = 0;
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
  x->reused = connects == 0 && x->t_first_byte;
  http_err reason = curl_reason(cx, rc, x->body_mode == BODY_UNDECIDED);
  if (cx->hcheck_on && br_h1_started(&cx->hcheck) && !br_h1_head_complete(&cx->hcheck)) {
    /* The head did not end well: no status, as the native transport says.
     * curl 7 takes a head cut short by the close for a whole answer with
     * no body; like the native transport we call that a reset. */
    if (rc == CURLE_OK) {
      http_fail(x, HERR_RESET);
      http_detail(x, "%s", "the connection closed in the response head");
    }
  } else if (x->body_mode == BODY_UNDECIDED && x->t_first_byte) {
    decide_body(cx);
  } else {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
  }
  if (reason && !x->error) {
    http_fail(x, reason);
    http_detail(x, "%s", cx->errbuf[0] ? cx->errbuf : curl_easy_strerror(rc));
  }
  c->busy++;
  curl_multi_remove_handle(c->curl->multi, e);
  c->busy--;
  release_easy(c->curl, cx);
}

/* ---- the request ---- */

/* The caller's headers as curl takes them, and no 100-continue round trip
 * for large bodies. */
static int curl_headers(cxfer *cx) {
  char line[1024];
  const char *p = cx->x.reqhdrs.p, *end = p + cx->x.reqhdrs.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    size_t n = (size_t)((eol ? eol : end) - p);
    char *big = n < sizeof line ? line : malloc(n + 1);
    if (!big) return -1;
    memcpy(big, p, n);
    big[n] = 0;
    struct curl_slist *l = curl_slist_append(cx->hdrs, big);
    if (big != line) free(big);
    if (!l) return -1;
    cx->hdrs = l;
    p = eol ? eol + 2 : end;
  }
  struct curl_slist *l = curl_slist_append(cx->hdrs, "Expect:");
  if (!l) return -1;
  cx->hdrs = l;
  return 0;
}

/* The options of the request on its easy handle. */
static void set_options(cxfer *cx, CURL *e, const http_opts *o) {
  curl_easy_setopt(e, CURLOPT_URL, o->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)cx);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, cx);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, cx);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cx->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, cx->hdrs);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                   o->http2 == H2_PRIOR ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                   : o->http2 == H2_OFF ? (long)CURL_HTTP_VERSION_1_1
                                        : (long)CURL_HTTP_VERSION_2TLS);
  /* Waiting to multiplex only pays where HTTP/2 is certain: on plain
   * HTTP/1.1 it makes every other request wait for the first response. */
  if (o->http2 == H2_PRIOR) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  if (o->to_connect)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->to_connect / 1000000 > 0 ? o->to_connect / 1000000 : 1));
  if (o->insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
  if (o->body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->bodylen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, cx->x.reqbody.p ? cx->x.reqbody.p : "");
  }
  const char *m = o->method;
  if (strcmp(m, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(m, "GET") == 0 && o->body) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET");
  else if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

static const char *curl_prepare(xfer *x, const http_opts *o) {
  cxfer *cx = (cxfer *)x;
  hctx *c = x->ctx;
  const char *err = curl_setup(c);
  if (err) return err;
  if (curl_headers(cx)) return "out of memory";
  br_h1_init(&cx->hcheck, x->head_request);
  CURL *e = c->curl->npool ? c->curl->pool[--c->curl->npool] : curl_easy_init();
  if (!e) return "cannot create a curl handle";
  cx->easy = e;
  cx->h1_only = strncasecmp(o->url, "http://", 7) == 0 && o->http2 != H2_PRIOR;
  set_options(cx, e, o);
  return NULL;
}

static const char *curl_start(xfer *x) {
  cxfer *cx = (cxfer *)x;
  CURLMcode mc = curl_multi_add_handle(x->ctx->curl->multi, cx->easy);
  if (mc == CURLM_OK) return NULL;
  http_detail_replace(x, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
  return x->detail.p;
}

static void curl_drop(xfer *x) { curl_multi_remove_handle(x->ctx->curl->multi, ((cxfer *)x)->easy); }

static void curl_release(xfer *x) {
  cxfer *cx = (cxfer *)x;
  if (cx->easy) curl_easy_cleanup(cx->easy);
  cx->easy = NULL;
  curl_slist_free_all(cx->hdrs);
  cx->hdrs = NULL;
  br_h1_free(&cx->hcheck);
}

/* curl keeps its own connect timeout. */
static int curl_connecting(const xfer *x) { return 0; }

static void curl_shutdown(hctx *c) {
  struct http_curl_state *cs = c->curl;
  if (!cs) return;
  for (int i = 0; i < cs->npool; i++) curl_easy_cleanup(cs->pool[i]);
  free(cs->pool);
  curl_multi_cleanup(cs->multi);
  while (cs->socks) sock_remove(cs, cs->socks);
  weak_timer_stop(c, &cs->timer);
  free(cs);
  c->curl = NULL;
}

int http_curl_version(lua_State *L) {
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "");
  return 3;
}

const http_transport http_curl = {
  .name = "curl",
  .xfer_size = sizeof(cxfer),
  .prepare = curl_prepare,
  .start = curl_start,
  .detach = curl_detach,
  .drop = curl_drop,
  .release = curl_release,
  .connecting = curl_connecting,
  .shutdown = curl_shutdown,
};
