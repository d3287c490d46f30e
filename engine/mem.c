/* bench.mem: process-tree, system and GPU memory, and a background sampler.
 *
 * The sampler is the only other thread of benchrun. It shares nothing with
 * Lua but a mutex-protected ring of samples (and the peaks); it reads the
 * platform layer only, never the Lua state, and appends each sample as a JSON
 * line to an optional file as it comes (a crash keeps what was sampled).
 *
 * Cost: RSS comes from a cheap source every sample; the "real" figure (PSS
 * from smaps_rollup, which walks page tables and grows with the mapping) is
 * read as often as keeps it under about 0.5% of one core, and the last value
 * is carried between reads (real_ns says when it was measured). */
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "platform.h"
#include "class.h"
#include "ticker.h"

#include <lauxlib.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLER_MT "bench.mem.Sampler"

enum { MAX_GPUS = 16, MAX_GPU_PROCS = 1024, MAX_TREE = 4096 };

/* ---- one-shot readings ---- */

static void set_int(lua_State *L, const char *k, int64_t v) {
  if (v < 0) return;   /* unknown on this platform */
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static int check_pid(lua_State *L, int arg) {
  lua_Integer pid;
  if (lua_isuserdata(L, arg)) {   /* a bench.proc.Process */
    lua_getfield(L, arg, "pid");
    pid = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  } else {
    pid = luaL_checkinteger(L, arg);
  }
  luaL_argcheck(L, pid > 0 && pid <= 0x7fffffff, arg, "expected a pid > 0");
  return (int)pid;
}

/* Memory of pid, or of it and all its descendants (tree != 0), summed;
 * the walk is breadth-first over the platform's child lists. The pids
 * counted go into pids[MAX_TREE] when it is given (out->nprocs of them), for
 * matching against the GPU's process list. Returns 0, or -ESRCH when pid is
 * gone, -errno otherwise. Thread-safe (the sampler thread calls it). */
typedef struct { int64_t rss, real; int nprocs; } proc_mem;

static int proc_tree_mem(int pid, int tree, int want_real, proc_mem *out, int *pids) {
  int64_t rss, real;
  int rc = br_platform_proc_one_mem(pid, want_real, &rss, &real);
  if (rc != 0) return rc;
  out->rss = rss;
  out->real = want_real ? real : -1;
  out->nprocs = 1;
  if (pids) pids[0] = pid;
  if (!tree) return 0;
  int *queue = malloc(MAX_TREE * sizeof *queue);
  if (!queue) return 0;
  int head = 0, len = br_platform_proc_children(pid, queue, MAX_TREE);
  while (head < len) {
    int c = queue[head++];
    if (br_platform_proc_one_mem(c, want_real, &rss, &real) != 0) continue;
    out->rss += rss;
    if (want_real) out->real += real;
    if (pids && out->nprocs < MAX_TREE) pids[out->nprocs] = c;
    out->nprocs++;
    len += br_platform_proc_children(c, queue + len, MAX_TREE - len);
  }
  free(queue);
  return 0;
}

/* Where a server's GPU memory came from (the results' gpu_source). */
enum { GPU_SRC_NONE, GPU_SRC_PROCESS, GPU_SRC_DEVICE };
static const char *const GPU_SRC_NAME[] = {NULL, "nvml-process", "nvml-device"};

/* The GPU memory of the processes pids[n]: the driver's per-process figures
 * of those pids (a process on several GPUs is listed once per GPU, each
 * counted), or, where the driver gives none, device_used (every device's
 * used memory, other processes' included; -1 unknown). *src says which;
 * why gets the reason of a fallback. Returns bytes, or -1 with GPU_SRC_NONE
 * where there is no GPU reading or the platform counts GPU memory in the
 * process's own figure (macOS). Thread-safe. */
static int64_t tree_gpu(const int *pids, int n, int64_t device_used, int *src, char *why, size_t whysz) {
  *src = GPU_SRC_NONE;
  br_gpu_proc *gp = malloc(MAX_GPU_PROCS * sizeof *gp);
  if (!gp) return -1;
  int k = br_platform_gpu_procs(gp, MAX_GPU_PROCS, why, whysz);
  int64_t sum = 0;
  int unknown = 0;
  for (int j = 0; j < k; j++)
    for (int i = 0; i < n; i++)
      if (gp[j].pid == pids[i]) {
        if (gp[j].used < 0) unknown = 1;
        else sum += gp[j].used;
      }
  free(gp);
  if (k == -2) return -1;
  if (k >= 0 && !unknown) { *src = GPU_SRC_PROCESS; return sum; }
  if (unknown) snprintf(why, whysz, "not available: NVML gives the server's usedGpuMemory as not available");
  if (device_used < 0) return -1;
  *src = GPU_SRC_DEVICE;
  return device_used;
}

static int64_t devices_used(void) {
  br_gpu_mem g[MAX_GPUS];
  char why[200];
  int n = br_platform_gpu_mem(g, MAX_GPUS, why, sizeof why);
  if (n <= 0) return -1;
  int64_t used = 0;
  for (int i = 0; i < n; i++) used += g[i].used;
  return used;
}

/* mem.process(pid | process[, {tree = true, real = true, gpu = false}])
 * -> {rss, real, pss|footprint, nprocs[, gpu, gpu_source, gpu_note]}
 * (bytes) | nil, message */
static int l_process(lua_State *L) {
  int pid = check_pid(L, 1);
  int tree = 1, real = 1, gpu = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "tree");
    if (!lua_isnil(L, -1)) tree = lua_toboolean(L, -1);
    lua_getfield(L, 2, "real");
    if (!lua_isnil(L, -1)) real = lua_toboolean(L, -1);
    lua_getfield(L, 2, "gpu");
    gpu = lua_toboolean(L, -1);
    lua_pop(L, 3);
  }
  proc_mem m;
  int *pids = gpu ? malloc(MAX_TREE * sizeof *pids) : NULL;
  if (gpu && !pids) return luaL_error(L, "mem.process: out of memory");
  int rc = proc_tree_mem(pid, tree, real, &m, pids);
  if (rc != 0) {
    free(pids);
    lua_pushnil(L);
    if (rc == -ESRCH) lua_pushfstring(L, "mem.process: no process with pid %d", pid);
    else lua_pushfstring(L, "mem.process: pid %d: %s", pid, strerror(-rc));
    return 2;
  }
  int src = GPU_SRC_NONE;
  char why[200] = "";
  int64_t g = -1;
  if (gpu) {
    g = tree_gpu(pids, m.nprocs < MAX_TREE ? m.nprocs : MAX_TREE, devices_used(), &src, why, sizeof why);
    free(pids);
  }
  lua_createtable(L, 0, 7);
  set_int(L, "rss", m.rss);
  if (real) {
    set_int(L, "real", m.real);
    set_int(L, br_platform_real_mem_name(), m.real);
  }
  lua_pushinteger(L, m.nprocs);
  lua_setfield(L, -2, "nprocs");
  if (src != GPU_SRC_NONE) {
    set_int(L, "gpu", g);
    lua_pushstring(L, GPU_SRC_NAME[src]);
    lua_setfield(L, -2, "gpu_source");
  }
  if (gpu && src != GPU_SRC_PROCESS && why[0]) {
    lua_pushstring(L, why);
    lua_setfield(L, -2, "gpu_note");
  }
  return 1;
}

