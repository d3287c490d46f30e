/* The incremental HTTP/1.1 response parser (engine/h1.c): framing
 * (Content-Length, chunked, close-delimited, none), interim 1xx responses,
 * keep-alive, the errors it must report, br_h1_eof in every state, stopping
 * from a callback and going on, reusing a parser for the next response, and
 * the llama-server SSE captures wrapped in a chunked response.
 *
 * Every case is fed whole, cut in two at every byte (every one of a sample
 * for large inputs), byte by byte and in random reads, each read a private
 * malloc'd copy freed right after; all of these must give the same lines,
 * head_done calls, body bytes, result and bytes consumed. */
#include "h1.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static long runs;
static int cases, asserts;

/* ---- a growable byte buffer ---- */
typedef struct { char *p; size_t len, cap; } buf;

static void buf_add(buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { perror("realloc"); exit(2); }
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void buf_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k > 0) buf_add(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void buf_free(buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static const char *buf_cstr(const buf *b) { return b->p ? b->p : ""; }

/* Bytes for a failure message: escapes, and long inputs cut short. */
static const char *show(const char *p, size_t n) {
  static char out[4][700];
  static int which;
  char *o = out[which++ & 3];
  size_t k = 0;
  for (size_t i = 0; i < n && k < 600; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\r') k += (size_t)sprintf(o + k, "\\r");
    else if (c == '\n') k += (size_t)sprintf(o + k, "\\n");
    else if (c == '\\') k += (size_t)sprintf(o + k, "\\\\");
    else if (c < 32 || c >= 127) k += (size_t)sprintf(o + k, "\\x%02x", c);
    else o[k++] = (char)c;
  }
  if (k >= 600) k += (size_t)sprintf(o + k, "...(%zu bytes)", n);
  o[k] = 0;
  return o;
}

/* ---- what the callbacks saw ---- */
typedef struct {
  buf log;    /* "L <line>\n" per line callback, "H <status>\n" per head_done */
  buf body;   /* body bytes, concatenated */
  int lines, heads, bodies;
  int stop_line, stop_head, stop_body;   /* return 1 from the Nth call of that callback */
  const char *base;       /* the read being fed ... */
  size_t base_off, base_len;   /* ... where it lies in the input, its length */
  size_t body_end;        /* input offset just after the last body bytes handed out */
  const char *anomaly;    /* a callback saw something it never should */
} sink;

static int on_line(void *ud, const char *p, size_t n) {
  sink *s = ud;
  s->lines++;
  if (n == 0) s->anomaly = "an empty line handed to the line callback";
  else if (memchr(p, '\n', n)) s->anomaly = "a line callback's line holds a LF";
  if (s->heads) s->anomaly = "a line callback after head_done";
  buf_str(&s->log, "L ");
  buf_add(&s->log, p, n);
  buf_str(&s->log, "\n");
  return s->stop_line && s->lines == s->stop_line;
}

static int on_head(void *ud, int status) {
  sink *s = ud;
  s->heads++;
  buf_printf(&s->log, "H %d\n", status);
  return s->stop_head && s->heads == s->stop_head;
}

static int on_body(void *ud, const char *p, size_t n) {
  sink *s = ud;
  s->bodies++;
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)s->base;
  if (n == 0) s->anomaly = "an empty body callback";
  if (!s->heads) s->anomaly = "body bytes before head_done";
  if (a < b || n > s->base_len || a - b > s->base_len - n)
    s->anomaly = "body bytes not in place in the caller's read";
  else
    s->body_end = s->base_off + (size_t)(a - b) + n;
  buf_add(&s->body, p, n);
  return s->stop_body && s->bodies == s->stop_body;
}

static const br_h1_callbacks callbacks = {on_line, on_head, on_body};

/* ---- a case and how to run it ---- */
enum { KA_ANY = 0, KA_YES, KA_NO };

typedef struct {
  const char *name;
  const char *in;
  size_t n;             /* 0: strlen(in) */
  int head;             /* the response answers a HEAD request */
  int eof;              /* call br_h1_eof when the feeds end with BR_H1_MORE */
  int rc;               /* the expected final result */
  const char *log;      /* expected line and head_done calls (NULL: none) */
  const char *body;     /* expected body (NULL: none) */
  size_t body_n;        /* 0: strlen(body) */
  size_t used;          /* expected bytes consumed (0: all); not checked with BR_H1_ERROR */
  int ka;               /* expected keep_alive */
  int status;           /* expected status (0: not checked) */
  const char *error;    /* with BR_H1_ERROR: a piece of the expected error text */
  int stop_line, stop_head, stop_body;   /* a callback returns 1 at its Nth call */
  int resume;           /* after BR_H1_STOP, feed on from *used */
  long stop_at;         /* *used (from the input's start) at BR_H1_STOP; -1: just after the body bytes handed out */
  int head_complete;    /* after the stop: br_h1_head_complete (0: not checked, 1: yes, 2: no) */
  int sample;           /* cut in two at a sample of positions only (large inputs) */
} h1case;

typedef struct {
  int rc;
  size_t used;           /* bytes consumed, from the input's start */
  const char *error;
  int keep_alive, status, head_complete, started;
  uint64_t body_bytes;
  int nstops;
  size_t stop_used, stop_body_end;
  int stop_head_complete;
  const char *anomaly;
  sink s;
} result;

/* Feed c->in in reads ending at ends[0..nends). */
static void run(const h1case *c, const size_t *ends, size_t nends, result *r) {
  memset(r, 0, sizeof *r);
  r->s.stop_line = c->stop_line;
  r->s.stop_head = c->stop_head;
  r->s.stop_body = c->stop_body;
  br_h1 p;
  memset(&p, 0, sizeof p);
  br_h1_init(&p, c->head);
  size_t off = 0;
  int rc = BR_H1_MORE;
  runs++;
  for (size_t k = 0; k < nends && rc == BR_H1_MORE; k++) {
    size_t len = ends[k] - off;
    char *piece = malloc(len ? len : 1);
    memcpy(piece, c->in + off, len);
    r->s.base = piece;
    r->s.base_off = off;
    r->s.base_len = len;
    size_t at = 0;
    for (;;) {
      size_t used = (size_t)-1;
      rc = br_h1_feed(&p, piece + at, len - at, &callbacks, &r->s, &used);
      if (used > len - at) {
        r->anomaly = "*used past the bytes given";
        used = len - at;
      } else if (rc == BR_H1_MORE && used != len - at) {
        r->anomaly = "BR_H1_MORE without taking every byte";
      }
      at += used;
      if (rc == BR_H1_STOP && r->nstops < 3) {
        if (!r->nstops++) {
          r->stop_used = off + at;
          r->stop_body_end = r->s.body_end;
          r->stop_head_complete = br_h1_head_complete(&p);
        }
        if (c->resume) continue;   /* go on with the rest of this read (maybe none) */
      }
      break;
    }
    memset(piece, '#', len);   /* nothing may point into a read once it is over */
    free(piece);
    r->used = off + at;
    off = ends[k];
  }
  if (rc == BR_H1_MORE && c->eof) rc = br_h1_eof(&p);
  r->rc = rc;
  r->error = p.error;
  r->keep_alive = p.keep_alive;
  r->status = p.status;
  r->head_complete = br_h1_head_complete(&p);
  r->started = br_h1_started(&p);
  r->body_bytes = p.body_bytes;
  if (!r->anomaly) r->anomaly = r->s.anomaly;
  if (rc == BR_H1_ERROR && !p.error) r->anomaly = "BR_H1_ERROR without an error";
  if (rc != BR_H1_ERROR && p.error) r->anomaly = "an error set without BR_H1_ERROR";
  br_h1_free(&p);
  if (p.line || p.line_cap) r->anomaly = "br_h1_free left a line buffer";
}

static int case_failures;

static void fail(const h1case *c, const char *how, const char *fmt, ...) {
  failures++;
  if (case_failures++ >= 4) return;   /* the first few of a case say enough */
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL %s (%s): %s\n", c->name, how, msg);
}

static const char *rc_name(int rc) {
  switch (rc) {
  case BR_H1_MORE: return "MORE";
  case BR_H1_DONE: return "DONE";
  case BR_H1_ERROR: return "ERROR";
  case BR_H1_STOP: return "STOP";
  default: return "?";
  }
}

static void verify(const h1case *c, const char *how, const result *r) {
  const char *want_log = c->log ? c->log : "";
  const char *want_body = c->body ? c->body : "";
  size_t want_body_n = c->body_n ? c->body_n : strlen(want_body);
  size_t want_used = c->used ? c->used : c->n;
  if (r->rc != c->rc)
    fail(c, how, "result %s, expected %s (error: %s)", rc_name(r->rc), rc_name(c->rc), r->error ? r->error : "none");
  if (r->anomaly) fail(c, how, "%s", r->anomaly);
  if (strcmp(buf_cstr(&r->s.log), want_log) != 0)
    fail(c, how, "callbacks\n  expected: %s\n  got:      %s", show(want_log, strlen(want_log)),
         show(buf_cstr(&r->s.log), r->s.log.len));
  if (c->stop_body && !c->resume) {
    /* stopped at the first body bytes: how many depends on the reads */
    if (r->s.body.len > want_body_n || memcmp(buf_cstr(&r->s.body), want_body, r->s.body.len) != 0)
      fail(c, how, "body %s is not a start of %s", show(buf_cstr(&r->s.body), r->s.body.len), show(want_body, want_body_n));
  } else if (r->s.body.len != want_body_n || memcmp(buf_cstr(&r->s.body), want_body, want_body_n) != 0) {
    fail(c, how, "body\n  expected: %s\n  got:      %s", show(want_body, want_body_n), show(buf_cstr(&r->s.body), r->s.body.len));
  }
  if (r->body_bytes != r->s.body.len)
    fail(c, how, "body_bytes %llu, but %zu handed out", (unsigned long long)r->body_bytes, r->s.body.len);
  if (r->rc != BR_H1_ERROR && !(c->stop_body && !c->resume) && r->used != want_used)
    fail(c, how, "used %zu bytes, expected %zu", r->used, want_used);
  if (c->ka && r->keep_alive != (c->ka == KA_YES)) fail(c, how, "keep_alive %d, expected %d", r->keep_alive, c->ka == KA_YES);
  if (c->status && r->status != c->status) fail(c, how, "status %d, expected %d", r->status, c->status);
  if (c->rc == BR_H1_ERROR && r->rc == BR_H1_ERROR && c->error && (!r->error || !strstr(r->error, c->error)))
    fail(c, how, "error \"%s\", expected one with \"%s\"", r->error ? r->error : "(null)", c->error);
  if (c->n && !r->started) fail(c, how, "br_h1_started is 0 after bytes");
  if (r->rc == BR_H1_DONE && !r->head_complete) fail(c, how, "DONE but br_h1_head_complete is 0");
  if (c->stop_line || c->stop_head || c->stop_body) {
    size_t want_at = c->stop_at >= 0 ? (size_t)c->stop_at : r->stop_body_end;
    if (r->nstops != 1) fail(c, how, "%d stops, expected 1", r->nstops);
    else if (r->stop_used != want_at) fail(c, how, "BR_H1_STOP left *used at %zu, expected %zu", r->stop_used, want_at);
    else if (c->head_complete && r->stop_head_complete != (c->head_complete == 1))
      fail(c, how, "br_h1_head_complete %d after the stop, expected %d", r->stop_head_complete, c->head_complete == 1);
  }
}

static uint64_t rng = 0x2545F4914F6CDD1Du;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

/* Run a case whole, cut in two everywhere, byte by byte, in random reads. */
static void check(h1case c) {
  if (!c.n) c.n = strlen(c.in);
  cases++;
  size_t n = c.n;
  size_t *ends = malloc((n + 2) * sizeof *ends);
  char how[64];
  result r;
  case_failures = 0;

  ends[0] = n;
  run(&c, ends, 1, &r);
  verify(&c, "whole", &r);
  buf_free(&r.s.log);
  buf_free(&r.s.body);

  /* in two: an empty read first or last included */
  for (size_t cut = 0; cut <= n; cut++) {
    if (c.sample && cut > 80 && cut + 80 < n && cut % 479 != 0) continue;
    ends[0] = cut;
    ends[1] = n;
    run(&c, ends, 2, &r);
    snprintf(how, sizeof how, "cut at %zu", cut);
    verify(&c, how, &r);
    buf_free(&r.s.log);
    buf_free(&r.s.body);
  }

  for (size_t i = 0; i < n; i++) ends[i] = i + 1;
  run(&c, ends, n, &r);
  verify(&c, "byte by byte", &r);
  buf_free(&r.s.log);
  buf_free(&r.s.body);

  for (int t = 0; t < 6; t++) {
    size_t k = 0, at = 0;
    size_t most = t < 3 ? 7 : 600;
    while (at < n) {
      at += 1 + next_rand() % most;
      if (at > n) at = n;
      ends[k++] = at;
    }
    run(&c, ends, k, &r);
    snprintf(how, sizeof how, "random reads of 1..%zu", most);
    verify(&c, how, &r);
    buf_free(&r.s.log);
    buf_free(&r.s.body);
  }
  free(ends);
}

/* ---- helpers for whole-file and built inputs ---- */
static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)len + 1);
  *n = fread(p, 1, (size_t)len, f);
  p[*n] = 0;
  fclose(f);
  return p;
}

