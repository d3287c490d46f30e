/* The interactive REPL: lua.c's reading rules (try `return <line>` first,
 * keep reading while the chunk is incomplete) plus line editing, history,
 * completion of globals and fields, and a pretty-printer for tables.
 * (The lazy `probe` global comes from the runtime, for scripts too; the
 * printer and the completion are Lua, in scripts/bench/repl.lua.)
 *
 * Line editing comes from libedit's readline interface when benchrun was
 * built with it (BENCHRUN_HAVE_LIBEDIT) and stdin is a terminal; otherwise
 * lines are read with fgets, with no prompt when stdin is not a terminal,
 * so `echo 'return 1+1' | benchrun` prints just "2".
 *
 * Ctrl-C while a line runs: the runtime's SIGINT handler interrupts the Lua
 * code and every wait; the REPL reports "interrupted" and prompts again.
 * Ctrl-C while typing discards the line. Ctrl-D exits with status 0. */
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "buf.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef BENCHRUN_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_FILE ".benchrun_history"
#define HISTORY_MAX 1000

static int helpers_ref = LUA_NOREF;
static lua_State *repl_state;          /* for the completion callback */
static volatile sig_atomic_t line_interrupted;

static void on_sigint_while_reading(int sig) {
  (void)sig;
  line_interrupted = 1;
}

/* ---- reading lines ---- */

#ifdef BENCHRUN_HAVE_LIBEDIT
static int use_libedit;
static char history_path[4096];

static char **matches;    /* candidates of the completion in progress */
static size_t nmatches, next_match;

static void free_matches(void) {
  for (size_t i = next_match; i < nmatches; i++) free(matches[i]);
  free(matches);
  matches = NULL;
  nmatches = next_match = 0;
}

/* Ask the Lua helper for candidates; errors just mean none. */
static void compute_matches(const char *text) {
  lua_State *L = repl_state;
  free_matches();
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, helpers_ref);
  lua_getfield(L, -1, "complete");
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    size_t n = (size_t)lua_rawlen(L, -1);
    matches = calloc(n ? n : 1, sizeof *matches);
    for (size_t i = 0; matches && i < n; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      const char *s = lua_tostring(L, -1);
      if (s && (matches[nmatches] = strdup(s))) nmatches++;
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
}

static char *match_generator(const char *text, int state) {
  if (state == 0) compute_matches(text);
  if (next_match < nmatches) return matches[next_match++];   /* libedit frees it */
  free_matches();
  return NULL;
}

static char **attempt_completion(const char *text, int start, int end) {
  (void)start; (void)end;
  rl_attempted_completion_over = 1;   /* never fall back to file names */
  return rl_completion_matches(text, match_generator);
}

static void editline_init(void) {
  rl_readline_name = "benchrun";
  /* '.' and ':' are not word breaks, so `clock.sl<TAB>` completes as a whole. */
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";
  rl_attempted_completion_function = attempt_completion;
  rl_completion_append_character = '\0';
  const char *home = getenv("HOME");
  if (home && *home) {
    snprintf(history_path, sizeof history_path, "%s/%s", home, HISTORY_FILE);
    stifle_history(HISTORY_MAX);
    read_history(history_path);
  }
}

static void editline_add(const char *stmt) {
  add_history(stmt);
  if (history_path[0]) write_history(history_path);
}
#endif

/* Read one line without its newline into a malloc'd string; NULL at end of
 * input. *interrupted is set when Ctrl-C discarded the line. */
static char *read_line(const char *prompt, int tty, int *interrupted) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint_while_reading;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  line_interrupted = 0;
  *interrupted = 0;
  char *line = NULL;
#ifdef BENCHRUN_HAVE_LIBEDIT
  if (use_libedit) {
    line = readline(prompt);
    sigaction(SIGINT, &old, NULL);
    if (line_interrupted) {
      free(line);
      *interrupted = 1;
      return NULL;
    }
    return line;
  }
#endif
  if (tty) {
    fputs(prompt, stdout);
    fflush(stdout);
  }
  br_buf b = BR_BUF_INIT;
  int none = br_buf_reserve(&b, 0) != 0;   /* out of memory reads as the end */
  br_buf_clear(&b);                         /* "" for an empty line */
  while (!none) {
    int c = getchar();
    if (c == EOF) {
      if (line_interrupted || (ferror(stdin) && errno == EINTR)) {
        clearerr(stdin);
        *interrupted = 1;
        none = 1;
      } else if (b.len == 0) {
        none = 1;   /* the end of input */
      }
      break;
    }
    if (c == '\n') break;
    char ch = (char)c;
    if (br_buf_add(&b, &ch, 1) != 0) none = 1;
  }
  sigaction(SIGINT, &old, NULL);
  if (none) { br_buf_free(&b); return NULL; }
  return b.p;   /* the caller frees it */
}

/* ---- evaluating ---- */

