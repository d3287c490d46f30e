/* Generation: the model of time (prefill, decode, batching, jitter), the
 * slots and the wait queue, and the per-sequence step that produces the
 * tokens that are due, hands them to the wire format and sends them. The
 * exact model is in docs/sim.md ("The model of time"). */
#include "sim.h"

#include <stdio.h>

static void tick_cb(br_loop *loop, br_timer *t);
static void endless_step(conn *c);

/* ------------------------------------------------------------------ */
/* slots and the queue                                                  */

/* Wait for a slot (or, for a load-only request, for the model) at the tail. */
void sim_queue_append(conn *c) {
  sim_t *sim = c->sim;
  c->state = CS_QUEUED;
  c->in_queue = 1;
  c->qprev = sim->qtail;
  c->qnext = NULL;
  if (sim->qtail) sim->qtail->qnext = c; else sim->qhead = c;
  sim->qtail = c;
  sim->qlen++;
}

void sim_queue_remove(conn *c) {
  sim_t *sim = c->sim;
  if (!c->in_queue) return;
  if (c->qprev) c->qprev->qnext = c->qnext; else sim->qhead = c->qnext;
  if (c->qnext) c->qnext->qprev = c->qprev; else sim->qtail = c->qprev;
  c->qprev = c->qnext = NULL;
  c->in_queue = 0;
  sim->qlen--;
}

void sim_release_slot(conn *c) {
  sim_t *sim = c->sim;
  if (!c->in_slot) return;
  c->in_slot = 0;
  sim->active--;
  sim->kv_tokens -= c->prompt_tokens + c->emitted;
  br_timer_stop(sim->loop, &c->tick);
  sim_admit_queued(sim);
}

/* ------------------------------------------------------------------ */
/* timing                                                               */

static int64_t jittered(const sim_t *sim, int64_t ns, uint64_t *rng) {
  if (sim->cfg.jitter <= 0 || ns <= 0) return ns;
  double f = 1 + sim->cfg.jitter * (2 * rng_unit(rng) - 1);
  return (int64_t)((double)ns * f);
}

/* Interval to the next token at the current batch size; 0 = packed. */
static int64_t decode_interval(conn *c) {
  const sim_t *sim = c->sim;
  if (sim->cfg.decode_tps <= 0) return 0;
  double rate = sim->cfg.decode_tps * sim->cfg.speedup / (1 + sim->cfg.batch_slowdown * (sim->active - 1));
  rate /= sim_power_slowdown(sim);   /* a throttled synthetic machine (energy.c) */
  return jittered(sim, (int64_t)(1e9 / rate), &c->rng);
}

/* With --decode-steps, a due time moved up to the next step of the grid
 * that every sequence shares (multiples of the decode interval on the
 * monotonic clock), as a batching server's decode steps; else unchanged. */
static int64_t on_step(const sim_t *sim, int64_t due, int64_t interval) {
  if (!sim->cfg.decode_steps || interval <= 0) return due;
  return (due + interval - 1) / interval * interval;
}

static int64_t prefill_ns(conn *c) {
  const sim_t *sim = c->sim;
  double s = (c->prompt_tokens - c->cached_tokens) / (sim->cfg.prefill_tps * sim->cfg.speedup);
  return jittered(sim, (int64_t)(s * 1e9), &c->rng);
}

const int64_t sim_late_bounds_ns[10] = {
  50000, 100000, 250000, 500000, 1000000, 2000000, 5000000, 10000000, 50000000, 1000000000
};

static void record_lateness(sim_t *sim, int64_t late) {
  if (late < 0) late = 0;
  int i = 0;
  while (i < 10 && late > sim_late_bounds_ns[i]) i++;
  sim->late_buckets[i]++;
  sim->late_sum += (double)late / 1e9;
  sim->late_count++;
}

/* A sequence gets its slot: prefill, then decode. */
void sim_start_sequence(conn *c) {
  sim_t *sim = c->sim;
  c->state = CS_ACTIVE;
  c->in_slot = 1;
  sim->active++;
  sim->kv_tokens += c->prompt_tokens;
  if (sim->cfg.kv_bytes_per_token) sim_touch_kv(sim);
  int64_t now = br_now();
  c->t_slot = now;
  if (!sim->loaded) return;
  if (c->waited_load_ns == 0 && sim->t_loaded > c->t_arrive) c->waited_load_ns = sim->t_loaded - c->t_arrive;
  c->next_due = on_step(sim, now + prefill_ns(c), sim->cfg.decode_steps ? decode_interval(c) : 0);
  br_timer_start(sim->loop, &c->tick, c->next_due, tick_cb, c);
}

