/* An incremental HTTP/1.1 response parser (see h1.h). It follows RFC 9112
 * for what a client must do with a response: interim 1xx responses are
 * skipped, Transfer-Encoding: chunked wins over Content-Length, a response
 * to HEAD and a 204 or 304 have no body, and a body with no framing runs
 * until the connection closes. It is lenient where servers are sloppy and
 * no harm comes of it (a bare LF ends a line, a status line may lack its
 * reason phrase, chunk extensions are ignored) and strict where a mistake
 * would misframe the stream (a bad chunk size, conflicting lengths). Where
 * curl refuses a head, so does h1 (an empty line before the status line,
 * HTTP/1.2, a NUL byte, folding right after the status line): the two
 * transports of bench.http must give the same error for the same bytes. */
#include "h1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The error messages below name the limits of h1.h. */
_Static_assert(BR_H1_MAX_HEAD == 300 << 10 && BR_H1_MAX_HEAD_LINE == 100 << 10 && BR_H1_MAX_HEADERS == 5000,
               "the messages of the head limits say 300 KiB, 100 KiB and 5000");

enum {
  S_STATUS = 0,    /* waiting for a status line */
  S_HEADER,        /* header lines, until an empty one */
  S_BODY_LEN,      /* left bytes of a Content-Length body */
  S_BODY_CLOSE,    /* body until the connection closes */
  S_CHUNK_SIZE,    /* a chunk-size line */
  S_CHUNK_DATA,    /* left bytes of a chunk */
  S_CHUNK_END,     /* the line end after a chunk's data */
  S_TRAILER,       /* trailer lines, until an empty one */
  S_DONE
};

void br_h1_init(br_h1 *p, int head_request) {
  char *line = p->line;
  size_t cap = p->line_cap;
  memset(p, 0, sizeof *p);
  p->line = line;
  p->line_cap = cap;
  p->no_body = head_request;
  p->content_length = -1;
  p->state = S_STATUS;
}

void br_h1_free(br_h1 *p) {
  free(p->line);
  p->line = NULL;
  p->line_cap = p->line_len = 0;
}

int br_h1_started(const br_h1 *p) { return p->started; }

int br_h1_head_complete(const br_h1 *p) { return p->state > S_HEADER; }

static int fail(br_h1 *p, const char *why) {
  p->error = why;
  return BR_H1_ERROR;
}

/* The next line from s[*i..n): 1 with *line and *len set (its line end taken
 * off; in place when it was not split across reads), 0 when the bytes ran
 * out first (they are kept), -1 on error (p->error set). */
static int take_line(br_h1 *p, const char *s, size_t n, size_t *i, size_t max, const char **line, size_t *len) {
  const char *start = s + *i;
  const char *lf = memchr(start, '\n', n - *i);
  size_t k = lf ? (size_t)(lf - start) : n - *i;
  if (p->line_len + k > max) {
    p->error = max == BR_H1_MAX_HEAD_LINE ? "a line of the response head is longer than 100 KiB"
                                          : "a line of the response is too long";
    return -1;
  }
  if (!lf || p->line_len) {
    if (p->line_len + k > p->line_cap) {
      size_t cap = p->line_cap ? p->line_cap : 256;
      while (cap < p->line_len + k) cap *= 2;
      char *b = realloc(p->line, cap);
      if (!b) {
        p->error = "out of memory";
        return -1;
      }
      p->line = b;
      p->line_cap = cap;
    }
    memcpy(p->line + p->line_len, start, k);
    p->line_len += k;
  }
  if (!lf) {
    *i = n;
    return 0;
  }
  *i += k + 1;
  if (p->line_len) {
    *line = p->line;
    *len = p->line_len;
    p->line_len = 0;
  } else {
    *line = start;
    *len = k;
  }
  if (*len && (*line)[*len - 1] == '\r') (*len)--;
  return 1;
}

