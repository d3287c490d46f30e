/* Lua tasks (coroutines) scheduled by the event loop: the `bench` module
 * (spawn, wait, run, sleep) and the waiting protocol of sched.h.
 *
 * Long file: over ~700 lines on purpose: a task's states, the waits that
 * suspend it, cancellation and the interruption are one state machine
 * (a cancelled wait, a join and a Ctrl-C each move every part of it);
 * split, each piece would reach into the others' fields. */
#include "benchrun/sched.h"
#include "benchrun/runtime.h"
#include "class.h"

#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if LUA_VERSION_RELEASE_NUM >= 50406
#define close_thread(co, from) lua_closethread(co, from)
#else
#define close_thread(co, from) lua_resetthread(co)
#endif

#define TASK_MT "bench.Task"

enum { T_READY, T_RUNNING, T_WAITING, T_DONE, T_FAILED, T_CANCELLED };
static const char *const task_state_names[] = {"ready", "running", "waiting", "done", "failed", "cancelled"};

typedef struct multiwait multiwait;

typedef struct br_task {
  lua_State *co;
  int state;
  int nargs;              /* arguments waiting on co's stack for the first resume */
  int started;
  int cancel_requested;
  int in_ready;
  br_wait *wait;          /* the operation it is blocked on */
  multiwait **joiners;    /* bench.wait calls waiting for this task */
  int njoiners, capjoiners;
  int id;
} br_task;

typedef struct br_sched {
  br_loop *loop;
  lua_State *main;
  br_task **ready;        /* FIFO ring of runnable tasks */
  size_t rhead, rlen, rcap;
  br_task *current;       /* the task being resumed */
  volatile sig_atomic_t interrupted;
  volatile sig_atomic_t interrupt_handled;   /* a top level took it: hooks stop raising */
  int interrupt_seen;     /* waits have been cancelled for this interruption */
  int deadlocked;         /* a main-thread wait was cancelled: nothing could end it */
  int live;               /* tasks not finished */
  int unjoined_failures;  /* tasks that failed with nobody waiting for them */
  int next_id;
} br_sched;

static const char SCHED_KEY = 'S';   /* registry: the sched userdata */
static const char LIVE_KEY = 'L';    /* registry: {task userdata = true} for unfinished tasks */
static const char INTERRUPT_KEY = 'I';   /* registry: the interruption value */
static const char CANCEL_KEY = 'C';      /* registry: the cancellation value */

/* The scheduler pointer lives in the main thread's extra space, which Lua
 * copies into every new thread, so any coroutine finds it in O(1). */
static br_sched *sched_of(lua_State *L) { return *(br_sched **)lua_getextraspace(L); }

br_loop *br_sched_loop(lua_State *L) { return sched_of(L)->loop; }

/* ---- ready queue ---- */

static void make_ready(br_sched *s, br_task *t) {
  if (t->in_ready || t->state == T_RUNNING) return;
  if (t->state >= T_DONE) return;
  if (s->rlen == s->rcap) {
    size_t cap = s->rcap ? s->rcap * 2 : 64;
    br_task **r = malloc(cap * sizeof *r);
    if (!r) abort();
    for (size_t i = 0; i < s->rlen; i++) r[i] = s->ready[(s->rhead + i) % s->rcap];
    free(s->ready);
    s->ready = r;
    s->rcap = cap;
    s->rhead = 0;
  }
  s->ready[(s->rhead + s->rlen++) % s->rcap] = t;
  t->in_ready = 1;
  t->state = T_READY;
}

static br_task *pop_ready(br_sched *s) {
  if (!s->rlen) return NULL;
  br_task *t = s->ready[s->rhead];
  s->rhead = (s->rhead + 1) % s->rcap;
  s->rlen--;
  t->in_ready = 0;
  return t;
}

/* ---- waits ---- */

void br_wait_init(br_wait *w, lua_State *L) {
  memset(w, 0, sizeof *w);
  w->L = L;
}

void br_wait_done(br_wait *w) {
  if (w->state == BR_WAIT_IDLE) {   /* finished before br_await was reached */
    w->state = BR_WAIT_DONE;
    return;
  }
  if (w->state != BR_WAIT_PENDING) return;
  w->state = BR_WAIT_DONE;
  if (w->task) {
    w->task->wait = NULL;
    make_ready(sched_of(w->L), w->task);
  }
}

