/* Server-Sent Events and NDJSON decoders (see sse.h). The SSE rules are the
 * WHATWG HTML standard's "Interpreting an event stream": lines end in CRLF,
 * LF or CR; a blank line dispatches; "data" fields join with LF; a comment
 * starts with ':'; one leading UTF-8 BOM is dropped. One addition: a line
 * "error: VALUE" is read as "event: error" + "data: VALUE", since llama.cpp's
 * server reports a failed generation that way (server_sent_event(sink,
 * "error", ...)) and the standard rules would drop the message. */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

void br_sse_init(br_sse *d, int mode, size_t max_event) {
  memset(d, 0, sizeof *d);
  d->mode = mode;
  d->max_event = max_event;
  d->retry_ms = -1;
}

void br_sse_free(br_sse *d) {
  br_buf_free(&d->line);
  br_buf_free(&d->data);
  br_buf_free(&d->type);
  br_buf_free(&d->id);
  d->has_ref = 0;
}

/* Bytes the event being assembled holds so far. */
static size_t pending_bytes(const br_sse *d) {
  return d->line.len + d->data.len + (d->has_ref ? d->ref_len : 0);
}

static int too_large(const br_sse *d, size_t more) {
  return d->max_event && pending_bytes(d) + more > d->max_event;
}

/* Move a data line held by reference into the data buffer (the caller's
 * buffer is about to go away, or a second data line arrived). */
static int materialize(br_sse *d) {
  if (!d->has_ref) return 0;
  d->has_ref = 0;
  if (br_buf_add(&d->data, d->ref, d->ref_len) || br_buf_add(&d->data, "\n", 1))
    return -1;
  return 0;
}

static int dispatch(br_sse *d, br_sse_cb cb, void *ud) {
  br_sse_event ev;
  if (!d->has_ref && d->data.len == 0) {   /* no data: the spec resets and dispatches nothing */
    br_buf_clear(&d->type);
    return BR_SSE_OK;
  }
  if (d->has_ref) {
    ev.data = d->ref;
    ev.data_len = d->ref_len;
  } else {
    ev.data = d->data.p;
    ev.data_len = d->data.len - 1;   /* the last LF is not part of the data */
  }
  if (d->type.len) {
    ev.type = d->type.p;
    ev.type_len = d->type.len;
  } else {
    ev.type = "message";
    ev.type_len = 7;
  }
  ev.id = d->id.len ? d->id.p : "";
  ev.id_len = d->id.len;
  d->events++;
  int stop = cb(ud, &ev);
  d->has_ref = 0;
  br_buf_clear(&d->data);
  br_buf_clear(&d->type);
  return stop ? BR_SSE_STOPPED : BR_SSE_OK;
}

static int field_is(const char *f, size_t n, const char *name) {
  size_t k = strlen(name);
  return n == k && memcmp(f, name, k) == 0;
}

/* One SSE line without its terminator. in_place: the bytes live in the
 * caller's buffer for the rest of this feed (so a data line can be kept by
 * reference). */
static int sse_line(br_sse *d, const char *line, size_t len, int in_place, br_sse_cb cb, void *ud) {
  if (len == 0) return dispatch(d, cb, ud);
  if (line[0] == ':') return BR_SSE_OK;   /* comment */
  const char *colon = memchr(line, ':', len);
  size_t flen = colon ? (size_t)(colon - line) : len;
  const char *value = colon ? colon + 1 : line + len;
  size_t vlen = colon ? len - flen - 1 : 0;
  if (vlen && value[0] == ' ') { value++; vlen--; }
  if (field_is(line, flen, "data")) {
    if (in_place && !d->has_ref && d->data.len == 0) {
      d->ref = value;
      d->ref_len = vlen;
      d->has_ref = 1;
      return BR_SSE_OK;
    }
    if (materialize(d) || br_buf_add(&d->data, value, vlen) || br_buf_add(&d->data, "\n", 1))
      return BR_SSE_NOMEM;
  } else if (field_is(line, flen, "error")) {   /* llama.cpp's in-stream error */
    br_buf_clear(&d->type);
    if (br_buf_add(&d->type, "error", 5) || materialize(d) || br_buf_add(&d->data, value, vlen) ||
        br_buf_add(&d->data, "\n", 1))
      return BR_SSE_NOMEM;
  } else if (field_is(line, flen, "event")) {
    br_buf_clear(&d->type);
    if (br_buf_add(&d->type, value, vlen)) return BR_SSE_NOMEM;
  } else if (field_is(line, flen, "id")) {
    if (!memchr(value, '\0', vlen)) {
      br_buf_clear(&d->id);
      if (br_buf_add(&d->id, value, vlen)) return BR_SSE_NOMEM;
    }
  } else if (field_is(line, flen, "retry")) {
    int64_t ms = 0;
    size_t i;
    for (i = 0; i < vlen && value[i] >= '0' && value[i] <= '9' && ms < INT64_MAX / 10 - 9; i++)
      ms = ms * 10 + (value[i] - '0');
    if (vlen && i == vlen) d->retry_ms = ms;
  }
  return BR_SSE_OK;   /* other fields are ignored */
}

