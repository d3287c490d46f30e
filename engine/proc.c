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
 * proc.port_owners) and bench.http. */
#include "benchrun/loop.h"
#include "benchrun/runtime.h"
#include "benchrun/sched.h"
#include "platform.h"
#include "buf.h"
#include "class.h"
#include "sock.h"

#include <lauxlib.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STATE_MT "bench.proc.State"
#define PROC_MT "bench.proc.Process"
#define WAIT_MT "bench.proc.Wait"
#define PROBE_MT "bench.proc.Probe"

enum { RING_DEFAULT = 500, LINE_MAX_BYTES = 8192 };
enum { EV_EXIT = 1, EV_LINE = 2, EV_EOF = 4 };
static const int64_t NS = 1000000000;

typedef struct child child;
typedef struct proc_state proc_state;
typedef struct pwait pwait;

typedef struct {
  int fd;              /* read end, -1 once at EOF */
  br_io io;
  child *c;
  int capture;         /* keep the whole output */
  br_buf full;
  br_buf partial;         /* the line being received */
  int logfd;           /* -1, or a file this stream is appended to */
} stream;

struct child {
  proc_state *ps;
  child *prev, *next;          /* the registry */
  pid_t pid;
  int running;                 /* not yet reaped */
  int status;                  /* waitpid status once reaped */
  int64_t t_spawn, t_exit;
  uint64_t sent_mask;          /* signals benchrun sent (bit = signo) */
  int detached;                /* its handle was collected */
  int64_t grace_ns;            /* SIGTERM -> SIGKILL for implicit stops */
  long long oom_before;
  char *name;                  /* argv[0] as given, for messages */
  stream out, err;
  int logfd;                   /* shared log file (log = path), -1 if none */
  int in_fd;                   /* stdin pipe, -1 when closed */
  br_io in_io;
  char *input;
  size_t input_len, input_off;
  char **ring;                 /* recent lines, ring[seq % ring_cap] */
  size_t ring_cap;
  uint64_t nlines;             /* lines seen since spawn */
  pwait *waiters;
  br_timer kill_timer;         /* escalation for a detached child */
  char evidence[600];          /* OOM evidence (or a note), filled at reaping */
  int oom;                     /* the platform found evidence of an OOM kill */
  int keep_group;              /* proc.run: a daemon it started may stay */
  int64_t sync_deadline;       /* stop_all_sync's per-child schedule */
  int sync_killed;
};

struct proc_state {
  br_loop *loop;
  child *children;
  int sig_pipe[2];
  br_io sig_io;
  int slot;                    /* index in sigchld_fds */
};

struct pwait {
  br_wait w;                   /* first: cancel hooks cast back */
  pwait *prev, *next;
  child *c;
  int mask;                    /* EV_* that wake it */
  br_timer timer;
  int64_t deadline;            /* 0: none */
  int timed_out;
  int linked;
  int nested;                  /* see await_again */
  int phase;                   /* stop: 1 TERM sent, 2 KILL sent; run: likewise */
  int extra;
  br_loop *loop;
};

/* ---- the SIGCHLD self-pipe, shared by every state of the process ---- */

enum { MAX_STATES = 32 };
static volatile sig_atomic_t sigchld_fds[MAX_STATES];
static int sigchld_installed;

/* ---- the process groups of running children, for the hard exit path ----
 * A second SIGINT/SIGTERM/SIGHUP ends benchrun from a thread of its own,
 * while the Lua state may be busy: it cannot walk the children lists, so
 * every group is also kept here (lock-free slots) until its child is reaped. */

enum { MAX_GROUPS = 4096 };
static _Atomic int live_groups[MAX_GROUPS];

static void groups_add(pid_t pid) {
  for (int i = 0; i < MAX_GROUPS; i++) {
    int zero = 0;
    if (atomic_compare_exchange_strong(&live_groups[i], &zero, (int)pid)) return;
  }
}

static void groups_remove(pid_t pid) {
  for (int i = 0; i < MAX_GROUPS; i++) {
    int p = (int)pid;
    if (atomic_compare_exchange_strong(&live_groups[i], &p, 0)) return;
  }
}

int br_proc_kill_all(double grace_s) {
  int n = 0;
  for (int i = 0; i < MAX_GROUPS; i++) {
    int pid = atomic_load(&live_groups[i]);
    if (pid > 0 && (kill(-pid, SIGTERM) == 0 || kill(pid, SIGTERM) == 0)) n++;
  }
  if (!n) return 0;
  /* our children stay zombies until reaped, so wait for the grace and
   * SIGKILL whatever is left (harmless for a zombie) */
  int64_t end = br_now() + (int64_t)(grace_s * 1e9);
  for (;;) {
    int left = 0;
    for (int i = 0; i < MAX_GROUPS; i++) {
      int pid = atomic_load(&live_groups[i]);
      if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) left++;
    }
    if (!left || br_now() >= end) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < MAX_GROUPS; i++) {
    int pid = atomic_load(&live_groups[i]);
    if (pid > 0) { kill(-pid, SIGKILL); kill(pid, SIGKILL); }
  }
  return n;
}

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  for (int i = 0; i < MAX_STATES; i++) {
    int fd = sigchld_fds[i];
    if (fd > 0) {
      ssize_t r = write(fd, "c", 1);
      (void)r;   /* a full pipe already says "look" */
    }
  }
  errno = saved;
}

static int make_pipe(int fds[2]) {
  if (pipe(fds) != 0) return -1;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
}

/* ---- waiters ---- */

/* A linked waiter holds a loop reference: a child being waited for is
 * something the loop will hear about (SIGCHLD, EOF) even with no timer. */
static void waiter_unlink(pwait *pw) {
  if (!pw->linked) return;
  br_loop_unref(pw->loop);
  if (pw->prev) pw->prev->next = pw->next;
  else pw->c->waiters = pw->next;
  if (pw->next) pw->next->prev = pw->prev;
  pw->prev = pw->next = NULL;
  pw->linked = 0;
}

static void waiter_link(pwait *pw) {
  if (pw->linked) return;
  pw->prev = NULL;
  pw->next = pw->c->waiters;
  if (pw->next) pw->next->prev = pw;
  pw->c->waiters = pw;
  pw->linked = 1;
  br_loop_ref(pw->loop);
}

/* Wake the waiters interested in ev; each continuation re-checks its own
 * condition and waits again if it is not met. */