static void cancel_wait(br_wait *w) {
  if (w->state != BR_WAIT_PENDING) return;
  w->state = BR_WAIT_CANCELLED;
  if (w->cancel) w->cancel(w);
}

int br_wait_raise(lua_State *L, br_wait *w) {
  br_sched *s = sched_of(L);
  if (s->deadlocked && !w->task) {
    s->deadlocked = 0;
    return luaL_error(L, "deadlock: this wait can never finish (%d task(s) blocked; no timer, I/O or "
                      "reference left in the event loop)", s->live);
  }
  if (s->interrupted) {
    br_push_interrupt(L);
    return lua_error(L);
  }
  br_push_cancel(L);
  return lua_error(L);
}

static void sched_step(br_sched *s, int block);

int br_await(lua_State *L, br_wait *w, lua_KContext ctx, lua_KFunction k) {
  br_sched *s = sched_of(L);
  w->L = L;
  if (w->state == BR_WAIT_DONE) return k(L, LUA_OK, ctx);   /* completed synchronously */
  w->state = BR_WAIT_PENDING;
  br_task *t = s->current;
  if (t && t->co == L && lua_isyieldable(L)) {
    w->task = t;
    if (t->cancel_requested || s->interrupted) {
      cancel_wait(w);
      return k(L, LUA_OK, ctx);
    }
    t->wait = w;
    return lua_yieldk(L, 0, ctx, k);
  }
  /* Main thread (or a context that cannot yield): run the loop here. */
  w->task = NULL;
  s->deadlocked = 0;
  while (w->state == BR_WAIT_PENDING) {
    if (s->interrupted) {
      /* Cancel every task and let them unwind now, so their <close>
       * handlers run before the interruption reaches the caller. */
      if (!s->interrupt_seen) {
        s->interrupt_seen = 1;
        br_sched_cancel_all(s->main);
      }
      for (int i = 0; i < 100 && s->rlen; i++) sched_step(s, 0);
      cancel_wait(w);
      break;
    }
    /* Nothing runnable and nothing in the loop: blocking would hang forever
     * (tasks waiting for each other). Whatever can still end a wait keeps
     * the loop alive: a timer, a watcher, or br_loop_ref. */
    if (s->rlen == 0 && !br_loop_alive(s->loop)) { s->deadlocked = 1; cancel_wait(w); break; }
    sched_step(s, 1);
  }
  return k(L, LUA_OK, ctx);
}

void br_sched_interrupt(lua_State *L) {
  br_sched *s = sched_of(L);
  s->interrupted = 1;
  br_loop_wakeup(s->loop);
}

int br_sched_interrupted(lua_State *L) { return sched_of(L)->interrupted; }

lua_State *br_sched_running_thread(lua_State *L) {
  br_task *t = sched_of(L)->current;
  return t ? t->co : NULL;
}

void br_sched_clear_interrupt(lua_State *L) {
  br_sched *s = sched_of(L);
  s->interrupted = 0;
  s->interrupt_handled = 0;
  s->interrupt_seen = 0;
}

/* ---- the interruption value and its hook ---- */

void br_push_interrupt(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &INTERRUPT_KEY); }
void br_push_cancel(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &CANCEL_KEY); }

/* Whether the value at idx is the registry's value under key. */
static int is_registry_value(lua_State *L, int idx, const char *key) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
  int r = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return r;
}

int br_is_cancel(lua_State *L, int idx) { return is_registry_value(L, idx, &CANCEL_KEY); }
int br_is_interrupt(lua_State *L, int idx) { return is_registry_value(L, idx, &INTERRUPT_KEY); }

int br_sched_interrupt_pending(lua_State *L) {
  br_sched *s = sched_of(L);
  return s->interrupted && !s->interrupt_handled;
}

void br_sched_interrupt_handled(lua_State *L) {
  sched_of(L)->interrupt_handled = 1;
  lua_sethook(L, NULL, 0, 0);
}

/* Raised again at every instruction while the interruption is pending:
 * code that catches it (pcall, a check expression) cannot go on. Once a
 * top level handled it, the hook removes itself. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (!br_sched_interrupt_pending(L)) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  br_push_interrupt(L);
  lua_error(L);
}

void br_sched_arm(lua_State *L) {
  lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int interrupt_tostring(lua_State *L) {
  lua_pushliteral(L, "interrupted");
  return 1;
}

static int cancel_tostring(lua_State *L) {
  lua_pushliteral(L, "cancelled");
  return 1;
}

/* "stopped: " .. err still reads as before the value existed */
static int interrupt_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

