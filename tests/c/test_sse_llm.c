/* Field extraction from LLM stream events (llmchunk.c): OpenAI chat and
 * completions chunks, llama.cpp native, LM Studio stats, Ollama NDJSON,
 * <think> tags split across events, JSON escapes, malformed events, and the
 * llama-server captures decoded end to end (SSE + extraction). */
#include "llmchunk.h"
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT_STR(what, got, glen, want)                                                   \
  do {                                                                                      \
    size_t wl_ = strlen(want);                                                              \
    if ((glen) != wl_ || memcmp((got), (want), wl_) != 0) {                                 \
      failures++;                                                                           \
      fprintf(stderr, "FAIL %s:%d %s\n  expected: \"%s\"\n  got:      \"%.*s\"\n", __FILE__, \
              __LINE__, what, want, (int)(glen), (got) ? (got) : "");                       \
    }                                                                                       \
  } while (0)

#define EXPECT_INT(what, got, want)                                                          \
  do {                                                                                       \
    long long g_ = (long long)(got), w_ = (long long)(want);                                 \
    if (g_ != w_) {                                                                          \
      failures++;                                                                            \
      fprintf(stderr, "FAIL %s:%d %s: expected %lld, got %lld\n", __FILE__, __LINE__, what, w_, g_); \
    }                                                                                        \
  } while (0)

static int ev(br_llm *s, const char *json, br_llm_delta *d) { return br_llm_event(s, json, strlen(json), d); }

static void test_openai_chat(void) {
  br_llm s;
  br_llm_delta d;
  br_llm_init(&s);
  EXPECT_INT("role chunk", ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}", &d), 0);
  EXPECT_INT("role chunk has no text", d.kind, BR_LLM_NONE);
  ev(&s, "{\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me\"},\"finish_reason\":null}],\"sim_ns\":12345}", &d);
  EXPECT_INT("reasoning kind", d.kind, BR_LLM_REASONING);
  EXPECT_INT("sim_ns", d.sim_ns, 12345);
  EXPECT_INT("has sim_ns", d.has_sim_ns, 1);
  ev(&s, "{\"choices\":[{\"delta\":{\"reasoning\":\" think\"}}]}", &d);
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":\"Caf\\u00e9 \\\"ok\\\"\\n\\ud83d\\ude00\"}}]}", &d);
  EXPECT_INT("content kind", d.kind, BR_LLM_CONTENT);
  EXPECT_INT("content bytes", d.content_added, strlen("Caf\xC3\xA9 \"ok\"\n\xF0\x9F\x98\x80"));
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":null},\"finish_reason\":\"stop\"}]}", &d);
  EXPECT_INT("finish chunk has no text", d.kind, BR_LLM_NONE);
  ev(&s, "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}", &d);
  ev(&s, "[DONE]", &d);
  EXPECT_INT("done", d.done, 1);
  EXPECT_STR("reasoning", s.reasoning.p, s.reasoning.len, "Let me think");
  EXPECT_STR("content", s.content.p, s.content.len, "Caf\xC3\xA9 \"ok\"\n\xF0\x9F\x98\x80");
  EXPECT_STR("finish", s.finish, strlen(s.finish), "stop");
  EXPECT_STR("usage", s.usage.p, s.usage.len, "{\"prompt_tokens\":5,\"completion_tokens\":3}");
  EXPECT_INT("bad json", s.bad_json, 0);
  br_llm_free(&s);
}

static void test_think_tags(void) {
  /* Tags may arrive whole, split at any byte, or with text around them. */
  const char *pieces[] = {"<th", "ink>", "plan", " A</", "think", ">", "Answer <b", ">bold</b>", " <"};
  br_llm s;
  br_llm_delta d;
  br_llm_init(&s);
  int kinds[9];
  for (int i = 0; i < 9; i++) {
    char json[128];
    snprintf(json, sizeof json, "{\"choices\":[{\"delta\":{\"content\":\"%s\"}}]}", pieces[i]);
    ev(&s, json, &d);
    kinds[i] = d.kind;
  }
  br_llm_finish(&s);
  EXPECT_STR("think reasoning", s.reasoning.p, s.reasoning.len, "plan A");
  EXPECT_STR("think content", s.content.p, s.content.len, "Answer <b>bold</b> <");
  EXPECT_INT("think seen", s.think_seen, 1);
  EXPECT_INT("'<th' is reasoning markup", kinds[0], BR_LLM_REASONING);
  EXPECT_INT("'plan' is reasoning", kinds[2], BR_LLM_REASONING);
  EXPECT_INT("'>' closing the tag is reasoning markup", kinds[5], BR_LLM_REASONING);
  EXPECT_INT("'Answer <b' is content", kinds[6], BR_LLM_CONTENT);
  br_llm_free(&s);
}

