/* Embedding benchrun's Lua runtime: one lua_State with every module
 * preloaded, the scheduler, the script search path, and protected calls that
 * add a traceback. */
#ifndef BENCHRUN_RUNTIME_H
#define BENCHRUN_RUNTIME_H

#include <lua.h>

/* Create the state: standard libraries, the scheduler, package.preload for
 * every bench.* module and cjson, package.path for scripts/. argv0 helps
 * find scripts/ next to the executable. Returns NULL and prints why on failure. */
lua_State *br_runtime_new(const char *argv0);
/* Stop every task and child, then close the state. */
void br_runtime_close(lua_State *L);

/* Call the function below nargs arguments at the top of the stack in protected
 * mode with a traceback handler; the loop is then drained of spawned tasks.
 * Returns LUA_OK or an error status with the message (and traceback) pushed. */
int br_runtime_pcall(lua_State *L, int nargs, int nresults);
/* Print the error at the top of the stack to stderr, prefixed "benchrun: ". */
void br_runtime_report(lua_State *L);

/* Install SIGINT/SIGTERM/SIGHUP handling for L (Ctrl-C interrupts the
 * running Lua code and every wait). */
void br_runtime_signals(lua_State *L);
/* Forget an interruption (the REPL, after a cancelled line): the next
 * signal is a first one again. */
void br_runtime_clear_interrupt(lua_State *L);
/* The signal that asked benchrun to stop (SIGTERM, SIGHUP), or 0. */
int br_runtime_stop_signal(void);

/* Put back the sysctl values this process changed (bench.sys journal),
 * without Lua (also from the hard exit thread); -> how many could not be. */
int br_sys_restore_mine(void);
/* How many values the last br_sys_restore_mine left changed (0: none). */
int br_sys_unrestored(void);
/* Stop every child process group bench.proc started (SIGTERM, then SIGKILL
 * after grace_s), without Lua; -> how many groups were signalled. */
int br_proc_kill_all(double grace_s);

/* The Lua half of a C module: require(script) (a file under scripts/, found
 * as every script is) returns function(module), called with the table at
 * index `module` to add its functions. The script receives the table, so it
 * never requires the module being opened. Raises on error. */
int br_runtime_extend(lua_State *L, int module, const char *script);

/* The absolute path of the running benchrun executable. */
const char *br_runtime_executable(void);
/* The scripts/ folder in use. */
const char *br_runtime_scripts_dir(void);

/* Module entry points, each in its own engine/<name>.c. */
int luaopen_bench(lua_State *L);
int luaopen_bench_clock(lua_State *L);
int luaopen_bench_yaml(lua_State *L);
int luaopen_bench_http(lua_State *L);
int luaopen_bench_proc(lua_State *L);
int luaopen_bench_mem(lua_State *L);
int luaopen_bench_power(lua_State *L);
int luaopen_bench_sys(lua_State *L);
int luaopen_bench_stats(lua_State *L);
int luaopen_bench_sim(lua_State *L);            /* engine/sim/options.c */
int luaopen_bench_db(lua_State *L);

/* bench.sleep / clock.sleep, shared by both modules. */
int br_clock_sleep(lua_State *L);

/* Subcommands implemented in C. */
int br_sim_main(int argc, char **argv);        /* benchrun sim */
int br_repl(lua_State *L);                     /* the interactive REPL */
/* Print the values above stack index base as the REPL does (tables
 * pretty-printed) and pop them; 0, or 1 when printing failed. */
int br_repl_print(lua_State *L, int base);

#endif
