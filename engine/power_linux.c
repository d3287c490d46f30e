/* bench.power's sources on Linux (power.h):
 *   nvml:N          an NVIDIA GPU through NVML (the library the platform layer
 *                   loads, br_platform_nvml_symbol): the cumulative energy
 *                   counter (nvmlDeviceGetTotalEnergyConsumption, mJ, Volta
 *                   and newer), else the power (nvmlDeviceGetPowerUsage, mW);
 *                   temperature (°C), SM clock (MHz), the clock event
 *                   (throttle) reason bits.
 *   rapl:ZONE       powercap's RAPL zones, intel-rapl:* (AMD's CPUs are
 *                   exposed there too): energy_uj, wrapping at
 *                   max_energy_range_uj. Packages and DRAM are counted; core,
 *                   uncore and psys overlap a package and are listed only.
 *   hwmonN:CHIP/...  hwmon's energyN_input (µJ; amd_energy's Esocket counted
 *                   where RAPL has no package), amdgpu's power1_input or
 *                   power1_average (µW, counted as GPU), and each chip's
 *                   temp1_input (m°C).
 *   thermal:zoneN/TYPE  thermal zones' temp (m°C).
 *   cpu-throttle:package-N  the CPUs' thermal_throttle/package_throttle_count:
 *                   throttled while it rises.
 *   cpufreq         the CPUs' clocks (cpufreq): throttled while a CPU's
 *                   scaling_max_freq is below its value at open (a cooling
 *                   device capped it), or, where no thermal_throttle counter
 *                   exists, while the busy CPUs' clock is 15% or more below
 *                   the clock reached earlier at the same load or a heavier
 *                   one (docs/power.md, "CPU throttling from the clock").
 * The sysfs trees are read under $BENCHRUN_SYSFS_ROOT when it is set (the
 * tests build fake ones in the kernel's formats), else under /sys; /proc/stat
 * (which CPUs are busy) under $BENCHRUN_PROC_ROOT, else /proc. */
#include "platform.h"
#include "power.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SOURCES = 128 };
enum { K_NVML, K_RAPL, K_HWMON_ENERGY, K_HWMON_POWER, K_TEMP, K_CPU_THROTTLE, K_CPUFREQ };

/* NVML, as nvml.h (NVML 12.2.140) declares it: nvmlReturn_t is an int enum,
 * nvmlDevice_t an opaque pointer; NVML_TEMPERATURE_GPU = 0, NVML_CLOCK_SM = 1. */
typedef struct nvml_device *nvml_dev;
enum { NVML_TEMPERATURE_GPU = 0, NVML_CLOCK_SM = 1 };
/* The reasons that mean the clocks were cut for heat or by the hardware:
 * HwSlowdown 0x8, SwThermalSlowdown 0x20, HwThermalSlowdown 0x40,
 * HwPowerBrakeSlowdown 0x80. SwPowerCap (0x4, the board's power limit at
 * work under most full loads) and GpuIdle (0x1) are kept in the reason bits
 * but are not counted as throttled. */
#define NVML_THROTTLED_BITS 0xE8ULL
static struct {
  int (*count)(unsigned *);
  int (*handle)(unsigned, nvml_dev *);
  int (*name)(nvml_dev, char *, unsigned);
  int (*energy)(nvml_dev, unsigned long long *);   /* mJ */
  int (*power)(nvml_dev, unsigned *);              /* mW */
  int (*temp)(nvml_dev, int, unsigned *);          /* °C */
  int (*clock)(nvml_dev, int, unsigned *);         /* MHz */
  int (*reasons)(nvml_dev, unsigned long long *);  /* the event (throttle) reason bits */
  const char *(*errstr)(int);
} nv;

typedef struct cpufreq_state cpufreq_state;

typedef struct {
  int kind;
  char path[PATH_MAX];       /* the file read (rapl, hwmon, thermal, throttle) */
  double scale;              /* the file's unit in J, W or °C */
  double range_j;            /* rapl: where energy_uj wraps */
  nvml_dev dev;              /* nvml */
  unsigned long long last_count;
  int have_count;            /* cpu-throttle: the last count read */
  cpufreq_state *cf;         /* cpufreq: its CPUs (owned) */
} linux_src;

