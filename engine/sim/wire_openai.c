/* OpenAI-compatible answers: /v1/chat/completions and /v1/completions as
 * SSE chunks and as whole JSON answers, in each dialect's variant: vLLM's
 * (openai; also SGLang's and mlx_lm.server's shape), llama.cpp's (fields in
 * its own order, timings), LM Studio's (its /api/v0 stats) and Ollama's /v1
 * compatibility layer. */
#include "sim.h"

/* The head of an OpenAI-style chunk up to the choices array. */
static void chunk_head(br_buf *b, conn *c) {
  int d = c->sim->cfg.dialect;
  int chat = sim_is_chat(c);
  if (d == D_LLAMA) {
    OUT_LIT(b, "data: {\"choices\":[");
    return;
  }
  OUT_LIT(b, "data: {\"id\":\"");
  out_str(b, c->id);
  if (chat) OUT_LIT(b, "\",\"object\":\"chat.completion.chunk\",\"created\":");
  else OUT_LIT(b, "\",\"object\":\"text_completion\",\"created\":");
  out_i64(b, (int64_t)c->created);
  OUT_LIT(b, ",\"model\":\"");
  out_mem(b, c->model.p, c->model.len);
  if (d == D_LMSTUDIO) {
    OUT_LIT(b, "\",\"system_fingerprint\":\"");
    out_mem(b, c->model.p, c->model.len);
  } else if (d == D_OLLAMA) {
    OUT_LIT(b, "\",\"system_fingerprint\":\"fp_ollama");
  }
  OUT_LIT(b, "\",\"choices\":[");
}

/* llama.cpp puts id/model after the choices. */
static void chunk_tail_llama(br_buf *b, conn *c) {
  if (sim_is_chat(c)) {
    OUT_LIT(b, "],\"created\":");
    out_i64(b, (int64_t)c->created);
    OUT_LIT(b, ",\"id\":\"");
    out_str(b, c->id);
    OUT_LIT(b, "\",\"model\":\"");
    out_mem(b, c->model.p, c->model.len);
    OUT_LIT(b, "\",\"system_fingerprint\":\"");
    out_str(b, llama_fingerprint);
    OUT_LIT(b, "\",\"object\":\"chat.completion.chunk\"");
  } else {
    OUT_LIT(b, "],\"created\":");
    out_i64(b, (int64_t)c->created);
    OUT_LIT(b, ",\"model\":\"");
    out_mem(b, c->model.p, c->model.len);
    OUT_LIT(b, "\",\"system_fingerprint\":\"");
    out_str(b, llama_fingerprint);
    OUT_LIT(b, "\",\"object\":\"text_completion\",\"id\":\"");
    out_str(b, c->id);
    OUT_LIT(b, "\"");
  }
}

/* vLLM's order; the others' differs */
void put_usage(br_buf *b, conn *c) {
  OUT_LIT(b, "\"usage\":{");
  if (c->sim->cfg.dialect == D_OPENAI) {
    OUT_LIT(b, "\"prompt_tokens\":");
    out_i64(b, c->prompt_tokens);
    OUT_LIT(b, ",\"total_tokens\":");
    out_i64(b, c->prompt_tokens + c->emitted);
    OUT_LIT(b, ",\"completion_tokens\":");
    out_i64(b, c->emitted);
    if (c->sim->cfg.prefix_cache > 0) {   /* vLLM with --enable-prompt-tokens-details */
      OUT_LIT(b, ",\"prompt_tokens_details\":{\"cached_tokens\":");
      out_i64(b, c->cached_tokens);
      OUT_LIT(b, "}");
    }
  } else {
    OUT_LIT(b, "\"completion_tokens\":");
    out_i64(b, c->emitted);
    OUT_LIT(b, ",\"prompt_tokens\":");
    out_i64(b, c->prompt_tokens);
    OUT_LIT(b, ",\"total_tokens\":");
    out_i64(b, c->prompt_tokens + c->emitted);
  }
  OUT_LIT(b, "}");
}

