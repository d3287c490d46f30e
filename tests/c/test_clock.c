/* The monotonic clock never goes back, advances across a sleep, and agrees
 * with the wall clock about how long a sleep took (generous tolerances). */
#include "benchrun/loop.h"
#include "platform.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #c); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

int main(void) {
  int64_t prev = br_now();
  CHECK(prev > 0, "br_now() = %lld", (long long)prev);
  for (int i = 0; i < 1000000; i++) {
    int64_t t = br_now();
    if (t < prev) { CHECK(t >= prev, "step %d: %lld after %lld", i, (long long)t, (long long)prev); break; }
    prev = t;
  }
  int64_t m0 = br_now(), w0 = br_platform_wall_ns();
  struct timespec ts = {0, 50000000};
  nanosleep(&ts, NULL);
  int64_t m1 = br_now(), w1 = br_platform_wall_ns();
  CHECK(m1 - m0 >= 50000000, "slept %lld ns by the monotonic clock", (long long)(m1 - m0));
  CHECK(w1 - w0 >= 40000000 && w1 - w0 < 60000000000LL, "slept %lld ns by the wall clock", (long long)(w1 - w0));
  /* the wall clock is UTC epoch ns: after 2020-01-01 */
  CHECK(w0 > 1577836800LL * 1000000000LL, "wall = %lld", (long long)w0);
  if (failures) return 1;
  printf("test_clock: ok\n");
  return 0;
}
