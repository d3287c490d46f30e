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
