/* Linux side of the platform layer (see platform.h). Long file: one file
 * per platform on purpose, whatever its length: everything platform.h asks
 * of Linux is here, in sections, and platform_darwin.c answers the same list
 * for macOS. */
#include "platform.h"
#include "benchrun/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* tfd: a timerfd in the epoll set for deadlines far ahead (see
 * br_poller_wait), -1 where there is none; armed: the absolute deadline
 * (CLOCK_MONOTONIC ns) it is set to, 0 when it is not set. */
struct br_poller { int epfd, tfd; int64_t armed; };

br_poller *br_poller_new(void) {
  /* The default 50 µs timer slack would show up in every scheduled send and
   * simulated token: ask for 1 µs on the thread that runs the loop. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  br_poller *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) { free(p); return NULL; }
  p->armed = 0;
  p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &p->tfd };
  if (p->tfd >= 0 && epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->tfd, &ev) != 0) {
    close(p->tfd);
    p->tfd = -1;   /* every deadline then goes to the wait's timeout */
  }
  return p;
}

void br_poller_free(br_poller *p) {
  if (!p) return;
  if (p->tfd >= 0) close(p->tfd);
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

/* epoll_pwait2 (Linux 5.11) takes a timespec, so timers fire on time instead
 * of up to a millisecond late; older kernels fall back to epoll_wait. */
static int pwait2_missing;

/* A deadline at least FAR_NS ahead (a request's timeout while its tokens
 * stream: the waits end by I/O, not by it) goes to the timerfd, set once per
 * deadline, and the wait gets no timeout: a timeout arms and cancels a
 * kernel timer in every wait, which on a virtual machine cost about 1.3 µs
 * of CPU per wake-up, a sixth of what reading a paced token costs
 * (docs/http.md, "The client benchmark"). Nearer deadlines (the simulator's
 * token times, open-loop send times), which end their waits, stay the
 * wait's timeout: through the timerfd each would cost two more calls. The
 * loop recomputes the deadline from its clock before each wait, so it
 * wobbles by the time in between: a set one within EARLY_NS before or
 * LATE_NS after it is kept (early: one wake-up that finds nothing due). */
enum { FAR_NS = 1000000000, EARLY_NS = 50000, LATE_NS = 2000 };

static int64_t far_deadline(br_poller *p, int64_t timeout_ns) {
  if (p->tfd < 0 || timeout_ns < FAR_NS) return timeout_ns;
  int64_t at = br_platform_monotonic_ns() + timeout_ns;
  if (!p->armed || p->armed < at - EARLY_NS || p->armed > at + LATE_NS) {
    struct itimerspec its = {{0, 0}, {(time_t)(at / 1000000000), (long)(at % 1000000000)}};
    p->armed = timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0 ? at : 0;
  }
  return p->armed ? -1 : timeout_ns;
}

int br_poller_wait(br_poller *p, int64_t timeout_ns, br_poll_event *out, int max) {
  enum { BATCH = 256 };
  struct epoll_event evs[BATCH];
  if (max > BATCH) max = BATCH;
  timeout_ns = far_deadline(p, timeout_ns);
  int n = -1;
  if (!pwait2_missing) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
      ts.tv_sec = (time_t)(timeout_ns / 1000000000);
      ts.tv_nsec = (long)(timeout_ns % 1000000000);
      tsp = &ts;
    }
    n = epoll_pwait2(p->epfd, evs, max, tsp, NULL);
    if (n < 0 && errno == ENOSYS) pwait2_missing = 1;
  }
  if (pwait2_missing) {
    int ms;
    if (timeout_ns < 0) ms = -1;
    else if (timeout_ns == 0) ms = 0;
    else {
      int64_t r = (timeout_ns + 999999) / 1000000;   /* round up: never wake early */
      ms = r > 1000000000 ? 1000000000 : (int)r;
    }
    n = epoll_wait(p->epfd, evs, max, ms);
  }
  if (n < 0) return errno == EINTR ? 0 : -errno;
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (evs[i].data.ptr == &p->tfd) {   /* the far deadline came: the loop runs its due timers */
      uint64_t ticks;
      if (read(p->tfd, &ticks, sizeof ticks) < 0) { /* nothing to clear */ }
      p->armed = 0;
      continue;
    }
    int e = 0;
    if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) e |= BR_READ;
    if (evs[i].events & EPOLLOUT) e |= BR_WRITE;
    if (evs[i].events & (EPOLLHUP | EPOLLERR)) e |= BR_HUP | BR_READ;
    out[k].ptr = evs[i].data.ptr;
    out[k].events = e;
    k++;
  }
  return k;
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
 * naming pid after since_ns. Usually only readable by root (dmesg_restrict).
 * A record is "prio,seq,usec,flags;message": usec is the kernel's monotonic
 * clock, ours too (a second of slack for the clocks' small difference). */
static int kmsg_names_pid(int pid, int64_t since_ns, char *line_out, size_t size) {
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
    unsigned long long usec = 0;
    if (sscanf(rec, "%*u,%*u,%llu", &usec) == 1 && (int64_t)usec * 1000 + 1000000000 < since_ns) continue;
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

int br_platform_oom_evidence(int pid, long long oom_before, int64_t since_ns, char *buf, size_t size) {
  buf[0] = 0;
  int found = 0;
  size_t used = 0;
  long long now = br_platform_oom_kill_count();
  if (oom_before >= 0 && now > oom_before) {
    used += (size_t)snprintf(buf, size, "cgroup memory oom_kill count rose from %lld to %lld", oom_before, now);
    found = 1;
  }
  char kline[512];
  if (used < size && kmsg_names_pid(pid, since_ns, kline, sizeof kline)) {
    snprintf(buf + used, size - used, "%skernel log: %s", used ? "; " : "", kline);
    found = 1;
  }
  return found;
}

/* ---- ports (bench.proc's port checks) ---- */
#include <dirent.h>

enum { MAX_LISTEN_INODES = 64 };

/* Add the inodes of the LISTEN sockets on port in one /proc/net/tcp or
 * tcp6 file ("sl local_address rem_address st ... uid timeout inode"). */
static int listen_inodes(const char *path, int port, unsigned long *inodes, int n) {
  FILE *f = fopen(path, "re");
  if (!f) return n;
  char line[512], local[128];
  unsigned st;
  unsigned long inode;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3) continue;
    if (st != 0x0A) continue;   /* TCP_LISTEN */
    const char *colon = strrchr(local, ':');
    if (!colon || strtol(colon + 1, NULL, 16) != port) continue;
    if (n < MAX_LISTEN_INODES) inodes[n++] = inode;
  }
  fclose(f);
  return n;
}

