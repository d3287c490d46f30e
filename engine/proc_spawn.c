/* bench.proc's spawning (proc.h): proc.spawn's options read into a spec
 * (argv, env set/unset, cwd, PATH lookup, the streams), then fork and exec
 * with no shell, in the child's own process group. */
#include "proc.h"
#include "platform.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- spawning ---- */

typedef struct {
  char **argv, **envp;
  char *path;
  char *cwd;
  int nargv, nenv;
} spawn_spec;

static void spec_free(spawn_spec *sp) {
  if (sp->argv) for (int i = 0; i < sp->nargv; i++) free(sp->argv[i]);
  if (sp->envp) for (int i = 0; i < sp->nenv; i++) free(sp->envp[i]);
  free(sp->argv);
  free(sp->envp);
  free(sp->path);
  free(sp->cwd);
  memset(sp, 0, sizeof *sp);
}

static int env_name_eq(const char *entry, const char *name, size_t n) {
  return !strncmp(entry, name, n) && entry[n] == '=';
}

static void env_remove(spawn_spec *sp, const char *name, size_t n) {
  for (int i = 0; i < sp->nenv; i++) {
    if (env_name_eq(sp->envp[i], name, n)) {
      free(sp->envp[i]);
      sp->envp[i] = sp->envp[--sp->nenv];
      sp->envp[sp->nenv] = NULL;
      i--;
    }
  }
}

static int env_put(spawn_spec *sp, const char *name, const char *value) {
  size_t n = strlen(name);
  env_remove(sp, name, n);
  char *e = malloc(n + strlen(value) + 2);
  if (!e) return -1;
  sprintf(e, "%s=%s", name, value);
  char **ne = realloc(sp->envp, (size_t)(sp->nenv + 2) * sizeof *ne);
  if (!ne) { free(e); return -1; }
  sp->envp = ne;
  sp->envp[sp->nenv++] = e;
  sp->envp[sp->nenv] = NULL;
  return 0;
}

static const char *env_get(spawn_spec *sp, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < sp->nenv; i++)
    if (env_name_eq(sp->envp[i], name, n)) return sp->envp[i] + n + 1;
  return NULL;
}

/* Read opts.env into sp->envp: either {set = {K = V}, unset = {K...},
 * clear = bool} or a plain {K = V} table (false unsets). */
