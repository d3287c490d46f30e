/* A macOS executable made of engine/platform_darwin.c and this file, which
 * tests/macos/check.sh cross-compiles and LINKS against libSystem's stubs:
 * linking is what proves that every function the macOS platform layer calls
 * exists on macOS (a misspelt or Linux-only name is an undefined symbol).
 * It is never run by this project's CI (no macOS here). On a Mac it is a
 * smoke test of the calls below; the rest of platform.h is covered by the
 * link alone. */
#include "platform.h"
#include "benchrun/loop.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int failures;

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "platform_main: %s\n", what);
    failures++;
  }
}

/* A byte written into a pipe must make the poller report the read end. */
static void check_poller(void) {
  br_poller *p = br_poller_new();
  expect(p != NULL, "br_poller_new returned NULL");
  if (!p) return;
  int fds[2];
  if (pipe(fds) != 0) {
    expect(0, "pipe failed");
    br_poller_free(p);
    return;
  }
  expect(write(fds[1], "x", 1) == 1, "write to the pipe failed");
  expect(br_poller_set(p, fds[0], 0, BR_READ, &fds[0]) == 0, "br_poller_set(add) failed");
  br_poll_event ev[4];
  int n = br_poller_wait(p, 1000000000, ev, 4);
  expect(n == 1, "br_poller_wait: expected 1 event");
  if (n == 1) {
    expect(ev[0].ptr == &fds[0], "br_poller_wait: wrong ptr");
    expect((ev[0].events & BR_READ) != 0, "br_poller_wait: BR_READ not set");
  }
  expect(br_poller_set(p, fds[0], BR_READ, 0, NULL) == 0, "br_poller_set(remove) failed");
  br_poller_free(p);
  close(fds[0]);
  close(fds[1]);
}

static void check_clocks(void) {
  int64_t a = br_platform_monotonic_ns();
  int64_t b = br_platform_monotonic_ns();
  expect(a > 0 && b >= a, "br_platform_monotonic_ns went backwards or is not positive");
  /* 2020-01-01T00:00:00Z: any real wall clock is past it. */
  expect(br_platform_wall_ns() > INT64_C(1577836800) * 1000000000, "br_platform_wall_ns is before 2020");
}

static void check_executable_path(void) {
  char path[PATH_MAX];
  int rc = br_platform_executable_path(path, sizeof path);
  expect(rc == 0 && path[0] == '/', "br_platform_executable_path: expected an absolute path");
  if (rc == 0) expect(strstr(path, "platform_main") != NULL, "br_platform_executable_path: not this program");
}

int main(void) {
  check_poller();
  check_clocks();
  check_executable_path();
  if (failures) return 1;
  puts("platform_main: ok");
  return 0;
}
