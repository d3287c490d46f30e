/* A fake libnvidia-ml.so.1 for the tests: the few NVML functions benchrun
 * calls, with the signatures, struct layouts, return codes and calling rules
 * of NVIDIA's nvml.h, NVML 12.2.140 (NVML_API_VERSION 12; the header as
 * NVIDIA/go-nvml carries it in gen/nvml/nvml.h). benchrun loads it through
 * BENCHRUN_NVML=path (engine/platform_linux.c).
 *
 * What it reports comes from the environment of the process that loads it,
 * read at every call:
 *   FAKE_NVML_PROCS        "pid:bytes[@device],..." the compute processes;
 *                          bytes "na" = NVML_VALUE_NOT_AVAILABLE
 *   FAKE_NVML_DEVICES      how many devices (default 1)
 *   FAKE_NVML_USED         each device's used memory in bytes (default: its
 *                          processes' sum plus 300 MiB the driver keeps)
 *   FAKE_NVML_PROCS_ERROR  an nvmlReturn_t the process-list functions return
 *                          instead (3 = NVML_ERROR_NOT_SUPPORTED, ...)
 * and, for bench.power, each value either in the variable or, written
 * "@path", in that file (read at every call, so a test can change it):
 *   FAKE_NVML_POWER_MW     nvmlDeviceGetPowerUsage's milliwatts (default
 *                          100000); "na": NVML_ERROR_NOT_SUPPORTED
 *   FAKE_NVML_ENERGY_MJ    nvmlDeviceGetTotalEnergyConsumption's counter, mJ;
 *                          unset: FAKE_NVML_POWER_MW times the seconds of
 *                          CLOCK_MONOTONIC (a counter that grows at that power);
 *                          "na": NVML_ERROR_NOT_SUPPORTED (GPUs before Volta);
 *                          "err:N": nvmlReturn_t N
 *   FAKE_NVML_TEMP         nvmlDeviceGetTemperature's °C (default 45)
 *   FAKE_NVML_SM_CLOCK     nvmlDeviceGetClockInfo(NVML_CLOCK_SM)'s MHz
 *                          (default 1980; other clocks: 1593)
 *   FAKE_NVML_REASONS      the clock event (throttle) reason bits (default 0)
 *
 * Built twice (tests/mem.cmake): as it is, exporting the unversioned, _v2
 * and _v3 nvmlDeviceGetComputeRunningProcesses as drivers since R510 do;
 * and with FAKE_NVML_LEGACY, exporting only the unversioned function with
 * the shorter nvmlProcessInfo_v1_t, as drivers before R470 do; that one
 * also has only nvmlDeviceGetCurrentClocksThrottleReasons, the name before
 * NVML 12.2 added nvmlDeviceGetCurrentClocksEventReasons. */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- from nvml.h 12.2.140 ---- */
typedef enum nvmlReturn_enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NO_PERMISSION = 4,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_UNKNOWN = 999
} nvmlReturn_t;

#define NVML_VALUE_NOT_AVAILABLE (-1)

typedef enum nvmlTemperatureSensors_enum { NVML_TEMPERATURE_GPU = 0, NVML_TEMPERATURE_COUNT } nvmlTemperatureSensors_t;
typedef enum nvmlClockType_enum {
  NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_CLOCK_VIDEO = 3, NVML_CLOCK_COUNT
} nvmlClockType_t;

typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct nvmlMemory_st {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct nvmlProcessInfo_v1_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct nvmlProcessInfo_v2_st {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;      /* 0xFFFFFFFF when MIG is off */
  unsigned int computeInstanceId;  /* 0xFFFFFFFF when MIG is off */
} nvmlProcessInfo_v2_t, nvmlProcessInfo_t;

#define EXPORT __attribute__((visibility("default")))

/* ---- the fake's state ---- */
enum { MAX_DEVICES = 8, MAX_PROCS = 512 };
struct nvmlDevice_st { unsigned index; };
static struct nvmlDevice_st devices[MAX_DEVICES];
static int initialized;

typedef struct { unsigned pid, device; unsigned long long used; } fake_proc;

static unsigned device_count(void) {
  const char *s = getenv("FAKE_NVML_DEVICES");
  long n = s ? strtol(s, NULL, 10) : 1;
  return n < 0 ? 0 : n > MAX_DEVICES ? MAX_DEVICES : (unsigned)n;
}

static int read_procs(fake_proc *out) {
  const char *s = getenv("FAKE_NVML_PROCS");
  int n = 0;
  while (s && *s && n < MAX_PROCS) {
    char *end;
    unsigned long pid = strtoul(s, &end, 10);
    if (*end != ':') break;
    s = end + 1;
    unsigned long long used;
    if (!strncmp(s, "na", 2)) { used = (unsigned long long)NVML_VALUE_NOT_AVAILABLE; s += 2; }
    else { used = strtoull(s, &end, 10); s = end; }
    unsigned long dev = 0;
    if (*s == '@') { dev = strtoul(s + 1, &end, 10); s = end; }
    out[n].pid = (unsigned)pid;
    out[n].device = (unsigned)dev;
    out[n].used = used;
    n++;
    if (*s == ',') s++;
  }
  return n;
}

static int device_index(nvmlDevice_t d) {
  if (!d || d < devices || d >= devices + device_count()) return -1;
  return (int)(d - devices);
}

/* ---- the API ---- */
EXPORT nvmlReturn_t nvmlInit_v2(void) {
  for (unsigned i = 0; i < MAX_DEVICES; i++) devices[i].index = i;
  initialized++;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  initialized--;
  return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
  case NVML_SUCCESS: return "Success";
  case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
  case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
  case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
  case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
  case NVML_ERROR_NOT_FOUND: return "Not Found";
  case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
  case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
  default: return "Unknown Error";
  }
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (!deviceCount) return NVML_ERROR_INVALID_ARGUMENT;
  *deviceCount = device_count();
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (!device || index >= device_count()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &devices[index];
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  int i = device_index(device);
  if (i < 0 || !name) return NVML_ERROR_INVALID_ARGUMENT;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "Fake NVML GPU %d", i);
  if ((unsigned)n + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(name, buf, (size_t)n + 1);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  int i = device_index(device);
  if (i < 0 || !memory) return NVML_ERROR_INVALID_ARGUMENT;
  memory->total = 80ULL << 30;
  const char *u = getenv("FAKE_NVML_USED");
  if (u) {
    memory->used = strtoull(u, NULL, 10);
  } else {
    fake_proc p[MAX_PROCS];
    int n = read_procs(p);
    memory->used = 300ULL << 20;
    for (int k = 0; k < n; k++)
      if (p[k].device == (unsigned)i && p[k].used != (unsigned long long)NVML_VALUE_NOT_AVAILABLE) memory->used += p[k].used;
  }
  memory->free = memory->total > memory->used ? memory->total - memory->used : 0;
  return NVML_SUCCESS;
}

/* The rules of nvml.h: *infoCount is the room in infos; too little room (a
 * query with *infoCount = 0 and infos NULL included) answers
 * NVML_ERROR_INSUFFICIENT_SIZE with the count needed in *infoCount, or
 * NVML_SUCCESS when none are running; else the records and their count. */
static nvmlReturn_t list(nvmlDevice_t device, unsigned int *infoCount, void *infos, int v2) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  int i = device_index(device);
  if (i < 0 || !infoCount) return NVML_ERROR_INVALID_ARGUMENT;
  const char *e = getenv("FAKE_NVML_PROCS_ERROR");
  if (e && *e) return (nvmlReturn_t)strtol(e, NULL, 10);
  fake_proc p[MAX_PROCS];
  int n = read_procs(p);
  unsigned have = 0;
  for (int k = 0; k < n; k++) if (p[k].device == (unsigned)i) have++;
  if (have == 0) { *infoCount = 0; return NVML_SUCCESS; }
  if (*infoCount < have || !infos) { *infoCount = have; return NVML_ERROR_INSUFFICIENT_SIZE; }
  unsigned j = 0;
  for (int k = 0; k < n; k++) {
    if (p[k].device != (unsigned)i) continue;
    if (v2) {
      nvmlProcessInfo_v2_t *r = (nvmlProcessInfo_v2_t *)infos + j;
      r->pid = p[k].pid;
      r->usedGpuMemory = p[k].used;
      r->gpuInstanceId = r->computeInstanceId = 0xFFFFFFFFu;
    } else {
      nvmlProcessInfo_v1_t *r = (nvmlProcessInfo_v1_t *)infos + j;
      r->pid = p[k].pid;
      r->usedGpuMemory = p[k].used;
    }
    j++;
  }
  *infoCount = have;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                         nvmlProcessInfo_v1_t *infos) {
  return list(device, infoCount, infos, 0);
}

