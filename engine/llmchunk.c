/* Field extraction from streamed LLM events (see llmchunk.h). A small JSON
 * walker that skips what it does not need: one pass over each event, no
 * allocation beyond the request's amortised buffers. */
#include "llmchunk.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON scanning ---- */

static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* p at the opening quote; returns the byte after the closing quote. A quote
 * ends the string unless an odd number of backslashes precedes it. */
static const char *skip_string(const char *p, const char *e) {
  p++;
  for (;;) {
    const char *q = memchr(p, '"', (size_t)(e - p));
    if (!q) return NULL;
    const char *b = q;
    while (b > p && b[-1] == '\\') b--;
    if (((q - b) & 1) == 0) return q + 1;
    p = q + 1;
  }
}

static const char *skip_literal(const char *p, const char *e, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(e - p) < n || memcmp(p, word, n) != 0) return NULL;
  return p + n;
}

const char *br_json_skip(const char *p, const char *e) {
  p = ws(p, e);
  if (p >= e) return NULL;
  switch (*p) {
  case '"':
    return skip_string(p, e);
  case '{':
  case '[': {
    /* Brackets are counted, strings skipped whole; the walker that reads
     * the parts it needs checks their structure itself. */
    int depth = 0;
    while (p < e) {
      char c = *p;
      if (c == '"') {
        p = skip_string(p, e);
        if (!p) return NULL;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
        if (depth < 0) return NULL;
      }
      p++;
    }
    return NULL;
  }
  case 't': return skip_literal(p, e, "true");
  case 'f': return skip_literal(p, e, "false");
  case 'n': return skip_literal(p, e, "null");
  default: {
    const char *s = p;
    while (p < e && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E')) p++;
    return p > s ? p : NULL;
  }
  }
}

typedef struct { const char *p, *e; int first; } objit;

static int obj_begin(objit *it, const char *p, const char *e) {
  p = ws(p, e);
  if (p >= e || *p != '{') return -1;
  it->p = p + 1;
  it->e = e;
  it->first = 1;
  return 0;
}

/* Next member: 1 with the key (raw, between quotes) and where its value
 * starts, 0 at the closing brace, -1 if malformed. The caller then reads or
 * skips the value and hands its end to obj_end. */
static int obj_next(objit *it, const char **k, size_t *kl, const char **v) {
  const char *p = ws(it->p, it->e), *e = it->e;
  if (p >= e) return -1;
  if (*p == '}') { it->p = p + 1; return 0; }
  if (!it->first) {
    if (*p != ',') return -1;
    p = ws(p + 1, e);
  }
  it->first = 0;
  if (p >= e || *p != '"') return -1;
  const char *ks = p + 1;
  p = skip_string(p, e);
  if (!p) return -1;
  *k = ks;
  *kl = (size_t)(p - 1 - ks);
  p = ws(p, e);
  if (p >= e || *p != ':') return -1;
  p = ws(p + 1, e);
  if (p >= e) return -1;
  *v = p;
  return 1;
}

/* The value that started the member ends at ve (NULL: malformed). */
static int obj_end(objit *it, const char *ve) {
  if (!ve) return -1;
  it->p = ve;
  return 0;
}

static int key_is(const char *k, size_t kl, const char *name) {
  size_t n = strlen(name);
  return kl == n && memcmp(k, name, n) == 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int hex4(const char *s, const char *e, unsigned *out) {
  if (e - s < 4) return -1;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(s[i]);
    if (h < 0) return -1;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 0;
}

static size_t utf8_encode(unsigned cp, char *o) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int br_json_unescape(br_buf *b, const char *s, size_t n) {
  const char *e = s + n;
  while (s < e) {
    const char *bs = memchr(s, '\\', (size_t)(e - s));
    size_t run = (size_t)((bs ? bs : e) - s);
    if (br_buf_add(b, s, run)) return -2;
    if (!bs) break;
    s = bs + 1;
    if (s >= e) return -1;
    char c = *s++, out[4];
    size_t len = 1;
    switch (c) {
    case '"': out[0] = '"'; break;
    case '\\': out[0] = '\\'; break;
    case '/': out[0] = '/'; break;
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u': {
      unsigned cp;
      if (hex4(s, e, &cp)) return -1;
      s += 4;
      if (cp >= 0xD800 && cp < 0xDC00) {   /* a surrogate pair makes one code point */
        unsigned lo;
        if (e - s >= 6 && s[0] == '\\' && s[1] == 'u' && !hex4(s + 2, e, &lo) && lo >= 0xDC00 && lo < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          s += 6;
        } else {
          cp = 0xFFFD;
        }
      } else if (cp >= 0xDC00 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      len = utf8_encode(cp, out);
      break;
    }
    default:
      return -1;
    }
    if (br_buf_add(b, out, len)) return -2;
  }
  return 0;
}

/* ---- per-event extraction ---- */

void br_llm_init(br_llm *s) { memset(s, 0, sizeof *s); }

void br_llm_free(br_llm *s) {
  br_buf *bufs[] = {&s->content, &s->reasoning, &s->usage, &s->timings, &s->stats,
                        &s->final, &s->error, &s->scratch, &s->logprobs};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) br_buf_free(bufs[i]);
  for (int i = 0; i < s->ntools; i++) {
    br_buf_free(&s->tools[i].id);
    br_buf_free(&s->tools[i].name);
    br_buf_free(&s->tools[i].args);
  }
  free(s->tools);
  s->tools = NULL;
  s->ntools = s->captools = 0;
}


static int emit(br_llm *s, const char *p, size_t n) {
  return br_buf_add(s->in_think ? &s->reasoning : &s->content, p, n) ? -2 : 0;
}

/* Content text already appended at content[from..]: if it may hold a
 * <think> tag (or we are inside one, or hold part of one), take it back and
 * route it piece by piece. Returns 1 if a tag was seen in it. */
static int route_think(br_llm *s, size_t from, int *tag_seen) {
  const char *added = s->content.p + from;
  size_t n = s->content.len - from;
  if (!s->in_think && !s->nheld && !memchr(added, '<', n)) return 0;
  br_buf_clear(&s->scratch);
  if (br_buf_add(&s->scratch, s->held, (size_t)s->nheld) ||
      br_buf_add(&s->scratch, added, n))
    return -2;
  s->nheld = 0;
  br_buf_truncate(&s->content, from);
  const char *q = s->scratch.p, *end = s->scratch.p + s->scratch.len;
  while (q < end) {
    const char *tag = s->in_think ? "</think>" : "<think>";
    size_t tl = s->in_think ? 8 : 7;
    const char *hit = memmem(q, (size_t)(end - q), tag, tl);
    if (hit) {
      if (emit(s, q, (size_t)(hit - q))) return -2;
      q = hit + tl;
      s->in_think = !s->in_think;
      s->think_seen = 1;
      *tag_seen = 1;
      continue;
    }
    /* Hold back a tail that could be the start of the tag. */
    size_t k = tl - 1 < (size_t)(end - q) ? tl - 1 : (size_t)(end - q);
    while (k > 0 && memcmp(end - k, tag, k) != 0) k--;
    if (emit(s, q, (size_t)(end - q) - k)) return -2;
    memcpy(s->held, end - k, k);
    s->nheld = (int)k;
    break;
  }
  return 0;
}

typedef struct { int text; int tag; int tool; int logprobs; } seen;

/* A string value at v: append it (content or reasoning) and return its end;
 * anything else is skipped. NULL if malformed; *rc gets -2 when out of
 * memory. */
static const char *take_text(br_llm *s, const char *v, const char *e, int reasoning, seen *sn, int *rc) {
  if (*v != '"') return br_json_skip(v, e);
  const char *ve = skip_string(v, e);
  if (!ve) return NULL;
  size_t n = (size_t)(ve - v - 2);
  if (n == 0) return ve;
  sn->text = 1;
  int r;
  if (reasoning) {
    r = br_json_unescape(&s->reasoning, v + 1, n);
  } else {
    size_t from = s->content.len;
    r = br_json_unescape(&s->content, v + 1, n);
    if (r == 0) r = route_think(s, from, &sn->tag);
  }
  if (r == -2) *rc = -2;
  return r == 0 ? ve : NULL;
}

static const char *take_finish(br_llm *s, const char *v, const char *e) {
  if (*v != '"') return br_json_skip(v, e);
  const char *ve = skip_string(v, e);
  if (!ve) return NULL;
  size_t n = (size_t)(ve - v - 2);
  if (n >= sizeof s->finish) n = sizeof s->finish - 1;
  memcpy(s->finish, v + 1, n);
  s->finish[n] = 0;
  return ve;
}

static const char *take_raw(br_buf *b, const char *v, const char *e, int *rc) {
  const char *ve = br_json_skip(v, e);
  if (!ve) return NULL;
  if (*v == '{') {
    br_buf_clear(b);
    if (br_buf_add(b, v, (size_t)(ve - v))) *rc = -2;
  }
  return ve;
}

static int parse_int(const char *v, const char *ve, int64_t *out) {
  int neg = 0;
  if (v < ve && *v == '-') { neg = 1; v++; }
  if (v >= ve) return -1;
  int64_t x = 0;
  for (; v < ve && *v >= '0' && *v <= '9'; v++) {
    if (x > (INT64_MAX - 9) / 10) return -1;   /* past int64: not a count or a time we can use */
    x = x * 10 + (*v - '0');
  }
  if (v < ve && *v != '.' && *v != 'e' && *v != 'E') return -1;
  *out = neg ? -x : x;
  return 0;
}

/* The elements of a JSON array at v (its text between the brackets),
 * appended to the logprobs buffer, comma-joined. Returns the array's end. */
static const char *take_logprob_list(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '[') return br_json_skip(v, e);
  const char *ve = br_json_skip(v, e);
  if (!ve) return NULL;
  const char *a = ws(v + 1, e), *z = ve - 1;
  while (z > a && (z[-1] == ' ' || z[-1] == '\n' || z[-1] == '\r' || z[-1] == '\t')) z--;
  if (z > a) {
    sn->logprobs = 1;
    if ((s->logprobs.len && br_buf_add(&s->logprobs, ",", 1)) ||
        br_buf_add(&s->logprobs, a, (size_t)(z - a)))
      *rc = -2;
  }
  return ve;
}