/* "HTTP/1.x NNN[ reason]" */
static int parse_status(br_h1 *p, const char *s, size_t n) {
  if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ')
    return fail(p, "not an HTTP/1.x status line");
  if (s[7] > '1') return fail(p, "an HTTP/1.x version other than 1.0 and 1.1");   /* as curl */
  if (s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' || (n > 12 && s[12] != ' '))
    return fail(p, "a bad status code");
  p->version_minor = s[7] - '0';
  p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  p->keep_alive = p->version_minor >= 1;
  p->close_seen = 0;
  p->chunked = 0;
  p->content_length = -1;
  p->after_status = 1;
  return BR_H1_MORE;
}

static int name_is(const char *s, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

const char *br_h1_list_next(const char *v, size_t n, size_t *pos, size_t *len) {
  size_t i = *pos;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t b = i;
    while (i < n && v[i] != ',') i++;
    size_t e = i;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > b) {
      *pos = i;
      *len = e - b;
      return v + b;
    }
  }
  *pos = n;
  return NULL;
}

/* Whether a comma-separated header value holds token (any case). */
static int has_token(const char *v, size_t n, const char *token, int last_only) {
  size_t tl = strlen(token), pos = 0, len;
  int found = 0;
  const char *t;
  while ((t = br_h1_list_next(v, n, &pos, &len))) {
    found = (len == tl && strncasecmp(t, token, tl) == 0);
    if (found && !last_only) return 1;
  }
  return found;
}

