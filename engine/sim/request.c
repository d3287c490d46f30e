/* A generation request's JSON body: its prompt's size, model, streaming,
 * token limit, reasoning, stop strings, seed, and the fault it asks for.
 * Each part that is wrong is answered with a 400 (or what the dialect's
 * server answers) naming the field. */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>

static int json_text_bytes(const cJSON *content, size_t *bytes) {
  if (cJSON_IsString(content)) { *bytes += strlen(content->valuestring); return 0; }
  if (cJSON_IsNull(content)) return 0;
  if (cJSON_IsArray(content)) {
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
      if (cJSON_IsString(part)) { *bytes += strlen(part->valuestring); continue; }
      const cJSON *txt = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(txt)) *bytes += strlen(txt->valuestring);
    }
    return 0;
  }
  return -1;
}

int sim_pick_fault(conn *c, const char *header_fault, size_t hlen, const cJSON *body) {
  sim_t *sim = c->sim;
  if (header_fault) {
    if (hlen == 4 && !strncasecmp(header_fault, "none", 4)) return F_NONE;
    int k = sim_find_fault(header_fault, hlen);
    return k == F_NONE ? -1 : k;
  }
  const cJSON *f = body ? cJSON_GetObjectItemCaseSensitive(body, "sim_fault") : NULL;
  if (f && !cJSON_IsNull(f)) {
    if (!cJSON_IsString(f)) return -1;
    if (!strcmp(f->valuestring, "none")) return F_NONE;
    int k = sim_find_fault(f->valuestring, strlen(f->valuestring));
    return k == F_NONE ? -1 : k;
  }
  for (int i = 1; i < F_COUNT; i++)
    if (sim->cfg.fault_prob[i] > 0 && rng_unit(&sim->rng) < sim->cfg.fault_prob[i]) return i;
  return F_NONE;
}

static int bad_request(conn *c, const char *msg) {
  sim_send_error(c, 400, "invalid_request_error", msg);
  return -1;
}

/* The chat messages' text: its bytes into *bytes. */
static int parse_messages(conn *c, cJSON *root, size_t *bytes) {
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
  if (!cJSON_IsArray(msgs)) return bad_request(c, "messages: expected a list of messages");
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    if (!cJSON_IsObject(m) || json_text_bytes(cJSON_GetObjectItemCaseSensitive(m, "content"), bytes))
      return bad_request(c, "messages: each message needs a string (or text parts) content");
  }
  return 0;
}

/* Ollama's GenerateHandler: an empty prompt loads the model (or, with
 * keep_alive 0, unloads it) and generates nothing. */
static void ollama_load_only(conn *c, cJSON *root, const cJSON *p) {
  if (!p || cJSON_IsNull(p) || (cJSON_IsString(p) && !p->valuestring[0])) {
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(root, "keep_alive");
    int zero = (cJSON_IsNumber(ka) && ka->valuedouble == 0) ||
               (cJSON_IsString(ka) && (!strcmp(ka->valuestring, "0") || !strcmp(ka->valuestring, "0s") ||
                                       !strcmp(ka->valuestring, "0m")));
    c->load_only = zero ? 2 : 1;
  }
}

/* A completion's prompt (a string, or a list of strings and token ids). */
static int parse_prompt(conn *c, cJSON *root, size_t *bytes) {
  int ollama = sim_is_ollama(c);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
  if (!p && !ollama) return bad_request(c, "prompt: required");
  if (cJSON_IsString(p)) {
    *bytes += strlen(p->valuestring);
    if (c->ep == EP_LLAMA_COMPL) out_json_esc(&c->prompt_echo, p->valuestring, strlen(p->valuestring));
  } else if (cJSON_IsArray(p)) {
    const cJSON *x;
    cJSON_ArrayForEach(x, p) {
      if (cJSON_IsString(x)) *bytes += strlen(x->valuestring);
      else if (cJSON_IsNumber(x)) *bytes += 4;   /* a token id is one token */
      else return bad_request(c, "prompt: expected a string or a list");
    }
  } else if (p && !cJSON_IsNull(p)) {
    return bad_request(c, "prompt: expected a string or a list");
  }
  if (ollama) {
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (cJSON_IsString(sys)) *bytes += strlen(sys->valuestring);
    ollama_load_only(c, root, p);
  }
  return 0;
}

/* The model: the first --model unless the request names one (llama.cpp
 * serves one model whatever the name); --strict-models: unknown -> 404. */
static int parse_model(conn *c, cJSON *root) {
  sim_t *sim = c->sim;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const char *mname = sim->cfg.models[0];
  if (cJSON_IsString(model) && model->valuestring[0] && sim->cfg.dialect != D_LLAMA) {
    int known = 0;
    for (int i = 0; i < sim->cfg.nmodels; i++) if (!strcmp(sim->cfg.models[i], model->valuestring)) known = 1;
    if (!known && sim->cfg.strict_models) {
      char msg[160];
      snprintf(msg, sizeof msg, "The model `%.100s` does not exist.", model->valuestring);
      sim_send_error(c, 404, "NotFoundError", msg);
      return -1;
    }
    mname = model->valuestring;
  }
  out_json_esc(&c->model, mname, strlen(mname));
  return 0;
}

/* The token limit, under each API's name for it; without one the answer
 * is --output-tokens (plus reasoning) long. */
