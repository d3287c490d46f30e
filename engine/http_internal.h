/* bench.http's insides, shared by its files:
 *
 *   http.c         the Lua API: options read into http_opts, http.request,
 *                  the request userdata, the other http.* functions
 *   http_xfer.c    the transfer core: the answer's head judged, body bytes
 *                  to the parsers (sse.c, llmchunk.c), on_event, deadlines,
 *                  finishing
 *   http_result.c  a finished transfer as the response table
 *   http_curl.c    the curl transport (libcurl's multi-socket interface)
 *   http_native.c  the native HTTP/1.1 transport (h1.c parses)
 *   http_target.c  the URLs it takes and the addresses they name
 *
 * A transport fills in an http_transport table; the core calls it only
 * through that table and never asks which one it holds. Transports report
 * failures as http_err values (never curl's codes or errno). */
#ifndef BENCHRUN_HTTP_INTERNAL_H
#define BENCHRUN_HTTP_INTERNAL_H

#include "benchrun/loop.h"
#include "benchrun/sched.h"
#include "buf.h"
#include "h1.h"
#include "llmchunk.h"
#include "sse.h"

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { STREAM_NONE = 0, STREAM_SSE = 1, STREAM_NDJSON = 2 };
enum { BODY_UNDECIDED = 0, BODY_PLAIN, BODY_STREAM, BODY_ERROR };
enum { TRANSPORT_AUTO = 0, TRANSPORT_CURL = 1, TRANSPORT_NATIVE = 2 };
enum { H2_TLS = 0, H2_PRIOR, H2_OFF };   /* the http2 option: default (over TLS), "prior", "off" */
/* The head kept for r.headers: every head h1's limits let through fits,
 * a bare LF of each line made CR LF. */
enum { MAX_HEADER_BYTES = BR_H1_MAX_HEAD + BR_H1_MAX_HEADERS + 2 };

/* Why a transfer failed: r.error is http_err_name() of it (docs/http.md
 * lists them). Kept as a value; the text is made only for the result. */
typedef enum http_err {
  HERR_NONE = 0,
  HERR_STATUS,              /* "http_<status>" */
  HERR_REDIRECT,
  HERR_UNSUPPORTED_ENCODING,
  HERR_BAD_CONTENT_TYPE,
  HERR_EVENT_TOO_LARGE,
  HERR_BODY_TOO_LARGE,
  HERR_TRUNCATED,
  HERR_ON_EVENT,
  HERR_STOPPED,
  HERR_BAD_RESPONSE,
  HERR_REFUSED,
  HERR_DNS,
  HERR_CONNECT,
  HERR_RESET,
  HERR_TLS,
  HERR_TIMEOUT_CONNECT,
  HERR_TIMEOUT_FIRST_BYTE,
  HERR_TIMEOUT_IDLE,
  HERR_TIMEOUT_TOTAL,
  HERR_HTTP2,
  HERR_BAD_URL,
  HERR_NOMEM,
  HERR_CURL,
  HERR_CANCELLED,
} http_err;

/* Where a native request goes: an address literal (or localhost's two)
 * and the parts of the URL its head needs (pointers into the URL). */
typedef struct http_target {
  struct sockaddr_storage addrs[2];
  socklen_t addrlens[2];
  int naddr;
  const char *authority, *path;   /* the Host header's value; the request target */
  size_t alen, plen;
} http_target;

/* A request's options, read and checked by the API layer (http.c). The
 * strings point into the Lua options table (or a string the API keeps on
 * the stack) and live for the http.request call. */
typedef struct http_opts {
  const char *url, *method, *body, *ca_file;
  size_t urllen, bodylen;
  const char *headers;   /* the caller's headers, "Name: value\r\n" each */
  size_t headerslen;
  int stream, decode, raw, check_type, insecure, http2, transport;
  size_t max_event, max_body, error_body_max;
  int64_t to_connect, to_first_byte, to_idle, to_total;   /* ns; 0: none */
  http_target target;    /* filled where the native transport can take the URL */
} http_opts;

