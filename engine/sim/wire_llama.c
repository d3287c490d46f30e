/* llama.cpp's own /completion (tools/server of llama.cpp b4748): its SSE
 * events and whole answer, and the timings object that its OpenAI-style
 * answers carry too. With the prefix cache on (--prefix-cache) the timings
 * take the later form, cache_n first: llama.cpp PR #15827 (September 2025,
 * tools/server/server.cpp result_timings::to_json; server-task.cpp since)
 * added "cache_n" (prompt tokens taken from the cache) ahead of prompt_n,
 * which still counts only the tokens computed. */
#include "sim.h"

const char llama_fingerprint[] = "b4748-c392e5094";

static int token_id(int w) { return 1000 + w * 37; }

void put_llama_timings(br_buf *b, conn *c) {
  double prompt_ms = (double)(c->t_first - c->t_slot) / 1e6;
  double pred_ms = (double)(c->t_last - c->t_first) / 1e6;
  int k = c->emitted;
  int pn = c->prompt_tokens - c->cached_tokens;   /* b4748: only what the cache did not hold */
  OUT_LIT(b, "\"timings\":{");
  if (c->sim->cfg.prefix_cache > 0) {
    OUT_LIT(b, "\"cache_n\":");
    out_i64(b, c->cached_tokens);
    OUT_LIT(b, ",");
  }
  OUT_LIT(b, "\"prompt_n\":");
  out_i64(b, pn);
  OUT_LIT(b, ",\"prompt_ms\":");
  out_double(b, prompt_ms);
  OUT_LIT(b, ",\"prompt_per_token_ms\":");
  out_double(b, pn ? prompt_ms / pn : 0);
  OUT_LIT(b, ",\"prompt_per_second\":");
  out_double(b, prompt_ms > 0 ? pn * 1e3 / prompt_ms : 0);
  OUT_LIT(b, ",\"predicted_n\":");
  out_i64(b, k);
  OUT_LIT(b, ",\"predicted_ms\":");
  out_double(b, pred_ms);
  OUT_LIT(b, ",\"predicted_per_token_ms\":");
  out_double(b, k ? pred_ms / k : 0);
  OUT_LIT(b, ",\"predicted_per_second\":");
  out_double(b, pred_ms > 0 ? k * 1e3 / pred_ms : 0);
  OUT_LIT(b, "}");
}

/* The end of llama.cpp's last /completion object: from the prompt's text
 * to the timings (streamed and not). */
static void put_llama_stop_fields(br_buf *b, conn *c) {
  out_mem(b, c->prompt_echo.p, c->prompt_echo.len);
  OUT_LIT(b, "\",\"has_new_line\":false,\"truncated\":false,\"stop_type\":\"");
  out_str(b, c->finished == 2 ? (c->n_stops ? "word" : "eos") : "limit");
  OUT_LIT(b, "\",\"stopping_word\":\"\",\"tokens_cached\":");
  out_i64(b, c->prompt_tokens + c->emitted);
  OUT_LIT(b, ",");
  put_llama_timings(b, c);
}

void llama_token(br_buf *b, conn *c, const char *t, size_t n, int wid, int64_t stamp) {
  OUT_LIT(b, "data: {\"index\":0,\"content\":\"");
  out_mem(b, t, n);
  OUT_LIT(b, "\",\"tokens\":[");
  out_i64(b, token_id(wid));
  OUT_LIT(b, "],\"stop\":false,\"id_slot\":-1,\"tokens_predicted\":");
  out_i64(b, c->emitted + 1);
  OUT_LIT(b, ",\"tokens_evaluated\":");
  out_i64(b, c->prompt_tokens);
  if (c->n_probs >= 0) {   /* n_probs: this token's and its top alternatives */
    OUT_LIT(b, ",\"completion_probabilities\":[");
    sim_put_logprob_entry(b, c, t, n);
    OUT_LIT(b, "]");
  }
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n\n");
}

void llama_final(br_buf *b, conn *c, int64_t stamp) {
  OUT_LIT(b, "data: {\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"");
  out_mem(b, c->model.p, c->model.len);
  OUT_LIT(b, "\",\"tokens_predicted\":");
  out_i64(b, c->emitted);
  OUT_LIT(b, ",\"tokens_evaluated\":");
  out_i64(b, c->prompt_tokens);
  OUT_LIT(b, ",\"generation_settings\":{\"n_predict\":");
  out_i64(b, c->max_tokens_set ? c->target : -1);
  OUT_LIT(b, ",\"seed\":");
  out_i64(b, c->seed_field);
  OUT_LIT(b, ",\"temperature\":0.800000011920929,\"top_k\":40,\"top_p\":0.949999988079071,\"stream\":true,\"max_tokens\":");
  out_i64(b, c->max_tokens_set ? c->target : -1);
  OUT_LIT(b, "},\"prompt\":\"");
  put_llama_stop_fields(b, c);
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n\n");
}

void llama_full(br_buf *b, conn *c, int64_t stamp) {
  OUT_LIT(b, "{\"index\":0,\"content\":\"");
  out_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
  OUT_LIT(b, "\",\"tokens\":[],\"id_slot\":0,\"stop\":true,\"model\":\"");
  out_mem(b, c->model.p, c->model.len);
  OUT_LIT(b, "\",\"tokens_predicted\":");
  out_i64(b, c->emitted);
  OUT_LIT(b, ",\"tokens_evaluated\":");
  out_i64(b, c->prompt_tokens);
  OUT_LIT(b, ",\"prompt\":\"");
  put_llama_stop_fields(b, c);
  put_stamp_end(b, c, stamp);
}
