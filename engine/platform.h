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

/* --- socket receive times --- */
/* Ask the kernel to stamp what arrives on a TCP socket (Linux
 * SO_TIMESTAMPNS, macOS SO_TIMESTAMP). 0, or -1 where it cannot. */
int br_platform_rx_stamp_enable(int fd);
/* The room a recvmsg control buffer needs for that stamp. */
size_t br_platform_rx_stamp_space(void);
/* If the control message (a struct cmsghdr *) is that stamp, its wall-clock
 * time in *wall_ns (Linux: the last segment read; macOS: µs) and 1; else 0. */
int br_platform_rx_stamp_of(const void *cmsg, int64_t *wall_ns);

/* --- the running executable --- */
/* Absolute path of this executable into buf; 0 or -1. */
int br_platform_executable_path(char *buf, size_t size);

/* --- proc (bench.proc) --- */
/* In a freshly forked child, before exec; async-signal-safe only. Arranges
 * for the child to die with benchrun if benchrun is SIGKILLed (Linux:
 * PR_SET_PDEATHSIG; macOS has no equivalent: nothing). parent_pid is the
 * pid that forked; the child exits if it has already been re-parented. */
void br_platform_child_prepare(int parent_pid);
/* Close every fd >= 3 except keep_fd (-1: none); async-signal-safe. */
void br_platform_close_fds(int keep_fd);
/* The out-of-memory kill counter of benchrun's cgroup (Linux memory.events
 * oom_kill), or -1 where there is none. */
long long br_platform_oom_kill_count(void);
/* Evidence that pid was killed for memory: cgroup oom_kill rising above
 * oom_before, a kernel log line naming the pid written after since_ns (the
 * spawn, monotonic clock: an older line is about an earlier process that had
 * the same pid) (Linux, when readable). Writes a sentence into buf; returns
 * 1 if evidence was found, else 0 (buf may then hold a note: macOS says
 * that jetsam leaves no trace). */
int br_platform_oom_evidence(int pid, long long oom_before, int64_t since_ns, char *buf, size_t size);
/* The processes holding a listening TCP socket on port (IPv4 or IPv6, any
 * local address): their pids into pids[max] (each once). *unowned gets the
 * number of listening sockets on that port whose process was not found (one
 * benchrun may not inspect: another user's). Returns the pid count, or -1
 * where the platform cannot tell. Linux: /proc/net/tcp{,6} and the socket
 * inodes of /proc/PID/fd; macOS: proc_pidinfo / proc_pidfdinfo (another
 * user's sockets are not seen there at all). */
int br_platform_port_listeners(int port, int *pids, int max, int *unowned);
/* The parent, process group and command line (arguments joined by spaces,
 * cut to size) of pid. 0, or -1 when it is gone or cannot be read. */
int br_platform_proc_info(int pid, int *ppid, int *pgid, char *cmd, size_t size);

/* --- mem (bench.mem) --- */
/* Memory of one process: rss and the platform's best "real" figure (Linux:
 * PSS from smaps_rollup, falling back to RSS when unreadable; macOS:
 * phys_footprint). want_real = 0 skips the expensive real figure (*real is
 * then -1). Bytes. Returns 0, or -ESRCH when pid is gone, -errno otherwise.
 * Thread-safe. (mem.c sums a process tree from this and the next one.) */
int br_platform_proc_one_mem(int pid, int want_real, int64_t *rss, int64_t *real);
/* The direct children of pid into out[max]; returns how many (0 if none or gone). */
int br_platform_proc_children(int pid, int *out, int max);
/* The name of the "real" figure: "pss" or "footprint". */
const char *br_platform_real_mem_name(void);
/* System memory in bytes; -1 where the platform has no such figure.
 * wired, compressed and gpu_wired_limit are macOS only. */
typedef struct {
  int64_t total, available, used, free, swap_used, wired, compressed, gpu_wired_limit;
} br_sys_mem;
int br_platform_sys_mem(br_sys_mem *out);
/* GPU memory per device (Linux: NVML loaded with dlopen, from
 * $BENCHRUN_NVML when set, else libnvidia-ml.so.1; macOS: IOKit
 * accelerator statistics). Returns the count filled (0..max), or -1 with
 * why filled ("not available: ..."). Thread-safe. */
typedef struct { char name[96]; int64_t used, total; } br_gpu_mem;
int br_platform_gpu_mem(br_gpu_mem *out, int max, char *why, size_t whysz);
/* GPU memory per process, as the driver lists it (Linux: NVML's compute
 * processes of every device). Fills out[max] with {pid, device index, used
 * bytes; used = -1 where the driver says "not available"} and returns the
 * count (0..max). Returns -1 with why filled when the driver gives no
 * per-process figures (no NVML, a library without the function, an error),
 * and -2 where a process's own memory figure already holds what it uses on
 * the GPU (macOS: unified memory). Thread-safe. */
typedef struct { int pid, device; int64_t used; } br_gpu_proc;
int br_platform_gpu_procs(br_gpu_proc *out, int max, char *why, size_t whysz);
/* A function of the NVML library that the functions above load and
 * initialise (bench.power's NVIDIA source reads energy, power, temperature,
 * clocks and throttle reasons through it): NULL with why filled where
 * there is no NVML (macOS always) or the library lacks that function. */
void *br_platform_nvml_symbol(const char *name, char *why, size_t whysz);
/* Sleep until the monotonic clock reaches when_ns (absolute; no drift). */
void br_platform_sleep_until(int64_t when_ns);

/* --- sys (bench.sys) --- */
/* Host facts; strings empty and numbers 0 where unknown. */
typedef struct {
  char os[32], os_version[128], kernel[128], arch[32], hostname[256], cpu_model[160];
  int cores_logical, cores_physical, cores_performance, cores_efficiency;
  int64_t ram, page_size;
} br_sys_info;
int br_platform_sys_info(br_sys_info *out);
/* Read a kernel parameter by its sysctl name ("vm.swappiness",
 * "iogpu.wired_limit_mb") without any helper program (Linux /proc/sys,
 * macOS sysctlbyname), as text. 0 or -errno. */
int br_platform_sysctl_read(const char *name, char *buf, size_t size);
/* Write one directly (needs root). 0 or -errno. */
int br_platform_sysctl_write(const char *name, const char *value);

/* --- http (bench.http's client figures) --- */
/* Peak resident set size of this process in bytes (getrusage's ru_maxrss
 * is KiB on Linux and bytes on macOS); -1 on failure. */
int64_t br_platform_self_maxrss(void);

#endif
