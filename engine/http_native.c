/* bench.http's native transport: plain HTTP/1.1 to an address.
 *
 * curl is general; the servers benchrun measures mostly sit on this host
 * or the LAN and speak plain HTTP/1.1. For those the transfer is done
 * here: one read per wake-up into a buffer shared by every connection,
 * no poll() after each read (curl 7.88 checks its socket once more after
 * every read), and a few hundred bytes of state per connection instead of
 * curl's ~25 KB. Everything else (TLS, HTTP/2, host names, proxies) goes
 * through curl; see http_native_target.
 *
 * The request is written in the http.request call where the socket allows
 * it, arrival times come from the kernel (br_recv_stamped), and connections
 * whose answer ended cleanly are kept for the next request to the same
 * address. The answer is parsed by h1.c. */
#include "http_internal.h"
#include "sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* One read buffer for every connection (one thread reads one socket at a
 * time), how many idle connections are kept, and how many addresses are
 * remembered as closing connections after a streamed answer. */
enum { READ_BUF = 64 << 10, IDLE_MAX = 4096, CLOSERS_MAX = 16 };

typedef struct nxfer nxfer;

/* A connection. */
typedef struct hconn {
  br_io io;
  hctx *ctx;
  int fd;
  nxfer *x;                     /* the transfer on it; NULL while idle */
  struct hconn *prev, *next;    /* the idle list */
  struct sockaddr_storage addr; /* the peer, the key for reuse */
  socklen_t addrlen;
  int connected;
  int streamed;                 /* its last answer was a stream */
  int64_t parked_at;            /* when it went idle */
  br_h1 h1;                     /* its response parser (keeps its line buffer) */
} hconn;

/* What every native transfer of a context shares. */
struct http_native_state {
  hconn *idle;          /* idle connections, most recent first */
  int nidle;
  /* Servers that close a connection after a streamed answer without
   * saying so (llama-server): a request sent the moment such an answer
   * ends (a closed loop's chained restart) would race that close, write
   * into a dying connection and be sent again, the time lost read as the
   * client's. Their connections are closed after a stream instead. */
  struct sockaddr_storage closers[CLOSERS_MAX];
  socklen_t closers_len[CLOSERS_MAX];
  int nclosers;
  char rbuf[READ_BUF];  /* the shared read buffer */
};

struct nxfer {
  xfer x;
  hconn *conn;
  struct sockaddr_storage addrs[2];   /* where to connect: a literal, or localhost's two */
  socklen_t addrlens[2];
  int naddr, addr_i;
  br_buf reqhead;        /* the request line and headers */
  size_t sent_off;       /* bytes of head + body written */
  int retried, conn_keep, send_failed;
  int ahead;             /* its new connection was opened before the send (req:connect) */
};

static void conn_io(br_loop *loop, br_io *io, int events);
static int native_connect(nxfer *n);
static void native_send(nxfer *n, hconn *k);
static void native_read(nxfer *n, hconn *k);

/* ---- connections and the idle pool ---- */

static void conn_close(hconn *k) {
  br_io_stop(k->ctx->loop, &k->io);
  if (k->fd >= 0) close(k->fd);
  br_h1_free(&k->h1);
  free(k);
}

static void idle_unlink(hconn *k) {
  struct http_native_state *s = k->ctx->native;
  if (k->prev) k->prev->next = k->next; else s->idle = k->next;
  if (k->next) k->next->prev = k->prev;
  k->prev = k->next = NULL;
  s->nidle--;
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
  struct http_native_state *s = c->native;
  k->x = NULL;
  int watched = k->io.events == BR_READ;   /* as after its answer: no system call to keep watching */
  if (c->closed || s->nidle >= IDLE_MAX || (!watched && br_io_start(c->loop, &k->io, k->fd, BR_READ, idle_cb, k) != 0)) {
    conn_close(k);
    return;
  }
  k->io.cb = idle_cb;
  k->parked_at = br_now();
  k->next = s->idle;
  if (s->idle) s->idle->prev = k;
  s->idle = k;
  s->nidle++;
}

