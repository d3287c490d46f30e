/* An incremental HTTP/1.1 response parser for bench.http's own transport
 * (plain http:// to an address: the local and LAN servers benchrun
 * measures). No I/O and no Lua: the caller feeds the bytes of each read and
 * gets the status line and header lines, then the body with its framing
 * (Content-Length, chunked, or until the connection closes) taken off.
 *
 * Body bytes are handed out in place, in the caller's buffer: a streamed
 * response is never copied here. Only a header line or a chunk-size line
 * split across reads is kept (in a small buffer). */
#ifndef BENCHRUN_H1_H
#define BENCHRUN_H1_H

#include <stddef.h>
#include <stdint.h>

/* br_h1_feed / br_h1_eof results */
enum {
  BR_H1_MORE = 0,   /* all bytes taken; the response goes on */
  BR_H1_DONE = 1,   /* the response is complete (*used says where it ended) */
  BR_H1_ERROR = 2,  /* not a valid HTTP/1.x response: see error */
  BR_H1_STOP = 3    /* a callback returned non-zero */
};

/* Limits on a response head: its bytes (status lines and headers, 1xx
 * responses included), one line of it, and its header lines. They are
 * curl's (MAX_HTTP_RESP_HEADER_SIZE, CURL_MAX_HTTP_HEADER and the header
 * count of curl 8), and bench.http checks the head lines curl hands it
 * against the same limits (engine/http.c), so both transports refuse the
 * same heads: docs/http.md. Then the longest chunk-size or trailer line. */
enum {
  BR_H1_MAX_HEAD = 300 << 10,
  BR_H1_MAX_HEAD_LINE = 100 << 10,
  BR_H1_MAX_HEADERS = 5000,
  BR_H1_MAX_LINE = 4096
};

typedef struct br_h1_callbacks {
  /* The status line, then each header line of a response, without its line
   * end. Interim (1xx) responses come through too: a new status line means
   * a new response starts. */
  int (*line)(void *ud, const char *p, size_t n);
  /* The final response's head is complete. */
  int (*head_done)(void *ud, int status);
  /* Body bytes, framing removed. */
  int (*body)(void *ud, const char *p, size_t n);
} br_h1_callbacks;

typedef struct br_h1 {
  int state;
  int no_body;              /* the request was HEAD */
  int status;               /* the final response's status (0 until known) */
  int version_minor;        /* HTTP/1.<n> */
  int keep_alive;           /* the connection may carry another request */
  int close_seen;           /* a Connection: close came */
  int after_status;         /* the status line was the last line */
  int chunked;
  int64_t content_length;   /* -1 when not given */
  uint64_t left;            /* bytes of the current chunk or of the body */
  size_t head_bytes;        /* bytes of head lines so far (BR_H1_MAX_HEAD) */
  unsigned head_lines;      /* header lines so far (BR_H1_MAX_HEADERS) */
  uint64_t body_bytes;      /* body bytes handed out */
  int started;              /* a byte has been seen */
  int chunk_ext;            /* reading past a long chunk extension */
  char *line;               /* a line split across reads (malloc'd when first needed) */
  size_t line_len, line_cap;
  const char *error;        /* with BR_H1_ERROR: what was wrong */
} br_h1;

/* Start parsing a response; head_request: it answers a HEAD (no body).
 * The struct must be zeroed before its first init (init keeps the line
 * buffer of an earlier response on the same connection); br_h1_free
 * releases that buffer. */
void br_h1_init(br_h1 *p, int head_request);
void br_h1_free(br_h1 *p);

/* Parse the next n bytes. *used is set to the bytes consumed: all of them,
 * except after BR_H1_DONE (the response ended earlier: the rest is not part
 * of it) or BR_H1_STOP (the bytes after the callback's). */
int br_h1_feed(br_h1 *p, const char *s, size_t n, const br_h1_callbacks *cb, void *ud, size_t *used);

/* The connection closed. BR_H1_DONE when that ends the body (no framing
 * given); BR_H1_ERROR otherwise, with error "closed before the response",
 * "closed in the response head" or "closed mid-body". */
int br_h1_eof(br_h1 *p);

/* Whether any byte of a response has been seen. */
int br_h1_started(const br_h1 *p);
/* Whether the head of the final response is complete. */
int br_h1_head_complete(const br_h1 *p);

/* The next element of a comma-separated header value (RFC 9110 list:
 * empty elements skipped, spaces and tabs trimmed) from *pos on: its start
 * and *len, *pos moved past it; NULL when there is none left. */
const char *br_h1_list_next(const char *v, size_t n, size_t *pos, size_t *len);

#endif
