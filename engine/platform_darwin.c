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

int br_platform_oom_evidence(int pid, long long oom_before, int64_t since_ns, char *buf, size_t size) {
  (void)pid;
  (void)oom_before;
  (void)since_ns;
  /* jetsam kills with SIGKILL and leaves no public trace a user process can
   * read; the unexplained SIGKILL itself is its signature. */
  snprintf(buf, size, "SIGKILL from outside benchrun is the signature of jetsam (memory pressure) on macOS");
  return 0;
}

/* ---- ports (bench.proc's port checks) ---- */
/* Written against libproc's documented interface and cross-compiled only
 * (never run here): every pid's fds, each socket's TCP state and local
 * port. Another user's processes cannot be inspected without root, so
 * their sockets are not seen at all. */
#include <arpa/inet.h>
#include <libproc.h>
#include <sys/proc_info.h>
#include <sys/sysctl.h>

static int pid_listens_on(pid_t pid, int port) {
  int bytes = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, NULL, 0);
  if (bytes <= 0) return 0;
  struct proc_fdinfo *fds = malloc((size_t)bytes);
  if (!fds) return 0;
  bytes = proc_pidinfo(pid, PROC_PIDLISTFDS, 0, fds, bytes);
  int holds = 0;
  for (int i = 0; bytes > 0 && i < bytes / (int)PROC_PIDLISTFD_SIZE; i++) {
    if (fds[i].proc_fdtype != PROX_FDTYPE_SOCKET) continue;
    struct socket_fdinfo si;
    if (proc_pidfdinfo(pid, fds[i].proc_fd, PROC_PIDFDSOCKETINFO, &si, PROC_PIDFDSOCKETINFO_SIZE) !=
        PROC_PIDFDSOCKETINFO_SIZE) continue;
    if (si.psi.soi_kind != SOCKINFO_TCP) continue;
    const struct tcp_sockinfo *t = &si.psi.soi_proto.pri_tcp;
    if (t->tcpsi_state != TSI_S_LISTEN || ntohs((uint16_t)t->tcpsi_ini.insi_lport) != port) continue;
    holds = 1;
  }
  free(fds);
  return holds;
}

int br_platform_port_listeners(int port, int *pids, int max, int *unowned) {
  *unowned = 0;   /* another user's sockets are not seen at all */
  int bytes = proc_listpids(PROC_ALL_PIDS, 0, NULL, 0);
  if (bytes <= 0) return -1;
  bytes += 64 * (int)sizeof(pid_t);   /* room for processes started meanwhile */
  pid_t *all = malloc((size_t)bytes);
  if (!all) return -1;
  bytes = proc_listpids(PROC_ALL_PIDS, 0, all, bytes);
  int count = 0;
  for (int i = 0; bytes > 0 && i < bytes / (int)sizeof(pid_t) && count < max; i++)
    if (all[i] > 0 && pid_listens_on(all[i], port)) pids[count++] = (int)all[i];
  free(all);
  return count;
}

int br_platform_proc_info(int pid, int *ppid, int *pgid, char *cmd, size_t size) {
  struct proc_bsdinfo bi;
  if (proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bi, PROC_PIDTBSDINFO_SIZE) != PROC_PIDTBSDINFO_SIZE) return -1;
  *ppid = (int)bi.pbi_ppid;
  *pgid = (int)bi.pbi_pgid;
  if (size == 0) return 0;
  snprintf(cmd, size, "%s", bi.pbi_comm);
  /* KERN_PROCARGS2: argc, the executable path, NULs, then argv[0..argc) */
  int mib[3] = {CTL_KERN, KERN_PROCARGS2, pid};
  size_t len = 0;
  if (sysctl(mib, 3, NULL, &len, NULL, 0) != 0 || len <= sizeof(int)) return 0;
  char *args = malloc(len);
  if (!args) return 0;
  if (sysctl(mib, 3, args, &len, NULL, 0) == 0 && len > sizeof(int)) {
    int argc;
    memcpy(&argc, args, sizeof argc);
    char *p = args + sizeof argc, *end = args + len;
    while (p < end && *p) p++;   /* the executable path */
    while (p < end && !*p) p++;  /* its padding */
    size_t used = 0;
    for (int a = 0; a < argc && p < end && used + 1 < size; a++) {
      size_t n = strnlen(p, (size_t)(end - p));
      if (used && used + 1 < size) cmd[used++] = ' ';
      size_t take = n < size - 1 - used ? n : size - 1 - used;
      memcpy(cmd + used, p, take);
      used += take;
      p += n + 1;
    }
    if (used) cmd[used] = 0;
  }
  free(args);
  return 0;
}