static void put_lms_stats(br_buf *b, conn *c) {
  double gen_s = (double)(c->t_last - c->t_first) / 1e9;
  OUT_LIT(b, "\"stats\":{\"tokens_per_second\":");
  out_double(b, gen_s > 0 ? c->emitted / gen_s : 0);
  OUT_LIT(b, ",\"time_to_first_token\":");
  out_double(b, (double)(c->t_first - c->t_arrive) / 1e9);
  OUT_LIT(b, ",\"generation_time\":");
  out_double(b, gen_s);
  OUT_LIT(b, ",\"stop_reason\":\"");
  out_str(b, c->finished == 2 ? (c->n_stops ? "stopStringFound" : "eosFound") : "maxPredictedTokensReached");
  OUT_LIT(b, "\"},\"model_info\":{\"arch\":\"llama\",\"quant\":\"Q4_K_M\",\"format\":\"gguf\",\"context_length\":");
  out_i64(b, c->sim->cfg.ctx_size);
  OUT_LIT(b, "},\"runtime\":{\"name\":\"llama.cpp-sim\",\"version\":\"1.0.0\",\"supported_formats\":[\"gguf\"]}");
}

/* A token's logprobs, where asked for: {"content": [entry]} (chat, and
 * llama.cpp's completions), vLLM's legacy object for /v1/completions;
 * `as_value`: else null, where the field is always there (vLLM's order).
 * llama.cpp's chat chunk has the field only when asked for. */
static void put_logprobs(br_buf *b, conn *c, const char *t, size_t n, int as_value) {
  if (c->n_probs < 0) {
    if (as_value) OUT_LIT(b, "null");
    return;
  }
  if (!as_value) OUT_LIT(b, ",\"logprobs\":");
  if (!sim_is_chat(c) && c->sim->cfg.dialect == D_OPENAI) { sim_put_logprob_legacy(b, c, t, n); return; }
  OUT_LIT(b, "{\"content\":[");
  sim_put_logprob_entry(b, c, t, n);
  OUT_LIT(b, "]}");
}

/* One token's chunk; `field`: it goes to reasoning_content. */
void oai_token(br_buf *b, conn *c, const char *t, size_t n, int field, int last, int64_t stamp) {
  int d = c->sim->cfg.dialect;
  int chat = sim_is_chat(c);
  int fin = last && d != D_LLAMA && d != D_LMSTUDIO;
  chunk_head(b, c);
  if (d == D_LLAMA) {
    if (chat) {
      OUT_LIT(b, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"");
      if (field) OUT_LIT(b, "reasoning_content\":\""); else OUT_LIT(b, "content\":\"");
      out_mem(b, t, n);
      OUT_LIT(b, "\"}");
      put_logprobs(b, c, t, n, 0);
      OUT_LIT(b, "}");
    } else {
      OUT_LIT(b, "{\"text\":\"");
      out_mem(b, t, n);
      OUT_LIT(b, "\",\"index\":0,\"logprobs\":");
      put_logprobs(b, c, t, n, 1);
      OUT_LIT(b, ",\"finish_reason\":null}");
    }
    chunk_tail_llama(b, c);
  } else if (chat) {
    OUT_LIT(b, "{\"index\":0,\"delta\":{");
    if (d == D_LMSTUDIO || d == D_OLLAMA) OUT_LIT(b, "\"role\":\"assistant\",");
    if (field) OUT_LIT(b, "\"reasoning_content\":\""); else OUT_LIT(b, "\"content\":\"");
    out_mem(b, t, n);
    OUT_LIT(b, "\"},\"logprobs\":");
    put_logprobs(b, c, t, n, 1);
    OUT_LIT(b, ",\"finish_reason\":");
    if (fin) { OUT_LIT(b, "\""); out_str(b, sim_finish_str(c)); OUT_LIT(b, "\"}]"); c->fin_sent = 1; }
    else OUT_LIT(b, "null}]");
  } else {
    OUT_LIT(b, "{\"index\":0,\"text\":\"");
    out_mem(b, t, n);
    OUT_LIT(b, "\",\"logprobs\":");
    put_logprobs(b, c, t, n, 1);
    OUT_LIT(b, ",\"finish_reason\":");
    if (fin) { OUT_LIT(b, "\""); out_str(b, sim_finish_str(c)); OUT_LIT(b, "\""); c->fin_sent = 1; }
    else OUT_LIT(b, "null");
    if (d == D_OPENAI) OUT_LIT(b, ",\"stop_reason\":null");
    OUT_LIT(b, "}]");
  }
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n\n");
}

