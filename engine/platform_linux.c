/* Linux side of the platform layer (see platform.h). */
#include "platform.h"
#include "benchrun/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct br_poller { int epfd; };

br_poller *br_poller_new(void) {
  br_poller *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) { free(p); return NULL; }
  return p;
}

void br_poller_free(br_poller *p) {
  if (!p) return;
  close(p->epfd);
  free(p);
}

static uint32_t epoll_mask(int events) {
  uint32_t m = 0;
  if (events & BR_READ) m |= EPOLLIN | EPOLLRDHUP;
  if (events & BR_WRITE) m |= EPOLLOUT;
  return m;
}

int br_poller_set(br_poller *p, int fd, int old_events, int new_events, void *ptr) {
  struct epoll_event ev = { .events = epoll_mask(new_events), .data.ptr = ptr };
  int op = !old_events ? EPOLL_CTL_ADD : !new_events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(p->epfd, op, fd, &ev) == 0) return 0;
  /* The fd may have been closed and reused behind our back (curl does
   * this): fall back to the other operation once. */
  if (errno == EEXIST && op == EPOLL_CTL_ADD && epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno == ENOENT && op == EPOLL_CTL_MOD && epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF)) return 0;
  return -errno;
}

int br_poller_wait(br_poller *p, int64_t timeout_ns, br_poll_event *out, int max) {
  enum { BATCH = 256 };
  struct epoll_event evs[BATCH];
  if (max > BATCH) max = BATCH;
  int ms;
  if (timeout_ns < 0) ms = -1;
  else if (timeout_ns == 0) ms = 0;
  else {
    int64_t r = (timeout_ns + 999999) / 1000000;   /* round up: never wake early */
    ms = r > 1000000000 ? 1000000000 : (int)r;
  }
  int n = epoll_wait(p->epfd, evs, max, ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    int e = 0;
    if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) e |= BR_READ;
    if (evs[i].events & EPOLLOUT) e |= BR_WRITE;
    if (evs[i].events & (EPOLLHUP | EPOLLERR)) e |= BR_HUP | BR_READ;
    out[i].ptr = evs[i].data.ptr;
    out[i].events = e;
  }
  return n;
}

int64_t br_platform_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t br_platform_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int br_platform_executable_path(char *buf, size_t size) {
  ssize_t n = readlink("/proc/self/exe", buf, size - 1);
  if (n <= 0) return -1;
  buf[n] = 0;
  return 0;
}

/* ---- proc (bench.proc) ---- */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

void br_platform_child_prepare(int parent_pid) {
  /* SIGKILL, not SIGTERM: if benchrun itself was SIGKILLed nobody is left to
   * escalate, and a 200 GB server that ignores SIGTERM must still go. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent_pid) _exit(127);   /* benchrun died before prctl */
}

static void close_fd_range(unsigned lo, unsigned hi) {
  if (lo > hi) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  if (hi > (unsigned)max) hi = (unsigned)max;
  for (unsigned fd = lo; fd <= hi; fd++) close((int)fd);
}

void br_platform_close_fds(int keep_fd) {
  if (keep_fd < 3) { close_fd_range(3, ~0U); return; }
  close_fd_range(3, (unsigned)keep_fd - 1);
  close_fd_range((unsigned)keep_fd + 1, ~0U);
}

/* Find "oom_kill N" in a memory.events (v2) or memory.oom_control (v1) file. */
static long long read_oom_kill(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char key[64];
  long long v, found = -1;
  while (fscanf(f, "%63s %lld", key, &v) == 2)
    if (!strcmp(key, "oom_kill")) { found = v; break; }
  fclose(f);
  return found;
}

long long br_platform_oom_kill_count(void) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return -1;
  char line[1024], path[1200];
  long long n = -1;
  while (n < 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = 0;
    const char *controllers = c1 + 1, *cg = c2 + 1;
    if (!*controllers) {   /* cgroup v2 (or the unified half of a hybrid) */
      snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.events", cg);
      n = read_oom_kill(path);
      if (n < 0) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/unified%s/memory.events", cg);
        n = read_oom_kill(path);
      }
    } else if (strstr(controllers, "memory")) {
      snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
      n = read_oom_kill(path);
    }
  }
  fclose(f);
  return n;
}

/* Scan the kernel log (/dev/kmsg, one record per read) for the OOM killer
 * naming pid. Usually only readable by root (dmesg_restrict). */
static int kmsg_names_pid(int pid, char *line_out, size_t size) {
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  char rec[8192], needle1[64], needle2[64];
  snprintf(needle1, sizeof needle1, "Killed process %d ", pid);
  snprintf(needle2, sizeof needle2, ",pid=%d,", pid);
  int found = 0;
  for (int i = 0; i < 200000; i++) {
    ssize_t n = read(fd, rec, sizeof rec - 1);
    if (n < 0 && errno == EPIPE) continue;   /* overwritten records: keep going */
    if (n <= 0) break;
    rec[n] = 0;
    char *msg = strchr(rec, ';');
    msg = msg ? msg + 1 : rec;
    if (strstr(msg, needle1) || (strstr(msg, "oom-kill") && strstr(msg, needle2))) {
      size_t len = strcspn(msg, "\n");
      if (len >= size) len = size - 1;
      memcpy(line_out, msg, len);
      line_out[len] = 0;
      found = 1;
    }
  }
  close(fd);
  return found;
}

int br_platform_oom_evidence(int pid, long long oom_before, char *buf, size_t size) {
  buf[0] = 0;
  int found = 0;
  size_t used = 0;
  long long now = br_platform_oom_kill_count();
  if (oom_before >= 0 && now > oom_before) {
    used += (size_t)snprintf(buf, size, "cgroup memory oom_kill count rose from %lld to %lld", oom_before, now);
    found = 1;
  }
  char kline[512];
  if (used < size && kmsg_names_pid(pid, kline, sizeof kline)) {
    snprintf(buf + used, size - used, "%skernel log: %s", used ? "; " : "", kline);
    found = 1;
  }
  return found;
}
