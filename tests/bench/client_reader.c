/* The floor for the client benchmark (tools/bench-client.sh): a minimal
 * streaming reader on benchrun's own event loop, with no curl, no Lua and
 * no JSON. It opens N connections to `benchrun sim`, sends one streamed
 * chat request on each, and per read takes a timestamp, counts token events
 * and reads each event's "sim_ns" to measure its own lateness. One read()
 * per wake-up (a short read means the socket is drained), stamped with the
 * time poll returned: the least a client can do per event. Whatever
 * bench.http + bench.openai cost above this is the price of the real client.
 *
 *   bench_client_reader PORT STREAMS TOKENS [ROUNDS]
 * (each stream sends ROUNDS requests, one after another, on its connection)
 * prints one JSON line with the same fields as tests/bench/client_bench.lua.
 * START_GAP_US=G (an experiment, not part of tools/bench-client.sh): send
 * each first request as soon as its connection is up and wait G µs before
 * the next, so the streams start spread as a client that does work per
 * request starts them (docs/http.md, "Why the paced ratio depends on the
 * load"); by default all connect first and all send in one loop pass. */
#include "benchrun/loop.h"
#include "platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct stream {
  br_io io;
  int fd, sent, done, rounds;
  char req[512];
  size_t reqlen;
  char *carry;        /* the unfinished end of the last read (rare when paced) */
  size_t ncarry, capcarry;
  int64_t *lag;   /* arrival - sim_ns per token event */
  size_t nlag, caplag;
  long tokens;
} stream;

static int remaining;
static long total_tokens;
/* One read buffer for every stream, as bench.http has: per-stream buffers
 * of this size would spread the reads over megabytes of cache. */
static char rbuf[65536];

static int64_t parse_digits(const char *p, const char *end, int *ok) {
  int64_t v = 0;
  const char *s = p;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  *ok = p > s && p < end;   /* digits that end inside the buffer */
  return v;
}

/* Scan whole events in buf[0..n); return how many bytes were consumed. */
static size_t scan(stream *s, const char *buf, size_t n, int64_t now) {
  const char *end = buf + n, *last = NULL;
  for (const char *p = buf; p + 1 < end; p++) {   /* the last "\n\n" ends the whole events */
    p = memchr(p, '\n', (size_t)(end - p - 1));
    if (!p) break;
    if (p[1] == '\n') last = p + 2;
  }
  if (!last) return 0;
  static const char pat[] = "\"content\":\"";
  const char *p = buf;
  while ((p = memmem(p, (size_t)(last - p), pat, sizeof pat - 1))) {
    p += sizeof pat - 1;
    if (p >= last || *p == '"') continue;   /* an empty content (the role chunk) */
    s->tokens++;
    const char *q = memmem(p, (size_t)(last - p), "\"sim_ns\":", 9);
    if (!q) continue;
    int ok;
    int64_t sim = parse_digits(q + 9, last, &ok);
    if (!ok) continue;
    if (s->nlag == s->caplag) {
      s->caplag = s->caplag ? s->caplag * 2 : 512;
      s->lag = realloc(s->lag, s->caplag * sizeof *s->lag);
    }
    s->lag[s->nlag++] = now - sim;
  }
  if (memmem(buf, (size_t)(last - buf), "[DONE]", 6)) s->done = 1;
  return (size_t)(last - buf);
}

