/* Connections: accepting them, reading and framing HTTP/1.x requests,
 * writing responses (with backpressure), keep-alive, timeouts, and closing
 * without losing a last response. */
#include "sim.h"
#include "sock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static void tmo_cb(br_loop *loop, br_timer *t);
static void handle_input(conn *c);

static void want_write(conn *c, int on) {
  sim_t *sim = c->sim;
  if (c->want_write == on) return;
  c->want_write = on;
  br_io_start(sim->loop, &c->io, c->fd, BR_READ | (on ? BR_WRITE : 0), c->io.cb, c);
}

/* Queue bytes; write at once when nothing is pending. Returns -1 if the
 * connection broke (it is then closed). */
int sim_send_iov(conn *c, struct iovec *iov, int n) {
  sim_t *sim = c->sim;
  size_t total = 0;
  for (int i = 0; i < n; i++) total += iov[i].iov_len;
  size_t done = 0;
  if (c->out.len == c->out_off) {
    c->out.len = c->out_off = 0;
    ssize_t w = writev(c->fd, iov, n);
    sim->c_writes++;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { sim_conn_close(c); return -1; }
      w = 0;
    }
    done = (size_t)w;
    if (done == total) return 0;
  }
  for (int i = 0; i < n; i++) {
    size_t len = iov[i].iov_len;
    if (done >= len) { done -= len; continue; }
    out_mem(&c->out, (char *)iov[i].iov_base + done, len - done);
    done = 0;
  }
  want_write(c, 1);
  return 0;
}

int sim_send(conn *c, const char *p, size_t n) {
  struct iovec iov = {(void *)p, n};
  return sim_send_iov(c, &iov, 1);
}

/* Send body bytes of a streamed response, chunk-framed unless HTTP/1.0. */
int sim_send_body(conn *c, const char *p, size_t n) {
  if (n == 0) return 0;
  if (!c->chunked) return sim_send(c, p, n);
  char hdr[20];
  int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
  struct iovec iov[3] = {{hdr, (size_t)hl}, {(void *)p, n}, {"\r\n", 2}};
  return sim_send_iov(c, iov, 3);
}

int sim_send_events(conn *c, br_buf *b) {
  size_t n = b->len - SIM_EV_RESERVE;
  if (n == 0) return 0;
  if (!c->chunked) return sim_send(c, b->p + SIM_EV_RESERVE, n);
  char *p = b->p + SIM_EV_RESERVE;   /* "<hex>\r\n" written backwards before the events */
  *--p = '\n';
  *--p = '\r';
  size_t v = n;
  do { *--p = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
  OUT_LIT(b, "\r\n");
  return sim_send(c, p, (size_t)(b->p + b->len - p));
}

/* Write pending output. Returns -1 if the connection was closed. */
static int conn_flush(conn *c) {
  sim_t *sim = c->sim;
  while (c->out_off < c->out.len) {
    ssize_t w = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
    sim->c_writes++;
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINTR) continue;
      sim_conn_close(c);
      return -1;
    }
    c->out_off += (size_t)w;
  }
  c->out.len = c->out_off = 0;
  if (c->out.cap > (1u << 20)) br_buf_free(&c->out);   /* after a huge event */
  want_write(c, 0);
  if (c->close_after_write) { sim_conn_linger(c); return -1; }
  return 0;
}

static const char *status_text(int code) {
  switch (code) {
  case 100: return "Continue";
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Error";
  }
}

void sim_head_common(br_buf *b, conn *c, int code, const char *ctype) {
  sim_t *sim = c->sim;
  out_printf(b, "HTTP/1.%d %d %s\r\n", c->http10 ? 0 : 1, code, status_text(code));
  switch (sim->cfg.dialect) {
  case D_LLAMA: OUT_LIT(b, "Server: llama.cpp\r\nAccess-Control-Allow-Origin: \r\n"); break;
  case D_OPENAI: OUT_LIT(b, "server: uvicorn\r\n"); break;
  default: break;
  }
  out_printf(b, "Content-Type: %s\r\n", ctype);
  OUT_LIT(b, "X-Sim-Request-Id: ");
  out_u64(b, c->req_id);
  OUT_LIT(b, "\r\n");
  if (!c->keepalive) OUT_LIT(b, "Connection: close\r\n");
  else if (c->http10) OUT_LIT(b, "Connection: keep-alive\r\n");
  else if (sim->cfg.dialect == D_LLAMA) OUT_LIT(b, "Keep-Alive: timeout=5, max=100\r\n");
}

