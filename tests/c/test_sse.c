/* The SSE and NDJSON decoders against the WHATWG EventSource parsing rules
 * (the examples of the spec's "Server-sent events" section and its edge
 * cases), every split of the input across reads, and the llama-server
 * captures in tests/fixtures (copied from shared/fixtures). */
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* Events are rendered as "type|id|data\n" lines into a buffer, so whole
 * streams compare as one string and a failure prints both. */
typedef struct { br_buf out; int stop_after; int seen; } sink;

static int collect(void *ud, const br_sse_event *ev) {
  sink *s = ud;
  br_buf_add(&s->out, ev->type, ev->type_len);
  br_buf_add(&s->out, "|", 1);
  br_buf_add(&s->out, ev->id, ev->id_len);
  br_buf_add(&s->out, "|", 1);
  br_buf_add(&s->out, ev->data, ev->data_len);
  br_buf_add(&s->out, "\n", 1);
  s->seen++;
  return s->stop_after && s->seen >= s->stop_after;
}

/* Decode input fed in pieces of `step` bytes (0: all at once). */
static char *decode(int mode, const char *in, size_t n, size_t step, size_t max, int *rc, long *dropped) {
  br_sse d;
  sink s = {{0}, 0, 0};
  br_sse_init(&d, mode, max);
  *rc = BR_SSE_OK;
  if (step == 0) step = n ? n : 1;
  for (size_t off = 0; off < n && *rc == BR_SSE_OK; off += step) {
    size_t k = n - off < step ? n - off : step;
    /* copy each piece so an in-place reference cannot outlive its read */
    char *piece = malloc(k);
    memcpy(piece, in + off, k);
    *rc = br_sse_feed(&d, piece, k, collect, &s);
    memset(piece, '#', k);
    free(piece);
  }
  long dr = 0;
  if (*rc == BR_SSE_OK) dr = br_sse_finish(&d, collect, &s);
  if (dropped) *dropped = dr;
  br_sse_free(&d);
  br_buf_add(&s.out, "", 1);
  if (!s.out.p) { s.out.p = malloc(1); s.out.p[0] = 0; }
  s.out.p[s.out.len - 1 < s.out.cap ? s.out.len - 1 : 0] = 0;
  return s.out.p;
}

static void check_str(const char *what, const char *got, const char *want) {
  if (strcmp(got, want) != 0) {
    failures++;
    fprintf(stderr, "FAIL %s\n  expected: \"%s\"\n  got:      \"%s\"\n", what, want, got);
  }
}

/* The same input must decode the same way whatever the read boundaries. */
static void check_all_splits(int mode, const char *name, const char *in, size_t n, const char *want) {
  int rc;
  char what[256];
  for (size_t step = 0; step <= (n < 9 ? n : 9); step++) {
    char *got = decode(mode, in, n, step, 0, &rc, NULL);
    snprintf(what, sizeof what, "%s (reads of %zu bytes)", name, step);
    check_str(what, got, want);
    if (rc != BR_SSE_OK) { failures++; fprintf(stderr, "FAIL %s: rc %d\n", what, rc); }
    free(got);
  }
  /* every two-piece split */
  for (size_t cut = 1; cut < n; cut++) {
    br_sse d;
    sink s = {{0}, 0, 0};
    br_sse_init(&d, mode, 0);
    char *a = malloc(cut), *b = malloc(n - cut);
    memcpy(a, in, cut);
    memcpy(b, in + cut, n - cut);
    br_sse_feed(&d, a, cut, collect, &s);
    free(a);
    br_sse_feed(&d, b, n - cut, collect, &s);
    free(b);
    br_sse_finish(&d, collect, &s);
    br_sse_free(&d);
    br_buf_add(&s.out, "", 1);
    snprintf(what, sizeof what, "%s (split at %zu)", name, cut);
    check_str(what, s.out.p ? s.out.p : "", want);
    br_buf_free(&s.out);
  }
}

#define SSE(name, in, want) check_all_splits(BR_SSE_MODE_SSE, name, in, sizeof(in) - 1, want)
#define NDJ(name, in, want) check_all_splits(BR_SSE_MODE_NDJSON, name, in, sizeof(in) - 1, want)

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)len + 1);
  *n = fread(p, 1, (size_t)len, f);
  p[*n] = 0;
  fclose(f);
  return p;
}

