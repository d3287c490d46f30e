/* bench.stats: mergeable histograms with bounded relative error, and
 * Jain's fairness index.
 *
 * A histogram is HDR-style log-linear: each power-of-two range above
 * `lowest` is split into S equal sub-buckets (S = the power of two >=
 * 10^digits), so a bucket is at most 1/S of its values wide and the midpoint
 * reported for a percentile is within 1/(2S) of any value in it (0.05% for
 * digits = 3). Values are plain non-negative numbers in whatever unit the
 * caller chooses; benchrun's summaries use milliseconds as floats. Values
 * below `lowest` share one underflow bucket (reported as the exact minimum),
 * values above `highest` are counted in the top bucket (the exact maximum is
 * kept beside it). Count, min, max, mean and variance are exact (Welford,
 * merged with Chan's formula).
 *
 * Only the window of buckets between the smallest and largest index seen is
 * allocated, so a wide [lowest, highest] costs nothing until it is used. */
#include "benchrun/runtime.h"
#include "class.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HIST_MT "bench.stats.Histogram"
#define ENCODE_TAG "brh1"

typedef struct {
  double lowest, highest;
  int digits;
  int sub;              /* S: sub-buckets per power of two */
  int64_t top;          /* index of the bucket holding `highest` */
  uint64_t *counts;     /* window [base, base + len) */
  int64_t base, len;
  uint64_t under;       /* values < lowest */
  uint64_t n;
  double min, max, mean, m2;
} hist;

static int sub_for_digits(int digits) {
  double want = pow(10.0, digits);
  int s = 1;
  while (s < want) s <<= 1;
  return s;
}

/* Index of the bucket of v (v >= lowest). */
static int64_t bucket_of(const hist *h, double v) {
  int e;
  double m = frexp(v / h->lowest, &e);   /* v/lowest = m * 2^e, m in [0.5, 1) */
  int64_t sub = (int64_t)((2.0 * m - 1.0) * h->sub);
  if (sub >= h->sub) sub = h->sub - 1;   /* guard against rounding at 1.0 */
  if (e < 1) return 0;                   /* rounding just below lowest */
  int64_t i = (int64_t)(e - 1) * h->sub + sub;
  return i > h->top ? h->top : i;
}

static double bucket_mid(const hist *h, int64_t i) {
  int64_t octave = i / h->sub, sub = i % h->sub;
  return ldexp(h->lowest, (int)octave) * (1.0 + ((double)sub + 0.5) / h->sub);
}

static void hist_init(hist *h, double lowest, double highest, int digits) {
  memset(h, 0, sizeof *h);
  h->lowest = lowest;
  h->highest = highest;
  h->digits = digits;
  h->sub = sub_for_digits(digits);
  h->top = INT64_MAX;   /* bucket_of clamps to top: unclamped while finding it */
  h->top = bucket_of(h, highest);
  h->min = INFINITY;
  h->max = -INFINITY;
}

static void hist_free(hist *h) {
  free(h->counts);
  h->counts = NULL;
  h->base = h->len = 0;
}

/* Make bucket i addressable. Returns 0 or -1 when out of memory. */
static int hist_reserve(hist *h, int64_t i) {
  if (h->len == 0) {
    h->counts = calloc(64, sizeof *h->counts);
    if (!h->counts) return -1;
    h->base = i - 32 < 0 ? 0 : i - 32;
    h->len = 64;
    return 0;
  }
  if (i >= h->base && i < h->base + h->len) return 0;
  int64_t lo = i < h->base ? i : h->base;
  int64_t hi = i >= h->base + h->len ? i + 1 : h->base + h->len;
  /* Grow by at least half again so a drifting range does not realloc per add. */
  int64_t span = hi - lo, want = h->len + h->len / 2;
  if (span < want) {
    if (i < h->base) lo = hi - want; else hi = lo + want;
    if (lo < 0) { hi -= lo; lo = 0; }
    span = hi - lo;
  }
  uint64_t *c = calloc((size_t)span, sizeof *c);
  if (!c) return -1;
  memcpy(c + (h->base - lo), h->counts, (size_t)h->len * sizeof *c);
  free(h->counts);
  h->counts = c;
  h->base = lo;
  h->len = span;
  return 0;
}

/* Fold `count` copies of v into the exact moments (Chan's combination of a
 * group with zero variance). */
static void moments_add(hist *h, uint64_t count, double mean2, double m22) {
  double n1 = (double)h->n, n2 = (double)count, n = n1 + n2;
  double d = mean2 - h->mean;
  h->mean += d * n2 / n;
  h->m2 += m22 + d * d * n1 * n2 / n;
  h->n += count;
}