static void test_other_dialects(void) {
  br_llm s;
  br_llm_delta d;
  /* completions */
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"text\":\"Once\",\"index\":0,\"finish_reason\":null}]}", &d);
  ev(&s, "{\"choices\":[{\"text\":\" upon\",\"index\":0,\"finish_reason\":\"length\"}]}", &d);
  EXPECT_STR("completions text", s.content.p, s.content.len, "Once upon");
  EXPECT_STR("completions finish", s.finish, strlen(s.finish), "length");
  br_llm_free(&s);
  /* llama.cpp /completion */
  br_llm_init(&s);
  ev(&s, "{\"index\":0,\"content\":\" a\",\"stop\":false}", &d);
  EXPECT_INT("native not done", d.done, 0);
  ev(&s, "{\"content\":\"\",\"stop\":true,\"timings\":{\"predicted_n\":12}}", &d);
  EXPECT_INT("native done", d.done, 1);
  EXPECT_STR("native timings", s.timings.p, s.timings.len, "{\"predicted_n\":12}");
  br_llm_free(&s);
  /* LM Studio /api/v0 */
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"stats\":{\"tokens_per_second\":51.2}}", &d);
  EXPECT_STR("lmstudio stats", s.stats.p, s.stats.len, "{\"tokens_per_second\":51.2}");
  br_llm_free(&s);
  /* Ollama native chat */
  br_llm_init(&s);
  ev(&s, "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\"},\"done\":false}", &d);
  EXPECT_INT("ollama thinking", d.kind, BR_LLM_REASONING);
  ev(&s, "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}", &d);
  const char *last = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
                     "\"done_reason\":\"stop\",\"eval_count\":2,\"eval_duration\":1000}";
  ev(&s, last, &d);
  EXPECT_INT("ollama done", d.done, 1);
  EXPECT_STR("ollama content", s.content.p, s.content.len, "Hi");
  EXPECT_STR("ollama reasoning", s.reasoning.p, s.reasoning.len, "hmm");
  EXPECT_STR("ollama finish", s.finish, strlen(s.finish), "stop");
  EXPECT_STR("ollama final", s.final.p, s.final.len, last);
  br_llm_free(&s);
  /* Ollama generate */
  br_llm_init(&s);
  ev(&s, "{\"response\":\"x\",\"thinking\":\"y\",\"done\":false}", &d);
  EXPECT_STR("generate response", s.content.p, s.content.len, "x");
  EXPECT_STR("generate thinking", s.reasoning.p, s.reasoning.len, "y");
  br_llm_free(&s);
}

static void test_bad_json(void) {
  const char *bad[] = {"{\"choices\":[{\"delta\":{\"content\":\"abc", "{\"choices\":", "not json", "{\"a\":1}}",
                       "{\"choices\":[{\"delta\":{\"content\":\"\\x\"}}]}", "{\"a\" 1}", "", "{\"a\":tru}"};
  br_llm s;
  br_llm_delta d;
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}", &d);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = ev(&s, bad[i], &d);
    if (rc != -1) { failures++; fprintf(stderr, "FAIL bad json %zu (%s): rc %d\n", i, bad[i], rc); }
  }
  EXPECT_INT("bad json count", s.bad_json, sizeof bad / sizeof bad[0]);
  EXPECT_STR("text survives bad events", s.content.p, s.content.len, "ok");
  /* An error object in the stream */
  ev(&s, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}", &d);
  EXPECT_STR("in-stream error", s.error.p, s.error.len, "{\"message\":\"boom\",\"type\":\"server_error\"}");
  br_llm_free(&s);
}

typedef struct { br_llm llm; int tokens; } fixture_ctx;

static int on_event(void *ud, const br_sse_event *e) {
  fixture_ctx *c = ud;
  br_llm_delta d;
  if (br_llm_event(&c->llm, e->data, e->data_len, &d) == 0 && d.kind) c->tokens++;
  return 0;
}

