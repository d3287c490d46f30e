/* benchrun's command line: subcommands, exit codes (0 ok, 1 failure,
 * 2 usage), and the hand-off to Lua. Policy (plans, reports) lives in
 * scripts/bench/cli.lua; this file only parses what must be parsed in C. */
#include "benchrun/runtime.h"
#include "benchrun/sched.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char *const main_help =
  "usage: benchrun [PLAN.yaml [options] | COMMAND [args]]\n"
  "\n"
  "  benchrun PLAN.yaml [--set k=v] [--dry-run] [--check] [--only PAT] [--resume DIR]\n"
  "                   [--out DIR] [--quiet] [--json]\n"
  "                                  run a plan, write results and a report\n"
  "                                  (benchrun help plan)\n"
  "  benchrun run SCRIPT.lua [args]  run a Lua script (arg set as in lua)\n"
  "  benchrun -e CODE [args]         run a Lua chunk; prints what it returns\n"
  "  benchrun [repl]                 interactive REPL with every module loaded\n"
  "  benchrun sim [options]          the built-in simulated LLM server\n"
  "  benchrun report DIR...          re-render a report from raw results\n"
  "  benchrun compare DIR_A DIR_B    compare two runs\n"
  "  benchrun merge DIR              one report from a run's shards (--shard I/N)\n"
  "  benchrun slurm PLAN.yaml --shards N --run-dir DIR\n"
  "                                  the shards as a Slurm job array and a merge job\n"
  "  benchrun k8s PLAN.yaml --shards N --image IMAGE\n"
  "                                  the shards as a Kubernetes Indexed Job (manifest)\n"
  "  benchrun compare [RUN] --baseline last|ID\n"
  "                                  compare a run with a recorded one (exit 3: regression)\n"
  "  benchrun history [ID] [--plan NAME] [--since WHEN] [--json]\n"
  "                                  list the recorded runs (the run history)\n"
  "  benchrun --version              version (with git describe)\n"
  "  benchrun help COMMAND           help on one command (or COMMAND --help)\n"
  "\n"
  "exit status: 0 success, 1 benchmark or script failure, 2 usage error\n";

static const char *const run_help =
  "usage: benchrun run SCRIPT.lua [args...]\n"
  "\n"
  "Runs SCRIPT.lua with every bench module loaded (bench, clock, http, proc,\n"
  "mem, sys, stats, yaml, json). `arg` is set as in the standalone lua:\n"
  "arg[0] is the script, arg[1..n] its arguments; the chunk also receives them\n"
  "as `...`. Tasks it spawns run to completion before benchrun exits.\n"
  "Use - as SCRIPT to read the script from standard input.\n";

static const char *const e_help =
  "usage: benchrun -e CODE [args...]\n"
  "\n"
  "Runs CODE as a Lua chunk (args in `arg` and `...`). If CODE is an expression\n"
  "or returns values, they are printed (tables pretty-printed, as in the REPL).\n";

static const char *const repl_help =
  "usage: benchrun [repl]\n"
  "\n"
  "Interactive Lua 5.4 with every bench module as a global. Expressions print\n"
  "their value; incomplete statements continue on the next line; Tab completes\n"
  "globals and fields; history in ~/.benchrun_history; Ctrl-C cancels the\n"
  "running line and its requests; Ctrl-D exits.\n";

static int usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "benchrun: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n(try 'benchrun --help')\n");
  return EXIT_USAGE;
}

static int print_version(void) {
  printf("benchrun %s (%s) with %s\n", BENCHRUN_VERSION_STRING, BENCHRUN_GIT_STRING, LUA_RELEASE);
  return EXIT_OK;
}

/* Build the global `arg` table: arg[0] = script, arg[1..] = args, arg[-1] = exe. */
static void set_arg(lua_State *L, const char *script, int argc, char **argv) {
  lua_createtable(L, argc, 2);
  lua_pushstring(L, br_runtime_executable());
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, script);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
}

/* Run the function at the top with argv as its arguments; report errors.
 * A function's first integer result becomes the exit status. */
static int call_main(lua_State *L, int argc, char **argv, int print_results) {
  int fn = lua_gettop(L);
  luaL_checkstack(L, argc + 8, "too many arguments");
  for (int i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  int st = br_runtime_pcall(L, argc, LUA_MULTRET);
  if (st != LUA_OK) {
    br_runtime_report(L);
    return EXIT_FAIL;
  }
  int nres = lua_gettop(L) - fn + 1;
  if (print_results && nres > 0) return br_repl_print(L, fn - 1) == 0 ? EXIT_OK : EXIT_FAIL;
  int code = EXIT_OK;
  if (nres > 0 && lua_isinteger(L, fn)) code = (int)lua_tointeger(L, fn);
  lua_settop(L, fn - 1);
  return code;
}

static int run_script(lua_State *L, int argc, char **argv) {
  if (argc < 1) return usage_error("%s", "run: missing SCRIPT.lua");
  if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) { fputs(run_help, stdout); return EXIT_OK; }
  const char *script = argv[0];
  if (strcmp(script, "-") != 0 && access(script, R_OK) != 0)
    return usage_error("run: cannot open script '%s'", script);
  set_arg(L, script, argc - 1, argv + 1);
  int st = luaL_loadfile(L, strcmp(script, "-") == 0 ? NULL : script);
  if (st != LUA_OK) {
    br_runtime_report(L);
    return EXIT_FAIL;
  }
  return call_main(L, argc - 1, argv + 1, 0);
}

