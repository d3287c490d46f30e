/* bench.power: energy, power, temperature and throttling, and a background
 * sampler of them (issue 15).
 *
 * The sources are the platform's (power.h: NVML, RAPL, hwmon and thermal
 * zones on Linux; IOReport and the thermal pressure level on macOS). The
 * sampler has the shape of bench.mem's: one thread that shares only a
 * mutex-protected ring of samples with Lua, an absolute schedule, and an
 * optional file it appends each sample to as a JSON line ("type":"power").
 *
 * Each sample closes an interval (the time since the one before). The
 * counted sources' energy over that interval is added to a cumulative
 * energy per domain (CPU, GPU, DRAM, ANE): from a counter's difference
 * (wrapped at its range), or, for a source that gives only power, the
 * trapezoid of its two readings. An interval in which a counted source was
 * unreadable, went back, or read absurdly (negative, or above 10 kW) is a
 * gap: nothing is added, the sample names the source and why, and a window
 * over it says how much of it was covered. Nothing is ever negative.
 *
 * long file: about 770 lines, over the ~700 of the layout rules: the Lua API, the
 * sampler thread and the window over its ring share one private sample
 * type, ring and lock; split, they would need a header for one user. */
#include "class.h"
#include "ticker.h"
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "platform.h"
#include "power.h"

#include <lauxlib.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLER_MT "bench.power.Sampler"
#define MAX_WATTS 10000.0   /* above this, a reading is taken as broken, not as power */
/* Distinct gap reasons a sampler keeps; past that, the last slot holds the latest. */
enum { MAX_GAP_WHY = 32 };

static const char *const DOMAIN_NAME[BR_PDOM_N] = {"cpu", "gpu", "dram", "ane"};

/* ---- one-shot: the sources and one reading ---- */

static void push_source(lua_State *L, const br_power_source *s) {
  static const struct { unsigned cap; const char *name; } caps[] = {
    {BR_PCAP_ENERGY, "energy"}, {BR_PCAP_POWER, "power"}, {BR_PCAP_TEMP, "temp"},
    {BR_PCAP_CLOCK, "clock"}, {BR_PCAP_THROTTLE, "throttle"}};
  lua_createtable(L, 0, 5);
  lua_pushstring(L, s->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, s->detail);
  lua_setfield(L, -2, "detail");
  if (s->domain >= 0) {
    lua_pushstring(L, DOMAIN_NAME[s->domain]);
    lua_setfield(L, -2, "domain");
  }
  lua_pushboolean(L, s->counted);
  lua_setfield(L, -2, "counted");
  lua_newtable(L);
  int k = 0;
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
    if (s->caps & caps[i].cap) {
      lua_pushstring(L, caps[i].name);
      lua_rawseti(L, -2, ++k);
    }
  lua_setfield(L, -2, "gives");
}

/* the notes ("a\nb") as a list of strings */
static void push_notes(lua_State *L, const char *notes) {
  lua_newtable(L);
  int k = 0;
  while (*notes) {
    size_t n = strcspn(notes, "\n");
    if (n) {
      lua_pushlstring(L, notes, n);
      lua_rawseti(L, -2, ++k);
    }
    notes += n;
    if (*notes) notes++;
  }
}

static void set_num(lua_State *L, const char *k, double v) {
  if (isnan(v)) return;
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/* power.sources() -> {{name, detail, domain, counted, gives = {...}}, ...}, {note, ...} */
static int l_sources(lua_State *L) {
  char notes[2048] = "";
  br_power_set *set = br_power_open(notes, sizeof notes);
  if (!set) return luaL_error(L, "power.sources: out of memory");
  int n = br_power_count(set);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    push_source(L, br_power_source_at(set, i));
    lua_rawseti(L, -2, i + 1);
  }
  br_power_close(set);
  push_notes(L, notes);
  return 2;
}

/* power.read() -> {[name] = {energy_j, range_j, power_w, temp_c, clock_mhz,
 * throttled, reasons} | {error = why}}: every source, read once now */
