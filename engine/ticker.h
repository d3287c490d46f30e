/* A background thread on an absolute schedule, shared by the samplers of
 * bench.mem and bench.power: signals stay with the main thread (Ctrl-C,
 * SIGCHLD), the schedule does not drift and skips the slots an overrun
 * missed, and a stop is answered within 50 ms whatever the interval. */
#ifndef BENCHRUN_TICKER_H
#define BENCHRUN_TICKER_H

#include <pthread.h>
#include <stdint.h>

typedef struct br_ticker {
  pthread_mutex_t *mu;   /* the owner's lock; `stop` is read and written under it */
  pthread_t thread;
  int running;           /* started and not joined */
  int stop;              /* asks the thread to end */
} br_ticker;

/* Run fn(arg) on a new thread with every signal blocked; clears `stop`.
 * -> 0, or the errno of pthread_create. */
int br_ticker_start(br_ticker *t, void *(*fn)(void *), void *arg);

/* The thread's wait for its next slot: *next (the slot just served) moves
 * on by interval_ns, past now if an overrun missed slots; sleeps until then
 * or until a stop. -> 1 when asked to stop. */
int br_ticker_wait(br_ticker *t, int64_t *next, int64_t interval_ns);

/* Ask the thread to stop and join it (nothing when not running). */
void br_ticker_join(br_ticker *t);

#endif