static void notify(child *c, int ev) {
  pwait *pw = c->waiters;
  while (pw) {
    pwait *next = pw->next;
    if (pw->mask & ev) {
      waiter_unlink(pw);
      br_timer_stop(pw->loop, &pw->timer);
      br_wait_done(&pw->w);
    }
    pw = next;
  }
}

static void waiter_timeout(br_loop *loop, br_timer *t) {
  pwait *pw = t->data;
  pw->timed_out = 1;
  waiter_unlink(pw);
  br_wait_done(&pw->w);
}

static void waiter_cancel(br_wait *w) {
  pwait *pw = (pwait *)w;
  waiter_unlink(pw);
  br_timer_stop(pw->loop, &pw->timer);
}

/* ---- output ---- */

static void ring_push(child *c, const char *line, size_t n) {
  if (n > LINE_MAX_BYTES) n = LINE_MAX_BYTES;
  if (n && line[n - 1] == '\r') n--;
  char *s = malloc(n + 1);
  if (!s) return;
  memcpy(s, line, n);
  s[n] = 0;
  size_t i = (size_t)(c->nlines % c->ring_cap);
  free(c->ring[i]);
  c->ring[i] = s;
  c->nlines++;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    p += w;
    n -= (size_t)w;
  }
}

/* Split what arrived into lines; the unfinished tail waits in partial. */
static int stream_consume(stream *s, const char *p, size_t n) {
  child *c = s->c;
  int lines = 0;
  if (s->capture) br_buf_add(&s->full, p, n);
  if (s->logfd >= 0) write_all(s->logfd, p, n);
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) {
      if (s->partial.len < LINE_MAX_BYTES) br_buf_add(&s->partial, p, n);
      break;
    }
    size_t k = (size_t)(nl - p);
    if (s->partial.len) {
      if (s->partial.len < LINE_MAX_BYTES) br_buf_add(&s->partial, p, k);
      ring_push(c, s->partial.p, s->partial.len);
      br_buf_clear(&s->partial);
    } else {
      ring_push(c, p, k);
    }
    lines++;
    p = nl + 1;
    n -= k + 1;
  }
  return lines;
}

static void stream_close(br_loop *loop, stream *s) {
  if (s->fd < 0) return;
  br_io_stop(loop, &s->io);
  close(s->fd);
  s->fd = -1;
}

/* Read what is there now (bounded, so a flood cannot starve the loop).
 * Returns EV_LINE / EV_EOF bits. */