static int l_read(lua_State *L) {
  char notes[2048] = "";
  br_power_set *set = br_power_open(notes, sizeof notes);
  if (!set) return luaL_error(L, "power.read: out of memory");
  int n = br_power_count(set);
  br_power_reading *r = calloc((size_t)(n ? n : 1), sizeof *r);
  if (!r) { br_power_close(set); return luaL_error(L, "power.read: out of memory"); }
  br_power_read(set, r);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    const br_power_source *s = br_power_source_at(set, i);
    lua_newtable(L);
    if (!r[i].ok) {
      lua_pushstring(L, r[i].why);
      lua_setfield(L, -2, "error");
    } else {
      if (s->caps & BR_PCAP_ENERGY) set_num(L, "energy_j", r[i].energy_j);
      if ((s->caps & BR_PCAP_ENERGY) && r[i].range_j > 0) set_num(L, "range_j", r[i].range_j);
      if (s->caps & BR_PCAP_POWER) set_num(L, "power_w", r[i].power_w);
      if (s->caps & BR_PCAP_TEMP) set_num(L, "temp_c", r[i].temp_c);
      if (s->caps & BR_PCAP_CLOCK) set_num(L, "clock_mhz", r[i].clock_mhz);
      if ((s->caps & BR_PCAP_THROTTLE) && r[i].throttled >= 0) {
        lua_pushboolean(L, r[i].throttled);
        lua_setfield(L, -2, "throttled");
        lua_pushinteger(L, (lua_Integer)r[i].reasons);
        lua_setfield(L, -2, "reasons");
      }
    }
    lua_setfield(L, -2, s->name);
  }
  free(r);
  br_power_close(set);
  return 1;
}

/* ---- the sampler ---- */

typedef struct {
  int64_t t_ns, wall_ns;
  double e[BR_PDOM_N];   /* cumulative J of the counted sources per domain, over covered intervals */
  double w;              /* counted power over the interval ending here; NAN: first sample, or a gap */
  double temp_c;         /* the hottest temperature source; NAN: none */
  double gpu_temp_c;     /* the hottest GPU's */
  double clock_mhz;      /* the slowest GPU's SM clock */
  uint64_t reasons;      /* NVML's reason bits, OR over GPUs */
  int pressure;          /* the highest thermal pressure level; -1: none */
  int throttled;         /* any source throttled now; -1: no source tells */
  int gap;               /* 0, or 1 + the index of its reason in the sampler's gap_why */
} psample;

typedef struct {
  pthread_mutex_t mu;
  br_ticker tk;                /* the thread (ticker.h); its stop under mu */
  int64_t interval_ns;
  FILE *file;
  br_power_set *set;
  int n;                       /* sources */
  int counted;                 /* sources whose energy is counted */
  br_power_reading *prev, *cur;
  int64_t prev_t;
  int have_prev;
  double cum[BR_PDOM_N];       /* the thread's running totals */
  char gap_why[MAX_GAP_WHY][200];  /* the distinct "source: why" of the gaps (under mu) */
  int ngap_why;
  uint64_t gaps;               /* gap intervals so far */
  psample *ring;
  size_t cap, len, head;
  uint64_t total;
  int64_t late_max_ns, cpu_ns, read_ns, started_ns, stopped_ns;
  char notes[2048];
} sampler;

static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The energy source i gave over the dt seconds since its last reading, into
 * *j; 0, or -1 with why filled (a gap). */
