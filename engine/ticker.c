/* The samplers' thread and schedule (ticker.h). */
#include "ticker.h"

#include "benchrun/loop.h"
#include "platform.h"

#include <signal.h>

int br_ticker_start(br_ticker *t, void *(*fn)(void *), void *arg) {
  t->stop = 0;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&t->thread, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0) t->running = 1;
  return rc;
}

int br_ticker_wait(br_ticker *t, int64_t *next, int64_t interval_ns) {
  if (interval_ns < 1) interval_ns = 1;
  *next += interval_ns;
  int64_t now = br_now();
  if (*next <= now) *next = now + interval_ns - (now - *next) % interval_ns;
  pthread_mutex_lock(t->mu);
  while (!t->stop && br_now() < *next) {
    pthread_mutex_unlock(t->mu);
    int64_t until = *next, cap = br_now() + 50000000;
    br_platform_sleep_until(until < cap ? until : cap);
    pthread_mutex_lock(t->mu);
  }
  int stop = t->stop;
  pthread_mutex_unlock(t->mu);
  return stop;
}

void br_ticker_join(br_ticker *t) {
  if (!t->running) return;
  pthread_mutex_lock(t->mu);
  t->stop = 1;
  pthread_mutex_unlock(t->mu);
  pthread_join(t->thread, NULL);
  t->running = 0;
}