/* mem.system() -> {total, available, used, free, swap_used[, wired,
 * compressed, gpu_wired_limit]} (bytes) */
static int l_system(lua_State *L) {
  br_sys_mem s;
  if (br_platform_sys_mem(&s) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "mem.system: the system's memory figures are not readable");
    return 2;
  }
  lua_createtable(L, 0, 8);
  set_int(L, "total", s.total);
  set_int(L, "available", s.available);
  set_int(L, "used", s.used);
  set_int(L, "free", s.free);
  set_int(L, "swap_used", s.swap_used);
  set_int(L, "wired", s.wired);
  set_int(L, "compressed", s.compressed);
  set_int(L, "gpu_wired_limit", s.gpu_wired_limit);
  return 1;
}

/* mem.gpu() -> {{index, name, used, total}, ...} | nil, "not available: why" */
static int l_gpu(lua_State *L) {
  br_gpu_mem g[MAX_GPUS];
  char why[200];
  int n = br_platform_gpu_mem(g, MAX_GPUS, why, sizeof why);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, i);
    lua_setfield(L, -2, "index");
    lua_pushstring(L, g[i].name);
    lua_setfield(L, -2, "name");
    set_int(L, "used", g[i].used);
    set_int(L, "total", g[i].total);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- the sampler ---- */