static int interval_energy(const br_power_source *s, const br_power_reading *a, const br_power_reading *b,
                           double dt, double *j, char *why, size_t whysz) {
  if (!b->ok) { snprintf(why, whysz, "%s", b->why[0] ? b->why : "not readable"); return -1; }
  if (!a->ok) { snprintf(why, whysz, "readable again after a gap"); return -1; }
  if (s->caps & BR_PCAP_ENERGY) {
    double d = b->energy_j - a->energy_j;
    if (d < 0) {
      /* A counter that wraps restarts at 0 past its range; anything else
       * that goes back was reset (a driver reload), and this interval is lost. */
      if (b->range_j > 0 && a->energy_j <= b->range_j && b->energy_j <= b->range_j) d += b->range_j;
      else {
        snprintf(why, whysz, "the counter went back from %.3f J to %.3f J (reset)", a->energy_j, b->energy_j);
        return -1;
      }
    }
    if (d / dt > MAX_WATTS) {
      snprintf(why, whysz, "absurd reading: %.0f J in %.3f s (%.0f W)", d, dt, d / dt);
      return -1;
    }
    *j = d;
    return 0;
  }
  double p0 = a->power_w, p1 = b->power_w;
  if (!(p0 >= 0 && p0 <= MAX_WATTS && p1 >= 0 && p1 <= MAX_WATTS)) {
    snprintf(why, whysz, "absurd reading: %.1f W", !(p1 >= 0 && p1 <= MAX_WATTS) ? p1 : p0);
    return -1;
  }
  *j = (p0 + p1) / 2 * dt;   /* the trapezoid between the two readings */
  return 0;
}

/* Count a gap and keep its reason, "source: why"; -> the sample's gap value. */
static int gap_note(sampler *s, const char *name, const char *why) {
  char text[200];
  snprintf(text, sizeof text, "%s: %s", name, why);
  pthread_mutex_lock(&s->mu);
  int k = 0;
  while (k < s->ngap_why && strcmp(s->gap_why[k], text)) k++;
  if (k == MAX_GAP_WHY) k = MAX_GAP_WHY - 1;
  if (k == s->ngap_why) s->ngap_why++;
  memcpy(s->gap_why[k], text, sizeof text);
  s->gaps++;
  pthread_mutex_unlock(&s->mu);
  return k + 1;
}

/* One sample: read every source and close the interval since the last. */
static void sample_take(sampler *s, psample *x) {
  int64_t t0 = br_now();
  br_power_read(s->set, s->cur);
  int64_t t1 = br_now();
  memset(x, 0, sizeof *x);
  x->t_ns = t0 + (t1 - t0) / 2;
  x->wall_ns = br_platform_wall_ns();
  x->w = NAN;
  x->temp_c = x->gpu_temp_c = x->clock_mhz = NAN;
  x->pressure = x->throttled = -1;
  double dt = s->have_prev ? (double)(x->t_ns - s->prev_t) / 1e9 : 0, add[BR_PDOM_N] = {0};
  for (int i = 0; i < s->n; i++) {
    const br_power_source *src = br_power_source_at(s->set, i);
    const br_power_reading *r = &s->cur[i];
    if (src->counted && src->domain >= 0 && s->have_prev && dt > 0 && !x->gap) {
      char why[120];
      double j = 0;
      if (interval_energy(src, &s->prev[i], r, dt, &j, why, sizeof why) == 0) add[src->domain] += j;
      else x->gap = gap_note(s, src->name, why);
    }
    if (!r->ok) continue;
    if ((src->caps & BR_PCAP_TEMP) && r->temp_c > -100 && r->temp_c < 250) {
      if (!(r->temp_c <= x->temp_c)) x->temp_c = r->temp_c;   /* NAN compares false */
      if (src->domain == BR_PDOM_GPU && !(r->temp_c <= x->gpu_temp_c)) x->gpu_temp_c = r->temp_c;
    }
    if ((src->caps & BR_PCAP_CLOCK) && r->clock_mhz > 0 && !(r->clock_mhz >= x->clock_mhz)) x->clock_mhz = r->clock_mhz;
    if ((src->caps & BR_PCAP_THROTTLE) && r->throttled >= 0) {
      if (r->throttled > x->throttled) x->throttled = r->throttled;
      if (src->domain == BR_PDOM_GPU) x->reasons |= r->reasons;
      else if (!strcmp(src->name, "thermal-pressure") && (int)r->reasons > x->pressure) x->pressure = (int)r->reasons;
    }
  }
  if (s->have_prev && dt > 0 && !x->gap && s->counted) {
    double sum = 0;
    for (int d = 0; d < BR_PDOM_N; d++) { s->cum[d] += add[d]; sum += add[d]; }
    x->w = sum / dt;
  }
  memcpy(x->e, s->cum, sizeof x->e);
  br_power_reading *t = s->prev;
  s->prev = s->cur;
  s->cur = t;
  s->prev_t = x->t_ns;
  s->have_prev = 1;
}