static int parse_header(br_h1 *p, const char *s, size_t n) {
  int first_line = p->after_status;
  p->after_status = 0;
  if (s[0] == ' ' || s[0] == '\t') {
    /* obsolete line folding: kept, not interpreted; but there is nothing
     * to fold into right after the status line (RFC 9112, 2.2; curl: "Header
     * without colon") */
    return first_line ? fail(p, "a header line starting with white space right after the status line") : BR_H1_MORE;
  }
  const char *colon = memchr(s, ':', n);
  if (!colon || colon == s) return fail(p, "a header line without a name");
  size_t nl = (size_t)(colon - s);
  while (nl && (s[nl - 1] == ' ' || s[nl - 1] == '\t')) nl--;   /* "Name :" is invalid, but harmless to read */
  if (!nl) return fail(p, "a header line without a name");
  const char *v = colon + 1, *ve = s + n;
  while (v < ve && (*v == ' ' || *v == '\t')) v++;
  while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
  size_t vn = (size_t)(ve - v);
  if (name_is(s, nl, "content-length")) {
    /* a list of equal values is the same length (RFC 9110, 8.6) */
    size_t i = 0;
    do {
      int first = i == 0;
      while (i < vn && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
      if (i == vn) return fail(p, first ? "an empty Content-Length" : "a bad Content-Length");
      int64_t len = 0;
      for (; i < vn && v[i] != ',' && v[i] != ' ' && v[i] != '\t'; i++) {
        if (v[i] < '0' || v[i] > '9') return fail(p, "a bad Content-Length");
        if (len > (INT64_MAX - 9) / 10) return fail(p, "a Content-Length out of range");
        len = len * 10 + (v[i] - '0');
      }
      if (p->content_length >= 0 && p->content_length != len) return fail(p, "two different Content-Lengths");
      p->content_length = len;
      while (i < vn && (v[i] == ' ' || v[i] == '\t')) i++;
    } while (i < vn && v[i] == ',');
    if (i < vn) return fail(p, "a bad Content-Length");
  } else if (name_is(s, nl, "transfer-encoding")) {
    /* chunked must be the last coding; any other coding alone means the
     * body runs to the close. */
    p->chunked = has_token(v, vn, "chunked", 1) ? 1 : -1;
  } else if (name_is(s, nl, "connection")) {
    /* "close" anywhere wins, whatever other Connection lines say */
    if (has_token(v, vn, "close", 0)) p->keep_alive = 0, p->close_seen = 1;
    else if (has_token(v, vn, "keep-alive", 0) && !p->close_seen) p->keep_alive = 1;
  }
  return BR_H1_MORE;
}

/* The head of a response ended: pick the body's framing. */
static int head_end(br_h1 *p, const br_h1_callbacks *cb, void *ud) {
  if (p->status < 200) {
    if (p->status == 101) return fail(p, "an unexpected 101 Switching Protocols");
    p->state = S_STATUS;   /* an interim response: the real one follows */
    p->status = 0;
    return BR_H1_MORE;
  }
  if (p->no_body || p->status == 204 || p->status == 304) {
    p->state = S_DONE;
  } else if (p->chunked == 1) {
    if (p->content_length >= 0) p->keep_alive = 0;   /* both framings: trust chunked, then close */
    p->content_length = -1;
    p->state = S_CHUNK_SIZE;
  } else if (p->chunked == 0 && p->content_length >= 0) {
    p->left = (uint64_t)p->content_length;
    p->state = p->left ? S_BODY_LEN : S_DONE;
  } else {
    p->keep_alive = 0;
    p->content_length = -1;   /* a coding other than chunked: the length is not the body's */
    p->state = S_BODY_CLOSE;
  }
  /* after the framing is set: a stop here leaves a parser that goes on with the body */
  if (cb->head_done && cb->head_done(ud, p->status)) return BR_H1_STOP;
  return BR_H1_MORE;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_chunk_size(br_h1 *p, const char *s, size_t n) {
  size_t i = 0;
  uint64_t size = 0;
  while (i < n && hexval(s[i]) >= 0) {
    if (size >> 56) return fail(p, "a chunk size out of range");
    size = size * 16 + (uint64_t)hexval(s[i]);
    i++;
  }
  if (i == 0) return fail(p, "a bad chunk size");
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i < n && s[i] != ';') return fail(p, "a bad chunk size");
  p->left = size;
  p->state = size ? S_CHUNK_DATA : S_TRAILER;
  return BR_H1_MORE;
}

/* A chunk-size line longer than BR_H1_MAX_LINE: fine when the excess is a
 * chunk extension (ignored anyway, and curl reads past extensions however
 * long): the size part is kept, the rest read past (p->chunk_ext). 0, or -1
 * when the size part itself is too long. */
static int long_chunk_ext(br_h1 *p, const char *s, size_t n, size_t *i) {
  const char *semi = p->line_len ? memchr(p->line, ';', p->line_len) : NULL;
  if (semi) {
    p->line_len = (size_t)(semi - p->line);
  } else {
    size_t room = BR_H1_MAX_LINE - p->line_len, k = n - *i < room ? n - *i : room;
    semi = memchr(s + *i, ';', k);
    const char *line;
    size_t len;
    /* the bytes before the ';' join the partial line (no line end in them) */
    if (!semi || take_line(p, s, (size_t)(semi - s), i, BR_H1_MAX_LINE, &line, &len) < 0) return -1;
  }
  p->chunk_ext = 1;
  p->error = NULL;
  return 0;
}

/* Hand body bytes to the callback. */
static int body(br_h1 *p, const char *s, size_t n, const br_h1_callbacks *cb, void *ud) {
  p->body_bytes += n;
  return cb->body && cb->body(ud, s, n) ? BR_H1_STOP : BR_H1_MORE;
}

/* Up to p->left body bytes from s[*i..n); then the state `next`. */
static int counted_body(br_h1 *p, const char *s, size_t n, size_t *i, const br_h1_callbacks *cb, void *ud, int next) {
  size_t k = n - *i < p->left ? n - *i : (size_t)p->left;
  const char *b = s + *i;
  p->left -= k;
  *i += k;
  if (!p->left) p->state = next;
  return body(p, b, k, cb, ud);
}

/* long function: the parser's state machine, one case per state. */
int br_h1_feed(br_h1 *p, const char *s, size_t n, const br_h1_callbacks *cb, void *ud, size_t *used) {
  size_t i = 0;
  int rc = BR_H1_MORE;
  if (n) p->started = 1;
  while (i < n && rc == BR_H1_MORE) {
    const char *line;
    size_t len;
    int got;
    switch (p->state) {
    case S_STATUS:
    case S_HEADER: {
      size_t before = i;
      got = take_line(p, s, n, &i, BR_H1_MAX_HEAD_LINE, &line, &len);
      p->head_bytes += i - before;
      if (got < 0) { rc = BR_H1_ERROR; break; }
      if (p->head_bytes > BR_H1_MAX_HEAD) { rc = fail(p, "the response head is larger than 300 KiB"); break; }
      if (!got) {   /* a partial status line that cannot become one: say so now, not at the close */
        if (p->state == S_STATUS && p->line_len && memcmp(p->line, "HTTP/1.", p->line_len < 7 ? p->line_len : 7) != 0)
          rc = fail(p, "not an HTTP/1.x status line");
        break;
      }
      /* as curl (RFC 9110, 5.5: a recipient may reject a NUL) */
      if (memchr(line, 0, len)) { rc = fail(p, "a NUL byte in the response head"); break; }
      if (p->state == S_STATUS) {
        /* curl takes even an empty line before the status line for HTTP/0.9 */
        if (len == 0) { rc = fail(p, "not an HTTP/1.x status line (an empty line)"); break; }
        if ((rc = parse_status(p, line, len)) != BR_H1_MORE) break;
        p->state = S_HEADER;
        if (cb->line && cb->line(ud, line, len)) rc = BR_H1_STOP;
      } else if (len == 0) {
        rc = head_end(p, cb, ud);
      } else {
        if (++p->head_lines > BR_H1_MAX_HEADERS) {
          rc = fail(p, "the response head has more than 5000 header lines");
          break;
        }
        if ((rc = parse_header(p, line, len)) != BR_H1_MORE) break;
        if (cb->line && cb->line(ud, line, len)) rc = BR_H1_STOP;
      }
      break;
    }
    case S_BODY_LEN:
      rc = counted_body(p, s, n, &i, cb, ud, S_DONE);
      break;
    case S_BODY_CLOSE:
      rc = body(p, s + i, n - i, cb, ud);
      i = n;
      break;
    case S_CHUNK_SIZE:
      if (p->chunk_ext) {   /* the rest of a long chunk extension: read past it */
        const char *lf = memchr(s + i, '\n', n - i);
        i = lf ? (size_t)(lf - s) + 1 : n;
        if (lf) {
          p->chunk_ext = 0;
          rc = parse_chunk_size(p, p->line, p->line_len);
          p->line_len = 0;
        }
        break;
      }
      got = take_line(p, s, n, &i, BR_H1_MAX_LINE, &line, &len);
      if (got < 0 && long_chunk_ext(p, s, n, &i) == 0) break;
      if (got < 0) rc = BR_H1_ERROR;
      else if (got) rc = parse_chunk_size(p, line, len);
      break;
    case S_CHUNK_DATA:
      rc = counted_body(p, s, n, &i, cb, ud, S_CHUNK_END);
      break;
    case S_CHUNK_END:
      got = take_line(p, s, n, &i, BR_H1_MAX_LINE, &line, &len);
      if (got < 0) rc = BR_H1_ERROR;
      else if (got && len) rc = fail(p, "chunk data longer than its size");
      else if (got) p->state = S_CHUNK_SIZE;
      break;
    case S_TRAILER:
      got = take_line(p, s, n, &i, BR_H1_MAX_LINE, &line, &len);
      if (got < 0) rc = BR_H1_ERROR;
      else if (got && !len) p->state = S_DONE;
      else if (got && !memchr(line, ':', len)) rc = fail(p, "a trailer line without a colon");   /* as curl */
      break;
    default:
      break;
    }
    if (p->state == S_DONE && rc == BR_H1_MORE) rc = BR_H1_DONE;
  }
  if (rc == BR_H1_MORE && p->state == S_DONE) rc = BR_H1_DONE;
  *used = i;
  return rc;
}

int br_h1_eof(br_h1 *p) {
  switch (p->state) {
  case S_DONE:
  case S_BODY_CLOSE:
    p->state = S_DONE;
    return BR_H1_DONE;
  case S_STATUS:
    return fail(p, p->started ? "the connection closed in the response head" : "the connection closed before the response");
  case S_HEADER:
    return fail(p, "the connection closed in the response head");
  default:
    return fail(p, "the connection closed mid-body");
  }
}