static void read_env(lua_State *L, int opts, spawn_spec *sp, const char *fn) {
  lua_getfield(L, opts, "env");
  int env = lua_gettop(L);
  int clear = 0;
  if (lua_istable(L, env)) {
    lua_getfield(L, env, "clear");
    clear = lua_toboolean(L, -1);
    lua_pop(L, 1);
  } else if (!lua_isnil(L, env)) {
    luaL_error(L, "%s: env: expected a table, got %s", fn, luaL_typename(L, env));
  }
  sp->envp = calloc(1, sizeof *sp->envp);
  if (!clear) {
    for (char **e = environ; *e; e++) {
      char **ne = realloc(sp->envp, (size_t)(sp->nenv + 2) * sizeof *ne);
      if (!ne) luaL_error(L, "%s: out of memory", fn);
      sp->envp = ne;
      sp->envp[sp->nenv++] = strdup(*e);
      sp->envp[sp->nenv] = NULL;
    }
  }
  if (lua_isnil(L, env)) { lua_pop(L, 1); return; }
  lua_getfield(L, env, "set");
  lua_getfield(L, env, "unset");
  int structured = lua_istable(L, -1) || lua_istable(L, -2);
  int unset = lua_gettop(L), set = unset - 1;
  if (lua_istable(L, unset)) {
    for (lua_Integer i = 1; lua_geti(L, unset, i) != LUA_TNIL; i++) {
      const char *k = lua_tostring(L, -1);
      if (!k) luaL_error(L, "%s: env.unset[%d]: expected a variable name", fn, (int)i);
      env_remove(sp, k, strlen(k));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  int from = structured ? set : env;
  if (lua_istable(L, from)) {
    lua_pushnil(L);
    while (lua_next(L, from)) {
      if (lua_type(L, -2) != LUA_TSTRING) { lua_pop(L, 1); continue; }   /* clear/set/unset handled */
      const char *k = lua_tostring(L, -2);
      if (!structured && (!strcmp(k, "clear"))) { lua_pop(L, 1); continue; }
      if (!*k || strchr(k, '=')) luaL_error(L, "%s: env: bad variable name '%s'", fn, k);
      if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
        env_remove(sp, k, strlen(k));
      } else {
        const char *v = lua_isboolean(L, -1) ? "1" : lua_tostring(L, -1);
        if (!v) luaL_error(L, "%s: env.%s: expected a string or number, got %s", fn, k, luaL_typename(L, -1));
        if (env_put(sp, k, v) != 0) luaL_error(L, "%s: out of memory", fn);
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, env - 1);
}

static int is_executable_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* Resolve argv[0] against the child's PATH. Returns NULL with why in msg. */
static char *resolve_path(spawn_spec *sp, const char *name, char *msg, size_t msz) {
  if (strchr(name, '/')) {
    struct stat st;
    if (stat(name, &st) != 0) { snprintf(msg, msz, "'%s' does not exist", name); return NULL; }
    if (!S_ISREG(st.st_mode)) { snprintf(msg, msz, "'%s' is not a regular file", name); return NULL; }
    if (access(name, X_OK) != 0) { snprintf(msg, msz, "'%s' is not executable", name); return NULL; }
    return strdup(name);
  }
  const char *path = env_get(sp, "PATH");
  if (!path) path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  const char *p = path;
  while (1) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *cand = malloc(n + strlen(name) + 3);
    if (!cand) break;
    if (n == 0) sprintf(cand, "./%s", name);
    else sprintf(cand, "%.*s/%s", (int)n, p, name);
    if (is_executable_file(cand)) return cand;
    free(cand);
    if (!end) break;
    p = end + 1;
  }
  snprintf(msg, msz, "'%s' not found in PATH", name);
  return NULL;
}

/* Where one output stream goes: "pipe" (ring only), "capture" (ring + whole
 * output), "inherit", "null", or a file path (appended; ring too). */
enum { OUT_PIPE, OUT_CAPTURE, OUT_INHERIT, OUT_NULL, OUT_FILE };

/* proc.spawn's options besides argv and env. The strings stay valid while
 * the options table is on the stack. */
typedef struct {
  int omode, emode;                 /* OUT_* of stdout, stderr */
  const char *outp, *errp, *logp;   /* their files; the shared log */
  const char *cwd;
  lua_Number grace, ring;
  int stdin_pipe;
} spawn_opts;

static int read_out_mode(lua_State *L, int opts, const char *field, const char **path, int dflt) {
  lua_getfield(L, opts, field);
  int mode = dflt;
  *path = NULL;
  if (lua_isstring(L, -1)) {
    const char *s = lua_tostring(L, -1);
    if (!strcmp(s, "pipe") || !strcmp(s, "tail")) mode = OUT_PIPE;
    else if (!strcmp(s, "capture")) mode = OUT_CAPTURE;
    else if (!strcmp(s, "inherit")) mode = OUT_INHERIT;
    else if (!strcmp(s, "null")) mode = OUT_NULL;
    else { mode = OUT_FILE; *path = s; }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "proc.spawn: %s: expected \"capture\", \"pipe\", \"inherit\", \"null\" or a file path, got %s",
               field, luaL_typename(L, -1));
  }
  lua_pop(L, 1);   /* the string stays reachable through opts */
  return mode;
}

lua_Number proc_opt_number(lua_State *L, int t, const char *k, lua_Number dflt) {
  lua_getfield(L, t, k);
  lua_Number v = dflt;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok) luaL_error(L, "%s: expected a number, got %s", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static void read_spawn_opts(lua_State *L, int opts, const char *fn, int force_capture, int has_input,
                            spawn_opts *o) {
  o->omode = read_out_mode(L, opts, "stdout", &o->outp, OUT_PIPE);
  o->emode = read_out_mode(L, opts, "stderr", &o->errp, OUT_PIPE);
  if (force_capture) {
    if (o->omode == OUT_PIPE) o->omode = OUT_CAPTURE;
    if (o->emode == OUT_PIPE) o->emode = OUT_CAPTURE;
  }
  lua_getfield(L, opts, "log");
  o->logp = lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, opts, "cwd");
  o->cwd = lua_tostring(L, -1);
  lua_pop(L, 1);
  o->grace = proc_opt_number(L, opts, "grace", 10);
  o->ring = proc_opt_number(L, opts, "tail_lines", RING_DEFAULT);
  if (o->ring < 1 || o->ring > 1e6) luaL_error(L, "%s: tail_lines: expected 1..1000000", fn);
  lua_getfield(L, opts, "stdin");
  o->stdin_pipe = has_input || (lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "pipe"));
  lua_pop(L, 1);
}

