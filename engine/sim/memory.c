/* The simulator's memory: the model's, touched while it loads, and the KV
 * cache's, touched as the tokens held in slots grow; the simulated OOM kill
 * when they would pass --oom-at-memory; crashes. */
#include "sim.h"

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

/* A simulated OOM kill: SIGKILL, as the kernel's OOM killer sends. What
 * tells a supervisor that it was memory is not the signal but the kernel's
 * record of the kill; the simulator plays the kernel too and writes that
 * record to --oom-record (the supervisor's /dev/kmsg), never to its output. */
static void oom_kill(sim_t *sim, uint64_t needed) {
  fprintf(stderr, "benchrun sim: touched memory would exceed --oom-at-memory; killing itself\n");
  fflush(stderr);
  if (sim->cfg.oom_record) {
    FILE *f = fopen(sim->cfg.oom_record, "a");
    if (f) {
      fprintf(f, "{\"oom_kill\":true,\"pid\":%ld,\"needed_bytes\":%llu,\"limit_bytes\":%llu}\n", (long)getpid(),
              (unsigned long long)needed, (unsigned long long)sim->cfg.oom_at);
      fclose(f);
    }
  }
  kill(getpid(), SIGKILL);
  abort();   /* not reached */
}

/* A crash, as a server's failed assertion ends (GGML_ASSERT, a CUDA error):
 * abort(), SIGABRT. No core file: a test run should not fill the disk. */
void sim_crash(const char *why) {
  fprintf(stderr, "benchrun sim: %s: crashing (abort)\n", why);
  fflush(stderr);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(SIGABRT, SIG_DFL);
  abort();
}

/* Touch memory up to `upto` bytes of the model (one write per page). */
void sim_touch_memory(sim_t *sim, uint64_t upto) {
  if (upto > sim->cfg.model_memory) upto = sim->cfg.model_memory;
  if (sim->cfg.oom_at && upto + sim->kv_touched > sim->cfg.oom_at) {
    uint64_t room = sim->cfg.oom_at > sim->kv_touched ? sim->cfg.oom_at - sim->kv_touched : 0;
    if (room > sim->mem_touched) sim_touch_memory(sim, room);
    oom_kill(sim, upto + sim->kv_touched);
  }
  if (upto <= sim->mem_touched) return;
  if (!sim->mem) {
    sim->mem = malloc(sim->cfg.model_memory);
    if (!sim->mem) {
      fprintf(stderr, "benchrun sim: cannot allocate --model-memory %llu bytes\n",
              (unsigned long long)sim->cfg.model_memory);
      exit(1);
    }
  }
  for (uint64_t i = sim->mem_touched; i < upto; i += 4096) sim->mem[i] = (char)(i >> 12 | 1);
  sim->mem[upto - 1] = 1;
  sim->mem_touched = upto;
}

/* The KV cache grows with the tokens held in slots; like a real server's
 * pool, what was touched stays touched (its high-water mark). */
void sim_touch_kv(sim_t *sim) {
  uint64_t need = (uint64_t)sim->kv_tokens * sim->cfg.kv_bytes_per_token;
  if (need <= sim->kv_touched) return;
  if (sim->cfg.oom_at && sim->mem_touched + need > sim->cfg.oom_at) oom_kill(sim, sim->mem_touched + need);
  if (need > sim->kv_cap) {
    uint64_t cap = sim->kv_cap ? sim->kv_cap * 2 : (1u << 20);
    if (cap < need) cap = need;
    char *p = realloc(sim->kv_mem, cap);
    if (!p) oom_kill(sim, sim->mem_touched + need);   /* the allocator said no: die as an OOM kill would */
    sim->kv_mem = p;
    sim->kv_cap = cap;
  }
  for (uint64_t i = sim->kv_touched; i < need; i += 4096) sim->kv_mem[i] = 1;
  sim->kv_mem[need - 1] = 1;
  sim->kv_touched = need;
}

/* The load: every 10 ms more of the model's memory, until --load-time has
 * passed; then the queue (Ollama holds requests during a load) moves. */
void sim_load_tick(br_loop *loop, br_timer *t) {
  sim_t *sim = t->data;
  int64_t now = br_now();
  int64_t done_at = sim->t_start + sim->cfg.load_ns;
  if (now >= done_at) {
    sim_touch_memory(sim, sim->cfg.model_memory);
    sim->loaded = 1;
    sim->t_loaded = now;
    sim_answer_load_waiters(sim);
    sim_admit_queued(sim);
    return;
  }
  double frac = (double)(now - sim->t_start) / (double)sim->cfg.load_ns;
  sim_touch_memory(sim, (uint64_t)(frac * (double)sim->cfg.model_memory));
  int64_t next = now + 10000000;
  br_timer_start(loop, t, next < done_at ? next : done_at, sim_load_tick, sim);
}
