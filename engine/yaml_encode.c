/* bench.yaml's encoder: yaml.encode(value) -> text, block style, keys
 * sorted, every string that a YAML 1.2 (or 1.1) reader would read back as
 * something else quoted (the decoder's own scalar rules decide, yaml_scalar.h). */
#include "buf.h"
#include "class.h"
#include "yaml_scalar.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text being written lives in a br_buf inside a userdata, so an error
 * raised half way (a cycle, out of memory) frees it through __gc. */
static int output_gc(lua_State *L) {
  br_buf_free(lua_touserdata(L, 1));
  return 0;
}

typedef struct {
  lua_State *L;
  br_buf *out;
  int seen;     /* stack index: tables being written (cycle check) */
  int depth;
} encoder;

static void out_add(encoder *e, const char *s, size_t n) {
  if (br_buf_add(e->out, s, n)) luaL_error(e->L, "yaml.encode: out of memory");
}

static void out_str(encoder *e, const char *s) { out_add(e, s, strlen(s)); }

static void out_indent(encoder *e, int n) {
  static const char spaces[] = "                                ";
  while (n > 0) {
    int k = n > 32 ? 32 : n;
    out_add(e, spaces, (size_t)k);
    n -= k;
  }
}

/* Length of the valid UTF-8 sequence at s (0 if invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  if (s[0] < 0x80) return 1;
  size_t k = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
  if (!k || k > n) return 0;
  for (size_t i = 1; i < k; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (k == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;
  if (k == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;   /* surrogates */
  if (k == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;
  if (k == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;
  return k;
}

/* A plain scalar is safe when a YAML 1.2 (and, for the usual suspects,
 * 1.1) reader would read it back as this same string. */
static int needs_quotes(lua_State *L, const char *s, size_t n) {
  if (n == 0) return 1;
  static const char *const yaml11[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                       "on", "On", "ON", "off", "Off", "OFF", "=", "<<", NULL};
  if (yaml_is_one_of(s, n, yaml11)) return 1;
  int top = lua_gettop(L);
  int typed = yaml_resolve(L, s, n, K_ANY);
  lua_settop(L, top);
  if (typed) return 1;
  /* other number-like forms (1_000, 0b1, 1:30, 0x1p3, .5.) are quoted too */
  if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+' || s[0] == '.') && n > 1 &&
                                       ((s[1] >= '0' && s[1] <= '9') || s[1] == '.'))) return 1;
  if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0])) {
    if (!(s[0] == '-' || s[0] == '?' || s[0] == ':') || n == 1 || s[1] == ' ') return 1;
  }
  if (s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == ':') return 1;
  /* document markers */
  if (n >= 3 && (!memcmp(s, "---", 3) || !memcmp(s, "...", 3))) return 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7F) return 1;
    if (c == ':' && i + 1 < n && s[i + 1] == ' ') return 1;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return 1;
    if (c >= 0x80) return 1;   /* keep non-ASCII exact: escaped in double quotes only if needed */
  }
  return 0;
}

static void put_string(encoder *e, const char *s, size_t n, const char *where) {
  if (!needs_quotes(e->L, s, n)) { out_add(e, s, n); return; }
  out_add(e, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c >= 0x80) {
      size_t k = utf8_len((const unsigned char *)s + i, n - i);
      if (!k) luaL_error(e->L, "yaml.encode: %s: string is not valid UTF-8 (byte %d)", where, (int)i + 1);
      const unsigned char *u = (const unsigned char *)s + i;
      /* YAML reads these as line breaks or non-printable: escape them */
      if (k == 2 && u[0] == 0xC2 && u[1] < 0xA0) {
        snprintf(esc, sizeof esc, "\\x%02X", u[1]);
        out_str(e, esc);
      } else if (k == 3 && u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9)) {
        out_str(e, u[2] == 0xA8 ? "\\L" : "\\P");
      } else if (k == 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) {
        out_str(e, "\\uFEFF");
      } else {
        out_add(e, s + i, k);
      }
      i += k;
      continue;
    }
    switch (c) {
    case '"': out_add(e, "\\\"", 2); break;
    case '\\': out_add(e, "\\\\", 2); break;
    case '\n': out_add(e, "\\n", 2); break;
    case '\t': out_add(e, "\\t", 2); break;
    case '\r': out_add(e, "\\r", 2); break;
    case 0: out_add(e, "\\0", 2); break;
    default:
      if (c < 0x20 || c == 0x7F) {
        snprintf(esc, sizeof esc, "\\x%02X", c);
        out_str(e, esc);
      } else {
        out_add(e, (const char *)&c, 1);
      }
    }
    i++;
  }
  out_add(e, "\"", 1);
}

