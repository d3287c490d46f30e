/* The Lua runtime: one lua_State with every module preloaded, the script
 * search path, protected calls with tracebacks, and signal handling. */
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "platform.h"
#include "class.h"
#include "sock.h"

#include <lauxlib.h>
#include <lualib.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef BENCHRUN_HAVE_CJSON
#include <lua-cjson.h>
int luaopen_cjson_safe(lua_State *L);   /* in the same archive, not in the header */
#endif

static char exe_path[PATH_MAX];
static char scripts_dir[PATH_MAX];
static lua_State *signal_state;        /* the state Ctrl-C interrupts */
static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t signal_count;   /* SIGINT/TERM/HUP since the last clear */
static int hard_pipe[2] = {-1, -1};           /* a second signal -> the hard exit thread */

const char *br_runtime_executable(void) { return exe_path; }
const char *br_runtime_scripts_dir(void) { return scripts_dir; }
int br_runtime_stop_signal(void) { return stop_signal; }

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* scripts/ is found, in order: next to the executable's folder (the build
 * tree, build/../scripts), in the install prefix (bin/../share/benchrun/scripts),
 * then the compiled-in source and install paths. BENCHRUN_PATH adds folders
 * before all of them. */
static void find_scripts_dir(void) {
  char dir[PATH_MAX];
  const char *candidates[4];
  char a[PATH_MAX + 32], b[PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s", exe_path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  snprintf(a, sizeof a, "%s/../scripts", dir);
  snprintf(b, sizeof b, "%s/../share/benchrun/scripts", dir);
  candidates[0] = a;
  candidates[1] = b;
  candidates[2] = BENCHRUN_SOURCE_SCRIPTS;
  candidates[3] = BENCHRUN_INSTALL_SCRIPTS;
  for (int i = 0; i < 4; i++) {
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/bench", candidates[i]);
    if (is_dir(probe)) {
      if (!realpath(candidates[i], scripts_dir)) snprintf(scripts_dir, sizeof scripts_dir, "%s", candidates[i]);
      return;
    }
  }
  snprintf(scripts_dir, sizeof scripts_dir, "%s", BENCHRUN_SOURCE_SCRIPTS);
}

static void set_package_path(lua_State *L) {
  luaL_Buffer b;
  lua_getglobal(L, "package");
  luaL_buffinit(L, &b);
  const char *extra = getenv("BENCHRUN_PATH");
  if (extra && *extra) {
    /* each folder of BENCHRUN_PATH (colon-separated) */
    const char *p = extra;
    while (*p) {
      const char *end = strchr(p, ':');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      if (n) {
        luaL_addlstring(&b, p, n); luaL_addstring(&b, "/?.lua;");
        luaL_addlstring(&b, p, n); luaL_addstring(&b, "/?/init.lua;");
      }
      p += n + (end ? 1 : 0);
    }
  }
  luaL_addstring(&b, scripts_dir); luaL_addstring(&b, "/?.lua;");
  luaL_addstring(&b, scripts_dir); luaL_addstring(&b, "/?/init.lua;");
  lua_getfield(L, -2, "path");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* The C modules, in one table (as Lua's linit.c lists its libraries): the
 * module name `require` finds in package.preload, the open function, and
 * the global every script and the REPL see it as (NULL: none). */
static const struct {
  const char *module;
  lua_CFunction open;
  const char *global;
} c_modules[] = {
  {"bench", luaopen_bench, "bench"},
  {"bench.clock", luaopen_bench_clock, "clock"},
  {"bench.yaml", luaopen_bench_yaml, "yaml"},
  {"bench.http", luaopen_bench_http, "http"},
  {"bench.proc", luaopen_bench_proc, "proc"},
  {"bench.mem", luaopen_bench_mem, "mem"},
  {"bench.power", luaopen_bench_power, "power"},
  {"bench.sys", luaopen_bench_sys, "sys"},
  {"bench.stats", luaopen_bench_stats, "stats"},
  {"bench.sim", luaopen_bench_sim, NULL},
  {"bench.db", luaopen_bench_db, NULL},
#ifdef BENCHRUN_HAVE_CJSON
  {"cjson", luaopen_cjson, "json"},
  {"cjson.safe", luaopen_cjson_safe, NULL},
#endif
};
enum { N_C_MODULES = sizeof c_modules / sizeof c_modules[0] };

static void preload(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (int i = 0; i < N_C_MODULES; i++) {
    lua_pushcfunction(L, c_modules[i].open);
    lua_setfield(L, -2, c_modules[i].module);
  }
  lua_pop(L, 1);
}

int br_runtime_extend(lua_State *L, int module, const char *script) {
  module = lua_absindex(L, module);
  lua_getglobal(L, "require");
  lua_pushstring(L, script);
  lua_call(L, 1, 1);
  lua_pushvalue(L, module);
  lua_call(L, 1, 0);
  return 0;
}

/* `probe` (scripts/bench/probe.lua, a callable module) is a global that
 * loads the module on first use, so startup does not pay for it:
 * probe(url) calls it, probe.field reads its fields. */
static int push_probe_module(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "bench.probe");
  lua_call(L, 1, 1);
  return 1;
}

static int probe_call(lua_State *L) {
  push_probe_module(L);
  lua_replace(L, 1);   /* the proxy itself -> the module */
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int probe_index(lua_State *L) {
  push_probe_module(L);
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

static void set_probe_global(lua_State *L) {
  static const luaL_Reg meta[] = {{"__call", probe_call}, {"__index", probe_index}, {NULL, NULL}};
  lua_newtable(L);
  br_class(L, "bench.ProbeProxy", meta, NULL);
  lua_setmetatable(L, -2);
  lua_setglobal(L, "probe");
}

/* Globals every script and the REPL see: the C modules by short name
 * (c_modules' third column). `json` is cjson where it is linked in, else
 * the cjson that `require` finds at run time (luarocks on macOS). */
static int set_globals(lua_State *L) {
  for (int i = 0; i < N_C_MODULES; i++) {
    if (!c_modules[i].global) continue;
    lua_getglobal(L, "require");
    lua_pushstring(L, c_modules[i].module);
    lua_call(L, 1, 1);
    lua_setglobal(L, c_modules[i].global);
  }
#ifndef BENCHRUN_HAVE_CJSON
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_setglobal(L, "json");
#endif
  /* bench.executable lets scripts start `benchrun sim` and friends. */
  lua_getglobal(L, "bench");
  lua_pushstring(L, exe_path);
  lua_setfield(L, -2, "executable");
  lua_pushstring(L, scripts_dir);
  lua_setfield(L, -2, "scripts_dir");
  lua_pushstring(L, BENCHRUN_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, BENCHRUN_GIT);
  lua_setfield(L, -2, "git");
  lua_pop(L, 1);
  set_probe_global(L);
  return 0;
}

/* os.exit(code): the standard one exits without closing the state, so no
 * finalizer runs: sysctl values stay changed, child servers keep running
 * and buffered results are lost. This one closes the state first (every
 * finalizer: children stopped, sysctls restored, files flushed and closed),
 * as os.exit(code, true) would, then exits; a sysctl that could not be put
 * back makes a successful exit status 1. */
static int l_os_exit(lua_State *L) {
  int status;
  if (lua_isboolean(L, 1)) status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main_L = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (signal_state == main_L) signal_state = NULL;
  br_sched_cancel_all(main_L);
  if (br_sched_interrupted(main_L)) br_sched_interrupt_handled(main_L);   /* finalizers run whole */
  lua_close(main_L);
  if (br_sys_unrestored() > 0) {
    fprintf(stderr, "benchrun: %d sysctl value(s) could not be restored (see above)\n", br_sys_unrestored());
    if (status == EXIT_SUCCESS) status = EXIT_FAILURE;
  }
  exit(status);
}

static int open_all(lua_State *L) {
  luaL_openlibs(L);
  br_sched_open(L);
  preload(L);
  set_package_path(L);
  set_globals(L);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, l_os_exit);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
  return 0;
}

lua_State *br_runtime_new(const char *argv0) {
  if (br_platform_executable_path(exe_path, sizeof exe_path) != 0) {
    if (!argv0 || !realpath(argv0, exe_path)) snprintf(exe_path, sizeof exe_path, "%s", argv0 ? argv0 : "benchrun");
  }
  find_scripts_dir();
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "benchrun: cannot create the Lua state (out of memory)\n");
    return NULL;
  }
  lua_pushcfunction(L, open_all);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "benchrun: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  return L;
}

void br_runtime_close(lua_State *L) {
  if (!L) return;
  if (signal_state == L) signal_state = NULL;
  br_sched_cancel_all(L);
  /* Run the cancelled tasks to their end so their <close> handlers run;
   * a cancelled task cannot wait again, so this cannot block. */
  if (br_sched_live(L) > 0 && br_sched_drain(L) != 0) lua_pop(L, 1);
  /* the top level is over: finalizers written in Lua must run whole */
  if (br_sched_interrupted(L)) br_sched_interrupt_handled(L);
  lua_close(L);   /* __gc of every handle: children stopped, transfers cancelled, threads joined */
}

/* Message handler: the error plus a traceback (lua.c's msghandler). The
 * interruption reaching the top level is handled here: it stays a value
 * (no traceback) and the hooks stop raising, so the clean-up runs. */
static int msghandler(lua_State *L) {
  if (br_is_interrupt(L, 1) || br_sched_interrupt_pending(L)) {
    br_sched_interrupt_handled(L);
    br_push_interrupt(L);
    return 1;
  }
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int br_runtime_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int st = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (st == LUA_OK && br_sched_live(L) > 0) {
    /* Tasks spawned by the chunk run to completion before we return. */
    if (br_sched_drain(L) != 0) {
      if (nresults != LUA_MULTRET) lua_pop(L, nresults);
      st = LUA_ERRRUN;
    }
  }
  if (st == LUA_OK) {
    int failed = br_sched_take_failures(L);
    if (failed) {
      if (nresults != LUA_MULTRET) lua_pop(L, nresults);
      lua_pushfstring(L, "%d task(s) failed (their errors are above)", failed);
      st = LUA_ERRRUN;
    }
  }
  return st;
}

void br_runtime_report(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (!msg && br_is_interrupt(L, -1)) msg = "interrupted";
  fprintf(stderr, "benchrun: %s\n", msg ? msg : "(error object is not a string)");
  fflush(stderr);
  lua_pop(L, 1);
}

/* ---- signals ----
 * The first SIGINT/SIGTERM/SIGHUP interrupts: every wait is cancelled and
 * the running Lua code (main thread and the running task) is hooked to raise
 * the interruption value at every instruction until a top level handles it
 * (br_runtime_pcall's message handler, bench.xpcall_top), so pcall cannot
 * swallow it. A second one ends the process from a thread of its own,
 * whatever Lua is doing: child process groups stopped, this process's
 * sysctl values restored from the journal, exit 128+signal. */

static void on_signal(int sig) {
  int saved = errno;
  if (sig != SIGINT) stop_signal = sig;
  if (signal_count++ > 0 && hard_pipe[1] >= 0) {
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(hard_pipe[1], &b, 1);
    (void)r;
    errno = saved;
    return;
  }
  lua_State *L = signal_state;
  if (!L) { errno = saved; return; }
  br_sched_interrupt(L);
  /* Stop pure-Lua loops at their next instruction, as lua.c does; also in
   * the task running now (a coroutine has its own hook). */
  br_sched_arm(L);
  lua_State *co = br_sched_running_thread(L);
  if (co) br_sched_arm(co);
  errno = saved;
}

static void say(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void *hard_exit_thread(void *arg) {
  (void)arg;
  unsigned char b;
  for (;;) {
    ssize_t r = read(hard_pipe[0], &b, 1);
    if (r == 1) break;
    if (r < 0 && errno == EINTR) continue;
    return NULL;
  }
  say("benchrun: second signal: stopping now (child processes, then sysctl values)\n");
  br_proc_kill_all(2.0);
  if (br_sys_restore_mine() > 0) say("benchrun: WARNING: some sysctl values could not be restored (see above)\n");
  _exit(128 + b);
}

void br_runtime_clear_interrupt(lua_State *L) {
  br_sched_clear_interrupt(L);
  lua_sethook(L, NULL, 0, 0);
  signal_count = 0;
}

void br_runtime_signals(lua_State *L) {
  signal_state = L;
  if (hard_pipe[0] < 0 && pipe(hard_pipe) == 0) {
    fcntl(hard_pipe[0], F_SETFD, FD_CLOEXEC);   /* blocking: its thread waits there */
    br_fd_nonblock(hard_pipe[1]);                /* a signal handler never blocks */
    /* the thread takes no signal: they stay with the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, hard_exit_thread, NULL) == 0) pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);   /* a closed socket is an error result, not a death */
}