static int stream_read(br_loop *loop, stream *s) {
  char chunk[65536];
  int ev = 0;
  for (int i = 0; i < 16 && s->fd >= 0; i++) {
    ssize_t n = read(s->fd, chunk, sizeof chunk);
    if (n > 0) {
      if (stream_consume(s, chunk, (size_t)n)) ev |= EV_LINE;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    /* EOF (or an error, which ends the stream the same way) */
    if (s->partial.len) {
      ring_push(s->c, s->partial.p, s->partial.len);
      br_buf_clear(&s->partial);
      ev |= EV_LINE;
    }
    stream_close(loop, s);
    ev |= EV_EOF;
  }
  return ev;
}

static void on_stream(br_loop *loop, br_io *io, int events) {
  stream *s = io->data;
  child *c = s->c;
  int ev = stream_read(loop, s);
  if (ev) notify(c, ev);
}

static void on_stdin(br_loop *loop, br_io *io, int events) {
  child *c = io->data;
  while (c->input_off < c->input_len) {
    ssize_t w = write(c->in_fd, c->input + c->input_off, c->input_len - c->input_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (w <= 0) break;   /* EPIPE: the child does not read its input */
    c->input_off += (size_t)w;
  }
  br_io_stop(loop, &c->in_io);
  close(c->in_fd);
  c->in_fd = -1;
}

/* ---- exits ---- */

static void child_free(child *c);

static void child_reaped(child *c, int status) {
  proc_state *ps = c->ps;
  c->running = 0;
  c->status = status;
  c->t_exit = br_now();
  groups_remove(c->pid);
  br_timer_stop(ps->loop, &c->kill_timer);
  /* The OOM killer sends SIGKILL; so do people and other tools. Only a
   * record of the kill (cgroup counter, kernel log) makes it an OOM. */
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !(c->sent_mask & (1ULL << SIGKILL)))
    c->oom = br_platform_oom_evidence((int)c->pid, c->oom_before, c->t_spawn, c->evidence, sizeof c->evidence);
  /* Whatever a server's group left behind goes with it: no orphans. */
  if (!c->keep_group) kill(-c->pid, SIGKILL);
  int ev = EV_EXIT | stream_read(ps->loop, &c->out) | stream_read(ps->loop, &c->err);
  notify(c, ev);
}

static void reap_all(proc_state *ps) {
  child *c = ps->children;
  while (c) {
    child *next = c->next;
    if (c->running) {
      int status;
      pid_t r = waitpid(c->pid, &status, WNOHANG);
      if (r == c->pid) child_reaped(c, status);
      else if (r < 0 && errno == ECHILD) child_reaped(c, 0);   /* reaped elsewhere */
    }
    if (!c->running && c->detached) child_free(c);
    c = next;
  }
}

static void on_sigchld_pipe(br_loop *loop, br_io *io, int events) {
  proc_state *ps = io->data;
  char tmp[256];
  while (read(ps->sig_pipe[0], tmp, sizeof tmp) > 0) {}
  reap_all(ps);
}

static void send_group(child *c, int sig) {
  if (!c->running) return;
  if (sig > 0 && sig < 64) c->sent_mask |= 1ULL << sig;
  if (kill(-c->pid, sig) != 0) kill(c->pid, sig);   /* not a group leader yet */
}

static void kill_timer_fire(br_loop *loop, br_timer *t) {
  child *c = t->data;
  send_group(c, SIGKILL);
}

/* Unlink from the registry and release everything; the child must be reaped. */
static void child_free(child *c) {
  proc_state *ps = c->ps;
  if (c->running) groups_remove(c->pid);
  if (c->prev) c->prev->next = c->next;
  else ps->children = c->next;
  if (c->next) c->next->prev = c->prev;
  stream_close(ps->loop, &c->out);
  stream_close(ps->loop, &c->err);
  if (c->in_fd >= 0) { br_io_stop(ps->loop, &c->in_io); close(c->in_fd); }
  br_timer_stop(ps->loop, &c->kill_timer);
  if (c->out.logfd >= 0 && c->out.logfd != c->logfd) close(c->out.logfd);
  if (c->err.logfd >= 0 && c->err.logfd != c->logfd) close(c->err.logfd);
  if (c->logfd >= 0) close(c->logfd);
  br_buf_free(&c->out.full);
  br_buf_free(&c->out.partial);
  br_buf_free(&c->err.full);
  br_buf_free(&c->err.partial);
  for (size_t i = 0; i < c->ring_cap; i++) free(c->ring[i]);
  free(c->ring);
  free(c->input);
  free(c->name);
  /* a waiter still linked belongs to a wait being torn down with the state */
  for (pwait *pw = c->waiters; pw; pw = pw->next) pw->linked = 0;
  free(c);
}

/* Stop every child now, without the loop: SIGTERM to every group, then
 * SIGKILL to each one still there after its own grace. Used when the state
 * closes (normal end, error, signals). */
static void stop_all_sync(proc_state *ps) {
  int64_t t0 = br_now();
  for (child *c = ps->children; c; c = c->next) {
    c->sync_deadline = t0 + c->grace_ns;
    c->sync_killed = 0;
    if (c->running && !(c->sent_mask & (1ULL << SIGTERM))) send_group(c, SIGTERM);
  }
  for (;;) {
    int left = 0;
    int64_t now = br_now();
    for (child *c = ps->children; c; c = c->next) {
      if (!c->running) continue;
      int status;
      pid_t r = waitpid(c->pid, &status, WNOHANG);
      if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->running = 0;
        c->status = status;
        groups_remove(c->pid);
        kill(-c->pid, SIGKILL);   /* the rest of its group */
        continue;
      }
      if (now >= c->sync_deadline) {
        if (c->sync_killed) {
          /* 5 s after SIGKILL (uninterruptible I/O): nothing more a
           * process can do; say so. */
          fprintf(stderr, "benchrun: child %d (%s) survived SIGKILL\n", (int)c->pid, c->name);
          c->running = 0;
          continue;
        }
        send_group(c, SIGKILL);
        c->sync_killed = 1;
        c->sync_deadline = now + 5 * NS;
      }
      left++;
    }
    if (!left) break;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static int state_gc(lua_State *L) {
  proc_state *ps = lua_touserdata(L, 1);
  if (!ps->loop) return 0;
  stop_all_sync(ps);
  while (ps->children) {
    ps->children->running = 0;
    child_free(ps->children);
  }
  if (ps->slot >= 0) sigchld_fds[ps->slot] = 0;
  br_io_stop(ps->loop, &ps->sig_io);
  close(ps->sig_pipe[0]);
  close(ps->sig_pipe[1]);
  ps->loop = NULL;
  return 0;
}

static const char STATE_KEY = 'P';

static proc_state *get_state(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  proc_state *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!ps || !ps->loop) luaL_error(L, "bench.proc: module state is closed");
  return ps;
}

static void state_open(lua_State *L) {
  proc_state *ps = lua_newuserdatauv(L, sizeof *ps, 0);
  memset(ps, 0, sizeof *ps);
  ps->slot = -1;
  ps->sig_pipe[0] = ps->sig_pipe[1] = -1;
  luaL_setmetatable(L, STATE_MT);
  if (make_pipe(ps->sig_pipe) != 0) luaL_error(L, "bench.proc: cannot create a pipe: %s", strerror(errno));
  br_fd_nonblock(ps->sig_pipe[0]);
  br_fd_nonblock(ps->sig_pipe[1]);
  ps->loop = br_sched_loop(L);
  for (int i = 0; i < MAX_STATES; i++)
    if (sigchld_fds[i] == 0) { sigchld_fds[i] = ps->sig_pipe[1]; ps->slot = i; break; }
  if (ps->slot < 0) luaL_error(L, "bench.proc: too many Lua states in one process");
  ps->sig_io.weak = 1;
  br_io_start(ps->loop, &ps->sig_io, ps->sig_pipe[0], BR_READ, on_sigchld_pipe, ps);
  if (!sigchld_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigchld_installed = 1;
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
}

/* ---- the Process handle ---- */

typedef struct { child *c; } phandle;

static child *check_child(lua_State *L, int i) {
  phandle *h = luaL_checkudata(L, i, PROC_MT);
  if (!h->c) luaL_error(L, "bench.proc: the process handle is closed");
  return h->c;
}

/* ---- signals by name ---- */

static const struct { const char *name; int sig; } signames[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP},
  {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
  {"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
  {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"XCPU", SIGXCPU},
  {"XFSZ", SIGXFSZ}, {"SYS", SIGSYS}, {NULL, 0}};

static const char *signame(int sig) {
  for (int i = 0; signames[i].name; i++)
    if (signames[i].sig == sig) return signames[i].name;
  return NULL;
}

static int check_signal(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer s = luaL_checkinteger(L, arg);
    luaL_argcheck(L, s > 0 && s < 64, arg, "expected a signal number 1..63");
    return (int)s;
  }
  const char *n = luaL_checkstring(L, arg);
  if (!strncmp(n, "SIG", 3)) n += 3;
  for (int i = 0; signames[i].name; i++)
    if (!strcmp(signames[i].name, n)) return signames[i].sig;
  return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, arg)));
}

/* Push the exit of a reaped child as a table:
 * {code, signal, signal_name, sent_by_benchrun, asked_to_stop, core_dumped, oom,
 *  evidence, note, reason, duration}. oom only with evidence of an OOM kill. */
