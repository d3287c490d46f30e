/* bench.proc's waiting (proc.h): the waiters a child wakes (exit, line,
 * EOF), p:wait / p:stop / p:wait_for_line and proc.run yielding the task,
 * signals by name, and the exit explained (p:exit_info: code, signal,
 * whether benchrun sent it, OOM evidence). */
#include "proc.h"
#include "benchrun/sched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
void proc_notify(child *c, int ev) {
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

int proc_check_signal(lua_State *L, int arg) {
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

int process_wait(lua_State *L) {
  child *c = proc_check_child(L, 1);
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
      proc_send_group(c, SIGKILL);
      return br_wait_raise(L, &pw->w);
    }
    if (!c->running) { push_exit_info(L, c); return 1; }
    if (pw->timed_out) {
      if (pw->phase == 2) {
        lua_pushnil(L);
        lua_pushfstring(L, "proc.stop: %s (pid %d) is still there 5 s after SIGKILL", c->name, (int)c->pid);
        return 2;
      }
      proc_send_group(c, SIGKILL);
      pw->phase = 2;
      pw->deadline = br_now() + 5 * NS;
    }
    await_again(L, pw, ctx, stop_k);
  }
}

int process_stop(lua_State *L) {
  child *c = proc_check_child(L, 1);
  lua_Number grace = luaL_optnumber(L, 2, (lua_Number)c->grace_ns / 1e9);
  luaL_argcheck(L, grace >= 0, 2, "expected a grace period in seconds >= 0");
  lua_settop(L, 1);
  pwait *pw = new_wait(L, c, EV_EXIT, grace);
  pw->phase = 1;
  if (c->running) proc_send_group(c, grace > 0 ? SIGTERM : SIGKILL);
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

int process_wait_for_line(lua_State *L) {
  child *c = proc_check_child(L, 1);
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

/* p:exit_info() -> nil while running, else the exit table */
int process_exit_info(lua_State *L) {
  child *c = proc_check_child(L, 1);
  if (c->running) proc_reap_all(c->ps);
  if (c->running) return 0;
  push_exit_info(L, c);
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
      proc_send_group(c, SIGKILL);
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
          proc_push_tail(L, c, 5);
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
      proc_send_group(c, SIGKILL);
      pw->phase = 1;
      pw->deadline = br_now() + 5 * NS;
    }
    await_again(L, pw, ctx, run_k);
  }
}

/* proc.run{argv, timeout = s, input = string, env, cwd}
 * -> {code | signal, reason, stdout, stderr, duration}  (always, once it ran)
 *  | nil, message[, result] (could not start; timed out and killed) */
int proc_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_Number timeout = proc_opt_number(L, 1, "timeout", -1);
  lua_getfield(L, 1, "input");
  size_t ilen = 0;
  const char *input = lua_tolstring(L, -1, &ilen);
  lua_pop(L, 1);
  int r = proc_do_spawn(L, 1, "proc.run", 1, input, ilen);
  if (r == 2) return 2;
  child *c = proc_check_child(L, 2);
  c->keep_group = 1;
  pwait *pw = new_wait(L, c, EV_EXIT | EV_EOF, timeout);
  pw->extra = (int)(timeout * 1000);
  return run_k(L, LUA_YIELD, (lua_KContext)pw);
}
