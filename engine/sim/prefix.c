/* The prefix cache (--prefix-cache N): a repeated prompt prefix is served
 * from the cache, as vLLM's automatic prefix caching, SGLang's radix cache
 * and llama.cpp's per-slot prompt cache do. The prompt's text is cut into
 * blocks of SIM_PC_BLOCK bytes (SIM_PC_BLOCK / 4 tokens at the simulator's
 * four bytes a token); each block is known by a hash chained over every
 * block before it, so a block is cached only with its whole prefix. The
 * cache holds N tokens' worth of blocks, oldest out first, looked up by a
 * linear scan (a few thousand blocks: microseconds per request). A hit
 * shortens the prefill to the uncached tokens and is reported in each
 * dialect's own fields (wire_openai.c, wire_llama.c). At least one prompt
 * token is always computed, as the real servers do.
 *
 * The reset endpoints: vLLM's POST /reset_prefix_cache (200, empty body),
 * SGLang's POST /flush_cache (200, text), llama.cpp's
 * POST /slots/{id}?action=erase ({"id_slot", "n_erased"}). */
#include "sim.h"

enum { SIM_PC_BLOCK = 64 };

/* The prompt's text as the cache sees it: message roles and contents, or
 * the prompt string, in order. */
static void prompt_text(const cJSON *root, br_buf *t) {
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
  const cJSON *m;
  if (cJSON_IsArray(msgs)) {
    cJSON_ArrayForEach(m, msgs) {
      const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
      const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
      if (cJSON_IsString(role)) { out_str(t, role->valuestring); OUT_LIT(t, "\n"); }
      if (cJSON_IsString(content)) { out_str(t, content->valuestring); OUT_LIT(t, "\n"); }
    }
  }
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
  if (cJSON_IsString(p)) out_str(t, p->valuestring);
}

static int cached_block(const sim_t *sim, uint64_t h) {
  for (size_t i = 0; i < sim->pc_len; i++) if (sim->pc_keys[i] == h) return 1;
  return 0;
}

static void add_block(sim_t *sim, uint64_t h) {
  if (sim->pc_len < sim->pc_cap) { sim->pc_keys[sim->pc_len++] = h; return; }
  sim->pc_keys[sim->pc_next] = h;   /* full: replace the oldest */
  sim->pc_next = (sim->pc_next + 1) % sim->pc_cap;
}

/* Look the request's prompt up, then remember its blocks: c->cached_tokens. */
void sim_prefix_lookup(conn *c, const cJSON *root) {
  sim_t *sim = c->sim;
  c->cached_tokens = 0;
  if (sim->cfg.prefix_cache <= 0) return;
  if (!sim->pc_keys) {
    sim->pc_cap = (size_t)sim->cfg.prefix_cache / (SIM_PC_BLOCK / 4);
    if (sim->pc_cap == 0) sim->pc_cap = 1;
    sim->pc_keys = calloc(sim->pc_cap, sizeof *sim->pc_keys);
    if (!sim->pc_keys) sim_out_of_memory();
  }
  br_buf t = BR_BUF_INIT;
  prompt_text(root, &t);
  uint64_t h = 0xcbf29ce484222325ULL;
  int hits = 0, prefix = 1;
  for (size_t off = 0; off + SIM_PC_BLOCK <= t.len; off += SIM_PC_BLOCK) {
    h = fnv1a(t.p + off, SIM_PC_BLOCK, h);
    if (prefix && cached_block(sim, h)) { hits++; continue; }
    prefix = 0;
    add_block(sim, h);
  }
  br_buf_free(&t);
  int cached = hits * (SIM_PC_BLOCK / 4);
  if (cached > c->prompt_tokens - 1) cached = c->prompt_tokens > 0 ? c->prompt_tokens - 1 : 0;
  c->cached_tokens = cached;
  sim->c_prefix_queries += (uint64_t)c->prompt_tokens;
  sim->c_prefix_hits += (uint64_t)cached;
}

static void reset(sim_t *sim) {
  sim->pc_len = 0;
  sim->pc_next = 0;
}

/* POST to a reset path of this dialect: 1 if answered, 0 if not one. */
int sim_prefix_reset(conn *c, const char *path, size_t pl, const char *query, size_t ql) {
  sim_t *sim = c->sim;
  int d = sim->cfg.dialect;
  if (d == D_OPENAI && pl == 19 && !memcmp(path, "/reset_prefix_cache", 19)) {
    reset(sim);
    sim_send_full(c, 200, "application/json", "", 0, NULL);
    return 1;
  }
  if (d == D_OPENAI && pl == 12 && !memcmp(path, "/flush_cache", 12)) {
    static const char msg[] = "Cache flushed.\nPlease check backend logs for more details. (When there are running or "
                              "waiting requests, the operation will not be performed.)\n";
    reset(sim);
    sim_send_full(c, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1, NULL);
    return 1;
  }
  if (d == D_LLAMA && pl > 7 && !memcmp(path, "/slots/", 7)) {
    long id = 0;
    for (size_t i = 7; i < pl; i++) {
      if (path[i] < '0' || path[i] > '9' || id > 1000000) { sim_send_error(c, 400, "invalid_request_error", "Invalid slot ID"); return 1; }
      id = id * 10 + (path[i] - '0');
    }
    if (!(ql == 13 && !memcmp(query, "?action=erase", 13))) {
      sim_send_error(c, 400, "invalid_request_error", "Invalid action");
      return 1;
    }
    br_buf b = BR_BUF_INIT;
    out_printf(&b, "{\"id_slot\":%ld,\"n_erased\":%llu}", id, (unsigned long long)sim->pc_len * (SIM_PC_BLOCK / 4));
    reset(sim);
    sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
    br_buf_free(&b);
    return 1;
  }
  return 0;
}
