/* Logprobs (a request's logprobs/top_logprobs, or llama.cpp's n_probs):
 * a small deterministic "model" behind each token. At each position
 * SIM_LP_CAND candidate words get logits from a hash chained over the
 * prompt's seed and every token chosen so far, so two runs of one prompt
 * agree token by token and a different token changes all that follows.
 * --logprob-noise F adds F times a uniform -1..1 to each logit, drawn from
 * the same chain with a fixed salt: the same variant always answers the
 * same, and a larger F (a Q4-like quantization) flips the top token, and
 * moves the distribution, more often than a small one (Q8-like). The
 * token taken is the top one (temperature 0); its text is " " + the word.
 * The logprobs are a log-softmax over the candidates and a rest mass. */
#include "sim.h"

#include <math.h>

enum { SIM_LP_CAND = 8 };

/* Fill c->lp for the next token; returns the chosen word (0..63). */
int sim_logprob_step(conn *c) {
  double noise = c->sim->cfg.logprob_noise;
  uint64_t h = c->lp_chain;
  int ids[SIM_LP_CAND];
  double lg[SIM_LP_CAND];
  for (int j = 0; j < SIM_LP_CAND; j++) {
    uint64_t s = h + (uint64_t)j * 0x9e3779b97f4a7c15ULL;
    int w;
    int dup;
    do {   /* distinct words */
      w = (int)(splitmix(&s) & 63);
      dup = 0;
      for (int i = 0; i < j; i++) if (ids[i] == w) dup = 1;
    } while (dup);
    ids[j] = w;
    lg[j] = -0.9 * j - 0.3 * rng_unit(&s);
    uint64_t ns = s ^ 0x5bd1e9955bd1e995ULL;
    if (noise > 0) lg[j] += noise * (2 * rng_unit(&ns) - 1);
  }
  /* sort by logit, highest first (8 items) */
  for (int i = 1; i < SIM_LP_CAND; i++)
    for (int j = i; j > 0 && lg[j] > lg[j - 1]; j--) {
      double t = lg[j]; lg[j] = lg[j - 1]; lg[j - 1] = t;
      int u = ids[j]; ids[j] = ids[j - 1]; ids[j - 1] = u;
    }
  double z = exp(-6.0);   /* the rest of the vocabulary */
  for (int j = 0; j < SIM_LP_CAND; j++) z += exp(lg[j]);
  int k = c->n_probs < SIM_LP_CAND ? c->n_probs : SIM_LP_CAND;
  c->lp_n = k;
  for (int j = 0; j < k; j++) { c->lp_ids[j] = ids[j]; c->lp_vals[j] = lg[j] - log(z); }
  c->lp_chosen = lg[0] - log(z);
  c->lp_chain = fnv1a((const char *)&ids[0], sizeof ids[0], h * 0x100000001b3ULL + 1);
  return ids[0];
}

static void put_bytes(br_buf *b, const char *t, size_t n) {
  OUT_LIT(b, "[");
  for (size_t i = 0; i < n; i++) {
    if (i) OUT_LIT(b, ",");
    out_u64(b, (unsigned char)t[i]);
  }
  OUT_LIT(b, "]");
}

/* One entry: {"id"?, "token", "bytes", "logprob"} (llama.cpp puts the id
 * first; vLLM has none). */
static void put_entry(br_buf *b, const conn *c, int word, const char *t, size_t n, double lp) {
  int llama = c->sim->cfg.dialect == D_LLAMA;
  OUT_LIT(b, "{");
  if (llama) { OUT_LIT(b, "\"id\":"); out_i64(b, 1000 + word * 37); OUT_LIT(b, ","); }
  OUT_LIT(b, "\"token\":\"");
  out_mem(b, t, n);
  OUT_LIT(b, "\",");
  if (llama) { OUT_LIT(b, "\"bytes\":"); put_bytes(b, t, n); OUT_LIT(b, ",\"logprob\":"); out_double(b, lp); }
  else { OUT_LIT(b, "\"logprob\":"); out_double(b, lp); OUT_LIT(b, ",\"bytes\":"); put_bytes(b, t, n); }
}

/* The token's entry with its top_logprobs, as in choices[0].logprobs.content
 * and llama.cpp's completion_probabilities. */
void sim_put_logprob_entry(br_buf *b, const conn *c, const char *t, size_t n) {
  put_entry(b, c, c->lp_n ? c->lp_ids[0] : 0, t, n, c->lp_chosen);
  OUT_LIT(b, ",\"top_logprobs\":[");
  for (int j = 0; j < c->lp_n; j++) {
    char w[64];
    size_t wl = sim_word_text(c->lp_ids[j], w);
    if (j) OUT_LIT(b, ",");
    put_entry(b, c, c->lp_ids[j], w, wl, c->lp_vals[j]);
    OUT_LIT(b, "}");
  }
  OUT_LIT(b, "]}");
}

/* vLLM's /v1/completions (the legacy shape): {"text_offset", "token_logprobs",
 * "tokens", "top_logprobs": [{token: logprob}]}. */
void sim_put_logprob_legacy(br_buf *b, const conn *c, const char *t, size_t n) {
  OUT_LIT(b, "{\"text_offset\":[");
  out_u64(b, c->lp_offset);
  OUT_LIT(b, "],\"token_logprobs\":[");
  out_double(b, c->lp_chosen);
  OUT_LIT(b, "],\"tokens\":[\"");
  out_mem(b, t, n);
  OUT_LIT(b, "\"],\"top_logprobs\":[{");
  for (int j = 0; j < c->lp_n; j++) {
    char w[64];
    size_t wl = sim_word_text(c->lp_ids[j], w);
    if (j) OUT_LIT(b, ",");
    OUT_LIT(b, "\"");
    out_mem(b, w, wl);
    OUT_LIT(b, "\":");
    out_double(b, c->lp_vals[j]);
  }
  OUT_LIT(b, "}]}");
}

/* The request's ask: chat logprobs:true + top_logprobs k, completions
 * logprobs:k, llama.cpp n_probs:k. -1: none asked; dialects without
 * logprobs (LM Studio, Ollama) ignore the fields. */
int sim_parse_logprobs(conn *c, const cJSON *root) {
  int d = c->sim->cfg.dialect;
  c->n_probs = -1;
  if (d != D_OPENAI && d != D_LLAMA) return 0;
  const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
  const cJSON *top = cJSON_GetObjectItemCaseSensitive(root, "top_logprobs");
  const cJSON *np = cJSON_GetObjectItemCaseSensitive(root, "n_probs");
  double k = -1;
  if (c->ep == EP_LLAMA_COMPL) { if (cJSON_IsNumber(np)) k = np->valuedouble; }
  else if (sim_is_chat(c)) { if (cJSON_IsTrue(lp)) k = cJSON_IsNumber(top) ? top->valuedouble : 0; }
  else if (cJSON_IsNumber(lp)) k = lp->valuedouble;
  if (k > 20 || (k < 0 && k != -1)) return -1;
  c->n_probs = (int)k;
  if (c->n_probs == 0 && c->ep == EP_LLAMA_COMPL) c->n_probs = -1;   /* n_probs 0: none */
  uint64_t h = fnv1a((const char *)&c->sim->cfg.seed, sizeof c->sim->cfg.seed, 0xcbf29ce484222325ULL);
  c->lp_chain = h ^ ((uint64_t)c->prompt_tokens * 0x9e3779b97f4a7c15ULL);
  c->lp_offset = 0;
  return 0;
}