/* A unique value in the registry under key: an empty userdata whose
 * tostring is its word and that concatenates as text. Errors that must not
 * be told by their words (the interruption, a cancellation) are raised as
 * these values. */
static void make_signal_value(lua_State *L, const char *key, const char *name, lua_CFunction tostring) {
  lua_newuserdatauv(L, 0, 0);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, interrupt_concat);
  lua_setfield(L, -2, "__concat");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* bench.is_interrupt(v) -> true when v is the interruption */
static int l_is_interrupt(lua_State *L) {
  lua_pushboolean(L, br_is_interrupt(L, 1));
  return 1;
}

/* bench.is_cancel(v) -> true when v is the cancellation (task:cancel(), a
 * cancelled wait): a value, so an error whose words say "cancelled" or
 * "interrupted" is still a failure */
static int l_is_cancel(lua_State *L) {
  lua_pushboolean(L, br_is_cancel(L, 1));
  return 1;
}

/* bench.xpcall_top(f, msgh, ...): xpcall for a top level (the plan
 * runner's). An interruption that reaches it is handled there: msgh is not
 * called for it, the hooks stop raising (the caller's clean-up runs), and it
 * returns false, bench.interrupt. Waits stay cancelled until the process
 * ends. Any error while a signal is pending counts as the interruption. */
static int top_msgh(lua_State *L) {
  if (br_is_interrupt(L, 1) || br_sched_interrupt_pending(L)) {
    br_sched_interrupt_handled(L);
    br_push_interrupt(L);
    return 1;
  }
  if (lua_isnil(L, lua_upvalueindex(1))) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

static int xpcall_top_k(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int l_xpcall_top(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (n < 2) { lua_settop(L, 2); n = 2; }
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, top_msgh, 1);
  lua_replace(L, 2);                 /* 1 f, 2 msgh, 3.. args */
  lua_pushboolean(L, 1);             /* the first result on success */
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);               /* 1 f, 2 msgh, 3 true, 4 f, 5.. args */
  int st = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_top_k);
  return xpcall_top_k(L, st, 2);
}

/* ---- tasks ---- */

static br_task *check_task(lua_State *L, int i) { return luaL_checkudata(L, i, TASK_MT); }

struct multiwait {
  br_wait w;
  int pending;
  int failed;
  int fail_fast;
};

static void remove_joiner(br_task *t, multiwait *mw) {
  for (int i = 0; i < t->njoiners; i++)
    if (t->joiners[i] == mw) { t->joiners[i] = t->joiners[--t->njoiners]; return; }
}

static void task_finished(br_sched *s, br_task *t, int state) {
  t->state = state;
  s->live--;
  for (int i = 0; i < t->njoiners; i++) {
    multiwait *mw = t->joiners[i];
    mw->pending--;
    if (state != T_DONE) mw->failed++;
    if (mw->pending == 0 || (mw->fail_fast && mw->failed)) br_wait_done(&mw->w);
  }
  free(t->joiners);
  t->joiners = NULL;
  t->njoiners = t->capjoiners = 0;
}

/* Resume t once. Results or the error (with traceback) go into the task's
 * second user value; the finished task leaves the live set. */