static void push_exit_info(lua_State *L, child *c) {
  lua_createtable(L, 0, 8);
  char reason[800];
  int st = c->status;
  if (WIFEXITED(st)) {
    lua_pushinteger(L, WEXITSTATUS(st));
    lua_setfield(L, -2, "code");
    snprintf(reason, sizeof reason, "exited with code %d", WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char *nm = signame(sig);
    int sent = sig < 64 && (c->sent_mask & (1ULL << sig));
    lua_pushinteger(L, sig);
    lua_setfield(L, -2, "signal");
    if (nm) {
      lua_pushfstring(L, "SIG%s", nm);
      lua_setfield(L, -2, "signal_name");
    }
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent_by_benchrun");
#ifdef WCOREDUMP
    if (WCOREDUMP(st)) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "core_dumped");
    }
#endif
    if (c->oom) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "oom");
      lua_pushstring(L, c->evidence);
      lua_setfield(L, -2, "evidence");
      snprintf(reason, sizeof reason, "killed by SIGKILL (out of memory: %s)", c->evidence);
    } else if (sig == SIGKILL && !sent) {
      if (c->evidence[0]) {   /* what the platform can say without evidence (macOS) */
        lua_pushstring(L, c->evidence);
        lua_setfield(L, -2, "note");
      }
      snprintf(reason, sizeof reason, "killed by SIGKILL (not sent by benchrun; no record of an OOM kill%s%s)",
               c->evidence[0] ? "; " : "", c->evidence);
    } else if (!sent && c->sent_mask) {
      /* benchrun asked it to stop and it died of another signal on the way
       * out: llama-server aborts (SIGABRT, "terminate called without an
       * active exception") after a SIGTERM. Its shutdown, not a crash. */
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "asked_to_stop");
      if (nm) snprintf(reason, sizeof reason, "killed by SIG%s while stopping (after a signal sent by benchrun)", nm);
      else snprintf(reason, sizeof reason, "killed by signal %d while stopping (after a signal sent by benchrun)", sig);
    } else {
      snprintf(reason, sizeof reason, "killed by SIG%s%s", nm ? nm : "?", sent ? " (sent by benchrun)" : "");
      if (!nm) snprintf(reason, sizeof reason, "killed by signal %d%s", sig, sent ? " (sent by benchrun)" : "");
    }
  } else {
    snprintf(reason, sizeof reason, "ended (status %d)", st);
  }
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  lua_pushnumber(L, (lua_Number)(c->t_exit - c->t_spawn) / 1e9);
  lua_setfield(L, -2, "duration");
}

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

static lua_Number opt_number(lua_State *L, int t, const char *k, lua_Number dflt) {
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

static int open_log(const char *path) {
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* In the forked child: only async-signal-safe calls until exec. */
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
static int do_spawn(lua_State *L, int opts, const char *fn, int force_capture, const char *input, size_t input_len) {
  proc_state *ps = get_state(L);
  char msg[600];
  spawn_spec sp;
  memset(&sp, 0, sizeof sp);

  lua_getfield(L, opts, "argv");
  if (!lua_istable(L, -1)) return luaL_error(L, "%s: argv: expected a list of strings", fn);
  int argv_t = lua_gettop(L);
  int n = (int)luaL_len(L, argv_t);
  if (n < 1) return luaL_error(L, "%s: argv: expected at least the program", fn);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, argv_t, i);
    if (!lua_isstring(L, -1))
      return luaL_error(L, "%s: argv[%d]: expected a string, got %s", fn, i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  /* Create the handle closed first, then acquire: an error in between
   * leaves nothing behind (liolib's pattern). */
  phandle *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->c = NULL;
  luaL_setmetatable(L, PROC_MT);
  int hidx = lua_gettop(L);

  const char *outp, *errp;
  int omode = read_out_mode(L, opts, "stdout", &outp, OUT_PIPE);
  int emode = read_out_mode(L, opts, "stderr", &errp, OUT_PIPE);
  if (force_capture) {
    if (omode == OUT_PIPE) omode = OUT_CAPTURE;
    if (emode == OUT_PIPE) emode = OUT_CAPTURE;
  }
  lua_getfield(L, opts, "log");
  const char *logp = lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, opts, "cwd");
  const char *cwd = lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_Number grace = opt_number(L, opts, "grace", 10);
  lua_Number ring = opt_number(L, opts, "tail_lines", RING_DEFAULT);
  if (ring < 1 || ring > 1e6) return luaL_error(L, "%s: tail_lines: expected 1..1000000", fn);
  lua_getfield(L, opts, "stdin");
  int stdin_pipe = input != NULL || (lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "pipe"));
  lua_pop(L, 1);

  read_env(L, opts, &sp, fn);
  sp.nargv = n;
  sp.argv = calloc((size_t)n + 1, sizeof *sp.argv);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, argv_t, i);
    sp.argv[i - 1] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (cwd) sp.cwd = strdup(cwd);
  sp.path = resolve_path(&sp, sp.argv[0], msg, sizeof msg);
  if (!sp.path) {
    spec_free(&sp);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot start: %s", fn, msg);
    return 2;
  }
  if (cwd) {
    struct stat st;
    if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode)) {
      spec_free(&sp);
      lua_pushnil(L);
      lua_pushfstring(L, "%s: cwd '%s' is not a folder", fn, cwd);
      return 2;
    }
  }

  /* Files first: a log that cannot be opened is the caller's to fix. */
  int logfd = -1, ofile = -1, efile = -1;
  if (logp && (logfd = open_log(logp)) < 0) {
    snprintf(msg, sizeof msg, "cannot open log '%s': %s", logp, strerror(errno));
    goto fail_files;
  }
  if (omode == OUT_FILE && (ofile = open_log(outp)) < 0) {
    snprintf(msg, sizeof msg, "cannot open stdout file '%s': %s", outp, strerror(errno));
    goto fail_files;
  }
  if (emode == OUT_FILE && (efile = (errp && outp && !strcmp(errp, outp) && ofile >= 0) ? dup(ofile) : open_log(errp)) < 0) {
    snprintf(msg, sizeof msg, "cannot open stderr file '%s': %s", errp, strerror(errno));
    goto fail_files;
  }

  int p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_in[2] = {-1, -1}, p_exec[2] = {-1, -1};
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int ok = devnull >= 0 && make_pipe(p_exec) == 0;
  int piped_out = omode != OUT_INHERIT && omode != OUT_NULL;
  int piped_err = emode != OUT_INHERIT && emode != OUT_NULL;
  if (ok && piped_out) ok = make_pipe(p_out) == 0;
  if (ok && piped_err) ok = make_pipe(p_err) == 0;
  if (ok && stdin_pipe) ok = make_pipe(p_in) == 0;
  if (!ok) {
    snprintf(msg, sizeof msg, "cannot create pipes: %s", strerror(errno));
    int fds[] = {devnull, p_out[0], p_out[1], p_err[0], p_err[1], p_in[0], p_in[1], p_exec[0], p_exec[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) if (fds[i] >= 0) close(fds[i]);
    goto fail_files;
  }
  int c_in = stdin_pipe ? p_in[0] : devnull;
  int c_out = piped_out ? p_out[1] : omode == OUT_NULL ? devnull : 1;
  int c_err = piped_err ? p_err[1] : emode == OUT_NULL ? devnull : 2;

  child *c = calloc(1, sizeof *c);
  char **ringv = calloc((size_t)ring, sizeof *ringv);
  if (!c || !ringv) {
    free(c);
    free(ringv);
    return luaL_error(L, "%s: out of memory", fn);
  }
  c->oom_before = br_platform_oom_kill_count();
  pid_t parent = getpid();
  int64_t t0 = br_now();
  pid_t pid = fork();
  if (pid == 0) child_exec(&sp, c_in, c_out, c_err, p_exec[1], parent);
  int fork_errno = errno;
  close(p_exec[1]);
  if (pid > 0) setpgid(pid, pid);   /* also from here: no window where a group kill misses it */
  int exec_errno = 0;
  if (pid > 0) {
    ssize_t r;
    do r = read(p_exec[0], &exec_errno, sizeof exec_errno);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof exec_errno) exec_errno = 0;
  }
  close(p_exec[0]);
  close(devnull);
  if (p_out[1] >= 0) close(p_out[1]);
  if (p_err[1] >= 0) close(p_err[1]);
  if (p_in[0] >= 0) close(p_in[0]);
  if (pid < 0 || exec_errno) {
    if (pid > 0) waitpid(pid, NULL, 0);
    int e = pid < 0 ? fork_errno : exec_errno;
    snprintf(msg, sizeof msg, "%s '%s': %s", pid < 0 ? "fork failed for" : "cannot execute", sp.path, strerror(e));
    int fds[] = {p_out[0], p_err[0], p_in[1]};
    for (size_t i = 0; i < 3; i++) if (fds[i] >= 0) close(fds[i]);
    free(c);
    free(ringv);
    goto fail_files;
  }

  c->ps = ps;
  c->pid = pid;
  c->running = 1;
  groups_add(pid);
  c->t_spawn = t0;
  c->grace_ns = (int64_t)(grace * 1e9);
  c->name = strdup(sp.argv[0]);
  c->ring = ringv;
  c->ring_cap = (size_t)ring;
  c->logfd = logfd;
  c->in_fd = -1;
  c->out.c = c->err.c = c;
  c->out.fd = c->err.fd = -1;
  c->out.capture = omode == OUT_CAPTURE;
  c->err.capture = emode == OUT_CAPTURE;
  c->out.logfd = ofile >= 0 ? ofile : logfd;
  c->err.logfd = efile >= 0 ? efile : logfd;
  c->next = ps->children;
  if (c->next) c->next->prev = c;
  ps->children = c;
  h->c = c;
  if (piped_out) {
    c->out.fd = p_out[0];
    br_fd_nonblock(c->out.fd);
    c->out.io.weak = 1;
    br_io_start(ps->loop, &c->out.io, c->out.fd, BR_READ, on_stream, &c->out);
  }
  if (piped_err) {
    c->err.fd = p_err[0];
    br_fd_nonblock(c->err.fd);
    c->err.io.weak = 1;
    br_io_start(ps->loop, &c->err.io, c->err.fd, BR_READ, on_stream, &c->err);
  }
  if (stdin_pipe) {
    c->in_fd = p_in[1];
    br_fd_nonblock(c->in_fd);
    if (input) {
      c->input = malloc(input_len ? input_len : 1);
      if (c->input) memcpy(c->input, input, input_len);
      c->input_len = c->input ? input_len : 0;
      c->in_io.weak = 1;
      br_io_start(ps->loop, &c->in_io, c->in_fd, BR_WRITE, on_stdin, c);
    }
  }
  spec_free(&sp);
  /* it may have exited already; the SIGCHLD pipe will say so too */
  reap_all(ps);
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
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  return do_spawn(L, 1, "proc.spawn", 0, NULL, 0);
}