static void json_num(FILE *f, const char *k, double v, int digits) {
  if (!isnan(v)) fprintf(f, ",\"%s\":%.*f", k, digits, v);
}

/* A JSON string of our own text (names, reasons, paths): quote and
 * backslash escaped, control characters dropped. */
static void json_str(FILE *f, const char *v) {
  fputc('"', f);
  for (; *v; v++) {
    if (*v == '"' || *v == '\\') fputc('\\', f);
    if ((unsigned char)*v >= 0x20) fputc(*v, f);
  }
  fputc('"', f);
}

static void sample_write(sampler *s, const psample *x, const psample *before) {
  FILE *f = s->file;
  double total = 0;
  for (int d = 0; d < BR_PDOM_N; d++) total += x->e[d];
  fprintf(f, "{\"type\":\"power\",\"t_ns\":%lld,\"wall\":%.6f", (long long)x->t_ns, (double)x->wall_ns / 1e9);
  json_num(f, "w", x->w, 3);
  if (!isnan(x->w) && before) {
    double dt = (double)(x->t_ns - before->t_ns) / 1e9;
    for (int d = 0; d < BR_PDOM_N; d++)
      if (x->e[d] > 0) {   /* a domain with a counted source */
        char k[16];
        snprintf(k, sizeof k, "%s_w", DOMAIN_NAME[d]);
        json_num(f, k, (x->e[d] - before->e[d]) / dt, 3);
      }
  }
  if (s->counted) json_num(f, "energy_j", total, 3);
  json_num(f, "temp_c", x->temp_c, 1);
  json_num(f, "gpu_temp_c", x->gpu_temp_c, 1);
  json_num(f, "clock_mhz", x->clock_mhz, 0);
  if (x->throttled >= 0) fprintf(f, ",\"throttled\":%s", x->throttled ? "true" : "false");
  if (x->reasons) fprintf(f, ",\"reasons\":%llu", (unsigned long long)x->reasons);
  if (x->pressure >= 0) fprintf(f, ",\"pressure\":%d", x->pressure);
  if (x->gap) {
    char gap[200];
    pthread_mutex_lock(&s->mu);
    memcpy(gap, s->gap_why[x->gap - 1], sizeof gap);
    pthread_mutex_unlock(&s->mu);
    fputs(",\"gap\":", f);
    json_str(f, gap);
  }
  fputs("}\n", f);
  fflush(f);
}

static void *sampler_main(void *arg) {
  sampler *s = arg;
  int64_t next = br_now();
  psample before;
  int have_before = 0;
  for (;;) {
    int64_t t0 = br_now();
    psample x;
    sample_take(s, &x);
    int64_t t1 = br_now();
    pthread_mutex_lock(&s->mu);
    int64_t late = t0 - next;
    if (late > s->late_max_ns) s->late_max_ns = late;
    s->read_ns += t1 - t0;
    s->cpu_ns = thread_cpu_ns();
    if (s->len < s->cap) s->ring[(s->head + s->len++) % s->cap] = x;
    else { s->ring[s->head] = x; s->head = (s->head + 1) % s->cap; }
    s->total++;
    int stop = s->tk.stop;
    pthread_mutex_unlock(&s->mu);
    if (s->file) sample_write(s, &x, have_before ? &before : NULL);
    before = x;
    have_before = 1;
    if (stop) break;
    /* after a stop: one last sample, so the series ends at the stop time */
    br_ticker_wait(&s->tk, &next, s->interval_ns);
  }
  return NULL;
}

static sampler *check_sampler(lua_State *L, int i) {
  sampler *s = luaL_checkudata(L, i, SAMPLER_MT);
  if (!s->ring) luaL_error(L, "power.sampler: closed");
  return s;
}