/* A complete response with a body. After it, the connection reads the next
 * request (keep-alive) or closes. Returns -1 if the connection is gone. */
int sim_send_full(conn *c, int code, const char *ctype, const char *body, size_t n, const char *extra) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  sim_head_common(&b, c, code, ctype);
  if (extra) out_str(&b, extra);
  OUT_LIT(&b, "Content-Length: ");
  out_u64(&b, n);
  OUT_LIT(&b, "\r\n\r\n");
  struct iovec iov[2] = {{b.p, b.len}, {(void *)body, n}};
  int r = sim_send_iov(c, iov, 2);
  br_buf_free(&b);
  if (r < 0) return -1;
  if (code >= 400) sim->c_errors++;
  return sim_begin_next(c);
}

/* An error in the dialect's own shape. */
int sim_send_error(conn *c, int code, const char *type, const char *msg) {
  br_buf b = BR_BUF_INIT;
  sim_fmt_error(&b, c->sim->cfg.dialect, code, type, msg);
  const char *extra = NULL;
  if (code == 405) extra = c->ep ? "Allow: POST\r\n" : "Allow: GET\r\n";
  int r = sim_send_full(c, code, "application/json", b.p, b.len, extra);
  br_buf_free(&b);
  return r;
}

/* Errors that end the connection (the request could not be framed). */
static void send_error_close(conn *c, int code, const char *msg) {
  c->keepalive = 0;
  sim_send_error(c, code, code == 408 ? "timeout_error" : "invalid_request_error", msg);
}

static void req_reset(conn *c) {
  for (int i = 0; i < c->n_stops; i++) free(c->stops[i]);
  c->n_stops = 0;
  c->tail.len = c->text.len = c->rtext.len = c->model.len = c->prompt_echo.len = 0;
  c->tool = c->tool_fits = 0;
  c->tool_name.len = c->tool_args.len = c->tool_off = 0;
  c->ep = EP_NONE;
  c->fault = F_NONE;
  c->emitted = c->finished = c->fault_done = c->fin_sent = 0;
  c->resume_on_drain = 0;
  c->endless_sent = 0;
  c->waited_load_ns = 0;
  c->load_only = 0;
}

void sim_conn_close(conn *c) {
  sim_t *sim = c->sim;
  sim_queue_remove(c);
  sim_release_slot(c);
  br_io_stop(sim->loop, &c->io);
  br_timer_stop(sim->loop, &c->tmo);
  br_timer_stop(sim->loop, &c->tick);
  close(c->fd);
  if (c->prev) c->prev->next = c->next; else sim->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  req_reset(c);
  br_buf_free(&c->in);
  br_buf_free(&c->out);
  br_buf_free(&c->tail);
  br_buf_free(&c->text);
  br_buf_free(&c->rtext);
  br_buf_free(&c->model);
  br_buf_free(&c->prompt_echo);
  br_buf_free(&c->tool_name);
  br_buf_free(&c->tool_args);
  sim->nconns--;
  free(c);
}

/* Close after a last response without losing it: closing a socket with
 * unread input makes the kernel send a reset, which can destroy the response
 * before the client reads it. So shut down our side, read and discard until
 * the client closes (or 2 s pass), then close. */
void sim_conn_linger(conn *c) {
  sim_t *sim = c->sim;
  sim_queue_remove(c);
  sim_release_slot(c);
  br_timer_stop(sim->loop, &c->tick);
  want_write(c, 0);
  c->state = CS_LINGER;
  shutdown(c->fd, SHUT_WR);
  br_timer_start(sim->loop, &c->tmo, br_now() + 2000000000LL, tmo_cb, c);
}

static void tmo_cb(br_loop *loop, br_timer *t) {
  conn *c = t->data;
  if ((c->state == CS_HEAD || c->state == CS_BODY) && c->in.len > 0) {
    send_error_close(c, 408, "request head or body did not arrive in time (--header-timeout)");
    return;
  }
  sim_conn_close(c);
}

/* The response is complete: read the next request, or close. Returns -1
 * if the connection is gone. */
