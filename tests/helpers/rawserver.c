/* rawserver: a scripted raw TCP server, so that tests of bench.http's native
 * transport (tests/lua/http_native_test.lua) control every byte it reads.
 *
 *   rawserver PORTFILE SCRIPT [LOG]   listen on 127.0.0.1 (any port), write
 *                                     the port to PORTFILE, follow SCRIPT
 *   rawserver --blackhole PORTFILE    listen with a full accept queue and
 *                                     never accept: a further connect hangs
 *   rawserver --bind-check ADDR       exit 0 if a TCP socket can bind ADDR
 *   rawserver --slow-accept PORTFILE MS  a full accept queue for MS ms, then
 *                                     a short chat completion to every request
 *
 * SCRIPT: one step a line; empty lines and lines starting with # are skipped.
 * Connections are served one at a time, in order: a step that needs a
 * connection when none is open accepts the next one.
 *   expect-request   read one HTTP request (head up to CRLFCRLF, then
 *                    Content-Length bytes of body) and append it verbatim
 *                    to LOG before going on
 *   send TEXT        write TEXT (the rest of the line after one space) with
 *                    the escapes \r \n \t \0 \\ \xNN
 *   sleep MS         wait MS milliseconds
 *   close            close the connection (FIN)
 *   reset            close it with SO_LINGER 0 (RST)
 *   next-connection  close the connection if still open
 *   accept           take the next connection now (if none is open),
 *                    reading nothing: e.g. to close one a client opened
 *                    ahead of its request
 *   log TEXT         append TEXT and a newline to LOG (a marker to wait for)
 * When the script ends the connection is closed and the server waits for
 * SIGTERM (its default action ends it). Mistakes in the script: exit 2. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int lfd = -1, cfd = -1, logfd = -1;
static char rbuf[4 << 20];   /* bytes read, up to the end of the next request */
static size_t rlen;

_Noreturn static void die(const char *what) {
  fprintf(stderr, "rawserver: %s: %s\n", what, errno ? strerror(errno) : "failed");
  exit(2);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void write_port(const char *path, int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) die(tmp);
  fprintf(f, "%d\n", ntohs(a.sin_port));
  if (fclose(f) != 0 || rename(tmp, path) != 0) die(path);   /* whole or absent for the reader */
}

static int listen_on(int backlog) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
  if (listen(fd, backlog) != 0) die("listen");
  return fd;
}

static void append_log(const char *p, size_t n) {
  if (logfd < 0) return;
  while (n > 0) {
    ssize_t w = write(logfd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write log");
    p += w;
    n -= (size_t)w;
  }
}

static void conn_need(void) {
  if (cfd >= 0) return;
  do cfd = accept(lfd, NULL, NULL); while (cfd < 0 && errno == EINTR);
  if (cfd < 0) die("accept");
  int one = 1;
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  rlen = 0;
}

static void conn_close(int rst) {
  if (cfd < 0) return;
  if (rst) {
    struct linger l = {1, 0};
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(cfd);
  cfd = -1;
  rlen = 0;
}

/* Read until rbuf holds a whole request; log it and drop it from rbuf. A
 * client that goes away first is noted on stderr and the step ends. */
static void expect_request(void) {
  conn_need();
  for (;;) {
    char *end = memmem(rbuf, rlen, "\r\n\r\n", 4);
    if (end) {
      size_t head = (size_t)(end - rbuf) + 4, body = 0;
      for (char *p = rbuf; p < end; p++) {
        if ((p == rbuf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) body = strtoul(p + 15, NULL, 10);
      }
      if (head + body > sizeof rbuf) die("a request larger than the buffer");
      if (rlen >= head + body) {
        append_log(rbuf, head + body);
        memmove(rbuf, rbuf + head + body, rlen - head - body);
        rlen -= head + body;
        return;
      }
    }
    if (rlen == sizeof rbuf) die("a request head larger than the buffer");
    ssize_t n = recv(cfd, rbuf + rlen, sizeof rbuf - rlen, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "rawserver: the client closed before a whole request (%zu bytes)\n", rlen);
      return;
    }
    rlen += (size_t)n;
  }
}

static int hexval(int c) { return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10; }

/* Decode the escapes of s in place; its new length. */
static size_t unescape(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p != '\\') { *o++ = *p; continue; }
    switch (*++p) {
    case 'r': *o++ = '\r'; break;
    case 'n': *o++ = '\n'; break;
    case 't': *o++ = '\t'; break;
    case '0': *o++ = '\0'; break;
    case '\\': *o++ = '\\'; break;
    case 'x':
      if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])) { errno = 0; die("a bad \\x escape"); }
      *o++ = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
      p += 2;
      break;
    default: errno = 0; die("an unknown escape in send");
    }
  }
  return (size_t)(o - s);
}

