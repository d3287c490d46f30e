/* benchrun's one event loop: file descriptors, timers and a thread-safe
 * wake-up, with no Lua in it (the simulator runs it bare).
 *
 * The seam for modules:
 *   - sockets and pipes: a br_io per fd (curl's CURLMOPT_SOCKETFUNCTION maps
 *     straight onto br_io_start/br_io_modify/br_io_stop);
 *   - deadlines: a br_timer (curl's CURLMOPT_TIMERFUNCTION, clock.sleep,
 *     proc:wait timeouts) in a binary heap ordered by (when, seq);
 *   - other threads (the memory sampler) and signal handlers call
 *     br_loop_wakeup, which is async-signal-safe;
 *   - child exits: bench.proc watches its own SIGCHLD self-pipe with a br_io.
 * Watchers and timers are owned by the caller (embedded in its structs); the
 * loop only links them. Callbacks may start and stop any watcher or timer,
 * including the one being dispatched.
 *
 * Lua coroutines sit on top of this in sched.h. */
#ifndef BENCHRUN_LOOP_H
#define BENCHRUN_LOOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_loop br_loop;
typedef struct br_io br_io;
typedef struct br_timer br_timer;

enum { BR_READ = 1, BR_WRITE = 2, BR_HUP = 4 };

typedef void (*br_io_cb)(br_loop *loop, br_io *io, int events);
typedef void (*br_timer_cb)(br_loop *loop, br_timer *timer);

struct br_io {
  int fd;
  int events;   /* BR_READ | BR_WRITE currently registered (0: not registered) */
  int weak;     /* a weak watcher does not keep br_loop_alive() true */
  br_io_cb cb;
  void *data;
};

struct br_timer {
  int64_t when;        /* monotonic ns */
  uint64_t seq;        /* ties fire in start order */
  size_t heap_index;   /* 0: not active; else index + 1 */
  br_timer_cb cb;
  void *data;
};

/* Monotonic clock, integer nanoseconds (CLOCK_MONOTONIC on Linux,
 * CLOCK_UPTIME_RAW on macOS). */
int64_t br_now(void);

br_loop *br_loop_new(void);
void br_loop_free(br_loop *loop);

/* Watch fd for events (BR_READ|BR_WRITE). Returns 0 or -errno.
 * Calling it again on a registered watcher changes its events. */
int br_io_start(br_loop *loop, br_io *io, int fd, int events, br_io_cb cb, void *data);
/* Stop watching (idempotent). Does not close the fd. */
void br_io_stop(br_loop *loop, br_io *io);

/* Fire cb once at monotonic time `when` (ns). Restarting an active timer moves it. */
void br_timer_start(br_loop *loop, br_timer *t, int64_t when, br_timer_cb cb, void *data);
void br_timer_stop(br_loop *loop, br_timer *t);   /* idempotent */
static inline int br_timer_active(const br_timer *t) { return t->heap_index != 0; }

/* Keep the loop "alive" for something that is neither a watcher nor a timer
 * (a child being waited for, a queued request). */
void br_loop_ref(br_loop *loop);
void br_loop_unref(br_loop *loop);
/* True while any non-weak watcher, timer or ref is active. */
int br_loop_alive(const br_loop *loop);

/* Wait for events for at most timeout_ns (-1: until the next timer or an
 * event, forever if there is none; 0: poll), then dispatch I/O callbacks and
 * due timers. Returns the number of callbacks run, or -errno. */
int br_loop_run_once(br_loop *loop, int64_t timeout_ns);

/* Wake a loop blocked in br_loop_run_once; safe from any thread and from
 * signal handlers. */
void br_loop_wakeup(br_loop *loop);

/* The best arrival time for data read now: while I/O callbacks of a batch
 * run, the time the poll returned (every byte ready then had arrived by
 * then, and later callbacks of a big batch would otherwise stamp it late);
 * elsewhere, br_now(). */
int64_t br_loop_event_time(const br_loop *loop);

/* Time of the next timer, or INT64_MAX. */
int64_t br_loop_next_timer(const br_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