static int open_log(const char *path) {
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* In the forked child: only async-signal-safe calls until exec. */
/* Open the log and the stdout/stderr files of o: 0, or -1 with msg set
 * (what was opened is in the fds, for the caller to close). */
static int open_outputs(const spawn_opts *o, int *logfd, int *ofile, int *efile, char *msg, size_t msz) {
  if (o->logp && (*logfd = open_log(o->logp)) < 0) {
    snprintf(msg, msz, "cannot open log '%s': %s", o->logp, strerror(errno));
    return -1;
  }
  if (o->omode == OUT_FILE && (*ofile = open_log(o->outp)) < 0) {
    snprintf(msg, msz, "cannot open stdout file '%s': %s", o->outp, strerror(errno));
    return -1;
  }
  int same = o->errp && o->outp && !strcmp(o->errp, o->outp) && *ofile >= 0;
  if (o->emode == OUT_FILE && (*efile = same ? dup(*ofile) : open_log(o->errp)) < 0) {
    snprintf(msg, msz, "cannot open stderr file '%s': %s", o->errp, strerror(errno));
    return -1;
  }
  return 0;
}

static void child_exec(spawn_spec *sp, int fd_in, int fd_out, int fd_err, int errfd, pid_t parent) {
  sigset_t none;
  sigemptyset(&none);
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setpgid(0, 0);
  br_platform_child_prepare((int)parent);
  int code;
  if (sp->cwd && chdir(sp->cwd) != 0) goto fail;
  /* dup2 onto 0..2; the sources are >= 3 (or already in place) */
  if (fd_in != 0 && dup2(fd_in, 0) < 0) goto fail;
  if (fd_out != 1 && dup2(fd_out, 1) < 0) goto fail;
  if (fd_err != 2 && dup2(fd_err, 2) < 0) goto fail;
  br_platform_close_fds(errfd);
  execve(sp->path, sp->argv, sp->envp);
fail:
  code = errno;
  {
    ssize_t r = write(errfd, &code, sizeof code);
    (void)r;
  }
  _exit(127);
}

/* Shared by proc.spawn and proc.run. Pushes the handle, or nil + message. */
/* fork, and exec sp in the child with c_in/c_out/c_err as its 0, 1, 2 and
 * in its own process group. The exec's errno comes back through p_exec (a
 * close-on-exec pipe: nothing arrives when the exec worked); both of its
 * ends are closed here. -> the pid (then *exec_errno may say it failed), or
 * -1 with *fork_errno. */
static pid_t fork_exec(spawn_spec *sp, int c_in, int c_out, int c_err, int p_exec[2], int *fork_errno,
                       int *exec_errno) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) child_exec(sp, c_in, c_out, c_err, p_exec[1], parent);
  *fork_errno = errno;
  close(p_exec[1]);
  if (pid > 0) setpgid(pid, pid);   /* also from here: no window where a group kill misses it */
  *exec_errno = 0;
  if (pid > 0) {
    ssize_t r;
    do r = read(p_exec[0], exec_errno, sizeof *exec_errno);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof *exec_errno) *exec_errno = 0;
  }
  close(p_exec[0]);
  return pid;
}

/* The program: argv (the n strings of the list at argv_t), its path found
 * in PATH, the folder it starts in. 0, or -1 with msg set. */
static int build_spec(lua_State *L, int argv_t, int n, const char *cwd, spawn_spec *sp, char *msg, size_t msz) {
  sp->nargv = n;
  sp->argv = calloc((size_t)n + 1, sizeof *sp->argv);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, argv_t, i);
    sp->argv[i - 1] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (cwd) sp->cwd = strdup(cwd);
  char why[580];   /* fits msg (600) after "cannot start: " */
  sp->path = resolve_path(sp, sp->argv[0], why, sizeof why);
  if (!sp->path) {
    snprintf(msg, msz, "cannot start: %s", why);
    return -1;
  }
  struct stat st;
  if (cwd && (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode))) {
    snprintf(msg, msz, "cwd '%s' is not a folder", cwd);
    return -1;
  }
  return 0;
}

/* The pipes a child needs and /dev/null (-1 where none). */
typedef struct {
  int out[2], err[2], in[2], exec[2];
  int devnull;
} spawn_pipes;