/* choices[0].logprobs: {"content": [entries]} (chat), or the legacy
 * /v1/completions object {tokens, token_logprobs, top_logprobs}, kept
 * whole as one entry; null when not asked for. */
static const char *take_logprobs(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '{') return br_json_skip(v, e);
  const char *ve = br_json_skip(v, e);
  if (!ve) return NULL;
  objit it;
  if (obj_begin(&it, v, e)) return NULL;
  const char *k, *x;
  size_t kl;
  int r, has_content = 0;
  while ((r = obj_next(&it, &k, &kl, &x)) == 1) {
    const char *xe;
    if (key_is(k, kl, "content")) { has_content = 1; xe = take_logprob_list(s, x, e, sn, rc); }
    else xe = br_json_skip(x, e);
    if (obj_end(&it, xe)) return NULL;
  }
  if (r != 0) return NULL;
  if (!has_content) {
    sn->logprobs = 1;
    if ((s->logprobs.len && br_buf_add(&s->logprobs, ",", 1)) ||
        br_buf_add(&s->logprobs, v, (size_t)(ve - v)))
      *rc = -2;
  }
  return ve;
}

/* ---- tool calls ---- */

/* Whether p[0..n) ends inside a UTF-8 character: a lead byte whose
 * continuation bytes have not all come (a piece split mid-character). */
