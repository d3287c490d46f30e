/* The wire formats: which one an answer takes (the endpoint, then the
 * dialect), the parts every format shares, and the dialects' error bodies.
 * The formats themselves: wire_openai.c (OpenAI-compatible SSE and JSON, in
 * vLLM's, llama.cpp's, LM Studio's and Ollama's variants), wire_llama.c
 * (llama.cpp's own /completion), wire_ollama.c (Ollama's NDJSON). */
#include "sim.h"

/* The event's send time, and in the first token's event when the request
 * arrived (the read that completed it): a client on the same host can tell
 * the server's own TTFT from its own error, on both sides of the wire. */
void put_stamp_end(br_buf *b, const conn *c, int64_t stamp) {
  OUT_LIT(b, ",\"sim_ns\":");
  out_i64(b, stamp);
  if (c->emitted == 0) {
    OUT_LIT(b, ",\"sim_arrival_ns\":");
    out_i64(b, c->t_arrive);
  }
  OUT_LIT(b, "}");
}

/* `reasoning`: the token belongs to the reasoning part and goes to the
 * reasoning field (R_FIELD); R_THINK tokens are plain content. */
void sim_fmt_token(br_buf *b, conn *c, const char *t, size_t n, int reasoning, int last, int wid, int64_t stamp) {
  int field = reasoning && c->think == R_FIELD;
  if (c->tool && !reasoning) { sim_tool_token(b, c, stamp); return; }   /* tools.c */
  if (sim_is_ollama(c)) ollama_token(b, c, t, n, field, stamp);
  else if (c->ep == EP_LLAMA_COMPL) llama_token(b, c, t, n, wid, stamp);
  else oai_token(b, c, t, n, field, last, stamp);
}

/* vLLM sends the assistant role alone before the first token. */
void sim_fmt_first(br_buf *b, conn *c, int64_t stamp) {
  if (sim_is_chat(c) && c->sim->cfg.dialect == D_OPENAI) oai_role(b, c, stamp);
}

void sim_fmt_final(br_buf *b, conn *c, int64_t stamp) {
  if (sim_is_ollama(c)) ollama_final(b, c, stamp);
  else if (c->ep == EP_LLAMA_COMPL) llama_final(b, c, stamp);
  else oai_final(b, c, stamp);
}

void sim_fmt_full(br_buf *b, conn *c, int64_t stamp) {
  if (sim_is_ollama(c)) ollama_full(b, c, stamp);
  else if (c->ep == EP_LLAMA_COMPL) llama_full(b, c, stamp);
  else oai_full(b, c, stamp);
}

const char *sim_stream_ctype(const conn *c) {
  if (c->fault == F_CONTENT_TYPE) return "text/plain; charset=utf-8";
  if (sim_is_ollama(c)) return "application/x-ndjson";
  if (c->sim->cfg.dialect == D_OPENAI) return "text/event-stream; charset=utf-8";
  return "text/event-stream";
}

/* An error in the dialect's own shape. */
void sim_fmt_error(br_buf *b, int dialect, int code, const char *type, const char *msg) {
  size_t ml = strlen(msg);
  switch (dialect) {
  case D_LLAMA:
    OUT_LIT(b, "{\"error\":{\"code\":");
    out_i64(b, code);
    OUT_LIT(b, ",\"message\":\"");
    out_json_esc(b, msg, ml);
    OUT_LIT(b, "\",\"type\":\"");
    out_str(b, type);
    OUT_LIT(b, "\"}}");
    break;
  case D_OLLAMA:
    OUT_LIT(b, "{\"error\":\"");
    out_json_esc(b, msg, ml);
    OUT_LIT(b, "\"}");
    break;
  case D_LMSTUDIO:
    OUT_LIT(b, "{\"error\":{\"message\":\"");
    out_json_esc(b, msg, ml);
    OUT_LIT(b, "\",\"type\":\"");
    out_str(b, type);
    OUT_LIT(b, "\",\"code\":");
    out_i64(b, code);
    OUT_LIT(b, "}}");
    break;
  default:   /* vLLM's ErrorResponse */
    OUT_LIT(b, "{\"object\":\"error\",\"message\":\"");
    out_json_esc(b, msg, ml);
    OUT_LIT(b, "\",\"type\":\"");
    out_str(b, type);
    OUT_LIT(b, "\",\"param\":null,\"code\":");
    out_i64(b, code);
    OUT_LIT(b, "}");
  }
}