static void sampler_free(sampler *s) {
  if (s->file) { fclose(s->file); s->file = NULL; }
  if (s->set) { br_power_close(s->set); s->set = NULL; }
  free(s->prev);
  free(s->cur);
  free(s->ring);
  s->prev = s->cur = NULL;
  if (s->ring) pthread_mutex_destroy(&s->mu);
  s->ring = NULL;
}

/* power.sampler{interval = 0.1, file = path, capacity = 100000} -> Sampler (not started) */
static int l_sampler(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "interval");
  lua_Number iv = lua_isnil(L, -1) ? 0.1 : lua_tonumber(L, -1);
  if (!(iv >= 0.001 && iv <= 3600)) return luaL_error(L, "power.sampler: interval: expected 0.001..3600 seconds");
  lua_getfield(L, 1, "capacity");
  lua_Integer cap = lua_isnil(L, -1) ? 100000 : lua_tointeger(L, -1);
  if (cap < 2 || cap > 100000000) return luaL_error(L, "power.sampler: capacity: expected 2..100000000");
  lua_getfield(L, 1, "file");
  const char *path = lua_tostring(L, -1);
  sampler *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SAMPLER_MT);
  s->interval_ns = (int64_t)(iv * 1e9);
  s->cap = (size_t)cap;
  s->set = br_power_open(s->notes, sizeof s->notes);
  s->n = s->set ? br_power_count(s->set) : 0;
  size_t n = (size_t)(s->n ? s->n : 1);
  s->prev = calloc(n, sizeof *s->prev);
  s->cur = calloc(n, sizeof *s->cur);
  s->ring = malloc(s->cap * sizeof *s->ring);
  if (!s->set || !s->prev || !s->cur || !s->ring) {
    if (s->ring) pthread_mutex_init(&s->mu, NULL);
    sampler_free(s);
    return luaL_error(L, "power.sampler: out of memory for %d samples", (int)cap);
  }
  pthread_mutex_init(&s->mu, NULL);
  s->tk.mu = &s->mu;
  for (int i = 0; i < s->n; i++) {
    const br_power_source *src = br_power_source_at(s->set, i);
    if (src->counted && src->domain >= 0) s->counted++;
  }
  if (path) {
    s->file = fopen(path, "ae");
    if (!s->file) {
      int e = errno;
      lua_pushnil(L);
      lua_pushfstring(L, "power.sampler: cannot open '%s': %s", path, strerror(e));
      return 2;
    }
  }
  return 1;
}

static int s_start(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  if (s->tk.running) return luaL_error(L, "power.sampler: already started");
  s->len = s->head = 0;
  s->total = s->gaps = 0;
  s->ngap_why = 0;
  s->have_prev = 0;
  memset(s->cum, 0, sizeof s->cum);
  s->late_max_ns = s->cpu_ns = s->read_ns = 0;
  s->started_ns = br_now();
  int rc = br_ticker_start(&s->tk, sampler_main, s);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "power.sampler: cannot start the thread: %s", strerror(rc));
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

/* "source: why" of a gap sample, into buf (called under mu) */
static void gap_text(sampler *s, int gap, char *buf, size_t size) { snprintf(buf, size, "%s", s->gap_why[gap - 1]); }