static int ends_mid_utf8(const char *p, size_t n) {
  size_t k = 0;   /* continuation bytes at the end */
  while (k < n && k < 3 && ((unsigned char)p[n - 1 - k] & 0xC0) == 0x80) k++;
  if (k == n) return 0;
  unsigned char lead = (unsigned char)p[n - 1 - k];
  size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need > k;
}

/* Where the parts of one tool_calls element are (NULL: absent). */
typedef struct { const char *index, *id, *name, *args; } tc_parts;

/* function: {name, arguments, index (Ollama)}; returns its end. */
static const char *walk_function(const char *v, const char *e, tc_parts *tp) {
  if (*v != '{') return br_json_skip(v, e);
  objit it;
  if (obj_begin(&it, v, e)) return NULL;
  const char *k, *x;
  size_t kl;
  int r;
  while ((r = obj_next(&it, &k, &kl, &x)) == 1) {
    if (key_is(k, kl, "name")) tp->name = x;
    else if (key_is(k, kl, "arguments")) tp->args = x;
    else if (key_is(k, kl, "index") && !tp->index) tp->index = x;
    if (obj_end(&it, br_json_skip(x, e))) return NULL;
  }
  return r == 0 ? it.p : NULL;
}

static br_llm_tool *tool_new(br_llm *s, int64_t index, int *rc) {
  if (s->ntools >= BR_LLM_MAX_TOOLS) { s->tools_dropped++; return NULL; }
  if (s->ntools == s->captools) {
    int cap = s->captools ? s->captools * 2 : 4;
    br_llm_tool *a = realloc(s->tools, (size_t)cap * sizeof *a);
    if (!a) { *rc = -2; return NULL; }
    s->tools = a;
    s->captools = cap;
  }
  br_llm_tool *t = &s->tools[s->ntools++];
  memset(t, 0, sizeof *t);
  t->index = index;
  return t;
}