int sim_begin_next(conn *c) {
  sim_t *sim = c->sim;
  req_reset(c);
  if (!c->keepalive) {
    c->state = CS_DRAIN;
    c->close_after_write = 1;
    if (sim_pending(c) == 0) { sim_conn_linger(c); return -1; }
    return 0;
  }
  c->state = CS_HEAD;
  /* drop the request just served from the input */
  br_buf_consume(&c->in, c->head_len + c->body_len);
  c->head_len = c->body_len = 0;
  br_timer_start(sim->loop, &c->tmo, br_now() + (c->in.len ? sim->cfg.header_timeout_ns : sim->cfg.idle_timeout_ns),
                 tmo_cb, c);
  if (c->in.len) handle_input(c);
  return 0;
}

static int header_is(const char *name, size_t nl, const char *want) {
  return strlen(want) == nl && !strncasecmp(name, want, nl);
}

/* Parse the request head. Returns 0 when it is complete and valid (body
 * length known), 1 when more input is needed, -1 when an error was sent. */
static int parse_head(conn *c) {
  sim_t *sim = c->sim;
  char *p = c->in.p;
  size_t n = c->in.len;
  char *e = memmem(p, n, "\r\n\r\n", 4);
  size_t hl;
  if (e) hl = (size_t)(e - p) + 4;
  else if ((e = memmem(p, n, "\n\n", 2))) hl = (size_t)(e - p) + 2;
  else {
    if (n > sim->cfg.max_head) { send_error_close(c, 431, "request head too large"); return -1; }
    return 1;
  }
  if (hl > sim->cfg.max_head) { send_error_close(c, 431, "request head too large"); return -1; }
  c->head_len = hl;
  char *nl = memchr(p, '\n', hl);
  char *sp1 = memchr(p, ' ', (size_t)(nl - p));
  char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
  c->keepalive = 1;
  c->http10 = 0;
  if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || sp1[1] != '/') {
    send_error_close(c, 400, "malformed request line");
    return -1;
  }
  size_t vl = (size_t)(nl - sp2 - 1);
  if (vl && sp2[vl] == '\r') vl--;
  if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.1", 8)) c->http10 = 0;
  else if (vl == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8)) { c->http10 = 1; c->keepalive = 0; }
  else { send_error_close(c, 505, "only HTTP/1.0 and HTTP/1.1 are served"); return -1; }
  c->chunked = !c->http10;
  long long clen = -1;
  int expect = 0, te = 0;
  char *line = nl + 1;
  char *end = p + hl;
  while (line < end) {
    char *lnl = memchr(line, '\n', (size_t)(end - line));
    if (!lnl || lnl == line || (lnl == line + 1 && *line == '\r')) break;
    char *colon = memchr(line, ':', (size_t)(lnl - line));
    if (!colon || colon == line) { send_error_close(c, 400, "malformed header line"); return -1; }
    size_t nlen = (size_t)(colon - line);
    char *v = colon + 1;
    while (v < lnl && (*v == ' ' || *v == '\t')) v++;
    char *ve = lnl;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    size_t vlen = (size_t)(ve - v);
    if (header_is(line, nlen, "content-length")) {
      char tmp[24];
      if (vlen == 0 || vlen >= sizeof tmp) { send_error_close(c, 400, "bad Content-Length"); return -1; }
      memcpy(tmp, v, vlen);
      tmp[vlen] = 0;
      char *ep;
      long long x = strtoll(tmp, &ep, 10);
      if (*ep || x < 0) { send_error_close(c, 400, "bad Content-Length"); return -1; }
      clen = x;
    } else if (header_is(line, nlen, "transfer-encoding")) {
      te = 1;
    } else if (header_is(line, nlen, "connection")) {
      if (vlen == 5 && !strncasecmp(v, "close", 5)) c->keepalive = 0;
      if (vlen == 10 && !strncasecmp(v, "keep-alive", 10)) c->keepalive = 1;
    } else if (header_is(line, nlen, "expect")) {
      if (vlen == 12 && !strncasecmp(v, "100-continue", 12)) expect = 1;
    }
    line = lnl + 1;
  }
  if (te) { send_error_close(c, 411, "chunked request bodies are not supported: send Content-Length"); return -1; }
  if (clen < 0) clen = 0;
  if ((unsigned long long)clen > sim->cfg.max_body) {
    send_error_close(c, 413, "request body too large (--max-body)");
    return -1;
  }
  c->body_len = (size_t)clen;
  if (expect && c->in.len < hl + c->body_len) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (sim_send(c, cont, sizeof cont - 1) < 0) return -1;
  }
  return 0;
}

/* Parse and sim_dispatch what the input holds. */
static void handle_input(conn *c) {
  if (c->state == CS_HEAD) {
    int r = parse_head(c);
    if (r != 0) return;
    c->state = CS_BODY;
  }
  if (c->state == CS_BODY && c->in.len >= c->head_len + c->body_len) sim_dispatch(c);
}