static void push_sample(lua_State *L, sampler *s, const psample *x, const psample *before, const char *gap) {
  lua_createtable(L, 0, 13);
  lua_pushliteral(L, "power");   /* as the file's lines: a samples.jsonl record as it is */
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, x->t_ns);
  lua_setfield(L, -2, "t_ns");
  lua_pushinteger(L, x->wall_ns);
  lua_setfield(L, -2, "wall_ns");
  set_num(L, "w", x->w);
  if (!isnan(x->w) && before) {
    double dt = (double)(x->t_ns - before->t_ns) / 1e9;
    char k[16];
    for (int d = 0; d < BR_PDOM_N; d++)
      if (x->e[d] > 0) {
        snprintf(k, sizeof k, "%s_w", DOMAIN_NAME[d]);
        set_num(L, k, (x->e[d] - before->e[d]) / dt);
      }
  }
  if (s->counted) {
    double total = 0;
    for (int d = 0; d < BR_PDOM_N; d++) total += x->e[d];
    set_num(L, "energy_j", total);
  }
  set_num(L, "temp_c", x->temp_c);
  set_num(L, "gpu_temp_c", x->gpu_temp_c);
  set_num(L, "clock_mhz", x->clock_mhz);
  if (x->throttled >= 0) {
    lua_pushboolean(L, x->throttled);
    lua_setfield(L, -2, "throttled");
  }
  if (x->reasons) {
    lua_pushinteger(L, (lua_Integer)x->reasons);
    lua_setfield(L, -2, "reasons");
  }
  if (x->pressure >= 0) {
    lua_pushinteger(L, x->pressure);
    lua_setfield(L, -2, "pressure");
  }
  if (gap) {
    lua_pushstring(L, gap);
    lua_setfield(L, -2, "gap");
  }
}

/* A copy of the samples taken after `since` (and the one before them, for
 * the first interval), under the lock. *n gets the count; the first copied
 * is the "before" one when *has_before. */
static psample *copy_since(sampler *s, int64_t since, size_t *n, int *has_before) {
  pthread_mutex_lock(&s->mu);
  size_t first = s->len;
  while (first > 0 && s->ring[(s->head + first - 1) % s->cap].t_ns > since) first--;
  *has_before = first > 0;
  if (first > 0) first--;
  size_t len = s->len - first;
  psample *copy = malloc((len ? len : 1) * sizeof *copy);
  if (copy) for (size_t i = 0; i < len; i++) copy[i] = s->ring[(s->head + first + i) % s->cap];
  pthread_mutex_unlock(&s->mu);
  *n = len;
  return copy;
}

/* The series: {samples = {...}, count, dropped, gaps, late_max_ms, cost,
 * read_share, sources = {name, ...}, notes = {...}} */
static void push_series(lua_State *L, sampler *s, int64_t since) {
  size_t len;
  int has_before;
  pthread_mutex_lock(&s->mu);
  size_t held = s->len;
  uint64_t total = s->total, gaps = s->gaps;
  int64_t late = s->late_max_ns, cpu = s->cpu_ns, rd = s->read_ns;
  int64_t end = s->tk.running ? br_now() : s->stopped_ns;
  pthread_mutex_unlock(&s->mu);
  psample *copy = copy_since(s, since, &len, &has_before);
  if (!copy) luaL_error(L, "power.sampler: out of memory");
  lua_createtable(L, 0, 10);
  lua_createtable(L, (int)len, 0);
  int k = 0;
  for (size_t i = has_before ? 1 : 0; i < len; i++) {
    char gap[200] = "";
    if (copy[i].gap) {
      pthread_mutex_lock(&s->mu);
      gap_text(s, copy[i].gap, gap, sizeof gap);
      pthread_mutex_unlock(&s->mu);
    }
    push_sample(L, s, &copy[i], i > 0 ? &copy[i - 1] : NULL, gap[0] ? gap : NULL);
    lua_rawseti(L, -2, ++k);
  }
  free(copy);
  lua_setfield(L, -2, "samples");
  lua_pushinteger(L, (lua_Integer)total);
  lua_setfield(L, -2, "count");
  lua_pushinteger(L, (lua_Integer)(total - held));
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)gaps);
  lua_setfield(L, -2, "gaps");
  lua_pushnumber(L, (lua_Number)late / 1e6);
  lua_setfield(L, -2, "late_max_ms");
  int64_t span = end - s->started_ns;
  lua_pushnumber(L, span > 0 ? (lua_Number)cpu / (lua_Number)span : 0);
  lua_setfield(L, -2, "cost");
  lua_pushnumber(L, span > 0 ? (lua_Number)rd / (lua_Number)span : 0);
  lua_setfield(L, -2, "read_share");
  lua_createtable(L, s->n, 0);
  for (int i = 0; i < s->n; i++) {
    lua_pushstring(L, br_power_source_at(s->set, i)->name);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "sources");
  push_notes(L, s->notes);
  lua_setfield(L, -2, "notes");
}

