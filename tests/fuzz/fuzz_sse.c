/* Fuzz target for the stream decoders (sse.c) and the LLM field extraction
 * (llmchunk.c). The first bytes choose the mode, the event size limit and
 * the read size; the rest is the stream. Besides "no crash, no leak, no UB"
 * it checks a property: feeding the stream in pieces decodes exactly like
 * feeding it whole.
 *
 * Built with clang -fsanitize=fuzzer as `fuzz_sse` (libFuzzer's main), or
 * with -DFUZZ_REPLAY_MAIN as `fuzz_sse_replay`: a plain program that runs
 * the fixtures and a few thousand pseudo-random streams, for compilers
 * without libFuzzer. */
#include "llmchunk.h"
#include "sse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  br_buf log;   /* every event, as type\0data\0 */
  br_llm llm;
} sink;

static int on_event(void *ud, const br_sse_event *ev) {
  sink *s = ud;
  br_buf_add(&s->log, ev->type, ev->type_len);
  br_buf_add(&s->log, "", 1);
  br_buf_add(&s->log, ev->data, ev->data_len);
  br_buf_add(&s->log, "", 1);
  br_llm_delta d;
  br_llm_event(&s->llm, ev->data, ev->data_len, &d);
  return 0;
}

static int run(int mode, size_t max, const uint8_t *p, size_t n, size_t step, sink *s) {
  br_sse d;
  br_sse_init(&d, mode, max);
  int rc = BR_SSE_OK;
  for (size_t off = 0; off < n && rc == BR_SSE_OK; off += step) {
    size_t k = n - off < step ? n - off : step;
    /* a private copy per read, as curl hands out: references must not outlive it */
    char *piece = malloc(k ? k : 1);
    memcpy(piece, p + off, k);
    rc = br_sse_feed(&d, piece, k, on_event, s);
    free(piece);
  }
  if (rc == BR_SSE_OK) br_sse_finish(&d, on_event, s);
  br_llm_finish(&s->llm);
  br_sse_free(&d);
  return rc;
}

/* The tool calls of two decodings agree, and each one's arguments can be
 * read back (unescaped or raw) without harm. */
static int same_tools(const br_llm *a, const br_llm *b) {
  if (a->ntools != b->ntools || a->tools_dropped != b->tools_dropped) return 0;
  br_buf x = {0}, y = {0};
  int same = 1;
  for (int i = 0; i < a->ntools && same; i++) {
    br_buf_clear(&x);
    br_buf_clear(&y);
    int rx = br_llm_tool_arguments(&a->tools[i], &x), ry = br_llm_tool_arguments(&b->tools[i], &y);
    same = rx == ry && x.len == y.len && (!x.len || memcmp(x.p, y.p, x.len) == 0) &&
           a->tools[i].name.len == b->tools[i].name.len && a->tools[i].split_utf8 == b->tools[i].split_utf8;
  }
  br_buf_free(&x);
  br_buf_free(&y);
  return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  int mode = data[0] & 1 ? BR_SSE_MODE_NDJSON : BR_SSE_MODE_SSE;
  size_t max = data[1] < 16 ? 0 : (size_t)data[1] * 8;
  size_t step = (size_t)(data[2] % 64) + 1;
  data += 3;
  size = size - 3;
  sink whole, pieces;
  memset(&whole, 0, sizeof whole);
  memset(&pieces, 0, sizeof pieces);
  br_llm_init(&whole.llm);
  br_llm_init(&pieces.llm);
  int rc1 = run(mode, max, data, size, size ? size : 1, &whole);
  int rc2 = run(mode, max, data, size, step, &pieces);
  /* Only complete runs must agree: a size limit may trip at a different
   * event when the unfinished line is held differently. */
  if (rc1 == BR_SSE_OK && rc2 == BR_SSE_OK &&
      (whole.log.len != pieces.log.len || (whole.log.len && memcmp(whole.log.p, pieces.log.p, whole.log.len) != 0) ||
       whole.llm.content.len != pieces.llm.content.len || whole.llm.reasoning.len != pieces.llm.reasoning.len ||
       !same_tools(&whole.llm, &pieces.llm))) {
    fprintf(stderr, "fuzz_sse: decoding in reads of %zu differs from decoding whole\n", step);
    abort();
  }
  br_buf_free(&whole.log);
  br_buf_free(&pieces.log);
  br_llm_free(&whole.llm);
  br_llm_free(&pieces.llm);
  return 0;
}

#ifdef FUZZ_REPLAY_MAIN
static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

int main(int argc, char **argv) {
  static const char *const atoms[] = {
    "data: ", "data:", "event: ", "id: ", "retry: 10", ":", "\n", "\r", "\r\n", "\n\n", "\xEF\xBB\xBF",
    "{\"choices\":[{\"delta\":{\"content\":\"", "\"}}]}", "<think>", "</think>", "\\u00e9", "\\ud83d\\ude00",
    "[DONE]", "{\"message\":{\"content\":\"x\",\"thinking\":\"y\"},\"done\":", "true}", "false}",
    "\"usage\":{\"completion_tokens\":3}", "\"sim_ns\":123", "\\\"", "\\", "\"", "{", "}", "[", "]", ",",
    "{\"content\":\"a\",\"stop\":true,\"timings\":{}}", "\"finish_reason\":\"stop\"", "null", "\x00",
    /* tool calls: OpenAI pieces by index, Ollama whole calls, UTF-8 split mid-character */
    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":", "0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"",
    "{\"function\":{\"arguments\":\"", "\\\"k\\\":", "\xc3", "\xa9", "\xf0\x9f", "\"}}]}}]}",
    "{\"message\":{\"tool_calls\":[{\"function\":{\"name\":\"g\",\"arguments\":{\"x\":[1,{}]}}}]}}", "-1", "99999999999999999999"};
  size_t natoms = sizeof atoms / sizeof atoms[0];
  unsigned char buf[2048];
  int runs = 0;
  for (int i = 1; i < argc; i++) {   /* files given on the command line, e.g. the fixtures */
    FILE *f = fopen(argv[i], "rb");
    if (!f) { fprintf(stderr, "fuzz_sse_replay: cannot open %s\n", argv[i]); return 1; }
    unsigned char *p = malloc(1 << 20);
    p[0] = 0; p[1] = 0; p[2] = 5;
    size_t n = fread(p + 3, 1, (1 << 20) - 3, f);
    fclose(f);
    for (int s = 0; s < 8; s++) {
      p[2] = (unsigned char)(s * 7);
      LLVMFuzzerTestOneInput(p, n + 3);
      runs++;
    }
    free(p);
  }
  for (int it = 0; it < 4000; it++) {
    size_t n = 0;
    buf[n++] = (unsigned char)next_rand();
    buf[n++] = (unsigned char)next_rand();
    buf[n++] = (unsigned char)next_rand();
    int parts = 1 + (int)(next_rand() % 40);
    for (int k = 0; k < parts; k++) {
      const char *a = atoms[next_rand() % natoms];
      size_t al = a[0] ? strlen(a) : 1;
      if (next_rand() % 5 == 0) {   /* a random byte now and then */
        if (n < sizeof buf) buf[n++] = (unsigned char)next_rand();
        continue;
      }
      if (n + al > sizeof buf) break;
      memcpy(buf + n, a, al);
      n += al;
    }
    LLVMFuzzerTestOneInput(buf, n);
    runs++;
  }
  printf("fuzz_sse_replay: %d inputs, no failure\n", runs);
  return 0;
}
#endif