/* ---- mem (bench.mem) ---- */
/* Never run on macOS by this project: written against the documented
 * libproc, mach and sysctl APIs and cross-compiled only. IOKit and
 * CoreFoundation are loaded with dlopen so the build needs no framework
 * flags; the few CF/IOKit types used are declared here as the headers
 * define them (opaque pointers, mach ports as unsigned int). */
#include <dlfcn.h>
#include <libproc.h>
#include <mach/mach.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/sysctl.h>

const char *br_platform_real_mem_name(void) { return "footprint"; }

int br_platform_proc_one_mem(int pid, int want_real, int64_t *rss, int64_t *real) {
  struct rusage_info_v2 ri;
  if (proc_pid_rusage(pid, RUSAGE_INFO_V2, (rusage_info_t *)&ri) != 0) return errno == ESRCH ? -ESRCH : -errno;
  *rss = (int64_t)ri.ri_resident_size;
  *real = want_real ? (int64_t)ri.ri_phys_footprint : -1;
  return 0;
}

int br_platform_proc_children(int pid, int *out, int max) {
  if (max <= 0) return 0;
  int n = proc_listchildpids(pid, out, max * (int)sizeof *out);
  return n > 0 ? (n < max ? n : max) : 0;
}

int br_platform_sys_mem(br_sys_mem *out) {
  uint64_t total = 0;
  size_t sz = sizeof total;
  out->total = sysctlbyname("hw.memsize", &total, &sz, NULL, 0) == 0 ? (int64_t)total : -1;
  vm_statistics64_data_t vm;
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  vm_size_t page = 0;
  out->available = out->used = out->free = out->wired = out->compressed = -1;
  if (host_page_size(mach_host_self(), &page) == KERN_SUCCESS &&
      host_statistics64(mach_host_self(), HOST_VM_INFO64, (host_info64_t)&vm, &count) == KERN_SUCCESS) {
    int64_t pg = (int64_t)page;
    /* Activity Monitor's "Memory Used": app memory + wired + compressed. */
    int64_t app = ((int64_t)vm.internal_page_count - (int64_t)vm.purgeable_count) * pg;
    out->wired = (int64_t)vm.wire_count * pg;
    out->compressed = (int64_t)vm.compressor_page_count * pg;
    out->used = app + out->wired + out->compressed;
    out->free = (int64_t)vm.free_count * pg;
    if (out->total >= 0) out->available = out->total - out->used;
  }
  struct xsw_usage sw;
  sz = sizeof sw;
  out->swap_used = sysctlbyname("vm.swapusage", &sw, &sz, NULL, 0) == 0 ? (int64_t)sw.xsu_used : -1;
  int mb = 0;
  sz = sizeof mb;
  out->gpu_wired_limit = sysctlbyname("iogpu.wired_limit_mb", &mb, &sz, NULL, 0) == 0 ? (int64_t)mb * 1048576 : -1;
  return out->total >= 0 ? 0 : -1;
}

void *br_platform_nvml_symbol(const char *name, char *why, size_t whysz) {
  snprintf(why, whysz, "not available: no NVIDIA driver on macOS");
  return NULL;
}

/* IOKit's accelerator statistics, through dlopen. */
typedef const void *cf_type;
typedef unsigned int io_obj;
static struct {
  cf_type (*matching)(const char *);
  int (*get_services)(unsigned int, cf_type, io_obj *);
  io_obj (*next)(io_obj);
  int (*props)(io_obj, cf_type *, cf_type, unsigned int);
  int (*release_obj)(io_obj);
  cf_type (*dict_get)(cf_type, cf_type);
  cf_type (*str)(cf_type, const char *, unsigned int);
  int (*num_get)(cf_type, int, void *);
  unsigned long (*type_id)(cf_type);
  unsigned long (*num_type_id)(void);
  void (*release)(cf_type);
  int ok;
  char why[160];
} iokit;
static pthread_once_t iokit_once = PTHREAD_ONCE_INIT;