/* An incomplete chunk: its syntax error is at <eof> (lua.c's rule). The
 * words of Lua's own message are the only signal the C API gives. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t n;
  const char *msg = lua_tolstring(L, -1, &n);
  static const char mark[] = "<eof>";
  return msg && n >= sizeof mark - 1 && strcmp(msg + n - (sizeof mark - 1), mark) == 0;
}

/* Read and compile one statement (several lines if incomplete). Leaves
 * the function (or a syntax error message) on the stack and the source in
 * *stmt. Returns the load status, or -1 at end of input, -2 when Ctrl-C
 * discarded it. */
static int read_statement(lua_State *L, int tty, char **stmt) {
  int intr;
  char *line = read_line(PROMPT, tty, &intr);
  if (!line) return intr ? -2 : -1;
  if (!*line) { free(line); *stmt = NULL; lua_pushnil(L); return LUA_OK; }
  *stmt = line;
  /* `return <line>` first, so an expression prints its value */
  const char *ret = lua_pushfstring(L, "return %s;", line);
  int st = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
  lua_remove(L, -2);
  if (st == LUA_OK) return st;
  lua_pop(L, 1);
  for (;;) {
    st = luaL_loadbuffer(L, *stmt, strlen(*stmt), "=stdin");
    if (!incomplete(L, st)) return st;
    lua_pop(L, 1);
    char *more = read_line(PROMPT2, tty, &intr);
    if (!more) return intr ? -2 : -1;
    size_t a = strlen(*stmt), b = strlen(more);
    char *joined = realloc(*stmt, a + b + 2);
    if (!joined) { free(more); return luaL_error(L, "out of memory"); }
    joined[a] = '\n';
    memcpy(joined + a + 1, more, b + 1);
    free(more);
    *stmt = joined;
  }
}

static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, helpers_ref);
  lua_getfield(L, -1, "show");
  lua_remove(L, -2);
  lua_insert(L, base + 1);
  if (lua_pcall(L, n, 1, 0) != LUA_OK) {
    fprintf(stderr, "benchrun: cannot print the result: %s\n", lua_tostring(L, -1));
  } else {
    fwrite(lua_tostring(L, -1), 1, lua_rawlen(L, -1), stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
  lua_settop(L, base);
}

/* After an error or Ctrl-C: forget the interruption and the hook the
 * signal handler set, so the next line starts clean. */
static void reset_after_error(lua_State *L) {
  br_sched_cancel_all(L);
  /* let the cancelled tasks unwind now (their <close> handlers run) */
  if (br_sched_live(L) > 0 && br_sched_drain(L) != 0) lua_pop(L, 1);
  br_runtime_clear_interrupt(L);
  br_sched_take_failures(L);
}

/* The helpers written in Lua (scripts/bench/repl.lua): the pretty-printer
 * and the completion candidates. */
static int setup(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "bench.repl");
  lua_call(L, 1, 1);
  helpers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int br_repl_print(lua_State *L, int base) {
  if (helpers_ref == LUA_NOREF) {
    lua_pushcfunction(L, setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      br_runtime_report(L);
      lua_settop(L, base);
      return 1;
    }
  }
  print_results(L, base);
  return 0;
}

int br_repl(lua_State *L) {
  int tty = isatty(STDIN_FILENO);
  repl_state = L;
  lua_pushcfunction(L, setup);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    br_runtime_report(L);
    return 1;
  }
#ifdef BENCHRUN_HAVE_LIBEDIT
  use_libedit = tty;
  if (use_libedit) editline_init();
#endif
  if (tty) {
    printf("benchrun %s (%s) with %s; modules: bench clock http proc mem sys stats yaml json\n"
           "Ctrl-C cancels the running line, Ctrl-D exits.\n",
           BENCHRUN_VERSION, BENCHRUN_GIT, LUA_RELEASE);
    fflush(stdout);
  }
  for (;;) {
    if (br_runtime_stop_signal()) break;
    int base = lua_gettop(L);
    char *stmt = NULL;
    int st = read_statement(L, tty, &stmt);
    if (st == -1) {
      free(stmt);
      if (tty) fputc('\n', stdout);
      break;
    }
    if (st == -2) {
      free(stmt);
      lua_settop(L, base);
      fputc('\n', stdout);
      fflush(stdout);
      continue;
    }
    if (!stmt) { lua_settop(L, base); continue; }   /* empty line */
#ifdef BENCHRUN_HAVE_LIBEDIT
    if (use_libedit) editline_add(stmt);
#endif
    free(stmt);
    if (st != LUA_OK) {
      br_runtime_report(L);
      lua_settop(L, base);
      continue;
    }
    st = br_runtime_pcall(L, 0, LUA_MULTRET);
    if (st != LUA_OK) {
      br_runtime_report(L);
      reset_after_error(L);
      lua_settop(L, base);
      continue;
    }
    print_results(L, base);
    /* a Ctrl-C that came as the line finished must not hit the next one */
    if (br_sched_interrupted(L)) reset_after_error(L);
  }
#ifdef BENCHRUN_HAVE_LIBEDIT
  free_matches();
#endif
  if (helpers_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, helpers_ref);
  helpers_ref = LUA_NOREF;
  repl_state = NULL;
  return 0;
}