/* sampler:stop() -> the series; joins the thread */
static int s_stop(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  sampler_join(s);
  push_series(L, s, INT64_MIN);
  return 1;
}

/* sampler:series([since_ns]) -> the series so far (samples after since_ns) */
static int s_series(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  push_series(L, s, (int64_t)luaL_optinteger(L, 2, INT64_MIN));
  return 1;
}

/* sampler:latest() -> the last sample, or nil before the first */
static int s_latest(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  char gap[200] = "";
  pthread_mutex_lock(&s->mu);
  int have = s->len > 0, two = s->len > 1;
  psample x, b;
  if (have) x = s->ring[(s->head + s->len - 1) % s->cap];
  if (two) b = s->ring[(s->head + s->len - 2) % s->cap];
  if (have && x.gap) gap_text(s, x.gap, gap, sizeof gap);
  pthread_mutex_unlock(&s->mu);
  if (!have) return 0;
  push_sample(L, s, &x, two ? &b : NULL, gap[0] ? gap : NULL);
  return 1;
}

/* The figures of [t0, t1] (monotonic ns) over the samples held. */
typedef struct {
  double window_s, covered_s, gap_s, throttled_s, known_s;
  double e[BR_PDOM_N], peak_w, max_temp, max_gpu_temp, min_clock, max_clock;
  uint64_t reasons;
  int pressure, samples, gaps, first_gap;
} window_figs;

static void window_scan(const psample *v, size_t len, int64_t t0, int64_t t1, window_figs *w) {
  memset(w, 0, sizeof *w);
  w->window_s = (double)(t1 - t0) / 1e9;
  w->peak_w = w->max_temp = w->max_gpu_temp = w->min_clock = w->max_clock = NAN;
  w->pressure = -1;
  for (size_t i = 1; i < len; i++) {
    const psample *a = &v[i - 1], *b = &v[i];
    int64_t lo = a->t_ns > t0 ? a->t_ns : t0, hi = b->t_ns < t1 ? b->t_ns : t1;
    if (hi <= lo || b->t_ns <= a->t_ns) continue;
    double ov = (double)(hi - lo) / 1e9, frac = (double)(hi - lo) / (double)(b->t_ns - a->t_ns);
    w->samples++;
    if (b->gap) {
      w->gaps++;
      w->gap_s += ov;
      if (!w->first_gap) w->first_gap = (int)i;
    } else if (!isnan(b->w)) {
      for (int d = 0; d < BR_PDOM_N; d++) w->e[d] += (b->e[d] - a->e[d]) * frac;
      w->covered_s += ov;
      if (!(b->w <= w->peak_w)) w->peak_w = b->w;
    }
    if (b->throttled >= 0) {
      w->known_s += ov;
      if (b->throttled) w->throttled_s += ov;
    }
    if (!(b->temp_c <= w->max_temp)) w->max_temp = b->temp_c;
    if (!(b->gpu_temp_c <= w->max_gpu_temp)) w->max_gpu_temp = b->gpu_temp_c;
    if (!(b->clock_mhz >= w->min_clock)) w->min_clock = b->clock_mhz;
    if (!(b->clock_mhz <= w->max_clock)) w->max_clock = b->clock_mhz;
    w->reasons |= b->reasons;
    if (b->pressure > w->pressure) w->pressure = b->pressure;
  }
}

/* sampler:window(t0_ns, t1_ns) -> {window_s, covered_s, energy_j, by_domain,
 * avg_w, peak_w, max_temp_c, gpu_max_temp_c, min_clock_mhz, max_clock_mhz,
 * throttled_s, throttle_known_s, reasons, pressure, samples, gaps, gap_s,
 * gap} : what the sources measured between two bench.clock.now() times */