/* The call a delta belongs to: the one of its index; without an index, the
 * last one unless the delta names another id; a call whose arguments are a
 * JSON value (Ollama) is always whole, so new. NULL: none kept. */
static br_llm_tool *tool_for(br_llm *s, const tc_parts *tp, const char *e, int *rc) {
  int64_t index = -1;
  if (tp->index) {
    const char *ie = br_json_skip(tp->index, e);
    if (!ie || parse_int(tp->index, ie, &index) || index < 0) index = -1;
  }
  int whole = tp->args && *tp->args != '"' && *tp->args != 'n';
  if (!whole && index >= 0) {
    for (int i = s->ntools - 1; i >= 0; i--)
      if (s->tools[i].index == index) return &s->tools[i];
  } else if (!whole && s->ntools > 0) {
    br_llm_tool *last = &s->tools[s->ntools - 1];
    const char *ide = tp->id && *tp->id == '"' ? skip_string(tp->id, e) : NULL;
    size_t idn = ide ? (size_t)(ide - tp->id - 2) : 0;
    if (idn == 0 || last->id.len == 0 || (idn == last->id.len && memcmp(tp->id + 1, last->id.p, idn) == 0))
      return last;
  }
  return tool_new(s, index, rc);
}

/* A string value at v into b when b is still empty; 1 if it added. */
static int take_once(br_buf *b, const char *v, const char *e, int *rc) {
  if (!v || *v != '"' || b->len) return 0;
  const char *ve = skip_string(v, e);
  if (!ve || ve - v <= 2) return 0;
  int r = br_json_unescape(b, v + 1, (size_t)(ve - v - 2));
  if (r == -2) *rc = -2;
  return r == 0;
}

/* One element of a tool_calls list: {index, id, type, function}; returns its end. */
static const char *walk_tool_call(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '{') return br_json_skip(v, e);
  tc_parts tp = {NULL, NULL, NULL, NULL};
  objit it;
  if (obj_begin(&it, v, e)) return NULL;
  const char *k, *x;
  size_t kl;
  int r;
  while ((r = obj_next(&it, &k, &kl, &x)) == 1) {
    const char *xe;
    if (key_is(k, kl, "function")) xe = walk_function(x, e, &tp);
    else {
      if (key_is(k, kl, "index")) tp.index = x;
      else if (key_is(k, kl, "id")) tp.id = x;
      xe = br_json_skip(x, e);
    }
    if (obj_end(&it, xe)) return NULL;
  }
  if (r != 0) return NULL;
  br_llm_tool *t = tool_for(s, &tp, e, rc);
  if (!t) return it.p;
  if (take_once(&t->id, tp.id, e, rc)) sn->tool = 1;
  if (take_once(&t->name, tp.name, e, rc)) sn->tool = 1;
  if (tp.args && *tp.args == '"') {
    const char *ae = skip_string(tp.args, e);
    size_t n = ae ? (size_t)(ae - tp.args - 2) : 0;
    if (n) {
      if (br_buf_add(&t->args, tp.args + 1, n)) *rc = -2;
      t->pieces++;
      if (ends_mid_utf8(tp.args + 1, n)) t->split_utf8++;
      sn->tool = 1;
    }
  } else if (tp.args && *tp.args != 'n') {
    const char *ae = br_json_skip(tp.args, e);
    if (ae) {
      br_buf_clear(&t->args);
      if (br_buf_add(&t->args, tp.args, (size_t)(ae - tp.args))) *rc = -2;
      t->args_raw = 1;
      t->pieces++;
      sn->tool = 1;
    }
  }
  return it.p;
}

/* "tool_calls": a list of calls or of pieces of them; returns its end. */
static const char *walk_tool_calls(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '[') return br_json_skip(v, e);
  const char *p = ws(v + 1, e);
  if (p < e && *p == ']') return p + 1;
  for (;;) {
    p = walk_tool_call(s, ws(p, e), e, sn, rc);
    if (!p || *rc == -2) return NULL;
    p = ws(p, e);
    if (p < e && *p == ',') { p++; continue; }
    return p < e && *p == ']' ? p + 1 : NULL;
  }
}