/* ---- waiting ---- */

static pwait *new_wait(lua_State *L, child *c, int mask, lua_Number timeout) {
  pwait *pw = lua_newuserdatauv(L, sizeof *pw, 0);
  memset(pw, 0, sizeof *pw);
  pw->c = c;
  pw->mask = mask;
  pw->loop = c->ps->loop;
  if (timeout >= 0) pw->deadline = br_now() + (int64_t)(timeout * 1e9);
  return pw;
}

/* Arm pw and wait; returns -1 when the caller should loop again (the main
 * thread ran the loop here), or does not return (the task yielded; k runs
 * later with status LUA_YIELD). A continuation called directly by br_await
 * with LUA_OK while nested returns 0 at once: that keeps C recursion flat. */
static int await_again(lua_State *L, pwait *pw, lua_KContext ctx, lua_KFunction k) {
  br_wait_init(&pw->w, L);
  pw->w.cancel = waiter_cancel;
  pw->timed_out = 0;
  if (pw->deadline) {
    if (pw->deadline <= br_now()) { pw->timed_out = 1; return -1; }
    br_timer_start(pw->loop, &pw->timer, pw->deadline, waiter_timeout, pw);
  }
  waiter_link(pw);
  pw->nested = 1;
  br_await(L, &pw->w, ctx, k);
  pw->nested = 0;
  return -1;
}

#define NESTED_RETURN(L, status, pw) \
  do { if ((status) == LUA_OK && (pw)->nested) return 0; (pw)->nested = 0; } while (0)

/* p:wait([timeout]) -> exit info table, or nil, "timeout" */
static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  pwait *pw = (pwait *)ctx;
  NESTED_RETURN(L, status, pw);
  for (;;) {
    if (br_wait_cancelled(&pw->w)) return br_wait_raise(L, &pw->w);
    if (!pw->c->running) { push_exit_info(L, pw->c); return 1; }
    if (pw->timed_out) {
      lua_pushnil(L);
      lua_pushfstring(L, "proc.wait: %s (pid %d) still running after the timeout", pw->c->name, (int)pw->c->pid);
      return 2;
    }
    await_again(L, pw, ctx, wait_k);
  }
}