static void on_io(br_loop *loop, br_io *io, int events) {
  stream *s = io->data;
  if (!s->sent) {
    ssize_t w = send(s->fd, s->req, s->reqlen, 0);
    if (w != (ssize_t)s->reqlen) { fprintf(stderr, "send: %s\n", strerror(errno)); exit(1); }
    s->sent = 1;
    br_io_start(loop, io, s->fd, BR_READ, on_io, s);
    return;
  }
  for (;;) {
    if (s->ncarry >= sizeof rbuf / 2) s->ncarry = 0;   /* an absurd event: drop it */
    memcpy(rbuf, s->carry, s->ncarry);   /* usually nothing */
    size_t room = sizeof rbuf - s->ncarry;
    ssize_t r = read(s->fd, rbuf + s->ncarry, room);
    int64_t now = br_loop_event_time(loop);   /* when poll returned, as bench.http stamps */
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) break;
    size_t have = s->ncarry + (size_t)r, used = s->done ? 0 : scan(s, rbuf, have, now);
    /* After [DONE], the end of the chunked body; then the next round on
     * the same connection, as a keep-alive client would. */
    int ended = s->done && memmem(rbuf + used, have - used, "0\r\n\r\n", 5);
    s->ncarry = ended ? 0 : have - used;
    if (s->ncarry > s->capcarry) {
      s->capcarry = s->ncarry * 2;
      s->carry = realloc(s->carry, s->capcarry);
    }
    memcpy(s->carry, rbuf + used, s->ncarry);
    if (ended) {
      if (--s->rounds <= 0) break;
      s->done = 0;
      if (send(s->fd, s->req, s->reqlen, 0) != (ssize_t)s->reqlen) { perror("send"); exit(1); }
    }
    if ((size_t)r < room) return;   /* a short read: drained, no second read() to hear EAGAIN */
  }
  br_io_stop(loop, io);
  close(s->fd);
  total_tokens += s->tokens;
  remaining--;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pct(int64_t *v, size_t n, double p) {
  if (!n) return 0;
  size_t i = (size_t)(p * (double)n);
  if (i >= n) i = n - 1;
  return (double)v[i] / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) { fprintf(stderr, "usage: %s PORT STREAMS TOKENS [ROUNDS]\n", argv[0]); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]), tokens = atoi(argv[3]);
  int rounds = argc == 5 ? atoi(argv[4]) : 1;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  br_loop *loop = br_loop_new();
  stream *ss = calloc((size_t)n, sizeof *ss);
  char body[256];
  int blen = snprintf(body, sizeof body,
                      "{\"model\":\"m\",\"stream\":true,\"max_tokens\":%d,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                      tokens);
  int gap_us = getenv("START_GAP_US") ? atoi(getenv("START_GAP_US")) : 0;
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  int64_t t0 = br_now();
  for (int i = 0; i < n; i++) {
    stream *s = &ss[i];
    s->rounds = rounds;
    s->reqlen = (size_t)snprintf(s->req, sizeof s->req,
                                 "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                 "Content-Length: %d\r\n\r\n%s", port, blen, body);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0) { perror("socket"); return 1; }
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) { perror("connect"); return 1; }
    if (gap_us > 0) {   /* busy-wait: a sleep would add a wake-up of its own */
      struct pollfd pf = {s->fd, POLLOUT, 0};
      if (poll(&pf, 1, -1) != 1 || send(s->fd, s->req, s->reqlen, 0) != (ssize_t)s->reqlen) { perror("send"); return 1; }
      s->sent = 1;
      br_io_start(loop, &s->io, s->fd, BR_READ, on_io, s);
      for (int64_t until = br_now() + (int64_t)gap_us * 1000; br_now() < until;) {}
    } else {
      br_io_start(loop, &s->io, s->fd, BR_WRITE, on_io, s);
    }
  }
  remaining = n;
  while (remaining > 0) br_loop_run_once(loop, -1);
  int64_t wall = br_now() - t0;
  getrusage(RUSAGE_SELF, &r1);
  double cpu_us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 + (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                  (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 + (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  /* ttft error: each stream's first lag; itl error: successive lag
   * differences (across rounds too: the first token of a round then counts
   * as a gap, like the others its lateness is what is measured) */
  int64_t *first = calloc((size_t)n, sizeof *first), *itl = NULL;
  size_t nfirst = 0, nitl = 0, capitl = 0;
  for (int i = 0; i < n; i++) {
    stream *s = &ss[i];
    if (s->nlag) first[nfirst++] = s->lag[0];
    for (size_t j = 1; j < s->nlag; j++) {
      if (nitl == capitl) { capitl = capitl ? capitl * 2 : 4096; itl = realloc(itl, capitl * sizeof *itl); }
      int64_t d = s->lag[j] - s->lag[j - 1];
      itl[nitl++] = d < 0 ? -d : d;
    }
    free(s->lag);
    free(s->carry);
  }
  qsort(first, nfirst, sizeof *first, cmp64);
  if (nitl) qsort(itl, nitl, sizeof *itl, cmp64);
  printf("{\"client\":\"minimal-reader\",\"streams\":%d,\"requests\":%d,\"ok\":%d,\"tokens\":%ld,\"wall_s\":%.3f,\"cpu_us_per_token\":%.3f,"
         "\"tokens_per_s\":%.0f,\"maxrss_mb\":%.1f,\"ttft_err_p50_ms\":%.3f,\"ttft_err_p99_ms\":%.3f,"
         "\"itl_err_p50_ms\":%.3f,\"itl_err_p99_ms\":%.3f}\n",
         n, n * rounds, (int)nfirst * rounds, total_tokens, (double)wall / 1e9, total_tokens ? cpu_us / (double)total_tokens : 0,
         (double)total_tokens / ((double)wall / 1e9), (double)br_platform_self_maxrss() / 1048576.0,
         pct(first, nfirst, 0.5), pct(first, nfirst, 0.99), pct(itl, nitl, 0.5), pct(itl, nitl, 0.99));
  free(first);
  free(itl);
  free(ss);
  br_loop_free(loop);
  return 0;
}