/* Watch the connection for events: no system call when that is already
 * its watch (a kept connection is watched for reading while idle, and
 * after its request is written). */
static int conn_watch(hconn *k, int events) {
  if (k->io.events == events) {
    k->io.cb = conn_io;
    k->io.data = k;
    return 0;
  }
  return br_io_start(k->ctx->loop, &k->io, k->fd, events, conn_io, k);
}

static int is_closer(const struct http_native_state *s, const hconn *k) {
  for (int i = 0; i < s->nclosers; i++)
    if (s->closers_len[i] == k->addrlen && memcmp(&s->closers[i], &k->addr, k->addrlen) == 0) return 1;
  return 0;
}

static void note_closer(struct http_native_state *s, const hconn *k) {
  if (is_closer(s, k)) return;
  int i = s->nclosers < CLOSERS_MAX ? s->nclosers++ : CLOSERS_MAX - 1;   /* full: the last slot turns over */
  memcpy(&s->closers[i], &k->addr, k->addrlen);
  s->closers_len[i] = k->addrlen;
}

static hconn *idle_take(hctx *c, const struct sockaddr_storage *a, socklen_t len) {
  for (hconn *k = c->native->idle; k; k = k->next) {
    if (k->addrlen == len && memcmp(&k->addr, a, len) == 0) {
      idle_unlink(k);
      return k;
    }
  }
  return NULL;
}

static int native_connecting(const xfer *x) {
  const nxfer *n = (const nxfer *)x;
  return n->conn && !n->conn->connected;
}

/* A system error ends the transfer: the reason by what failed and when. */
static void native_os_error(nxfer *n, int err, const char *during) {
  xfer *x = &n->x;
  http_err why;
  if (err == ECONNREFUSED) why = HERR_REFUSED;
  else if (err == ETIMEDOUT && native_connecting(x)) why = HERR_TIMEOUT_CONNECT;
  else if (native_connecting(x) || !n->conn) why = HERR_CONNECT;
  else why = HERR_RESET;
  http_fail(x, why);
  http_detail(x, "%s: %s%s", during, strerror(err),
              err == EMFILE || err == ENFILE ? " (each stream needs a file descriptor: http.max_fds raises the limit)" : "");
  http_finish(x, HERR_NONE);
}

/* ---- connecting ---- */

/* A loopback connect often completes inside connect() or a moment after:
 * then the request goes out now, in the call, instead of after every other
 * ready event of the loop (that wait would be the client's own delay,
 * charged to the server's TTFT).
 * 1: connected; 0: still connecting; else the connect's errno (reading
 * SO_ERROR clears it, so the caller must act on it here). */
/* The outcome of a connect that ended: 0 or its errno. */
static int connect_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ? errno : err;
}

static int connected_now(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLOUT | POLLERR | POLLHUP))) return 0;
  int err = connect_error(fd);
  return err == 0 ? 1 : err;
}

/* A new non-blocking socket for address i, not yet connecting; NULL with
 * errno. */
static hconn *conn_new(nxfer *n, int i) {
  const struct sockaddr_storage *a = &n->addrs[i];
  hconn *k = calloc(1, sizeof *k);
  if (!k) { errno = ENOMEM; return NULL; }
  k->ctx = n->x.ctx;
  k->x = n;
  k->io.weak = 1;   /* the transfer keeps the loop alive, not its socket */
  memcpy(&k->addr, a, n->addrlens[i]);
  k->addrlen = n->addrlens[i];
  k->fd = br_socket_stream(a->ss_family);
  if (k->fd < 0) {
    int err = errno;
    free(k);
    errno = err;
    return NULL;
  }
  int one = 1;
  setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  br_sock_stamp_arrivals(k->fd);   /* arrival times from the kernel (native_read) */
#ifdef SO_NOSIGPIPE
  setsockopt(k->fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);   /* macOS: EPIPE, not a signal */
#endif
  return k;
}