void sim_admit_queued(sim_t *sim) {
  if (!sim->loaded) return;
  while (sim->qhead && sim->active < sim->cfg.slots) {
    conn *c = sim->qhead;
    sim_queue_remove(c);
    sim_start_sequence(c);
  }
}

/* ------------------------------------------------------------------ */
/* text                                                                 */

/* 64 words; each output token is " " + one of them (ASCII: no escaping on
 * the per-token path). */
#define W(s) {s, sizeof s - 1}
static const struct { const char *s; unsigned char n; } words[64] = {
  W("the"), W("model"), W("answers"), W("with"), W("simulated"), W("tokens"), W("that"), W("arrive"),
  W("at"), W("a"), W("steady"), W("rate"), W("while"), W("batching"), W("changes"), W("speed"), W("of"),
  W("each"), W("sequence"), W("and"), W("queue"), W("waits"), W("for"), W("free"), W("slots"), W("prompt"),
  W("prefill"), W("takes"), W("time"), W("before"), W("first"), W("token"), W("decode"), W("continues"),
  W("until"), W("limit"), W("is"), W("reached"), W("memory"), W("grows"), W("as"), W("cache"), W("fills"),
  W("server"), W("reports"), W("usage"), W("numbers"), W("clients"), W("measure"), W("latency"),
  W("throughput"), W("in"), W("benchmarks"), W("on"), W("loopback"), W("so"), W("every"), W("event"),
  W("carries"), W("its"), W("send"), W("clock"), W("value"), W("exactly")
};
#undef W

/* The generated text of the next token: " word"; in think mode the first
 * and last reasoning tokens are the tags themselves, as real models emit. */
size_t sim_word_text(int w, char *buf) {
  buf[0] = ' ';
  memcpy(buf + 1, words[w & 63].s, words[w & 63].n);
  return 1 + (size_t)words[w & 63].n;
}

static size_t next_token_text(conn *c, char *buf, int *wid) {
  /* with logprobs asked for, the word is the logprob model's top token */
  int w = c->n_probs >= 0 ? sim_logprob_step(c) : (int)(splitmix(&c->rng) & 63);
  *wid = w;
  int i = c->emitted;
  if (c->think == R_THINK && i < c->reasoning_n) {
    if (c->reasoning_n == 1) { memcpy(buf, "<think></think>", 15); return 15; }
    if (i == 0) { memcpy(buf, "<think>", 7); return 7; }
    if (i == c->reasoning_n - 1) { memcpy(buf, "</think>", 8); return 8; }
  }
  buf[0] = ' ';
  memcpy(buf + 1, words[w].s, words[w].n);
  return 1 + (size_t)words[w].n;
}

/* Stop strings: does the text so far contain one? Returns how many bytes of
 * the new token to keep (the part before the match), or -1 for no match. */
static long stop_match(conn *c, const char *t, size_t n) {
  size_t before = c->tail.len;
  out_mem(&c->tail, t, n);
  const char *first = NULL;
  for (int i = 0; i < c->n_stops; i++) {
    const char *hit = memmem(c->tail.p, c->tail.len, c->stops[i], strlen(c->stops[i]));
    if (hit && (!first || hit < first)) first = hit;
  }
  if (first) {
    long keep = (long)(first - c->tail.p) - (long)before;
    if (keep >= 0) return keep;
    /* it began in earlier tokens: a whole answer can drop that part; a
     * stream has sent it already */
    size_t back = (size_t)-keep;
    if (!c->stream) c->text.len = c->text.len > back ? c->text.len - back : 0;
    return 0;
  }
  /* keep enough of the text for the longest stop string to span tokens */
  size_t keep = 64;
  for (int i = 0; i < c->n_stops; i++) if (strlen(c->stops[i]) + 64 > keep) keep = strlen(c->stops[i]) + 64;
  if (c->tail.len > 2 * keep) {
    memmove(c->tail.p, c->tail.p + c->tail.len - keep, keep);
    c->tail.len = keep;
  }
  return -1;
}

/* ------------------------------------------------------------------ */
/* the step                                                             */

void sim_stream_headers(conn *c) {
  br_buf b = BR_BUF_INIT;
  sim_head_common(&b, c, 200, sim_stream_ctype(c));
  int d = c->sim->cfg.dialect;
  if (d != D_LLAMA && d != D_OLLAMA) OUT_LIT(&b, "Cache-Control: no-cache\r\n");
  if (c->chunked) OUT_LIT(&b, "Transfer-Encoding: chunked\r\n");
  OUT_LIT(&b, "\r\n");
  sim_send(c, b.p, b.len);
  br_buf_free(&b);
}