static void put_number(encoder *e, int idx) {
  lua_State *L = e->L;
  char buf[64];
  if (lua_isinteger(L, idx)) {
    snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
    out_str(e, buf);
    return;
  }
  double v = lua_tonumber(L, idx);
  if (v != v) { out_str(e, ".nan"); return; }
  if (isinf(v)) { out_str(e, v > 0 ? ".inf" : "-.inf"); return; }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  /* keep it a float when read back */
  if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
  out_str(e, buf);
}

static int is_scalar(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t != LUA_TTABLE) return 1;
  lua_pushnil(L);
  if (lua_next(L, idx)) { lua_pop(L, 2); return 0; }
  return 1;   /* an empty table is written inline: {} */
}

static void put_scalar(encoder *e, int idx, const char *where) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: out_str(e, "null"); break;
  case LUA_TBOOLEAN: out_str(e, lua_toboolean(L, idx) ? "true" : "false"); break;
  case LUA_TNUMBER: put_number(e, idx); break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    put_string(e, s, n, where);
    break;
  }
  case LUA_TTABLE: out_str(e, "{}"); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { out_str(e, "null"); break; }
    /* fallthrough */
  default:
    luaL_error(L, "yaml.encode: %s: cannot encode a %s (expected a table, string, number, boolean or yaml.null)",
               where, luaL_typename(L, idx));
  }
}

/* 1..n with no other keys: a sequence. */
static lua_Integer seq_len(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  if (n == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count == n ? n : 0;
}

/* Key order: numbers ascending, then strings bytewise, then booleans, then null. */
typedef struct { int kind; double num; const char *s; size_t n; int boolean; } keyref;

static int key_rank(int kind) {
  return kind == LUA_TNUMBER ? 0 : kind == LUA_TSTRING ? 1 : kind == LUA_TBOOLEAN ? 2 : 3;
}

static int key_cmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  if (key_rank(x->kind) != key_rank(y->kind)) return key_rank(x->kind) - key_rank(y->kind);
  if (x->kind == LUA_TNUMBER) return (x->num > y->num) - (x->num < y->num);
  if (x->kind == LUA_TSTRING) {
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
  }
  return x->boolean - y->boolean;
}

static void put_value(encoder *e, int idx, int indent, int inline_first, const char *where);

static void enter(encoder *e, int idx, const char *where) {
  lua_State *L = e->L;
  if (++e->depth > 1000) luaL_error(L, "yaml.encode: %s: nested deeper than 1000 levels", where);
  luaL_checkstack(L, 16, "yaml.encode: too deep");
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) != LUA_TNIL)
    luaL_error(L, "yaml.encode: %s: a table contains itself (expected a tree)", where);
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
}

static void leave(encoder *e, int idx) {
  lua_pushvalue(e->L, idx);
  lua_pushnil(e->L);
  lua_rawset(e->L, e->seen);
  e->depth--;
}

static void put_seq(encoder *e, int idx, lua_Integer n, int indent, int inline_first, const char *where) {
  lua_State *L = e->L;
  enter(e, idx, where);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1 || !inline_first) out_indent(e, indent);
    out_add(e, "- ", 2);
    lua_rawgeti(L, idx, i);
    const char *w = lua_pushfstring(L, "%s[%d]", where, (int)i);
    put_value(e, lua_gettop(L) - 1, indent + 2, 1, w);
    lua_pop(L, 2);
  }
  leave(e, idx);
}