static int run_code(lua_State *L, int argc, char **argv) {
  if (argc < 1) return usage_error("%s", "-e: missing CODE");
  if (!strcmp(argv[0], "--help")) { fputs(e_help, stdout); return EXIT_OK; }
  set_arg(L, "-e", argc - 1, argv + 1);
  /* An expression prints its value, as in the REPL. */
  const char *ret = lua_pushfstring(L, "return %s;", argv[0]);
  int st = luaL_loadbuffer(L, ret, strlen(ret), "=(command line)");
  lua_remove(L, -2);
  if (st != LUA_OK) {
    lua_pop(L, 1);
    st = luaL_loadbuffer(L, argv[0], strlen(argv[0]), "=(command line)");
  }
  if (st != LUA_OK) {
    br_runtime_report(L);
    return EXIT_FAIL;
  }
  return call_main(L, argc - 1, argv + 1, 1);
}

/* Subcommands written in Lua: require("bench.cli")[name](args...). */
static int run_lua_command(lua_State *L, const char *name, int argc, char **argv) {
  set_arg(L, name, argc, argv);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "bench.cli");
  if (br_runtime_pcall(L, 1, 1) != LUA_OK) {
    br_runtime_report(L);
    return EXIT_FAIL;
  }
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return usage_error("unknown command '%s'", name);
  }
  return call_main(L, argc, argv, 0);
}

static int help_for(const char *cmd) {
  if (!strcmp(cmd, "run")) fputs(run_help, stdout);
  else if (!strcmp(cmd, "-e")) fputs(e_help, stdout);
  else if (!strcmp(cmd, "repl")) fputs(repl_help, stdout);
  else if (!strcmp(cmd, "sim")) { char *args[] = {"sim", "--help", NULL}; return br_sim_main(2, args); }
  else return -1;
  return EXIT_OK;
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : "repl";

  /* Commands that need no Lua state. */
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v") || !strcmp(cmd, "version")) return print_version();
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { fputs(main_help, stdout); return EXIT_OK; }
  if (!strcmp(cmd, "sim")) return br_sim_main(argc - 1, argv + 1);

  int is_plan = has_suffix(cmd, ".yaml") || has_suffix(cmd, ".yml");
  int known = is_plan || !strcmp(cmd, "repl") || !strcmp(cmd, "run") || !strcmp(cmd, "-e") ||
              !strcmp(cmd, "report") || !strcmp(cmd, "compare") || !strcmp(cmd, "history") ||
              !strcmp(cmd, "help") || !strcmp(cmd, "merge") || !strcmp(cmd, "slurm") || !strcmp(cmd, "k8s");
  if (!known) {
    if (cmd[0] == '-') return usage_error("unknown option '%s'", cmd);
    return usage_error("unknown command or plan '%s' (a plan file ends in .yaml)", cmd);
  }
  if (!strcmp(cmd, "help")) {
    if (argc < 3) { fputs(main_help, stdout); return EXIT_OK; }
    int r = help_for(argv[2]);
    if (r >= 0) return r;
    if (strcmp(argv[2], "report") && strcmp(argv[2], "compare") && strcmp(argv[2], "plan") &&
        strcmp(argv[2], "merge") && strcmp(argv[2], "slurm") && strcmp(argv[2], "k8s") &&
        strcmp(argv[2], "history"))
      return usage_error("no help for '%s'", argv[2]);
    cmd = argv[2];
    argv[2] = "--help";
    argc = 3;
    argv[1] = (char *)cmd;
  }
  if (!strcmp(cmd, "repl") && argc > 2) {
    if (!strcmp(argv[2], "--help")) { fputs(repl_help, stdout); return EXIT_OK; }
    return usage_error("repl: unexpected argument '%s'", argv[2]);
  }
  if (is_plan && access(cmd, R_OK) != 0) return usage_error("cannot open plan '%s'", cmd);

  lua_State *L = br_runtime_new(argv[0]);
  if (!L) return EXIT_FAIL;
  br_runtime_signals(L);
  int code;
  if (!strcmp(cmd, "repl")) code = br_repl(L);
  else if (!strcmp(cmd, "run")) code = run_script(L, argc - 2, argv + 2);
  else if (!strcmp(cmd, "-e")) code = run_code(L, argc - 2, argv + 2);
  else if (is_plan) code = run_lua_command(L, "plan", argc - 1, argv + 1);
  else code = run_lua_command(L, cmd, argc - 2, argv + 2);
  br_runtime_close(L);
  if (br_sys_unrestored() > 0) {
    fprintf(stderr, "benchrun: %d sysctl value(s) could not be restored (see above); the journal keeps their "
            "originals and the next benchrun retries\n", br_sys_unrestored());
    if (code == EXIT_OK) code = EXIT_FAIL;
  }
  int sig = br_runtime_stop_signal();
  if (sig) {
    fprintf(stderr, "benchrun: stopped by signal %d\n", sig);
    signal(sig, SIG_DFL);
    return 128 + sig;
  }
  return code;
}
