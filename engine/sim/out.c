/* JSON text into a br_buf, for the simulator's answers (the inline
 * helpers on the per-token path are in sim.h). */
#include "sim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

void sim_out_of_memory(void) {
  fputs("benchrun sim: out of memory\n", stderr);
  abort();
}

void out_printf(br_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[512];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) { out_mem(b, tmp, (size_t)n); return; }
  out_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* A double as JSON (finite only; the sim never produces others). */
void out_double(br_buf *b, double v) {
  if (!isfinite(v)) v = 0;
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {   /* shortest text that reads back exactly */
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  if (!strpbrk(tmp, ".eEn")) strcat(tmp, ".0");
  out_str(b, tmp);
}

/* JSON string contents (no quotes), escaped. */
void out_json_esc(br_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    out_mem(b, s + start, i - start);
    switch (ch) {
    case '"': OUT_LIT(b, "\\\""); break;
    case '\\': OUT_LIT(b, "\\\\"); break;
    case '\n': OUT_LIT(b, "\\n"); break;
    case '\r': OUT_LIT(b, "\\r"); break;
    case '\t': OUT_LIT(b, "\\t"); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
      out_mem(b, u, 6);
    }
    }
    start = i + 1;
  }
  out_mem(b, s + start, n - start);
}
