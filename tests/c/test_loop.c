/* The event loop: timer order and ties, cancellation and restart, an I/O
 * watcher on a pipe, a wake-up from another thread, and watchers stopped
 * from inside other callbacks. */
#include "benchrun/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK_EQ(a, b) do { long long va_ = (long long)(a), vb_ = (long long)(b); \
  if (va_ != vb_) { fprintf(stderr, "%s:%d: %s == %s: got %lld, expected %lld\n", \
                            __FILE__, __LINE__, #a, #b, va_, vb_); failures++; } } while (0)
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static const int64_t MS = 1000000;

/* ---- a log of which timers fired, in order ---- */
static int fired[64];
static int nfired;

static void log_timer(br_loop *loop, br_timer *t) {
  (void)loop;
  if (nfired < 64) fired[nfired++] = (int)(intptr_t)t->data;
}

static void run_until_idle(br_loop *loop) {
  for (int guard = 0; br_loop_alive(loop) && guard < 10000; guard++) br_loop_run_once(loop, -1);
}

static void test_timer_order(void) {
  br_loop *loop = br_loop_new();
  br_timer t[6];
  memset(t, 0, sizeof t);
  int64_t now = br_now();
  /* started out of order: they must fire by deadline */
  int64_t offs[6] = {5, 1, 4, 2, 3, 0};
  for (int i = 0; i < 6; i++) br_timer_start(loop, &t[i], now + offs[i] * MS, log_timer, (void *)(intptr_t)offs[i]);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 6);
  for (int i = 0; i < 6; i++) CHECK_EQ(fired[i], i);
  CHECK(!br_loop_alive(loop));
  br_loop_free(loop);
}

static void test_timer_ties(void) {
  br_loop *loop = br_loop_new();
  br_timer t[20];
  memset(t, 0, sizeof t);
  int64_t when = br_now() + 2 * MS;
  for (int i = 0; i < 20; i++) br_timer_start(loop, &t[i], when, log_timer, (void *)(intptr_t)i);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 20);
  for (int i = 0; i < 20; i++) CHECK_EQ(fired[i], i);   /* same deadline: start order */
  br_loop_free(loop);
}

static void test_timer_cancel_restart(void) {
  br_loop *loop = br_loop_new();
  br_timer a, b, c;
  memset(&a, 0, sizeof a); memset(&b, 0, sizeof b); memset(&c, 0, sizeof c);
  int64_t now = br_now();
  br_timer_start(loop, &a, now + 1 * MS, log_timer, (void *)1);
  br_timer_start(loop, &b, now + 2 * MS, log_timer, (void *)2);
  br_timer_start(loop, &c, now + 3 * MS, log_timer, (void *)3);
  CHECK(br_timer_active(&b));
  br_timer_stop(loop, &b);
  br_timer_stop(loop, &b);   /* idempotent */
  CHECK(!br_timer_active(&b));
  /* restarting an active timer moves it: a now fires last */
  br_timer_start(loop, &a, now + 4 * MS, log_timer, (void *)1);
  CHECK_EQ(br_loop_next_timer(loop), now + 3 * MS);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 2);
  CHECK_EQ(fired[0], 3);
  CHECK_EQ(fired[1], 1);
  CHECK_EQ(br_loop_next_timer(loop), INT64_MAX);
  /* a fired timer can be started again */
  br_timer_start(loop, &b, br_now(), log_timer, (void *)2);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 1);
  CHECK_EQ(fired[0], 2);
  br_loop_free(loop);
}

/* A timer that fires no earlier than asked (generous: no upper bound). */
static void test_timer_not_early(void) {
  br_loop *loop = br_loop_new();
  br_timer t;
  memset(&t, 0, sizeof t);
  int64_t start = br_now();
  br_timer_start(loop, &t, start + 20 * MS, log_timer, (void *)0);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 1);
  CHECK(br_now() - start >= 20 * MS);
  br_loop_free(loop);
}

