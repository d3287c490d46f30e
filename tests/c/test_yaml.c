/* bench.yaml against a folder of real YAML documents.
 *
 * For every tests/yaml-cases/NAME.yaml, NAME.expect holds either the
 * canonical dump of yaml.decode_all's result (below) or a line
 * "error: TEXT", where TEXT must appear in the error message. A .yaml with no
 * .expect (inputs kept from fuzzing) must decode or fail cleanly.
 * Also: generated 10,000-level nesting, billion laughs, positions, and
 * encode -> decode round trips. */
#include "benchrun/runtime.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

typedef struct { char *p; size_t len, cap; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_indent(sbuf *b, int n) { for (int i = 0; i < n; i++) sb_add(b, " ", 1); }

/* Canonical dump: null, true/false, integers, floats always with a '.',
 * an exponent or .inf/.nan, strings in double quotes, [seq], {map} with
 * keys sorted by their dump, one entry per line. */
static void dump(lua_State *L, int idx, sbuf *b, int indent);

static void dump_string(sbuf *b, const char *s, size_t n) {
  sb_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') { sb_add(b, "\\", 1); sb_add(b, (const char *)&c, 1); }
    else if (c == '\n') sb_str(b, "\\n");
    else if (c == '\t') sb_str(b, "\\t");
    else if (c < 0x20 || c == 0x7F) { snprintf(esc, sizeof esc, "\\x%02X", c); sb_str(b, esc); }
    else sb_add(b, (const char *)&c, 1);
  }
  sb_add(b, "\"", 1);
}

static char *dump_to_string(lua_State *L, int idx, int indent) {
  sbuf b = {0};
  sb_str(&b, "");
  dump(L, idx, &b, indent);
  return b.p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void dump(lua_State *L, int idx, sbuf *b, int indent) {
  idx = lua_absindex(L, idx);
  char num[64];
  switch (lua_type(L, idx)) {
  case LUA_TNIL: sb_str(b, "nil"); return;
  case LUA_TLIGHTUSERDATA: sb_str(b, lua_touserdata(L, idx) ? "lightuserdata" : "null"); return;
  case LUA_TBOOLEAN: sb_str(b, lua_toboolean(L, idx) ? "true" : "false"); return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    else {
      double v = lua_tonumber(L, idx);
      if (v != v) snprintf(num, sizeof num, ".nan");
      else if (isinf(v)) snprintf(num, sizeof num, v > 0 ? ".inf" : "-.inf");
      else {
        snprintf(num, sizeof num, "%.17g", v);
        if (!strpbrk(num, ".e")) strcat(num, ".0");
      }
    }
    sb_str(b, num);
    return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    dump_string(b, s, n);
    return;
  }
  case LUA_TTABLE: break;
  default: sb_str(b, luaL_typename(L, idx)); return;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) { lua_pop(L, 1); count++; }
  if (count == 0) { sb_str(b, "{}"); return; }
  if (n == count) {
    sb_str(b, "[\n");
    for (lua_Integer i = 1; i <= n; i++) {
      sb_indent(b, indent + 2);
      lua_rawgeti(L, idx, i);
      dump(L, -1, b, indent + 2);
      lua_pop(L, 1);
      sb_str(b, "\n");
    }
    sb_indent(b, indent);
    sb_str(b, "]");
    return;
  }
  char **lines = calloc((size_t)count, sizeof *lines);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char *key = dump_to_string(L, -2, indent + 2);
    char *val = dump_to_string(L, -1, indent + 2);
    size_t len = strlen(key) + strlen(val) + 3;
    lines[k] = malloc(len);
    snprintf(lines[k], len, "%s: %s", key, val);
    free(key);
    free(val);
    k++;
    lua_pop(L, 1);
  }
  qsort(lines, k, sizeof *lines, cmp_str);
  sb_str(b, "{\n");
  for (size_t i = 0; i < k; i++) {
    sb_indent(b, indent + 2);
    sb_str(b, lines[i]);
    sb_str(b, "\n");
    free(lines[i]);
  }
  free(lines);
  sb_indent(b, indent);
  sb_str(b, "}");
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  sbuf b = {0};
  char buf[4096];
  size_t n;
  sb_str(&b, "");
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_add(&b, buf, n);
  fclose(f);
  return b.p;
}

/* Call yaml.<fn>(args already pushed): leaves its results at the top. */
static int call_yaml(lua_State *L, const char *fn, int nargs, int nres) {
  lua_getglobal(L, "yaml");
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  lua_insert(L, -nargs - 1);
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    fprintf(stderr, "yaml.%s raised: %s\n", fn, lua_tostring(L, -1));
    failures++;
    lua_pop(L, 1);
    for (int i = 0; i < nres; i++) lua_pushnil(L);
    return 0;
  }
  return 1;
}