static int hist_add(hist *h, double v, uint64_t count) {
  if (v < h->lowest) {
    h->under += count;
  } else {
    int64_t i = bucket_of(h, v);
    if (hist_reserve(h, i) != 0) return -1;
    h->counts[i - h->base] += count;
  }
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  moments_add(h, count, v, 0.0);
  return 0;
}

/* Nearest-rank percentile, p in [0, 100]. */
static double hist_percentile(const hist *h, double p) {
  if (h->n == 0) return NAN;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
  if (rank < 1) rank = 1;
  uint64_t seen = h->under;
  if (seen >= rank) return h->min;
  for (int64_t k = 0; k < h->len; k++) {
    seen += h->counts[k];
    if (seen >= rank) {
      if (h->base + k == h->top) return h->max;   /* it also holds everything above highest */
      double v = bucket_mid(h, h->base + k);
      if (v < h->min) v = h->min;
      if (v > h->max) v = h->max;
      return v;
    }
  }
  return h->max;
}

static hist *check_hist(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, HIST_MT);
}

static hist *new_hist(lua_State *L, double lowest, double highest, int digits) {
  hist *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, HIST_MT);
  hist_init(h, lowest, highest, digits);
  return h;
}

static double opt_field(lua_State *L, int t, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    int isnum;
    v = lua_tonumberx(L, -1, &isnum);
    if (!isnum) luaL_error(L, "stats.histogram: %s: expected a number, got %s", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/* stats.histogram{lowest = 1e-3, highest = 1e9, digits = 3} -> h */
static int l_histogram(lua_State *L) {
  double lowest = 1e-3, highest = 1e9, digits = 3;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lowest = opt_field(L, 1, "lowest", lowest);
    highest = opt_field(L, 1, "highest", highest);
    digits = opt_field(L, 1, "digits", digits);
  }
  if (!(lowest > 0) || !isfinite(lowest))
    return luaL_error(L, "stats.histogram: lowest: expected a number > 0, got %f", lowest);
  if (!(highest >= 2 * lowest) || !isfinite(highest))
    return luaL_error(L, "stats.histogram: highest: expected a number >= 2 * lowest, got %f", highest);
  if (digits != floor(digits) || digits < 1 || digits > 5)
    return luaL_error(L, "stats.histogram: digits: expected an integer from 1 to 5, got %f", digits);
  if (log2(highest / lowest) > 4096)
    return luaL_error(L, "stats.histogram: highest/lowest spans too many powers of two");
  new_hist(L, lowest, highest, (int)digits);
  return 1;
}

/* h:add(v [, count]) -> h. v: a number >= 0 (not NaN); count: integer >= 1. */
static int h_add(lua_State *L) {
  hist *h = check_hist(L, 1);
  double v = luaL_checknumber(L, 2);
  lua_Integer count = luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, v >= 0, 2, "expected a number >= 0");   /* also rejects NaN */
  luaL_argcheck(L, isfinite(v), 2, "expected a finite number");
  luaL_argcheck(L, count >= 1, 3, "expected a count >= 1");
  if (hist_add(h, v, (uint64_t)count) != 0) return luaL_error(L, "stats: out of memory");
  lua_settop(L, 1);
  return 1;
}

/* each finite number >= 0 of the list at idx into h; -> 0, or -1 out of memory */
static int add_list_at(lua_State *L, hist *h, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    int isnum = lua_rawgeti(L, idx, i) == LUA_TNUMBER;   /* a number, not a numeric string */
    double v = isnum ? lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    if (isnum && v >= 0 && isfinite(v) && hist_add(h, v, 1) != 0) return -1;
  }
  return 0;
}

/* h:add_list(list) -> h: adds each finite number >= 0 of the list (a
 * record's itl_ms) and skips anything else; one call per record instead of
 * one per token, which in Lua cost more than reading the tokens did. */
