/* bench.clock: monotonic integer nanoseconds, wall time, sleep, stopwatches.
 * Stored timestamps are integers; floats appear only at the edge (seconds
 * for humans). */
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "platform.h"
#include "class.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#define WATCH_MT "bench.clock.Stopwatch"

/* clock.now() -> monotonic ns (integer) */
static int l_now(lua_State *L) {
  lua_pushinteger(L, br_now());
  return 1;
}

/* clock.wall() -> UTC epoch seconds with fraction;  clock.wall_ns() -> integer ns */
static int l_wall(lua_State *L) {
  int64_t ns = br_platform_wall_ns();
  lua_pushnumber(L, (lua_Number)(ns / 1000000000) + (lua_Number)(ns % 1000000000) / 1e9);
  return 1;
}

static int l_wall_ns(lua_State *L) {
  lua_pushinteger(L, br_platform_wall_ns());
  return 1;
}

typedef struct {
  br_wait wait;
  br_timer timer;
  br_loop *loop;
} sleeper;

static void sleeper_fire(br_loop *loop, br_timer *t) {
  sleeper *s = t->data;
  br_wait_done(&s->wait);
}

static void sleeper_cancel(br_wait *w) {
  sleeper *s = (sleeper *)w;
  br_timer_stop(s->loop, &s->timer);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  sleeper *s = (sleeper *)ctx;
  if (br_wait_cancelled(&s->wait)) return br_wait_raise(L, &s->wait);
  return 0;
}

/* clock.sleep(seconds): yields the task (or runs the loop on the main thread). */
int br_clock_sleep(lua_State *L) {
  lua_Number sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0 && sec < 1e9, 1, "expected seconds >= 0");
  lua_settop(L, 1);
  sleeper *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  br_wait_init(&s->wait, L);
  s->wait.cancel = sleeper_cancel;
  s->loop = br_sched_loop(L);
  br_timer_start(s->loop, &s->timer, br_now() + (int64_t)llround(sec * 1e9), sleeper_fire, s);
  return br_await(L, &s->wait, (lua_KContext)s, sleep_k);
}

/* clock.sleep_until(ns): sleep until a monotonic time in ns. */
static int l_sleep_until(lua_State *L) {
  lua_Integer when = luaL_checkinteger(L, 1);
  int64_t now = br_now();
  lua_settop(L, 0);
  lua_pushnumber(L, when > now ? (lua_Number)(when - now) / 1e9 : 0);
  return br_clock_sleep(L);
}

/* Stopwatch: clock.stopwatch() -> w; w:elapsed() (s), w:elapsed_ns(), w:lap() (s since last lap), w:reset() */
typedef struct { int64_t start, lap; } stopwatch;

static int l_stopwatch(lua_State *L) {
  stopwatch *w = lua_newuserdatauv(L, sizeof *w, 0);
  w->start = w->lap = br_now();
  luaL_setmetatable(L, WATCH_MT);
  return 1;
}

static int sw_elapsed(lua_State *L) {
  stopwatch *w = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushnumber(L, (lua_Number)(br_now() - w->start) / 1e9);
  return 1;
}

static int sw_elapsed_ns(lua_State *L) {
  stopwatch *w = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushinteger(L, br_now() - w->start);
  return 1;
}

static int sw_lap(lua_State *L) {
  stopwatch *w = luaL_checkudata(L, 1, WATCH_MT);
  int64_t now = br_now();
  lua_pushnumber(L, (lua_Number)(now - w->lap) / 1e9);
  w->lap = now;
  return 1;
}

static int sw_reset(lua_State *L) {
  stopwatch *w = luaL_checkudata(L, 1, WATCH_MT);
  w->start = w->lap = br_now();
  lua_settop(L, 1);
  return 1;
}

static int sw_tostring(lua_State *L) {
  stopwatch *w = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushfstring(L, "bench.clock.Stopwatch (%f s)", (double)(br_now() - w->start) / 1e9);
  return 1;
}

/* clock.ms(ns) / clock.seconds(ns): convert integer ns at the edge */
static int l_ms(lua_State *L) {
  lua_pushnumber(L, (lua_Number)luaL_checkinteger(L, 1) / 1e6);
  return 1;
}

static int l_seconds(lua_State *L) {
  lua_pushnumber(L, (lua_Number)luaL_checkinteger(L, 1) / 1e9);
  return 1;
}

int luaopen_bench_clock(lua_State *L) {
  static const luaL_Reg sw_methods[] = {
    {"elapsed", sw_elapsed}, {"elapsed_ns", sw_elapsed_ns}, {"lap", sw_lap},
    {"reset", sw_reset}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"now", l_now}, {"wall", l_wall}, {"wall_ns", l_wall_ns}, {"sleep", br_clock_sleep},
    {"sleep_until", l_sleep_until}, {"stopwatch", l_stopwatch}, {"ms", l_ms},
    {"seconds", l_seconds}, {NULL, NULL}};
  static const luaL_Reg sw_meta[] = {{"__tostring", sw_tostring}, {NULL, NULL}};
  br_class(L, WATCH_MT, sw_meta, sw_methods);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