/* Many timers with random deadlines come out sorted (the heap). */
static void test_timer_heap(void) {
  br_loop *loop = br_loop_new();
  enum { N = 500 };
  static br_timer t[N];
  memset(t, 0, sizeof t);
  int64_t base = br_now() + 1000 * MS;   /* far away: we only inspect the heap */
  unsigned seed = 12345;
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    br_timer_start(loop, &t[i], base + (int64_t)(seed % 1000), log_timer, NULL);
  }
  for (int i = 0; i < N; i += 3) br_timer_stop(loop, &t[i]);
  int64_t prev = INT64_MIN;
  int count = 0;
  while (br_loop_next_timer(loop) != INT64_MAX) {
    int64_t next = br_loop_next_timer(loop);
    CHECK(next >= prev);
    prev = next;
    for (int i = 0; i < N; i++)
      if (br_timer_active(&t[i]) && t[i].when == next) { br_timer_stop(loop, &t[i]); count++; break; }
  }
  CHECK_EQ(count, N - (N + 2) / 3);
  br_loop_free(loop);
}

/* ---- I/O ---- */
typedef struct { br_io io; int reads; char got[64]; size_t len; } reader;

static void on_readable(br_loop *loop, br_io *io, int events) {
  reader *r = io->data;
  if (events & BR_READ) {
    ssize_t n = read(io->fd, r->got + r->len, sizeof r->got - 1 - r->len);
    if (n > 0) r->len += (size_t)n;
    r->reads++;
    if (n == 0) br_io_stop(loop, io);   /* EOF */
  } else if (events & BR_HUP) {
    br_io_stop(loop, io);
  }
}

static void test_io_pipe(void) {
  br_loop *loop = br_loop_new();
  int p[2];
  CHECK_EQ(pipe(p), 0);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  reader r;
  memset(&r, 0, sizeof r);
  CHECK_EQ(br_io_start(loop, &r.io, p[0], BR_READ, on_readable, &r), 0);
  CHECK(br_loop_alive(loop));
  /* nothing to read: a poll returns without running the callback */
  CHECK_EQ(br_loop_run_once(loop, 0), 0);
  CHECK_EQ(write(p[1], "hello", 5), 5);
  br_loop_run_once(loop, 1000 * MS);
  CHECK_EQ(r.len, 5);
  CHECK(memcmp(r.got, "hello", 5) == 0);
  close(p[1]);
  run_until_idle(loop);   /* EOF stops the watcher, so the loop ends */
  CHECK(!br_loop_alive(loop));
  CHECK_EQ(r.io.events, 0);
  close(p[0]);
  br_loop_free(loop);
}

/* Two watchers ready in the same batch: the first stops the second, whose
 * callback must then not run. */
typedef struct { br_io io; br_io *victim; int calls; } stopper;

static void stop_other(br_loop *loop, br_io *io, int events) {
  stopper *s = io->data;
  s->calls++;
  if (s->victim) br_io_stop(loop, s->victim);
  br_io_stop(loop, io);
}

static void test_stop_from_callback(void) {
  br_loop *loop = br_loop_new();
  int a[2], b[2];
  CHECK_EQ(pipe(a), 0);
  CHECK_EQ(pipe(b), 0);
  stopper sa, sb;
  memset(&sa, 0, sizeof sa);
  memset(&sb, 0, sizeof sb);
  sa.victim = &sb.io;
  sb.victim = &sa.io;
  br_io_start(loop, &sa.io, a[0], BR_READ, stop_other, &sa);
  br_io_start(loop, &sb.io, b[0], BR_READ, stop_other, &sb);
  CHECK_EQ(write(a[1], "x", 1), 1);
  CHECK_EQ(write(b[1], "x", 1), 1);
  int ran = br_loop_run_once(loop, 1000 * MS);
  CHECK_EQ(ran, 1);
  CHECK_EQ(sa.calls + sb.calls, 1);
  CHECK(!br_loop_alive(loop));
  close(a[0]); close(a[1]); close(b[0]); close(b[1]);
  br_loop_free(loop);
}

/* A timer callback that stops another timer due at the same time. */
static br_timer victim_timer;
static void stop_victim(br_loop *loop, br_timer *t) {
  log_timer(loop, t);
  br_timer_stop(loop, &victim_timer);
}

static void test_timer_stop_from_callback(void) {
  br_loop *loop = br_loop_new();
  br_timer first;
  memset(&first, 0, sizeof first);
  memset(&victim_timer, 0, sizeof victim_timer);
  int64_t when = br_now() + 1 * MS;
  br_timer_start(loop, &first, when, stop_victim, (void *)1);
  br_timer_start(loop, &victim_timer, when, log_timer, (void *)2);
  nfired = 0;
  run_until_idle(loop);
  CHECK_EQ(nfired, 1);
  CHECK_EQ(fired[0], 1);
  br_loop_free(loop);
}

