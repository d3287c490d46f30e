/* GET /metrics: Prometheus text in the dialect's names (llama.cpp's
 * llamacpp:*, vLLM's vllm:* for the others), then the simulator's own sim_*
 * counters and its event-lateness histogram (tools/bench-sim.sh reads them). */
#include "sim.h"

#include <stdio.h>

static void llama_metrics(sim_t *sim, br_buf *b, double kv_use, long kv_tokens) {
  out_printf(b,
    "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
    "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total %llu\n"
    "# HELP llamacpp:prompt_seconds_total Prompt process time\n"
    "# TYPE llamacpp:prompt_seconds_total counter\nllamacpp:prompt_seconds_total %.3f\n",
    (unsigned long long)sim->c_prompt_tokens, sim->c_prompt_seconds);
  out_printf(b,
    "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
    "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total %llu\n"
    "# HELP llamacpp:tokens_predicted_seconds_total Predict process time\n"
    "# TYPE llamacpp:tokens_predicted_seconds_total counter\nllamacpp:tokens_predicted_seconds_total %.3f\n",
    (unsigned long long)sim->c_gen_tokens, sim->c_gen_seconds);
  out_printf(b,
    "# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE llamacpp:kv_cache_usage_ratio gauge\nllamacpp:kv_cache_usage_ratio %g\n"
    "# HELP llamacpp:kv_cache_tokens KV-cache tokens.\n"
    "# TYPE llamacpp:kv_cache_tokens gauge\nllamacpp:kv_cache_tokens %ld\n"
    "# HELP llamacpp:requests_processing Number of requests processing.\n"
    "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing %d\n"
    "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
    "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred %ld\n",
    kv_use, kv_tokens, sim->active, sim->qlen);
}

static void vllm_metrics(sim_t *sim, br_buf *b, double kv_use) {
  br_buf lbl = BR_BUF_INIT;
  OUT_LIT(&lbl, "{model_name=\"");
  out_str(&lbl, sim->cfg.models[0]);
  OUT_LIT(&lbl, "\"}");   /* a br_buf is a C string too */
  out_printf(b,
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running%s %d.0\n"
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
    "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting%s %ld.0\n",
    lbl.p, sim->active, lbl.p, sim->qlen);
  out_printf(b,
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc%s %g\n"
    "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc%s %g\n",
    lbl.p, kv_use, lbl.p, kv_use);
  out_printf(b,
    "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
    "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total%s %llu.0\n"
    "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
    "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total%s %llu.0\n",
    lbl.p, (unsigned long long)sim->c_prompt_tokens, lbl.p, (unsigned long long)sim->c_gen_tokens);
  if (sim->cfg.prefix_cache > 0)   /* vLLM V1's prefix-cache counters, in tokens */
    out_printf(b,
      "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
      "# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total%s %llu.0\n"
      "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.\n"
      "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total%s %llu.0\n",
      lbl.p, (unsigned long long)sim->c_prefix_queries, lbl.p, (unsigned long long)sim->c_prefix_hits);
  br_buf_free(&lbl);
}

static void sim_metrics(sim_t *sim, br_buf *b) {
  out_printf(b,
    "# HELP sim_requests_total Generation requests received.\n# TYPE sim_requests_total counter\n"
    "sim_requests_total %llu\n"
    "# HELP sim_requests_rejected_total Requests rejected (loading, queue full).\n"
    "# TYPE sim_requests_rejected_total counter\nsim_requests_rejected_total %llu\n"
    "# HELP sim_responses_error_total Error responses (4xx, 5xx) sent.\n"
    "# TYPE sim_responses_error_total counter\nsim_responses_error_total %llu\n"
    "# HELP sim_requests_success_total Generation requests completed.\n"
    "# TYPE sim_requests_success_total counter\nsim_requests_success_total %llu\n",
    (unsigned long long)sim->c_requests, (unsigned long long)sim->c_rejected, (unsigned long long)sim->c_errors,
    (unsigned long long)sim->c_success);
  out_printf(b,
    "# HELP sim_events_total Streamed token events.\n# TYPE sim_events_total counter\nsim_events_total %llu\n"
    "# HELP sim_writes_total write system calls.\n# TYPE sim_writes_total counter\nsim_writes_total %llu\n"
    "# HELP sim_connections Open connections.\n# TYPE sim_connections gauge\nsim_connections %ld\n"
    "# HELP sim_memory_touched_bytes Model memory touched so far.\n# TYPE sim_memory_touched_bytes gauge\n"
    "sim_memory_touched_bytes %llu\n",
    (unsigned long long)sim->c_events, (unsigned long long)sim->c_writes, sim->nconns,
    (unsigned long long)(sim->mem_touched + sim->kv_touched));
  OUT_LIT(b, "# HELP sim_event_lateness_seconds Event send time minus its scheduled time.\n"
             "# TYPE sim_event_lateness_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < 10; i++) {
    cum += sim->late_buckets[i];
    out_printf(b, "sim_event_lateness_seconds_bucket{le=\"%g\"} %llu\n", (double)sim_late_bounds_ns[i] / 1e9,
              (unsigned long long)cum);
  }
  cum += sim->late_buckets[10];
  out_printf(b, "sim_event_lateness_seconds_bucket{le=\"+Inf\"} %llu\nsim_event_lateness_seconds_sum %.9f\n"
                "sim_event_lateness_seconds_count %llu\n",
            (unsigned long long)cum, sim->late_sum, (unsigned long long)sim->late_count);
}

void sim_get_metrics(conn *c) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  long kv_tokens = 0;
  for (conn *x = sim->conns; x; x = x->next)
    if (x->in_slot) kv_tokens += x->prompt_tokens + x->emitted;
  double kv_use = (double)kv_tokens / ((double)sim->cfg.slots * sim->cfg.ctx_size);
  if (kv_use > 1) kv_use = 1;
  if (sim->cfg.dialect == D_LLAMA) llama_metrics(sim, &b, kv_use, kv_tokens);
  else vllm_metrics(sim, &b, kv_use);
  sim_metrics(sim, &b);
  sim_send_full(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&b);
}