struct br_power_set {
  int n;
  br_power_source pub[MAX_SOURCES];
  linux_src priv[MAX_SOURCES];
};

static const char *sysfs(void) {
  const char *r = getenv("BENCHRUN_SYSFS_ROOT");
  return r && *r ? r : "/sys";
}

static const char *procfs(void) {
  const char *r = getenv("BENCHRUN_PROC_ROOT");
  return r && *r ? r : "/proc";
}

static void note(char *notes, size_t size, const char *fmt, const char *a, const char *b) {
  size_t used = strlen(notes);
  if (used + 1 >= size) return;
  snprintf(notes + used, size - used, fmt, a, b);
  used = strlen(notes);
  if (used + 1 < size) { notes[used] = '\n'; notes[used + 1] = 0; }
}

/* The first line of a file, without its newline; 0 or -errno. */
static int read_line(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "re");
  if (!f) return -errno;
  int rc = fgets(buf, (int)size, f) ? 0 : -EIO;
  fclose(f);
  buf[strcspn(buf, "\n")] = 0;
  return rc;
}

/* A file holding one decimal integer (sysfs's format); 0 or -errno. */
static int read_num(const char *path, long long *v) {
  char buf[64];
  int rc = read_line(path, buf, sizeof buf);
  if (rc) return rc;
  char *end;
  errno = 0;
  *v = strtoll(buf, &end, 10);
  if (end == buf || errno) return -EINVAL;
  return 0;
}

/* snprintf for names and paths: one cut short (longer than any sysfs path or
 * name we read) only fails to open, or names a source a little shorter. */
__attribute__((format(printf, 3, 4))) static void put(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
}

