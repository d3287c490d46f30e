/* bench.proc: child processes on the event loop.
 *
 * spawn (argv only, never a shell; its own process group; env set/unset;
 * cwd; stdout/stderr read through pipes on the loop into a ring of recent
 * lines, optionally kept whole or appended to a log file), wait / stop /
 * signal / wait_for_line that yield the task, run-and-capture, and the exit
 * explained (code, signal, whether benchrun sent it, OOM evidence), the
 * exit classified (proc.classify_exit) and the port checks (who listens).
 *
 * Child exits arrive through a SIGCHLD self-pipe watched by a weak br_io;
 * each state reaps only its own pids (waitpid(pid), never -1), so
 * io.popen and os.execute keep working.
 *
 * No orphans: every child lives in a C registry owned by the state. A handle
 * that is collected sends SIGTERM to the group and SIGKILL after its grace;
 * closing the state (normal end, error, SIGINT/SIGTERM/SIGHUP through
 * br_runtime_close) stops every child still there, synchronously. On Linux
 * the child also gets PR_SET_PDEATHSIG(SIGKILL) for a SIGKILLed benchrun.
 *
 * The readiness helpers (proc.wait_ready, proc.probe_http), the exit
 * classification and the port checks are Lua, in scripts/bench/proc/, on
 * top of the C primitives here (p:lines_since, proc.probe_port,
 * proc.port_owners) and bench.http.
 *
 * The C half, one idea a file (proc.h holds the types they share):
 *   proc.c           the Process handle, the module table, pid_alive/kill/children
 *   proc_spawn.c     spawning: argv, env, PATH, streams, the exec
 *   proc_children.c  the registry of children: SIGCHLD, reaping, stopping, the state
 *   proc_output.c    output capture: pipes read into lines, the ring, logs, stdin
 *   proc_wait.c      waiting (wait, stop, wait_for_line, run) and the exit explained
 *   proc_ports.c     the server's port: probe_port, free_port, who listens */
#include "proc.h"
#include "class.h"
#include "benchrun/runtime.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

child *proc_check_child(lua_State *L, int i) {
  phandle *h = luaL_checkudata(L, i, PROC_MT);
  if (!h->c) luaL_error(L, "bench.proc: the process handle is closed");
  return h->c;
}

/* ---- simple methods ---- */

static int p_alive(lua_State *L) {
  child *c = proc_check_child(L, 1);
  if (c->running) proc_reap_all(c->ps);
  lua_pushboolean(L, c->running);
  return 1;
}

static int p_signal(lua_State *L) {
  child *c = proc_check_child(L, 1);
  int sig = proc_check_signal(L, 2);
  int group = lua_toboolean(L, 3);
  if (!c->running) {
    lua_pushnil(L);
    lua_pushfstring(L, "proc.signal: %s (pid %d) has already exited", c->name, (int)c->pid);
    return 2;
  }
  c->sent_mask |= 1ULL << sig;
  if (kill(group ? -c->pid : c->pid, sig) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "proc.signal: pid %d: %s", (int)c->pid, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int p_index(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  const char *k = lua_tostring(L, 2);
  if (k && h->c) {
    child *c = h->c;
    if (!strcmp(k, "pid")) { lua_pushinteger(L, c->pid); return 1; }
    if (!strcmp(k, "name")) { lua_pushstring(L, c->name); return 1; }
    if (!strcmp(k, "started_ns")) { lua_pushinteger(L, c->t_spawn); return 1; }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int p_gc(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  proc_state *ps = proc_state_peek(L);
  if (h->c && ps && ps->loop) proc_detach(h->c);
  h->c = NULL;
  return 0;
}

/* <close>: stop and wait (yields inside a task). */
static int p_close(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  if (!h->c) return 0;
  if (!h->c->running) return 0;
  lua_settop(L, 1);
  return process_stop(L);
}

static int p_tostring(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  if (!h->c) lua_pushliteral(L, "bench.proc.Process (closed)");
  else if (h->c->running) lua_pushfstring(L, "bench.proc.Process %d (%s, running)", (int)h->c->pid, h->c->name);
  else lua_pushfstring(L, "bench.proc.Process %d (%s, exited)", (int)h->c->pid, h->c->name);
  return 1;
}

/* proc.alive(pid) -> whether a process with that pid exists (any owner) */
static int l_pid_alive(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0, 1, "expected a pid > 0");
  int r = kill((pid_t)pid, 0);
  lua_pushboolean(L, r == 0 || errno == EPERM);
  return 1;
}

/* proc.kill(pid, sig) -> true | nil, message (for pids benchrun did not spawn) */
static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid != 0 && pid != -1, 1, "refusing pid 0 / -1");
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : proc_check_signal(L, 2);
  if (kill((pid_t)pid, sig) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "proc.kill: pid %d: %s", (int)pid, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.children() -> list of {pid, name, running} that this state owns */
static int l_children(lua_State *L) {
  proc_state *ps = proc_get_state(L);
  proc_reap_all(ps);
  lua_newtable(L);
  int i = 1;
  for (child *c = ps->children; c; c = c->next) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, c->pid);
    lua_setfield(L, -2, "pid");
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, c->running);
    lua_setfield(L, -2, "running");
    lua_rawseti(L, -2, i++);
  }
  return 1;
}

int luaopen_bench_proc(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"wait", process_wait}, {"stop", process_stop}, {"alive", p_alive}, {"signal", p_signal},
    {"tail", process_tail}, {"lines_since", process_lines_since}, {"wait_for_line", process_wait_for_line},
    {"output", process_output}, {"exit_info", process_exit_info}, {"write", process_write},
    {"close_stdin", process_close_stdin}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__index", p_index}, {"__gc", p_gc}, {"__close", p_close}, {"__tostring", p_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"spawn", proc_spawn}, {"run", proc_run}, {"probe_port", proc_probe_port},
    {"free_port", proc_free_port}, {"pid_alive", l_pid_alive}, {"kill", l_kill},
    {"children", l_children}, {"port_owners", proc_port_owners}, {"process_info", proc_process_info},
    {NULL, NULL}};

  br_class(L, PROC_MT, meta, methods);
  lua_pop(L, 1);
  if (!proc_state_peek(L)) proc_state_open(L);

  luaL_newlib(L, funcs);
  /* the Lua half, in scripts/bench/proc/: exits classified, the port
   * checks, readiness (through bench.http) */
  br_runtime_extend(L, -1, "bench.proc.servers");
  br_runtime_extend(L, -1, "bench.proc.ready");
  return 1;
}
