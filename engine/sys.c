/* bench.sys: host facts and kernel knobs.
 *
 * This file holds the module and the host side: sys.info (the platform's
 * facts), sys.isatty, sys.mkdir and sys.lockfile (the results store's
 * folder and lock, made with the C library, never by running a program).
 * The kernel knobs (sysctl_get/sysctl_set with their restore journal) are
 * in sysctl.c, whose top says how a change is recorded and undone. */
#include "benchrun/runtime.h"
#include "platform.h"
#include "class.h"
#include "sysctl.h"

#include <lauxlib.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v || !*v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, int64_t v) {
  if (v <= 0) return;
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* sys.info() -> {os, os_version, kernel, arch, hostname, cpu = {model,
 * cores, physical_cores, performance_cores, efficiency_cores}, ram, page_size,
 * gpus = {{name, total}...} | gpu_note} */
static int l_info(lua_State *L) {
  br_sys_info si;
  br_platform_sys_info(&si);
  lua_createtable(L, 0, 10);
  set_str(L, "os", si.os);
  set_str(L, "os_version", si.os_version);
  set_str(L, "kernel", si.kernel);
  set_str(L, "arch", si.arch);
  set_str(L, "hostname", si.hostname);
  lua_createtable(L, 0, 5);
  set_str(L, "model", si.cpu_model);
  set_num(L, "cores", si.cores_logical);
  set_num(L, "physical_cores", si.cores_physical);
  set_num(L, "performance_cores", si.cores_performance);
  set_num(L, "efficiency_cores", si.cores_efficiency);
  lua_setfield(L, -2, "cpu");
  set_num(L, "ram", si.ram);
  set_num(L, "page_size", si.page_size);
  br_gpu_mem g[16];
  char why[200];
  int n = br_platform_gpu_mem(g, 16, why, sizeof why);
  lua_newtable(L);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    set_str(L, "name", g[i].name);
    set_num(L, "total", g[i].total);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "gpus");
  if (n < 0) set_str(L, "gpu_note", why);
  lua_pushinteger(L, (lua_Integer)getpid());
  lua_setfield(L, -2, "pid");
  return 1;
}

/* sys.isatty([fd = 2]) -> whether the descriptor is a terminal (the
 * progress display asks for stderr's) */
static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_optinteger(L, 1, 2);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "expected a file descriptor");
  lua_pushboolean(L, isatty((int)fd) == 1);
  return 1;
}

/* sys.mkdir(path [, exclusive]) -> true | nil, message, "exists"
 * Creates the folder and its parents with the C library (no `mkdir` program:
 * user text such as "-rf" is never an option of anything). With exclusive,
 * the last folder must not exist yet: two runs that pick the same name learn
 * it here, atomically, and one of them takes another name. */
static int l_mkdir(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  int exclusive = lua_toboolean(L, 2);
  if (len == 0 || strlen(path) != len) {
    luaL_pushfail(L);
    lua_pushstring(L, len == 0 ? "empty folder name" : "folder name contains a NUL byte");
    return 2;
  }
  char *tmp = malloc(len + 1);
  if (!tmp) return luaL_error(L, "sys.mkdir: out of memory");
  memcpy(tmp, path, len + 1);
  int err = 0;
  for (char *p = tmp + 1; *p && !err; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) err = errno;
    *p = '/';
  }
  if (!err && mkdir(tmp, 0777) != 0) {
    err = errno;
    struct stat st;
    if (err == EEXIST && !exclusive && stat(tmp, &st) == 0 && S_ISDIR(st.st_mode)) err = 0;
  }
  free(tmp);
  if (!err) { lua_pushboolean(L, 1); return 1; }
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", path, strerror(err));
  if (err == EEXIST) { lua_pushliteral(L, "exists"); return 3; }
  return 2;
}

/* sys.lockfile(path) -> lock | nil, message, "busy"
 * An exclusive flock on path (created if missing), held until lock:unlock(),
 * its __close or its collection, and by the kernel until the process ends
 * (a SIGKILLed holder frees it). The results store holds one per run folder:
 * two benchruns never append to one folder at once. */
#define LOCK_MT "bench.sys.Lock"

static int lock_unlock(lua_State *L) {
  int *fd = luaL_checkudata(L, 1, LOCK_MT);
  if (*fd >= 0) { flock(*fd, LOCK_UN); close(*fd); *fd = -1; }
  return 0;
}

static int l_lockfile(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  /* the userdata first: an allocation error cannot leak the descriptor */
  int *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = -1;
  static const luaL_Reg meta[] = {{"__gc", lock_unlock}, {"__close", lock_unlock}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"unlock", lock_unlock}, {NULL, NULL}};
  br_class(L, LOCK_MT, meta, methods);
  lua_setmetatable(L, -2);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, err == EWOULDBLOCK ? "locked by another process" : strerror(err));
    if (err == EWOULDBLOCK) { lua_pushliteral(L, "busy"); return 3; }
    return 2;
  }
  *u = fd;
  return 1;
}

int luaopen_bench_sys(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"mkdir", l_mkdir}, {"lockfile", l_lockfile}, {"isatty", l_isatty},
    {"info", l_info}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  br_sysctl_open(L);   /* sysctl_get/set, the journal, the restore guard */
  return 1;
}
