/* Ollama's own API: NDJSON streams of /api/chat and /api/generate, their
 * whole answers, the load-only answer, and the model entries of /api/tags
 * and /api/ps (server/routes.go, api/types.go of Ollama 0.5). */
#include "sim.h"

#include "platform.h"

#include <stdio.h>

/* RFC 3339 UTC with nanoseconds, as Ollama's created_at. */
static void put_created_at(br_buf *b) {
  int64_t w = br_platform_wall_ns();
  time_t s = (time_t)(w / 1000000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  out_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(w % 1000000000));
}

/* {"model":"M","created_at":"T", */
static void put_head(br_buf *b, conn *c) {
  OUT_LIT(b, "{\"model\":\"");
  out_mem(b, c->model.p, c->model.len);
  OUT_LIT(b, "\",\"created_at\":\"");
  put_created_at(b);
}

static void put_ollama_stats(br_buf *b, conn *c, int64_t now) {
  OUT_LIT(b, ",\"total_duration\":");
  out_i64(b, now - c->t_arrive);
  OUT_LIT(b, ",\"load_duration\":");
  out_i64(b, c->waited_load_ns);
  OUT_LIT(b, ",\"prompt_eval_count\":");
  out_i64(b, c->prompt_tokens);
  OUT_LIT(b, ",\"prompt_eval_duration\":");
  out_i64(b, c->t_first - c->t_slot);
  OUT_LIT(b, ",\"eval_count\":");
  out_i64(b, c->emitted);
  OUT_LIT(b, ",\"eval_duration\":");
  out_i64(b, c->t_last - c->t_first);
}

void ollama_token(br_buf *b, conn *c, const char *t, size_t n, int field, int64_t stamp) {
  put_head(b, c);
  if (c->ep == EP_OLLAMA_CHAT) {
    if (field) {
      OUT_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"");
      out_mem(b, t, n);
    } else {
      OUT_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
      out_mem(b, t, n);
    }
    OUT_LIT(b, "\"},\"done\":false");
  } else {
    out_str(b, field ? "\",\"response\":\"\",\"thinking\":\"" : "\",\"response\":\"");
    out_mem(b, t, n);
    OUT_LIT(b, "\",\"done\":false");
  }
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n");
}

/* "tool_calls":[...] as Ollama's api.ToolCall: the function's name and its
 * arguments as a JSON object (Ollama parses the model's call itself). */
void ollama_tool_calls(br_buf *b, conn *c) {
  OUT_LIT(b, "\"tool_calls\":[{\"function\":{\"name\":\"");
  out_mem(b, c->tool_name.p, c->tool_name.len);
  OUT_LIT(b, "\",\"arguments\":");
  out_mem(b, c->tool_args.p, c->tool_args.len);
  OUT_LIT(b, "}}]");
}

/* The whole call in one event, as Ollama streams tool calls (its blog post
 * "Streaming responses with tool calling", 0.8). */
void ollama_tool_event(br_buf *b, conn *c, int64_t stamp) {
  put_head(b, c);
  OUT_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"\",");
  ollama_tool_calls(b, c);
  OUT_LIT(b, "},\"done\":false");
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n");
}

void ollama_final(br_buf *b, conn *c, int64_t stamp) {
  put_head(b, c);
  if (c->ep == EP_OLLAMA_CHAT) OUT_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"\"}");
  else OUT_LIT(b, "\",\"response\":\"\"");
  OUT_LIT(b, ",\"done_reason\":\"");
  out_str(b, sim_finish_str(c));
  OUT_LIT(b, "\",\"done\":true");
  put_ollama_stats(b, c, stamp);
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n");
}

void ollama_full(br_buf *b, conn *c, int64_t stamp) {
  put_head(b, c);
  if (sim_is_chat(c)) {
    OUT_LIT(b, "\",\"message\":{\"role\":\"assistant\",\"content\":\"");
    out_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    if (c->rtext.len) { OUT_LIT(b, "\",\"thinking\":\""); out_json_esc(b, c->rtext.p, c->rtext.len); }
    if (c->tool) { OUT_LIT(b, "\","); ollama_tool_calls(b, c); OUT_LIT(b, "}"); }   /* tools.c */
    else OUT_LIT(b, "\"}");
  } else {
    OUT_LIT(b, "\",\"response\":\"");
    out_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    if (c->rtext.len) { OUT_LIT(b, "\",\"thinking\":\""); out_json_esc(b, c->rtext.p, c->rtext.len); }
    OUT_LIT(b, "\"");
  }
  OUT_LIT(b, ",\"done_reason\":\"");
  out_str(b, sim_finish_str(c));
  OUT_LIT(b, "\",\"done\":true");
  put_ollama_stats(b, c, stamp);
  put_stamp_end(b, c, stamp);
}

/* The answer to a load-only (or unload) /api/generate, as Ollama's
 * GenerateHandler sends it (server/routes.go): one JSON object, streamed or
 * not, with an empty response, done_reason "load" or "unload" and no
 * durations. */
void ollama_load_answer(br_buf *b, conn *c) {
  put_head(b, c);
  OUT_LIT(b, "\",\"response\":\"\",\"done\":true,\"done_reason\":\"");
  out_str(b, c->load_only == 2 ? "unload" : "load");
  OUT_LIT(b, "\"}");
}

/* One model of /api/tags (ps = 0) or /api/ps (ps = 1). */
void ollama_model_entry(sim_t *sim, br_buf *b, const char *name, int ps) {
  OUT_LIT(b, "{\"name\":\"");
  out_json_esc(b, name, strlen(name));
  OUT_LIT(b, "\",\"model\":\"");
  out_json_esc(b, name, strlen(name));
  OUT_LIT(b, "\",");
  if (!ps) OUT_LIT(b, "\"modified_at\":\"2025-01-01T00:00:00Z\",");
  OUT_LIT(b, "\"size\":");
  out_u64(b, sim->cfg.model_memory);
  OUT_LIT(b, ",\"digest\":\"");
  char hex[65];
  uint64_t h = fnv1a(name, strlen(name), 0xcbf29ce484222325ULL);
  for (int i = 0; i < 64; i++) hex[i] = "0123456789abcdef"[splitmix(&h) & 15];
  hex[64] = 0;
  out_str(b, hex);
  OUT_LIT(b, "\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\","
             "\"families\":[\"llama\"],\"parameter_size\":\"7B\",\"quantization_level\":\"Q4_K_M\"}");
  if (ps) {
    OUT_LIT(b, ",\"expires_at\":\"2099-01-01T00:00:00Z\",\"size_vram\":");
    out_u64(b, sim->cfg.model_memory);
  }
  OUT_LIT(b, "}");
}