/* A folder's entries, sorted by name (so the sources come in one order). */
typedef struct { struct dirent **v; int n; } dir_list;
static int dir_open(const char *dir, dir_list *l) {
  l->n = scandir(dir, &l->v, NULL, alphasort);
  return l->n >= 0 ? 0 : -1;
}
static void dir_free(dir_list *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

static br_power_source *add(br_power_set *set, int kind, int domain, int counted, unsigned caps) {
  if (set->n >= MAX_SOURCES) return NULL;
  br_power_source *p = &set->pub[set->n];
  memset(p, 0, sizeof *p);
  memset(&set->priv[set->n], 0, sizeof set->priv[set->n]);
  set->priv[set->n].kind = kind;
  p->domain = domain;
  p->counted = counted;
  p->caps = caps;
  set->n++;
  return p;
}

static linux_src *last_priv(br_power_set *set) { return &set->priv[set->n - 1]; }

/* ---- NVML ---- */

static const char *nv_err(int rc) {
  const char *s = nv.errstr ? nv.errstr(rc) : NULL;
  return s ? s : "error";
}

static void open_nvml(br_power_set *set, char *notes, size_t size) {
  char why[200];
  *(void **)&nv.count = br_platform_nvml_symbol("nvmlDeviceGetCount_v2", why, sizeof why);
  if (!nv.count) { note(notes, size, "nvml: %s%s", why, ""); return; }
  *(void **)&nv.handle = br_platform_nvml_symbol("nvmlDeviceGetHandleByIndex_v2", why, sizeof why);
  *(void **)&nv.name = br_platform_nvml_symbol("nvmlDeviceGetName", why, sizeof why);
  *(void **)&nv.errstr = br_platform_nvml_symbol("nvmlErrorString", why, sizeof why);
  *(void **)&nv.energy = br_platform_nvml_symbol("nvmlDeviceGetTotalEnergyConsumption", why, sizeof why);
  *(void **)&nv.power = br_platform_nvml_symbol("nvmlDeviceGetPowerUsage", why, sizeof why);
  *(void **)&nv.temp = br_platform_nvml_symbol("nvmlDeviceGetTemperature", why, sizeof why);
  *(void **)&nv.clock = br_platform_nvml_symbol("nvmlDeviceGetClockInfo", why, sizeof why);
  /* NVML 12.2 renamed the throttle reasons "clock event reasons"; older drivers have the old name only. */
  *(void **)&nv.reasons = br_platform_nvml_symbol("nvmlDeviceGetCurrentClocksEventReasons", why, sizeof why);
  if (!nv.reasons)
    *(void **)&nv.reasons = br_platform_nvml_symbol("nvmlDeviceGetCurrentClocksThrottleReasons", why, sizeof why);
  unsigned n = 0;
  int rc = nv.count(&n);
  if (rc != 0 || !nv.handle) { note(notes, size, "nvml: nvmlDeviceGetCount: %s%s", nv_err(rc), ""); return; }
  for (unsigned i = 0; i < n; i++) {
    nvml_dev d;
    if (nv.handle(i, &d) != 0) continue;
    unsigned long long mj;
    unsigned u;
    unsigned caps = 0;
    /* Each reading is tried once here: a GPU that does not support one
     * (NVML_ERROR_NOT_SUPPORTED) is not asked again. */
    if (nv.energy && nv.energy(d, &mj) == 0) caps |= BR_PCAP_ENERGY;
    else if (nv.power && nv.power(d, &u) == 0) caps |= BR_PCAP_POWER;
    if (nv.temp && nv.temp(d, NVML_TEMPERATURE_GPU, &u) == 0) caps |= BR_PCAP_TEMP;
    if (nv.clock && nv.clock(d, NVML_CLOCK_SM, &u) == 0) caps |= BR_PCAP_CLOCK;
    if (nv.reasons && nv.reasons(d, &mj) == 0) caps |= BR_PCAP_THROTTLE;
    int energy = (caps & (BR_PCAP_ENERGY | BR_PCAP_POWER)) != 0;
    br_power_source *p = add(set, K_NVML, BR_PDOM_GPU, energy, caps);
    if (!p) return;
    put(p->name, sizeof p->name, "nvml:%u", i);
    char name[96] = "";
    if (!nv.name || nv.name(d, name, sizeof name) != 0) put(name, sizeof name, "GPU %u", i);
    put(p->detail, sizeof p->detail, "%s (%s)", name,
             caps & BR_PCAP_ENERGY ? "energy counter" : caps & BR_PCAP_POWER ? "power, integrated" : "no energy or power");
    last_priv(set)->dev = d;
  }
}

static void read_nvml(const linux_src *s, const br_power_source *p, br_power_reading *r) {
  int rc = 0;
  if (p->caps & BR_PCAP_ENERGY) {
    unsigned long long mj;
    if ((rc = nv.energy(s->dev, &mj)) == 0) r->energy_j = (double)mj / 1e3;
  } else if (p->caps & BR_PCAP_POWER) {
    unsigned mw;
    if ((rc = nv.power(s->dev, &mw)) == 0) r->power_w = (double)mw / 1e3;
  }
  if (rc != 0) {
    r->ok = 0;
    put(r->why, sizeof r->why, "NVML: %s", nv_err(rc));
    return;
  }
  unsigned u;
  if ((p->caps & BR_PCAP_TEMP) && nv.temp(s->dev, NVML_TEMPERATURE_GPU, &u) == 0) r->temp_c = u;
  if ((p->caps & BR_PCAP_CLOCK) && nv.clock(s->dev, NVML_CLOCK_SM, &u) == 0) r->clock_mhz = u;
  unsigned long long bits;
  if ((p->caps & BR_PCAP_THROTTLE) && nv.reasons(s->dev, &bits) == 0) {
    r->reasons = bits;
    r->throttled = (bits & NVML_THROTTLED_BITS) != 0;
  }
}

/* ---- powercap (RAPL) ---- */

/* intel-rapl:P (a package, or a top-level dram/psys zone) and intel-rapl:P:S
 * (its sub-zones), flat in /sys/class/powercap. */
static void open_rapl(br_power_set *set, char *notes, size_t size) {
  char dir[PATH_MAX], path[PATH_MAX + 32], name[64], parent[64];
  put(dir, sizeof dir, "%s/class/powercap", sysfs());
  dir_list l;
  if (dir_open(dir, &l) != 0) { note(notes, size, "rapl: no %s%s", dir, ""); return; }
  int found = 0, denied = 0, packages = 0;
  for (int i = 0; i < l.n; i++) {
    const struct dirent *e = l.v[i];
    if (strncmp(e->d_name, "intel-rapl:", 11)) continue;   /* not intel-rapl-mmio: the same package again */
    put(path, sizeof path, "%s/%s/name", dir, e->d_name);
    if (read_line(path, name, sizeof name) != 0) continue;
    long long uj, range = 0;
    put(path, sizeof path, "%s/%s/energy_uj", dir, e->d_name);
    int rc = read_num(path, &uj);
    if (rc == -EACCES || rc == -EPERM) { denied++; continue; }
    if (rc != 0) continue;
    put(path, sizeof path, "%s/%s/max_energy_range_uj", dir, e->d_name);
    if (read_num(path, &range) != 0) range = 0;
    int sub = strchr(e->d_name + 11, ':') != NULL;
    parent[0] = 0;
    if (sub) {   /* intel-rapl:P:S: its package's name */
      char pdir[64];
      put(pdir, sizeof pdir, "%.*s", (int)(strrchr(e->d_name, ':') - e->d_name), e->d_name);
      put(path, sizeof path, "%s/%s/name", dir, pdir);
      if (read_line(path, parent, sizeof parent) != 0) put(parent, sizeof parent, "%s", pdir);
    }
    int dram = !strcmp(name, "dram"), package = !strncmp(name, "package-", 8);
    int domain = dram ? BR_PDOM_DRAM : BR_PDOM_CPU;
    int counted = dram || (package && !sub);
    br_power_source *p = add(set, K_RAPL, domain, counted, BR_PCAP_ENERGY);
    if (!p) break;
    if (sub) put(p->name, sizeof p->name, "rapl:%.24s/%.24s", parent, name);
    else put(p->name, sizeof p->name, "rapl:%.40s", name);
    put(p->detail, sizeof p->detail, "powercap %s%s", e->d_name,
             counted ? "" : " (inside a package: listed, not counted)");
    linux_src *s = last_priv(set);
    put(s->path, sizeof s->path, "%s/%s/energy_uj", dir, e->d_name);
    s->scale = 1e-6;
    s->range_j = (double)range * 1e-6;
    found++;
    packages += package;
  }
  dir_free(&l);
  if (denied && !found)
    note(notes, size, "rapl: %s/intel-rapl:*/energy_uj is not readable: root only since Linux 5.10%s", dir, "");
  else if (!found) note(notes, size, "rapl: no RAPL zone in %s%s", dir, "");
}

static void read_file_source(const linux_src *s, const br_power_source *p, br_power_reading *r) {
  long long v;
  int rc = read_num(s->path, &v);
  if (rc != 0) {
    r->ok = 0;
    put(r->why, sizeof r->why, "%s: %s", s->path, strerror(-rc));
    return;
  }
  switch (s->kind) {
  case K_RAPL:
    if (v < 0 || (s->range_j > 0 && (double)v * s->scale > s->range_j)) {
      r->ok = 0;
      put(r->why, sizeof r->why, "energy_uj %lld is outside 0..max_energy_range_uj", v);
      return;
    }
    r->energy_j = (double)v * s->scale;
    r->range_j = s->range_j;
    break;
  case K_HWMON_ENERGY: r->energy_j = (double)v * s->scale; break;
  case K_HWMON_POWER: r->power_w = (double)v * s->scale; break;
  case K_TEMP: r->temp_c = (double)v * s->scale; break;
  case K_CPU_THROTTLE: break;
  }
  (void)p;
}

/* ---- hwmon and thermal zones ---- */

static void add_file(br_power_set *set, int kind, int domain, int counted, unsigned caps, const char *name,
                     const char *detail, const char *path, double scale) {
  br_power_source *p = add(set, kind, domain, counted, caps);
  if (!p) return;
  put(p->name, sizeof p->name, "%s", name);
  put(p->detail, sizeof p->detail, "%s", detail);
  linux_src *s = last_priv(set);
  put(s->path, sizeof s->path, "%s", path);
  s->scale = scale;
}

static int rapl_has_package(const br_power_set *set) {
  for (int i = 0; i < set->n; i++)
    if (set->priv[i].kind == K_RAPL && set->pub[i].counted && set->pub[i].domain == BR_PDOM_CPU) return 1;
  return 0;
}

static void open_hwmon(br_power_set *set, char *notes, size_t size) {
  char dir[PATH_MAX], path[PATH_MAX + 64], chip[64], label[64], name[64], detail[160];
  put(dir, sizeof dir, "%s/class/hwmon", sysfs());
  dir_list l;
  if (dir_open(dir, &l) != 0) { note(notes, size, "hwmon: no %s%s", dir, ""); return; }
  int package = rapl_has_package(set);
  long long v;
  for (int i = 0; i < l.n; i++) {
    const struct dirent *e = l.v[i];
    if (strncmp(e->d_name, "hwmon", 5)) continue;
    put(path, sizeof path, "%s/%s/name", dir, e->d_name);
    if (read_line(path, chip, sizeof chip) != 0) continue;
    int gpu = !strcmp(chip, "amdgpu");
    /* energyN_input (µJ): amd_energy's per-socket counters count where RAPL has no package */
    for (int k = 1; k <= 64; k++) {
      put(path, sizeof path, "%s/%s/energy%d_label", dir, e->d_name, k);
      if (read_line(path, label, sizeof label) != 0) put(label, sizeof label, "energy%d", k);
      put(path, sizeof path, "%s/%s/energy%d_input", dir, e->d_name, k);
      if (read_num(path, &v) != 0) break;
      int counted = !package && !strncmp(label, "Esocket", 7);
      put(name, sizeof name, "%.8s:%.20s/%.24s", e->d_name, chip, label);
      put(detail, sizeof detail, "hwmon energy counter%s", counted ? "" : " (listed, not counted)");
      add_file(set, K_HWMON_ENERGY, BR_PDOM_CPU, counted, BR_PCAP_ENERGY, name, detail, path, 1e-6);
    }
    /* an AMD GPU's power (µW): power1_input on newer kernels, else power1_average */
    if (gpu) {
      const char *files[] = {"power1_input", "power1_average"};
      for (int k = 0; k < 2; k++) {
        put(path, sizeof path, "%s/%s/%s", dir, e->d_name, files[k]);
        if (read_num(path, &v) != 0) continue;
        put(name, sizeof name, "%.8s:amdgpu/power1", e->d_name);
        add_file(set, K_HWMON_POWER, BR_PDOM_GPU, 1, BR_PCAP_POWER, name, "amdgpu power, integrated", path, 1e-6);
        break;
      }
    }
    put(path, sizeof path, "%s/%s/temp1_input", dir, e->d_name);
    if (read_num(path, &v) == 0) {
      put(path, sizeof path, "%s/%s/temp1_label", dir, e->d_name);
      if (read_line(path, label, sizeof label) != 0) put(label, sizeof label, "temp1");
      put(name, sizeof name, "%.8s:%.20s/%.24s", e->d_name, chip, label);
      put(path, sizeof path, "%s/%s/temp1_input", dir, e->d_name);
      add_file(set, K_TEMP, gpu ? BR_PDOM_GPU : -1, 0, BR_PCAP_TEMP, name, "hwmon temperature", path, 1e-3);
    }
  }
  dir_free(&l);
}

static void open_thermal(br_power_set *set, char *notes, size_t size) {
  char dir[PATH_MAX], path[PATH_MAX + 32], type[48], name[64];
  put(dir, sizeof dir, "%s/class/thermal", sysfs());
  dir_list l;
  if (dir_open(dir, &l) != 0) { note(notes, size, "thermal: no %s%s", dir, ""); return; }
  for (int i = 0; i < l.n; i++) {
    const struct dirent *e = l.v[i];
    if (strncmp(e->d_name, "thermal_zone", 12)) continue;
    long long v;
    put(path, sizeof path, "%s/%s/temp", dir, e->d_name);
    if (read_num(path, &v) != 0) continue;   /* some zones answer EIO or ENODATA: not a source */
    put(path, sizeof path, "%s/%s/type", dir, e->d_name);
    if (read_line(path, type, sizeof type) != 0) put(type, sizeof type, "?");
    put(name, sizeof name, "thermal:zone%.8s/%.40s", e->d_name + 12, type);
    put(path, sizeof path, "%s/%s/temp", dir, e->d_name);
    add_file(set, K_TEMP, -1, 0, BR_PCAP_TEMP, name, "thermal zone", path, 1e-3);
  }
  dir_free(&l);
}

/* One CPU of each package: its package_throttle_count rises while the
 * package is throttled for heat (Intel's thermal_throttle). */
static void open_cpu_throttle(br_power_set *set) {
  char dir[PATH_MAX], path[PATH_MAX + 64], name[64];
  put(dir, sizeof dir, "%s/devices/system/cpu", sysfs());
  dir_list l;
  if (dir_open(dir, &l) != 0) return;
  long long seen[64];
  int nseen = 0;
  for (int i = 0; i < l.n; i++) {
    const struct dirent *e = l.v[i];
    if (strncmp(e->d_name, "cpu", 3) || e->d_name[3] < '0' || e->d_name[3] > '9') continue;
    long long pkg = 0, v;
    put(path, sizeof path, "%s/%s/thermal_throttle/package_throttle_count", dir, e->d_name);
    if (read_num(path, &v) != 0) continue;
    put(path, sizeof path, "%s/%s/topology/physical_package_id", dir, e->d_name);
    if (read_num(path, &pkg) != 0) pkg = 0;
    int dup = 0;
    for (int j = 0; j < nseen; j++) dup |= seen[j] == pkg;
    if (dup || nseen >= 64) continue;
    seen[nseen++] = pkg;
    put(name, sizeof name, "cpu-throttle:package-%lld", pkg);
    put(path, sizeof path, "%s/%s/thermal_throttle/package_throttle_count", dir, e->d_name);
    add_file(set, K_CPU_THROTTLE, BR_PDOM_CPU, 0, BR_PCAP_THROTTLE, name, "thermal_throttle package_throttle_count",
             path, 1);
  }
  dir_free(&l);
}

static void read_cpu_throttle(linux_src *s, br_power_reading *r) {
  long long v;
  if (read_num(s->path, &v) != 0 || v < 0) {
    r->ok = 0;
    put(r->why, sizeof r->why, "%s: not readable", s->path);
    return;
  }
  /* throttled: the count rose since the last reading (the first tells nothing) */
  r->throttled = s->have_count ? (unsigned long long)v > s->last_count : 0;
  r->reasons = (uint64_t)v;
  s->last_count = (unsigned long long)v;
  s->have_count = 1;
}

/* ---- cpufreq: throttling from the CPUs' clocks (docs/power.md) ---- */

#define CPUFREQ_BUSY 0.9    /* a CPU busy this share of an interval or more counts toward the clock */
#define CPUFREQ_DROP 0.85   /* throttled below this share of the reference clock */
enum { CPUFREQ_READS = 32, CPUFREQ_CAPS = 8 };   /* at most this many clock and cap files a sample */

typedef struct {
  int cpu;                         /* N of cpuN */
  long long cap0;                  /* its scaling_max_freq at open (kHz); 0: unreadable */
  unsigned long long total, idle;  /* its /proc/stat jiffies at the last reading */
  int have;                        /* total and idle read once */
  double busy;                     /* the last measured busy share; -1: none yet */
} cpufreq_cpu;

struct cpufreq_state {
  int n;
  cpufreq_cpu *cpu;                /* by CPU number, ascending (as /proc/stat lists them) */
  int *busy;                       /* scratch: the busy CPUs' indexes */
  double *best;                    /* best[k]: the fastest busy clock seen with k CPUs busy (kHz); 0: none */
  int clock_rule;                  /* 0 where thermal_throttle counters tell (Intel) */
  char dir[PATH_MAX];              /* the sysfs devices/system/cpu */
  char stat[PATH_MAX];             /* /proc/stat */
  char *line;                      /* getline's buffer */
  size_t line_cap;
};

static void cpufreq_free(cpufreq_state *cf) {
  if (!cf) return;
  free(cf->cpu);
  free(cf->busy);
  free(cf->best);
  free(cf->line);
  free(cf);
}

static int cpu_order(const void *a, const void *b) {
  return ((const cpufreq_cpu *)a)->cpu - ((const cpufreq_cpu *)b)->cpu;
}

/* The CPUs with a scaling_cur_freq: one source for them all. With counters
 * (a thermal_throttle source), only the cap rule applies. */
static void open_cpufreq(br_power_set *set, int counters) {
  char dir[PATH_MAX], path[PATH_MAX + 64], detail[160];
  put(dir, sizeof dir, "%s/devices/system/cpu", sysfs());
  dir_list l;
  if (dir_open(dir, &l) != 0) return;
  cpufreq_state *cf = calloc(1, sizeof *cf);
  if (cf) cf->cpu = calloc((size_t)(l.n ? l.n : 1), sizeof *cf->cpu);
  for (int i = 0; cf && cf->cpu && i < l.n; i++) {
    const char *name = l.v[i]->d_name;
    if (strncmp(name, "cpu", 3) || name[3] < '0' || name[3] > '9') continue;
    char *end;
    long k = strtol(name + 3, &end, 10);
    if (*end || k > INT_MAX) continue;   /* cpuN only: not cpufreq, cpuidle */
    long long v;
    put(path, sizeof path, "%s/%s/cpufreq/scaling_cur_freq", dir, name);
    if (read_num(path, &v) != 0) continue;
    cpufreq_cpu *c = &cf->cpu[cf->n++];
    c->cpu = (int)k;
    c->busy = -1;
    put(path, sizeof path, "%s/%s/cpufreq/scaling_max_freq", dir, name);
    if (read_num(path, &c->cap0) != 0 || c->cap0 < 0) c->cap0 = 0;
  }
  dir_free(&l);
  if (!cf || !cf->cpu || cf->n == 0) { cpufreq_free(cf); return; }
  qsort(cf->cpu, (size_t)cf->n, sizeof *cf->cpu, cpu_order);
  cf->busy = calloc((size_t)cf->n, sizeof *cf->busy);
  cf->best = calloc((size_t)cf->n + 1, sizeof *cf->best);
  put(cf->dir, sizeof cf->dir, "%s", dir);
  put(cf->stat, sizeof cf->stat, "%s/stat", procfs());
  FILE *f = fopen(cf->stat, "re");
  if (f) fclose(f);
  cf->clock_rule = !counters && f != NULL;
  br_power_source *p = cf->busy && cf->best ? add(set, K_CPUFREQ, BR_PDOM_CPU, 0, BR_PCAP_THROTTLE) : NULL;
  if (!p) { cpufreq_free(cf); return; }
  put(p->name, sizeof p->name, "cpufreq");
  put(detail, sizeof detail, "%d CPUs: throttled when scaling_max_freq is lowered%s", cf->n,
      counters ? " (the clock: thermal_throttle counters tell)"
      : f ? " or the busy CPUs' clock drops 15%" : " (no /proc/stat: the clock is not judged)");
  put(p->detail, sizeof p->detail, "%s", detail);
  last_priv(set)->cf = cf;
}

/* Each CPU's busy share over the interval since the last reading, from
 * /proc/stat's "cpuN user nice system idle iowait irq softirq steal"
 * jiffies; a CPU whose counters did not move (an interval under a jiffy)
 * keeps its last share. 0, or -1 when the file cannot be read. */
static int cpufreq_busy(cpufreq_state *cf) {
  FILE *f = fopen(cf->stat, "re");
  if (!f) return -1;
  int i = 0;
  while (getline(&cf->line, &cf->line_cap, f) > 0 && !strncmp(cf->line, "cpu", 3)) {   /* the cpu lines come first */
    char *p = cf->line + 3;
    if (*p < '0' || *p > '9') continue;   /* "cpu ": all of them */
    long k = strtol(p, &p, 10);
    while (i < cf->n && cf->cpu[i].cpu < k) i++;
    if (i >= cf->n) break;
    if (cf->cpu[i].cpu != k) continue;
    unsigned long long x, total = 0, idle = 0;
    for (int j = 0; j < 8; j++) {
      x = strtoull(p, &p, 10);
      total += x;
      if (j == 3 || j == 4) idle += x;   /* idle, iowait */
    }
    cpufreq_cpu *c = &cf->cpu[i];
    /* iowait may go back a little (a kernel's own caveat): that interval keeps the last share */
    if (c->have && total > c->total && idle >= c->idle) {
      double dt = (double)(total - c->total), di = (double)(idle - c->idle);
      c->busy = di >= dt ? 0 : 1 - di / dt;
    }
    c->total = total;
    c->idle = idle;
    c->have = 1;
  }
  fclose(f);
  return 0;
}

/* throttled: a cap below its value at open, or (the clock rule) the busy
 * CPUs' mean scaling_cur_freq under CPUFREQ_DROP of the fastest mean seen
 * with as many CPUs busy or more; reasons: that mean in MHz (0: none busy).
 * Unknown (-1) only when nothing could be read. */
static void read_cpufreq(linux_src *s, br_power_reading *r) {
  cpufreq_state *cf = s->cf;
  char path[PATH_MAX + 64];
  long long v;
  int step = cf->n > CPUFREQ_CAPS ? cf->n / CPUFREQ_CAPS : 1;
  for (int i = 0; i < cf->n; i += step) {
    if (cf->cpu[i].cap0 <= 0) continue;
    put(path, sizeof path, "%s/cpu%d/cpufreq/scaling_max_freq", cf->dir, cf->cpu[i].cpu);
    if (read_num(path, &v) != 0) continue;
    if (r->throttled < 0) r->throttled = 0;
    if (v < cf->cpu[i].cap0) r->throttled = 1;
  }
  if (!cf->clock_rule || cpufreq_busy(cf) != 0) return;
  int nb = 0;
  for (int i = 0; i < cf->n; i++)
    if (cf->cpu[i].busy >= CPUFREQ_BUSY) cf->busy[nb++] = i;
  if (nb == 0) {   /* nothing busy: an idle CPU's low clock is no throttling */
    if (r->throttled < 0) r->throttled = 0;
    return;
  }
  int reads = nb < CPUFREQ_READS ? nb : CPUFREQ_READS, got = 0;
  double sum = 0;
  for (int j = 0; j < reads; j++) {   /* spread over the busy CPUs */
    const cpufreq_cpu *c = &cf->cpu[cf->busy[(long)j * nb / reads]];
    put(path, sizeof path, "%s/cpu%d/cpufreq/scaling_cur_freq", cf->dir, c->cpu);
    if (read_num(path, &v) == 0 && v > 0) { sum += (double)v; got++; }
  }
  if (!got) return;
  double mean = sum / got, ref = 0;
  for (int k = nb; k <= cf->n; k++) if (cf->best[k] > ref) ref = cf->best[k];
  if (mean > cf->best[nb]) cf->best[nb] = mean;
  r->reasons = (uint64_t)(mean / 1000 + 0.5);
  if (r->throttled < 0) r->throttled = 0;
  if (ref > 0 && mean < CPUFREQ_DROP * ref) r->throttled = 1;
}

/* ---- the interface ---- */

br_power_set *br_power_open(char *notes, size_t size) {
  if (size) notes[0] = 0;
  br_power_set *set = calloc(1, sizeof *set);
  if (!set) return NULL;
  open_nvml(set, notes, size);
  open_rapl(set, notes, size);
  open_hwmon(set, notes, size);
  open_thermal(set, notes, size);
  open_cpu_throttle(set);
  int counters = 0;
  for (int i = 0; i < set->n; i++) counters |= set->priv[i].kind == K_CPU_THROTTLE;
  open_cpufreq(set, counters);
  if (set->n >= MAX_SOURCES) note(notes, size, "power: more than %s sources; the rest are not read%s", "128", "");
  return set;
}

int br_power_count(const br_power_set *set) { return set->n; }

const br_power_source *br_power_source_at(const br_power_set *set, int i) { return &set->pub[i]; }

void br_power_read(br_power_set *set, br_power_reading *out) {
  for (int i = 0; i < set->n; i++) {
    br_power_reading *r = &out[i];
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->temp_c = r->clock_mhz = r->power_w = NAN;
    r->throttled = -1;
    linux_src *s = &set->priv[i];
    if (s->kind == K_NVML) read_nvml(s, &set->pub[i], r);
    else if (s->kind == K_CPU_THROTTLE) read_cpu_throttle(s, r);
    else if (s->kind == K_CPUFREQ) read_cpufreq(s, r);
    else read_file_source(s, &set->pub[i], r);
  }
}

void br_power_close(br_power_set *set) {
  if (!set) return;
  for (int i = 0; i < set->n; i++) cpufreq_free(set->priv[i].cf);
  free(set);
}