/* Whether one of pid's fds is one of the inodes (found[i] set for each). */
static int pid_holds(int pid, const unsigned long *inodes, int n, char *found) {
  char dir[64], path[384], link[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR *d = opendir(dir);
  if (!d) return 0;   /* gone, or another user's */
  int holds = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ssize_t len = readlink(path, link, sizeof link - 1);
    if (len <= 0) continue;
    link[len] = 0;
    unsigned long ino;
    if (sscanf(link, "socket:[%lu]", &ino) != 1) continue;
    for (int i = 0; i < n; i++)
      if (inodes[i] == ino) { found[i] = 1; holds = 1; }
  }
  closedir(d);
  return holds;
}

int br_platform_port_listeners(int port, int *pids, int max, int *unowned) {
  unsigned long inodes[MAX_LISTEN_INODES];
  char found[MAX_LISTEN_INODES] = {0};
  int n = listen_inodes("/proc/net/tcp", port, inodes, 0);
  n = listen_inodes("/proc/net/tcp6", port, inodes, n);
  *unowned = 0;
  if (n == 0) return 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) && count < max) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int pid = atoi(e->d_name);
    if (pid_holds(pid, inodes, n, found)) pids[count++] = pid;
  }
  closedir(d);
  for (int i = 0; i < n; i++) *unowned += !found[i];
  return count;
}