static void run_case(lua_State *L, const char *dir, const char *name) {
  char path[1024], expect_path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(expect_path, sizeof expect_path, "%s/%.*s.expect", dir, (int)(strlen(name) - 5), name);
  char *expect = slurp(expect_path);
  int top = lua_gettop(L);
  lua_pushstring(L, path);
  call_yaml(L, "load_file_all", 1, 2);
  if (!expect) {   /* fuzz regression input: any clean result will do */
    if (lua_isnil(L, -2) && !lua_isstring(L, -1)) {
      fprintf(stderr, "%s: failed without a message\n", name);
      failures++;
    }
    lua_settop(L, top);
    return;
  }
  size_t el = strlen(expect);
  while (el && (expect[el - 1] == '\n' || expect[el - 1] == ' ')) expect[--el] = 0;
  if (!strncmp(expect, "error: ", 7)) {
    const char *msg = lua_tostring(L, -1);
    if (!lua_isnil(L, -2) || !msg || !strstr(msg, expect + 7)) {
      fprintf(stderr, "%s: expected an error containing \"%s\", got %s\n", name, expect + 7,
              lua_isnil(L, -2) ? (msg ? msg : "(no message)") : "a value");
      failures++;
    } else if (strncmp(msg, path, strlen(path)) != 0 || msg[strlen(path)] != ':') {
      fprintf(stderr, "%s: error does not start with the file name: %s\n", name, msg);
      failures++;
    }
  } else {
    if (lua_isnil(L, -2)) {
      fprintf(stderr, "%s: expected a value, got the error: %s\n", name, lua_tostring(L, -1));
      failures++;
    } else {
      lua_pushnil(L);
      lua_setfield(L, -3, "n");   /* the count is not part of the dump */
      char *got = dump_to_string(L, -2, 0);
      if (strcmp(got, expect) != 0) {
        fprintf(stderr, "%s: decoded value differs\n--- expected\n%s\n--- got\n%s\n", name, expect, got);
        failures++;
      } else {
        /* encode each document and decode it again: the same dump */
        lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
        for (lua_Integer i = 1; i <= n; i++) {
          lua_rawgeti(L, -2, i);
          int doc = lua_gettop(L);
          /* complex (table) keys are the one thing encode refuses */
          lua_getglobal(L, "yaml");
          lua_getfield(L, -1, "encode");
          lua_remove(L, -2);
          lua_insert(L, -2);
          int est = lua_pcall(L, 1, 1, 0);
          const char *text = lua_tostring(L, -1);
          if (est != LUA_OK) {
            if (!text || !strstr(text, "a table key")) {
              fprintf(stderr, "%s: encode of document %d failed: %s\n", name, (int)i, text ? text : "?");
              failures++;
            }
            lua_settop(L, doc - 1);
            continue;
          }
          lua_pushvalue(L, -1);
          call_yaml(L, "decode", 1, 2);
          char *again = dump_to_string(L, -2, 0);
          lua_rawgeti(L, doc - 2, i);
          char *orig = dump_to_string(L, -1, 0);
          if (strcmp(again, orig) != 0) {
            fprintf(stderr, "%s: document %d changes through encode:\n%s\n--- decoded again\n%s\n--- error: %s\n",
                    name, (int)i, text, again, lua_isstring(L, -2) ? lua_tostring(L, -2) : "");
            failures++;
          }
          free(again);
          free(orig);
          lua_settop(L, doc - 1);
        }
      }
      free(got);
    }
  }
  free(expect);
  lua_settop(L, top);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_cases(lua_State *L, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) { fprintf(stderr, "cannot open %s\n", dir); return 0; }
  char *names[1024];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 1024) {
    size_t len = strlen(e->d_name);
    if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml")) names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_names);
  for (int i = 0; i < n; i++) {
    int before = failures;
    run_case(L, dir, names[i]);
    printf("%s %s\n", failures == before ? "ok    " : "FAILED", names[i]);
    free(names[i]);
  }
  return n;
}

/* Decode a string; expect an error containing `want` (or success if NULL). */
static void expect_decode(lua_State *L, const char *what, const char *text, size_t len, const char *want) {
  int before = failures;
  lua_pushlstring(L, text, len);
  call_yaml(L, "decode", 1, 2);
  const char *msg = lua_tostring(L, -1);
  if (want && (!lua_isnil(L, -2) || !msg || !strstr(msg, want))) {
    fprintf(stderr, "%s: expected an error containing \"%s\", got %s\n", what, want, msg ? msg : "a value");
    failures++;
  } else if (!want && lua_isnil(L, -2)) {
    fprintf(stderr, "%s: expected a value, got %s\n", what, msg ? msg : "nil");
    failures++;
  }
  printf("%s %s\n", failures > before ? "FAILED" : "ok    ", what);
  lua_pop(L, 2);
}