/* Before an event: each call's lengths, to undo what a malformed event added. */
static void tools_mark(br_llm *s) {
  for (int i = 0; i < s->ntools; i++) {
    br_llm_tool *t = &s->tools[i];
    t->undo_id = t->id.len, t->undo_name = t->name.len, t->undo_args = t->args.len;
    t->undo_pieces = t->pieces, t->undo_split = t->split_utf8, t->undo_raw = t->args_raw;
  }
}

static void tools_undo(br_llm *s, int ntools0, uint64_t dropped0) {
  for (int i = ntools0; i < s->ntools; i++) {
    br_buf_free(&s->tools[i].id);
    br_buf_free(&s->tools[i].name);
    br_buf_free(&s->tools[i].args);
  }
  s->ntools = ntools0;
  s->tools_dropped = dropped0;
  for (int i = 0; i < s->ntools; i++) {
    br_llm_tool *t = &s->tools[i];
    br_buf_truncate(&t->id, t->undo_id);
    br_buf_truncate(&t->name, t->undo_name);
    br_buf_truncate(&t->args, t->undo_args);
    t->pieces = t->undo_pieces, t->split_utf8 = t->undo_split, t->args_raw = t->undo_raw;
  }
}

int br_llm_tool_arguments(const br_llm_tool *t, br_buf *out) {
  if (t->args_raw || t->args.len == 0) return br_buf_add(out, t->args.p, t->args.len) ? -2 : 0;
  size_t from = out->len;
  int r = br_json_unescape(out, t->args.p, t->args.len);
  if (r == -1) {
    br_buf_truncate(out, from);
    return br_buf_add(out, t->args.p, t->args.len) ? -2 : -1;
  }
  return r;
}

/* A message-like object {content, reasoning_content, reasoning, thinking}
 * (or null); returns its end. */
static const char *walk_message(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '{') return br_json_skip(v, e);
  objit it;
  if (obj_begin(&it, v, e)) return NULL;
  const char *k, *x;
  size_t kl;
  int r;
  while ((r = obj_next(&it, &k, &kl, &x)) == 1) {
    const char *xe;
    if (key_is(k, kl, "content")) xe = take_text(s, x, e, 0, sn, rc);
    else if (key_is(k, kl, "reasoning_content") || key_is(k, kl, "reasoning") || key_is(k, kl, "thinking"))
      xe = take_text(s, x, e, 1, sn, rc);
    else if (key_is(k, kl, "tool_calls")) xe = walk_tool_calls(s, x, e, sn, rc);
    else xe = br_json_skip(x, e);
    if (obj_end(&it, xe)) return NULL;
  }
  return r == 0 ? it.p : NULL;
}

/* "choices": the first element is read, the others skipped; returns the end. */
static const char *walk_choices(br_llm *s, const char *v, const char *e, seen *sn, int *rc) {
  if (*v != '[') return br_json_skip(v, e);
  const char *p = ws(v + 1, e);
  if (p < e && *p == ']') return p + 1;   /* an empty list (the usage-only chunk) */
  objit it;
  if (obj_begin(&it, p, e)) return NULL;
  const char *k, *x;
  size_t kl;
  int r;
  while ((r = obj_next(&it, &k, &kl, &x)) == 1) {
    const char *xe;
    if (key_is(k, kl, "delta") || key_is(k, kl, "message")) xe = walk_message(s, x, e, sn, rc);
    else if (key_is(k, kl, "text")) xe = take_text(s, x, e, 0, sn, rc);
    else if (key_is(k, kl, "finish_reason")) xe = take_finish(s, x, e);
    else if (key_is(k, kl, "logprobs")) xe = take_logprobs(s, x, e, sn, rc);
    else xe = br_json_skip(x, e);
    if (obj_end(&it, xe)) return NULL;
  }
  if (r != 0) return NULL;
  p = ws(it.p, e);
  while (p < e && *p == ',') {   /* further choices (n > 1): not measured */
    p = br_json_skip(p + 1, e);
    if (!p) return NULL;
    p = ws(p, e);
  }
  return p < e && *p == ']' ? p + 1 : NULL;
}