static void test_fixture(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/llama-server/chat-stream.sse", FIXTURES_DIR);
  FILE *f = fopen(path, "rb");
  if (!f) { failures++; fprintf(stderr, "FAIL cannot read %s\n", path); return; }
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  fixture_ctx c;
  br_llm_init(&c.llm);
  c.tokens = 0;
  br_sse sse;
  br_sse_init(&sse, BR_SSE_MODE_SSE, 1 << 20);
  for (size_t off = 0; off < n; off += 37) br_sse_feed(&sse, buf + off, n - off < 37 ? n - off : 37, on_event, &c);
  br_sse_finish(&sse, on_event, &c);
  br_sse_free(&sse);
  EXPECT_INT("fixture token events", c.tokens, 24);
  EXPECT_INT("fixture done", c.llm.done, 1);
  EXPECT_INT("fixture bad json", c.llm.bad_json, 0);
  EXPECT_STR("fixture finish", c.llm.finish, strlen(c.llm.finish), "length");
  EXPECT_STR("fixture usage", c.llm.usage.p, c.llm.usage.len, "{\"completion_tokens\":24,\"prompt_tokens\":16,\"total_tokens\":40}");
  if (c.llm.timings.len < 20 || memcmp(c.llm.timings.p, "{\"prompt_n\":16", 14) != 0) {
    failures++;
    fprintf(stderr, "FAIL fixture timings: %.*s\n", (int)c.llm.timings.len, c.llm.timings.p);
  }
  if (c.llm.content.len < 20 || memcmp(c.llm.content.p, " Univers derrotifice", 20) != 0) {
    failures++;
    fprintf(stderr, "FAIL fixture content: %.*s\n", (int)c.llm.content.len, c.llm.content.p);
  }
  br_llm_free(&c.llm);
}

/* Tool calls: OpenAI/llama.cpp pieces by index, arguments split mid-UTF-8
 * and mid-surrogate-pair, Ollama's whole calls, a malformed event undone. */
static void test_tool_calls(void) {
  br_llm s;
  br_llm_delta d;
  br_buf a = {0};
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
         "\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}", &d);
  EXPECT_INT("tool first kind", d.kind, BR_LLM_TOOL);
  /* "é" (C3 A9) split between two pieces, then a surrogate pair split */
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\\\"Mal\xc3\"}}]}}]}", &d);
  EXPECT_INT("tool piece kind", d.kind, BR_LLM_TOOL);
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\xa9\\ud83d\"}}]}}]}", &d);
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\ude00\\\"}\"}}]}}]}", &d);
  /* a second call, then a malformed event that must leave no trace */
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}", &d);
  EXPECT_INT("tool bad event", ev(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"xx\"}}]}}]", &d), -1);
  EXPECT_INT("tool bad event new call", ev(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":5,\"id\":\"z\"}]}}", &d), -1);
  ev(&s, "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}", &d);
  EXPECT_INT("tool kind of empty delta", d.kind, BR_LLM_NONE);
  EXPECT_INT("tools", s.ntools, 2);
  EXPECT_STR("tool id", s.tools[0].id.p, s.tools[0].id.len, "call_1");
  EXPECT_STR("tool name", s.tools[0].name.p, s.tools[0].name.len, "get_weather");
  EXPECT_INT("tool pieces", s.tools[0].pieces, 3);
  EXPECT_INT("tool split pieces", s.tools[0].split_utf8, 1);
  EXPECT_INT("tool arguments", br_llm_tool_arguments(&s.tools[0], &a), 0);
  EXPECT_STR("tool arguments text", a.p, a.len, "{\"city\":\"Mal\xc3\xa9\xf0\x9f\x98\x80\"}");
  EXPECT_STR("tool 2 name", s.tools[1].name.p, s.tools[1].name.len, "f");
  EXPECT_INT("tool 2 index", (int)s.tools[1].index, 1);
  EXPECT_STR("finish", s.finish, strlen(s.finish), "tool_calls");
  br_llm_free(&s);
  /* Ollama: whole calls, arguments an object, no index */
  br_llm_init(&s);
  ev(&s, "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"a\","
         "\"arguments\":{\"x\":1}}},{\"function\":{\"name\":\"b\",\"arguments\":{}}}]},\"done\":false}", &d);
  EXPECT_INT("ollama tool kind", d.kind, BR_LLM_TOOL);
  EXPECT_INT("ollama tools", s.ntools, 2);
  br_buf_clear(&a);
  br_llm_tool_arguments(&s.tools[0], &a);
  EXPECT_STR("ollama args", a.p, a.len, "{\"x\":1}");
  EXPECT_INT("ollama args raw", s.tools[0].args_raw, 1);
  EXPECT_STR("ollama name 2", s.tools[1].name.p, s.tools[1].name.len, "b");
  /* no index, no id: pieces go to the last call */
  ev(&s, "{\"message\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"q\\\"\"}}]}}", &d);
  EXPECT_INT("no-index piece joins the last call", s.ntools, 2);
  br_llm_free(&s);
  /* an index past int64 is no index (the fuzz test found the overflow) */
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":99999999999999999999,\"function\":{\"name\":\"n\"}}]}}],"
         "\"sim_ns\":99999999999999999999}", &d);
  EXPECT_INT("huge index", (int)s.tools[0].index, -1);
  EXPECT_INT("huge sim_ns ignored", d.has_sim_ns, 0);
  br_llm_free(&s);
  /* more calls than kept: counted, never grown past the limit */
  br_llm_init(&s);
  for (int i = 0; i < BR_LLM_MAX_TOOLS + 3; i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":%d,\"function\":{\"name\":\"n\"}}]}}]}", i);
    ev(&s, buf, &d);
  }
  EXPECT_INT("tools kept", s.ntools, BR_LLM_MAX_TOOLS);
  EXPECT_INT("tools dropped", (int)s.tools_dropped, 3);
  br_llm_free(&s);
  br_buf_free(&a);
}