/* One NDJSON line: blank lines are skipped, a trailing CR is dropped. */
static int ndjson_line(br_sse *d, const char *line, size_t len, br_sse_cb cb, void *ud) {
  if (len && line[len - 1] == '\r') len--;
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
  if (i == len) return BR_SSE_OK;
  br_sse_event ev = {line, len, "", 0, "", 0};
  d->events++;
  return cb(ud, &ev) ? BR_SSE_STOPPED : BR_SSE_OK;
}

/* The first line terminator in [p, end), or NULL. NDJSON lines end at LF only. */
static const char *find_eol(const br_sse *d, const char *p, const char *end) {
  const char *lf = memchr(p, '\n', (size_t)(end - p));
  if (d->mode == BR_SSE_MODE_NDJSON) return lf;
  const char *cr = memchr(p, '\r', (size_t)((lf ? lf : end) - p));
  return cr ? cr : lf;
}

static int feed_lines(br_sse *d, const char *p, size_t n, br_sse_cb cb, void *ud) {
  const char *end = p + n;
  if (d->skip_lf && p < end) {
    if (*p == '\n') p++;
    d->skip_lf = 0;
  }
  int rc = BR_SSE_OK;
  while (p < end) {
    const char *eol = find_eol(d, p, end);
    if (!eol) {   /* an unfinished line: keep it for the next read */
      if (too_large(d, (size_t)(end - p))) return BR_SSE_TOO_LARGE;
      if (br_buf_add(&d->line, p, (size_t)(end - p))) return BR_SSE_NOMEM;
      break;
    }
    size_t seg = (size_t)(eol - p);
    if (too_large(d, seg)) return BR_SSE_TOO_LARGE;
    const char *line = p;
    size_t len = seg;
    int from_buf = d->line.len != 0;
    if (from_buf) {
      if (br_buf_add(&d->line, p, seg)) return BR_SSE_NOMEM;
      line = d->line.p;
      len = d->line.len;
    }
    if (*eol == '\r') {
      if (eol + 1 < end) p = eol + 1 + (eol[1] == '\n');
      else { p = end; d->skip_lf = 1; }
    } else {
      p = eol + 1;
    }
    if (d->mode == BR_SSE_MODE_NDJSON) rc = ndjson_line(d, line, len, cb, ud);
    else rc = sse_line(d, line, len, !from_buf, cb, ud);
    if (from_buf) br_buf_clear(&d->line);
    if (rc != BR_SSE_OK) return rc;
  }
  if (materialize(d)) return BR_SSE_NOMEM;
  return BR_SSE_OK;
}

int br_sse_feed(br_sse *d, const char *p, size_t n, br_sse_cb cb, void *ud) {
  /* A BOM may arrive split across reads: hold its bytes until it is whole
   * or proves not to be one (then they are ordinary bytes). */
  while (!d->bom_done && n) {
    if ((unsigned char)*p == BOM[d->bom_held]) {
      d->bom_held++;
      p++;
      n--;
      if (d->bom_held == 3) { d->bom_done = 1; d->bom_held = 0; }
    } else {
      int held = d->bom_held;
      d->bom_done = 1;
      d->bom_held = 0;
      if (held) {
        int rc = feed_lines(d, (const char *)BOM, (size_t)held, cb, ud);
        if (rc != BR_SSE_OK) return rc;
      }
    }
  }
  if (!n) return BR_SSE_OK;
  return feed_lines(d, p, n, cb, ud);
}

long br_sse_finish(br_sse *d, br_sse_cb cb, void *ud) {
  if (d->mode == BR_SSE_MODE_NDJSON) {
    if (d->line.len) {
      int rc = ndjson_line(d, d->line.p, d->line.len, cb, ud);
      br_buf_clear(&d->line);
      if (rc == BR_SSE_STOPPED) return -BR_SSE_STOPPED;
    }
    return 0;
  }
  long dropped = (long)(d->line.len + d->data.len);
  br_buf_clear(&d->line);
  br_buf_clear(&d->data);
  br_buf_clear(&d->type);
  return dropped;
}
