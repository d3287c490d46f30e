/* bench.proc and bench.mem from C: closing a Lua state stops every child it
 * started (the path br_runtime_close takes on errors and signals), a
 * running sampler thread is joined by its finalizer, and the platform's
 * memory readings are sane. */
#include "benchrun/runtime.h"
#include "platform.h"

#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static int run_lua(lua_State *L, const char *code, lua_Integer *out) {
  if (luaL_loadstring(L, code) != LUA_OK || br_runtime_pcall(L, 0, 1) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  if (out) *out = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return 0;
}

static int pid_exists(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

int main(void) {
  /* 1. closing the state stops children, also one that ignores SIGTERM */
  lua_State *L = br_runtime_new("test_proc_close");
  CHECK(L != NULL, "runtime");
  lua_Integer a = 0, b = 0;
  CHECK(run_lua(L, "P1 = assert(proc.spawn{argv = {'sleep', '300'}}) return P1.pid", &a) == 0, "spawn a");
  CHECK(run_lua(L, "P2 = assert(proc.spawn{argv = {'sh', '-c', \"trap '' TERM; echo armed; sleep 300\"}, grace = 0.3})"
                   " assert(P2:wait_for_line('armed', 10)) return P2.pid", &b) == 0, "spawn b");
  lua_Integer rss = 0;
  CHECK(run_lua(L, "S = mem.sampler{pid = P1.pid, interval = 0.01} S:start() clock.sleep(0.05)"
                   " return S:latest().rss", &rss) == 0 && rss > 0, "sampler running (rss %lld)", (long long)rss);
  CHECK(a > 0 && pid_exists((pid_t)a), "child a alive before close");
  CHECK(b > 0 && pid_exists((pid_t)b), "child b alive before close");
  br_runtime_close(L);   /* must stop both and join the sampler thread */
  CHECK(!pid_exists((pid_t)a), "child a (pid %lld) still exists after lua_close", (long long)a);
  CHECK(!pid_exists((pid_t)b), "child b (pid %lld, ignores SIGTERM) still exists after lua_close", (long long)b);

  /* 2. platform readings */
  int64_t rss_self = 0, real_self = 0;
  CHECK(br_platform_proc_one_mem((int)getpid(), 1, &rss_self, &real_self) == 0, "proc_one_mem self");
  CHECK(rss_self > 0 && real_self > 0, "self rss %lld real %lld", (long long)rss_self, (long long)real_self);
  pid_t kid = fork();
  if (kid == 0) { pause(); _exit(0); }
  int kids[8];
  int nk = 0;
  int found = 0;
  for (int i = 0; i < 100 && !found; i++) {
    nk = br_platform_proc_children((int)getpid(), kids, 8);
    for (int j = 0; j < nk; j++) found |= kids[j] == (int)kid;
    if (!found) usleep(10000);
  }
  CHECK(found, "children of self: %d listed, %d not among them", nk, (int)kid);
  kill(kid, SIGKILL);
  waitpid(kid, NULL, 0);
  pid_t z = fork();
  if (z == 0) _exit(0);
  waitpid(z, NULL, 0);
  int64_t r1, r2;
  int rc = br_platform_proc_one_mem((int)z, 0, &r1, &r2);
  CHECK(rc == -ESRCH, "gone pid: expected %d, got %d", -ESRCH, rc);
  br_sys_mem s;
  CHECK(br_platform_sys_mem(&s) == 0 && s.total > 0 && s.used > 0 && s.used <= s.total,
        "sys_mem total %lld used %lld", (long long)s.total, (long long)s.used);
  br_sys_info si;
  CHECK(br_platform_sys_info(&si) == 0 && si.cores_logical >= 1 && si.ram > 0 && si.os[0], "sys_info");
  char why[200];
  br_gpu_mem g[4];
  int n = br_platform_gpu_mem(g, 4, why, sizeof why);
  CHECK(n >= 0 || strncmp(why, "not available", 13) == 0, "gpu: %d, '%s'", n, why);
  char buf[64];
  CHECK(br_platform_sysctl_read("../../etc/passwd", buf, sizeof buf) < 0, "a path is not a sysctl name");

  if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
  printf("test_proc_close: ok\n");
  return 0;
}