static void fixture(const char *file, int want_events, const char *last_data) {
  char path[512];
  snprintf(path, sizeof path, "%s/llama-server/%s", FIXTURES_DIR, file);
  size_t n;
  char *in = read_file(path, &n);
  if (!in) { failures++; fprintf(stderr, "FAIL cannot read %s\n", path); return; }
  int rc;
  char *whole = decode(BR_SSE_MODE_SSE, in, n, 0, 0, &rc, NULL);
  int events = 0;
  for (char *p = whole; *p; p++) events += *p == '\n';
  if (events != want_events) {
    failures++;
    fprintf(stderr, "FAIL %s: expected %d events, got %d\n", file, want_events, events);
  }
  /* The last event's data */
  size_t wl = strlen(whole);
  if (wl) {
    whole[wl - 1] = 0;
    char *last = strrchr(whole, '\n');
    last = last ? last + 1 : whole;
    char *data = strchr(strchr(last, '|') + 1, '|') + 1;
    if (strncmp(data, last_data, strlen(last_data)) != 0) {
      failures++;
      fprintf(stderr, "FAIL %s: last event starts \"%.40s\", expected \"%s\"\n", file, data, last_data);
    }
    whole[wl - 1] = '\n';
  }
  for (size_t step = 1; step < 300; step += 7) {
    char *got = decode(BR_SSE_MODE_SSE, in, n, step, 0, &rc, NULL);
    char what[600];
    snprintf(what, sizeof what, "%s in reads of %zu", file, step);
    check_str(what, got, whole);
    free(got);
  }
  free(whole);
  free(in);
}

