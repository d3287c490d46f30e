/* benchrun sim's entry point: options, the listener, the model's load, the
 * event loop until SIGTERM or SIGINT, and a clean shutdown. The pieces are
 * described at the top of sim.h. */
#include "sim.h"
#include "benchrun/runtime.h"

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

/* What a signal handler can reach: the flag and the loop to wake. */
static volatile sig_atomic_t stop_signal;
static br_loop *volatile signal_loop;

static void on_signal(int sig) {
  stop_signal = sig;
  if (signal_loop) br_loop_wakeup(signal_loop);
}

/* Wait for the next event. epoll waits in whole milliseconds (rounded up),
 * so the last part of the wait before a token is due is a precise sleep:
 * that keeps events within ~0.1 ms of schedule at a cost of at most 1 ms
 * of I/O latency. */
static void run_loop(sim_t *sim) {
  while (!stop_signal) {
    int64_t next = br_loop_next_timer(sim->loop);
    int64_t timeout = -1;
    if (next != INT64_MAX) {
      int64_t d = next - br_now();
      if (d >= 1000000) timeout = d / 1000000 * 1000000;
      else {
        if (d > 0) {
          struct timespec ts = {0, (long)d};
          nanosleep(&ts, NULL);
        }
        timeout = 0;
      }
    }
    br_loop_run_once(sim->loop, timeout);
  }
}

static void on_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* Listen, say so, and start the load. 0, or an exit status. */
static int start(sim_t *sim) {
  /* many connections: raise the descriptor limit to its ceiling */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  sim->loop = br_loop_new();
  if (!sim->loop) { fprintf(stderr, "benchrun sim: cannot create the event loop\n"); return 1; }
  if (sim_open_listener(sim) < 0) { br_loop_free(sim->loop); return 1; }

  sim->t_start = br_now();
  if (sim->cfg.load_ns == 0) {
    sim_touch_memory(sim, sim->cfg.model_memory);
    sim->loaded = 1;
    sim->t_loaded = sim->t_start;
  }
  br_io_start(sim->loop, &sim->lio, sim->lfd, BR_READ, sim_listen_cb, sim);
  if (sim_write_port_file(sim) < 0) { close(sim->lfd); br_loop_free(sim->loop); return 1; }
  const char *host = sim->cfg.host;
  printf("benchrun sim listening on http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
         strchr(host, ':') ? "]" : "", sim->cfg.port);
  fflush(stdout);
  sim->load_timer.data = sim;
  if (!sim->loaded) sim_load_tick(sim->loop, &sim->load_timer);
  sim_power_start(sim);
  return 0;
}

static void stop(sim_t *sim) {
  while (sim->conns) sim_conn_close(sim->conns);
  br_io_stop(sim->loop, &sim->lio);
  br_timer_stop(sim->loop, &sim->load_timer);
  br_timer_stop(sim->loop, &sim->accept_retry);
  sim_power_stop(sim);
  close(sim->lfd);
  signal_loop = NULL;
  br_loop_free(sim->loop);
  sim->loop = NULL;
  free(sim->mem);
  free(sim->kv_mem);
  br_buf_free(&sim->scratch);
  free(sim->pc_keys);
}

int br_sim_main(int argc, char **argv) {
  sim_t *sim = calloc(1, sizeof *sim);
  if (!sim) { fprintf(stderr, "benchrun sim: out of memory\n"); return 1; }
  stop_signal = 0;
  int r = sim_parse_args(&sim->cfg, argc, argv);
  if (r >= 0) { free(sim); return r; }
  sim->rng = sim->cfg.seed * 0x2545f4914f6cdd1dULL + 12345;
  sim->start_wall = time(NULL);
  r = start(sim);
  if (r != 0) { free(sim); return r; }
  signal_loop = sim->loop;
  on_signals();
  run_loop(sim);
  stop(sim);
  free(sim);
  return 0;
}
