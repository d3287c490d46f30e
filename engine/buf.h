/* One growable byte buffer for the engine (the HTTP transports, the stream
 * decoders sse.c and llmchunk.c, the YAML encoder, the simulator, process
 * output). It grows by doubling and never shrinks until freed. The bytes
 * are always followed by a NUL, so a buffer of text can be handed to C
 * string functions as it is. */
#ifndef BENCHRUN_BUF_H
#define BENCHRUN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct br_buf { char *p; size_t len, cap; } br_buf;

#define BR_BUF_INIT {NULL, 0, 0}

/* Make room for `extra` more bytes (and the NUL). 0, or -1 out of memory
 * with the buffer unchanged. */
int br_buf_reserve(br_buf *b, size_t extra);

/* Append n bytes: 0, or -1 out of memory (nothing appended). */
static inline int br_buf_add(br_buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap && br_buf_reserve(b, n) != 0) return -1;
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}
static inline int br_buf_str(br_buf *b, const char *s) { return br_buf_add(b, s, strlen(s)); }

/* Drop the first n bytes (what a writer has sent, what a parser took). */
void br_buf_consume(br_buf *b, size_t n);

/* Keep the first n bytes (nothing happens when n >= len): a parser taking
 * back what it appended. */
static inline void br_buf_truncate(br_buf *b, size_t n) {
  if (n < b->len) { b->len = n; b->p[n] = 0; }
}

/* Empty it, keeping the memory; free it. */
static inline void br_buf_clear(br_buf *b) { b->len = 0; if (b->p) b->p[0] = 0; }
void br_buf_free(br_buf *b);

#endif
