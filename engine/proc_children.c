/* bench.proc's registry of children (proc.h): the SIGCHLD self-pipe shared
 * by every state, the process groups kept for the hard exit path
 * (br_proc_kill_all), reaping, stopping a detached or every child, and the
 * module's state (one per lua_State, in the registry). */
#include "proc.h"
#include "platform.h"
#include "class.h"
#include "sock.h"
#include "benchrun/runtime.h"
#include "benchrun/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

void proc_groups_add(pid_t pid) {
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

int proc_make_pipe(int fds[2]) {
  if (pipe(fds) != 0) return -1;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  return 0;
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
  int ev = EV_EXIT | proc_stream_read(ps->loop, &c->out) | proc_stream_read(ps->loop, &c->err);
  proc_notify(c, ev);
}

void proc_reap_all(proc_state *ps) {
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
  proc_reap_all(ps);
}

void proc_send_group(child *c, int sig) {
  if (!c->running) return;
  if (sig > 0 && sig < 64) c->sent_mask |= 1ULL << sig;
  if (kill(-c->pid, sig) != 0) kill(c->pid, sig);   /* not a group leader yet */
}

static void kill_timer_fire(br_loop *loop, br_timer *t) {
  child *c = t->data;
  proc_send_group(c, SIGKILL);
}

/* Unlink from the registry and release everything; the child must be reaped. */
static void child_free(child *c) {
  proc_state *ps = c->ps;
  if (c->running) groups_remove(c->pid);
  if (c->prev) c->prev->next = c->next;
  else ps->children = c->next;
  if (c->next) c->next->prev = c->prev;
  proc_stream_close(ps->loop, &c->out);
  proc_stream_close(ps->loop, &c->err);
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

/* Handle collected or closed without a stop: SIGTERM now, SIGKILL after the
 * grace, reaped by the loop (or at state close). Never blocks. */
void proc_detach(child *c) {
  if (!c || c->detached) return;
  c->detached = 1;
  if (c->running) {
    proc_send_group(c, SIGTERM);
    br_timer_start(c->ps->loop, &c->kill_timer, br_now() + c->grace_ns, kill_timer_fire, c);
  } else {
    child_free(c);
  }
}

/* Stop every child now, without the loop: SIGTERM to every group, then
 * SIGKILL to each one still there after its own grace. Used when the state
 * closes (normal end, error, signals). */
static void stop_all_sync(proc_state *ps) {
  int64_t t0 = br_now();
  for (child *c = ps->children; c; c = c->next) {
    c->sync_deadline = t0 + c->grace_ns;
    c->sync_killed = 0;
    if (c->running && !(c->sent_mask & (1ULL << SIGTERM))) proc_send_group(c, SIGTERM);
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
        proc_send_group(c, SIGKILL);
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

/* The state of L, or NULL before luaopen_bench_proc made it. */
proc_state *proc_state_peek(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  proc_state *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ps;
}

/* The state of L, open (raises once it is closed). */
proc_state *proc_get_state(lua_State *L) {
  proc_state *ps = proc_state_peek(L);
  if (!ps || !ps->loop) luaL_error(L, "bench.proc: module state is closed");
  return ps;
}

void proc_state_open(lua_State *L) {
  proc_state *ps = lua_newuserdatauv(L, sizeof *ps, 0);
  memset(ps, 0, sizeof *ps);
  ps->slot = -1;
  ps->sig_pipe[0] = ps->sig_pipe[1] = -1;
  br_class(L, STATE_MT, (const luaL_Reg[]){{"__gc", state_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  if (proc_make_pipe(ps->sig_pipe) != 0) luaL_error(L, "bench.proc: cannot create a pipe: %s", strerror(errno));
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
