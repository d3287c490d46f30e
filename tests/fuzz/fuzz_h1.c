/* Fuzz target for the HTTP/1.1 response parser (h1.c). The first byte
 * picks where the rest is cut in two (its low 7 bits, scaled to the length)
 * and whether the request was a HEAD (its top bit); the rest is what the
 * server sent. It is parsed as a client on a kept-alive connection would:
 * after BR_H1_DONE the parser is initialised again for the bytes that
 * follow (up to 8 responses); after BR_H1_ERROR feeding stops; when the
 * bytes run out, br_h1_eof.
 *
 * Besides "no crash, no leak, no UB" it checks: *used never passes the bytes
 * given and BR_H1_MORE takes them all; body bytes are handed out in place,
 * never before head_done, never for HEAD, 204 or 304, and never more than a
 * Content-Length that frames the body (exactly that many at BR_H1_DONE);
 * BR_H1_ERROR comes with an error; and the input fed in two pieces, byte by
 * byte and whole gives the same lines, head_done calls, body bytes, ends of
 * responses and result.
 *
 * Built with clang -fsanitize=fuzzer as `fuzz_h1` (libFuzzer's main), or
 * with -DFUZZ_REPLAY_MAIN as `fuzz_h1_replay`: a plain program that runs
 * built-in seeds, the files given, and a few thousand pseudo-random
 * responses, for compilers without libFuzzer. */
#include "h1.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_RESPONSES = 8 };

typedef struct { char *p; size_t len, cap; } buf;

static void buf_add(buf *b, const void *s, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) abort();
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_num(buf *b, const char *tag, unsigned long long v) {
  char t[48];
  int k = snprintf(t, sizeof t, "%s%llu\n", tag, v);
  buf_add(b, t, (size_t)k);
}