typedef struct {
  int64_t t_ns, wall_ns;
  int64_t rss, real, real_ns;      /* real_ns: when real was measured */
  int64_t sys_used, sys_available;
  int64_t gpu_used, gpu_total;     /* summed over devices; -1 unknown */
  int64_t server_gpu;              /* the tree's GPU memory (gpu_src says how); -1 unknown */
  int64_t server_mem;              /* the tree's host memory (rss, else real) + server_gpu */
  int gpu_src;                     /* GPU_SRC_* of server_gpu */
  int nprocs;                      /* 0: the process is gone */
} sample;

typedef struct {
  pthread_mutex_t mu;
  br_ticker tk;                    /* the thread (ticker.h); its stop under mu */
  int pid;                         /* 0: system (and GPU) only */
  int tree, gpu;
  int64_t interval_ns;
  FILE *file;
  sample *ring;
  size_t cap, len, head;           /* ring of the last cap samples */
  uint64_t total;                  /* samples taken */
  sample peak;                     /* field-wise maxima */
  int64_t late_max_ns;             /* worst lateness against the schedule */
  int64_t cpu_ns;                  /* the thread's CPU time, for the cost report */
  int64_t read_ns;                 /* wall time spent reading (NVML may block) */
  int64_t started_ns, stopped_ns;
  char gpu_why[200];
  int gpu_available;
  char src_why[200];               /* why the server's GPU memory is not per process */
  int *pids;                       /* the tree's pids of the last sample (the thread's) */
} sampler;

/* pids: a buffer of MAX_TREE for the tree's pids (the caller's own: the
 * thread and sample_now() each have one). */
static void sample_take(sampler *s, int *pids, sample *out, int want_real, int64_t last_real, int64_t last_real_ns) {
  memset(out, 0, sizeof *out);
  out->t_ns = br_now();
  out->wall_ns = br_platform_wall_ns();
  out->rss = out->real = out->server_gpu = out->server_mem = -1;
  out->real_ns = last_real_ns;
  if (s->pid > 0) {
    proc_mem m;
    if (proc_tree_mem(s->pid, s->tree, want_real, &m, pids) == 0) {
      out->rss = m.rss;
      out->nprocs = m.nprocs;
      if (want_real) { out->real = m.real; out->real_ns = out->t_ns; }
      else out->real = last_real;
    }
  }
  br_sys_mem sm;
  if (br_platform_sys_mem(&sm) == 0) {
    out->sys_used = sm.used;
    out->sys_available = sm.available;
  } else {
    out->sys_used = out->sys_available = -1;
  }
  out->gpu_used = out->gpu_total = -1;
  if (s->gpu) {
    br_gpu_mem g[MAX_GPUS];
    char why[200];
    int n = br_platform_gpu_mem(g, MAX_GPUS, why, sizeof why);
    if (n > 0) {
      out->gpu_used = out->gpu_total = 0;
      for (int i = 0; i < n; i++) { out->gpu_used += g[i].used; out->gpu_total += g[i].total; }
    }
    /* The server's own GPU memory: its tree's pids in the driver's list. */
    if (out->nprocs > 0) {
      char why2[200] = "";
      int n2 = out->nprocs < MAX_TREE ? out->nprocs : MAX_TREE;
      out->server_gpu = tree_gpu(pids, n2, out->gpu_used, &out->gpu_src, why2, sizeof why2);
      if (out->gpu_src == GPU_SRC_DEVICE) {
        pthread_mutex_lock(&s->mu);
        if (!s->src_why[0]) snprintf(s->src_why, sizeof s->src_why, "%s", why2);
        pthread_mutex_unlock(&s->mu);
      }
    }
  }
  /* The server's memory: host plus GPU, per sample (the peak of the sum). */
  int64_t host = out->rss >= 0 ? out->rss : out->real;
  if (host >= 0) out->server_mem = host + (out->server_gpu > 0 ? out->server_gpu : 0);
}