static void task_resume(br_sched *s, br_task *t) {
  lua_State *L = s->main;
  int nres = 0;
  int nargs = t->started ? 0 : t->nargs;
  int st;
  if (!t->started && t->cancel_requested) {
    /* cancelled before it ever ran: its body must not run at all */
    t->started = 1;
    lua_settop(t->co, 0);
    br_push_cancel(t->co);
    st = LUA_ERRRUN;
  } else {
    t->started = 1;
    t->state = T_RUNNING;
    br_task *prev = s->current;
    s->current = t;
    if (br_sched_interrupt_pending(L)) br_sched_arm(t->co);   /* a busy task stops too */
    st = lua_resume(t->co, L, nargs, &nres);
    s->current = prev;
  }
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    t->state = T_WAITING;
    if (!t->wait) make_ready(s, t);   /* a plain coroutine.yield(): run again later */
    return;
  }
  /* Find the userdata: it is the key in the live table whose task is t. */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  lua_pushlightuserdata(L, t);
  lua_rawget(L, -2);                 /* live[t] = userdata */
  int ud = lua_gettop(L);
  if (st == LUA_OK) {
    lua_createtable(L, nres, 1);
    lua_xmove(t->co, L, nres);
    for (int i = nres; i >= 1; i--) lua_rawseti(L, ud + 1, i);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    lua_setiuservalue(L, ud, 2);
    task_finished(s, t, T_DONE);
  } else {
    const char *msg = lua_tostring(t->co, -1);
    int cancelled = br_is_cancel(t->co, -1);
    int interrupted = br_is_interrupt(t->co, -1);
    /* an error value (a table: bench.errors) is kept as it is, so its kind
     * reaches whoever joins the task; a message gets the task's traceback */
    int is_value = !msg && !cancelled && !interrupted && !lua_isnil(t->co, -1);
    if (interrupted) br_push_interrupt(L);   /* the value itself: join raises it again */
    else if (cancelled) br_push_cancel(L);
    else if (is_value) { lua_pushvalue(t->co, -1); lua_xmove(t->co, L, 1); }
    else luaL_traceback(L, t->co, msg ? msg : luaL_typename(t->co, -1), 0);
    lua_setiuservalue(L, ud, 2);
    int njoin = t->njoiners;
    task_finished(s, t, cancelled || interrupted ? T_CANCELLED : T_FAILED);
    if (!cancelled && !interrupted && njoin == 0) {
      lua_getiuservalue(L, ud, 2);
      if (is_value) luaL_traceback(L, t->co, luaL_tolstring(L, -1, NULL), 0);
      fprintf(stderr, "benchrun: task %d failed: %s\n", t->id, lua_tostring(L, -1));
      s->unjoined_failures++;
      lua_pop(L, is_value ? 3 : 1);
    }
  }
  lua_sethook(t->co, NULL, 0, 0);    /* its <close> handlers run, interrupted or not */
  close_thread(t->co, L);            /* close pending to-be-closed variables */
  lua_pushlightuserdata(L, t);
  lua_pushnil(L);
  lua_rawset(L, ud - 1);             /* live[t] = nil */
  lua_settop(L, ud - 2);
}

/* How long tasks run before ready I/O is serviced (see sched_step): short,
 * since an answer read there sends its chained next request at once (a
 * closed loop's restarts), and a poll that finds nothing costs ~1 µs. */
enum { SLICE_NS = 100000 };

static void sched_step(br_sched *s, int block) {
  if (s->interrupted && !s->interrupt_seen) {
    s->interrupt_seen = 1;
    br_sched_cancel_all(s->main);
  }
  /* Run the tasks that are ready now; ones made ready meanwhile wait for the
   * next step, so a busy task cannot starve the loop. Between two of them
   * ready I/O is serviced once a slice has passed: a step of a thousand
   * tasks (a thousand requests started together, a thousand slow on_record
   * callbacks) can outlast a server's time to the first token, and a
   * socket left that long holds several events when it is read, which
   * Linux stamps with the last one's arrival (the first token looks late
   * by the gaps between them). */
  size_t n = s->rlen;
  int64_t polled = n > 1 ? br_now() : 0;
  for (size_t i = 0; i < n; i++) {
    br_task *t = pop_ready(s);
    if (!t) break;
    task_resume(s, t);
    if (i + 1 < n && br_now() - polled >= SLICE_NS) {
      br_loop_run_once(s->loop, 0);
      polled = br_now();
    }
  }
  /* Poll without blocking when tasks ran: one of them may have finished
   * what the caller waits for. */
  int64_t timeout = (!block || s->rlen || n) ? 0 : -1;
  br_loop_run_once(s->loop, timeout);
}

void br_sched_cancel_all(lua_State *L) {
  br_sched *s = sched_of(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    br_task *t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t->state >= T_DONE) continue;
    t->cancel_requested = 1;
    if (t->wait) {
      br_wait *w = t->wait;
      t->wait = NULL;
      cancel_wait(w);
      make_ready(s, t);
    } else if (t->state != T_RUNNING && !t->started) {
      make_ready(s, t);
    }
  }
  lua_pop(L, 1);
}

int br_sched_drain(lua_State *L) {
  br_sched *s = sched_of(L);
  while (s->live > 0) {
    if (s->interrupted && s->interrupt_seen && s->rlen == 0 && !br_loop_alive(s->loop)) break;
    if (s->rlen == 0 && !br_loop_alive(s->loop) && !s->interrupted) {
      lua_pushfstring(L, "%d task(s) are waiting for something that cannot happen (deadlock)", s->live);
      return -1;
    }
    sched_step(s, 1);
  }
  if (s->interrupted) {
    br_push_interrupt(L);
    return -1;
  }
  return 0;
}