/* Open a connection to the next address; 0, or the error (the caller ends
 * the transfer). Connecting goes on in the loop. A transfer in flight is
 * written at once if the connect completed in the call; one opened ahead
 * of its send (req:connect) waits for it. */
static int native_connect(nxfer *n) {
  xfer *x = &n->x;
  int err = 0;
  for (; n->addr_i < n->naddr; n->addr_i++) {
    hconn *k = conn_new(n, n->addr_i);
    if (!k) return errno;
    if (!x->t_dns) x->t_dns = br_now();   /* an address literal: nothing to resolve */
    int rc = connect(k->fd, (const struct sockaddr *)&k->addr, k->addrlen);
    err = rc == 0 ? 0 : errno;
    int now = rc == 0 ? 1 : err == EINPROGRESS ? connected_now(k->fd) : 0;
    if (now > 1) { rc = -1; err = now; now = 0; }   /* refused at once (loopback) */
    if (rc == 0 || err == EINPROGRESS) {
      br_h1_init(&k->h1, x->head_request);
      k->connected = now == 1;
      if (k->connected) x->t_connect = br_now();
      if (conn_watch(k, k->connected ? BR_READ : BR_WRITE) != 0) {
        err = errno ? errno : EIO;
        conn_close(k);
        return err;
      }
      n->conn = k;
      if (k->connected && x->in_flight) native_send(n, k);
      return 0;
    }
    conn_close(k);
    if (err != ECONNREFUSED) return err;   /* refused: try the next address (localhost's ::1) */
  }
  return err ? err : ECONNREFUSED;
}

/* k's connect was refused: whether the target has another address to try
 * (localhost's ::1); if so k is dropped for it, and the caller connects. */
static int next_address(nxfer *n, hconn *k) {
  if (n->addr_i + 1 >= n->naddr) return 0;
  n->conn = NULL;
  conn_close(k);
  n->addr_i++;
  return 1;
}

static void native_open(nxfer *n) {
  int err = native_connect(n);
  if (err) native_os_error(n, err, "connect");
}

/* A reused connection (or one opened ahead of the send) failed before any
 * byte of the answer: the server closed it while it sat idle. Send again
 * on a new one, once. */
static void native_retry(nxfer *n) {
  hconn *k = n->conn;
  /* closed within a second of a stream's end: the server closes after
   * streams (an idle timeout takes seconds: uvicorn's and httplib's are 5) */
  if (n->x.reused && k->streamed && br_now() - k->parked_at < 1000000000) note_closer(n->x.ctx->native, k);
  n->conn = NULL;
  conn_close(k);
  n->retried = 1;
  n->x.resent = 1;
  n->x.reused = 0;
  n->ahead = 0;
  /* connect_ms: from the first connect (or, for a kept connection, from
   * the send) to the new connection: the time lost to the server's
   * closing or slow accept is the server's, not the client's send delay */
  n->x.t_connect = 0;
  if (!n->x.t_dns) n->x.t_dns = n->x.t_start;
  n->sent_off = 0;
  br_buf_clear(&n->x.headers);
  n->addr_i = 0;
  native_open(n);
}

/* ---- sending ---- */

/* The write failed with err. */
static void write_failed(nxfer *n, hconn *k, int err) {
  if ((n->x.reused || n->ahead) && !n->retried && (err == EPIPE || err == ECONNRESET)) {
    native_retry(n);
  } else if (err == EPIPE || err == ECONNRESET) {
    /* the server stopped reading: what it said before closing, if anything, is the answer */
    n->send_failed = 1;
    if (conn_watch(k, BR_READ) != 0) native_os_error(n, err, "sending the request");
    else native_read(n, k);
  } else {
    native_os_error(n, err, "sending the request");
  }
}

/* Write what is left of the request. While a body is still going out the
 * socket is watched for reading too: a server may answer early (413, 401)
 * and stop reading, and that answer is the result. */