#define EXPECT(what, cond)                                                      \
  do {                                                                          \
    asserts++;                                                                  \
    if (!(cond)) {                                                              \
      failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d %s: %s\n", __FILE__, __LINE__, what, #cond); \
    }                                                                           \
  } while (0)

/* ---- the cases ---- */

static void framing(void) {
  check((h1case){.name = "Content-Length body",
                 .in = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 200 OK\nL Content-Type: text/plain\nL Content-Length: 11\nH 200\n",
                 .body = "hello world", .ka = KA_YES, .status = 200});
  check((h1case){.name = "Content-Length body with NUL and CR LF bytes in it",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\na\0\r\n\r\nb", .n = 45,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 7\nH 200\n",
                 .body = "a\0\r\n\r\nb", .body_n = 7, .ka = KA_YES});
  check((h1case){.name = "Content-Length: 0",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 0\nH 200\n", .ka = KA_YES});
  check((h1case){.name = "header names in any case, values with white space",
                 .in = "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh:\t 3 \t\r\n\r\nabc",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL cOnTeNt-LeNgTh:\t 3 \t\nH 200\n", .body = "abc"});
  check((h1case){.name = "chunked: chunks, extensions, upper case hex, trailers",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n"
                       "1;a=b\r\n \r\n"
                       "00A\r\n0123456789\r\n"
                       "1A ; name=\"v\" ;x\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                       "b\t;z\r\nABCDEFGHIJK\r\n"
                       "0;last\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n",
                 .body = "hello 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJK", .ka = KA_YES, .status = 200});
  check((h1case){.name = "chunked: nothing but the last chunk",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .ka = KA_YES});
  check((h1case){.name = "chunked: case and list of codings",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: gzip, CHUNKED\nH 200\n",
                 .body = "\x1f\x8b", .ka = KA_YES});
  check((h1case){.name = "LF-only line ends, Content-Length",
                 .in = "HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 3\nH 200\n", .body = "abc", .ka = KA_YES});
  check((h1case){.name = "LF-only line ends, chunked",
                 .in = "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n2;x\nde\n0\nT: 1\n\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "abcde"});
  check((h1case){.name = "mixed line ends",
                 .in = "HTTP/1.1 200 OK\nA: 1\r\nTransfer-Encoding: chunked\n\r\n3\r\nabc\n0\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL A: 1\nL Transfer-Encoding: chunked\nH 200\n", .body = "abc"});
  check((h1case){.name = "status line without a reason phrase",
                 .in = "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200\nL Content-Length: 2\nH 200\n", .body = "ok", .status = 200});
  check((h1case){.name = "status line with an empty reason phrase",
                 .in = "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 404 \nL Content-Length: 0\nH 404\n", .status = 404});
  /* where curl refuses a head, h1 does too (the transports agree: docs/http.md) */
  check((h1case){.name = "stray empty lines before the status line (curl: HTTP/0.9)",
                 .in = "\r\n\n\r\nHTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\nx",
                 .rc = BR_H1_ERROR, .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "HTTP/1.2 (curl: unsupported version)", .in = "HTTP/1.2 200 OK\r\nContent-Length: 1\r\n\r\nx",
                 .rc = BR_H1_ERROR, .error = "other than 1.0 and 1.1"});
  check((h1case){.name = "a NUL byte in a header value", .in = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 1\r\n\r\nx",
                 .n = 46, .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\n", .error = "NUL"});
  check((h1case){.name = "a NUL byte in the status line", .in = "HTTP/1.1 200 O\0K\r\nContent-Length: 1\r\n\r\nx", .n = 40,
                 .rc = BR_H1_ERROR, .error = "NUL"});
  check((h1case){.name = "obsolete line folding is kept, not interpreted",
                 .in = "HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\n\tc\r\nContent-Length: 1\r\n\r\nz",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL X-Long: a\nL   b\nL \tc\nL Content-Length: 1\nH 200\n",
                 .body = "z"});
  check((h1case){.name = "empty header value, colon in value",
                 .in = "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: \r\nLocation: http://a:1/b\r\nContent-Length: 1\r\n\r\nz",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 200 OK\nL Access-Control-Allow-Origin: \nL Location: http://a:1/b\nL Content-Length: 1\nH 200\n",
                 .body = "z"});

  /* keep-alive */
  check((h1case){.name = "HTTP/1.0 closes by default",
                 .in = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.0 200 OK\nL Content-Length: 2\nH 200\n", .body = "ok", .ka = KA_NO});
  check((h1case){.name = "HTTP/1.0 with Connection: keep-alive",
                 .in = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.0 200 OK\nL Connection: Keep-Alive\nL Content-Length: 2\nH 200\n",
                 .body = "ok", .ka = KA_YES});
  check((h1case){.name = "HTTP/1.0 keep-alive without a length is close-delimited",
                 .in = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nto the end", .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.0 200 OK\nL Connection: keep-alive\nH 200\n", .body = "to the end",
                 .ka = KA_NO});
  check((h1case){.name = "HTTP/1.1 Connection: close",
                 .in = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Connection: close\nL Content-Length: 2\nH 200\n",
                 .body = "ok", .ka = KA_NO});
  check((h1case){.name = "Connection: close on one line wins over keep-alive on a later one",
                 .in = "HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 200 OK\nL Connection: close\nL Connection: keep-alive\nL Content-Length: 2\nH 200\n",
                 .body = "ok", .ka = KA_NO});
  check((h1case){.name = "Connection: a list with close",
                 .in = "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Connection: Keep-Alive, CLOSE\nL Content-Length: 0\nH 200\n",
                 .ka = KA_NO});
  check((h1case){.name = "Connection: other tokens keep the default",
                 .in = "HTTP/1.1 200 OK\r\nConnection: upgrade, closed\r\nContent-Length: 0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Connection: upgrade, closed\nL Content-Length: 0\nH 200\n",
                 .ka = KA_YES});

  /* close-delimited */
  check((h1case){.name = "no framing: the body runs to the close",
                 .in = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\r\n\r\n0\r\n", .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Type: text/plain\nH 200\n",
                 .body = "until the end\r\n\r\n0\r\n", .ka = KA_NO});
  check((h1case){.name = "no framing, not closed yet",
                 .in = "HTTP/1.1 200 OK\r\n\r\nsome", .rc = BR_H1_MORE, .log = "L HTTP/1.1 200 OK\nH 200\n",
                 .body = "some", .ka = KA_NO});
  check((h1case){.name = "no framing, empty body",
                 .in = "HTTP/1.1 200 OK\r\n\r\n", .eof = 1, .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nH 200\n",
                 .ka = KA_NO});

  /* no body */
  check((h1case){.name = "HEAD: no body despite Content-Length",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", .head = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 1234\nH 200\n", .ka = KA_YES});
  check((h1case){.name = "HEAD: no body despite chunked, the next response follows",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\n", .head = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .used = 47,
                 .ka = KA_YES});
  check((h1case){.name = "HEAD: no body without framing either",
                 .in = "HTTP/1.1 200 OK\r\n\r\n", .head = 1, .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nH 200\n",
                 .ka = KA_YES});
  check((h1case){.name = "204 has no body",
                 .in = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 204 No Content\nL Content-Length: 5\nH 204\n", .used = 46,
                 .ka = KA_YES, .status = 204});
  check((h1case){.name = "304 has no body",
                 .in = "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nETag: \"x\"\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 304 Not Modified\nL Transfer-Encoding: chunked\nL ETag: \"x\"\nH 304\n",
                 .ka = KA_YES, .status = 304});

  /* interim responses */
  check((h1case){.name = "100 Continue, then the response",
                 .in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 100 Continue\nL HTTP/1.1 200 OK\nL Content-Length: 2\nH 200\n",
                 .body = "ok", .ka = KA_YES, .status = 200});
  check((h1case){.name = "100 and 103 Early Hints (with headers that must not count), then the response",
                 .in = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 100 Continue\nL HTTP/1.1 103 Early Hints\nL Link: </a.css>; rel=preload\n"
                        "L Content-Length: 10\nL Connection: close\nL HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n",
                 .body = "abc", .ka = KA_YES, .status = 200});
  check((h1case){.name = "103 with a chunked header, then a Content-Length response",
                 .in = "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 103 Early Hints\nL Transfer-Encoding: chunked\nL HTTP/1.1 200 OK\nL Content-Length: 3\nH 200\n",
                 .body = "xyz", .ka = KA_YES});

  /* conflicting framing */
  check((h1case){.name = "chunked and Content-Length: chunked wins, then close",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                 .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 200 OK\nL Content-Length: 100\nL Transfer-Encoding: chunked\nH 200\n",
                 .body = "abc", .ka = KA_NO});
  check((h1case){.name = "Transfer-Encoding: gzip alone is close-delimited",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00zz", .n = 50, .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: gzip\nH 200\n", .body = "\x1f\x8b\x08\x00zz",
                 .body_n = 6, .ka = KA_NO});
  check((h1case){.name = "Transfer-Encoding: gzip with Content-Length is close-delimited too",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcde", .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: gzip\nL Content-Length: 2\nH 200\n",
                 .body = "abcde", .ka = KA_NO});
  check((h1case){.name = "chunked not last is close-delimited",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n", .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked, gzip\nH 200\n",
                 .body = "3\r\nabc\r\n", .ka = KA_NO});
  check((h1case){.name = "two Transfer-Encoding lines: the last coding counts",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: gzip\nL Transfer-Encoding: chunked\nH 200\n",
                 .body = "q", .ka = KA_YES});
  check((h1case){.name = "the same Content-Length twice",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 3\nL Content-Length: 3\nH 200\n",
                 .body = "abc", .ka = KA_YES});

  /* bytes after the response */
  check((h1case){.name = "bytes after a Content-Length body",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 2\nH 200\n", .body = "ok", .used = 40});
  check((h1case){.name = "bytes after a chunked body",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "ok", .used = 59});
  check((h1case){.name = "bytes after Content-Length: 0",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nX",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 0\nH 200\n", .used = 38});
  check((h1case){.name = "bytes after a 100 Continue and 304",
                 .in = "HTTP/1.1 100 Continue\n\nHTTP/1.1 304 Not Modified\n\nHTTP/1.1 200 OK\n\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 100 Continue\nL HTTP/1.1 304 Not Modified\nH 304\n", .used = 50});
}

static void errors(void) {
  check((h1case){.name = "not HTTP: SSH", .in = "SSH-2.0-OpenSSH_9.6\r\n", .rc = BR_H1_ERROR,
                 .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "HTTP/2 status line", .in = "HTTP/2 200\r\n\r\n", .rc = BR_H1_ERROR,
                 .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "HTTP/1.x without a space", .in = "HTTP/1.1/200 OK\r\n\r\n", .rc = BR_H1_ERROR,
                 .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "lower case http", .in = "http/1.1 200 OK\r\n\r\n", .rc = BR_H1_ERROR,
                 .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "status code with a letter", .in = "HTTP/1.1 2x0 OK\r\n\r\n", .rc = BR_H1_ERROR,
                 .error = "a bad status code"});
  /* any three digits from 100 up are a status, as curl takes them (a 999 is an http_999 error to bench.http) */
  check((h1case){.name = "status code 999", .in = "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n", .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 999 X\nL Content-Length: 0\nH 999\n"});
  check((h1case){.name = "status code 099", .in = "HTTP/1.1 099 X\r\n\r\n", .rc = BR_H1_ERROR, .error = "a bad status code"});
  check((h1case){.name = "status code of four digits", .in = "HTTP/1.1 2000 OK\r\n\r\n", .rc = BR_H1_ERROR,
                 .error = "a bad status code"});
  check((h1case){.name = "status code of two digits", .in = "HTTP/1.1 20 OK\r\n\r\n", .rc = BR_H1_ERROR});
  check((h1case){.name = "header without a colon",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nNoColonHere\r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Content-Length: 0\n", .error = "a header line without a name"});
  check((h1case){.name = "header with an empty name", .in = "HTTP/1.1 200 OK\r\n: value\r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\n", .error = "a header line without a name"});
  /* white space before the colon is invalid but read as if absent (curl does the same) */
  check((h1case){.name = "space before the colon", .in = "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length : 5\nH 200\n", .body = "hello"});
  check((h1case){.name = "tab before the colon", .in = "HTTP/1.1 200 OK\r\nX\t: 5\r\nContent-Length: 0\r\n\r\n",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL X\t: 5\nL Content-Length: 0\nH 200\n"});
  check((h1case){.name = "a line starting with white space (obsolete folding: kept, not read)",
                 .in = "HTTP/1.1 200 OK\r\nX-A: 1\r\n : 5\r\n\r\n",
                 .rc = BR_H1_MORE, .log = "L HTTP/1.1 200 OK\nL X-A: 1\nL  : 5\nH 200\n"});
  check((h1case){.name = "white space at the start of the first header line (curl: no colon)",
                 .in = "HTTP/1.1 200 OK\r\n : 5\r\n\r\n", .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\n",
                 .error = "white space right after the status line"});
  check((h1case){.name = "a list of equal Content-Lengths", .in = "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nL Content-Length: 3, 3\nH 200\n", .body = "abc"});
  check((h1case){.name = "a list of different Content-Lengths", .in = "HTTP/1.1 200 OK\r\nContent-Length: 3,4\r\n\r\nabc",
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\n", .error = "two different Content-Lengths"});
  static const char *const bad_lengths[] = {"12a", "-1", "+1", "1 2", "0x10", "3;3", "1.5", "3,"};
  for (size_t i = 0; i < sizeof bad_lengths / sizeof *bad_lengths; i++) {
    char in[128], name[64];
    snprintf(in, sizeof in, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\nabc", bad_lengths[i]);
    snprintf(name, sizeof name, "bad Content-Length \"%s\"", bad_lengths[i]);
    check((h1case){.name = name, .in = in, .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\n", .error = "a bad Content-Length"});
  }
  check((h1case){.name = "empty Content-Length", .in = "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\n", .error = "an empty Content-Length"});
  check((h1case){.name = "Content-Length out of range",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\n", .error = "out of range"});
  check((h1case){.name = "two different Content-Lengths",
                 .in = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Content-Length: 3\n", .error = "two different Content-Lengths"});
  static const char *const bad_sizes[] = {"zz", "", "-1", "5 x", " 5", "0x5", "5\r", "g"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
    char in[160], name[64];
    snprintf(in, sizeof in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n%s\r\nhello\r\n0\r\n\r\n",
             bad_sizes[i]);
    snprintf(name, sizeof name, "bad chunk size \"%s\"", show(bad_sizes[i], strlen(bad_sizes[i])));
    check((h1case){.name = name, .in = in, .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n",
                   .body = "ok", .error = "a bad chunk size"});
  }
  check((h1case){.name = "chunk size out of range",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1FFFFFFFFFFFFFFFF\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .error = "a chunk size out of range"});
  check((h1case){.name = "chunk data longer than its size",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "abc",
                 .error = "chunk data longer than its size"});
  check((h1case){.name = "chunk data shorter than its size",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n", .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "abc\r\n",
                 .error = "chunk data longer than its size"});
  check((h1case){.name = "101 Switching Protocols",
                 .in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 101 Switching Protocols\nL Upgrade: websocket\nL Connection: Upgrade\n",
                 .error = "101 Switching Protocols"});
}

/* Heads and lines at and past the limits (built, so large: cut in two at a
 * sample of positions). */
static void limits(void) {
  buf in = {0}, log = {0};
  char name[128];
  /* A head of exactly BR_H1_MAX_HEAD bytes (a 1xx head counts too), then one more. */
  for (int extra = 0; extra <= 1; extra++) {
    for (int interim = 0; interim <= 1; interim++) {
      buf_free(&in);
      buf_free(&log);
      if (interim) {
        buf_str(&in, "HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n");
        buf_str(&log, "L HTTP/1.1 100 Continue\nL X-A: 1\n");
      }
      buf_str(&in, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
      buf_str(&log, "L HTTP/1.1 200 OK\nL Content-Length: 2\n");
      /* "X-Pad: aaa\r\n" lines of at most 1000 bytes up to the limit, less the final CR LF */
      size_t want = (size_t)BR_H1_MAX_HEAD + (size_t)extra - 2;
      while (in.len < want) {
        size_t left = want - in.len;
        size_t line = left > 1000 ? 1000 : left;
        if (left > 1000 && left - 1000 < 12) line = 900;   /* the last line must hold "X-Pad: \r\n" */
        size_t at = in.len;
        buf_str(&in, "X-Pad: ");
        for (size_t i = 0; i < line - 9; i++) buf_str(&in, "a");
        buf_str(&log, "L ");
        buf_add(&log, in.p + at, line - 2);
        buf_str(&log, "\n");
        buf_str(&in, "\r\n");
      }
      buf_str(&in, "\r\nok");
      snprintf(name, sizeof name, "head of BR_H1_MAX_HEAD%s bytes%s", extra ? " + 1" : "", interim ? " after a 100 Continue" : "");
      if (extra) {
        /* every line comes through; the empty line that ends the head is one byte too many */
        check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_ERROR, .log = log.p, .sample = 1,
                       .error = "larger than 300 KiB"});
      } else {
        buf_str(&log, "H 200\n");
        check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .log = log.p, .body = "ok", .sample = 1});
      }
    }
  }
  buf_free(&in);
  buf_free(&log);

  /* header lines of BR_H1_MAX_HEAD_LINE bytes and one more (the limit
   * counts the line with its CR, without its LF, as for chunk-size lines) */
  for (int extra = 0; extra <= 1; extra++) {
    buf_str(&in, "HTTP/1.1 200 OK\r\n");
    size_t at = in.len;
    buf_str(&in, "X-Huge: ");
    while (in.len - at < (size_t)BR_H1_MAX_HEAD_LINE - 1 + (size_t)extra) buf_str(&in, "h");
    buf_str(&in, "\r\nContent-Length: 0\r\n\r\n");
    snprintf(name, sizeof name, "a header line of BR_H1_MAX_HEAD_LINE%s bytes", extra ? " + 1" : "");
    if (extra) {
      check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_ERROR, .sample = 1,
                     .log = "L HTTP/1.1 200 OK\n", .error = "longer than 100 KiB"});
    } else {
      buf_free(&log);
      buf_str(&log, "L HTTP/1.1 200 OK\nL ");
      buf_add(&log, in.p + at, (size_t)BR_H1_MAX_HEAD_LINE - 1);
      buf_str(&log, "\nL Content-Length: 0\nH 200\n");
      check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .sample = 1, .log = log.p});
    }
    buf_free(&in);
  }
  buf_free(&log);

  /* BR_H1_MAX_HEADERS header lines (a 1xx head's count too), then one more */
  for (int extra = 0; extra <= 1; extra++) {
    buf_str(&in, "HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
    buf_str(&log, "L HTTP/1.1 100 Continue\nL X-A: 1\nL HTTP/1.1 200 OK\nL Content-Length: 2\n");
    for (int i = 2; i < BR_H1_MAX_HEADERS + extra; i++) {
      buf_str(&in, "a: b\r\n");
      if (i < BR_H1_MAX_HEADERS) buf_str(&log, "L a: b\n");   /* the one too many is not handed out */
    }
    buf_str(&in, "\r\nok");
    snprintf(name, sizeof name, "BR_H1_MAX_HEADERS%s header lines", extra ? " + 1" : "");
    if (extra) {
      check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_ERROR, .sample = 1, .log = log.p,
                     .error = "more than 5000 header lines"});
    } else {
      buf_str(&log, "H 200\n");
      check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .sample = 1, .log = log.p, .body = "ok"});
    }
    buf_free(&in);
    buf_free(&log);
  }

  /* a first line that never ends */
  for (int i = 0; i < BR_H1_MAX_HEAD_LINE + 10; i++) buf_str(&in, "H");
  check((h1case){.name = "endless first line", .in = in.p, .n = in.len, .rc = BR_H1_ERROR, .sample = 1});
  buf_free(&in);

  /* chunk-size lines at and past BR_H1_MAX_LINE (the limit counts the line
   * with its CR, without its LF): a size of leading zeros */
  for (int len = BR_H1_MAX_LINE - 1; len <= BR_H1_MAX_LINE + 1; len++) {
    for (int crlf = 0; crlf <= 1; crlf++) {
      buf_free(&in);
      buf_str(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      int text = len - 1 - crlf;   /* zeros + "3" (+ CR) = len */
      for (int i = 0; i < text; i++) buf_str(&in, "0");
      buf_str(&in, "3");
      buf_str(&in, crlf ? "\r\n" : "\n");
      buf_str(&in, "abc\r\n0\r\n\r\n");
      snprintf(name, sizeof name, "chunk-size line of %d bytes (%s)", len, crlf ? "CR LF" : "LF");
      if (len <= BR_H1_MAX_LINE)
        check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE,
                       .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "abc"});
      else
        check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_ERROR,
                       .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .error = "too long"});
    }
  }
  buf_free(&in);
  /* a chunk-size line far too long, and a trailer line */
  buf_str(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3 * BR_H1_MAX_LINE; i++) buf_str(&in, "0");
  buf_str(&in, "5\r\nhello\r\n0\r\n\r\n");
  check((h1case){.name = "chunk-size line of 3 x BR_H1_MAX_LINE", .in = in.p, .n = in.len, .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .error = "too long"});
  buf_free(&in);
  /* chunk extensions of any length are read past (as curl does): a few
   * lengths around the line limit, the ';' before and after it */
  static const int ext_lens[] = {BR_H1_MAX_LINE - 3, BR_H1_MAX_LINE, BR_H1_MAX_LINE + 1, 3 * BR_H1_MAX_LINE};
  for (size_t e = 0; e < sizeof ext_lens / sizeof *ext_lens; e++) {
    for (int crlf = 0; crlf <= 1; crlf++) {
      buf_str(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;");
      for (int i = 0; i < ext_lens[e]; i++) buf_str(&in, i % 7 ? "x" : ";");
      buf_str(&in, crlf ? "\r\nhello\r\n1;" : "\nhello\r\n1;");
      for (int i = 0; i < ext_lens[e]; i++) buf_str(&in, "y");
      buf_str(&in, "\r\n!\r\n0;z\r\n\r\n");
      snprintf(name, sizeof name, "chunk extensions of %d bytes (%s)", ext_lens[e], crlf ? "CR LF" : "LF");
      check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .sample = 1,
                     .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "hello!"});
      buf_free(&in);
    }
  }
  /* ... but not a size that is too long before its ';' */
  buf_str(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < BR_H1_MAX_LINE + 10; i++) buf_str(&in, "0");
  buf_str(&in, "5;x\r\nhello\r\n0\r\n\r\n");
  check((h1case){.name = "a chunk size too long before its extension", .in = in.p, .n = in.len, .rc = BR_H1_ERROR,
                 .sample = 1, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .error = "too long"});
  buf_free(&in);
  check((h1case){.name = "a trailer line without a colon (curl refuses it)",
                 .in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\nbad trailer\r\n\r\n",
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "q",
                 .error = "trailer line without a colon"});
  buf_str(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\nX-T: ");
  for (int i = 0; i < 2 * BR_H1_MAX_LINE; i++) buf_str(&in, "t");
  buf_str(&in, "\r\n\r\n");
  check((h1case){.name = "trailer line longer than BR_H1_MAX_LINE", .in = in.p, .n = in.len, .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = "q", .error = "too long"});
  buf_free(&in);
}

static void eof_states(void) {
  check((h1case){.name = "eof before anything", .in = "", .eof = 1, .rc = BR_H1_ERROR,
                 .error = "the connection closed before the response"});
  check((h1case){.name = "eof in the status line", .in = "HTTP/1.", .eof = 1, .rc = BR_H1_ERROR,
                 .error = "closed in the response head"});
  check((h1case){.name = "eof after a partial line end", .in = "\r", .eof = 1, .rc = BR_H1_ERROR,
                 .error = "not an HTTP/1.x status line"});
  check((h1case){.name = "eof in the headers", .in = "HTTP/1.1 200 OK\r\nContent-Le", .eof = 1, .rc = BR_H1_ERROR,
                 .log = "L HTTP/1.1 200 OK\n", .error = "closed in the response head"});
  check((h1case){.name = "eof before the empty line", .in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", .eof = 1,
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\nL Content-Length: 2\n", .error = "closed in the response head"});
  check((h1case){.name = "eof after an interim response", .in = "HTTP/1.1 100 Continue\r\n\r\n", .eof = 1,
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 100 Continue\n", .error = "closed in the response head"});
  check((h1case){.name = "eof mid Content-Length body", .in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", .eof = 1,
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\nL Content-Length: 10\nH 200\n", .body = "abc",
                 .error = "closed mid-body"});
  check((h1case){.name = "eof before a Content-Length body", .in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", .eof = 1,
                 .rc = BR_H1_ERROR, .log = "L HTTP/1.1 200 OK\nL Content-Length: 10\nH 200\n", .error = "closed mid-body"});
  static const char *const chunk_ends[] = {"", "5", "5\r", "5\r\n", "5\r\nab", "5\r\nabcde", "5\r\nabcde\r",
                                           "5\r\nabcde\r\n", "5\r\nabcde\r\n0", "5\r\nabcde\r\n0\r\n",
                                           "5\r\nabcde\r\n0\r\nT: 1\r\n", "5\r\nabcde\r\n0\r\n\r"};
  for (size_t i = 0; i < sizeof chunk_ends / sizeof *chunk_ends; i++) {
    char in[160], name[96], body[8] = {0};
    snprintf(in, sizeof in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s", chunk_ends[i]);
    snprintf(name, sizeof name, "eof mid chunked body after \"%s\"", show(chunk_ends[i], strlen(chunk_ends[i])));
    const char *d = strchr(chunk_ends[i], '\n');
    if (d) snprintf(body, sizeof body, "%.5s", d + 1);
    check((h1case){.name = name, .in = in, .eof = 1, .rc = BR_H1_ERROR,
                   .log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n", .body = body, .error = "closed mid-body"});
  }
  check((h1case){.name = "eof ends a close-delimited body", .in = "HTTP/1.1 200 OK\r\n\r\nabc", .eof = 1, .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 200 OK\nH 200\n", .body = "abc", .ka = KA_NO});

  /* after DONE, and twice */
  static const char *const done[] = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                     "HTTP/1.1 204 No Content\r\n\r\n"};
  for (size_t i = 0; i < 3; i++) {
    br_h1 p;
    memset(&p, 0, sizeof p);
    br_h1_init(&p, 0);
    sink s = {0};
    size_t used = 0;
    EXPECT("a complete response", br_h1_feed(&p, done[i], strlen(done[i]), &callbacks, &s, &used) == BR_H1_DONE);
    EXPECT("all of it used", used == strlen(done[i]));
    EXPECT("eof after DONE", br_h1_eof(&p) == BR_H1_DONE);
    EXPECT("eof again", br_h1_eof(&p) == BR_H1_DONE);
    EXPECT("no error", p.error == NULL);
    EXPECT("feeding after DONE takes nothing", br_h1_feed(&p, "xyz", 3, &callbacks, &s, &used) == BR_H1_DONE && used == 0);
    EXPECT("feeding nothing after DONE", br_h1_feed(&p, "", 0, &callbacks, &s, &used) == BR_H1_DONE && used == 0);
    br_h1_free(&p);
    buf_free(&s.log);
    buf_free(&s.body);
  }
  {
    br_h1 p;
    memset(&p, 0, sizeof p);
    br_h1_init(&p, 0);
    sink s = {0};
    size_t used = 1;
    EXPECT("nothing fed", br_h1_feed(&p, "", 0, &callbacks, &s, &used) == BR_H1_MORE && used == 0);
    EXPECT("not started", !br_h1_started(&p) && !br_h1_head_complete(&p));
    const char *in = "HTTP/1.1 200 OK\r\n\r\nab";
    EXPECT("close-delimited", br_h1_feed(&p, in, strlen(in), &callbacks, &s, &used) == BR_H1_MORE);
    EXPECT("started, head complete", br_h1_started(&p) && br_h1_head_complete(&p));
    EXPECT("eof ends it", br_h1_eof(&p) == BR_H1_DONE);
    EXPECT("eof again", br_h1_eof(&p) == BR_H1_DONE);
    EXPECT("feeding after it", br_h1_feed(&p, "c", 1, &callbacks, &s, &used) == BR_H1_DONE && used == 0);
    EXPECT("body", s.body.len == 2 && memcmp(s.body.p, "ab", 2) == 0);
    br_h1_free(&p);
    buf_free(&s.log);
    buf_free(&s.body);
  }
}

static void stops(void) {
  const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
  const char *cl_log = "L HTTP/1.1 200 OK\nL Content-Length: 5\nH 200\n";
  /* each callback, stopping and going on: the same result as without the stop */
  check((h1case){.name = "stop at the status line", .in = cl, .rc = BR_H1_DONE, .log = cl_log, .body = "hello",
                 .used = 43, .stop_line = 1, .resume = 1, .stop_at = 17, .head_complete = 2});
  check((h1case){.name = "stop at a header line", .in = cl, .rc = BR_H1_DONE, .log = cl_log, .body = "hello",
                 .used = 43, .stop_line = 2, .resume = 1, .stop_at = 36, .head_complete = 2});
  check((h1case){.name = "stop at head_done", .in = cl, .rc = BR_H1_DONE, .log = cl_log, .body = "hello",
                 .used = 43, .stop_head = 1, .resume = 1, .stop_at = 38, .head_complete = 1});
  check((h1case){.name = "stop at the body", .in = cl, .rc = BR_H1_DONE, .log = cl_log, .body = "hello",
                 .used = 43, .stop_body = 1, .resume = 1, .stop_at = -1, .head_complete = 1});
  /* stopping for good */
  check((h1case){.name = "stop at the status line for good", .in = cl, .rc = BR_H1_STOP, .log = "L HTTP/1.1 200 OK\n",
                 .used = 17, .stop_line = 1, .stop_at = 17});
  check((h1case){.name = "stop at head_done for good", .in = cl, .rc = BR_H1_STOP, .log = cl_log, .used = 38,
                 .stop_head = 1, .stop_at = 38, .head_complete = 1});
  check((h1case){.name = "stop at the body for good", .in = cl, .rc = BR_H1_STOP, .log = cl_log, .body = "hello",
                 .stop_body = 1, .stop_at = -1});

  const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x\r\nabc\r\n0\r\n\r\nNEXT";
  const char *ch_log = "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n";
  for (int k = 1; k <= 2; k++) {
    char name[64];
    snprintf(name, sizeof name, "chunked: stop at body call %d and go on", k);
    check((h1case){.name = name, .in = ch, .rc = BR_H1_DONE, .log = ch_log, .body = "helloabc", .used = 72,
                   .stop_body = k, .resume = 1, .stop_at = -1});
  }
  check((h1case){.name = "chunked: stop at the body for good", .in = ch, .rc = BR_H1_STOP, .log = ch_log, .body = "helloabc",
                 .stop_body = 1, .stop_at = -1});
  check((h1case){.name = "chunked: stop at head_done and go on", .in = ch, .rc = BR_H1_DONE, .log = ch_log,
                 .body = "helloabc", .used = 72, .stop_head = 1, .resume = 1, .stop_at = 47, .head_complete = 1});
  /* head_done stopping a response without a body: it is complete */
  check((h1case){.name = "204: stop at head_done and go on", .in = "HTTP/1.1 204 No Content\r\n\r\nNEXT", .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 204 No Content\nH 204\n", .used = 27, .stop_head = 1, .resume = 1, .stop_at = 27,
                 .head_complete = 1});
  check((h1case){.name = "close-delimited: stop at the body and go on", .in = "HTTP/1.1 200 OK\r\n\r\nabcdef", .eof = 1,
                 .rc = BR_H1_DONE, .log = "L HTTP/1.1 200 OK\nH 200\n", .body = "abcdef", .stop_body = 1, .resume = 1,
                 .stop_at = -1});
  check((h1case){.name = "interim: stop at the 100's status line and go on",
                 .in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", .rc = BR_H1_DONE,
                 .log = "L HTTP/1.1 100 Continue\nL HTTP/1.1 200 OK\nL Content-Length: 1\nH 200\n", .body = "x",
                 .stop_line = 1, .resume = 1, .stop_at = 23});
}

/* One parser, several responses on one connection. */
static void reuse(void) {
  const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
  size_t n = strlen(two), first = 43, second = 43 + 60;
  br_h1 p;
  memset(&p, 0, sizeof p);
  br_h1_init(&p, 0);
  EXPECT("no line buffer yet", p.line == NULL && p.line_cap == 0);
  sink s = {0};
  size_t used;
  /* the status line cut in two: the first part is kept in the line buffer */
  EXPECT("first read", br_h1_feed(&p, two, 10, &callbacks, &s, &used) == BR_H1_MORE && used == 10);
  EXPECT("a line buffer", p.line != NULL && p.line_cap > 0 && p.line_len == 10);
  EXPECT("first response", br_h1_feed(&p, two + 10, n - 10, &callbacks, &s, &used) == BR_H1_DONE);
  EXPECT("first response ends at its body's end", used == first - 10);
  EXPECT("keep-alive", p.keep_alive == 1);
  char *line = p.line;
  size_t cap = p.line_cap;

  br_h1_init(&p, 0);
  EXPECT("init keeps the line buffer", p.line == line && p.line_cap == cap && p.line_len == 0);
  EXPECT("init resets the rest", p.status == 0 && p.body_bytes == 0 && p.content_length == -1 && !br_h1_started(&p) &&
                                     !br_h1_head_complete(&p) && p.error == NULL && p.chunked == 0);
  EXPECT("second, in part", br_h1_feed(&p, two + first, 5, &callbacks, &s, &used) == BR_H1_MORE && used == 5);
  EXPECT("second response", br_h1_feed(&p, two + first + 5, n - first - 5, &callbacks, &s, &used) == BR_H1_DONE);
  EXPECT("second response ends after its last chunk", used == second - first - 5);
  EXPECT("the same line buffer", p.line == line && p.line_cap == cap);

  /* a HEAD request next on the same parser */
  br_h1_init(&p, 1);
  EXPECT("third (HEAD)", br_h1_feed(&p, two + second, n - second, &callbacks, &s, &used) == BR_H1_DONE && used == n - second);
  EXPECT("third: no body", p.body_bytes == 0 && p.no_body == 1);
  EXPECT("the log of all three",
         strcmp(buf_cstr(&s.log), "L HTTP/1.1 200 OK\nL Content-Length: 5\nH 200\n"
                                  "L HTTP/1.1 200 OK\nL Transfer-Encoding: chunked\nH 200\n"
                                  "L HTTP/1.1 200 OK\nL Content-Length: 9\nH 200\n") == 0);
  EXPECT("the bodies of all three", s.body.len == 8 && memcmp(s.body.p, "helloabc", 8) == 0);

  /* a parser left mid-line (after an error or a dropped connection) starts clean */
  br_h1_init(&p, 0);
  const char *partial = "HTTP/1.1 200 OK\r\nX-Partial-Hea";
  EXPECT("partial", br_h1_feed(&p, partial, strlen(partial), &callbacks, &s, &used) == BR_H1_MORE && p.line_len > 0);
  EXPECT("eof mid-head", br_h1_eof(&p) == BR_H1_ERROR && p.error != NULL);
  br_h1_init(&p, 0);
  buf_free(&s.log);
  buf_free(&s.body);
  const char *next = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
  for (size_t i = 0; i < strlen(next); i++) {
    int rc = br_h1_feed(&p, next + i, 1, &callbacks, &s, &used);
    EXPECT("byte by byte", rc == (i + 1 == strlen(next) ? BR_H1_DONE : BR_H1_MORE) && used == 1);
  }
  EXPECT("nothing of the old line", strcmp(buf_cstr(&s.log), "L HTTP/1.1 200 OK\nL Content-Length: 1\nH 200\n") == 0);

  br_h1_free(&p);
  EXPECT("free releases the line buffer", p.line == NULL && p.line_cap == 0 && p.line_len == 0);
  br_h1_free(&p);   /* twice is harmless */

  /* init after free: a new buffer when needed */
  br_h1_init(&p, 0);
  buf_free(&s.log);
  buf_free(&s.body);
  EXPECT("after free", br_h1_feed(&p, two, 20, &callbacks, &s, &used) == BR_H1_MORE && p.line != NULL);
  EXPECT("after free, done", br_h1_feed(&p, two + 20, n - 20, &callbacks, &s, &used) == BR_H1_DONE && used == first - 20);
  br_h1_free(&p);
  buf_free(&s.log);
  buf_free(&s.body);
}

/* The llama-server captures as the server sends them: the SSE body in a
 * chunked response, chunks of random sizes (llama-server writes one chunk
 * per event; any sizes must do). */
static void sse_fixture(const char *file, int all_cuts) {
  char path[512];
  size_t head_n, body_n;
  snprintf(path, sizeof path, "%s/llama-server/chat-stream.headers", FIXTURES_DIR);
  char *head = read_file(path, &head_n);
  snprintf(path, sizeof path, "%s/llama-server/%s", FIXTURES_DIR, file);
  char *body = read_file(path, &body_n);
  if (!head || !body || body_n == 0) {
    failures++;
    fprintf(stderr, "FAIL cannot read the fixture %s\n", path);
    free(head);
    free(body);
    return;
  }
  /* the expected lines: the head's, then head_done */
  buf log = {0};
  for (const char *l = head; *l;) {
    const char *e = strchr(l, '\n');
    size_t len = e ? (size_t)(e - l) : strlen(l);
    size_t k = len && l[len - 1] == '\r' ? len - 1 : len;
    if (k == 0) break;
    buf_str(&log, "L ");
    buf_add(&log, l, k);
    buf_str(&log, "\n");
    l += len + (e ? 1 : 0);
  }
  buf_str(&log, "H 200\n");

  for (int v = 0; v < 3; v++) {
    buf in = {0};
    buf_add(&in, head, head_n);
    size_t at = 0;
    while (at < body_n) {
      size_t k = v == 0 ? 1 + next_rand() % 700 : v == 1 ? 1 + next_rand() % 9 : 200 + next_rand() % 3000;
      if (k > body_n - at) k = body_n - at;
      char size[64];
      int hex_case = next_rand() % 2;
      snprintf(size, sizeof size, hex_case ? "%zX" : "%zx", k);
      buf_str(&in, size);
      if (next_rand() % 4 == 0) buf_str(&in, ";ext=\"1\"");
      buf_str(&in, "\r\n");
      buf_add(&in, body + at, k);
      buf_str(&in, "\r\n");
      at += k;
    }
    buf_str(&in, v == 2 ? "0\r\nX-Timings: 1\r\n\r\n" : "0\r\n\r\n");
    char name[128];
    snprintf(name, sizeof name, "%s in a chunked response (variant %d)", file, v);
    check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .log = log.p, .body = body, .body_n = body_n,
                   .ka = KA_YES, .status = 200, .sample = !(all_cuts && v == 0)});
    buf_free(&in);
  }

  /* the same body with a Content-Length, and close-delimited */
  {
    buf in = {0}, log2 = {0};
    char h[128];
    snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %zu\r\n\r\n", body_n);
    buf_str(&in, h);
    buf_add(&in, body, body_n);
    buf_printf(&log2, "L HTTP/1.1 200 OK\nL Content-Type: text/event-stream\nL Content-Length: %zu\nH 200\n", body_n);
    char name[128];
    snprintf(name, sizeof name, "%s with a Content-Length", file);
    check((h1case){.name = name, .in = in.p, .n = in.len, .rc = BR_H1_DONE, .log = log2.p, .body = body, .body_n = body_n,
                   .ka = KA_YES, .sample = 1});
    buf_free(&in);
    buf_free(&log2);
    buf_str(&in, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
    buf_add(&in, body, body_n);
    snprintf(name, sizeof name, "%s to the close", file);
    check((h1case){.name = name, .in = in.p, .n = in.len, .eof = 1, .rc = BR_H1_DONE,
                   .log = "L HTTP/1.1 200 OK\nL Content-Type: text/event-stream\nL Connection: close\nH 200\n", .body = body,
                   .body_n = body_n, .ka = KA_NO, .sample = 1});
    buf_free(&in);
  }
  buf_free(&log);
  free(head);
  free(body);
}

int main(void) {
  framing();
  errors();
  limits();
  eof_states();
  stops();
  reuse();
  sse_fixture("chat-stream.sse", 1);
  sse_fixture("completions-stream.sse", 0);
  sse_fixture("native-completion-stream.sse", 0);

  if (failures) {
    fprintf(stderr, "test_h1: %d failure(s) (%d cases, %ld runs of the parser, %d other checks)\n", failures, cases, runs,
            asserts);
    return 1;
  }
  printf("test_h1: all passed (%d cases, %ld runs of the parser; %d other checks)\n", cases, runs, asserts);
  return 0;
}