static int h_add_list(lua_State *L) {
  hist *h = check_hist(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (add_list_at(L, h, 2) != 0) return luaL_error(L, "stats: out of memory");
  lua_settop(L, 1);
  return 1;
}

/* stats.add_fields(hs, names, rec): for each name of the list `names`,
 * rec[name] into the histogram hs[name]: a finite number >= 0 is added, a
 * list (a record's itl_ms) as add_list does, anything else is skipped. A
 * summary adds some twenty figures of every record: one Lua call per
 * figure, with its checks, cost half of the summary's 6.9 µs per record. */
static int l_add_fields(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) return luaL_error(L, "stats.add_fields: names[%d]: expected a string", (int)i);
    lua_pushvalue(L, -1);
    int t = lua_rawget(L, 3);   /* name, rec[name] */
    if (t == LUA_TNUMBER || t == LUA_TTABLE) {
      lua_pushvalue(L, -2);
      lua_rawget(L, 1);         /* name, rec[name], hs[name] */
      hist *h = luaL_testudata(L, -1, HIST_MT);
      if (!h) return luaL_error(L, "stats.add_fields: hs.%s: expected a histogram", lua_tostring(L, -3));
      double v = t == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
      int failed = t == LUA_TNUMBER ? v >= 0 && isfinite(v) && hist_add(h, v, 1) != 0
                                    : add_list_at(L, h, lua_gettop(L) - 1) != 0;
      if (failed) return luaL_error(L, "stats: out of memory");
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
  return 0;
}

/* h:merge(other) -> h. Both must have the same lowest and digits. */
static int h_merge(lua_State *L) {
  hist *h = check_hist(L, 1);
  hist *o = check_hist(L, 2);
  if (h->lowest != o->lowest || h->digits != o->digits)
    return luaL_error(L, "histogram:merge: expected the same lowest and digits (%f/%d vs %f/%d)",
                      h->lowest, h->digits, o->lowest, o->digits);
  if (o->n == 0) { lua_settop(L, 1); return 1; }
  if (o->len > 0) {
    if (hist_reserve(h, o->base) != 0 || hist_reserve(h, o->base + o->len - 1) != 0)
      return luaL_error(L, "stats: out of memory");
    for (int64_t k = 0; k < o->len; k++) {
      int64_t i = o->base + k;
      if (i > h->top) i = h->top;   /* the other one had a higher `highest` */
      h->counts[i - h->base] += o->counts[k];
    }
  }
  h->under += o->under;
  if (o->min < h->min) h->min = o->min;
  if (o->max > h->max) h->max = o->max;
  moments_add(h, o->n, o->mean, o->m2);
  lua_settop(L, 1);
  return 1;
}

static void push_or_nil(lua_State *L, const hist *h, double v) {
  if (h->n == 0) lua_pushnil(L); else lua_pushnumber(L, v);
}

static int h_count(lua_State *L) { lua_pushinteger(L, (lua_Integer)check_hist(L, 1)->n); return 1; }
static int h_min(lua_State *L) { hist *h = check_hist(L, 1); push_or_nil(L, h, h->min); return 1; }
static int h_max(lua_State *L) { hist *h = check_hist(L, 1); push_or_nil(L, h, h->max); return 1; }
static int h_mean(lua_State *L) { hist *h = check_hist(L, 1); push_or_nil(L, h, h->mean); return 1; }

/* Population standard deviation (all requests of a run are the population). */
static double hist_stddev(const hist *h) {
  return h->n ? sqrt(h->m2 / (double)h->n) : NAN;
}

static int h_stddev(lua_State *L) { hist *h = check_hist(L, 1); push_or_nil(L, h, hist_stddev(h)); return 1; }

/* h:percentile(p) -> value at percentile p (0..100), nil when empty. */
static int h_percentile(lua_State *L) {
  hist *h = check_hist(L, 1);
  double p = luaL_checknumber(L, 2);
  luaL_argcheck(L, p >= 0 && p <= 100, 2, "expected a percentile from 0 to 100");
  push_or_nil(L, h, hist_percentile(h, p));
  return 1;
}

/* h:summary() -> {count, mean, stddev, min, max, p50, p90, p95, p99}
 * (only count when empty). */
static int h_summary(lua_State *L) {
  hist *h = check_hist(L, 1);
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, (lua_Integer)h->n);
  lua_setfield(L, -2, "count");
  if (h->n == 0) return 1;
  static const struct { const char *k; double p; } ps[] = {
    {"p50", 50}, {"p90", 90}, {"p95", 95}, {"p99", 99}};
  lua_pushnumber(L, h->mean); lua_setfield(L, -2, "mean");
  lua_pushnumber(L, hist_stddev(h)); lua_setfield(L, -2, "stddev");
  lua_pushnumber(L, h->min); lua_setfield(L, -2, "min");
  lua_pushnumber(L, h->max); lua_setfield(L, -2, "max");
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    lua_pushnumber(L, hist_percentile(h, ps[i].p));
    lua_setfield(L, -2, ps[i].k);
  }
  return 1;
}

/* h:reset() -> h: forget every value, keep the parameters. */
static int h_reset(lua_State *L) {
  hist *h = check_hist(L, 1);
  hist_free(h);
  hist_init(h, h->lowest, h->highest, h->digits);
  lua_settop(L, 1);
  return 1;
}

/* h:encode() -> a printable string that stats.decode turns back into an
 * equal histogram: the parameters, the exact moments, and the non-empty
 * buckets as (gap, count) pairs. */
