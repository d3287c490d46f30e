/* Tool calls (docs/sim.md, "Tool calls"): a chat request that offers
 * `tools` is answered with a call of the first function it offers, after any
 * reasoning. Its arguments are made from the function's parameters schema
 * (every property, a value of its type; a string has non-ASCII letters so
 * that a split can land inside a character). As the servers stream them:
 * the first event names the call (id, type, name, empty arguments), each
 * next one carries a piece of the arguments (OpenAI, vLLM, llama.cpp,
 * LM Studio); Ollama sends the whole call in one event. --tool-args
 * split-utf8 cuts the pieces inside UTF-8 characters (real servers cut on
 * character boundaries: llama.cpp's utf8_truncate_safe), --tool-args
 * invalid sends arguments that are not JSON. The wire bytes are the
 * dialects' own (wire_openai.c oai_tool_event, wire_ollama.c
 * ollama_tool_event). */
#include "sim.h"

#include <stdio.h>

/* Bytes of arguments per event, as a tokenizer gives a few characters. */
enum { PIECE = 4 };

/* A value of the schema's type into b (JSON text). */
static void put_value(br_buf *b, const cJSON *schema) {
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
  if (cJSON_IsArray(en) && cJSON_GetArraySize(en) > 0) {
    char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(en, 0));
    if (!s) sim_out_of_memory();
    out_str(b, s);
    free(s);
    return;
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(schema, "type");
  const char *ty = cJSON_IsString(t) ? t->valuestring : "string";
  if (!strcmp(ty, "integer")) OUT_LIT(b, "3");
  else if (!strcmp(ty, "number")) OUT_LIT(b, "2.5");
  else if (!strcmp(ty, "boolean")) OUT_LIT(b, "true");
  else if (!strcmp(ty, "array")) OUT_LIT(b, "[]");
  else if (!strcmp(ty, "object")) OUT_LIT(b, "{}");
  else if (!strcmp(ty, "null")) OUT_LIT(b, "null");
  else OUT_LIT(b, "\"M\xc3\xa1laga \xe2\x98\x80\"");   /* "Málaga ☀": 2- and 3-byte characters */
}

/* Where the piece that starts at off ends: PIECE bytes, moved to the next
 * character boundary; split-utf8: right after a multi-byte character's
 * first byte, so that every such character is cut in two. */
static size_t piece_end(const conn *c, size_t off) {
  const br_buf *a = &c->tool_args;
  size_t e = off + PIECE < a->len ? off + PIECE : a->len;
  if (c->sim->cfg.tool_args == TA_SPLIT_UTF8) {
    for (size_t i = off; i < e; i++)
      if ((unsigned char)a->p[i] >= 0xC0) return i + 1;
    return e;
  }
  while (e < a->len && ((unsigned char)a->p[e] & 0xC0) == 0x80) e++;
  return e;
}

/* Whether this request's call goes out whole, in one event (Ollama). */
static int whole_call(const conn *c) { return sim_is_ollama(c) || c->sim->cfg.dialect == D_OLLAMA; }

int sim_parse_tools(conn *c, cJSON *root) {
  c->tool = c->tool_fits = 0;
  c->tool_name.len = c->tool_args.len = 0;
  c->tool_off = 0;
  if (!sim_is_chat(c) || c->sim->cfg.tool_calls == 0) return 0;
  const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
  const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
  if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0) return 0;
  if (cJSON_IsString(tc) && !strcmp(tc->valuestring, "none")) return 0;
  const cJSON *t0 = cJSON_GetArrayItem(tools, 0);
  const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t0, "function");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
  if (!cJSON_IsString(name) || !name->valuestring[0]) {
    sim_send_error(c, 400, "invalid_request_error", "tools[0].function.name: expected a string");
    return -1;
  }
  out_json_esc(&c->tool_name, name->valuestring, strlen(name->valuestring));
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(fn, "parameters"), "properties");
  br_buf *a = &c->tool_args;
  OUT_LIT(a, "{");
  const cJSON *p;
  int first = 1;
  cJSON_ArrayForEach(p, props) {
    if (!first) OUT_LIT(a, ", ");
    first = 0;
    OUT_LIT(a, "\"");
    out_json_esc(a, p->string, strlen(p->string));
    OUT_LIT(a, "\": ");
    put_value(a, p);
  }
  if (c->sim->cfg.tool_args == TA_INVALID && !whole_call(c)) OUT_LIT(a, ", \"unterminated");
  else OUT_LIT(a, "}");
  c->tool = 1;
  /* the answer: reasoning, then the call's first event and its pieces */
  int events = 1;
  if (!whole_call(c))
    for (size_t off = 0; off < a->len; off = piece_end(c, off)) events++;
  int want = c->reasoning_n + events;
  c->tool_fits = want <= c->target;
  if (!c->max_tokens_set || want < c->target) c->target = want;
  return 0;
}

/* The call's id, made from the request's id as the servers make theirs. */
static void put_call_id(br_buf *b, const conn *c) {
  int d = c->sim->cfg.dialect;
  if (d == D_OPENAI) OUT_LIT(b, "chatcmpl-tool-");
  else if (d == D_OLLAMA) OUT_LIT(b, "call_");
  out_str(b, c->id + (strchr(c->id, '-') ? strchr(c->id, '-') - c->id + 1 : 0));
}

void sim_tool_token(br_buf *b, conn *c, int64_t stamp) {
  br_buf id = BR_BUF_INIT;
  put_call_id(&id, c);
  if (whole_call(c)) {
    if (sim_is_ollama(c)) ollama_tool_event(b, c, stamp);
    else oai_tool_event(b, c, id.p, 1, c->tool_args.p, c->tool_args.len, stamp);
    br_buf_free(&id);
    return;
  }
  if (c->emitted == c->reasoning_n) {   /* the call's first event: its name */
    oai_tool_event(b, c, id.p, 1, "", 0, stamp);
  } else {
    size_t off = c->tool_off, end = piece_end(c, off);
    c->tool_off = end;
    oai_tool_event(b, c, NULL, 0, c->tool_args.p + off, end - off, stamp);
  }
  br_buf_free(&id);
}

void sim_tool_message(br_buf *b, conn *c) {
  br_buf id = BR_BUF_INIT;
  put_call_id(&id, c);
  OUT_LIT(b, "\"tool_calls\":[{\"id\":\"");
  out_str(b, id.p);
  OUT_LIT(b, "\",\"type\":\"function\",\"function\":{\"name\":\"");
  out_mem(b, c->tool_name.p, c->tool_name.len);
  OUT_LIT(b, "\",\"arguments\":\"");
  out_json_esc(b, c->tool_args.p, c->tool_args.len);
  OUT_LIT(b, "\"}}]");
  br_buf_free(&id);
}
