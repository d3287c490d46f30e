/* The platform layer: everything that differs between Linux and macOS is
 * behind these functions, implemented in platform_linux.c and
 * platform_darwin.c. No other engine file tests __APPLE__ or __linux__. */
#ifndef BENCHRUN_PLATFORM_H
#define BENCHRUN_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* --- readiness polling (epoll / kqueue) --- */
typedef struct br_poller br_poller;
typedef struct { void *ptr; int events; } br_poll_event; /* events: BR_READ|BR_WRITE|BR_HUP */

br_poller *br_poller_new(void);
void br_poller_free(br_poller *p);
/* Change the interest of fd from old_events to new_events (0 = remove). */
int br_poller_set(br_poller *p, int fd, int old_events, int new_events, void *ptr);
/* Wait up to timeout_ns (-1 forever); fills out[] and returns the count, or -errno. */
int br_poller_wait(br_poller *p, int64_t timeout_ns, br_poll_event *out, int max);

/* --- clocks --- */
int64_t br_platform_monotonic_ns(void);
/* Wall clock as UTC epoch nanoseconds. */
int64_t br_platform_wall_ns(void);

/* --- the running executable --- */
/* Absolute path of this executable into buf; 0 or -1. */
int br_platform_executable_path(char *buf, size_t size);

#endif