int br_platform_proc_info(int pid, int *ppid, int *pgid, char *cmd, size_t size) {
  char path[64], stat[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return -1;
  stat[n] = 0;
  /* "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses */
  char *rp = strrchr(stat, ')');
  if (!rp || sscanf(rp + 1, " %*c %d %d", ppid, pgid) != 2) return -1;
  cmd[0] = 0;
  snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && size > 1) {
    n = read(fd, cmd, size - 1);
    close(fd);
    if (n < 0) n = 0;
    while (n > 0 && cmd[n - 1] == 0) n--;   /* the last argument's NUL */
    for (ssize_t i = 0; i < n; i++) if (cmd[i] == 0) cmd[i] = ' ';
    cmd[n] = 0;
  }
  if (!cmd[0]) {   /* a kernel thread or a zombie: its name in brackets */
    char *lp = strchr(stat, '(');
    if (lp && rp > lp) snprintf(cmd, size, "[%.*s]", (int)(rp - lp - 1), lp + 1);
  }
  return 0;
}

/* ---- mem (bench.mem) ---- */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>

const char *br_platform_real_mem_name(void) { return "pss"; }

/* "Key:   123 kB" lines of a /proc file, summed for the keys asked. */
static int64_t proc_kb_field(const char *path, const char *key) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  size_t kl = strlen(key);
  int64_t v = -1;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, key, kl) && line[kl] == ':') {
      long long kb;
      if (sscanf(line + kl + 1, "%lld", &kb) == 1) v = (int64_t)kb * 1024;
      break;
    }
  }
  fclose(f);
  return v;
}

int br_platform_proc_one_mem(int pid, int want_real, int64_t *rss, int64_t *real) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/statm", pid);
  FILE *f = fopen(path, "re");
  if (!f) return errno == ENOENT ? -ESRCH : -errno;
  long long size, resident;
  int n = fscanf(f, "%lld %lld", &size, &resident);
  fclose(f);
  if (n != 2) return -ESRCH;   /* a zombie reads empty */
  *rss = (int64_t)resident * sysconf(_SC_PAGESIZE);
  *real = -1;
  if (want_real) {
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    *real = proc_kb_field(path, "Pss");
    if (*real < 0) *real = *rss;   /* another user's process: RSS is all we may read */
  }
  return 0;
}

/* Children of pid from /proc/<pid>/task/<tid>/children (every thread's:
 * a server may fork from a worker thread). */
int br_platform_proc_children(int pid, int *out, int max) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    if (e->d_name[0] == '.') continue;
    char cp[300];
    snprintf(cp, sizeof cp, "/proc/%d/task/%s/children", pid, e->d_name);
    FILE *f = fopen(cp, "re");
    if (!f) continue;
    int c;
    while (n < max && fscanf(f, "%d", &c) == 1) out[n++] = c;
    fclose(f);
  }
  closedir(d);
  return n;
}

int br_platform_sys_mem(br_sys_mem *out) {
  out->total = proc_kb_field("/proc/meminfo", "MemTotal");
  out->available = proc_kb_field("/proc/meminfo", "MemAvailable");
  out->free = proc_kb_field("/proc/meminfo", "MemFree");
  int64_t st = proc_kb_field("/proc/meminfo", "SwapTotal"), sf = proc_kb_field("/proc/meminfo", "SwapFree");
  out->swap_used = st >= 0 && sf >= 0 ? st - sf : -1;
  out->used = out->total >= 0 && out->available >= 0 ? out->total - out->available : -1;
  out->wired = out->compressed = out->gpu_wired_limit = -1;
  return out->total >= 0 ? 0 : -1;
}

/* NVML, loaded at run time: no link-time dependency on the NVIDIA driver.
 * The types are those of NVIDIA's nvml.h (NVML 12.2.140): nvmlDevice_t is an
 * opaque pointer, nvmlMemory_t {total, free, used}, and the process records
 * nvmlProcessInfo_v1_t {pid, usedGpuMemory} (filled by the unversioned
 * nvmlDeviceGetComputeRunningProcesses) and nvmlProcessInfo_v2_t (= the
 * nvmlProcessInfo_t of _v2 and _v3) {pid, usedGpuMemory, gpuInstanceId,
 * computeInstanceId}. v1 is the start of v2, so one reader serves both, with
 * the stride of the record the chosen function fills. */