static void peak_update(sample *p, const sample *x) {
#define PEAK(f) if (x->f > p->f) p->f = x->f
  PEAK(rss); PEAK(real); PEAK(sys_used); PEAK(gpu_used); PEAK(server_gpu);
#undef PEAK
  /* the source that goes with the peak of host + GPU */
  if (x->server_mem > p->server_mem) { p->server_mem = x->server_mem; p->gpu_src = x->gpu_src; }
}

static void json_field(FILE *f, const char *k, int64_t v) {
  if (v >= 0) fprintf(f, ",\"%s\":%lld", k, (long long)v);
}

static void sample_write(sampler *s, const sample *x) {
  FILE *f = s->file;
  flockfile(f);   /* the thread and sample_now() both write: whole lines */
  fprintf(f, "{\"type\":\"memory\",\"t_ns\":%lld,\"wall\":%.6f", (long long)x->t_ns, (double)x->wall_ns / 1e9);
  if (s->pid > 0) fprintf(f, ",\"pid\":%d,\"nprocs\":%d", s->pid, x->nprocs);
  json_field(f, "rss", x->rss);
  json_field(f, br_platform_real_mem_name(), x->real);
  json_field(f, "sys_used", x->sys_used);
  json_field(f, "sys_available", x->sys_available);
  json_field(f, "gpu_used", x->gpu_used);
  json_field(f, "gpu_total", x->gpu_total);
  json_field(f, "server_gpu", x->server_gpu);
  if (x->gpu_src != GPU_SRC_NONE) fprintf(f, ",\"gpu_source\":\"%s\"", GPU_SRC_NAME[x->gpu_src]);
  json_field(f, "server_mem", x->server_mem);
  fputs("}\n", f);
  fflush(f);
  funlockfile(f);
}

/* CPU time of the calling thread (POSIX; macOS 10.12+). */
static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A sample into the ring (the mutex held), kept in time order: the thread
 * and sampler:sample_now() both push, so a sample may arrive after a later
 * one; it moves back past it. */
static void ring_push(sampler *s, const sample *x) {
  if (s->len < s->cap) s->ring[(s->head + s->len++) % s->cap] = *x;
  else { s->ring[s->head] = *x; s->head = (s->head + 1) % s->cap; }
  for (size_t i = s->len - 1; i > 0; i--) {
    sample *a = &s->ring[(s->head + i - 1) % s->cap], *b = &s->ring[(s->head + i) % s->cap];
    if (a->t_ns <= b->t_ns) break;
    sample t = *a;
    *a = *b;
    *b = t;
  }
  if (s->total == 0) s->peak = *x;
  else peak_update(&s->peak, x);
  s->total++;
}

