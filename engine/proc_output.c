/* bench.proc's output capture (proc.h): stdout/stderr pipes read on the
 * loop into lines (a ring of recent ones, waking line waiters), kept whole
 * when asked, appended to a log file; stdin written from a buffer; the
 * Process methods that read or write them (tail, lines_since, output,
 * write, close_stdin). */
#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- output ---- */

static void ring_push(child *c, const char *line, size_t n) {
  if (n > LINE_MAX_BYTES) n = LINE_MAX_BYTES;
  if (n && line[n - 1] == '\r') n--;
  char *s = malloc(n + 1);
  if (!s) return;
  memcpy(s, line, n);
  s[n] = 0;
  size_t i = (size_t)(c->nlines % c->ring_cap);
  free(c->ring[i]);
  c->ring[i] = s;
  c->nlines++;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    p += w;
    n -= (size_t)w;
  }
}

/* Split what arrived into lines; the unfinished tail waits in partial. */
static int stream_consume(stream *s, const char *p, size_t n) {
  child *c = s->c;
  int lines = 0;
  if (s->capture) br_buf_add(&s->full, p, n);
  if (s->logfd >= 0) write_all(s->logfd, p, n);
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) {
      if (s->partial.len < LINE_MAX_BYTES) br_buf_add(&s->partial, p, n);
      break;
    }
    size_t k = (size_t)(nl - p);
    if (s->partial.len) {
      if (s->partial.len < LINE_MAX_BYTES) br_buf_add(&s->partial, p, k);
      ring_push(c, s->partial.p, s->partial.len);
      br_buf_clear(&s->partial);
    } else {
      ring_push(c, p, k);
    }
    lines++;
    p = nl + 1;
    n -= k + 1;
  }
  return lines;
}

void proc_stream_close(br_loop *loop, stream *s) {
  if (s->fd < 0) return;
  br_io_stop(loop, &s->io);
  close(s->fd);
  s->fd = -1;
}

/* Read what is there now (bounded, so a flood cannot starve the loop).
 * Returns EV_LINE / EV_EOF bits. */
int proc_stream_read(br_loop *loop, stream *s) {
  char chunk[65536];
  int ev = 0;
  for (int i = 0; i < 16 && s->fd >= 0; i++) {
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n > 0) {
      if (stream_consume(s, chunk, (size_t)n)) ev |= EV_LINE;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    /* EOF (or an error, which ends the stream the same way) */
    if (s->partial.len) {
      ring_push(s->c, s->partial.p, s->partial.len);
      br_buf_clear(&s->partial);
      ev |= EV_LINE;
    }
    proc_stream_close(loop, s);
    ev |= EV_EOF;
  }
  return ev;
}

void proc_on_stream(br_loop *loop, br_io *io, int events) {
  stream *s = io->data;
  child *c = s->c;
  int ev = proc_stream_read(loop, s);
  if (ev) proc_notify(c, ev);
}

void proc_on_stdin(br_loop *loop, br_io *io, int events) {
  child *c = io->data;
  while (c->input_off < c->input_len) {
    ssize_t w = write(c->in_fd, c->input + c->input_off, c->input_len - c->input_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (w <= 0) break;   /* EPIPE: the child does not read its input */
    c->input_off += (size_t)w;
  }
  br_io_stop(loop, &c->in_io);
  close(c->in_fd);
  c->in_fd = -1;
}

void proc_push_tail(lua_State *L, child *c, lua_Integer n) {
  uint64_t avail = c->nlines < c->ring_cap ? c->nlines : c->ring_cap;
  if (n < 0 || (uint64_t)n > avail) n = (lua_Integer)avail;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (uint64_t seq = c->nlines - (uint64_t)n; seq < c->nlines; seq++) {
    luaL_addstring(&b, c->ring[seq % c->ring_cap]);
    if (seq + 1 < c->nlines) luaL_addchar(&b, '\n');
  }
  /* an unfinished last line is output too */
  for (int i = 0; i < 2; i++) {
    stream *s = i ? &c->err : &c->out;
    if (s->partial.len) {
      if (n > 0) luaL_addchar(&b, '\n');
      luaL_addlstring(&b, s->partial.p, s->partial.len);
    }
  }
  luaL_pushresult(&b);
}

/* p:tail([n = 20]) -> the last n lines of stdout+stderr, as one string */
int process_tail(lua_State *L) {
  child *c = proc_check_child(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 20);
  if (c->running) proc_reap_all(c->ps);
  /* read what is waiting now; waiters hear about it as from the loop */
  int ev = proc_stream_read(c->ps->loop, &c->out) | proc_stream_read(c->ps->loop, &c->err);
  if (ev) proc_notify(c, ev);
  proc_push_tail(L, c, n);
  return 1;
}

/* p:lines_since(seq) -> {lines...}, next_seq (lines still in the ring) */
int process_lines_since(lua_State *L) {
  child *c = proc_check_child(L, 1);
  lua_Integer from = luaL_optinteger(L, 2, 0);
  uint64_t first = c->nlines > c->ring_cap ? c->nlines - c->ring_cap : 0;
  uint64_t seq = from < 0 ? 0 : (uint64_t)from;
  if (seq < first) seq = first;
  lua_newtable(L);
  int i = 1;
  for (; seq < c->nlines; seq++) {
    lua_pushstring(L, c->ring[seq % c->ring_cap]);
    lua_rawseti(L, -2, i++);
  }
  lua_pushinteger(L, (lua_Integer)seq);
  return 2;
}

/* p:output() -> stdout, stderr captured so far (stdout = "capture") */
int process_output(lua_State *L) {
  child *c = proc_check_child(L, 1);
  lua_pushlstring(L, c->out.full.p ? c->out.full.p : "", c->out.full.len);
  lua_pushlstring(L, c->err.full.p ? c->err.full.p : "", c->err.full.len);
  return 2;
}

/* p:write(data) for stdin = "pipe" (blocking write; closes with p:close_stdin()) */
int process_write(lua_State *L) {
  child *c = proc_check_child(L, 1);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  if (c->in_fd < 0) return luaL_error(L, "proc.write: %s was not started with stdin = \"pipe\"", c->name);
  while (n > 0) {
    ssize_t w = write(c->in_fd, d, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      continue;
    }
    if (w < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "proc.write: %s", strerror(errno));
      return 2;
    }
    d += w;
    n -= (size_t)w;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int process_close_stdin(lua_State *L) {
  child *c = proc_check_child(L, 1);
  if (c->in_fd >= 0) {
    br_io_stop(c->ps->loop, &c->in_io);
    close(c->in_fd);
    c->in_fd = -1;
  }
  return 0;
}