/* Faults that fire mid-response. Returns 1 when the stream must stop here
 * (the connection may be closed: check the return of the caller's flush). */
static int mid_fault(conn *c, br_buf *b) {
  c->fault_done = 1;
  switch (c->fault) {
  case F_BAD_JSON:
    if (c->stream) {
      if (sim_is_ollama(c)) OUT_LIT(b, "{\"model\":\"x\",\"message\":{\"content\":\" broken\"\n");
      else OUT_LIT(b, "data: {\"choices\":[{\"delta\":{\"content\":\" broken\"}\n\n");
    }
    return 0;
  case F_HUGE_EVENT:
    return 0;   /* handled as the token itself */
  case F_STALL_MID: case F_DROP: case F_ENDLESS_LINE: case F_CRASH:
    return 1;
  default:
    return 0;
  }
}

/* The huge-event fault's token: --huge-event bytes of 'a'. */
static void huge_token(conn *c, br_buf *b, br_buf *dst, int reasoning, int last, int wid, int64_t stamp) {
  size_t n = c->sim->cfg.huge_event_bytes;
  if (c->stream) {
    char *pad = malloc(n);
    if (!pad) abort();
    memset(pad, 'a', n);
    sim_fmt_token(b, c, pad, n, reasoning, last, wid, stamp);
    free(pad);
  } else {
    out_reserve(dst, n);
    memset(dst->p + dst->len, 'a', n);
    dst->len += n;
    dst->p[dst->len] = 0;
  }
}

/* Produce the next token: into b as an event (streaming) or into the
 * answer. Returns 1 when the answer ends with it (a stop string). */
static int emit_token(conn *c, br_buf *b, int packed) {
  sim_t *sim = c->sim;
  char tok[64];
  int wid;
  size_t n = next_token_text(c, tok, &wid);
  int reasoning = c->emitted < c->reasoning_n;
  long keep = c->n_stops && !reasoning && !c->tool ? stop_match(c, tok, n) : -1;
  if (keep == 0) { c->finished = 2; return 1; }   /* the stop string starts this token */
  int64_t stamp = br_now();
  if (c->emitted == 0) c->t_first = stamp;
  if (!packed) record_lateness(sim, stamp - c->next_due);
  int last = c->emitted + 1 == c->target;
  if (keep > 0) { n = (size_t)keep; last = 1; c->finished = 2; }
  else if (last) c->finished = c->max_tokens_set && !c->tool_fits ? 1 : 2;
  int huge = c->fault == F_HUGE_EVENT && c->fault_at == c->emitted;
  br_buf *dst = reasoning && c->think == R_FIELD ? &c->rtext : &c->text;
  if (c->stream) {
    if (c->emitted == 0) sim_fmt_first(b, c, stamp);
    if (huge) huge_token(c, b, dst, reasoning, last, wid, stamp);
    else sim_fmt_token(b, c, tok, n, reasoning, last, wid, stamp);
    sim->c_events++;
  } else {
    if (!c->tool || reasoning) out_mem(dst, tok, n);   /* a call's arguments are not text */
    if (huge) huge_token(c, b, dst, reasoning, last, wid, stamp);
  }
  c->emitted++;
  c->lp_offset += n;
  c->t_last = stamp;
  sim->c_gen_tokens++;
  sim_power_token(sim);
  sim->kv_tokens++;
  if (sim->cfg.kv_bytes_per_token) sim_touch_kv(sim);
  if (keep > 0) return 1;
  if (!packed) {
    int64_t iv = decode_interval(c);
    c->next_due = on_step(sim, c->next_due + iv, iv);
  }
  return 0;
}

/* A fault that ends the answer mid-way (stall-mid, drop, endless-line,
 * crash): send what the step made, then break off as the fault does. */
static void break_off(conn *c, br_buf *b) {
  int f = c->fault;
  if (c->stream && sim_send_events(c, b) < 0) return;
  if (!c->stream && (f == F_STALL_MID || f == F_DROP || f == F_ENDLESS_LINE)) {
    /* a non-streaming answer breaks off after its headers promised more */
    br_buf h = BR_BUF_INIT;
    sim_head_common(&h, c, 200, "application/json");
    OUT_LIT(&h, "Content-Length: 1000000\r\n\r\n{\"id\":\"");
    out_str(&h, c->id);
    OUT_LIT(&h, "\",\"choices\":[");
    int r = sim_send(c, h.p, h.len);
    br_buf_free(&h);
    if (r < 0) return;
  }
  sim_release_slot(c);
  if (f == F_CRASH) sim_crash("crash fault");
  if (f == F_DROP) {
    c->keepalive = 0;
    c->state = CS_DRAIN;
    c->close_after_write = 1;
    if (sim_pending(c) == 0) sim_conn_linger(c);
    return;
  }
  if (f == F_ENDLESS_LINE) {
    c->state = CS_ENDLESS;
    if (c->stream) {
      static const char start[] = "data: {\"choices\":[{\"delta\":{\"content\":\"";
      if (sim_send_body(c, start, sizeof start - 1) < 0) return;
    }
    endless_step(c);
    return;
  }
  c->state = CS_STALLED;   /* stall-mid */
}

