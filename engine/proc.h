/* bench.proc's shared types and the functions its files give each other
 * (engine/proc*.c; proc.c says which file holds what). Internal: not part
 * of the embedding API (include/benchrun). */
#ifndef BENCHRUN_PROC_H
#define BENCHRUN_PROC_H

#include "benchrun/loop.h"
#include "benchrun/sched.h"
#include "buf.h"

#include <lauxlib.h>
#include <stdint.h>
#include <sys/types.h>

#define STATE_MT "bench.proc.State"
#define PROC_MT "bench.proc.Process"
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

/* ---- the Process handle ---- */

typedef struct { child *c; } phandle;

/* proc_children.c */
void proc_groups_add(pid_t pid);
int proc_make_pipe(int fds[2]);
void proc_reap_all(proc_state *ps);
void proc_send_group(child *c, int sig);
void proc_detach(child *c);
proc_state *proc_state_peek(lua_State *L);
proc_state *proc_get_state(lua_State *L);
void proc_state_open(lua_State *L);

/* proc_spawn.c */
lua_Number proc_opt_number(lua_State *L, int t, const char *k, lua_Number dflt);
int proc_do_spawn(lua_State *L, int opts, const char *fn, int force_capture, const char *input, size_t input_len);
int proc_spawn(lua_State *L);

/* proc_output.c */
void proc_stream_close(br_loop *loop, stream *s);
int proc_stream_read(br_loop *loop, stream *s);
void proc_on_stream(br_loop *loop, br_io *io, int events);
void proc_on_stdin(br_loop *loop, br_io *io, int events);
void proc_push_tail(lua_State *L, child *c, lua_Integer n);
int process_tail(lua_State *L);
int process_lines_since(lua_State *L);
int process_output(lua_State *L);
int process_write(lua_State *L);
int process_close_stdin(lua_State *L);

/* proc_wait.c */
void proc_notify(child *c, int ev);
int proc_check_signal(lua_State *L, int arg);
int process_wait(lua_State *L);
int process_stop(lua_State *L);
int process_wait_for_line(lua_State *L);
int process_exit_info(lua_State *L);
int proc_run(lua_State *L);

/* proc_ports.c */
int proc_probe_port(lua_State *L);
int proc_free_port(lua_State *L);
int proc_process_info(lua_State *L);
int proc_port_owners(lua_State *L);

/* proc.c */
child *proc_check_child(lua_State *L, int i);

#endif