#ifndef FAKE_NVML_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_v2_t *infos) {
  return list(device, infoCount, infos, 1);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
  return list(device, infoCount, infos, 1);
}
#endif

/* ---- power, temperature, clocks (bench.power) ---- */

/* The value of a FAKE_NVML_* variable, or of the file it names as "@path",
 * into buf; 0 when unset. */
static int setting(const char *var, char *buf, size_t size) {
  const char *v = getenv(var);
  if (!v || !*v) return 0;
  if (v[0] != '@') { snprintf(buf, size, "%s", v); return 1; }
  FILE *f = fopen(v + 1, "r");
  if (!f) return 0;
  int ok = fgets(buf, (int)size, f) != NULL;
  fclose(f);
  return ok;
}

static unsigned long long setting_num(const char *var, unsigned long long dflt) {
  char buf[64];
  return setting(var, buf, sizeof buf) ? strtoull(buf, NULL, 10) : dflt;
}

/* The rules of nvml.h for these getters: UNINITIALIZED before nvmlInit,
 * INVALID_ARGUMENT for a bad device or a NULL output. */
static nvmlReturn_t check(nvmlDevice_t device, const void *out) {
  if (!initialized) return NVML_ERROR_UNINITIALIZED;
  if (device_index(device) < 0 || !out) return NVML_ERROR_INVALID_ARGUMENT;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
  nvmlReturn_t rc = check(device, power);
  if (rc != NVML_SUCCESS) return rc;
  char buf[64];
  if (setting("FAKE_NVML_POWER_MW", buf, sizeof buf) && !strncmp(buf, "na", 2)) return NVML_ERROR_NOT_SUPPORTED;
  *power = (unsigned)setting_num("FAKE_NVML_POWER_MW", 100000);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
  nvmlReturn_t rc = check(device, energy);
  if (rc != NVML_SUCCESS) return rc;
  char buf[64];
  if (setting("FAKE_NVML_ENERGY_MJ", buf, sizeof buf)) {
    if (!strncmp(buf, "na", 2)) return NVML_ERROR_NOT_SUPPORTED;
    if (!strncmp(buf, "err:", 4)) return (nvmlReturn_t)strtol(buf + 4, NULL, 10);
    *energy = strtoull(buf, NULL, 10);
    return NVML_SUCCESS;
  }
  /* mJ since the driver loaded: here, the monotonic clock's seconds at the set power */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double mw = (double)setting_num("FAKE_NVML_POWER_MW", 100000);
  *energy = (unsigned long long)(mw * ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9));
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
                                              unsigned int *temp) {
  nvmlReturn_t rc = check(device, temp);
  if (rc != NVML_SUCCESS) return rc;
  if (sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  *temp = (unsigned)setting_num("FAKE_NVML_TEMP", 45);
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock) {
  nvmlReturn_t rc = check(device, clock);
  if (rc != NVML_SUCCESS) return rc;
  if ((unsigned)type >= NVML_CLOCK_COUNT) return NVML_ERROR_INVALID_ARGUMENT;
  *clock = type == NVML_CLOCK_SM ? (unsigned)setting_num("FAKE_NVML_SM_CLOCK", 1980) : 1593;
  return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                              unsigned long long *clocksThrottleReasons) {
  nvmlReturn_t rc = check(device, clocksThrottleReasons);
  if (rc != NVML_SUCCESS) return rc;
  *clocksThrottleReasons = setting_num("FAKE_NVML_REASONS", 0);
  return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                           unsigned long long *clocksEventReasons) {
  return nvmlDeviceGetCurrentClocksThrottleReasons(device, clocksEventReasons);
}
#endif
