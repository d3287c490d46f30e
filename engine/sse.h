/* Incremental decoders for streamed HTTP bodies: Server-Sent Events (the
 * WHATWG EventSource parsing rules) and newline-delimited JSON (Ollama's
 * native API). No Lua here: bench.http feeds them the bytes of each read and
 * gets one callback per event.
 *
 * The decoders copy as little as they can: a one-line event whose bytes sit
 * in the read buffer is handed out in place; only lines split across reads
 * and multi-line data are copied, into buffers that grow and are reused. */
#ifndef BENCHRUN_SSE_H
#define BENCHRUN_SSE_H

#include "buf.h"   /* br_buf: the engine's growable byte buffer */

#include <stddef.h>
#include <stdint.h>

enum { BR_SSE_MODE_SSE = 0, BR_SSE_MODE_NDJSON = 1 };

/* Results of br_sse_feed. */
enum {
  BR_SSE_OK = 0,
  BR_SSE_TOO_LARGE = 1,  /* an event (or an unterminated line) exceeded max_event */
  BR_SSE_STOPPED = 2,    /* the callback asked to stop */
  BR_SSE_NOMEM = 3
};

typedef struct br_sse_event {
  const char *data;  /* the event's data (the joined data: fields, or the NDJSON line) */
  size_t data_len;
  const char *type;  /* "message" unless an event: field named another (SSE only) */
  size_t type_len;
  const char *id;    /* the last event ID seen so far ("" if none) */
  size_t id_len;
} br_sse_event;

/* Called once per event. The pointers are valid only during the call.
 * Return 0 to go on, non-zero to stop decoding (br_sse_feed then returns
 * BR_SSE_STOPPED). */
typedef int (*br_sse_cb)(void *ud, const br_sse_event *ev);

typedef struct br_sse {
  int mode;            /* BR_SSE_MODE_* */
  size_t max_event;    /* bytes of one event (data + pending line); 0: unlimited */
  br_buf line;         /* a line split across reads */
  br_buf data;         /* data: fields joined with '\n' (each followed by '\n') */
  br_buf type;
  br_buf id;
  const char *ref;     /* the event's only data line, still in the caller's buffer */
  size_t ref_len;
  int has_ref;
  int skip_lf;         /* the last read ended in CR: a leading LF belongs to it */
  int bom_done;        /* the start of the stream has been checked for a BOM */
  int bom_held;        /* bytes of a possible BOM held back at the start */
  int64_t retry_ms;    /* the last valid retry: field, or -1 */
  uint64_t events;     /* events dispatched */
} br_sse;

/* Start a decoder. max_event 0 means no limit. */
void br_sse_init(br_sse *d, int mode, size_t max_event);
/* Release its buffers (the struct may be re-initialised after). */
void br_sse_free(br_sse *d);

/* Decode the next n bytes of the stream, calling cb for each complete
 * event. Returns a BR_SSE_* code; after anything but BR_SSE_OK the decoder
 * must not be fed again. */
int br_sse_feed(br_sse *d, const char *p, size_t n, br_sse_cb cb, void *ud);

/* The stream has ended. SSE: an unfinished event is discarded, as the spec
 * says. NDJSON: a last line without its newline is still an event.
 * Returns the number of bytes of an unfinished SSE event that were dropped
 * (0 when the stream ended cleanly on an event boundary), or -BR_SSE_STOPPED
 * if the callback stopped. */
long br_sse_finish(br_sse *d, br_sse_cb cb, void *ud);

#endif