static int p_wait(lua_State *L) {
  child *c = check_child(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  pwait *pw = new_wait(L, c, EV_EXIT, timeout);
  return wait_k(L, LUA_YIELD, (lua_KContext)pw);
}

/* p:stop([grace]) -> exit info: SIGTERM to the group, SIGKILL after grace. */
static int stop_k(lua_State *L, int status, lua_KContext ctx) {
  pwait *pw = (pwait *)ctx;
  NESTED_RETURN(L, status, pw);
  for (;;) {
    child *c = pw->c;
    if (br_wait_cancelled(&pw->w)) {
      /* Interrupted mid-stop: do not leave it running. */
      send_group(c, SIGKILL);
      return br_wait_raise(L, &pw->w);
    }
    if (!c->running) { push_exit_info(L, c); return 1; }
    if (pw->timed_out) {
      if (pw->phase == 2) {
        lua_pushnil(L);
        lua_pushfstring(L, "proc.stop: %s (pid %d) is still there 5 s after SIGKILL", c->name, (int)c->pid);
        return 2;
      }
      send_group(c, SIGKILL);
      pw->phase = 2;
      pw->deadline = br_now() + 5 * NS;
    }
    await_again(L, pw, ctx, stop_k);
  }
}

static int p_stop(lua_State *L) {
  child *c = check_child(L, 1);
  lua_Number grace = luaL_optnumber(L, 2, (lua_Number)c->grace_ns / 1e9);
  luaL_argcheck(L, grace >= 0, 2, "expected a grace period in seconds >= 0");
  lua_settop(L, 1);
  pwait *pw = new_wait(L, c, EV_EXIT, grace);
  pw->phase = 1;
  if (c->running) send_group(c, grace > 0 ? SIGTERM : SIGKILL);
  if (grace == 0) { pw->phase = 2; pw->deadline = br_now() + 5 * NS; }
  return stop_k(L, LUA_YIELD, (lua_KContext)pw);
}

/* p:wait_for_line(pattern[, timeout[, plain]]) -> line, or nil, message.
 * Lines already received (still in the ring) count. */
static int line_k(lua_State *L, int status, lua_KContext ctx) {
  pwait *pw = (pwait *)ctx;
  NESTED_RETURN(L, status, pw);
  for (;;) {
    child *c = pw->c;
    if (br_wait_cancelled(&pw->w)) return br_wait_raise(L, &pw->w);
    uint64_t first = c->nlines > c->ring_cap ? c->nlines - c->ring_cap : 0;
    uint64_t seq = (uint64_t)lua_tointeger(L, 5);
    if (seq < first) seq = first;
    for (; seq < c->nlines; seq++) {
      const char *line = c->ring[seq % c->ring_cap];
      lua_pushvalue(L, 4);            /* string.find */
      lua_pushstring(L, line);
      lua_pushvalue(L, 2);
      lua_pushinteger(L, 1);
      lua_pushboolean(L, lua_toboolean(L, 3));
      lua_call(L, 4, 1);
      int hit = !lua_isnil(L, -1);
      lua_pop(L, 1);
      if (hit) { lua_pushstring(L, line); return 1; }
    }
    lua_pushinteger(L, (lua_Integer)seq);
    lua_replace(L, 5);
    int at_end = c->out.fd < 0 && c->err.fd < 0 && !c->running;
    if (pw->timed_out || at_end) {
      lua_pushnil(L);
      if (at_end)
        lua_pushfstring(L, "proc.wait_for_line: %s (pid %d) ended without printing a line matching '%s'",
                        c->name, (int)c->pid, lua_tostring(L, 2));
      else
        lua_pushfstring(L, "proc.wait_for_line: no line matching '%s' from %s (pid %d) before the timeout",
                        lua_tostring(L, 2), c->name, (int)c->pid);
      return 2;
    }
    await_again(L, pw, ctx, line_k);
  }
}

static int p_wait_for_line(lua_State *L) {
  child *c = check_child(L, 1);
  luaL_checkstring(L, 2);
  lua_Number timeout = luaL_optnumber(L, 3, -1);
  int plain = lua_toboolean(L, 4);
  lua_settop(L, 2);
  lua_pushboolean(L, plain);                                    /* 3 */
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "find");
  lua_remove(L, -2);                                            /* 4: string.find */
  lua_pushinteger(L, 0);                                        /* 5: next seq */
  pwait *pw = new_wait(L, c, EV_LINE | EV_EOF | EV_EXIT, timeout);   /* 6 */
  return line_k(L, LUA_YIELD, (lua_KContext)pw);
}

/* ---- simple methods ---- */

static int p_alive(lua_State *L) {
  child *c = check_child(L, 1);
  if (c->running) reap_all(c->ps);
  lua_pushboolean(L, c->running);
  return 1;
}

