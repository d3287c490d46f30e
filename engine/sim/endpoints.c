/* Endpoints: the routing of a request by method and path (each dialect
 * serves its own paths), the GET endpoints (/health, the model listings,
 * llama.cpp's /slots, Ollama's /api/ paths; /metrics is metrics.c), and the
 * generation requests' checks and admission. */
#include "sim.h"

#include <stdio.h>
#include <strings.h>

static int header_is(const char *name, size_t nl, const char *want) {
  return strlen(want) == nl && !strncasecmp(name, want, nl);
}

static int path_is(const char *p, size_t n, const char *want) { return strlen(want) == n && !memcmp(p, want, n); }

enum { ALL = 15, LLAMA = 1 << D_LLAMA, LMS = 1 << D_LMSTUDIO, OLLAMA = 1 << D_OLLAMA };

/* The generation endpoint of a path in this dialect, or EP_NONE. */
static int route(const sim_t *sim, const char *path, size_t pl) {
  static const struct { const char *path; int ep; int dialects; } posts[] = {
    {"/v1/chat/completions", EP_CHAT, ALL},
    {"/v1/completions", EP_COMPL, ALL},
    {"/completion", EP_LLAMA_COMPL, LLAMA},
    {"/completions", EP_LLAMA_COMPL, LLAMA},
    {"/chat/completions", EP_CHAT, LLAMA},
    {"/api/v0/chat/completions", EP_LMS_CHAT, LMS},
    {"/api/v0/completions", EP_LMS_COMPL, LMS},
    {"/api/chat", EP_OLLAMA_CHAT, OLLAMA},
    {"/api/generate", EP_OLLAMA_GEN, OLLAMA},
  };
  for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
    if (path_is(path, pl, posts[i].path) && (posts[i].dialects & (1 << sim->cfg.dialect))) return posts[i].ep;
  }
  return EP_NONE;
}

/* ------------------------------------------------------------------ */
/* GET                                                                  */

/* An LM Studio model entry after its id. */
static void lms_model_rest(sim_t *sim, br_buf *b) {
  OUT_LIT(b, "\",\"object\":\"model\",\"type\":\"llm\",\"publisher\":\"benchrun\",\"arch\":\"llama\","
             "\"compatibility_type\":\"gguf\",\"quantization\":\"Q4_K_M\",\"state\":\"");
  out_str(b, sim->loaded ? "loaded" : "not-loaded");
  OUT_LIT(b, "\",\"max_context_length\":");
  out_i64(b, sim->cfg.ctx_size);
  OUT_LIT(b, "}");
}

static void get_models(conn *c, int lms) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "{\"object\":\"list\",\"data\":[");
  for (int i = 0; i < sim->cfg.nmodels; i++) {
    if (i) OUT_LIT(&b, ",");
    OUT_LIT(&b, "{\"id\":\"");
    out_json_esc(&b, sim->cfg.models[i], strlen(sim->cfg.models[i]));
    if (lms) {
      lms_model_rest(sim, &b);
    } else if (sim->cfg.dialect == D_LLAMA) {
      OUT_LIT(&b, "\",\"object\":\"model\",\"created\":");
      out_i64(&b, (int64_t)sim->start_wall);
      OUT_LIT(&b, ",\"owned_by\":\"llamacpp\",\"meta\":{\"vocab_type\":1,\"n_vocab\":32064,\"n_ctx_train\":");
      out_i64(&b, sim->cfg.ctx_size);
      OUT_LIT(&b, ",\"n_embd\":4096,\"n_params\":7000000000,\"size\":");
      out_u64(&b, sim->cfg.model_memory);
      OUT_LIT(&b, "}}");
    } else if (sim->cfg.dialect == D_OLLAMA) {
      OUT_LIT(&b, "\",\"object\":\"model\",\"created\":");
      out_i64(&b, (int64_t)sim->start_wall);
      OUT_LIT(&b, ",\"owned_by\":\"library\"}");
    } else {
      OUT_LIT(&b, "\",\"object\":\"model\",\"created\":");
      out_i64(&b, (int64_t)sim->start_wall);
      OUT_LIT(&b, ",\"owned_by\":\"");
      out_str(&b, sim->cfg.dialect == D_LMSTUDIO ? "organization_owner" : "vllm");
      OUT_LIT(&b, "\",\"max_model_len\":");
      out_i64(&b, sim->cfg.ctx_size);
      OUT_LIT(&b, "}");
    }
  }
  OUT_LIT(&b, "]}");
  sim_send_full(c, 200, "application/json", b.p, b.len, NULL);
  br_buf_free(&b);
}

static void get_models_v1(conn *c) { get_models(c, 0); }
static void get_models_lms(conn *c) { get_models(c, 1); }