static void *sampler_main(void *arg) {
  sampler *s = arg;
  int64_t next = br_now();
  int64_t last_real = -1, last_real_ns = 0;
  int64_t real_cost = 0;           /* ns one real reading took */
  int64_t real_every = 1, since_real = 0;
  for (;;) {
    int64_t t0 = br_now();
    int want_real = ++since_real >= real_every;
    sample x;
    sample_take(s, s->pids, &x, want_real, last_real, last_real_ns);
    int64_t t1 = br_now();
    if (want_real && x.real >= 0) {
      since_real = 0;
      last_real = x.real;
      last_real_ns = x.real_ns;
      /* Keep the real figure under ~0.5% of a core: read it every k samples. */
      real_cost = t1 - t0;
      real_every = real_cost * 200 / (s->interval_ns > 0 ? s->interval_ns : 1) + 1;
    }
    pthread_mutex_lock(&s->mu);
    int64_t late = t0 - next;
    if (late > s->late_max_ns) s->late_max_ns = late;
    s->read_ns += t1 - t0;
    s->cpu_ns = thread_cpu_ns();
    ring_push(s, &x);
    int stop = s->tk.stop;
    pthread_mutex_unlock(&s->mu);
    if (s->file) sample_write(s, &x);
    if (stop) break;
    /* after a stop: one last sample, so the series ends at the stop time */
    br_ticker_wait(&s->tk, &next, s->interval_ns);
  }
  return NULL;
}

static sampler *check_sampler(lua_State *L, int i) { return luaL_checkudata(L, i, SAMPLER_MT); }

/* mem.sampler{pid = n | process, interval = 0.1, gpu = true, tree = true,
 *             file = path, capacity = 100000} -> Sampler (not started) */
static int l_sampler(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  sampler *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SAMPLER_MT);
  lua_getfield(L, 1, "pid");
  if (!lua_isnil(L, -1)) s->pid = check_pid(L, lua_gettop(L));
  lua_pop(L, 1);
  lua_getfield(L, 1, "interval");
  lua_Number iv = lua_isnil(L, -1) ? 0.1 : lua_tonumber(L, -1);
  if (!(iv >= 0.001 && iv <= 3600)) return luaL_error(L, "mem.sampler: interval: expected 0.001..3600 seconds");
  lua_getfield(L, 1, "gpu");
  s->gpu = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_getfield(L, 1, "tree");
  s->tree = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_getfield(L, 1, "capacity");
  lua_Integer cap = lua_isnil(L, -1) ? 100000 : lua_tointeger(L, -1);
  if (cap < 1 || cap > 100000000) return luaL_error(L, "mem.sampler: capacity: expected 1..100000000");
  lua_getfield(L, 1, "file");
  const char *path = lua_tostring(L, -1);
  s->interval_ns = (int64_t)(iv * 1e9);
  s->cap = (size_t)cap;
  s->ring = malloc(s->cap * sizeof *s->ring);
  if (!s->ring) return luaL_error(L, "mem.sampler: out of memory for %d samples", (int)cap);
  s->pids = malloc(MAX_TREE * sizeof *s->pids);
  if (!s->pids) {
    free(s->ring);
    s->ring = NULL;
    return luaL_error(L, "mem.sampler: out of memory");
  }
  pthread_mutex_init(&s->mu, NULL);
  s->tk.mu = &s->mu;
  if (s->gpu) {
    br_gpu_mem g[MAX_GPUS];
    s->gpu_available = br_platform_gpu_mem(g, MAX_GPUS, s->gpu_why, sizeof s->gpu_why) > 0;
  }
  if (path) {
    s->file = fopen(path, "ae");
    if (!s->file) {
      int e = errno;
      lua_pushnil(L);
      lua_pushfstring(L, "mem.sampler: cannot open '%s': %s", path, strerror(e));
      return 2;
    }
  }
  lua_settop(L, lua_gettop(L) - 5);
  return 1;
}

static int s_start(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->ring) return luaL_error(L, "mem.sampler: closed");
  if (s->tk.running) return luaL_error(L, "mem.sampler: already started");
  s->len = s->head = 0;
  s->total = 0;
  s->late_max_ns = s->cpu_ns = s->read_ns = 0;
  s->src_why[0] = 0;
  s->started_ns = br_now();
  int rc = br_ticker_start(&s->tk, sampler_main, s);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "mem.sampler: cannot start the thread: %s", strerror(rc));
    return 2;
  }
  lua_settop(L, 1);
  return 1;
}

