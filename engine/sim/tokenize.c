/* llama.cpp's POST /tokenize and POST /detokenize (examples/server of
 * llama.cpp c392e509, handle_tokenize / handle_detokenize): request
 * {"content": "...", "add_special": bool, "with_pieces": bool} answers
 * {"tokens": [ids]} or, with pieces, {"tokens": [{"id", "piece"}]} (a piece
 * that is not valid UTF-8 is a list of its byte values); request
 * {"tokens": [ids]} answers {"content": "..."}. A body without "content"
 * or "tokens" answers an empty list or text, as llama.cpp does.
 *
 * The simulator's vocabulary is the rule that its usage.prompt_tokens
 * follows (request.c: a token per 4 bytes of prompt, rounded up): a token
 * is the next 4 bytes of the text (fewer at its end), its id those bytes
 * with their count above them (count << 32 | bytes, big-endian), so that
 * /detokenize gives the text back. It has no BOS (as Qwen's vocabularies
 * have none), so add_special changes nothing and a completion's prompt
 * counts what /tokenize counts. A number in a list "content" is a token id
 * as it is (request.c counts it as one token too).
 *
 * The openai dialect (vLLM's server) answers vLLM's own format
 * (vllm/entrypoints/openai/protocol.py, TokenizeCompletionRequest and
 * TokenizeResponse): {"model", "prompt", "add_special_tokens"} ->
 * {"count", "max_model_len", "tokens", "token_strs": null};
 * {"model", "tokens"} -> {"prompt"} (DetokenizeResponse). */
#include "sim.h"

#include <stdio.h>

#define PIECE_MAX 4

static double piece_id(const unsigned char *s, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | s[i];
  return (double)((uint64_t)n << 32 | v);
}

/* The bytes of a token id (0 when it is not one of ours). */
static size_t piece_of(double id, unsigned char out[PIECE_MAX]) {
  if (!(id >= 0) || id > 9007199254740991.0 || id != (double)(uint64_t)id) return 0;
  uint64_t v = (uint64_t)id;
  size_t n = (size_t)(v >> 32);
  if (n < 1 || n > PIECE_MAX || (v & 0xffffffffULL) >> (8 * n)) return 0;
  for (size_t i = 0; i < n; i++) out[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
  return n;
}

static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t len = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 : (s[i] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || i + len > n) return 0;
    for (size_t k = 1; k < len; k++) if ((s[i + k] & 0xc0) != 0x80) return 0;
    i += len;
  }
  return 1;
}

static void put_token(br_buf *b, double id, const unsigned char *p, size_t n, int pieces, int *first) {
  if (!*first) OUT_LIT(b, ",");
  *first = 0;
  if (!pieces) { out_i64(b, (int64_t)id); return; }
  OUT_LIT(b, "{\"id\":");
  out_i64(b, (int64_t)id);
  OUT_LIT(b, ",\"piece\":");
  if (valid_utf8(p, n)) {
    OUT_LIT(b, "\"");
    out_json_esc(b, (const char *)p, n);
    OUT_LIT(b, "\"");
  } else {
    OUT_LIT(b, "[");
    for (size_t i = 0; i < n; i++) {
      if (i) OUT_LIT(b, ",");
      out_i64(b, p[i]);
    }
    OUT_LIT(b, "]");
  }
  OUT_LIT(b, "}");
}

static void put_text(br_buf *b, const char *s, int pieces, int *first) {
  size_t n = strlen(s);
  for (size_t i = 0; i < n; i += PIECE_MAX) {
    size_t k = n - i < PIECE_MAX ? n - i : PIECE_MAX;
    const unsigned char *p = (const unsigned char *)s + i;
    put_token(b, piece_id(p, k), p, k, pieces, first);
  }
}

/* llama.cpp answers a body it cannot parse with 500 (its exception
 * handler); a field of the wrong type is the same json exception. vLLM
 * answers 400. */
static cJSON *parse_body(conn *c) {
  cJSON *root = cJSON_ParseWithLength(c->in.p + c->head_len, c->body_len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    if (c->sim->cfg.dialect == D_OPENAI) sim_send_error(c, 400, "BadRequestError", "request body: expected a JSON object");
    else sim_send_error(c, 500, "server_error", "request body: expected a JSON object");
    return NULL;
  }
  return root;
}

static void tokenize_vllm(conn *c, cJSON *root) {
  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
  if (!cJSON_IsString(prompt)) {
    cJSON_Delete(root);
    sim_send_error(c, 400, "BadRequestError", "prompt: Field required (a string)");
    return;
  }
  br_buf b = BR_BUF_INIT;
  size_t n = strlen(prompt->valuestring);
  OUT_LIT(&b, "{\"count\":");
  out_i64(&b, (int64_t)((n + PIECE_MAX - 1) / PIECE_MAX));
  OUT_LIT(&b, ",\"max_model_len\":");
  out_i64(&b, c->sim->cfg.ctx_size);
  OUT_LIT(&b, ",\"tokens\":[");
  int first = 1;
  put_text(&b, prompt->valuestring, 0, &first);
  OUT_LIT(&b, "],\"token_strs\":null}");
  cJSON_Delete(root);
  sim_send_full(c, 200, "application/json", b.p, b.len, NULL);
  br_buf_free(&b);
}

void sim_tokenize(conn *c) {
  cJSON *root = parse_body(c);
  if (!root) return;
  if (c->sim->cfg.dialect == D_OPENAI) { tokenize_vllm(c, root); return; }
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
  int pieces = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "with_pieces"));
  br_buf b = BR_BUF_INIT;
  OUT_LIT(&b, "{\"tokens\":[");
  int first = 1;
  if (cJSON_IsString(content)) {
    put_text(&b, content->valuestring, pieces, &first);
  } else if (cJSON_IsArray(content)) {
    const cJSON *x;
    cJSON_ArrayForEach(x, content) {
      unsigned char p[PIECE_MAX];
      if (cJSON_IsString(x)) put_text(&b, x->valuestring, pieces, &first);
      else if (cJSON_IsNumber(x)) put_token(&b, x->valuedouble, p, piece_of(x->valuedouble, p), pieces, &first);
    }
  } else if (content) {
    cJSON_Delete(root);
    br_buf_free(&b);
    sim_send_error(c, 500, "server_error", "[json.exception.type_error.302] type must be string, but is number");
    return;
  }
  OUT_LIT(&b, "]}");
  cJSON_Delete(root);
  sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&b);
}

void sim_detokenize(conn *c) {
  cJSON *root = parse_body(c);
  if (!root) return;
  const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
  br_buf text = BR_BUF_INIT, b = BR_BUF_INIT;
  const cJSON *list = cJSON_IsArray(tokens) ? tokens : NULL, *x;
  cJSON_ArrayForEach(x, list) {
    unsigned char p[PIECE_MAX];
    if (cJSON_IsNumber(x)) out_mem(&text, p, piece_of(x->valuedouble, p));
  }
  if (c->sim->cfg.dialect == D_OPENAI) OUT_LIT(&b, "{\"prompt\":\"");   /* vLLM's DetokenizeResponse */
  else OUT_LIT(&b, "{\"content\":\"");
  out_json_esc(&b, text.p ? text.p : "", text.len);
  OUT_LIT(&b, "\"}");
  cJSON_Delete(root);
  sim_send_full(c, 200, "application/json; charset=utf-8", b.p, b.len, NULL);
  br_buf_free(&text);
  br_buf_free(&b);
}