typedef struct nvml_device *nvml_dev;
typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct { unsigned int pid; unsigned long long used; } nvml_proc_v1;
typedef struct { unsigned int pid; unsigned long long used; unsigned int gpu_instance, compute_instance; } nvml_proc_v2;
enum { NVML_INSUFFICIENT_SIZE = 7 };                 /* NVML_ERROR_INSUFFICIENT_SIZE */
#define NVML_NOT_AVAILABLE (~0ULL)                   /* NVML_VALUE_NOT_AVAILABLE as unsigned long long */
static struct {
  int (*init)(void);
  int (*count)(unsigned *);
  int (*handle)(unsigned, nvml_dev *);
  int (*meminfo)(nvml_dev, nvml_memory *);
  int (*name)(nvml_dev, char *, unsigned);
  const char *(*errstr)(int);
  int (*procs)(nvml_dev, unsigned *, void *);       /* the newest of the three the library has */
  size_t proc_size;                                  /* the record it fills */
  const char *procs_fn;                              /* its name, for messages */
  char why[200];
  void *lib;                                         /* the library, for br_platform_nvml_symbol */
  int ok;
} nvml;
static pthread_once_t nvml_once = PTHREAD_ONCE_INIT;

static void nvml_load(void) {
  /* BENCHRUN_NVML names the library to load instead of the driver's (the
   * tests' fake NVML; a driver installed outside the loader's path). */
  const char *path = getenv("BENCHRUN_NVML");
  void *h = NULL;
  if (path && *path) {
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      snprintf(nvml.why, sizeof nvml.why, "not available: BENCHRUN_NVML=%s: %s", path, dlerror());
      return;
    }
  } else {
    h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libnvidia-ml.so", RTLD_NOW | RTLD_LOCAL);
  }
  if (!h) {
    snprintf(nvml.why, sizeof nvml.why, "not available: no NVIDIA driver library (libnvidia-ml.so.1)");
    return;
  }
  nvml.lib = h;
  *(void **)&nvml.init = dlsym(h, "nvmlInit_v2");
  *(void **)&nvml.count = dlsym(h, "nvmlDeviceGetCount_v2");
  *(void **)&nvml.handle = dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
  *(void **)&nvml.meminfo = dlsym(h, "nvmlDeviceGetMemoryInfo");
  *(void **)&nvml.name = dlsym(h, "nvmlDeviceGetName");
  *(void **)&nvml.errstr = dlsym(h, "nvmlErrorString");
  if (!nvml.init || !nvml.count || !nvml.handle || !nvml.meminfo || !nvml.name) {
    snprintf(nvml.why, sizeof nvml.why, "not available: libnvidia-ml.so.1 lacks the NVML v2 functions");
    return;
  }
  /* _v3 (drivers since R510) and _v2 (R470) fill nvmlProcessInfo_v2_t; the
   * unversioned one, in every driver, the shorter v1 record. */
  static const struct { const char *fn; size_t size; } procs[] = {
    {"nvmlDeviceGetComputeRunningProcesses_v3", sizeof(nvml_proc_v2)},
    {"nvmlDeviceGetComputeRunningProcesses_v2", sizeof(nvml_proc_v2)},
    {"nvmlDeviceGetComputeRunningProcesses", sizeof(nvml_proc_v1)}};
  for (size_t i = 0; i < sizeof procs / sizeof procs[0] && !nvml.procs; i++) {
    *(void **)&nvml.procs = dlsym(h, procs[i].fn);
    nvml.proc_size = procs[i].size;
    nvml.procs_fn = procs[i].fn;
  }
  int rc = nvml.init();
  if (rc != 0) {
    snprintf(nvml.why, sizeof nvml.why, "not available: nvmlInit failed: %s",
             nvml.errstr ? nvml.errstr(rc) : "error");
    return;
  }
  nvml.ok = 1;
}

static const char *nvml_err(int rc) {
  const char *s = nvml.errstr ? nvml.errstr(rc) : NULL;
  return s ? s : "error";
}