/* LM Studio's /api/v0/models/NAME */
static void get_lms_model(conn *c, const char *name, size_t n) {
  sim_t *sim = c->sim;
  int found = 0;
  for (int i = 0; i < sim->cfg.nmodels; i++) if (path_is(name, n, sim->cfg.models[i])) found = 1;
  if (!found) {
    sim_send_error(c, 404, "invalid_request_error", "model not found");
    return;
  }
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "{\"id\":\"");
  out_json_esc(&b, name, n);
  lms_model_rest(sim, &b);
  sim_send_full(c, 200, "application/json", b.p, b.len, NULL);
  br_buf_free(&b);
}

static void get_slots(conn *c) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "[");
  conn *in_slot[64];
  int n = 0;
  for (conn *x = sim->conns; x && n < 64; x = x->next) if (x->in_slot) in_slot[n++] = x;
  int shown = sim->cfg.slots < 64 ? sim->cfg.slots : 64;
  for (int i = 0; i < shown; i++) {
    conn *x = i < n ? in_slot[i] : NULL;
    if (i) OUT_LIT(&b, ",");
    OUT_LIT(&b, "{\"id\":");
    out_i64(&b, i);
    OUT_LIT(&b, ",\"id_task\":");
    out_i64(&b, x ? (int64_t)x->req_id : -1);
    OUT_LIT(&b, ",\"n_ctx\":");
    out_i64(&b, sim->cfg.ctx_size);
    OUT_LIT(&b, ",\"speculative\":false,\"is_processing\":");
    out_str(&b, x ? "true" : "false");
    OUT_LIT(&b, ",\"params\":{\"n_predict\":");
    out_i64(&b, x && x->max_tokens_set ? x->target : -1);
    OUT_LIT(&b, ",\"seed\":4294967295,\"temperature\":0.800000011920929,\"stream\":");
    out_str(&b, x && x->stream ? "true" : "false");
    OUT_LIT(&b, "},\"prompt\":\"\",\"next_token\":{\"has_next_token\":");
    out_str(&b, x ? "true" : "false");
    OUT_LIT(&b, ",\"has_new_line\":false,\"n_remain\":");
    out_i64(&b, x ? x->target - x->emitted : -1);
    OUT_LIT(&b, ",\"n_decoded\":");
    out_i64(&b, x ? x->emitted : 0);
    OUT_LIT(&b, ",\"stopping_word\":\"\"}}");
  }
  OUT_LIT(&b, "]");
  sim_send_full(c, 200, "application/json", b.p, b.len, NULL);
  br_buf_free(&b);
}

static void get_health(conn *c) {
  sim_t *sim = c->sim;
  if (sim->loaded) {
    static const char ok[] = "{\"status\":\"ok\"}";
    sim_send_full(c, 200, "application/json", ok, sizeof ok - 1, NULL);
  } else if (sim->cfg.dialect == D_LLAMA) {
    static const char ld[] = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}";
    sim_send_full(c, 503, "application/json", ld, sizeof ld - 1, NULL);
  } else {
    static const char ld[] = "{\"status\":\"loading\"}";
    sim_send_full(c, 503, "application/json", ld, sizeof ld - 1, NULL);
  }
}

static void get_ollama_root(conn *c) {
  static const char s[] = "Ollama is running";
  sim_send_full(c, 200, "text/plain; charset=utf-8", s, sizeof s - 1, NULL);
}

/* /api/tags (ps = 0) and /api/ps (ps = 1: only a loaded model) */
static void ollama_models(conn *c, int ps) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "{\"models\":[");
  if (!ps || sim->loaded) {
    for (int i = 0; i < sim->cfg.nmodels; i++) {
      if (i) OUT_LIT(&b, ",");
      ollama_model_entry(sim, &b, sim->cfg.models[i], ps);
    }
  }
  OUT_LIT(&b, "]}");
  sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&b);
}
static void get_ollama_tags(conn *c) { ollama_models(c, 0); }
static void get_ollama_ps(conn *c) { ollama_models(c, 1); }

static void get_ollama_version(conn *c) {
  static const char v[] = "{\"version\":\"0.5.7\"}";
  sim_send_full(c, 200, "application/json; charset=utf-8", v, sizeof v - 1, NULL);
}

/* llama.cpp's GET /props (c392e509 handle_props; tests/fixtures/llama-server/
 * props.json): the slot's context in default_generation_settings.n_ctx,
 * total_slots, and the other keys with fewer sampling params. */