/* A capture fed through SSE and extraction at once. */
static void feed_file(const char *name, fixture_ctx *c) {
  char path[512];
  snprintf(path, sizeof path, "%s/llama-server/%s", FIXTURES_DIR, name);
  br_llm_init(&c->llm);
  c->tokens = 0;
  FILE *f = fopen(path, "rb");
  if (!f) { failures++; fprintf(stderr, "FAIL cannot read %s\n", path); return; }
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  br_sse sse;
  br_sse_init(&sse, BR_SSE_MODE_SSE, 1 << 20);
  for (size_t off = 0; off < n; off += 53) br_sse_feed(&sse, buf + off, n - off < 53 ? n - off : 53, on_event, c);
  br_sse_finish(&sse, on_event, c);
  br_sse_free(&sse);
}

static size_t count_of(const br_buf *b, const char *needle) {
  size_t k = 0, nl = strlen(needle);
  for (const char *p = b->p; p && (p = memmem(p, b->len - (size_t)(p - b->p), needle, nl)); p += nl) k++;
  return k;
}

/* Logprobs as the real llama-server streams them (b4748): chat
 * choices[0].logprobs.content and /completion's completion_probabilities;
 * events with text but no logprobs are counted; a broken event's entries
 * are taken back. */
static void test_logprobs(void) {
  fixture_ctx c;
  feed_file("chat-stream-logprobs.sse", &c);
  EXPECT_INT("chat logprob events", c.llm.logprob_events, 4);
  EXPECT_INT("chat text without logprobs", c.llm.text_no_logprobs, 0);
  EXPECT_INT("chat entries", count_of(&c.llm.logprobs, "\"top_logprobs\""), 4);
  EXPECT_STR("chat first entry", c.llm.logprobs.p, 30, "{\"id\":16060,\"token\":\" Mundial\"");
  br_llm_free(&c.llm);
  feed_file("native-completion-stream-probs.sse", &c);
  EXPECT_INT("native logprob events", c.llm.logprob_events, 3);
  EXPECT_INT("native entries", count_of(&c.llm.logprobs, "\"top_logprobs\""), 3);
  EXPECT_STR("native first entry", c.llm.logprobs.p, 11, "{\"id\":3850,");
  br_llm_free(&c.llm);

  br_llm s;
  br_llm_delta d;
  br_llm_init(&s);
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":\"a\"},\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-1}]}}]}", &d);
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":\"b\"},\"logprobs\":null}]}", &d);
  ev(&s, "{\"choices\":[{\"delta\":{\"content\":\"c\"},\"logprobs\":{\"content\":[{\"token\":\"c\"", &d);   /* cut */
  ev(&s, "{\"choices\":[{\"text\":\"d\",\"logprobs\":{\"tokens\":[\"d\"],\"token_logprobs\":[-2]}}]}", &d);
  EXPECT_INT("mixed: logprob events", s.logprob_events, 2);
  EXPECT_INT("mixed: text without logprobs", s.text_no_logprobs, 1);
  EXPECT_INT("mixed: bad json", s.bad_json, 1);
  EXPECT_STR("mixed: entries (the cut one taken back, the legacy object whole)", s.logprobs.p, s.logprobs.len,
             "{\"token\":\"a\",\"logprob\":-1},{\"tokens\":[\"d\"],\"token_logprobs\":[-2]}");
  br_llm_free(&s);
}

int main(void) {
  test_logprobs();
  test_openai_chat();
  test_think_tags();
  test_other_dialects();
  test_bad_json();
  test_fixture();
  test_tool_calls();
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("test_sse_llm: all passed\n");
  return 0;
}