static void sampler_join(sampler *s) {
  if (!s->tk.running) return;
  br_ticker_join(&s->tk);
  s->stopped_ns = br_now();
}

static void push_sample(lua_State *L, const sample *x, int with_pid) {
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, x->t_ns);
  lua_setfield(L, -2, "t_ns");
  lua_pushinteger(L, x->wall_ns);
  lua_setfield(L, -2, "wall_ns");
  if (with_pid) {
    lua_pushinteger(L, x->nprocs);
    lua_setfield(L, -2, "nprocs");
  }
  set_int(L, "rss", x->rss);
  if (x->real >= 0) {
    set_int(L, "real", x->real);
    set_int(L, br_platform_real_mem_name(), x->real);
  }
  set_int(L, "sys_used", x->sys_used);
  set_int(L, "sys_available", x->sys_available);
  set_int(L, "gpu_used", x->gpu_used);
  set_int(L, "gpu_total", x->gpu_total);
  set_int(L, "server_gpu", x->server_gpu);
  if (x->gpu_src != GPU_SRC_NONE) {
    lua_pushstring(L, GPU_SRC_NAME[x->gpu_src]);
    lua_setfield(L, -2, "gpu_source");
  }
  set_int(L, "server_mem", x->server_mem);
}

/* The series so far (only the samples taken after `since` ns, when it is
 * given, so a caller can collect as it goes without copying the whole ring
 * each time): {samples = {...}, peak = {...}, count, dropped,
 * late_max_ms, cost = the thread's CPU time as a fraction of one core,
 * read_share = wall time spent reading (blocking NVML calls included),
 * real_kind, gpu_note} */
static void push_series(lua_State *L, sampler *s, int64_t since) {
  pthread_mutex_lock(&s->mu);
  size_t first = s->len;   /* samples are in time order: find the first after since */
  while (first > 0 && s->ring[(s->head + first - 1) % s->cap].t_ns > since) first--;
  size_t held = s->len, len = s->len - first;
  sample *copy = malloc((len ? len : 1) * sizeof *copy);
  if (copy) for (size_t i = 0; i < len; i++) copy[i] = s->ring[(s->head + first + i) % s->cap];
  sample peak = s->peak;
  uint64_t total = s->total;
  int64_t late = s->late_max_ns, cpu = s->cpu_ns, rd = s->read_ns;
  int64_t end = s->tk.running ? br_now() : s->stopped_ns;
  char src_why[200];
  snprintf(src_why, sizeof src_why, "%s", s->src_why);
  pthread_mutex_unlock(&s->mu);
  if (!copy) luaL_error(L, "mem.sampler: out of memory");
  lua_createtable(L, 0, 8);
  lua_createtable(L, (int)len, 0);
  for (size_t i = 0; i < len; i++) {
    push_sample(L, &copy[i], s->pid > 0);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(copy);
  lua_setfield(L, -2, "samples");
  if (total) {
    push_sample(L, &peak, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "t_ns");
    lua_pushnil(L);
    lua_setfield(L, -2, "wall_ns");
    lua_setfield(L, -2, "peak");
  }
  lua_pushinteger(L, (lua_Integer)total);
  lua_setfield(L, -2, "count");
  lua_pushinteger(L, (lua_Integer)(total - held));
  lua_setfield(L, -2, "dropped");
  lua_pushnumber(L, (lua_Number)late / 1e6);
  lua_setfield(L, -2, "late_max_ms");
  int64_t span = end - s->started_ns;
  lua_pushnumber(L, span > 0 ? (lua_Number)cpu / (lua_Number)span : 0);
  lua_setfield(L, -2, "cost");
  lua_pushnumber(L, span > 0 ? (lua_Number)rd / (lua_Number)span : 0);
  lua_setfield(L, -2, "read_share");
  lua_pushstring(L, br_platform_real_mem_name());
  lua_setfield(L, -2, "real_kind");
  if (s->gpu && !s->gpu_available) {
    lua_pushstring(L, s->gpu_why);
    lua_setfield(L, -2, "gpu_note");
  } else if (s->gpu && src_why[0]) {
    lua_pushstring(L, src_why);
    lua_setfield(L, -2, "gpu_note");
  }
}

/* sampler:stop() -> the series (see push_series); joins the thread */
static int s_stop(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->ring) return luaL_error(L, "mem.sampler: closed");
  sampler_join(s);
  push_series(L, s, INT64_MIN);
  return 1;
}