static int parse_max_tokens(conn *c, cJSON *root) {
  sim_t *sim = c->sim;
  int ollama = sim_is_ollama(c);
  const cJSON *mt = NULL;
  if (ollama) mt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "num_predict");
  else if (c->ep == EP_LLAMA_COMPL) mt = cJSON_GetObjectItemCaseSensitive(root, "n_predict");
  if (!mt || cJSON_IsNull(mt)) mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
  if (!mt || cJSON_IsNull(mt)) mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
  c->max_tokens_set = 0;
  int target = sim->cfg.output_tokens + sim->cfg.reasoning_tokens;
  if (mt && !cJSON_IsNull(mt)) {
    if (!cJSON_IsNumber(mt) || mt->valuedouble != floor(mt->valuedouble))
      return bad_request(c, "max_tokens: expected an integer");
    double v = mt->valuedouble;
    if (v >= 0 && v < 1 && !ollama && c->ep != EP_LLAMA_COMPL) return bad_request(c, "max_tokens: must be at least 1");
    if (v >= 1) {   /* -1 (llama.cpp, Ollama, LM Studio): no limit */
      c->max_tokens_set = 1;
      target = v > 100000000 ? 100000000 : (int)v;
    }
  }
  c->target = target;
  return 0;
}

static int parse_stops(conn *c, cJSON *root) {
  const cJSON *stop = cJSON_GetObjectItemCaseSensitive(root, "stop");
  if (sim_is_ollama(c)) stop = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "stop");
  if (cJSON_IsString(stop) && stop->valuestring[0]) {
    c->stops[c->n_stops++] = strdup(stop->valuestring);
  } else if (cJSON_IsArray(stop)) {
    const cJSON *s;
    cJSON_ArrayForEach(s, stop) {
      if (!cJSON_IsString(s) || c->n_stops == MAX_STOPS)
        return bad_request(c, "stop: expected a string or up to 4 strings");
      if (s->valuestring[0]) c->stops[c->n_stops++] = strdup(s->valuestring);
    }
  } else if (stop && !cJSON_IsNull(stop)) {
    return bad_request(c, "stop: expected a string or up to 4 strings");
  }
  return 0;
}

/* The text depends on --seed, the request's seed and its prompt; the id on
 * the server's generator and the request's number. */
static void seed_and_id(conn *c, cJSON *root, size_t bytes) {
  sim_t *sim = c->sim;
  const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
  if (sim_is_ollama(c)) seed = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "options"), "seed");
  c->seed_field = cJSON_IsNumber(seed) ? (long)seed->valuedouble : -1;
  uint64_t h = fnv1a((const char *)&sim->cfg.seed, sizeof sim->cfg.seed, 0xcbf29ce484222325ULL);
  h = fnv1a((const char *)&c->seed_field, sizeof c->seed_field, h);
  h ^= (uint64_t)bytes * 0x9e3779b97f4a7c15ULL;
  c->rng = h;
  static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const char *pre = sim_is_chat(c) || sim->cfg.dialect == D_LLAMA ? "chatcmpl-" : "cmpl-";
  size_t pl = strlen(pre);
  memcpy(c->id, pre, pl);
  uint64_t idr = sim->rng ^ (c->req_id * 0x9e3779b97f4a7c15ULL);
  for (int i = 0; i < 24; i++) c->id[pl + i] = alnum[splitmix(&idr) % 62];
  c->id[pl + 24] = 0;
}

int sim_parse_generation(conn *c, cJSON *root) {
  sim_t *sim = c->sim;
  if (!cJSON_IsObject(root)) {
    sim_send_error(c, sim->cfg.dialect == D_LLAMA ? 500 : 400, "invalid_request_error",
                   "request body: expected a JSON object");
    return -1;
  }
  int ollama = sim_is_ollama(c);
  size_t bytes = 0;
  if (sim_is_chat(c) ? parse_messages(c, root, &bytes) : parse_prompt(c, root, &bytes)) return -1;
  c->prompt_tokens = (int)((bytes + 3) / 4);
  if (c->prompt_tokens > 100000000) c->prompt_tokens = 100000000;
  if (parse_model(c, root)) return -1;

  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
  c->stream = ollama ? !cJSON_IsFalse(st) : cJSON_IsTrue(st);
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
  c->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));

  const cJSON *nn = cJSON_GetObjectItemCaseSensitive(root, "n");
  if (nn && !cJSON_IsNull(nn) && !(cJSON_IsNumber(nn) && nn->valuedouble == 1))
    return bad_request(c, "n: only n=1 is supported by the simulator");
  if (parse_max_tokens(c, root)) return -1;

  /* reasoning */
  c->think = sim->cfg.reasoning;
  const cJSON *think = cJSON_GetObjectItemCaseSensitive(root, "think");
  if (ollama && cJSON_IsFalse(think)) c->think = R_NONE;
  if (ollama && cJSON_IsTrue(think) && c->think == R_NONE) c->think = R_FIELD;
  c->reasoning_n = c->think == R_NONE ? 0 : sim->cfg.reasoning_tokens;
  if (c->think != R_NONE && c->reasoning_n == 0) c->think = R_NONE;
  /* --reasoning-exhaust: the budget runs out in the reasoning */
  if (c->think != R_NONE && sim->cfg.reasoning_exhaust && c->max_tokens_set) c->reasoning_n = c->target;
  if (sim_parse_tools(c, root)) return -1;

  if (parse_stops(c, root)) return -1;
  seed_and_id(c, root, bytes);
  if (sim_parse_logprobs(c, root)) return bad_request(c, "top_logprobs: expected an integer 0..20");
  sim_prefix_lookup(c, root);
  return 0;
}