/* ---- wake-up from another thread ---- */
static void *waker(void *arg) {
  usleep(20000);
  br_loop_wakeup(arg);
  return NULL;
}

static void test_wakeup_thread(void) {
  br_loop *loop = br_loop_new();
  /* the wake pipe is weak: a loop with nothing else is not alive */
  CHECK(!br_loop_alive(loop));
  br_loop_ref(loop);
  CHECK(br_loop_alive(loop));
  pthread_t th;
  CHECK_EQ(pthread_create(&th, NULL, waker, loop), 0);
  int64_t start = br_now();
  /* without the wake-up this would block for 60 s */
  int rc = br_loop_run_once(loop, 60000 * MS);
  int64_t waited = br_now() - start;
  pthread_join(th, NULL);
  CHECK(rc >= 0);
  CHECK(waited < 30000 * MS);
  br_loop_unref(loop);
  CHECK(!br_loop_alive(loop));
  br_loop_free(loop);
}

/* A timeout with nothing ready returns after about that long. */
static void test_run_once_timeout(void) {
  br_loop *loop = br_loop_new();
  int64_t start = br_now();
  CHECK_EQ(br_loop_run_once(loop, 10 * MS), 0);
  CHECK(br_now() - start >= 9 * MS);
  br_loop_free(loop);
}

/* Deadlines a second or more ahead (on Linux: a timerfd set once, the
 * waits without a timeout) fire at their time while I/O wakes the loop
 * every 20 ms, also when a nearer one is added after the first was set. */
typedef struct { br_loop *loop; int fd; int64_t start; int reads; br_timer b; int64_t fired_a, fired_b; _Atomic int done; } far_state;

static void far_fired(br_loop *loop, br_timer *t) {
  (void)loop;
  far_state *f = t->data;
  if (t == &f->b) f->fired_b = br_now();
  else { f->fired_a = br_now(); f->done = 1; }
}

static void far_read(br_loop *loop, br_io *io, int events) {
  (void)events;
  far_state *f = io->data;
  char c[64];
  while (read(io->fd, c, sizeof c) > 0) f->reads++;
  if (f->reads >= 5 && !br_timer_active(&f->b) && !f->fired_b)   /* ~100 ms in: a nearer far deadline */
    br_timer_start(loop, &f->b, f->start + 1200 * MS, far_fired, f);
}

static void *far_writer(void *arg) {
  far_state *f = arg;
  for (int i = 0; i < 80 && !f->done; i++) {   /* at most 1.6 s */
    if (write(f->fd, "x", 1) < 0) break;
    usleep(20000);
  }
  return NULL;
}

static void test_far_timers_with_io(void) {
  far_state f;
  memset(&f, 0, sizeof f);
  f.loop = br_loop_new();
  int fds[2];
  CHECK_EQ(pipe(fds), 0);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  f.fd = fds[1];
  br_io io;
  memset(&io, 0, sizeof io);
  br_io_start(f.loop, &io, fds[0], BR_READ, far_read, &f);
  br_timer a;
  memset(&a, 0, sizeof a);
  f.start = br_now();
  br_timer_start(f.loop, &a, f.start + 1400 * MS, far_fired, &f);
  pthread_t th;
  CHECK_EQ(pthread_create(&th, NULL, far_writer, &f), 0);
  while (!f.fired_a && br_now() - f.start < 5000 * MS) br_loop_run_once(f.loop, -1);
  pthread_join(th, NULL);
  CHECK(f.reads >= 5);
  CHECK(f.fired_b >= f.start + 1200 * MS);
  CHECK(f.fired_a >= f.start + 1400 * MS);
  CHECK(f.fired_b < f.fired_a);
  CHECK(f.fired_a < f.start + 1900 * MS);   /* not seconds late (generous: a loaded machine) */
  br_io_stop(f.loop, &io);
  close(fds[0]);
  close(fds[1]);
  br_loop_free(f.loop);
}

int main(void) {
  test_timer_order();
  test_timer_ties();
  test_timer_cancel_restart();
  test_timer_not_early();
  test_timer_heap();
  test_timer_stop_from_callback();
  test_io_pipe();
  test_stop_from_callback();
  test_wakeup_thread();
  test_run_once_timeout();
  test_far_timers_with_io();
  if (failures) {
    fprintf(stderr, "test_loop: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_loop: ok\n");
  return 0;
}
