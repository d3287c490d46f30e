/* macOS side of the platform layer (see platform.h). Compiled here with a
 * cross-compiler; never run on macOS by this project's CI. */
#include "platform.h"
#include "benchrun/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct br_poller { int kq; };

br_poller *br_poller_new(void) {
  br_poller *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->kq = kqueue();
  if (p->kq < 0) { free(p); return NULL; }
  return p;
}

void br_poller_free(br_poller *p) {
  if (!p) return;
  close(p->kq);
  free(p);
}

int br_poller_set(br_poller *p, int fd, int old_events, int new_events, void *ptr) {
  struct kevent ch[2];
  int n = 0;
  if ((old_events ^ new_events) & BR_READ)
    EV_SET(&ch[n++], fd, EVFILT_READ, (new_events & BR_READ) ? EV_ADD : EV_DELETE, 0, 0, ptr);
  else if (new_events & BR_READ)
    EV_SET(&ch[n++], fd, EVFILT_READ, EV_ADD, 0, 0, ptr);    /* refresh udata */
  if ((old_events ^ new_events) & BR_WRITE)
    EV_SET(&ch[n++], fd, EVFILT_WRITE, (new_events & BR_WRITE) ? EV_ADD : EV_DELETE, 0, 0, ptr);
  else if (new_events & BR_WRITE)
    EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_ADD, 0, 0, ptr);
  for (int i = 0; i < n; i++) {
    if (kevent(p->kq, &ch[i], 1, NULL, 0, NULL) < 0 && !(ch[i].flags & EV_DELETE))
      return -errno;
  }
  return 0;
}

int br_poller_wait(br_poller *p, int64_t timeout_ns, br_poll_event *out, int max) {
  enum { BATCH = 256 };
  struct kevent evs[BATCH];
  struct timespec ts, *tsp = NULL;
  if (max > BATCH) max = BATCH;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tsp = &ts;
  }
  int n = kevent(p->kq, NULL, 0, evs, max, tsp);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  /* kqueue reports read and write of one fd as two events; the loop
   * dispatches each separately, which its callbacks allow. */
  for (int i = 0; i < n; i++) {
    int e = evs[i].filter == EVFILT_WRITE ? BR_WRITE : BR_READ;
    if (evs[i].flags & (EV_EOF | EV_ERROR)) e |= BR_HUP;
    out[i].ptr = evs[i].udata;
    out[i].events = e;
  }
  return n;
}

int64_t br_platform_monotonic_ns(void) {
  return (int64_t)clock_gettime_nsec_np(CLOCK_UPTIME_RAW);
}

int64_t br_platform_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#include <limits.h>
#include <mach-o/dyld.h>

int br_platform_executable_path(char *buf, size_t size) {
  char raw[PATH_MAX];
  uint32_t n = sizeof raw;
  if (_NSGetExecutablePath(raw, &n) != 0) return -1;
  char resolved[PATH_MAX];
  if (!realpath(raw, resolved)) return -1;
  if (strlen(resolved) >= size) return -1;
  strcpy(buf, resolved);
  return 0;
}

/* ---- proc (bench.proc) ---- */
/* Never run on macOS by this project; written against the documented
 * POSIX calls only. */
#include <signal.h>
#include <stdio.h>

void br_platform_child_prepare(int parent_pid) {
  /* macOS has no parent-death signal; a child of a SIGKILLed benchrun is
   * found by the next run only through the process table. */
  (void)parent_pid;
}

void br_platform_close_fds(int keep_fd) {
  int max = getdtablesize();
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++)
    if (fd != keep_fd) close(fd);
}

long long br_platform_oom_kill_count(void) { return -1; }

int br_platform_oom_evidence(int pid, long long oom_before, char *buf, size_t size) {
  (void)pid;
  (void)oom_before;
  /* jetsam kills with SIGKILL and leaves no public trace a user process can
   * read; the unexplained SIGKILL itself is its signature. */
  snprintf(buf, size, "SIGKILL from outside benchrun is the signature of jetsam (memory pressure) on macOS");
  return 0;
}