void *br_platform_nvml_symbol(const char *name, char *why, size_t whysz) {
  pthread_once(&nvml_once, nvml_load);
  if (!nvml.ok) { snprintf(why, whysz, "%s", nvml.why); return NULL; }
  void *f = dlsym(nvml.lib, name);
  if (!f) snprintf(why, whysz, "not available: the NVML library has no %s", name);
  return f;
}

int br_platform_gpu_mem(br_gpu_mem *out, int max, char *why, size_t whysz) {
  pthread_once(&nvml_once, nvml_load);
  if (!nvml.ok) { snprintf(why, whysz, "%s", nvml.why); return -1; }
  unsigned n = 0;
  int rc = nvml.count(&n);
  if (rc != 0) {
    snprintf(why, whysz, "not available: nvmlDeviceGetCount: %s", nvml_err(rc));
    return -1;
  }
  int k = 0;
  for (unsigned i = 0; i < n && k < max; i++) {
    nvml_dev d;
    nvml_memory m;
    if (nvml.handle(i, &d) != 0 || nvml.meminfo(d, &m) != 0) continue;
    if (nvml.name(d, out[k].name, sizeof out[k].name) != 0) snprintf(out[k].name, sizeof out[k].name, "GPU %u", i);
    out[k].used = (int64_t)m.used;
    out[k].total = (int64_t)m.total;
    k++;
  }
  return k;
}

int br_platform_gpu_procs(br_gpu_proc *out, int max, char *why, size_t whysz) {
  pthread_once(&nvml_once, nvml_load);
  if (!nvml.ok) { snprintf(why, whysz, "%s", nvml.why); return -1; }
  if (!nvml.procs) {
    snprintf(why, whysz, "not available: the NVML library has no nvmlDeviceGetComputeRunningProcesses");
    return -1;
  }
  unsigned ndev = 0;
  int rc = nvml.count(&ndev);
  if (rc != 0) {
    snprintf(why, whysz, "not available: nvmlDeviceGetCount: %s", nvml_err(rc));
    return -1;
  }
  unsigned cap = 64;
  char *buf = malloc(cap * nvml.proc_size);
  int k = 0;
  for (unsigned i = 0; i < ndev && buf; i++) {
    nvml_dev d;
    rc = nvml.handle(i, &d);
    if (rc != 0) {
      snprintf(why, whysz, "not available: nvmlDeviceGetHandleByIndex(%u): %s", i, nvml_err(rc));
      k = -1;
      break;
    }
    /* The list may grow between the calls: ask again with the size NVML
     * said it needs, plus room for newcomers. */
    unsigned n = cap;
    for (int tries = 0; (rc = nvml.procs(d, &n, buf)) == NVML_INSUFFICIENT_SIZE && tries < 4; tries++) {
      cap = n + 16;
      char *bigger = realloc(buf, cap * nvml.proc_size);
      if (!bigger) break;
      buf = bigger;
      n = cap;
    }
    if (rc != 0) {
      snprintf(why, whysz, "not available: %s: %s", nvml.procs_fn, nvml_err(rc));
      k = -1;
      break;
    }
    for (unsigned j = 0; j < n && k < max; j++) {
      nvml_proc_v1 p;
      memcpy(&p, buf + (size_t)j * nvml.proc_size, sizeof p);
      out[k].pid = (int)p.pid;
      out[k].device = (int)i;
      out[k].used = p.used == NVML_NOT_AVAILABLE ? -1 : (int64_t)p.used;
      k++;
    }
  }
  if (!buf) { snprintf(why, whysz, "not available: out of memory"); k = -1; }
  free(buf);
  return k;
}

void br_platform_sleep_until(int64_t when_ns) {
  struct timespec ts = {(time_t)(when_ns / 1000000000), (long)(when_ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* ---- sys (bench.sys) ---- */
#include <sys/utsname.h>

static void copy_str(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = 0;
}

static void read_os_release(char *buf, size_t size) {
  FILE *f = fopen("/etc/os-release", "re");
  if (!f) f = fopen("/usr/lib/os-release", "re");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "PRETTY_NAME=", 12)) continue;
    char *v = line + 12;
    v[strcspn(v, "\n")] = 0;
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) { v[n - 1] = 0; v++; }
    copy_str(buf, size, v);
    break;
  }
  fclose(f);
}

