/* The event loop (see include/benchrun/loop.h). Portable: readiness polling
 * and clocks come from the platform layer. */
#include "benchrun/loop.h"
#include "platform.h"
#include "sock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BATCH = 256 };

struct br_loop {
  br_poller *poller;
  br_timer **heap;          /* binary min-heap on (when, seq) */
  size_t heap_len, heap_cap;
  uint64_t timer_seq;
  long refs;                /* non-weak watchers + timers + explicit refs */
  int wake_pipe[2];
  br_io wake_io;
  /* events of the batch being dispatched; stopped watchers are erased here */
  br_poll_event batch[BATCH];
  int batch_len;
  int in_io;                /* dispatching I/O callbacks of a batch */
  int64_t poll_time;        /* when the poll of that batch returned */
};

int64_t br_now(void) { return br_platform_monotonic_ns(); }

static void drain_wake_pipe(br_loop *loop, br_io *io, int events) {
  char buf[256];
  while (read(io->fd, buf, sizeof buf) > 0) {}
}

br_loop *br_loop_new(void) {
  br_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  loop->poller = br_poller_new();
  if (!loop->poller || pipe(loop->wake_pipe) != 0) {
    br_poller_free(loop->poller);
    free(loop);
    return NULL;
  }
  br_fd_nonblock(loop->wake_pipe[0]);
  br_fd_nonblock(loop->wake_pipe[1]);
  loop->wake_io.weak = 1;
  if (br_io_start(loop, &loop->wake_io, loop->wake_pipe[0], BR_READ, drain_wake_pipe, NULL) != 0) {
    close(loop->wake_pipe[0]);
    close(loop->wake_pipe[1]);
    br_poller_free(loop->poller);
    free(loop);
    return NULL;
  }
  return loop;
}

void br_loop_free(br_loop *loop) {
  if (!loop) return;
  br_io_stop(loop, &loop->wake_io);
  close(loop->wake_pipe[0]);
  close(loop->wake_pipe[1]);
  br_poller_free(loop->poller);
  free(loop->heap);
  free(loop);
}

void br_loop_wakeup(br_loop *loop) {
  int saved = errno;   /* async-signal-safe: only write(2) */
  ssize_t r = write(loop->wake_pipe[1], "", 1);
  (void)r;             /* a full pipe already means "wake up" */
  errno = saved;
}

void br_loop_ref(br_loop *loop) { loop->refs++; }
void br_loop_unref(br_loop *loop) { loop->refs--; }
int br_loop_alive(const br_loop *loop) { return loop->refs > 0; }

/* ---- I/O watchers ---- */

int br_io_start(br_loop *loop, br_io *io, int fd, int events, br_io_cb cb, void *data) {
  events &= BR_READ | BR_WRITE;
  if (io->events && io->fd != fd) br_io_stop(loop, io);
  int old = io->events;
  if (events == 0) {
    br_io_stop(loop, io);
    io->fd = fd; io->cb = cb; io->data = data;
    return 0;
  }
  int rc = br_poller_set(loop->poller, fd, old, events, io);
  if (rc != 0) return rc;
  if (!old && !io->weak) loop->refs++;
  io->fd = fd;
  io->events = events;
  io->cb = cb;
  io->data = data;
  return 0;
}

void br_io_stop(br_loop *loop, br_io *io) {
  if (!io->events) return;
  br_poller_set(loop->poller, io->fd, io->events, 0, io);
  if (!io->weak) loop->refs--;
  io->events = 0;
  /* An event for it may still be waiting in the current batch. */
  for (int i = 0; i < loop->batch_len; i++)
    if (loop->batch[i].ptr == io) loop->batch[i].ptr = NULL;
}

/* ---- timers: binary heap ---- */

static int timer_before(const br_timer *a, const br_timer *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_place(br_loop *loop, size_t i, br_timer *t) {
  loop->heap[i] = t;
  t->heap_index = i + 1;
}

static void heap_up(br_loop *loop, size_t i) {
  br_timer *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!timer_before(t, loop->heap[parent])) break;
    heap_place(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_place(loop, i, t);
}

static void heap_down(br_loop *loop, size_t i) {
  br_timer *t = loop->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const br_timer *best = t;
    if (l < loop->heap_len && timer_before(loop->heap[l], best)) { m = l; best = loop->heap[l]; }
    if (r < loop->heap_len && timer_before(loop->heap[r], best)) { m = r; }
    if (m == i) break;
    heap_place(loop, i, loop->heap[m]);
    i = m;
  }
  heap_place(loop, i, t);
}

void br_timer_stop(br_loop *loop, br_timer *t) {
  if (!t->heap_index) return;
  size_t i = t->heap_index - 1;
  t->heap_index = 0;
  loop->refs--;
  br_timer *last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len) return;
  heap_place(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, last->heap_index - 1);
}

void br_timer_start(br_loop *loop, br_timer *t, int64_t when, br_timer_cb cb, void *data) {
  br_timer_stop(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    br_timer **h = realloc(loop->heap, cap * sizeof *h);
    if (!h) abort();   /* out of memory for a pointer array: nothing sane to do */
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->when = when;
  t->seq = loop->timer_seq++;
  t->cb = cb;
  t->data = data;
  loop->refs++;
  heap_place(loop, loop->heap_len++, t);
  heap_up(loop, t->heap_index - 1);
}

int64_t br_loop_event_time(const br_loop *loop) {
  return loop->in_io ? loop->poll_time : br_now();
}

int64_t br_loop_next_timer(const br_loop *loop) {
  return loop->heap_len ? loop->heap[0]->when : INT64_MAX;
}

static int run_due_timers(br_loop *loop) {
  int ran = 0;
  int64_t now = br_now();
  /* Timers started by callbacks for "now" wait for the next pass, so a
   * callback that re-arms itself cannot starve I/O. */
  uint64_t seq_limit = loop->timer_seq;
  while (loop->heap_len && loop->heap[0]->when <= now && loop->heap[0]->seq < seq_limit) {
    br_timer *t = loop->heap[0];
    br_timer_stop(loop, t);
    t->cb(loop, t);
    ran++;
  }
  return ran;
}

int br_loop_run_once(br_loop *loop, int64_t timeout_ns) {
  int64_t next = br_loop_next_timer(loop);
  if (next != INT64_MAX) {
    int64_t until = next - br_now();
    if (until < 0) until = 0;
    if (timeout_ns < 0 || until < timeout_ns) timeout_ns = until;
  }
  int n = br_poller_wait(loop->poller, timeout_ns, loop->batch, BATCH);
  if (n < 0) return n;
  loop->poll_time = br_now();
  loop->batch_len = n;
  loop->in_io = 1;
  int ran = 0;
  for (int i = 0; i < n; i++) {
    br_io *io = loop->batch[i].ptr;
    if (!io) continue;   /* stopped by an earlier callback in this batch */
    int ev = loop->batch[i].events;
    int want = io->events | BR_HUP;
    if (!(ev & want)) continue;
    io->cb(loop, io, ev & want);
    ran++;
  }
  loop->batch_len = 0;
  loop->in_io = 0;
  return ran + run_due_timers(loop);
}