/* 0, or -1 with msg set and nothing left open. */
static int open_pipes(spawn_pipes *p, int piped_out, int piped_err, int stdin_pipe, char *msg, size_t msz) {
  for (int i = 0; i < 2; i++) p->out[i] = p->err[i] = p->in[i] = p->exec[i] = -1;
  p->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int ok = p->devnull >= 0 && proc_make_pipe(p->exec) == 0;
  if (ok && piped_out) ok = proc_make_pipe(p->out) == 0;
  if (ok && piped_err) ok = proc_make_pipe(p->err) == 0;
  if (ok && stdin_pipe) ok = proc_make_pipe(p->in) == 0;
  if (ok) return 0;
  snprintf(msg, msz, "cannot create pipes: %s", strerror(errno));
  int fds[] = {p->devnull, p->out[0], p->out[1], p->err[0], p->err[1], p->in[0], p->in[1], p->exec[0], p->exec[1]};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) if (fds[i] >= 0) close(fds[i]);
  return -1;
}

/* A child that runs: its fields filled in (pid, t_spawn, name, ring and
 * logfd are set), linked into the registry, its pipes watched on the loop.
 * out_file/err_file: its own files (-1: the shared log); rd_out/rd_err/
 * wr_in: our ends of its pipes (-1: none). */
static void child_start(proc_state *ps, child *c, const spawn_opts *o, int out_file, int err_file,
                        int rd_out, int rd_err, int wr_in, const char *input, size_t input_len) {
  c->ps = ps;
  c->running = 1;
  proc_groups_add(c->pid);
  c->grace_ns = (int64_t)(o->grace * 1e9);
  c->ring_cap = (size_t)o->ring;
  c->in_fd = -1;
  c->out.c = c->err.c = c;
  c->out.fd = c->err.fd = -1;
  c->out.capture = o->omode == OUT_CAPTURE;
  c->err.capture = o->emode == OUT_CAPTURE;
  c->out.logfd = out_file >= 0 ? out_file : c->logfd;
  c->err.logfd = err_file >= 0 ? err_file : c->logfd;
  c->next = ps->children;
  if (c->next) c->next->prev = c;
  ps->children = c;
  if (rd_out >= 0) {
    c->out.fd = rd_out;
    br_fd_nonblock(c->out.fd);
    c->out.io.weak = 1;
    br_io_start(ps->loop, &c->out.io, c->out.fd, BR_READ, proc_on_stream, &c->out);
  }
  if (rd_err >= 0) {
    c->err.fd = rd_err;
    br_fd_nonblock(c->err.fd);
    c->err.io.weak = 1;
    br_io_start(ps->loop, &c->err.io, c->err.fd, BR_READ, proc_on_stream, &c->err);
  }
  if (wr_in >= 0) {
    c->in_fd = wr_in;
    br_fd_nonblock(c->in_fd);
    if (input) {
      c->input = malloc(input_len ? input_len : 1);
      if (c->input) memcpy(c->input, input, input_len);
      c->input_len = c->input ? input_len : 0;
      c->in_io.weak = 1;
      br_io_start(ps->loop, &c->in_io, c->in_fd, BR_WRITE, proc_on_stdin, c);
    }
  }
}

/* opts.argv checked: a list of at least one string. Pushes it; *argv_t is
 * its stack index. -> its length (raises on bad input). */
static int check_argv(lua_State *L, int opts, const char *fn, int *argv_t) {
  lua_getfield(L, opts, "argv");
  if (!lua_istable(L, -1)) return luaL_error(L, "%s: argv: expected a list of strings", fn);
  *argv_t = lua_gettop(L);
  int n = (int)luaL_len(L, *argv_t);
  if (n < 1) return luaL_error(L, "%s: argv: expected at least the program", fn);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, *argv_t, i);
    if (!lua_isstring(L, -1))
      return luaL_error(L, "%s: argv[%d]: expected a string, got %s", fn, i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return n;
}

/* A fork or exec that failed: the child reaped, our ends of its pipes
 * closed, and msg says why. */
static void spawn_failed(pid_t pid, int fork_errno, int exec_errno, const char *path, spawn_pipes *pp,
                         char *msg, size_t msgsz) {
  if (pid > 0) waitpid(pid, NULL, 0);
  int e = pid < 0 ? fork_errno : exec_errno;
  snprintf(msg, msgsz, "%s '%s': %s", pid < 0 ? "fork failed for" : "cannot execute", path, strerror(e));
  int fds[] = {pp->out[0], pp->err[0], pp->in[1]};
  for (size_t i = 0; i < 3; i++) if (fds[i] >= 0) close(fds[i]);
}

