/* Lua tasks on top of the event loop.
 *
 * A task is a coroutine started by bench.spawn. A C function that has to wait
 * (clock.sleep, http.request, proc:wait) does this:
 *
 *     op = lua_newuserdatauv(...);        // keeps the operation alive on L's stack
 *     br_wait_init(&op->wait, L);
 *     op->wait.cancel = my_cancel;         // optional: stop the operation
 *     ...start the operation on br_sched_loop(L)...
 *     return br_await(L, &op->wait, (lua_KContext)op, my_continuation);
 *
 * and, when the operation ends (in a loop callback), br_wait_done(&op->wait).
 * my_continuation(L, status, ctx) then runs on the waiting thread and returns
 * the results. Inside a task br_await yields the coroutine; on the main thread
 * (a script's top level, the REPL) it runs the loop until the wait is done, so
 * every waiting function also works outside tasks.
 *
 * If the task is cancelled (task:cancel(), Ctrl-C) the operation's cancel
 * hook runs, and br_await's continuation sees br_wait_cancelled(); it should
 * release what it holds and call br_wait_raise(L, w), which raises
 * "cancelled" (or "interrupted"), so <close> variables run. */
#ifndef BENCHRUN_SCHED_H
#define BENCHRUN_SCHED_H

#include <lua.h>
#include "benchrun/loop.h"

typedef struct br_wait br_wait;
struct br_wait {
  lua_State *L;                 /* the waiting thread */
  struct br_task *task;         /* NULL on the main thread */
  int state;                    /* BR_WAIT_* */
  void (*cancel)(br_wait *w);   /* stop the operation; may be NULL */
};
enum { BR_WAIT_IDLE, BR_WAIT_PENDING, BR_WAIT_DONE, BR_WAIT_CANCELLED };

/* The loop of this Lua state (created with the state). */
br_loop *br_sched_loop(lua_State *L);

void br_wait_init(br_wait *w, lua_State *L);
/* Wait for w; see above. Never returns normally inside a task (it yields). */
int br_await(lua_State *L, br_wait *w, lua_KContext ctx, lua_KFunction k);
/* Mark w done and make its task runnable (from loop callbacks). Idempotent.
 * May be called before br_await (the operation finished at once): br_await
 * then calls the continuation directly. */
void br_wait_done(br_wait *w);
static inline int br_wait_cancelled(const br_wait *w) { return w->state == BR_WAIT_CANCELLED; }
/* Raise the error that ends a cancelled wait ("interrupted" after Ctrl-C). */
int br_wait_raise(lua_State *L, br_wait *w);

/* Ctrl-C: set by the SIGINT handler, cleared when the interruption has been
 * delivered. While set, every wait is cancelled. */
void br_sched_interrupt(lua_State *L);   /* async-signal-safe */
int br_sched_interrupted(lua_State *L);
/* The coroutine of the task being resumed now, or NULL on the main thread.
 * Async-signal-safe: the SIGINT handler hooks it so a busy task stops too. */
lua_State *br_sched_running_thread(lua_State *L);
void br_sched_clear_interrupt(lua_State *L);

/* The interruption is a value, not a word: one userdata per state
 * (bench.interrupt in Lua, tostring "interrupted"). Every wait cancelled
 * by a signal, and the hook below, raise it. */
void br_push_interrupt(lua_State *L);
int br_is_interrupt(lua_State *L, int idx);
/* The cancellation value (task:cancel(), a cancelled wait): raised as a
 * value, so no text decides what a cancellation is. */
void br_push_cancel(lua_State *L);
int br_is_cancel(lua_State *L, int idx);
/* Hook L so it raises the interruption at its next instruction, and at
 * every one after until a top level handles it (a pcall cannot swallow it).
 * Async-signal-safe (lua_sethook, as lua.c's laction). */
void br_sched_arm(lua_State *L);
/* A signal came and no top level has taken the interruption yet. */
int br_sched_interrupt_pending(lua_State *L);
/* A top level took the interruption: the hooks stop raising (clean-up code
 * runs); waits are still cancelled until br_sched_clear_interrupt. */
void br_sched_interrupt_handled(lua_State *L);

/* Run the loop until no task is left (or interruption). Returns 0, or -1
 * with an error message pushed when interrupted. */
int br_sched_drain(lua_State *L);

/* Cancel every live task (at interruption and at exit). */
void br_sched_cancel_all(lua_State *L);

/* Create the scheduler and loop of a new state (the runtime does this). */
int br_sched_open(lua_State *L);
/* Number of tasks not yet finished. */
int br_sched_live(lua_State *L);
/* Number of tasks that failed unobserved since the last call (and reset). */
int br_sched_take_failures(lua_State *L);

#endif