int br_platform_sys_info(br_sys_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->os, sizeof out->os, "Linux");
  struct utsname u;
  if (uname(&u) == 0) {
    copy_str(out->kernel, sizeof out->kernel, u.release);
    copy_str(out->arch, sizeof out->arch, u.machine);
    copy_str(out->hostname, sizeof out->hostname, u.nodename);
  }
  read_os_release(out->os_version, sizeof out->os_version);
  FILE *f = fopen("/proc/cpuinfo", "re");
  if (f) {
    char line[512];
    /* physical cores: distinct (physical id, core id) pairs */
    enum { MAXC = 1024 };
    static const int none = -1;
    int phys = none, pairs[MAXC][2], npairs = 0;
    while (fgets(line, sizeof line, f)) {
      char *colon = strchr(line, ':');
      if (!colon) continue;
      char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      v[strcspn(v, "\n")] = 0;
      if (!out->cpu_model[0] && (!strncmp(line, "model name", 10) || !strncmp(line, "Model", 5) ||
                                 !strncmp(line, "Hardware", 8)))
        copy_str(out->cpu_model, sizeof out->cpu_model, v);
      if (!strncmp(line, "physical id", 11)) phys = atoi(v);
      if (!strncmp(line, "core id", 7) && npairs < MAXC) {
        int core = atoi(v), seen = 0;
        for (int i = 0; i < npairs; i++) if (pairs[i][0] == phys && pairs[i][1] == core) seen = 1;
        if (!seen) { pairs[npairs][0] = phys; pairs[npairs][1] = core; npairs++; }
      }
    }
    fclose(f);
    out->cores_physical = npairs;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  out->cores_logical = n > 0 ? (int)n : 0;
  if (!out->cores_physical) out->cores_physical = out->cores_logical;
  long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  out->page_size = psz > 0 ? psz : 0;
  out->ram = pages > 0 && psz > 0 ? (int64_t)pages * psz : 0;
  return 0;
}

static int sysctl_path(const char *name, char *path, size_t size) {
  if (!*name || strstr(name, "..") || name[0] == '/' || name[0] == '.') return -EINVAL;
  int n = snprintf(path, size, "/proc/sys/%s", name);
  if (n < 0 || (size_t)n >= size) return -ENAMETOOLONG;
  for (char *p = path + 10; *p; p++) if (*p == '.') *p = '/';
  return 0;
}

int br_platform_sysctl_read(const char *name, char *buf, size_t size) {
  char path[512];
  int rc = sysctl_path(name, path, sizeof path);
  if (rc) return rc;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = read(fd, buf, size - 1);
  int e = errno;
  close(fd);
  if (n < 0) return -e;
  buf[n] = 0;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
  for (char *p = buf; *p; p++) if (*p == '\t') *p = ' ';
  return 0;
}

int br_platform_sysctl_write(const char *name, const char *value) {
  char path[512];
  int rc = sysctl_path(name, path, sizeof path);
  if (rc) return rc;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t n = strlen(value);
  ssize_t w = write(fd, value, n);
  int e = errno;
  close(fd);
  if (w < 0) return -e;
  return (size_t)w == n ? 0 : -EIO;
}

/* ---- http ---- */
#include <sys/resource.h>

int64_t br_platform_self_maxrss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (int64_t)ru.ru_maxrss * 1024;   /* KiB on Linux */
}


/* ---- socket receive times ---- */

#include <sys/socket.h>

int br_platform_rx_stamp_enable(int fd) {
  int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) == 0 ? 0 : -1;
}

size_t br_platform_rx_stamp_space(void) { return CMSG_SPACE(sizeof(struct timespec)); }

int br_platform_rx_stamp_of(const void *cmsg, int64_t *wall_ns) {
  const struct cmsghdr *c = cmsg;
  if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) return 0;
  struct timespec ts;
  memcpy(&ts, CMSG_DATA(c), sizeof ts);
  *wall_ns = (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec * 1;
  return 1;
}