static void native_send(nxfer *n, hconn *k) {
  xfer *x = &n->x;
  size_t hl = n->reqhead.len, total = hl + x->reqbody.len, off = n->sent_off;
  struct iovec iov[2];
  int niov = 0;
  if (off < hl) {
    iov[niov].iov_base = n->reqhead.p + off;
    iov[niov++].iov_len = hl - off;
  }
  if (x->reqbody.len) {
    size_t b = off > hl ? off - hl : 0;
    iov[niov].iov_base = x->reqbody.p + b;
    iov[niov++].iov_len = x->reqbody.len - b;
  }
  /* taken before the write: a server on the other core may answer before
   * writev returns to us, and the request's time on the wire must not come
   * after the first byte of its answer */
  int64_t t_write = br_now();
  ssize_t w = writev(k->fd, iov, niov);
  if (w < 0) {
    int err = errno;
    if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) write_failed(n, k, err);
    return;
  }
  n->sent_off += (size_t)w;
  if (n->sent_off < total) {   /* the rest when the socket has room */
    if (conn_watch(k, BR_READ | BR_WRITE) != 0) native_os_error(n, errno, "epoll");
    return;
  }
  x->t_sent = t_write;
  if (conn_watch(k, BR_READ) != 0) native_os_error(n, errno, "epoll");
}

/* ---- receiving ---- */

