/* bench.stats from C: stats.decode must reject any mangled encoding without
 * crashing or leaking (run under ASan), and a histogram fed every value of a
 * wide range keeps its relative error bound at every percentile. */
#include "benchrun/runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "stats", luaopen_bench_stats, 1);
  lua_pop(L, 1);
  return L;
}

static const char *run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) return lua_tostring(L, -1);
  return NULL;
}

/* A small deterministic generator (no libc rand state shared with anyone). */
static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long next_rand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_decode_mangled(void) {
  lua_State *L = new_state();
  const char *err = run(L,
    "local h = stats.histogram{lowest = 0.01}\n"
    "for i = 1, 300 do h:add(i * 1.37) end\n"
    "h:add(0):add(1e12)\n"
    "ENC = h:encode()\n");
  CHECK(err == NULL, "setup: %s", err);
  lua_getglobal(L, "ENC");
  size_t len;
  const char *enc = lua_tolstring(L, -1, &len);
  char *orig = malloc(len + 1);
  memcpy(orig, enc, len + 1);
  lua_pop(L, 1);
  static const char alphabet[] = "0123456789:. -e+naif\x01\xff";
  char *buf = malloc(len + 64);
  int accepted = 0;
  for (int round = 0; round < 20000; round++) {
    memcpy(buf, orig, len + 1);
    size_t n = len;
    int edits = 1 + (int)(next_rand() % 4);
    for (int e = 0; e < edits; e++) {
      size_t at = (size_t)(next_rand() % n);
      switch (next_rand() % 3) {
      case 0: buf[at] = alphabet[next_rand() % (sizeof alphabet - 1)]; break;   /* replace */
      case 1: n = at; buf[n] = 0; break;                                       /* truncate */
      default:                                                                 /* duplicate a span */
        if (n + 16 < len + 63) { memmove(buf + at + 16, buf + at, n - at + 1); n += 16; }
      }
      if (n == 0) break;
    }
    lua_getglobal(L, "stats");
    lua_getfield(L, -1, "decode");
    lua_pushlstring(L, buf, n);
    if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
      const char *m = lua_tostring(L, -1);
      /* only an allocation failure may raise */
      CHECK(m && strstr(m, "out of memory"), "decode raised: %s", m ? m : "?");
      lua_pop(L, 2);
      continue;
    }
    if (!lua_isnil(L, -2)) {
      accepted++;
      /* whatever was accepted must be usable */
      lua_getfield(L, -2, "summary");
      lua_pushvalue(L, -3);
      CHECK(lua_pcall(L, 1, 1, 0) == LUA_OK, "summary of a decoded histogram raised");
      lua_pop(L, 1);
    }
    lua_pop(L, 3);
  }
  printf("decode: %d of 20000 mangled encodings were still valid histograms\n", accepted);
  free(buf);
  free(orig);
  lua_close(L);
}

static void test_relative_error(void) {
  lua_State *L = new_state();
  const char *err = run(L,
    "local h = stats.histogram{digits = 3}\n"
    "local xs = {}\n"
    "local v = 0.002\n"
    "while v < 5e6 do xs[#xs + 1] = v; h:add(v); v = v * 1.0007 end\n"
    "WORST = 0\n"
    "for k = 1, 999 do\n"
    "  local p = k / 10\n"
    "  local exact = xs[math.max(1, math.ceil(p / 100 * #xs))]\n"
    "  local e = math.abs(h:percentile(p) / exact - 1)\n"
    "  if e > WORST then WORST = e end\n"
    "end\n");
  CHECK(err == NULL, "relative error run: %s", err);
  lua_getglobal(L, "WORST");
  double worst = lua_tonumber(L, -1);
  /* bucket width 1/1024 of its value: the midpoint is within 1/2048 */
  CHECK(worst <= 1.0 / 2048 + 1e-12, "worst relative error %g > %g", worst, 1.0 / 2048);
  printf("relative error: worst %.6f%% over 999 percentiles of 9 decades\n", worst * 100);
  lua_close(L);
}

int main(void) {
  test_decode_mangled();
  test_relative_error();
  if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
  puts("ok");
  return 0;
}