static int p_signal(lua_State *L) {
  child *c = check_child(L, 1);
  int sig = check_signal(L, 2);
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

static void push_tail(lua_State *L, child *c, lua_Integer n) {
  uint64_t avail = c->nlines < c->ring_cap ? c->nlines : c->ring_cap;
  if (n < 0 || (uint64_t)n > avail) n = (lua_Integer)avail;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (uint64_t seq = c->nlines - (uint64_t)n; seq < c->nlines; seq++) {
    luaL_addstring(&b, c->ring[seq % c->ring_cap]);
    if (seq + 1 < c->nlines) luaL_addchar(&b, '\n');
  }
  /* an unfinished last line is output too */
  for (int i = 0; i < 2; i++) {
    stream *s = i ? &c->err : &c->out;
    if (s->partial.len) {
      if (n > 0) luaL_addchar(&b, '\n');
      luaL_addlstring(&b, s->partial.p, s->partial.len);
    }
  }
  luaL_pushresult(&b);
}

/* p:tail([n = 20]) -> the last n lines of stdout+stderr, as one string */
static int p_tail(lua_State *L) {
  child *c = check_child(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 20);
  if (c->running) reap_all(c->ps);
  /* read what is waiting now; waiters hear about it as from the loop */
  int ev = stream_read(c->ps->loop, &c->out) | stream_read(c->ps->loop, &c->err);
  if (ev) notify(c, ev);
  push_tail(L, c, n);
  return 1;
}

/* p:lines_since(seq) -> {lines...}, next_seq (lines still in the ring) */
static int p_lines_since(lua_State *L) {
  child *c = check_child(L, 1);
  lua_Integer from = luaL_optinteger(L, 2, 0);
  uint64_t first = c->nlines > c->ring_cap ? c->nlines - c->ring_cap : 0;
  uint64_t seq = from < 0 ? 0 : (uint64_t)from;
  if (seq < first) seq = first;
  lua_newtable(L);
  int i = 1;
  for (; seq < c->nlines; seq++) {
    lua_pushstring(L, c->ring[seq % c->ring_cap]);
    lua_rawseti(L, -2, i++);
  }
  lua_pushinteger(L, (lua_Integer)seq);
  return 2;
}

/* p:output() -> stdout, stderr captured so far (stdout = "capture") */
static int p_output(lua_State *L) {
  child *c = check_child(L, 1);
  lua_pushlstring(L, c->out.full.p ? c->out.full.p : "", c->out.full.len);
  lua_pushlstring(L, c->err.full.p ? c->err.full.p : "", c->err.full.len);
  return 2;
}

/* p:exit_info() -> nil while running, else the exit table */
static int p_exit_info(lua_State *L) {
  child *c = check_child(L, 1);
  if (c->running) reap_all(c->ps);
  if (c->running) return 0;
  push_exit_info(L, c);
  return 1;
}

/* p:write(data) for stdin = "pipe" (blocking write; closes with p:close_stdin()) */
static int p_write(lua_State *L) {
  child *c = check_child(L, 1);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  if (c->in_fd < 0) return luaL_error(L, "proc.write: %s was not started with stdin = \"pipe\"", c->name);
  while (n > 0) {
    ssize_t w = write(c->in_fd, d, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      continue;
    }
    if (w < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "proc.write: %s", strerror(errno));
      return 2;
    }
    d += w;
    n -= (size_t)w;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int p_close_stdin(lua_State *L) {
  child *c = check_child(L, 1);
  if (c->in_fd >= 0) {
    br_io_stop(c->ps->loop, &c->in_io);
    close(c->in_fd);
    c->in_fd = -1;
  }
  return 0;
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

/* Handle collected or closed without a stop: SIGTERM now, SIGKILL after the
 * grace, reaped by the loop (or at state close). Never blocks. */
static void detach(child *c) {
  if (!c || c->detached) return;
  c->detached = 1;
  if (c->running) {
    send_group(c, SIGTERM);
    br_timer_start(c->ps->loop, &c->kill_timer, br_now() + c->grace_ns, kill_timer_fire, c);
  } else {
    child_free(c);
  }
}

static int p_gc(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  proc_state *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (h->c && ps && ps->loop) detach(h->c);
  h->c = NULL;
  return 0;
}

/* <close>: stop and wait (yields inside a task). */
static int p_close(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  if (!h->c) return 0;
  if (!h->c->running) return 0;
  lua_settop(L, 1);
  return p_stop(L);
}

static int p_tostring(lua_State *L) {
  phandle *h = luaL_checkudata(L, 1, PROC_MT);
  if (!h->c) lua_pushliteral(L, "bench.proc.Process (closed)");
  else if (h->c->running) lua_pushfstring(L, "bench.proc.Process %d (%s, running)", (int)h->c->pid, h->c->name);
  else lua_pushfstring(L, "bench.proc.Process %d (%s, exited)", (int)h->c->pid, h->c->name);
  return 1;
}

/* ---- proc.run ---- */

/* ctx: the run wait; stack: 1 opts, 2 handle, 3 wait userdata */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  pwait *pw = (pwait *)ctx;
  NESTED_RETURN(L, status, pw);
  for (;;) {
    child *c = pw->c;
    if (br_wait_cancelled(&pw->w)) {
      send_group(c, SIGKILL);
      return br_wait_raise(L, &pw->w);
    }
    if (!c->running) {
      int eof = c->out.fd < 0 && c->err.fd < 0;
      /* A daemon it started may hold the pipes open: give the output 1 s
       * after the exit, then stop reading. */
      if (eof || pw->timed_out || br_now() - c->t_exit > NS) {
        push_exit_info(L, c);
        lua_pushlstring(L, c->out.full.p ? c->out.full.p : "", c->out.full.len);
        lua_setfield(L, -2, "stdout");
        lua_pushlstring(L, c->err.full.p ? c->err.full.p : "", c->err.full.len);
        lua_setfield(L, -2, "stderr");
        lua_pushinteger(L, c->t_exit - c->t_spawn);
        lua_setfield(L, -2, "duration_ns");
        if (pw->phase) {
          int res = lua_gettop(L);
          lua_pushboolean(L, 1);
          lua_setfield(L, res, "timed_out");
          push_tail(L, c, 5);
          lua_pushnil(L);
          lua_pushfstring(L, "proc.run: %s timed out after %f s (killed); last output:\n%s", c->name,
                          (double)pw->extra / 1000.0, lua_tostring(L, res + 1));
          lua_pushvalue(L, res);   /* the result table as a third value */
          return 3;
        }
        return 1;
      }
      pw->mask = EV_EOF;
      pw->deadline = c->t_exit + NS;
    } else if (pw->timed_out) {
      send_group(c, SIGKILL);
      pw->phase = 1;
      pw->deadline = br_now() + 5 * NS;
    }
    await_again(L, pw, ctx, run_k);
  }
}

/* proc.run{argv, timeout = s, input = string, env, cwd}
 * -> {code | signal, reason, stdout, stderr, duration}  (always, once it ran)
 *  | nil, message[, result] (could not start; timed out and killed) */
static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Number timeout = opt_number(L, 1, "timeout", -1);
  lua_getfield(L, 1, "input");
  size_t ilen = 0;
  const char *input = lua_tolstring(L, -1, &ilen);
  lua_pop(L, 1);
  int r = do_spawn(L, 1, "proc.run", 1, input, ilen);
  if (r == 2) return 2;
  child *c = check_child(L, 2);
  c->keep_group = 1;
  pwait *pw = new_wait(L, c, EV_EXIT | EV_EOF, timeout);
  pw->extra = (int)(timeout * 1000);
  return run_k(L, LUA_YIELD, (lua_KContext)pw);
}

/* ---- the port probe (proc.probe_port; proc.wait_ready is Lua, in
 * scripts/bench/proc/ready.lua, and asks HTTP through bench.http) ---- */

typedef struct {
  br_wait w;
  br_io io;
  br_timer timer;
  br_loop *loop;
  int fd;
  int timed_out;
  int err;
} probe;

static void probe_finish(probe *p) {
  br_io_stop(p->loop, &p->io);
  br_timer_stop(p->loop, &p->timer);
  br_wait_done(&p->w);
}

/* writable: the connect finished, one way or the other */
static void probe_io(br_loop *loop, br_io *io, int events) {
  probe *p = io->data;
  int e = 0;
  socklen_t len = sizeof e;
  getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &len);
  p->err = e;
  probe_finish(p);
}

static void probe_timeout(br_loop *loop, br_timer *t) {
  probe *p = t->data;
  p->timed_out = 1;
  br_io_stop(loop, &p->io);
  br_wait_done(&p->w);
}