static void get_props(conn *c) {
  sim_t *sim = c->sim;
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "{\"default_generation_settings\":{\"id\":0,\"id_task\":-1,\"n_ctx\":");
  out_i64(&b, sim->cfg.ctx_size);
  OUT_LIT(&b, ",\"speculative\":false,\"is_processing\":false,\"non_causal\":false,\"params\":{\"n_predict\":-1,"
              "\"seed\":4294967295,\"temperature\":0.800000011920929},\"prompt\":\"\",\"next_token\":{"
              "\"has_next_token\":true,\"has_new_line\":false,\"n_remain\":-1,\"n_decoded\":0,\"stopping_word\":\"\"}},"
              "\"total_slots\":");
  out_i64(&b, sim->cfg.slots);
  OUT_LIT(&b, ",\"model_path\":\"");
  out_json_esc(&b, sim->cfg.models[0], strlen(sim->cfg.models[0]));
  OUT_LIT(&b, "\",\"chat_template\":\"\",\"bos_token\":\"\",\"eos_token\":\"\",\"build_info\":\"");
  out_str(&b, llama_fingerprint);
  OUT_LIT(&b, "\"}");
  sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&b);
}

static const struct { const char *path; int dialects; void (*get)(conn *c); } get_routes[] = {
  {"/health", ALL, get_health},
  {"/", OLLAMA, get_ollama_root},
  {"/v1/models", ALL, get_models_v1},
  {"/models", LLAMA, get_models_v1},
  {"/metrics", ALL, sim_get_metrics},
  {"/slots", LLAMA, get_slots},
  {"/props", LLAMA, get_props},
  {"/api/v0/models", LMS, get_models_lms},
  {"/api/tags", OLLAMA, get_ollama_tags},
  {"/api/ps", OLLAMA, get_ollama_ps},
  {"/api/version", OLLAMA, get_ollama_version},
};

static void handle_get(conn *c, const char *path, size_t pl) {
  int d = c->sim->cfg.dialect;
  for (size_t i = 0; i < sizeof get_routes / sizeof get_routes[0]; i++) {
    if (path_is(path, pl, get_routes[i].path) && (get_routes[i].dialects & (1 << d))) {
      get_routes[i].get(c);
      return;
    }
  }
  if (d == D_LMSTUDIO && pl > 15 && !memcmp(path, "/api/v0/models/", 15)) {
    get_lms_model(c, path + 15, pl - 15);
    return;
  }
  int ep = route(c->sim, path, pl);
  if (ep != EP_NONE) {
    c->ep = ep;   /* for the Allow header */
    sim_send_error(c, 405, "invalid_request_error", "method not allowed (use POST)");
    return;
  }
  sim_send_error(c, 404, "invalid_request_error", "not found");
}

/* ------------------------------------------------------------------ */
/* POST: generation                                                     */

static void send_ollama_load(conn *c) {
  br_buf b = BR_BUF_INIT;
  ollama_load_answer(&b, c);
  sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&b);
}

/* A load is answered once the model is loaded. */
void sim_answer_load_waiters(sim_t *sim) {
  conn *c = sim->qhead;
  while (c) {
    conn *next = c->qnext;
    if (c->load_only) {
      sim_queue_remove(c);
      send_ollama_load(c);
    }
    c = next;
  }
}

/* A generation request that passed its checks: rejected (loading, queue
 * full), or its headers now and a slot or the queue. */
static void admit(conn *c) {
  sim_t *sim = c->sim;
  if (!sim->loaded && sim->cfg.dialect != D_OLLAMA) {
    sim->c_rejected++;
    sim_send_error(c, 503, "unavailable_error", "Loading model");
    return;
  }
  int full = sim->active >= sim->cfg.slots || sim->qhead || !sim->loaded;
  if (full && sim->cfg.max_queue >= 0 && sim->qlen >= sim->cfg.max_queue) {
    sim->c_rejected++;
    sim_send_error(c, sim->cfg.queue_status, sim->cfg.queue_status == 429 ? "rate_limit_error" : "unavailable_error",
               "server busy: queue full (--max-queue)");
    return;
  }
  sim->c_prompt_tokens += (uint64_t)c->prompt_tokens;
  c->fault_at = c->target / 2;
  c->t_arrive = c->t_read ? c->t_read : br_now();
  c->created = time(NULL);
  if (c->stream) sim_stream_headers(c);
  if (full) {
    sim_queue_append(c);
  } else {
    sim_start_sequence(c);
  }
}