static void buf_free(buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "fuzz_h1: %s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                           \
    }                                                                                    \
  } while (0)

typedef struct {
  buf log;                 /* lines, head_done calls, ends of responses, the result */
  buf body;                /* body bytes of every response */
  const br_h1 *p;
  int heads;               /* head_done calls in the current response */
  uint64_t body_now;       /* body bytes of the current response */
  const char *base;        /* the read being fed */
  size_t base_len;
} sink;

/* Whether the current response's body is framed by its Content-Length. */
static int length_framed(const br_h1 *p) {
  return !p->no_body && p->status != 204 && p->status != 304 && p->chunked == 0 && p->content_length >= 0;
}

static int on_line(void *ud, const char *l, size_t n) {
  sink *s = ud;
  CHECK(n > 0);
  CHECK(!memchr(l, '\n', n));
  CHECK(s->heads == 0);
  buf_str(&s->log, "L ");
  buf_add(&s->log, l, n);
  buf_str(&s->log, "\n");
  return 0;
}

static int on_head(void *ud, int status) {
  sink *s = ud;
  CHECK(s->heads == 0);
  CHECK(status >= 200 && status <= 999);
  CHECK(status == s->p->status);
  CHECK(br_h1_head_complete(s->p));
  s->heads++;
  buf_num(&s->log, "H ", (unsigned long long)status);
  return 0;
}

static int on_body(void *ud, const char *b, size_t n) {
  sink *s = ud;
  const br_h1 *p = s->p;
  CHECK(n > 0);
  CHECK(s->heads == 1);
  CHECK(!p->no_body && p->status != 204 && p->status != 304);
  uintptr_t a = (uintptr_t)b, base = (uintptr_t)s->base;   /* in place, inside the read */
  CHECK(a >= base && n <= s->base_len && a - base <= s->base_len - n);
  s->body_now += n;
  if (length_framed(p)) CHECK(s->body_now <= (uint64_t)p->content_length);
  buf_add(&s->body, b, n);   /* reads every byte: ASan sees any overrun */
  return 0;
}

static const br_h1_callbacks callbacks = {on_line, on_head, on_body};

/* A response ended with BR_H1_DONE. */
static void response_done(sink *s, const br_h1 *p, size_t end) {
  CHECK(s->heads == 1);
  CHECK(br_h1_head_complete(p) && br_h1_started(p));
  CHECK(p->status >= 200 && p->status <= 999);
  CHECK(p->body_bytes == s->body_now);
  CHECK(p->error == NULL);
  if (p->no_body || p->status == 204 || p->status == 304) CHECK(s->body_now == 0);
  else if (length_framed(p)) CHECK(s->body_now == (uint64_t)p->content_length);
  buf_num(&s->log, "D ", (unsigned long long)end);
}

/* Parse in[0..n) fed in reads ending at ends[0..nends). */
static int drive(const uint8_t *in, size_t n, const size_t *ends, size_t nends, int head, sink *s) {
  br_h1 p;
  memset(&p, 0, sizeof p);
  br_h1_init(&p, head);
  s->p = &p;
  int rc = BR_H1_MORE, responses = 0, next = 0;   /* next: a response ended; init before the next byte */
  size_t off = 0;
  for (size_t k = 0; k < nends && rc == BR_H1_MORE; k++) {
    size_t len = ends[k] - off;
    char *piece = malloc(len ? len : 1);   /* a private copy per read: nothing may outlive it */
    memcpy(piece, in + off, len);
    s->base = piece;
    s->base_len = len;
    size_t at = 0;
    while (rc == BR_H1_MORE && (at < len || (!next && len == 0))) {
      if (next) {
        br_h1_init(&p, head);
        s->heads = 0;
        s->body_now = 0;
        next = 0;
      }
      size_t used = (size_t)-1;
      rc = br_h1_feed(&p, piece + at, len - at, &callbacks, s, &used);
      CHECK(used <= len - at);
      CHECK(rc == BR_H1_MORE || rc == BR_H1_DONE || rc == BR_H1_ERROR);   /* the callbacks never stop */
      if (rc == BR_H1_MORE) CHECK(used == len - at);
      if (rc == BR_H1_ERROR) CHECK(p.error != NULL);
      if (len - at) CHECK(br_h1_started(&p));
      CHECK(p.body_bytes == s->body_now);
      at += used;
      if (rc == BR_H1_DONE) {
        response_done(s, &p, off + at);
        if (++responses < MAX_RESPONSES) {
          rc = BR_H1_MORE;
          next = 1;
        }
      }
      if (len == 0) break;
    }
    memset(piece, 0xA5, len);
    free(piece);
    off = ends[k];
  }
  if (rc == BR_H1_MORE) {
    /* the connection closes: after a complete response (next) that is fine */
    rc = br_h1_eof(&p);
    if (next) CHECK(rc == BR_H1_DONE);
    else if (rc == BR_H1_DONE) response_done(s, &p, n);
    else CHECK(rc == BR_H1_ERROR && p.error != NULL);
    CHECK(br_h1_eof(&p) == rc);   /* and again: the same */
  }
  buf_num(&s->log, "R ", (unsigned long long)rc);
  br_h1_free(&p);
  CHECK(p.line == NULL);
  return rc;
}

static int same(const buf *a, const buf *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int head = data[0] >> 7;
  size_t n = size - 1;
  size_t cut = (size_t)((uint64_t)(data[0] & 0x7f) * n / 127);
  const uint8_t *in = data + 1;

  sink two, bytes, whole;
  memset(&two, 0, sizeof two);
  memset(&bytes, 0, sizeof bytes);
  memset(&whole, 0, sizeof whole);

  size_t ends2[2] = {cut, n};
  int rc2 = drive(in, n, ends2, 2, head, &two);

  size_t *ends = malloc((n ? n : 1) * sizeof *ends);
  for (size_t i = 0; i < n; i++) ends[i] = i + 1;
  int rcb = drive(in, n, ends, n, head, &bytes);
  free(ends);

  size_t endw[1] = {n};
  int rcw = drive(in, n, endw, 1, head, &whole);

  if (rc2 != rcb || rc2 != rcw || !same(&two.log, &bytes.log) || !same(&two.log, &whole.log) ||
      !same(&two.body, &bytes.body) || !same(&two.body, &whole.body)) {
    fprintf(stderr, "fuzz_h1: cut at %zu, byte by byte and whole disagree (results %d %d %d, body %zu %zu %zu bytes)\n",
            cut, rc2, rcb, rcw, two.body.len, bytes.body.len, whole.body.len);
    fprintf(stderr, "-- cut at %zu:\n%.*s\n-- byte by byte:\n%.*s\n-- whole:\n%.*s\n", cut, (int)two.log.len,
            two.log.p ? two.log.p : "", (int)bytes.log.len, bytes.log.p ? bytes.log.p : "", (int)whole.log.len,
            whole.log.p ? whole.log.p : "");
    abort();
  }
  buf_free(&two.log);
  buf_free(&two.body);
  buf_free(&bytes.log);
  buf_free(&bytes.body);
  buf_free(&whole.log);
  buf_free(&whole.body);
  return 0;
}

#ifdef FUZZ_REPLAY_MAIN
static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static int runs;

/* Run one stream with several first bytes (cuts, HEAD or not). */
static void run_stream(const char *s, size_t n) {
  uint8_t *p = malloc(n + 1);
  memcpy(p + 1, s, n);
  static const uint8_t firsts[] = {0, 1, 17, 40, 63, 64, 90, 126, 127, 128, 191, 255};
  for (size_t i = 0; i < sizeof firsts; i++) {
    p[0] = firsts[i];
    LLVMFuzzerTestOneInput(p, n + 1);
    runs++;
  }
  free(p);
}

static const char *pick(const char *const *a, size_t n) { return a[next_rand() % n]; }
#define PICK(a) pick(a, sizeof a / sizeof *a)

/* A plausible response (or several), now and then damaged. */
static void gen_response(buf *b) {
  static const char *const eols[] = {"\r\n", "\r\n", "\r\n", "\n"};
  static const char *const statuses[] = {"200 OK", "200", "201 Created", "204 No Content", "304 Not Modified",
                                         "404 Not Found", "500 Internal Server Error", "503 ", "101 Switching Protocols",
                                         "2x0 OK", "999 X"};
  static const char *const headers[] = {"Content-Type: text/event-stream", "Connection: close", "Connection: keep-alive",
                                        "Keep-Alive: timeout=5", "Server: llama.cpp", "X-Empty:", "Transfer-Encoding: gzip",
                                        " folded", "Bad Header", "Content-Length : 3", "Content-Length: 3",
                                        "Content-Length: x", "Access-Control-Allow-Origin: "};
  const char *eol = PICK(eols);
  if (next_rand() % 8 == 0) buf_str(b, eol);
  if (next_rand() % 5 == 0) {
    buf_str(b, next_rand() % 2 ? "HTTP/1.1 100 Continue" : "HTTP/1.1 103 Early Hints");
    buf_str(b, eol);
    if (next_rand() % 2) { buf_str(b, "Link: </x.css>; rel=preload"); buf_str(b, eol); }
    buf_str(b, eol);
  }
  buf_str(b, next_rand() % 4 ? "HTTP/1.1 " : "HTTP/1.0 ");
  buf_str(b, next_rand() % 3 ? "200 OK" : PICK(statuses));
  buf_str(b, eol);
  int nh = (int)(next_rand() % 4);
  for (int i = 0; i < nh; i++) {
    buf_str(b, PICK(headers));
    buf_str(b, PICK(eols));
  }
  char body[400];
  size_t bn = next_rand() % 300;
  for (size_t i = 0; i < bn; i++)
    body[i] = next_rand() % 4 ? (char)('a' + next_rand() % 26) : "\r\n:;0\x00"[next_rand() % 6];
  char line[64];
  switch (next_rand() % 5) {
  case 0:   /* Content-Length */
    snprintf(line, sizeof line, "Content-Length: %zu", bn);
    buf_str(b, line);
    buf_str(b, eol);
    buf_str(b, eol);
    buf_add(b, body, bn);
    break;
  case 1:
  case 2: {   /* chunked, maybe with a Content-Length too */
    if (next_rand() % 6 == 0) { buf_str(b, "Content-Length: 7"); buf_str(b, eol); }
    buf_str(b, next_rand() % 8 ? "Transfer-Encoding: chunked" : "Transfer-Encoding: gzip, chunked");
    buf_str(b, eol);
    buf_str(b, eol);
    size_t at = 0;
    while (at < bn) {
      size_t k = 1 + next_rand() % 64;
      if (k > bn - at) k = bn - at;
      snprintf(line, sizeof line, next_rand() % 2 ? "%zx" : "%zX", k);
      buf_str(b, line);
      if (next_rand() % 4 == 0) buf_str(b, ";a=b");
      buf_str(b, PICK(eols));
      buf_add(b, body + at, k);
      buf_str(b, PICK(eols));
      at += k;
    }
    buf_str(b, "0");
    buf_str(b, eol);
    if (next_rand() % 4 == 0) { buf_str(b, "X-Trailer: 1"); buf_str(b, eol); }
    buf_str(b, eol);
    break;
  }
  default:   /* no framing */
    buf_str(b, eol);
    buf_add(b, body, bn);
    break;
  }
}

int main(int argc, char **argv) {
  static const char *const seeds[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;a=b\r\n \r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nto the close",
    "HTTP/1.1 200 OK\nContent-Length: 3\n\nabcHTTP/1.1 204 No Content\n\nHTTP/1.1 304 Not Modified\n\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "SSH-2.0-OpenSSH_9.6\r\n",
    "HTTP/2 200\r\n\r\n",
    "\r\n\r\nHTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
  };
  for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) run_stream(seeds[i], strlen(seeds[i]));

  /* files given on the command line: an .sse body is sent chunked, anything else as it is */
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) { fprintf(stderr, "fuzz_h1_replay: cannot open %s\n", argv[i]); return 1; }
    char *p = malloc(1 << 20);
    size_t n = fread(p, 1, 1 << 20, f);
    fclose(f);
    size_t len = strlen(argv[i]);
    if (len > 4 && strcmp(argv[i] + len - 4, ".sse") == 0) {
      buf b = {0};
      buf_str(&b, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (size_t at = 0; at < n;) {
        size_t k = 1 + (at * 7919) % 500;
        if (k > n - at) k = n - at;
        char line[32];
        snprintf(line, sizeof line, "%zx\r\n", k);
        buf_str(&b, line);
        buf_add(&b, p + at, k);
        buf_str(&b, "\r\n");
        at += k;
      }
      buf_str(&b, "0\r\n\r\n");
      run_stream(b.p, b.len);
      buf_free(&b);
    } else {
      run_stream(p, n);
    }
    free(p);
  }

  /* heads past the limits */
  {
    buf b = {0};
    buf_str(&b, "HTTP/1.1 200 OK\r\n");
    while (b.len < (size_t)BR_H1_MAX_HEAD + 100) buf_str(&b, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    buf_str(&b, "\r\n");
    run_stream(b.p, b.len);
    buf_free(&b);
    buf_str(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    for (int i = 0; i < BR_H1_MAX_LINE; i++) buf_str(&b, "x");
    buf_str(&b, "\r\nz\r\n0\r\n\r\n");
    run_stream(b.p, b.len);
    buf_free(&b);
  }

  /* pseudo-random: plausible responses, damaged now and then, or atom soup */
  static const char *const atoms[] = {
    "HTTP/1.1 ", "HTTP/1.0 ", "HTTP/2 ", "200", "204", "304", "100", "101", "103", " OK", "\r\n", "\n", "\r",
    "Content-Length: ", "content-length:", "Transfer-Encoding: ", "chunked", "gzip", ", ", "Connection: ", "close",
    "keep-alive", "0", "5", "12", "a", "F", "ffffffffffffffffff", ";ext=1", "\r\n\r\n", "0\r\n\r\n", "X-T: y",
    "data: {}\n\n", "hello", " ", ":", "\t"};
  uint8_t *in = malloc(16384);
  for (int it = 0; it < 4000; it++) {
    buf b = {0};
    uint8_t first = (uint8_t)next_rand();
    buf_add(&b, &first, 1);
    if (it % 2 == 0) {
      int count = 1 + (int)(next_rand() % 3);
      for (int r = 0; r < count; r++) gen_response(&b);
      int damage = next_rand() % 3 == 0 ? 1 + (int)(next_rand() % 3) : 0;
      for (int d = 0; d < damage && b.len > 1; d++) b.p[1 + next_rand() % (b.len - 1)] = (char)next_rand();
      if (next_rand() % 5 == 0 && b.len > 1) b.len = 1 + next_rand() % (b.len - 1);   /* cut short */
    } else {
      int parts = 1 + (int)(next_rand() % 60);
      for (int k = 0; k < parts; k++) {
        if (next_rand() % 6 == 0) {
          uint8_t c = (uint8_t)next_rand();
          buf_add(&b, &c, 1);
        } else {
          buf_str(&b, PICK(atoms));
        }
      }
    }
    size_t n = b.len < 16384 ? b.len : 16384;
    memcpy(in, b.p, n);
    buf_free(&b);
    LLVMFuzzerTestOneInput(in, n);
    runs++;
  }
  free(in);
  printf("fuzz_h1_replay: %d inputs, no failure\n", runs);
  return 0;
}
#endif