static void send_all(const char *p, size_t n) {
  conn_need();
  while (n > 0) {
    ssize_t w = send(cfd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      fprintf(stderr, "rawserver: send: %s\n", strerror(errno));
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Fill the accept queue of a listener with backlog 0: the first connect is
 * queued, the second's SYN is dropped (Linux drops SYNs while the accept
 * queue is full), and so is every later one. */
_Noreturn static void blackhole(const char *portfile) {
  lfd = listen_on(0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(lfd, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  for (int i = 0; i < 2; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&a, len) != 0 && errno != EINPROGRESS) die("connect");
    sleep_ms(50);   /* the handshake of the first settles before the second */
  }
  write_port(portfile, lfd);
  for (;;) pause();
}

/* Keep the accept queue full for ms milliseconds (backlog 0, one connection
 * of its own queued), as a server's is when more clients connect at once
 * than its listen backlog holds (llama-server's is 5): a connect in that
 * time has its SYN dropped and the kernel sends it again a second later.
 * Then answer every request with a short chat completion, one connection
 * at a time. */
_Noreturn static void slow_accept(const char *portfile, long ms) {
  lfd = listen_on(0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(lfd, (struct sockaddr *)&a, &len) != 0) die("getsockname");
  int filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (filler < 0) die("socket");
  if (connect(filler, (struct sockaddr *)&a, len) != 0 && errno != EINPROGRESS) die("connect");
  sleep_ms(50);   /* its handshake settles: the queue is full */
  write_port(portfile, lfd);
  sleep_ms(ms);
  close(filler);   /* accepted first below: it reads as a client gone */
  static const char body[] =
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"hello there\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}";
  char resp[1024];
  int n = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof body - 1, body);
  for (;;) {
    expect_request();
    send_all(resp, (size_t)n);
    conn_close(0);
  }
}

static int bind_check(const char *addr) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  socklen_t len;
  if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) { v4->sin_family = AF_INET; len = sizeof *v4; }
  else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) { v6->sin6_family = AF_INET6; len = sizeof *v6; }
  else return 2;
  int fd = socket(ss.ss_family, SOCK_STREAM, 0);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0;
  if (!ok) fprintf(stderr, "rawserver: cannot bind %s: %s\n", addr, strerror(errno));
  if (fd >= 0) close(fd);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--blackhole") == 0) blackhole(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--bind-check") == 0) return bind_check(argv[2]);
  if (argc == 4 && strcmp(argv[1], "--slow-accept") == 0) slow_accept(argv[2], atol(argv[3]));
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: rawserver PORTFILE SCRIPT [LOG] | --blackhole PORTFILE | --bind-check ADDR | "
                    "--slow-accept PORTFILE MS\n");
    return 2;
  }
  FILE *script = fopen(argv[2], "r");
  if (!script) die(argv[2]);
  if (argc == 4 && (logfd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) die(argv[3]);
  lfd = listen_on(16);
  write_port(argv[1], lfd);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, script)) >= 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = 0;
    if (line[0] == 0 || line[0] == '#') continue;
    if (strcmp(line, "expect-request") == 0) expect_request();
    else if (strcmp(line, "send") == 0 && arg) send_all(arg, unescape(arg));
    else if (strcmp(line, "sleep") == 0 && arg) sleep_ms(atol(arg));
    else if (strcmp(line, "close") == 0 || strcmp(line, "next-connection") == 0) conn_close(0);
    else if (strcmp(line, "reset") == 0) conn_close(1);
    else if (strcmp(line, "accept") == 0) conn_need();
    else if (strcmp(line, "log") == 0) {
      append_log(arg ? arg : "", arg ? strlen(arg) : 0);
      append_log("\n", 1);
    } else {
      fprintf(stderr, "rawserver: unknown step '%s'\n", line);
      return 2;
    }
  }
  free(line);
  fclose(script);
  conn_close(0);
  for (;;) pause();
}