static void conn_io(br_loop *loop, br_io *io, int events) {
  conn *c = io->data;
  sim_t *sim = c->sim;
  if (events & BR_WRITE) {
    if (conn_flush(c) < 0) return;
    if (c->resume_on_drain && sim_pending(c) == 0) {
      c->resume_on_drain = 0;
      if (c->state == CS_ACTIVE) {
        sim_gen_step(c);
        return;
      }
    }
  }
  if (events & (BR_READ | BR_HUP)) {
    for (;;) {
      int reading = c->state == CS_HEAD || c->state == CS_BODY;
      size_t limit = sim->cfg.max_head + sim->cfg.max_body + 65536;
      if (c->in.len >= limit) {
        if (reading) { send_error_close(c, 413, "request too large"); return; }
        /* a client that talks over a streamed response: drop the excess */
        c->in.len = c->head_len + c->body_len;
      }
      /* at least 4 KiB of room (besides br_buf's NUL), else 16 KiB more */
      if (c->in.cap - c->in.len < 4096 + 1) out_reserve(&c->in, 16384 - 1);
      size_t want = c->in.cap - c->in.len - 1;
      /* the kernel's arrival time of these bytes: the request arrived with
       * the read that completed it (t_arrive), however late this loop got here */
      ssize_t r = br_recv_stamped(c->fd, c->in.p + c->in.len, want, br_now(), &c->t_read);
      if (r > 0 && c->state == CS_LINGER) continue;   /* discarded */
      if (r > 0) {
        if (c->state == CS_HEAD && c->in.len == 0)
          br_timer_start(sim->loop, &c->tmo, br_now() + sim->cfg.header_timeout_ns, tmo_cb, c);
        c->in.len += (size_t)r;
        c->in.p[c->in.len] = 0;
        if (reading) {
          handle_input(c);
          return;   /* c may be gone; level-triggered polling brings us back */
        }
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        sim_conn_close(c);   /* client went away: cancels its request */
        return;
      }
      if (errno == EINTR) continue;
      break;
    }
  }
}

static void accept_retry_cb(br_loop *loop, br_timer *t) {
  sim_t *sim = t->data;
  br_io_start(loop, &sim->lio, sim->lfd, BR_READ, sim_listen_cb, sim);
}

void sim_listen_cb(br_loop *loop, br_io *io, int events) {
  sim_t *sim = io->data;
  for (int i = 0; i < 256; i++) {
    int fd = accept(sim->lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* out of descriptors: pause accepting for a moment */
        br_io_stop(loop, &sim->lio);
        br_timer_start(loop, &sim->accept_retry, br_now() + 50000000, accept_retry_cb, sim);
      }
      return;
    }
    br_fd_nonblock(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    br_sock_stamp_arrivals(fd);
    conn *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return; }
    c->sim = sim;
    c->fd = fd;
    c->state = CS_HEAD;
    c->keepalive = 1;
    c->next = sim->conns;
    if (sim->conns) sim->conns->prev = c;
    sim->conns = c;
    sim->nconns++;
    if (br_io_start(loop, &c->io, fd, BR_READ, conn_io, c) != 0) { sim_conn_close(c); continue; }
    br_timer_start(loop, &c->tmo, br_now() + sim->cfg.idle_timeout_ns, tmo_cb, c);
  }
}

int sim_open_listener(sim_t *sim) {
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char port[16];
  snprintf(port, sizeof port, "%d", sim->cfg.port);
  int rc = getaddrinfo(sim->cfg.host, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "benchrun sim: --host %s: %s\n", sim->cfg.host, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  int err = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) { err = errno; continue; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sim->cfg.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "benchrun sim: cannot listen on %s:%d: %s\n", sim->cfg.host, sim->cfg.port, strerror(err));
    return -1;
  }
  br_fd_nonblock(fd);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  sim->cfg.port = bound;
  sim->lfd = fd;
  return 0;
}

int sim_write_port_file(sim_t *sim) {
  if (!sim->cfg.port_file) return 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", sim->cfg.port_file, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%d\n", sim->cfg.port) < 0 || fclose(f) != 0 || rename(tmp, sim->cfg.port_file) != 0) {
    fprintf(stderr, "benchrun sim: --port-file %s: %s\n", sim->cfg.port_file, strerror(errno));
    return -1;
  }
  return 0;
}