/* bench.spawn(fn, ...) -> task */
static int l_spawn(lua_State *L) {
  br_sched *s = sched_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  br_task *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, TASK_MT);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);       /* the thread stays alive with the task */
  t->co = co;
  t->id = ++s->next_id;
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  for (int i = 2; i <= nargs + 1; i++) lua_pushvalue(L, i);
  lua_xmove(L, co, nargs);
  t->nargs = nargs;
  /* live[t] = userdata keeps unfinished tasks from being collected */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  s->live++;
  t->state = T_WAITING;
  make_ready(s, t);
  return 1;
}

static void multiwait_cancel(br_wait *w) { (void)w; }

static int wait_k(lua_State *L, int status, lua_KContext ctx);

/* Collect the tasks of bench.wait(t1, t2, ...) or bench.wait({t1, t2}, opts)
 * into a table at the top of the stack. */
static int collect_tasks(lua_State *L, int *fail_fast) {
  *fail_fast = 0;
  if (lua_istable(L, 1) && !luaL_testudata(L, 1, TASK_MT)) {
    if (lua_istable(L, 2)) {
      lua_getfield(L, 2, "fail_fast");
      *fail_fast = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
  } else {
    int n = lua_gettop(L);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
      check_task(L, i);
      lua_pushvalue(L, i);
      lua_rawseti(L, -2, i);
    }
  }
  return lua_gettop(L);
}

/* bench.wait(t1, t2, ...) or bench.wait({tasks}, {fail_fast = true}):
 * wait for every task; -> true, or false, first error (with traceback).
 * With fail_fast, the first failure cancels the rest. */
static int l_wait(lua_State *L) {
  int fail_fast;
  int list = collect_tasks(L, &fail_fast);
  lua_Integer n = luaL_len(L, list);
  multiwait *mw = lua_newuserdatauv(L, sizeof *mw, 0);
  memset(mw, 0, sizeof *mw);
  br_wait_init(&mw->w, L);
  mw->w.cancel = multiwait_cancel;
  mw->fail_fast = fail_fast;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    br_task *t = check_task(L, -1);
    lua_pop(L, 1);
    if (t->state >= T_DONE) { if (t->state != T_DONE) mw->failed++; continue; }
    if (t->co == L) return luaL_error(L, "bench.wait: a task cannot wait for itself");
    if (t->njoiners == t->capjoiners) {
      int cap = t->capjoiners ? t->capjoiners * 2 : 2;
      multiwait **j = realloc(t->joiners, cap * sizeof *j);
      if (!j) return luaL_error(L, "bench.wait: out of memory");
      t->joiners = j;
      t->capjoiners = cap;
    }
    t->joiners[t->njoiners++] = mw;
    mw->pending++;
  }
  if (mw->pending == 0 || (mw->fail_fast && mw->failed)) {
    mw->w.state = BR_WAIT_DONE;
    return wait_k(L, LUA_OK, (lua_KContext)list);
  }
  return br_await(L, &mw->w, (lua_KContext)list, wait_k);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  int list = (int)ctx;
  multiwait *mw = lua_touserdata(L, list + 1);
  lua_Integer n = luaL_len(L, list);
  int first_error = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    br_task *t = lua_touserdata(L, -1);
    remove_joiner(t, mw);
    if (mw->fail_fast && mw->failed && t->state < T_DONE) {
      t->cancel_requested = 1;
      if (t->wait) { br_wait *w = t->wait; t->wait = NULL; cancel_wait(w); }
      make_ready(sched_of(L), t);
    }
    if ((t->state == T_FAILED || t->state == T_CANCELLED) && !first_error) first_error = lua_gettop(L);
    else lua_pop(L, 1);
  }
  if (br_wait_cancelled(&mw->w)) return br_wait_raise(L, &mw->w);
  if (!first_error) { lua_pushboolean(L, 1); return 1; }
  lua_pushboolean(L, 0);
  lua_getiuservalue(L, first_error, 2);
  return 2;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  br_task *t = lua_touserdata(L, 1);
  if (t->state < T_DONE) {   /* the wait was cancelled */
    if (sched_of(L)->interrupted) { br_push_interrupt(L); return lua_error(L); }
    br_push_cancel(L);
    return lua_error(L);
  }
  lua_getiuservalue(L, 1, 2);
  if (t->state != T_DONE) return lua_error(L);
  int res = lua_gettop(L);
  lua_getfield(L, res, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, res, i);
  return n;
}

