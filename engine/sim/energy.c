/* The simulator as a power source (issue 15 item 5): a synthetic machine
 * whose energy, temperature and throttling follow the load, written as the
 * Linux kernel's own files under --power-sysfs DIR, so that benchrun reads
 * them through BENCHRUN_SYSFS_ROOT=DIR with the same code as the real ones
 * (engine/power_linux.c):
 *
 *   DIR/class/powercap/intel-rapl:0/{name,energy_uj,max_energy_range_uj}
 *   DIR/class/thermal/thermal_zone0/{type,temp}                 (m°C)
 *   DIR/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count
 *   DIR/devices/system/cpu/cpu0/topology/physical_package_id
 *
 * The model, exact so that tests know the figures to expect:
 *   energy  = --power-idle-w W times the time + --power-j-per-token J for
 *             each generated token (added as the token is made, before it
 *             is sent)
 *   temp    = 40 °C + heat; each token adds J x --heat-c-per-j, and heat
 *             decays toward 0 with the time constant --cool-time
 *   throttled while temp >= --throttle-temp (0: never): the decode rate is
 *             divided by --throttle-slowdown and package_throttle_count
 *             rises by one every tick (10 ms), as the kernel's does
 * A new simulator continues the counters and temperature it finds in DIR
 * (the machine outlives a server), so a restart is no counter reset. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>

enum { TICK_NS = 10000000 };
#define AMBIENT_C 40.0
#define RANGE_UJ 262143328850LL   /* a common RAPL package range */

static void path_of(const sim_t *sim, char *buf, size_t n, const char *rel) {
  snprintf(buf, n, "%s/%s", sim->cfg.power_sysfs, rel);
}

/* mkdir -p of the folder part of rel */
static void make_dirs(const sim_t *sim, const char *rel) {
  char p[4096];
  path_of(sim, p, sizeof p, rel);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) { *s = '/'; return; }
    *s = '/';
  }
}

/* the whole file at once (a new file renamed over the old): a reader never
 * sees half a number */
static void put(const sim_t *sim, const char *rel, const char *fmt, double v) {
  char p[4096], tmp[4200];
  path_of(sim, p, sizeof p, rel);
  snprintf(tmp, sizeof tmp, "%s.sim-tmp", p);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, fmt, v);
  fputc('\n', f);
  if (fclose(f) == 0) rename(tmp, p);
  else remove(tmp);
}

static double get(const sim_t *sim, const char *rel, double def) {
  char p[4096];
  double v;
  path_of(sim, p, sizeof p, rel);
  FILE *f = fopen(p, "r");
  if (!f) return def;
  int ok = fscanf(f, "%lf", &v) == 1;
  fclose(f);
  return ok && isfinite(v) && v >= 0 ? v : def;
}

#define F_ENERGY "class/powercap/intel-rapl:0/energy_uj"
#define F_TEMP "class/thermal/thermal_zone0/temp"
#define F_COUNT "devices/system/cpu/cpu0/thermal_throttle/package_throttle_count"

static void write_energy(sim_t *sim) {
  put(sim, F_ENERGY, "%.0f", fmod(sim->pw_energy_uj, (double)RANGE_UJ));
}

static void write_state(sim_t *sim) {
  write_energy(sim);
  put(sim, F_TEMP, "%.0f", (AMBIENT_C + sim->pw_heat_c) * 1000);
  put(sim, F_COUNT, "%.0f", (double)sim->pw_throttle_count);
}

static void power_tick(br_loop *loop, br_timer *t) {
  sim_t *sim = t->data;
  int64_t now = br_now();
  double dt = (double)(now - sim->pw_last_ns) / 1e9;
  sim->pw_last_ns = now;
  sim->pw_energy_uj += sim->cfg.power_idle_w * dt * 1e6;
  double tau = (double)sim->cfg.cool_ns / 1e9;
  sim->pw_heat_c *= tau > 0 ? exp(-dt / tau) : 0;
  double limit = sim->cfg.throttle_temp_c;
  sim->pw_throttled = limit > 0 && AMBIENT_C + sim->pw_heat_c >= limit;
  if (sim->pw_throttled) sim->pw_throttle_count++;
  write_state(sim);
  br_timer_start(loop, t, now + TICK_NS, power_tick, sim);
}

void sim_power_start(sim_t *sim) {
  if (!sim->cfg.power_sysfs) return;
  make_dirs(sim, F_ENERGY);
  make_dirs(sim, F_TEMP);
  make_dirs(sim, F_COUNT);
  make_dirs(sim, "devices/system/cpu/cpu0/topology/x");
  put(sim, "class/powercap/intel-rapl:0/name", "package-%.0f", 0);
  put(sim, "class/powercap/intel-rapl:0/max_energy_range_uj", "%.0f", (double)RANGE_UJ);
  put(sim, "class/thermal/thermal_zone0/type", "sim%.0f", 0);
  put(sim, "devices/system/cpu/cpu0/topology/physical_package_id", "%.0f", 0);
  /* the machine as the last simulator left it */
  sim->pw_energy_uj = get(sim, F_ENERGY, 0);
  sim->pw_heat_c = fmax(0, get(sim, F_TEMP, AMBIENT_C * 1000) / 1000 - AMBIENT_C);
  sim->pw_throttle_count = (uint64_t)get(sim, F_COUNT, 0);
  sim->pw_last_ns = br_now();
  write_state(sim);
  sim->power_timer.data = sim;
  br_timer_start(sim->loop, &sim->power_timer, sim->pw_last_ns + TICK_NS, power_tick, sim);
}

void sim_power_stop(sim_t *sim) {
  if (!sim->cfg.power_sysfs) return;
  br_timer_stop(sim->loop, &sim->power_timer);
}

void sim_power_token(sim_t *sim) {
  if (!sim->cfg.power_sysfs) return;
  sim->pw_energy_uj += sim->cfg.power_j_per_token * 1e6;
  sim->pw_heat_c += sim->cfg.power_j_per_token * sim->cfg.heat_c_per_j;
  write_energy(sim);
}

double sim_power_slowdown(const sim_t *sim) {
  return sim->pw_throttled ? sim->cfg.throttle_slowdown : 1;
}