static void count_success(conn *c) {
  sim_t *sim = c->sim;
  sim->c_success++;
  sim->c_prompt_seconds += (double)(c->t_first - c->t_slot) / 1e9;
  sim->c_gen_seconds += (double)(c->t_last - c->t_first) / 1e9;
}

static void finish_request(conn *c, br_buf *b, int64_t now) {
  if (!c->finished) c->finished = c->max_tokens_set ? 1 : 2;
  if (c->emitted == 0) c->t_first = c->t_last = now;
  if (c->stream) {
    sim_fmt_final(b, c, now);
    if (sim_send_events(c, b) < 0) return;
    if (c->chunked && sim_send(c, "0\r\n\r\n", 5) < 0) return;
    if (c->http10) c->keepalive = 0;
  } else {
    br_buf body = BR_BUF_INIT;
    sim_fmt_full(&body, c, now);
    if (c->fault == F_BAD_JSON && body.len > 2) body.len -= 2;
    const char *ctype = c->fault == F_CONTENT_TYPE ? "text/plain; charset=utf-8" : "application/json";
    sim_release_slot(c);
    count_success(c);
    sim_send_full(c, 200, ctype, body.p, body.len, NULL);   /* c may be gone after this */
    br_buf_free(&body);
    return;
  }
  sim_release_slot(c);
  count_success(c);
  sim_begin_next(c);
}

/* Called when tokens are due (timer) or the socket drained (packed mode). */
void sim_gen_step(conn *c) {
  sim_t *sim = c->sim;
  br_buf *b = &sim->scratch;
  if (b->cap < SIM_EV_RESERVE + 1) out_reserve(b, 65535);
  b->len = SIM_EV_RESERVE;
  int64_t now = br_now();
  int packed = sim->cfg.decode_tps <= 0;
  int stop_now = 0;
  while (c->emitted < c->target) {
    if (!packed && c->next_due > now) break;
    if (c->stream && (b->len >= 65536 || sim_pending(c) > (4u << 20))) break;
    if (c->fault_at == c->emitted && !c->fault_done && c->fault != F_NONE) {
      if (mid_fault(c, b)) { stop_now = 1; break; }
    }
    if (emit_token(c, b, packed)) break;
  }
  if (!stop_now && (c->finished || c->emitted >= c->target) && c->fault != F_NONE && !c->fault_done) {
    if (mid_fault(c, b)) stop_now = 1;
  }
  if (stop_now) { break_off(c, b); return; }
  if (c->emitted >= c->target || c->finished) {
    finish_request(c, b, br_now());
    return;
  }
  if (c->stream && sim_send_events(c, b) < 0) return;
  if (packed) {
    if (sim_pending(c)) c->resume_on_drain = 1;
    else br_timer_start(sim->loop, &c->tick, now, tick_cb, c);
  } else if (c->stream && sim_pending(c) > (4u << 20)) {
    c->resume_on_drain = 1;
  } else {
    br_timer_start(sim->loop, &c->tick, c->next_due, tick_cb, c);
  }
}

/* The endless-line fault: 64 KiB more of one line every 10 ms, whenever
 * the client has taken the last, up to 256 MiB. */
static void endless_step(conn *c) {
  static char xs[65536];
  if (!xs[0]) memset(xs, 'x', sizeof xs);
  if (c->endless_sent >= (256u << 20)) { sim_conn_close(c); return; }
  if (sim_pending(c) == 0) {
    if (sim_send_body(c, xs, sizeof xs) < 0) return;
    c->endless_sent += sizeof xs;
  }
  br_timer_start(c->sim->loop, &c->tick, br_now() + 10000000, tick_cb, c);
}

static void tick_cb(br_loop *loop, br_timer *t) {
  conn *c = t->data;
  if (c->state == CS_ENDLESS) endless_step(c);
  else if (c->state == CS_ACTIVE) sim_gen_step(c);
}