static int s_window(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  int64_t t0 = (int64_t)luaL_checkinteger(L, 2), t1 = (int64_t)luaL_checkinteger(L, 3);
  luaL_argcheck(L, t1 > t0, 3, "expected t1 > t0");
  size_t len;
  int has_before;
  char gap[200] = "";
  psample *v = copy_since(s, t0, &len, &has_before);
  if (!v) return luaL_error(L, "power.sampler: out of memory");
  window_figs w;
  window_scan(v, len, t0, t1, &w);
  if (w.first_gap) {
    pthread_mutex_lock(&s->mu);
    gap_text(s, v[w.first_gap].gap, gap, sizeof gap);
    pthread_mutex_unlock(&s->mu);
  }
  free(v);
  lua_createtable(L, 0, 20);
  set_num(L, "window_s", w.window_s);
  set_num(L, "covered_s", w.covered_s);
  if (s->counted) {
    double total = 0;
    lua_newtable(L);
    for (int d = 0; d < BR_PDOM_N; d++) {
      total += w.e[d];
      if (w.e[d] > 0) set_num(L, DOMAIN_NAME[d], w.e[d]);
    }
    lua_setfield(L, -2, "by_domain");
    if (w.covered_s > 0) {
      set_num(L, "energy_j", total);
      set_num(L, "avg_w", total / w.covered_s);
      set_num(L, "peak_w", w.peak_w);
    }
  }
  set_num(L, "max_temp_c", w.max_temp);
  set_num(L, "gpu_max_temp_c", w.max_gpu_temp);
  set_num(L, "min_clock_mhz", w.min_clock);
  set_num(L, "max_clock_mhz", w.max_clock);
  if (w.known_s > 0) {
    set_num(L, "throttled_s", w.throttled_s);
    set_num(L, "throttle_known_s", w.known_s);
  }
  if (w.reasons) {
    lua_pushinteger(L, (lua_Integer)w.reasons);
    lua_setfield(L, -2, "reasons");
  }
  if (w.pressure >= 0) {
    lua_pushinteger(L, w.pressure);
    lua_setfield(L, -2, "pressure");
  }
  lua_pushinteger(L, w.samples);
  lua_setfield(L, -2, "samples");
  lua_pushinteger(L, w.gaps);
  lua_setfield(L, -2, "gaps");
  set_num(L, "gap_s", w.gap_s);
  if (gap[0]) {
    lua_pushstring(L, gap);
    lua_setfield(L, -2, "gap");
  }
  return 1;
}

/* sampler:sources() -> the sources it reads (as power.sources()), and the notes */
static int s_sources(lua_State *L) {
  sampler *s = check_sampler(L, 1);
  lua_createtable(L, s->n, 0);
  for (int i = 0; i < s->n; i++) {
    push_source(L, br_power_source_at(s->set, i));
    lua_rawseti(L, -2, i + 1);
  }
  push_notes(L, s->notes);
  return 2;
}

static int s_close(lua_State *L) {
  sampler *s = luaL_checkudata(L, 1, SAMPLER_MT);
  if (!s->ring) return 0;
  sampler_join(s);
  sampler_free(s);
  return 0;
}

static int s_tostring(lua_State *L) {
  sampler *s = luaL_checkudata(L, 1, SAMPLER_MT);
  lua_pushfstring(L, "bench.power.Sampler (%d sources, every %d ms, %s)", s->n, (int)(s->interval_ns / 1000000),
                  !s->ring ? "closed" : s->tk.running ? "running" : "stopped");
  return 1;
}

int luaopen_bench_power(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"start", s_start}, {"stop", s_stop}, {"series", s_series}, {"latest", s_latest},
    {"window", s_window}, {"sources", s_sources}, {"close", s_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"sources", l_sources}, {"read", l_read}, {"sampler", l_sampler}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__gc", s_close}, {"__close", s_close}, {"__tostring", s_tostring}, {NULL, NULL}};
  br_class(L, SAMPLER_MT, meta, methods);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushnumber(L, MAX_WATTS);
  lua_setfield(L, -2, "max_watts");
  return 1;
}