/* sampler:series([since_ns]) -> the series so far (samples after since_ns),
 * without stopping */
static int s_series(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->ring) return luaL_error(L, "mem.sampler: closed");
  push_series(L, s, (int64_t)luaL_optinteger(L, 2, INT64_MIN));
  return 1;
}

/* sampler:latest() -> the last sample, or nil before the first */
/* sampler:sample_now() -> true: one sample taken at once, on the calling
 * thread, beside the thread's schedule. A phase shorter than the interval
 * (a cell of a few requests) still gets samples at its edges, so its own
 * peak is known. */
static int s_sample_now(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->tk.running) { lua_pushboolean(L, 0); return 1; }
  int *pids = malloc(MAX_TREE * sizeof *pids);   /* the thread's buffer is the thread's */
  if (!pids) return luaL_error(L, "mem.sampler: out of memory");
  sample x;
  sample_take(s, pids, &x, 1, -1, 0);
  free(pids);
  pthread_mutex_lock(&s->mu);
  ring_push(s, &x);
  pthread_mutex_unlock(&s->mu);
  if (s->file) sample_write(s, &x);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_latest(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->ring) return luaL_error(L, "mem.sampler: closed");
  pthread_mutex_lock(&s->mu);
  int have = s->len > 0;
  sample x;
  if (have) x = s->ring[(s->head + s->len - 1) % s->cap];
  pthread_mutex_unlock(&s->mu);
  if (!have) return 0;
  push_sample(L, &x, s->pid > 0);
  return 1;
}

/* sampler:peak() -> the field-wise maxima so far, or nil */
static int s_peak(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (!s->ring) return luaL_error(L, "mem.sampler: closed");
  pthread_mutex_lock(&s->mu);
  int have = s->total > 0;
  sample x = s->peak;
  pthread_mutex_unlock(&s->mu);
  if (!have) return 0;
  push_sample(L, &x, 0);
  return 1;
}

static int s_close(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  sampler_join(s);
  if (s->file) { fclose(s->file); s->file = NULL; }
  if (s->ring) {
    free(s->ring);
    free(s->pids);
    s->ring = NULL;
    s->pids = NULL;
    pthread_mutex_destroy(&s->mu);
  }
  return 0;
}

static int s_tostring(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  lua_pushfstring(L, "bench.mem.Sampler (pid %d, every %d ms, %s)", s->pid, (int)(s->interval_ns / 1000000),
                  !s->ring ? "closed" : s->tk.running ? "running" : "stopped");
  return 1;
}

int luaopen_bench_mem(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"start", s_start}, {"stop", s_stop}, {"series", s_series}, {"latest", s_latest},
    {"peak", s_peak}, {"sample_now", s_sample_now}, {"close", s_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"process", l_process}, {"system", l_system}, {"gpu", l_gpu}, {"sampler", l_sampler}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", s_close}, {"__close", s_close}, {"__tostring", s_tostring}, {NULL, NULL}};
  br_class(L, SAMPLER_MT, meta, methods);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushstring(L, br_platform_real_mem_name());
  lua_setfield(L, -2, "real_kind");
  return 1;
}