/* One tool-call chunk (tools.c says when): the call's first event names it
 * (id, type, name), the next ones carry pieces of its arguments; Ollama's
 * /v1 sends it whole. Fields in each server's order: llama.cpp's
 * common_chat_msg_diff_to_json_oaicompat (index, id, type, function {name,
 * arguments}), vLLM's DeltaToolCall (id, type, index, function {name}, no
 * arguments in the first), LM Studio's and Ollama's (with the role). */
void oai_tool_event(br_buf *b, conn *c, const char *id, int head, const char *args, size_t n, int64_t stamp) {
  int d = c->sim->cfg.dialect;
  chunk_head(b, c);
  if (d == D_LLAMA) OUT_LIT(b, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0");
  else if (d == D_OPENAI) OUT_LIT(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{");
  else if (d == D_OLLAMA) OUT_LIT(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{");
  else OUT_LIT(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0");
  if (head) {
    out_str(b, d == D_OPENAI || d == D_OLLAMA ? "\"id\":\"" : ",\"id\":\"");
    out_str(b, id);
    OUT_LIT(b, "\",\"type\":\"function\"");
    if (d == D_OPENAI || d == D_OLLAMA) OUT_LIT(b, ",\"index\":0");
    OUT_LIT(b, ",\"function\":{\"name\":\"");
    out_mem(b, c->tool_name.p, c->tool_name.len);
    OUT_LIT(b, "\"");
    if (d != D_OPENAI || n) OUT_LIT(b, ",\"arguments\":\"");
  } else {
    if (d == D_OPENAI) OUT_LIT(b, "\"index\":0");
    else if (d == D_LMSTUDIO) OUT_LIT(b, ",\"type\":\"function\"");
    OUT_LIT(b, ",\"function\":{\"arguments\":\"");
  }
  if (!head || d != D_OPENAI || n) {
    out_json_esc(b, args, n);
    OUT_LIT(b, "\"");
  }
  OUT_LIT(b, "}}]}");
  if (d == D_LLAMA) {
    OUT_LIT(b, "}");
    chunk_tail_llama(b, c);
  } else {
    if (d != D_OLLAMA) OUT_LIT(b, ",\"logprobs\":null");
    OUT_LIT(b, ",\"finish_reason\":null}]");
  }
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n\n");
}

/* vLLM sends the assistant role alone before the first token. */
void oai_role(br_buf *b, conn *c, int64_t stamp) {
  chunk_head(b, c);
  OUT_LIT(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]");
  put_stamp_end(b, c, stamp);
  OUT_LIT(b, "\n\n");
}

/* The closing events: finish reason where it has not been sent, usage,
 * server timings, [DONE]. */
void oai_final(br_buf *b, conn *c, int64_t stamp) {
  int d = c->sim->cfg.dialect;
  int chat = sim_is_chat(c);
  if (d == D_LLAMA) {
    chunk_head(b, c);
    if (chat) OUT_LIT(b, "{\"finish_reason\":\"");
    else OUT_LIT(b, "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"");
    out_str(b, sim_finish_str(c));
    if (chat) OUT_LIT(b, "\",\"index\":0,\"delta\":{}}");
    else OUT_LIT(b, "\"}");
    chunk_tail_llama(b, c);
    OUT_LIT(b, ",");
    put_usage(b, c);
    OUT_LIT(b, ",");
    put_llama_timings(b, c);
    put_stamp_end(b, c, stamp);
    OUT_LIT(b, "\n\ndata: [DONE]\n\n");
    return;
  }
  if (d == D_LMSTUDIO) {
    chunk_head(b, c);
    if (chat) OUT_LIT(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
    else OUT_LIT(b, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"");
    out_str(b, sim_finish_str(c));
    OUT_LIT(b, "\"}]");
    if (c->include_usage) { OUT_LIT(b, ","); put_usage(b, c); }
    /* no stats, model_info or runtime here: LM Studio sends them only in
     * non-streamed /api/v0 answers (lmstudio-bug-tracker#676, 0.3.x) */
    put_stamp_end(b, c, stamp);
    OUT_LIT(b, "\n\ndata: [DONE]\n\n");
    return;
  }
  if (!c->fin_sent) {
    chunk_head(b, c);
    if (chat) OUT_LIT(b, "{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"");
    else OUT_LIT(b, "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"");
    out_str(b, sim_finish_str(c));
    OUT_LIT(b, "\"");
    if (!chat && d == D_OPENAI) OUT_LIT(b, ",\"stop_reason\":null");
    OUT_LIT(b, "}]");
    put_stamp_end(b, c, stamp);
    OUT_LIT(b, "\n\n");
  }
  if (c->include_usage) {
    chunk_head(b, c);
    OUT_LIT(b, "],");
    put_usage(b, c);
    put_stamp_end(b, c, stamp);
    OUT_LIT(b, "\n\n");
  }
  OUT_LIT(b, "data: [DONE]\n\n");
}

/* The whole answer of a non-streaming request. */
void oai_full(br_buf *b, conn *c, int64_t stamp) {
  int d = c->sim->cfg.dialect;
  int chat = sim_is_chat(c);
  if (d == D_LLAMA) OUT_LIT(b, "{\"choices\":[");
  else {
    OUT_LIT(b, "{\"id\":\"");
    out_str(b, c->id);
    out_str(b, chat ? "\",\"object\":\"chat.completion\",\"created\":" : "\",\"object\":\"text_completion\",\"created\":");
    out_i64(b, (int64_t)c->created);
    OUT_LIT(b, ",\"model\":\"");
    out_mem(b, c->model.p, c->model.len);
    OUT_LIT(b, "\",\"choices\":[");
  }
  if (chat) {
    if (d == D_LLAMA) {
      OUT_LIT(b, "{\"finish_reason\":\"");
      out_str(b, sim_finish_str(c));
      OUT_LIT(b, "\",\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    } else OUT_LIT(b, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    out_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    OUT_LIT(b, "\"");
    if (c->tool) { OUT_LIT(b, ","); sim_tool_message(b, c); }   /* tools.c */
    if (c->rtext.len) {
      OUT_LIT(b, ",\"reasoning_content\":\"");
      out_json_esc(b, c->rtext.p, c->rtext.len);
      OUT_LIT(b, "\"");
    }
    OUT_LIT(b, "}");
    if (d != D_LLAMA) {
      OUT_LIT(b, ",\"logprobs\":null,\"finish_reason\":\"");
      out_str(b, sim_finish_str(c));
      OUT_LIT(b, "\"");
      if (d == D_OPENAI) OUT_LIT(b, ",\"stop_reason\":null");
    }
    OUT_LIT(b, "}]");
  } else {
    OUT_LIT(b, "{\"text\":\"");
    out_json_esc(b, c->text.p ? c->text.p : "", c->text.len);
    OUT_LIT(b, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"");
    out_str(b, sim_finish_str(c));
    OUT_LIT(b, "\"}]");
  }
  if (d == D_LLAMA) {
    OUT_LIT(b, ",\"created\":");
    out_i64(b, (int64_t)c->created);
    OUT_LIT(b, ",\"model\":\"");
    out_mem(b, c->model.p, c->model.len);
    OUT_LIT(b, "\",\"system_fingerprint\":\"");
    out_str(b, llama_fingerprint);
    out_str(b, chat ? "\",\"object\":\"chat.completion\"," : "\",\"object\":\"text_completion\",");
    put_usage(b, c);
    OUT_LIT(b, ",\"id\":\"");
    out_str(b, c->id);
    OUT_LIT(b, "\",");
    put_llama_timings(b, c);
  } else {
    OUT_LIT(b, ",");
    put_usage(b, c);
    if (c->ep == EP_LMS_CHAT || c->ep == EP_LMS_COMPL) { OUT_LIT(b, ","); put_lms_stats(b, c); }
  }
  put_stamp_end(b, c, stamp);
}