/* h1 callbacks: the head lines are kept for r.headers as curl's are. */
static int h1_line(void *ud, const char *p, size_t n) {
  xfer *x = ud;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {   /* a new response (after a 1xx) */
    br_buf_clear(&x->headers);
    x->content_type[0] = 0;
  }
  if (x->headers.len + n + 2 <= MAX_HEADER_BYTES) {
    if (br_buf_add(&x->headers, p, n) || br_buf_add(&x->headers, "\r\n", 2)) {
      http_fail(x, HERR_NOMEM);
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
  http_head_done(x);
  return 0;
}

static int h1_body(void *ud, const char *p, size_t n) {
  xfer *x = ud;
  return http_deliver(x, p, n, x->t_last_data) != 0;
}

static const br_h1_callbacks h1_cbs = {h1_line, h1_head_done, h1_body};

/* The connection closed (err 0) or failed while waiting for the answer. */
static void native_closed(nxfer *n, hconn *k, int err) {
  xfer *x = &n->x;
  if (!br_h1_started(&k->h1) && (x->reused || n->ahead) && !n->retried) {
    native_retry(n);
    return;
  }
  if (!err && br_h1_eof(&k->h1) == BR_H1_DONE) {   /* a body that runs to the close */
    n->conn_keep = 0;
    http_finish(x, HERR_NONE);
    return;
  }
  /* a reset is a reset wherever it came (as curl says); a close mid-body is a truncation */
  http_fail(x, err || !br_h1_head_complete(&k->h1) ? HERR_RESET : HERR_TRUNCATED);
  if (err) {
    http_detail(x, "receiving the answer: %s", strerror(err));
  } else {
    br_h1_eof(&k->h1);
    http_detail(x, "%s", k->h1.error);
  }
  http_finish(x, HERR_NONE);
}

static void native_read(nxfer *n, hconn *k) {
  xfer *x = &n->x;
  char *rbuf = x->ctx->native->rbuf;
  for (int round = 0; round < 16; round++) {
    int64_t now;   /* the arrival time of these bytes: the kernel's, else the loop's wake-up */
    ssize_t got = br_recv_stamped(k->fd, rbuf, READ_BUF, br_loop_event_time(x->ctx->loop), &now);
    if (got > 0) {
      if (!x->t_first_byte) http_first_byte(x, now);
      x->t_last_data = now;
      size_t used;
      int rc = br_h1_feed(&k->h1, rbuf, (size_t)got, &h1_cbs, x, &used);
      if (rc == BR_H1_MORE) {
        if (got < READ_BUF) return;   /* a short read: the socket is drained */
        continue;
      }
      if (rc == BR_H1_DONE) {   /* reusable if nothing is left over on it either way */
        n->conn_keep = k->h1.keep_alive && used == (size_t)got && !n->send_failed &&
                       n->sent_off == n->reqhead.len + x->reqbody.len;
      } else if (rc == BR_H1_ERROR) {
        http_fail(x, HERR_BAD_RESPONSE);
        http_detail(x, "%s", k->h1.error);
      }   /* BR_H1_STOP: http_deliver has set the error */
      http_finish(x, HERR_NONE);
      return;
    }
    if (got == 0) {
      native_closed(n, k, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) native_closed(n, k, errno);
    return;
  }
}

/* The connect finished, one way or the other. */
static void connect_done(nxfer *n, hconn *k) {
  int err = connect_error(k->fd);
  if (err == ECONNREFUSED && next_address(n, k)) {
    native_open(n);
  } else if (err) {
    native_os_error(n, err, "connect");
  } else {
    k->connected = 1;
    n->x.t_connect = br_now();
    native_send(n, k);
  }
}

/* ---- connections opened ahead of their request (req:connect) ---- */

/* A kept connection taken for transfer n. */
static void conn_take(nxfer *n, hconn *k) {
  k->x = n;
  n->conn = k;
  n->x.reused = 1;
  br_h1_init(&k->h1, n->x.head_request);
}

/* Forget a connection opened ahead: its send connects anew, and what
 * happens then is the transfer's to report. */
static void ahead_drop(nxfer *n) {
  if (n->conn) conn_close(n->conn);
  n->conn = NULL;
  n->addr_i = 0;
  n->x.reused = 0;
  n->ahead = 0;
  n->x.t_dns = n->x.t_connect = 0;
}

/* An event on a connection whose request is not sent yet: its connect
 * ended, or the server closed it (or sent what nobody asked for). */
static void ahead_io(nxfer *n, hconn *k) {
  if (k->connected) {
    ahead_drop(n);
    return;
  }
  int err = connect_error(k->fd);
  if (err == ECONNREFUSED && next_address(n, k)) {
    if (native_connect(n) != 0) ahead_drop(n);
  } else if (err || conn_watch(k, BR_READ) != 0) {
    ahead_drop(n);
  } else {
    k->connected = 1;
    n->x.t_connect = br_now();
  }
}

/* req:connect: the connection is made now, before the clock starts, so
 * that sending is only the write (a closed loop's first wave connects
 * every user, then writes every request in one pass, as the C reader of
 * the client benchmark does). A kept connection to the address is
 * reserved, else a new one is opened. */
static void native_connect_ahead(xfer *x) {
  nxfer *n = (nxfer *)x;
  if (n->conn || x->in_flight || x->finished) return;
  hconn *k = NULL;
  for (int i = 0; i < n->naddr && !k; i++) k = idle_take(x->ctx, &n->addrs[i], n->addrlens[i]);
  if (k) {
    conn_take(n, k);
    if (conn_watch(k, BR_READ) != 0) ahead_drop(n);
  } else if (native_connect(n) != 0) {
    ahead_drop(n);
  } else {
    n->ahead = 1;
  }
}

static void conn_io(br_loop *loop, br_io *io, int events) {
  hconn *k = io->data;
  nxfer *n = k->x;
  if (!n) return;
  if (!n->x.in_flight) {
    ahead_io(n, k);
    return;
  }
  hctx *c = k->ctx;
  http_busy_enter(c);   /* aborts asked for from on_event wait until this returns */
  if (!k->connected) connect_done(n, k);
  else if (n->sent_off < n->reqhead.len + n->x.reqbody.len && !n->send_failed && !(events & (BR_READ | BR_HUP)))
    native_send(n, k);
  else native_read(n, k);
  http_busy_leave(c);
}

/* ---- the request ---- */

/* The request head, as curl would write it: the caller's headers, a header
 * given with an empty value removes ours of that name. */
static int native_head(nxfer *n, const char *method, const http_target *tg, int has_body) {
  xfer *x = &n->x;
  br_buf *b = &n->reqhead;
  char line[64];
  int bad = 0;
  bad |= br_buf_str(b, method) || br_buf_add(b, " ", 1);
  if (tg->plen == 0 || tg->path[0] == '?') bad |= br_buf_add(b, "/", 1);
  bad |= br_buf_add(b, tg->path, tg->plen) || br_buf_add(b, " HTTP/1.1\r\n", 11);
  if (!http_has_header(x, "host"))
    bad |= br_buf_add(b, "Host: ", 6) || br_buf_add(b, tg->authority, tg->alen) || br_buf_add(b, "\r\n", 2);
  if (!http_has_header(x, "accept")) bad |= br_buf_add(b, "Accept: */*\r\n", 13);
  if (has_body && !http_has_header(x, "content-length")) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", x->reqbody.len);
    bad |= br_buf_str(b, line);
  }
  const char *p = x->reqhdrs.p, *end = p + x->reqhdrs.len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *next = eol ? eol + 1 : end;
    const char *colon = memchr(p, ':', (size_t)(next - p));
    const char *v = colon ? colon + 1 : next;
    while (v < next && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) v++;
    if (v < next) bad |= br_buf_add(b, p, (size_t)(next - p));   /* empty: only removes ours */
    p = next;
  }
  bad |= br_buf_add(b, "\r\n", 2);
  return bad ? -1 : 0;
}

static const char *native_prepare(xfer *x, const http_opts *o) {
  nxfer *n = (nxfer *)x;
  hctx *c = x->ctx;
  if (!c->native && !(c->native = calloc(1, sizeof *c->native))) return "out of memory";
  memcpy(n->addrs, o->target.addrs, sizeof n->addrs);
  memcpy(n->addrlens, o->target.addrlens, sizeof n->addrlens);
  n->naddr = o->target.naddr;
  if (native_head(n, o->method, &o->target, o->body != NULL)) return "out of memory";
  return NULL;
}

static const char *native_start(xfer *x) {
  nxfer *n = (nxfer *)x;
  hconn *k = n->conn;   /* opened ahead (req:connect) */
  for (int i = 0; i < n->naddr && !k; i++) {
    k = idle_take(x->ctx, &n->addrs[i], n->addrlens[i]);
    if (k) conn_take(n, k);
  }
  if (!k) {
    native_open(n);
    return NULL;
  }
  /* write now, in the call (a connection still connecting: when it is up) */
  if (!k->connected) return NULL;
  if (conn_watch(k, BR_READ) != 0) native_os_error(n, errno, "epoll");
  else native_send(n, k);
  return NULL;
}

/* The transfer is over: a connection whose response ended cleanly goes
 * back to the idle list, any other is closed. */
static void native_detach(xfer *x) {
  nxfer *n = (nxfer *)x;
  hconn *k = n->conn;
  n->conn = NULL;
  if (!k) return;
  k->streamed = x->stream != STREAM_NONE;
  if (n->conn_keep && !(k->streamed && is_closer(x->ctx->native, k))) conn_park(k);
  else conn_close(k);
}

static void native_drop(xfer *x) {
  nxfer *n = (nxfer *)x;
  if (n->conn) conn_close(n->conn);
  n->conn = NULL;
}

/* Free what prepare made; a connection opened ahead of a request that
 * was never sent goes back to the idle list. */
static void native_release(xfer *x) {
  nxfer *n = (nxfer *)x;
  br_buf_free(&n->reqhead);
  hconn *k = n->conn;
  n->conn = NULL;
  if (k && k->connected) conn_park(k);
  else if (k) conn_close(k);
}

static void native_shutdown(hctx *c) {
  struct http_native_state *s = c->native;
  if (!s) return;
  while (s->idle) {
    hconn *k = s->idle;
    idle_unlink(k);
    conn_close(k);
  }
  free(s);
  c->native = NULL;
}

const http_transport http_native = {
  .name = "native",
  .xfer_size = sizeof(nxfer),
  .prepare = native_prepare,
  .start = native_start,
  .connect_ahead = native_connect_ahead,
  .detach = native_detach,
  .drop = native_drop,
  .release = native_release,
  .connecting = native_connecting,
  .shutdown = native_shutdown,
};
