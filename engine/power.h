/* The power layer of bench.power: the sources of energy, power, temperature
 * and throttling that a platform has, behind one small interface.
 * power.c (the Lua module and its sampler thread) uses only this;
 * power_linux.c (NVML, powercap/RAPL, hwmon, thermal zones, the CPUs'
 * thermal_throttle counters and cpufreq clocks) and power_darwin.c (IOReport's "Energy Model",
 * the thermal pressure notification) implement it; CMake builds the one of
 * the platform. */
#ifndef BENCHRUN_POWER_H
#define BENCHRUN_POWER_H

#include <stddef.h>
#include <stdint.h>

/* What a source's energy is part of: the sampler keeps one cumulative
 * energy per domain, so a per-cell figure can say what it covers. */
enum { BR_PDOM_CPU, BR_PDOM_GPU, BR_PDOM_DRAM, BR_PDOM_ANE, BR_PDOM_N };

/* What a source gives (bits of br_power_source.caps). */
enum {
  BR_PCAP_ENERGY = 1,    /* a cumulative energy counter (J) */
  BR_PCAP_POWER = 2,     /* instantaneous power (W), integrated where there is no counter */
  BR_PCAP_TEMP = 4,      /* a temperature (°C) */
  BR_PCAP_CLOCK = 8,     /* a clock (MHz): the GPU's SM clock */
  BR_PCAP_THROTTLE = 16  /* whether it is throttled now (and a raw reason value) */
};

typedef struct {
  char name[64];         /* unique, stable: "nvml:0", "rapl:package-0", "thermal:x86_pkg_temp" */
  char detail[160];      /* what it is: the device's name, the file it reads */
  int domain;            /* BR_PDOM_*, or -1 where it gives no energy */
  int counted;           /* its energy adds to the total (a RAPL core sub-zone, inside its package, does not) */
  unsigned caps;         /* BR_PCAP_* */
} br_power_source;

typedef struct {
  int ok;                /* 0: not readable this time (why says why): a gap */
  double energy_j;       /* BR_PCAP_ENERGY: the counter, raw; it wraps at range_j */
  double range_j;        /* where the counter wraps to 0; 0: never, or unknown */
  double power_w;        /* BR_PCAP_POWER */
  double temp_c;         /* BR_PCAP_TEMP; NAN when this reading has none */
  double clock_mhz;      /* BR_PCAP_CLOCK; NAN when none */
  int throttled;         /* BR_PCAP_THROTTLE: 1 throttled, 0 not, -1 unknown */
  uint64_t reasons;      /* BR_PCAP_THROTTLE: NVML's reason bits, Apple's pressure level, a count */
  char why[120];
} br_power_reading;

typedef struct br_power_set br_power_set;

/* Find the platform's sources. Never NULL (out of memory aside); a set may
 * have no source. notes gets a line per thing looked for and not found
 * ("nvml: not available: ..."), separated by "\n". Linux reads the sysfs
 * trees under $BENCHRUN_SYSFS_ROOT when set (the tests' fake trees), else
 * under /sys, and /proc/stat under $BENCHRUN_PROC_ROOT, else /proc. */
br_power_set *br_power_open(char *notes, size_t size);
int br_power_count(const br_power_set *set);
const br_power_source *br_power_source_at(const br_power_set *set, int i);
/* Read every source now into out[br_power_count()]. One thread at a time
 * (the sampler's, or the caller's when none runs): sources keep state. */
void br_power_read(br_power_set *set, br_power_reading *out);
void br_power_close(br_power_set *set);

#endif