static void probe_cancel(br_wait *w) {
  probe *p = (probe *)w;
  br_io_stop(p->loop, &p->io);
  br_timer_stop(p->loop, &p->timer);
}

static int probe_gc(lua_State *L) {
  probe *p = lua_touserdata(L, 1);
  if (p->fd >= 0) { close(p->fd); p->fd = -1; }
  return 0;
}

static int probe_k(lua_State *L, int status, lua_KContext ctx) {
  probe *p = (probe *)ctx;
  if (br_wait_cancelled(&p->w)) return br_wait_raise(L, &p->w);
  if (p->timed_out) { lua_pushnil(L); lua_pushliteral(L, "timed out"); return 2; }
  if (p->err) { lua_pushnil(L); lua_pushstring(L, strerror(p->err)); return 2; }
  lua_pushboolean(L, 1);
  return 1;
}

/* proc.probe_port(port[, host = "127.0.0.1"[, timeout = 1]]) -> true | nil, message */
static int l_probe_port(lua_State *L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  luaL_argcheck(L, port > 0 && port < 65536, 1, "expected a port 1..65535");
  const char *host = luaL_optstring(L, 2, "127.0.0.1");
  lua_Number timeout = luaL_optnumber(L, 3, 1);
  char ps[16];
  snprintf(ps, sizeof ps, "%d", (int)port);
  probe *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->fd = -1;
  luaL_setmetatable(L, PROBE_MT);
  p->loop = br_sched_loop(L);
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  /* localhost and literal addresses resolve without the network */
  int gai = getaddrinfo(host, ps, &hints, &ai);
  if (gai != 0 || !ai) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot resolve '%s': %s", host, gai_strerror(gai));
    return 2;
  }
  p->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  if (p->fd < 0) {
    freeaddrinfo(ai);
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  br_fd_nonblock(p->fd);
  int rc = connect(p->fd, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (rc != 0 && errno != EINPROGRESS) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  br_wait_init(&p->w, L);
  p->w.cancel = probe_cancel;
  br_io_start(p->loop, &p->io, p->fd, BR_WRITE, probe_io, p);
  br_timer_start(p->loop, &p->timer, br_now() + (int64_t)(timeout * 1e9), probe_timeout, p);
  return br_await(L, &p->w, (lua_KContext)p, probe_k);
}

/* proc.free_port([host]) -> a port the kernel says is free now */
static int l_free_port(lua_State *L) {
  const char *host = luaL_optstring(L, 1, "127.0.0.1");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return luaL_argerror(L, 1, "expected an IPv4 address");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) { lua_pushnil(L); lua_pushstring(L, strerror(errno)); return 2; }
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    close(fd);
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    return 2;
  }
  close(fd);
  lua_pushinteger(L, ntohs(a.sin_port));
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
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : check_signal(L, 2);
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
  proc_state *ps = get_state(L);
  reap_all(ps);
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

/* ---- who listens on a port ---- */

/* Push {pid, ppid, pgid, command} of pid; 0 (nothing pushed) when it is gone. */
static int push_process_info(lua_State *L, int pid) {
  int ppid = 0, pgid = 0;
  char cmd[1024];
  if (br_platform_proc_info(pid, &ppid, &pgid, cmd, sizeof cmd) != 0) return 0;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, ppid);
  lua_setfield(L, -2, "ppid");
  lua_pushinteger(L, pgid);
  lua_setfield(L, -2, "pgid");
  lua_pushstring(L, cmd);
  lua_setfield(L, -2, "command");
  return 1;
}

/* proc.process_info(pid) -> {pid, ppid, pgid, command} | nil, message */
static int l_process_info(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 0 && pid <= 0x7fffffff, 1, "expected a pid > 0");
  if (push_process_info(L, (int)pid)) return 1;
  lua_pushnil(L);
  lua_pushfstring(L, "proc.process_info: no process with pid %d (or it cannot be read)", (int)pid);
  return 2;
}

/* proc.port_owners(port) -> {owners = {{pid, ppid, pgid, command}...},
 * unowned = n} | nil, message where the platform cannot tell. */
static int l_port_owners(lua_State *L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  luaL_argcheck(L, port > 0 && port < 65536, 1, "expected a port 1..65535");
  int pids[64], unowned = 0;
  int n = br_platform_port_listeners((int)port, pids, 64, &unowned);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "proc.port_owners: this platform cannot tell which process listens on a port");
    return 2;
  }
  lua_createtable(L, 0, 2);
  lua_createtable(L, n, 0);
  int k = 1;
  for (int i = 0; i < n; i++)
    if (push_process_info(L, pids[i])) lua_rawseti(L, -2, k++);   /* a pid gone meanwhile is skipped */
  lua_setfield(L, -2, "owners");
  lua_pushinteger(L, unowned);
  lua_setfield(L, -2, "unowned");
  return 1;
}

int luaopen_bench_proc(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"wait", p_wait}, {"stop", p_stop}, {"alive", p_alive}, {"signal", p_signal},
    {"tail", p_tail}, {"lines_since", p_lines_since}, {"wait_for_line", p_wait_for_line},
    {"output", p_output}, {"exit_info", p_exit_info}, {"write", p_write},
    {"close_stdin", p_close_stdin}, {NULL, NULL}};
  static const luaL_Reg meta[] = {
    {"__index", p_index}, {"__gc", p_gc}, {"__close", p_close}, {"__tostring", p_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"run", l_run}, {"probe_port", l_probe_port},
    {"free_port", l_free_port}, {"pid_alive", l_pid_alive}, {"kill", l_kill},
    {"children", l_children}, {"port_owners", l_port_owners}, {"process_info", l_process_info},
    {NULL, NULL}};

  br_class(L, STATE_MT, (const luaL_Reg[]){{"__gc", state_gc}, {NULL, NULL}}, NULL);
  br_class(L, PROBE_MT, (const luaL_Reg[]){{"__gc", probe_gc}, {NULL, NULL}}, NULL);
  br_class(L, PROC_MT, meta, methods);
  lua_pop(L, 3);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  int have = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!have) state_open(L);

  luaL_newlib(L, funcs);
  /* the Lua half, in scripts/bench/proc/: exits classified, the port
   * checks, readiness (through bench.http) */
  br_runtime_extend(L, -1, "bench.proc.servers");
  br_runtime_extend(L, -1, "bench.proc.ready");
  return 1;
}