static void iokit_load(void) {
  void *io = dlopen("/System/Library/Frameworks/IOKit.framework/IOKit", RTLD_NOW | RTLD_LOCAL);
  void *cf = dlopen("/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation", RTLD_NOW | RTLD_LOCAL);
  if (!io || !cf) { snprintf(iokit.why, sizeof iokit.why, "not available: cannot load IOKit"); return; }
  *(void **)&iokit.matching = dlsym(io, "IOServiceMatching");
  *(void **)&iokit.get_services = dlsym(io, "IOServiceGetMatchingServices");
  *(void **)&iokit.next = dlsym(io, "IOIteratorNext");
  *(void **)&iokit.props = dlsym(io, "IORegistryEntryCreateCFProperties");
  *(void **)&iokit.release_obj = dlsym(io, "IOObjectRelease");
  *(void **)&iokit.dict_get = dlsym(cf, "CFDictionaryGetValue");
  *(void **)&iokit.str = dlsym(cf, "CFStringCreateWithCString");
  *(void **)&iokit.num_get = dlsym(cf, "CFNumberGetValue");
  *(void **)&iokit.type_id = dlsym(cf, "CFGetTypeID");
  *(void **)&iokit.num_type_id = dlsym(cf, "CFNumberGetTypeID");
  *(void **)&iokit.release = dlsym(cf, "CFRelease");
  if (!iokit.matching || !iokit.get_services || !iokit.next || !iokit.props || !iokit.release_obj ||
      !iokit.dict_get || !iokit.str || !iokit.num_get || !iokit.type_id || !iokit.num_type_id || !iokit.release) {
    snprintf(iokit.why, sizeof iokit.why, "not available: IOKit/CoreFoundation symbols missing");
    return;
  }
  iokit.ok = 1;
}

static int64_t cf_dict_int(cf_type dict, const char *key) {
  cf_type k = iokit.str(NULL, key, 0x08000100 /* kCFStringEncodingUTF8 */);
  if (!k) return -1;
  cf_type v = iokit.dict_get(dict, k);
  iokit.release(k);
  int64_t out = -1;
  if (v && iokit.type_id(v) == iokit.num_type_id()) {
    long long n = 0;
    if (iokit.num_get(v, 4 /* kCFNumberSInt64Type */, &n)) out = n;
  }
  return out;
}

int br_platform_gpu_mem(br_gpu_mem *out, int max, char *why, size_t whysz) {
  pthread_once(&iokit_once, iokit_load);
  if (!iokit.ok) { snprintf(why, whysz, "%s", iokit.why); return -1; }
  io_obj iter = 0;
  /* kIOMainPortDefault is 0; the matching dictionary is consumed. */
  if (iokit.get_services(0, iokit.matching("IOAccelerator"), &iter) != 0) {
    snprintf(why, whysz, "not available: no IOAccelerator service");
    return -1;
  }
  br_sys_mem sm;
  br_platform_sys_mem(&sm);
  int k = 0;
  io_obj svc;
  while ((svc = iokit.next(iter)) != 0) {
    cf_type props = NULL;
    if (k < max && iokit.props(svc, &props, NULL, 0) == 0 && props) {
      cf_type key = iokit.str(NULL, "PerformanceStatistics", 0x08000100);
      cf_type stats = key ? iokit.dict_get(props, key) : NULL;
      if (key) iokit.release(key);
      if (stats) {
        int64_t used = cf_dict_int(stats, "In use system memory");
        if (used >= 0) {
          snprintf(out[k].name, sizeof out[k].name, "Apple GPU %d", k);
          out[k].used = used;
          /* Unified memory: the ceiling is the wired limit when set, else RAM. */
          out[k].total = sm.gpu_wired_limit > 0 ? sm.gpu_wired_limit : sm.total;
          k++;
        }
      }
      iokit.release(props);
    }
    iokit.release_obj(svc);
  }
  iokit.release_obj(iter);
  if (k == 0) { snprintf(why, whysz, "not available: IOAccelerator reports no memory statistics"); return -1; }
  return k;
}

/* Unified memory: what a process allocates for the GPU is its own memory,
 * counted in its phys_footprint, so nothing is added to it. */
int br_platform_gpu_procs(br_gpu_proc *out, int max, char *why, size_t whysz) {
  (void)out;
  (void)max;
  snprintf(why, whysz, "included: unified memory, the GPU's share is in the process's footprint");
  return -2;
}

void br_platform_sleep_until(int64_t when_ns) {
  for (;;) {
    int64_t now = br_platform_monotonic_ns();
    if (now >= when_ns) return;
    int64_t d = when_ns - now;
    struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
    if (nanosleep(&ts, NULL) == 0) return;
  }
}