static void put_map(encoder *e, int idx, int indent, int inline_first, const char *where) {
  lua_State *L = e->L;
  enter(e, idx, where);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { lua_pop(L, 1); n++; }
  keyref *keys = lua_newuserdatauv(L, n * sizeof *keys, 0);
  int keys_idx = lua_gettop(L);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    keyref *k = &keys[i++];
    memset(k, 0, sizeof *k);
    k->kind = lua_type(L, -1);
    if (k->kind == LUA_TNUMBER) k->num = lua_tonumber(L, -1);
    else if (k->kind == LUA_TSTRING) k->s = lua_tolstring(L, -1, &k->n);   /* anchored by the table */
    else if (k->kind == LUA_TBOOLEAN) k->boolean = lua_toboolean(L, -1);
    else if (k->kind == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {}   /* null key */
    else luaL_error(L, "yaml.encode: %s: a %s key (expected string, number, boolean or null keys)", where,
                    luaL_typename(L, -1));
  }
  qsort(keys, n, sizeof *keys, key_cmp);
  for (i = 0; i < n; i++) {
    keyref *k = &keys[i];
    if (k->kind == LUA_TNUMBER) {
      double num = k->num;
      if (fabs(num) < 9.2e18 && num == (double)(lua_Integer)num)   /* range first: casting a larger float is undefined */
        lua_pushinteger(L, (lua_Integer)num);
      else lua_pushnumber(L, num);
    } else if (k->kind == LUA_TSTRING) lua_pushlstring(L, k->s, k->n);
    else if (k->kind == LUA_TBOOLEAN) lua_pushboolean(L, k->boolean);
    else lua_pushlightuserdata(L, NULL);
    int key = lua_gettop(L);
    if (i > 0 || !inline_first) out_indent(e, indent);
    size_t kstart = e->out->len;
    put_scalar(e, key, where);
    size_t klen = e->out->len - kstart;
    if (klen > 1000) {
      /* YAML limits implicit keys to 1024 characters: write "? key\n:" */
      out_add(e, "  ", 2);
      memmove(e->out->p + kstart + 2, e->out->p + kstart, klen);
      memcpy(e->out->p + kstart, "? ", 2);
      out_add(e, "\n", 1);
      out_indent(e, indent);
    }
    out_add(e, ":", 1);
    lua_pushvalue(L, key);
    lua_rawget(L, idx);
    const char *w = k->kind == LUA_TSTRING ? lua_pushfstring(L, "%s.%s", where, k->s)
                                           : lua_pushfstring(L, "%s[%s]", where, luaL_tolstring(L, key, NULL));
    int v = key + 1;
    if (is_scalar(L, v)) {
      out_add(e, " ", 1);
      put_scalar(e, v, w);
      out_add(e, "\n", 1);
    } else {
      out_add(e, "\n", 1);
      put_value(e, v, indent + 2, 0, w);
    }
    lua_settop(L, key - 1);
  }
  lua_settop(L, keys_idx - 1);
  leave(e, idx);
}

static void put_value(encoder *e, int idx, int indent, int inline_first, const char *where) {
  lua_State *L = e->L;
  if (is_scalar(L, idx)) {
    put_scalar(e, idx, where);
    out_add(e, "\n", 1);
    return;
  }
  lua_Integer n = seq_len(L, idx);
  if (n > 0) put_seq(e, idx, n, indent, inline_first, where);
  else put_map(e, idx, indent, inline_first, where);
}

/* yaml.encode(value) -> text: block style, keys sorted, strings that would
 * read back as something else quoted. */
int yaml_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  br_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = (br_buf)BR_BUF_INIT;
  br_class(L, "bench.yaml.Output", (const luaL_Reg[]){{"__gc", output_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  encoder e = {L, b, lua_gettop(L), 0};
  put_value(&e, 1, 0, 0, "value");
  lua_pushlstring(L, b->p ? b->p : "", b->len);
  br_buf_free(b);
  return 1;
}