static int h_encode(lua_State *L) {
  hist *h = check_hist(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char tmp[256];
  snprintf(tmp, sizeof tmp, ENCODE_TAG " %.17g %.17g %d %llu %llu %.17g %.17g %.17g %.17g",
           h->lowest, h->highest, h->digits, (unsigned long long)h->n,
           (unsigned long long)h->under, h->n ? h->min : 0.0, h->n ? h->max : 0.0,
           h->mean, h->m2);
  luaL_addstring(&b, tmp);
  int64_t prev = 0;
  for (int64_t k = 0; k < h->len; k++) {
    if (!h->counts[k]) continue;
    int64_t i = h->base + k;
    snprintf(tmp, sizeof tmp, " %lld:%llu", (long long)(i - prev), (unsigned long long)h->counts[k]);
    luaL_addstring(&b, tmp);
    prev = i;
  }
  luaL_pushresult(&b);
  return 1;
}

/* stats.decode(s) -> h, or nil, message when s is not an encoded histogram. */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  double lowest, highest, min, max, mean, m2;
  int digits, used = 0;
  unsigned long long n, under;
  if (sscanf(s, ENCODE_TAG " %lg %lg %d %llu %llu %lg %lg %lg %lg%n", &lowest, &highest,
             &digits, &n, &under, &min, &max, &mean, &m2, &used) != 9 ||
      !(lowest > 0) || !(highest >= 2 * lowest) || digits < 1 || digits > 5 ||
      !isfinite(lowest) || !isfinite(highest)) {
    lua_pushnil(L);
    lua_pushstring(L, "stats.decode: expected a string from histogram:encode()");
    return 2;
  }
  hist *h = new_hist(L, lowest, highest, digits);
  const char *p = s + used;
  long long i = 0;
  uint64_t total = under;
  while (*p) {
    long long gap;
    unsigned long long c;
    int k = 0;
    if (sscanf(p, " %lld:%llu%n", &gap, &c, &k) != 2 || gap < 0 || c == 0 ||
        gap > h->top - i || c > UINT64_MAX - total) {
      lua_pushnil(L);
      lua_pushfstring(L, "stats.decode: malformed bucket at offset %d", (int)(p - s));
      return 2;
    }
    i += gap;
    if (hist_reserve(h, i) != 0) return luaL_error(L, "stats: out of memory");
    h->counts[i - h->base] += c;
    total += c;
    p += k;
  }
  if (total != n) {
    lua_pushnil(L);
    lua_pushstring(L, "stats.decode: bucket counts do not add up to the count");
    return 2;
  }
  h->under = under;
  h->n = n;
  if (n) { h->min = min; h->max = max; h->mean = mean; h->m2 = m2; }
  return 1;
}

static int h_gc(lua_State *L) {
  hist_free(check_hist(L, 1));
  return 0;
}

static int h_tostring(lua_State *L) {
  hist *h = check_hist(L, 1);
  if (h->n == 0) lua_pushliteral(L, "bench.stats.Histogram (empty)");
  else
    lua_pushfstring(L, "bench.stats.Histogram (n=%I, p50=%f, p99=%f, max=%f)",
                    (lua_Integer)h->n, hist_percentile(h, 50), hist_percentile(h, 99), h->max);
  return 1;
}

/* stats.jain(list) -> Jain's fairness index (sum x)^2 / (n * sum x^2), in
 * (0, 1]; 1 when every value is equal. nil for an empty list or all zeros. */
static int l_jain(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  double s = 0, s2 = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    int isnum;
    double x = lua_tonumberx(L, -1, &isnum);
    if (!isnum) return luaL_error(L, "stats.jain: [%I]: expected a number, got %s", i, luaL_typename(L, -1));
    lua_pop(L, 1);
    s += x;
    s2 += x * x;
  }
  if (n == 0 || s2 == 0) lua_pushnil(L);
  else lua_pushnumber(L, s * s / ((double)n * s2));
  return 1;
}

int luaopen_bench_stats(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"add", h_add}, {"add_list", h_add_list}, {"merge", h_merge}, {"count", h_count}, {"min", h_min}, {"max", h_max},
    {"mean", h_mean}, {"stddev", h_stddev}, {"percentile", h_percentile},
    {"summary", h_summary}, {"reset", h_reset}, {"encode", h_encode}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"histogram", l_histogram}, {"decode", l_decode}, {"jain", l_jain}, {"add_fields", l_add_fields},
    {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", h_gc}, {"__tostring", h_tostring}, {NULL, NULL}};
  br_class(L, HIST_MT, meta, methods);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