/* ---- sys (bench.sys) ---- */
/* Never run on macOS by this project (cross-compiled only). */
#include <sys/utsname.h>

static void sysctl_str(const char *name, char *buf, size_t size) {
  size_t sz = size;
  if (sysctlbyname(name, buf, &sz, NULL, 0) != 0) buf[0] = 0;
  else buf[size - 1] = 0;
}

static int sysctl_int(const char *name) {
  int v = 0;
  size_t sz = sizeof v;
  if (sysctlbyname(name, &v, &sz, NULL, 0) != 0) return 0;
  return v;
}

int br_platform_sys_info(br_sys_info *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->os, sizeof out->os, "macOS");
  struct utsname u;
  if (uname(&u) == 0) {
    snprintf(out->kernel, sizeof out->kernel, "Darwin %s", u.release);
    snprintf(out->arch, sizeof out->arch, "%s", u.machine);
    snprintf(out->hostname, sizeof out->hostname, "%s", u.nodename);
  }
  sysctl_str("kern.osproductversion", out->os_version, sizeof out->os_version);
  sysctl_str("machdep.cpu.brand_string", out->cpu_model, sizeof out->cpu_model);
  out->cores_logical = sysctl_int("hw.logicalcpu");
  out->cores_physical = sysctl_int("hw.physicalcpu");
  /* Apple silicon: perflevel0 is the performance cluster, perflevel1 the
   * efficiency one; Intel Macs have neither. */
  out->cores_performance = sysctl_int("hw.perflevel0.physicalcpu");
  out->cores_efficiency = sysctl_int("hw.perflevel1.physicalcpu");
  uint64_t mem = 0;
  size_t sz = sizeof mem;
  if (sysctlbyname("hw.memsize", &mem, &sz, NULL, 0) == 0) out->ram = (int64_t)mem;
  out->page_size = (int64_t)getpagesize();
  return 0;
}

/* sysctl values are untyped bytes here: a NUL-terminated printable run is
 * a string, 4 or 8 bytes an integer. */
int br_platform_sysctl_read(const char *name, char *buf, size_t size) {
  unsigned char raw[1024];
  size_t sz = sizeof raw;
  if (sysctlbyname(name, raw, &sz, NULL, 0) != 0) return -errno;
  int printable = sz > 0 && raw[sz - 1] == 0;
  for (size_t i = 0; printable && i + 1 < sz; i++) if (raw[i] < 32 || raw[i] > 126) printable = 0;
  if (printable) snprintf(buf, size, "%s", (char *)raw);
  else if (sz == 4) { int32_t v; memcpy(&v, raw, 4); snprintf(buf, size, "%d", (int)v); }
  else if (sz == 8) { int64_t v; memcpy(&v, raw, 8); snprintf(buf, size, "%lld", (long long)v); }
  else return -EINVAL;
  return 0;
}

int br_platform_sysctl_write(const char *name, const char *value) {
  unsigned char raw[1024];
  size_t sz = sizeof raw;
  if (sysctlbyname(name, raw, &sz, NULL, 0) != 0) return -errno;
  char *end;
  long long v = strtoll(value, &end, 10);
  int numeric = *value && !*end;
  int rc;
  if (numeric && sz == 4) { int32_t x = (int32_t)v; rc = sysctlbyname(name, NULL, NULL, &x, sizeof x); }
  else if (numeric && sz == 8) { int64_t x = v; rc = sysctlbyname(name, NULL, NULL, &x, sizeof x); }
  else rc = sysctlbyname(name, NULL, NULL, (void *)value, strlen(value) + 1);
  return rc == 0 ? 0 : -errno;
}

/* ---- http ---- */
int64_t br_platform_self_maxrss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
  return (int64_t)ru.ru_maxrss;   /* bytes on macOS */
}

/* ---- socket receive times (µs: SO_TIMESTAMP, a struct timeval; from socket(2) and recvmsg(2), never run here) ---- */

#include <sys/socket.h>

int br_platform_rx_stamp_enable(int fd) {
  int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one) == 0 ? 0 : -1;
}

size_t br_platform_rx_stamp_space(void) { return CMSG_SPACE(sizeof(struct timeval)); }

int br_platform_rx_stamp_of(const void *cmsg, int64_t *wall_ns) {
  const struct cmsghdr *c = cmsg;
  if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMP) return 0;
  struct timeval ts;
  memcpy(&ts, CMSG_DATA(c), sizeof ts);
  *wall_ns = (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_usec * 1000;
  return 1;
}