/* long function: one event's parse, a walk over the chunk's fields. */
int br_llm_event(br_llm *s, const char *data, size_t n, br_llm_delta *out) {
  memset(out, 0, sizeof *out);
  s->events++;
  const char *e = data + n, *p = ws(data, e);
  while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
  if (e - p == 6 && memcmp(p, "[DONE]", 6) == 0) {
    s->done = out->done = 1;
    return 0;
  }
  size_t c0 = s->content.len, r0 = s->reasoning.len, l0 = s->logprobs.len;
  int think0 = s->in_think, nheld0 = s->nheld;
  char held0[sizeof s->held];
  memcpy(held0, s->held, sizeof held0);
  seen sn = {0, 0, 0, 0};
  int rc = 0;
  int ntools0 = s->ntools;
  uint64_t dropped0 = s->tools_dropped;
  tools_mark(s);
  objit it;
  int r = obj_begin(&it, p, e);
  const char *k, *v;
  size_t kl;
  while (r == 0 && (r = obj_next(&it, &k, &kl, &v)) == 1) {
    const char *ve = v;   /* v: not read here, skip it below */
    switch (k[0]) {
    case 'c':
      if (key_is(k, kl, "choices")) ve = walk_choices(s, v, e, &sn, &rc);
      else if (key_is(k, kl, "content")) ve = take_text(s, v, e, 0, &sn, &rc);
      else if (key_is(k, kl, "completion_probabilities")) ve = take_logprob_list(s, v, e, &sn, &rc);
      break;
    case 'u':
      if (key_is(k, kl, "usage")) ve = take_raw(&s->usage, v, e, &rc);
      break;
    case 't':
      if (key_is(k, kl, "timings")) ve = take_raw(&s->timings, v, e, &rc);
      else if (key_is(k, kl, "thinking")) ve = take_text(s, v, e, 1, &sn, &rc);
      break;
    case 's':
      if (key_is(k, kl, "stats")) ve = take_raw(&s->stats, v, e, &rc);
      else if (key_is(k, kl, "stop") && *v == 't') s->done = out->done = 1;
      else if (key_is(k, kl, "sim_ns")) {
        ve = br_json_skip(v, e);
        if (ve && parse_int(v, ve, &out->sim_ns) == 0) out->has_sim_ns = 1;
      } else if (key_is(k, kl, "sim_arrival_ns") && !s->sim_arrival_ns) {
        ve = br_json_skip(v, e);
        int64_t a;
        if (ve && parse_int(v, ve, &a) == 0) s->sim_arrival_ns = a;
      }
      break;
    case 'm':
      if (key_is(k, kl, "message")) ve = walk_message(s, v, e, &sn, &rc);
      break;
    case 'r':
      if (key_is(k, kl, "response")) ve = take_text(s, v, e, 0, &sn, &rc);
      break;
    case 'd':
      if (key_is(k, kl, "done") && *v == 't') s->done = out->done = 1;
      else if (key_is(k, kl, "done_reason")) ve = take_finish(s, v, e);
      break;
    case 'e':
      if (key_is(k, kl, "error") && *v != 'n' && s->error.len == 0) {
        ve = br_json_skip(v, e);
        if (ve && br_buf_add(&s->error, v, (size_t)(ve - v))) rc = -2;
      }
      break;
    default:
      break;
    }
    if (rc == -2) return -2;
    if (ve == v) ve = br_json_skip(v, e);
    r = obj_end(&it, ve);
  }
  if (r < 0 || ws(it.p, e) != e) {
    /* Not valid JSON: undo whatever text this event added. */
    br_buf_truncate(&s->content, c0);
    br_buf_truncate(&s->reasoning, r0);
    br_buf_truncate(&s->logprobs, l0);
    s->in_think = think0;
    s->nheld = nheld0;
    memcpy(s->held, held0, sizeof held0);
    tools_undo(s, ntools0, dropped0);
    if (out->done && s->final.len == 0) s->done = 0;
    memset(out, 0, sizeof *out);
    s->bad_json++;
    return -1;
  }
  if (out->done && s->final.len == 0 && br_buf_add(&s->final, p, (size_t)(e - p))) return -2;
  if (sn.logprobs) s->logprob_events++;
  else if (sn.text) s->text_no_logprobs++;
  out->content_added = s->content.len - c0;
  out->reasoning_added = s->reasoning.len - r0;
  if (out->content_added) out->kind = BR_LLM_CONTENT;
  else if (out->reasoning_added) out->kind = BR_LLM_REASONING;
  else if (sn.tool) out->kind = BR_LLM_TOOL;
  else if (sn.text) out->kind = (sn.tag || s->in_think || s->nheld) ? BR_LLM_REASONING : BR_LLM_CONTENT;
  return 0;
}

void br_llm_finish(br_llm *s) {
  if (s->nheld) {
    emit(s, s->held, (size_t)s->nheld);
    s->nheld = 0;
  }
}
