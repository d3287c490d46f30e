/* A trivial, fast streaming client for tools/bench-sim.sh: opens N
 * connections to `benchrun sim`, sends one streaming chat request on each,
 * and counts SSE events ("\n\n") and bytes as fast as it can read them,
 * on the engine's event loop. Prints one line of figures.
 *
 *   sim_reader PORT CONNS MAX_TOKENS SECONDS [WARMUP_SECONDS [RAMP_SECONDS]]
 *
 * RAMP spreads the connections evenly over that time, so that streams of
 * one decode rate do not all tick in the same instant.
 */
#include "benchrun/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  br_io io;
  int fd;
  char last;        /* last byte seen, for "\n\n" split across reads */
  int got_any;
} rconn;

static uint64_t events, bytes, events_at_warmup, bytes_at_warmup;
static int64_t t_warm;
static int done, warmed, open_conns, streaming_conns;
static char buf[1 << 18];

static void on_read(br_loop *loop, br_io *io, int ev) {
  rconn *c = io->data;
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
      if (!c->got_any) { c->got_any = 1; streaming_conns++; }
      bytes += (uint64_t)n;
      const char *p = buf, *end = buf + n;
      if (c->last == '\n' && buf[0] == '\n') events++;
      while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (p + 1 < end && p[1] == '\n') events++;
        p++;
      }
      c->last = buf[n - 1];
      if ((size_t)n < sizeof buf) return;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    br_io_stop(loop, io);
    close(c->fd);
    c->fd = -1;
    open_conns--;
    return;
  }
}

static void on_warm(br_loop *loop, br_timer *t) {
  events_at_warmup = events;
  bytes_at_warmup = bytes;
  t_warm = br_now();
  warmed = 1;
}

static void on_end(br_loop *loop, br_timer *t) { done = 1; }

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: sim_reader PORT CONNS MAX_TOKENS SECONDS [WARMUP_SECONDS [RAMP_SECONDS]]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int nconns = atoi(argv[2]);
  long max_tokens = atol(argv[3]);
  double seconds = atof(argv[4]);
  double warmup = argc > 5 ? atof(argv[5]) : 0.5;
  double ramp = argc > 6 ? atof(argv[6]) : 0;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  br_loop *loop = br_loop_new();
  rconn *cs = calloc((size_t)nconns, sizeof *cs);
  if (!loop || !cs) return 1;
  char req[512];
  char body[200];
  int bl = snprintf(body, sizeof body,
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"max_tokens\":%ld,\"stream\":true}",
                    max_tokens);
  int rl2 = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s", bl, body);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int64_t t0 = br_now();
  for (int i = 0; i < nconns; i++) {
    if (ramp > 0) {
      int64_t at = t0 + (int64_t)(ramp * 1e9 * i / nconns);
      while (br_now() < at) br_loop_run_once(loop, at - br_now());
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
      fprintf(stderr, "sim_reader: connection %d: %s\n", i, strerror(errno));
      if (fd >= 0) close(fd);
      break;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write(fd, req, (size_t)rl2) != rl2) { close(fd); break; }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    cs[i].fd = fd;
    br_io_start(loop, &cs[i].io, fd, BR_READ, on_read, &cs[i]);
    open_conns++;
    /* keep reading while connecting many, so early streams do not back up */
    if (i % 256 == 255) br_loop_run_once(loop, 0);
  }
  int64_t t_connected = br_now();
  br_timer warm, end;
  memset(&warm, 0, sizeof warm);
  memset(&end, 0, sizeof end);
  br_timer_start(loop, &warm, t_connected + (int64_t)(warmup * 1e9), on_warm, NULL);
  br_timer_start(loop, &end, t_connected + (int64_t)((warmup + seconds) * 1e9), on_end, NULL);
  while (!done && open_conns > 0) br_loop_run_once(loop, -1);
  int64_t t_end = br_now();
  if (!warmed) { t_warm = t0; events_at_warmup = bytes_at_warmup = 0; }
  double s = (double)(t_end - t_warm) / 1e9;
  printf("conns=%d streaming=%d connect_s=%.3f seconds=%.3f events=%llu events_per_s=%.0f MB_per_s=%.1f\n",
         open_conns, streaming_conns, (double)(t_connected - t0) / 1e9, s,
         (unsigned long long)(events - events_at_warmup), (double)(events - events_at_warmup) / s,
         (double)(bytes - bytes_at_warmup) / s / 1e6);
  for (int i = 0; i < nconns; i++) {
    if (cs[i].fd > 0) { br_io_stop(loop, &cs[i].io); close(cs[i].fd); }
  }
  free(cs);
  br_loop_free(loop);
  return 0;
}