int main(void) {
  /* The spec's examples */
  SSE("stock ticker", "data: YHOO\ndata: +2\ndata: 10\n\n", "message||YHOO\n+2\n10\n");
  SSE("ids and comments",
      ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
      "message|1|first event\nmessage||second event\nmessage|| third event\n");
  SSE("empty data and unfinished event", "data\n\ndata\ndata\n\ndata:", "message||\nmessage||\n\n");
  SSE("space after colon is optional", "data:test\n\ndata: test\n\n", "message||test\nmessage||test\n");
  SSE("event types", "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
      "add||73857293\nremove||2153\nadd||113411\n");
  /* Line endings */
  SSE("CRLF", "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", "message||a\nb\nmessage||c\n");
  SSE("CR", "data: a\rdata: b\r\rdata: c\r\r", "message||a\nb\nmessage||c\n");
  SSE("mixed endings", "data: a\r\n\rdata: b\n\r\ndata: c\r\r\n", "message||a\nmessage||b\nmessage||c\n");
  SSE("CR then LF is one ending, LF then CR two", "data: x\n\r", "message||x\n");
  /* Fields */
  SSE("event type resets after dispatch", "event: e\ndata: 1\n\ndata: 2\n\n", "e||1\nmessage||2\n");
  SSE("event without data is not dispatched and resets type", "event: e\n\ndata: 1\n\n", "message||1\n");
  SSE("id persists", "id: 7\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n", "message|7|a\nmessage|7|b\nmessage||c\n");
  SSE("id with NUL is ignored", "id: 5\n\nid: a\0b\ndata: x\n\n", "message|5|x\n");
  SSE("unknown fields and comments ignored", "foo: bar\n: c\ndata: 1\nretry\n\n", "message||1\n");
  SSE("field without colon", "data\ndata\n\n", "message||\n\n");
  SSE("only one leading space removed", "data:   x  \n\n", "message||  x  \n");
  SSE("colon in value", "data: a:b: c\n\n", "message||a:b: c\n");
  SSE("field names are case-sensitive", "Data: x\n\ndata: y\n\n", "message||y\n");
  SSE("unfinished event at the end is dropped", "data: a\n\ndata: b\n", "message||a\n");
  /* BOM */
  SSE("leading BOM", "\xEF\xBB\xBF" "data: a\n\n", "message||a\n");
  SSE("only one BOM is dropped", "\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", "message||b\n");
  SSE("partial BOM is ordinary bytes", "\xEF\xBB" "data: a\n\ndata: b\n\n", "message||b\n");
  SSE("BOM-like bytes later are data", "data: \xEF\xBB\xBF\n\n", "message||\xEF\xBB\xBF\n");

  /* retry */
  {
    br_sse d;
    sink s = {{0}, 0, 0};
    br_sse_init(&d, BR_SSE_MODE_SSE, 0);
    br_sse_feed(&d, "retry: 1500\nretry: 15x\n\n", 25, collect, &s);
    if (d.retry_ms != 1500) { failures++; fprintf(stderr, "FAIL retry: expected 1500, got %lld\n", (long long)d.retry_ms); }
    br_sse_free(&d);
    br_buf_free(&s.out);
  }

  /* max_event: an event or a line that grows past the limit */
  {
    int rc;
    char *got = decode(BR_SSE_MODE_SSE, "data: 0123456789\n\n", 18, 0, 8, &rc, NULL);
    if (rc != BR_SSE_TOO_LARGE) { failures++; fprintf(stderr, "FAIL too large event: rc %d\n", rc); }
    free(got);
    got = decode(BR_SSE_MODE_SSE, "data: 01\ndata: 23\ndata: 45\n\n", 27, 0, 12, &rc, NULL);
    if (rc != BR_SSE_TOO_LARGE) { failures++; fprintf(stderr, "FAIL too large multi-line event: rc %d\n", rc); }
    free(got);
    got = decode(BR_SSE_MODE_SSE, "data: 0123456789012345678901234567", 34, 3, 16, &rc, NULL);
    if (rc != BR_SSE_TOO_LARGE) { failures++; fprintf(stderr, "FAIL endless line: rc %d\n", rc); }
    free(got);
    got = decode(BR_SSE_MODE_SSE, "data: 0123\n\ndata: 4567\n\n", 24, 1, 12, &rc, NULL);
    if (rc != BR_SSE_OK) { failures++; fprintf(stderr, "FAIL events under the limit: rc %d\n", rc); }
    check_str("events under the limit", got, "message||0123\nmessage||4567\n");
    free(got);
  }

  /* Stopping from the callback */
  {
    br_sse d;
    sink s = {{0}, 1, 0};
    br_sse_init(&d, BR_SSE_MODE_SSE, 0);
    int rc = br_sse_feed(&d, "data: 1\n\ndata: 2\n\n", 18, collect, &s);
    if (rc != BR_SSE_STOPPED || s.seen != 1) { failures++; fprintf(stderr, "FAIL stop: rc %d seen %d\n", rc, s.seen); }
    br_sse_free(&d);
    br_buf_free(&s.out);
  }

  /* Dropped bytes of an unfinished event are reported */
  {
    int rc;
    long dropped;
    char *got = decode(BR_SSE_MODE_SSE, "data: a\n\ndata: {\"x\":", 20, 4, 0, &rc, &dropped);
    if (dropped <= 0) { failures++; fprintf(stderr, "FAIL dropped: expected > 0, got %ld\n", dropped); }
    free(got);
    got = decode(BR_SSE_MODE_SSE, "data: a\n\n", 9, 4, 0, &rc, &dropped);
    if (dropped != 0) { failures++; fprintf(stderr, "FAIL clean end: expected 0 dropped, got %ld\n", dropped); }
    free(got);
  }

  /* NDJSON */
  NDJ("ndjson lines", "{\"a\":1}\n{\"b\":2}\n", "||{\"a\":1}\n||{\"b\":2}\n");
  NDJ("ndjson CRLF and blank lines", "{\"a\":1}\r\n\r\n  \n{\"b\":2}\r\n", "||{\"a\":1}\n||{\"b\":2}\n");
  NDJ("ndjson last line without newline", "{\"a\":1}\n{\"b\":2}", "||{\"a\":1}\n||{\"b\":2}\n");
  NDJ("ndjson CR alone is not an ending", "{\"a\":\"x\ry\"}\n", "||{\"a\":\"x\ry\"}\n");
  NDJ("ndjson BOM", "\xEF\xBB\xBF{}\n", "||{}\n");

  /* Captures from llama-server */
  fixture("chat-stream.sse", 26, "[DONE]");
  fixture("completions-stream.sse", 14, "[DONE]");
  fixture("native-completion-stream.sse", 13, "{\"index\":0,\"content\":\"\"");

  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("test_sse: all passed\n");
  return 0;
}