typedef struct hctx hctx;
typedef struct xfer xfer;
typedef struct http_transport http_transport;
typedef struct http_req { xfer *x; } http_req;   /* the request userdata */

/* One raw event, kept when no decoding is asked (or raw = true). */
typedef struct evrec {
  size_t off, len;            /* data in xfer.evdata */
  size_t type_off, type_len;  /* type in xfer.evdata (len 0: "message") */
  int64_t t;
} evrec;

/* One http.request per Lua state: a userdata in the registry, closed with
 * the state. Each transport's shared state (curl's multi handle, the native
 * idle connections) is made on its first use. */
struct hctx {
  br_loop *loop;
  lua_State *main;
  br_timer defer;       /* runs aborts asked for while a transport was on the stack */
  int busy;             /* depth of calls into a transport (curl, or native parsing) */
  int npending;         /* transfers with an abort waiting for busy to reach 0 */
  xfer *xfers;          /* every transfer not yet freed */
  long active;          /* transfers in flight */
  int closed;
  int default_transport;
  struct http_curl_state *curl;
  struct http_native_state *native;
};

/* A transfer. A transport allocates its own struct that starts with this
 * one (size in http_transport.xfer_size) and casts back. */
struct xfer {
  br_wait wait;          /* first: the cancel hook gets it */
  hctx *ctx;
  const http_transport *tr;
  xfer *prev, *next;
  http_req *owner;       /* NULL once the Lua side has let go */
  int in_flight, finished, abort_pending, orphan;
  /* req:send_after: the request sent from here when this one ends without
   * a transfer error (chained), and the one this request waits for
   * (after); chain_not_after: ns, 0: no limit */
  xfer *chained, *after;
  int64_t chain_not_after;
  http_err pending_error;
  /* options */
  int stream, decode, raw, check_type, head_request;
  size_t max_event, max_body, error_body_max;
  int64_t to_connect, to_first_byte, to_idle, to_total;   /* ns; 0: none */
  int on_event_ref;
  br_buf reqhdrs;        /* the caller's headers, "Name: value\r\n" each */
  br_buf reqbody;
  /* progress */
  br_timer deadline;
  int64_t t_start, t_first_byte, t_last_data, t_chunk, t_end;
  /* the idle clock: the last body byte, or for a decoded LLM stream the last
   * token event (comments, keep-alive events and empty deltas do not count,
   * so a server that only pings cannot hold a request forever) */
  int64_t t_progress;
  int body_mode;
  long status;
  http_err error;
  long error_status;     /* the status of an HERR_STATUS */
  br_buf detail;         /* r.error_detail */
  br_buf headers, body;
  int body_truncated;
  uint64_t bytes;
  br_sse sse;
  long dropped;          /* bytes of an unfinished SSE event at the end */
  /* raw events */
  br_buf evdata;
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
  size_t ntok, captok, ncontent, nreasoning, ntool;
  int64_t first_token_t, last_token_t;
  int64_t first_content_t, first_reasoning_t, first_tool_t;
  int has_sim;
  int reused;            /* the answer came on a kept connection */
  int resent;            /* sent again on a new connection: the one it had was found closed */
  /* when name resolution, connecting, TLS and sending the request ended
   * (ns; 0: did not happen, e.g. on a reused connection) */
  int64_t t_dns, t_connect, t_tls, t_sent;
  char content_type[128];
};

/* What a transport implements (as wrk's struct sock does for its plain and
 * TLS sockets). The core calls these and nothing else of a transport. */