/* The parent's copies of the child's ends of the pipes, closed once it runs. */
static void close_child_ends(spawn_pipes *pp) {
  close(pp->devnull);
  if (pp->out[1] >= 0) close(pp->out[1]);
  if (pp->err[1] >= 0) close(pp->err[1]);
  if (pp->in[0] >= 0) close(pp->in[0]);
}

int proc_do_spawn(lua_State *L, int opts, const char *fn, int force_capture, const char *input, size_t input_len) {
  proc_state *ps = proc_get_state(L);
  char msg[600];
  spawn_spec sp;
  memset(&sp, 0, sizeof sp);

  int argv_t = 0;
  int n = check_argv(L, opts, fn, &argv_t);
  /* Create the handle closed first, then acquire: an error in between
   * leaves nothing behind (liolib's pattern). */
  phandle *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->c = NULL;
  luaL_setmetatable(L, PROC_MT);
  int hidx = lua_gettop(L);

  spawn_opts o;
  read_spawn_opts(L, opts, fn, force_capture, input != NULL, &o);
  int omode = o.omode, emode = o.emode, stdin_pipe = o.stdin_pipe;
  const char *cwd = o.cwd;

  read_env(L, opts, &sp, fn);
  if (build_spec(L, argv_t, n, cwd, &sp, msg, sizeof msg) != 0) {
    spec_free(&sp);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", fn, msg);
    return 2;
  }

  /* Files first: a log that cannot be opened is the caller's to fix. */
  int logfd = -1, ofile = -1, efile = -1;
  if (open_outputs(&o, &logfd, &ofile, &efile, msg, sizeof msg) != 0) goto fail_files;

  int piped_out = omode != OUT_INHERIT && omode != OUT_NULL;
  int piped_err = emode != OUT_INHERIT && emode != OUT_NULL;
  spawn_pipes pp;
  if (open_pipes(&pp, piped_out, piped_err, stdin_pipe, msg, sizeof msg) != 0) goto fail_files;
  int c_in = stdin_pipe ? pp.in[0] : pp.devnull;
  int c_out = piped_out ? pp.out[1] : omode == OUT_NULL ? pp.devnull : 1;
  int c_err = piped_err ? pp.err[1] : emode == OUT_NULL ? pp.devnull : 2;

  child *c = calloc(1, sizeof *c);
  char **ringv = calloc((size_t)o.ring, sizeof *ringv);
  if (!c || !ringv) {
    free(c);
    free(ringv);
    return luaL_error(L, "%s: out of memory", fn);
  }
  c->oom_before = br_platform_oom_kill_count();
  int64_t t0 = br_now();
  int exec_errno = 0, fork_errno = 0;
  pid_t pid = fork_exec(&sp, c_in, c_out, c_err, pp.exec, &fork_errno, &exec_errno);
  close_child_ends(&pp);
  if (pid < 0 || exec_errno) {
    spawn_failed(pid, fork_errno, exec_errno, sp.path, &pp, msg, sizeof msg);
    free(c);
    free(ringv);
    goto fail_files;
  }

  *c = (child){.pid = pid, .t_spawn = t0, .name = strdup(sp.argv[0]), .ring = ringv, .logfd = logfd,
                .oom_before = c->oom_before};
  child_start(ps, c, &o, ofile, efile, piped_out ? pp.out[0] : -1, piped_err ? pp.err[0] : -1,
              stdin_pipe ? pp.in[1] : -1, input, input_len);
  h->c = c;
  spec_free(&sp);
  /* it may have exited already; the SIGCHLD pipe will say so too */
  proc_reap_all(ps);
  lua_settop(L, hidx);
  lua_replace(L, argv_t);   /* leave only the handle, where argv was */
  return 1;

fail_files:
  if (logfd >= 0) close(logfd);
  if (ofile >= 0) close(ofile);
  if (efile >= 0) close(efile);
  spec_free(&sp);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", fn, msg);
  return 2;
}

/* proc.spawn{argv = {...}, env = {set = {}, unset = {}}, cwd, stdout, stderr,
 *            log = path, stdin = "pipe"|nil, grace = s, tail_lines = n}
 * -> Process, or nil, message when the program cannot be started. */
int proc_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  return proc_do_spawn(L, 1, "proc.spawn", 0, NULL, 0);
}