static void generated_cases(lua_State *L) {
  enum { DEEP = 10000 };
  char *s = malloc(5 * DEEP + 16);
  /* 10,000 nested flow sequences and block sequences: a limit error, no crash */
  memset(s, '[', DEEP);
  memset(s + DEEP, ']', DEEP);
  expect_decode(L, "generated: 10000 nested [", s, 2 * DEEP, "nesting deeper than 1000 levels");
  size_t n = 0;
  for (int i = 0; i < DEEP; i++) { s[n++] = '-'; s[n++] = ' '; }   /* - - - ... x */
  s[n++] = 'x';
  expect_decode(L, "generated: 10000 nested block sequences", s, n, "nesting deeper than");
  n = 0;
  for (int i = 0; i < DEEP; i++) { s[n++] = '{'; s[n++] = 'a'; s[n++] = ':'; s[n++] = ' '; }
  s[n++] = '1';
  for (int i = 0; i < DEEP; i++) s[n++] = '}';
  expect_decode(L, "generated: 10000 nested flow mappings", s, n, "nesting deeper than");
  /* 999 levels are fine */
  memset(s, '[', 999);
  memset(s + 999, ']', 999);
  expect_decode(L, "generated: 999 nested [", s, 1998, NULL);
  free(s);
  /* billion laughs: 10^9 nodes through aliases */
  sbuf b = {0};
  sb_str(&b, "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
  for (int i = 1; i <= 9; i++) {
    char line[256];
    char prev[8], cur[8];
    snprintf(prev, sizeof prev, i == 1 ? "a" : "l%d", i - 1);
    snprintf(cur, sizeof cur, "l%d", i);
    snprintf(line, sizeof line, "%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", cur, cur,
             prev, prev, prev, prev, prev, prev, prev, prev, prev, prev);
    sb_str(&b, line);
  }
  expect_decode(L, "generated: billion laughs", b.p, b.len, "aliases expand to more than");
  free(b.p);
}

/* positions: the side table the plan validator uses */
static void positions_case(lua_State *L) {
  int before = failures;
  static const char src[] =
    "name: demo\n"
    "server:\n"
    "  backend: sim\n"
    "  args: [--ctx, 8192]\n"
    "load:\n"
    "  - {concurrency: 4}\n"
    "  - concurrency: bad\n";
  const char *chunk =
    "local doc, pos = yaml.decode(..., 'plan.yaml', {positions = true})\n"
    "local function at(p) return p.line .. ':' .. p.col end\n"
    "local r = {}\n"
    "r[#r+1] = at(pos[doc])\n"
    "r[#r+1] = at(pos[doc].keys.server) .. ' ' .. at(pos[doc].values.server)\n"
    "r[#r+1] = at(pos[doc.server].values.backend)\n"
    "r[#r+1] = at(pos[doc.server.args].items[2])\n"
    "r[#r+1] = at(pos[doc.load].items[2])\n"
    "r[#r+1] = at(pos[doc.load[2]].values.concurrency)\n"
    "r[#r+1] = at(pos[doc.load[1]])\n"
    "return table.concat(r, ' ')\n";
  const char *want = "1:1 2:1 3:3 3:12 4:17 7:5 7:18 6:5";
  if (luaL_loadstring(L, chunk) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); failures++; return; }
  lua_pushstring(L, src);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || strcmp(lua_tostring(L, -1), want) != 0) {
    fprintf(stderr, "positions: expected \"%s\", got \"%s\"\n", want, lua_tostring(L, -1));
    failures++;
  }
  printf("%s positions\n", failures > before ? "FAILED" : "ok    ");
  lua_pop(L, 1);
}

int main(int argc, char **argv) {
  lua_State *L = br_runtime_new(argv[0]);
  if (!L) return 1;
  if (argc > 2 && !strcmp(argv[1], "--dump")) {
    /* test_yaml --dump FILE: print the canonical dump (to review a new case) */
    lua_pushstring(L, argv[2]);
    call_yaml(L, "load_file_all", 1, 2);
    if (lua_isnil(L, -2)) { printf("error: %s\n", lua_tostring(L, -1)); br_runtime_close(L); return 0; }
    lua_pushnil(L);
    lua_setfield(L, -3, "n");
    char *got = dump_to_string(L, -2, 0);
    printf("%s\n", got);
    free(got);
    br_runtime_close(L);
    return 0;
  }
  const char *dir = argc > 1 ? argv[1] : TESTS_DIR "/yaml-cases";
  int n = run_cases(L, dir);
  if (n < 10) { fprintf(stderr, "only %d cases found in %s\n", n, dir); failures++; }
  generated_cases(L);
  positions_case(L);
  br_runtime_close(L);
  if (failures) { fprintf(stderr, "test_yaml: %d failure(s)\n", failures); return 1; }
  printf("test_yaml: %d cases ok\n", n);
  return 0;
}