/* task:join() -> the task's results, or raises its error */
static int task_join(lua_State *L) {
  check_task(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, l_wait);
  lua_pushvalue(L, 1);
  lua_callk(L, 1, 0, 0, join_k);
  return join_k(L, LUA_OK, 0);
}

/* bench.run(fn, ...) -> fn's results, running the loop until it ends */
static int l_run(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushcfunction(L, l_spawn);
  lua_insert(L, 1);
  lua_call(L, n, 1);
  lua_pushcfunction(L, task_join);
  lua_insert(L, 1);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int task_cancel(lua_State *L) {
  br_task *t = check_task(L, 1);
  br_sched *s = sched_of(L);
  if (t->state >= T_DONE) return 0;
  t->cancel_requested = 1;
  if (t->co == L) { br_push_cancel(L); return lua_error(L); }
  if (t->wait) { br_wait *w = t->wait; t->wait = NULL; cancel_wait(w); }
  make_ready(s, t);
  return 0;
}

static int task_status(lua_State *L) {
  br_task *t = check_task(L, 1);
  lua_pushstring(L, task_state_names[t->state]);
  return 1;
}

/* task:result() -> true, results...  |  false, error */
static int task_result(lua_State *L) {
  br_task *t = check_task(L, 1);
  if (t->state < T_DONE) { lua_pushnil(L); lua_pushstring(L, "not finished"); return 2; }
  lua_settop(L, 1);
  lua_pushboolean(L, t->state == T_DONE);
  lua_getiuservalue(L, 1, 2);
  if (t->state != T_DONE) return 2;
  lua_getfield(L, 3, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, 3, i);
  lua_remove(L, 3);
  return n + 1;
}

static int task_tostring(lua_State *L) {
  br_task *t = check_task(L, 1);
  lua_pushfstring(L, "bench.Task %d (%s)", t->id, task_state_names[t->state]);
  return 1;
}

static int task_gc(lua_State *L) {
  br_task *t = check_task(L, 1);
  free(t->joiners);
  t->joiners = NULL;
  return 0;
}

/* ---- the scheduler object ---- */

static int sched_gc(lua_State *L) {
  br_sched *s = lua_touserdata(L, 1);
  free(s->ready);
  s->ready = NULL;
  if (s->loop) br_loop_free(s->loop);
  s->loop = NULL;
  return 0;
}

/* Create the scheduler for a new state; called by the runtime before any
 * module is opened. */
int br_sched_open(lua_State *L) {
  br_sched *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->loop = br_loop_new();
  if (!s->loop) return luaL_error(L, "cannot create the event loop");
  s->main = L;
  br_class(L, "bench.Scheduler", (const luaL_Reg[]){{"__gc", sched_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
  *(br_sched **)lua_getextraspace(L) = s;
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &LIVE_KEY);
  make_signal_value(L, &INTERRUPT_KEY, "bench.Interrupt", interrupt_tostring);
  make_signal_value(L, &CANCEL_KEY, "bench.Cancel", cancel_tostring);
  return 0;
}

int br_sched_live(lua_State *L) { return sched_of(L)->live; }

int br_sched_take_failures(lua_State *L) {
  br_sched *s = sched_of(L);
  int n = s->unjoined_failures;
  s->unjoined_failures = 0;
  return n;
}

static int l_running(lua_State *L) {
  br_sched *s = sched_of(L);
  lua_pushinteger(L, s->live);
  return 1;
}

int luaopen_bench(lua_State *L) {
  static const luaL_Reg task_methods[] = {
    {"join", task_join}, {"cancel", task_cancel}, {"status", task_status},
    {"result", task_result}, {NULL, NULL}};
  static const luaL_Reg task_meta[] = {
    {"__tostring", task_tostring}, {"__gc", task_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"spawn", l_spawn}, {"wait", l_wait}, {"run", l_run}, {"sleep", br_clock_sleep},
    {"tasks", l_running}, {"is_interrupt", l_is_interrupt}, {"is_cancel", l_is_cancel},
    {"xpcall_top", l_xpcall_top}, {NULL, NULL}};
  br_class(L, TASK_MT, task_meta, task_methods);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  br_push_interrupt(L);
  lua_setfield(L, -2, "interrupt");
  br_push_cancel(L);
  lua_setfield(L, -2, "cancelled");
  return 1;
}