struct http_transport {
  const char *name;      /* r.transport */
  size_t xfer_size;      /* its transfer struct, which starts with an xfer */
  /* Build what the request needs from the options, before the clock
   * starts: NULL, or a message for a Lua error. */
  const char *(*prepare)(xfer *x, const http_opts *o);
  /* Send it (x->t_start set, in flight, the context busy): NULL, or a
   * message for a Lua error (nothing was sent). It may finish the
   * transfer at once (a refused connect). */
  const char *(*start)(xfer *x);
  /* Optional (req:connect): open the connection before the request is
   * sent, the clock not started. What fails here is forgotten: the send
   * connects again and reports its own outcome. */
  void (*connect_ahead)(xfer *x);
  /* The transfer is over (done, failed, past a deadline, cancelled): take
   * the last figures and reasons, keep or close the connection. */
  void (*detach)(xfer *x);
  /* The state closes under a transfer in flight: let go at once. */
  void (*drop)(xfer *x);
  /* Free what prepare made (the transfer is not in flight). */
  void (*release)(xfer *x);
  /* Whether the connect deadline is the core's to keep now (curl keeps
   * its own). */
  int (*connecting)(const xfer *x);
  /* The state closes: every connection, handle and buffer it keeps. */
  void (*shutdown)(hctx *c);
};

extern const http_transport http_curl, http_native;

/* ---- the core (http_xfer.c), for the API layer and the transports ---- */

const char *http_err_name(http_err e, long status, char *buf, size_t n);
/* The first reason wins. */
static inline void http_fail(xfer *x, http_err e) {
  if (!x->error) x->error = e;
}
/* r.error_detail, printf-style, at most 255 bytes: set it if unset, or
 * replace what is there. */
void http_detail(xfer *x, const char *fmt, ...);
void http_detail_replace(xfer *x, const char *fmt, ...);

/* The value of the next header line of the answer named `name` (any case)
 * at or after *pos in x->headers, trimmed; NULL when there is none. */
const char *http_next_header(const xfer *x, const char *name, size_t *pos, size_t *vlen);

/* Whether the caller's headers name `name` (then ours is not sent). */
int http_has_header(const xfer *x, const char *name);

/* A transport calls these as the answer comes: the first byte (of the
 * head); the head is in (x->status and x->content_type set); body bytes
 * that arrived at `now` (0, or -1 to stop the transfer, its error set). */
void http_first_byte(xfer *x, int64_t now);
void http_head_done(xfer *x);
int http_deliver(xfer *x, const char *p, size_t n, int64_t now);

/* Enter and leave a transport's work: aborts asked for meanwhile (from
 * on_event, a deadline) run when the outermost call leaves. */
static inline void http_busy_enter(hctx *c) { c->busy++; }
void http_run_deferred(hctx *c);
static inline void http_busy_leave(hctx *c) {
  if (--c->busy == 0) http_run_deferred(c);
}

/* Stop a transfer with a reason; safe from anywhere (inside a transport's
 * callbacks it happens when the transport returns). */
void http_abort(xfer *x, http_err why);
/* The transfer is over: the transport detaches, the stream's end is
 * checked, the waiter wakes. Never called with curl on the stack. */
void http_finish(xfer *x, http_err forced);

/* A transfer the API layer has made: the transport builds what it needs
 * from the options (http_xfer_prepare), then it is sent (the clock, the
 * send, the deadline: http_xfer_send). NULL, or a message for a Lua
 * error. */
const char *http_xfer_prepare(xfer *x, const http_opts *o);
const char *http_xfer_send(xfer *x, lua_State *L);
/* Send y (prepared) when x ends without a transfer error, from the loop,
 * with no Lua in between; at once if x already has. Not after not_after
 * (ns; 0: no limit). */
void http_xfer_send_after(xfer *y, xfer *x, int64_t not_after);
void http_xfer_release(xfer *x);   /* the Lua side lets go */
void http_xfer_free(xfer *x);
void http_push_response(lua_State *L, const xfer *x);

/* http.version() -> curl's version string, whether it speaks HTTP/2, its
 * TLS library (http_curl.c) */
int http_curl_version(lua_State *L);

/* ---- the native transport's URL check (http_native.c) ---- */

/* Whether url is one for the native transport (docs/http.md, Transports);
 * fills t. */
int http_native_target(const char *url, size_t len, http_target *t);

#endif
