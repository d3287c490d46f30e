/* The engine's growable byte buffer (buf.h). */
#include "buf.h"

#include <stdlib.h>

int br_buf_reserve(br_buf *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

void br_buf_consume(br_buf *b, size_t n) {
  if (n >= b->len) { br_buf_clear(b); return; }
  memmove(b->p, b->p + n, b->len - n);
  b->len -= n;
  b->p[b->len] = 0;
}

void br_buf_free(br_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