static void handle_generation(conn *c, const char *fault_hdr, size_t fhl) {
  sim_t *sim = c->sim;
  const char *body = c->in.p + c->head_len;
  cJSON *root = cJSON_ParseWithLength(body, c->body_len);
  sim->c_requests++;
  if (!root) {
    char msg[200];
    const char *where = cJSON_GetErrorPtr();
    long off = where && where >= body && where <= body + c->body_len ? (long)(where - body) : -1;
    snprintf(msg, sizeof msg, "request body: invalid JSON at byte %ld", off);
    if (sim->cfg.dialect == D_LLAMA) sim_send_error(c, 500, "server_error", msg);
    else sim_send_error(c, 400, sim->cfg.dialect == D_OPENAI ? "BadRequestError" : "invalid_request_error", msg);
    return;
  }
  int fault = sim_pick_fault(c, fault_hdr, fhl, root);
  if (fault < 0) {
    cJSON_Delete(root);
    sim_send_error(c, 400, "invalid_request_error",
               "X-Sim-Fault / sim_fault: unknown fault kind (refuse, http500, http503, stall-first-byte, "
               "stall-mid, drop, bad-json, content-type, huge-event, endless-line, crash, none)");
    return;
  }
  int r = sim_parse_generation(c, root);
  cJSON_Delete(root);
  if (r < 0) return;
  if (c->load_only) {
    if (sim->loaded || c->load_only == 2) {
      send_ollama_load(c);
      return;
    }
    sim_queue_append(c);
    return;
  }
  c->fault = fault;
  sim->gen_requests++;
  if (sim->cfg.crash_after >= 0 && sim->gen_requests > (uint64_t)sim->cfg.crash_after) {
    char why[64];
    snprintf(why, sizeof why, "--crash-after %ld reached", sim->cfg.crash_after);
    sim_crash(why);
  }
  switch (fault) {
  case F_REFUSE:
    sim_conn_close(c);
    return;
  case F_HTTP500:
    sim_send_error(c, 500, "InternalServerError", "simulated internal error (fault http500)");
    return;
  case F_HTTP503:
    sim_send_error(c, 503, "ServiceUnavailableError", "simulated overload (fault http503)");
    return;
  case F_STALL_FIRST:
    c->state = CS_STALLED;
    return;
  default:
    break;
  }
  admit(c);
}

/* The value of the request's X-Sim-Fault header, or NULL (the head was
 * validated by conn.c's parser). */
static const char *fault_header(const char *p, size_t head_len, size_t *len) {
  const char *fault_hdr = NULL;
  /* find X-Sim-Fault again (headers were validated in parse_head) */
  const char *line = memchr(p, '\n', head_len) + 1;
  const char *end = p + head_len;
  while (line < end) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    if (!nl) break;
    const char *colon = memchr(line, ':', (size_t)(nl - line));
    if (colon && header_is(line, (size_t)(colon - line), "x-sim-fault")) {
      const char *v = colon + 1;
      while (v < nl && (*v == ' ' || *v == '\t')) v++;
      const char *ve = nl;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      fault_hdr = v;
      *len = (size_t)(ve - v);
    }
    line = nl + 1;
  }
  return fault_hdr;
}

/* A complete request is in c->in: route and answer it. */
void sim_dispatch(conn *c) {
  sim_t *sim = c->sim;
  br_timer_stop(sim->loop, &c->tmo);
  c->req_id = ++sim->next_req_id;
  const char *p = c->in.p;
  const char *sp1 = memchr(p, ' ', c->head_len);
  const char *method = p;
  size_t ml = sp1 ? (size_t)(sp1 - p) : 0;
  const char *path = sp1 + 1;
  const char *sp2 = memchr(path, ' ', c->head_len - (size_t)(path - p));
  size_t pl = (size_t)(sp2 - path);
  const char *q = memchr(path, '?', pl);
  if (q) pl = (size_t)(q - path);
  size_t fhl = 0;
  const char *fault_hdr = fault_header(p, c->head_len, &fhl);
  int ep = route(sim, path, pl);
  if (ml == 3 && !memcmp(method, "GET", 3)) { handle_get(c, path, pl); return; }
  if (ml == 4 && !memcmp(method, "POST", 4)) {
    /* llama.cpp's and vLLM's tokenizer endpoints (tokenize.c) */
    int tok = sim->cfg.dialect == D_LLAMA || sim->cfg.dialect == D_OPENAI;
    if (tok && path_is(path, pl, "/tokenize")) { sim_tokenize(c); return; }
    if (tok && path_is(path, pl, "/detokenize")) { sim_detokenize(c); return; }
    if (ep == EP_NONE && sim_prefix_reset(c, path, pl, q ? q : path + pl, q ? (size_t)(sp2 - q) : 0)) return;
    if (ep == EP_NONE) {
      /* a GET-only path: 405; anything else: 404 */
      if (path_is(path, pl, "/health") || path_is(path, pl, "/v1/models") || path_is(path, pl, "/metrics"))
        sim_send_error(c, 405, "invalid_request_error", "method not allowed (use GET)");
      else sim_send_error(c, 404, "invalid_request_error", "not found");
      return;
    }
    c->ep = ep;
    handle_generation(c, fault_hdr, fhl);
    return;
  }
  c->ep = ep;
  sim_send_error(c, 405, "invalid_request_error", "method not allowed");
}
