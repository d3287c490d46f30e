/* bench.yaml: YAML (libyaml events) <-> Lua values.
 *
 * Decoding builds Lua tables straight from libyaml's event stream, with an
 * explicit frame stack (no C recursion, so nesting depth is bounded by a
 * limit we choose, not by the C stack). Scalars are typed by the YAML 1.2
 * core schema; quoted scalars stay strings. Aliases share the anchored Lua
 * value; the nodes they would expand to are counted so "billion laughs"
 * documents end in an error instead of a walker's exponential blow-up.
 *
 * Source positions (opts.positions = true) go into a side table keyed by the
 * decoded tables, so documents stay plain data:
 *   pos[tbl] = {line =, col =,                     -- where tbl starts
 *               keys   = {[k] = {line =, col =}},  -- mapping: each key
 *               values = {[k] = {line =, col =}},  -- mapping: each value
 *               items  = {[i] = {line =, col =}}}  -- sequence: each item
 * Lines and columns are 1-based (columns count characters). An aliased table
 * has the position of its anchor. See docs/engine.md.
 *
 * null decodes to yaml.null, a light userdata NULL equal to cjson.null, so a
 * null survives in sequences and round-trips through json.encode.
 *
 * Encoding (yaml.encode) is in yaml_encode.c.
 * long file: over ~700 lines on purpose: it is one parser, a state machine over libyaml's events
 * (frames, anchors, merges, positions) whose parts share the decoder's
 * state; cut in pieces it would be harder to follow, not easier. */
#include "benchrun/runtime.h"
#include "class.h"
#include "yaml_scalar.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define DEFAULT_MAX_DEPTH 1000
#define DEFAULT_MAX_ALIAS_NODES 1000000
#define TAG_PREFIX "tag:yaml.org,2002:"

/* ------------------------------------------------------------------ */
/* decoding                                                            */
/* ------------------------------------------------------------------ */

/* Everything libyaml allocates lives in this userdata, so a Lua error
 * (out of memory, a limit) in the middle of decoding leaks nothing. */
typedef struct {
  yaml_parser_t parser;
  yaml_event_t event;
  int parser_ok, event_ok;
  char *file_buf;        /* load_file's contents */
  size_t file_len;
} ybox;

static void ybox_close(ybox *b) {
  if (b->event_ok) { yaml_event_delete(&b->event); b->event_ok = 0; }
  if (b->parser_ok) { yaml_parser_delete(&b->parser); b->parser_ok = 0; }
  free(b->file_buf);
  b->file_buf = NULL;
}

static int ybox_gc(lua_State *L) {
  ybox_close(lua_touserdata(L, 1));
  return 0;
}

/* Stack slots of one open collection, contiguous from `base`. */
enum { S_TABLE, S_POS, S_SUB1, S_SUB2, S_MERGE, S_KEY, S_SLOTS };

typedef struct {
  int base;             /* Lua stack index of S_TABLE */
  int is_map;
  lua_Integer n;        /* sequence: items so far */
  int have_key;         /* mapping: S_KEY holds a key waiting for its value */
  int key_is_merge;     /* that key is the merge key "<<" */
  int key_line, key_col;
  const char *anchor;   /* anchor name (copied into the anchors table) or NULL */
  int anchor_ref;       /* index in the anchors table of the pending anchor name */
  uint64_t size;        /* nodes this collection expands to */
} frame;

/* The frame array is owned by a userdata so that an error raised in the
 * middle of decoding cannot leak it. */
typedef struct { frame *frames; } frame_store;

typedef struct {
  lua_State *L;
  ybox *box;
  const char *name;
  const char *input;    /* the whole input, for byte offsets in reader errors */
  size_t input_len;
  int positions;        /* build the side table */
  int pos_idx;          /* its stack index */
  int anchors_idx;      /* anchors[name] = value (false while still open) */
  int sizes_idx;        /* sizes[name] = expanded node count */
  int max_depth;
  uint64_t max_alias_nodes, alias_nodes;
  frame *frames;
  frame_store *store;
  int nframes, capframes;
  /* the value being attached */
  uint64_t value_size;
  int value_line, value_col;
} decoder;

static int sat_add(uint64_t a, uint64_t b, uint64_t *out) {
  *out = a + b;
  if (*out < a) *out = UINT64_MAX;
  return 0;
}

static int frames_free(lua_State *L) {
  frame_store *fs = lua_touserdata(L, 1);
  free(fs->frames);
  fs->frames = NULL;
  return 0;
}

/* Raise "name:line:col: msg" with no Lua position prefix. */
static int derror(decoder *d, yaml_mark_t m, const char *fmt, ...) {
  lua_State *L = d->L;
  va_list ap;
  lua_pushfstring(L, "%s:%d:%d: ", d->name, (int)m.line + 1, (int)m.column + 1);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* libyaml's own errors: reader (encoding), scanner and parser. */
static int parser_error(decoder *d) {
  lua_State *L = d->L;
  yaml_parser_t *p = &d->box->parser;
  if (p->error == YAML_MEMORY_ERROR) return luaL_error(L, "%s: out of memory", d->name);
  if (p->error == YAML_READER_ERROR) {
    /* Only a byte offset is known: count lines up to it. */
    size_t off = p->problem_offset, line = 1, col = 1;
    for (size_t i = 0; i < off && i < d->input_len; i++) {
      if (d->input[i] == '\n') { line++; col = 1; }
      else if (((unsigned char)d->input[i] & 0xC0) != 0x80) col++;
    }
    char what[32] = "";
    if (p->problem_value != -1)
      snprintf(what, sizeof what, " (byte 0x%02X)", (unsigned)p->problem_value & 0xFFu);
    lua_pushfstring(L, "%s:%d:%d: %s%s at byte offset %d (expected UTF-8 text)", d->name,
                    (int)line, (int)col, p->problem, what, (int)off);
    return lua_error(L);
  }
  const char *problem = p->problem ? p->problem : "invalid YAML";
  yaml_mark_t m = p->problem_mark;
  if (p->context)
    lua_pushfstring(L, "%s:%d:%d: %s %s (which started at %d:%d)", d->name, (int)m.line + 1,
                    (int)m.column + 1, problem, p->context, (int)p->context_mark.line + 1,
                    (int)p->context_mark.column + 1);
  else
    lua_pushfstring(L, "%s:%d:%d: %s", d->name, (int)m.line + 1, (int)m.column + 1, problem);
  return lua_error(L);
}

static void next_event(decoder *d) {
  ybox *b = d->box;
  if (b->event_ok) { yaml_event_delete(&b->event); b->event_ok = 0; }
  if (!yaml_parser_parse(&b->parser, &b->event)) parser_error(d);
  b->event_ok = 1;
}

static void push_mark(lua_State *L, int line, int col) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, line);
  lua_setfield(L, -2, "line");
  lua_pushinteger(L, col);
  lua_setfield(L, -2, "col");
}

/* ---- scalars: YAML 1.2 core schema ---- */

static int all_digits(const char *s, size_t n, int base) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    int ok = base == 8 ? (c >= '0' && c <= '7')
           : base == 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
           : (c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static int is_core_int(const char *s, size_t n) {
  if (n && (s[0] == '-' || s[0] == '+')) { s++; n--; }
  return all_digits(s, n, 10);
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_core_float(const char *s, size_t n) {
  size_t i = 0, d1 = 0, d2 = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  while (i < n && s[i] >= '0' && s[i] <= '9') { i++; d1++; }
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; d2++; }
    if (d1 == 0 && d2 == 0) return 0;
  } else if (d1 == 0) {
    return 0;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    size_t d3 = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; d3++; }
    if (!d3) return 0;
  }
  return i == n;
}

int yaml_is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(s, *words, n) == 0) return 1;
  return 0;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

/* 0x / 0o integers: an integer if it fits int64, else a float. */
static void push_radix(lua_State *L, const char *s, size_t n, int base) {
  uint64_t v = 0;
  double f = 0;
  int overflow = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (v > (UINT64_MAX - (uint64_t)digit) / (uint64_t)base) overflow = 1;
    v = v * (uint64_t)base + (uint64_t)digit;
    f = f * base + digit;
  }
  if (!overflow && v <= (uint64_t)INT64_MAX) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, (lua_Number)f);
}

/* Push the typed value of a plain scalar. Returns 1, or 0 if it is a string
 * (nothing pushed). want: K_ANY, else the tag's kind (yaml_scalar.h). */
int yaml_resolve(lua_State *L, const char *s, size_t n, int want) {
  if ((want == K_ANY || want == K_NULL) && (n == 0 || yaml_is_one_of(s, n, null_words))) {
    lua_pushlightuserdata(L, NULL);
    return 1;
  }
  if (want == K_ANY || want == K_BOOL) {
    if (yaml_is_one_of(s, n, true_words)) { lua_pushboolean(L, 1); return 1; }
    if (yaml_is_one_of(s, n, false_words)) { lua_pushboolean(L, 0); return 1; }
  }
  if (want == K_ANY || want == K_INT) {
    if (n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16)) { push_radix(L, s + 2, n - 2, 16); return 1; }
    if (n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8)) { push_radix(L, s + 2, n - 2, 8); return 1; }
    if (is_core_int(s, n) && lua_stringtonumber(L, s)) return 1;
  }
  if (want == K_ANY || want == K_FLOAT) {
    const char *t = s;
    size_t m = n;
    int neg = 0;
    if (m && (t[0] == '-' || t[0] == '+')) { neg = t[0] == '-'; t++; m--; }
    if (yaml_is_one_of(t, m, inf_words)) { lua_pushnumber(L, neg ? -HUGE_VAL : HUGE_VAL); return 1; }
    if (t == s && yaml_is_one_of(s, n, nan_words)) { lua_pushnumber(L, NAN); return 1; }
    if (is_core_float(s, n) && lua_stringtonumber(L, s)) {
      if (lua_isinteger(L, -1)) {   /* "1.0e0" style forms stay floats */
        lua_Number f = (lua_Number)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushnumber(L, f);
      }
      return 1;
    }
  }
  return 0;
}

/* Resolve an explicit or implicit tag of a node; returns the kind for
 * scalars (or -1 for "string"), and raises on a tag we do not support. */
static int scalar_kind(decoder *d, const char *tag, int plain) {
  if (!tag) return plain ? K_ANY : -1;
  if (!strcmp(tag, "!")) return -1;
  if (!strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1)) {
    const char *t = tag + sizeof TAG_PREFIX - 1;
    if (!strcmp(t, "str")) return -1;
    if (!strcmp(t, "null")) return K_NULL;
    if (!strcmp(t, "bool")) return K_BOOL;
    if (!strcmp(t, "int")) return K_INT;
    if (!strcmp(t, "float")) return K_FLOAT;
  }
  return derror(d, d->box->event.start_mark,
                "unsupported tag '%s' (expected !!str, !!int, !!float, !!bool or !!null)", tag);
}

static void check_collection_tag(decoder *d, const char *tag, int is_map) {
  if (!tag || !strcmp(tag, "!")) return;
  if (!strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq")) return;
  derror(d, d->box->event.start_mark, "unsupported tag '%s' on a %s (expected %s)", tag,
         is_map ? "mapping" : "sequence", is_map ? "!!map" : "!!seq");
}

/* ---- building ---- */

static frame *top_frame(decoder *d) { return d->nframes ? &d->frames[d->nframes - 1] : NULL; }

static void describe_key(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushfstring(L, "'%s'", lua_tostring(L, idx));
  } else if (lua_type(L, idx) == LUA_TNUMBER || lua_type(L, idx) == LUA_TBOOLEAN) {
    luaL_tolstring(L, idx, NULL);
  } else lua_pushfstring(L, "(a %s)", lua_type(L, idx) == LUA_TLIGHTUSERDATA ? "null" : luaL_typename(L, idx));
}

/* Record the anchor of the value at the top of the stack. */
static void define_anchor(decoder *d, const char *anchor, uint64_t size) {
  lua_State *L = d->L;
  if (!anchor) return;
  lua_pushvalue(L, -1);
  lua_setfield(L, d->anchors_idx, anchor);
  lua_pushinteger(L, (lua_Integer)(size > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : size));
  lua_setfield(L, d->sizes_idx, anchor);
}

/* Attach the value at the top of the stack (d->value_size nodes, at
 * value_line:value_col) to the open collection, or leave it as the
 * document's root when none is open. Pops it unless it is the root. */
static void attach(decoder *d, yaml_mark_t mark) {
  lua_State *L = d->L;
  frame *f = top_frame(d);
  if (!f) return;
  sat_add(f->size, d->value_size, &f->size);
  int t = f->base + S_TABLE;
  if (!f->is_map) {
    lua_rawseti(L, t, ++f->n);
    if (d->positions) {
      push_mark(L, d->value_line, d->value_col);
      lua_rawseti(L, f->base + S_SUB1, f->n);
    }
    return;
  }
  if (!f->have_key) {
    /* the value is a key: check it and keep it until its value comes */
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
      derror(d, mark, "a mapping key cannot be .nan");
    lua_replace(L, f->base + S_KEY);
    f->have_key = 1;
    f->key_line = d->value_line;
    f->key_col = d->value_col;
    return;
  }
  f->have_key = 0;
  if (f->key_is_merge) {
    /* <<: *defaults or <<: [*a, *b] — applied when the mapping ends */
    f->key_is_merge = 0;
    if (lua_isnil(L, f->base + S_MERGE)) {
      lua_newtable(L);
      lua_replace(L, f->base + S_MERGE);
    }
    int kind = lua_type(L, -1);
    int ok = kind == LUA_TTABLE;
    if (ok && lua_rawlen(L, -1) > 0) {   /* a list of mappings */
      lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
      for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TTABLE) derror(d, mark, "a merge (<<) list must hold mappings");
        lua_rawseti(L, f->base + S_MERGE, (lua_Integer)lua_rawlen(L, f->base + S_MERGE) + 1);
      }
      lua_pop(L, 1);
    } else if (ok) {
      lua_rawseti(L, f->base + S_MERGE, (lua_Integer)lua_rawlen(L, f->base + S_MERGE) + 1);
    } else {
      derror(d, mark, "expected a mapping or a list of mappings after the merge key <<");
    }
    return;
  }
  lua_pushvalue(L, f->base + S_KEY);
  if (lua_rawget(L, t) != LUA_TNIL) {
    lua_pop(L, 1);
    describe_key(L, f->base + S_KEY);
    yaml_mark_t km = {0, (size_t)f->key_line - 1, (size_t)f->key_col - 1};
    derror(d, km, "duplicate key %s in a mapping (expected unique keys)", lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  lua_pushvalue(L, f->base + S_KEY);
  lua_insert(L, -2);
  lua_rawset(L, t);
  if (d->positions) {
    lua_pushvalue(L, f->base + S_KEY);
    push_mark(L, f->key_line, f->key_col);
    lua_rawset(L, f->base + S_SUB1);
    lua_pushvalue(L, f->base + S_KEY);
    push_mark(L, d->value_line, d->value_col);
    lua_rawset(L, f->base + S_SUB2);
  }
}

static void open_collection(decoder *d, int is_map, const char *anchor, yaml_mark_t mark) {
  lua_State *L = d->L;
  if (d->nframes >= d->max_depth)
    derror(d, mark, "nesting deeper than %d levels (expected at most %d; see opts.max_depth)",
           d->max_depth, d->max_depth);
  luaL_checkstack(L, S_SLOTS + 8, "YAML nesting too deep");
  if (d->nframes == d->capframes) {
    int cap = d->capframes ? d->capframes * 2 : 16;
    frame *nf = realloc(d->frames, (size_t)cap * sizeof *nf);
    if (!nf) luaL_error(L, "%s: out of memory", d->name);
    d->frames = d->store->frames = nf;
    d->capframes = cap;
  }
  frame *f = &d->frames[d->nframes++];
  memset(f, 0, sizeof *f);
  f->is_map = is_map;
  f->size = 1;
  f->base = lua_gettop(L) + 1;
  lua_newtable(L);                             /* S_TABLE */
  if (d->positions) {
    lua_createtable(L, 0, 4);                  /* S_POS */
    lua_pushinteger(L, (lua_Integer)mark.line + 1);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (lua_Integer)mark.column + 1);
    lua_setfield(L, -2, "col");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, is_map ? "keys" : "items");   /* S_SUB1 */
    if (is_map) {
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -4, "values");           /* S_SUB2 */
    } else {
      lua_pushnil(L);
    }
    lua_pushvalue(L, f->base + S_TABLE);
    lua_pushvalue(L, f->base + S_POS);
    lua_rawset(L, d->pos_idx);
  } else {
    lua_pushnil(L); lua_pushnil(L); lua_pushnil(L);
  }
  lua_pushnil(L);                              /* S_MERGE */
  lua_pushnil(L);                              /* S_KEY */
  if (anchor) {
    /* While open, an alias to it is recursive. */
    lua_pushboolean(L, 0);
    lua_setfield(L, d->anchors_idx, anchor);
    lua_pushstring(L, anchor);                 /* keep the name alive past the event */
    f->anchor_ref = lua_gettop(L);
    f->anchor = lua_tostring(L, -1);
  }
}

/* Apply merge keys: keys of the sources not already present, earlier
 * sources first (as YAML's merge key type says). */
static void apply_merges(decoder *d, frame *f) {
  lua_State *L = d->L;
  if (lua_isnil(L, f->base + S_MERGE)) return;
  lua_Integer n = (lua_Integer)lua_rawlen(L, f->base + S_MERGE);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, f->base + S_MERGE, i);
    int src = lua_gettop(L);
    int srcpos = 0;
    if (d->positions) {
      lua_pushvalue(L, src);
      lua_rawget(L, d->pos_idx);
      srcpos = lua_gettop(L);
    }
    lua_pushnil(L);
    while (lua_next(L, src)) {
      lua_pushvalue(L, -2);
      if (lua_rawget(L, f->base + S_TABLE) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, f->base + S_TABLE);
        if (srcpos && lua_istable(L, srcpos)) {
          static const char *const subs[] = {"keys", "values"};
          for (int s = 0; s < 2; s++) {
            lua_getfield(L, srcpos, subs[s]);
            if (lua_istable(L, -1)) {
              lua_pushvalue(L, -3);
              lua_rawget(L, -2);
              lua_pushvalue(L, -4);
              lua_insert(L, -2);
              lua_rawset(L, f->base + (s == 0 ? S_SUB1 : S_SUB2));
            }
            lua_pop(L, 1);
          }
        }
      } else {
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
    lua_settop(L, src - 1);
  }
}

/* Close the innermost collection and leave its table at the top. */
static void close_collection(decoder *d, yaml_mark_t mark) {
  lua_State *L = d->L;
  frame *f = top_frame(d);
  if (f->is_map) apply_merges(d, f);
  lua_pushvalue(L, f->base + S_TABLE);
  uint64_t size = f->size;
  const char *anchor = f->anchor;
  define_anchor(d, anchor, size);
  lua_replace(L, f->base);
  lua_settop(L, f->base);
  d->nframes--;
  d->value_size = size;
}

/* Decode one document's root node; the event at hand is its first event.
 * Leaves the root value at the top of the stack. */
/* long function: the decoder's state machine over libyaml's events. */
static void decode_node(decoder *d) {
  lua_State *L = d->L;
  int root = lua_gettop(L) + 1;
  /* positions of open collections, for attach() after they close */
  int depth0 = d->nframes;
  for (;;) {
    yaml_event_t *e = &d->box->event;
    yaml_mark_t m = e->start_mark;
    int line = (int)m.line + 1, col = (int)m.column + 1;
    switch (e->type) {
    case YAML_SCALAR_EVENT: {
      const char *v = (const char *)e->data.scalar.value;
      size_t n = e->data.scalar.length;
      int plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
      int kind = scalar_kind(d, (const char *)e->data.scalar.tag, plain && e->data.scalar.plain_implicit);
      frame *f = top_frame(d);
      int as_merge = f && f->is_map && !f->have_key && plain && !e->data.scalar.tag && n == 2 && !memcmp(v, "<<", 2);
      luaL_checkstack(L, 4, "YAML");
      if (kind < 0 || !yaml_resolve(L, v, n, kind)) {
        if (kind > 0) {
          static const char *const kinds[] = {"", "null", "boolean", "integer", "float"};
          derror(d, m, "'%s' is not a valid %s (it is tagged so)", v, kinds[kind]);
        }
        lua_pushlstring(L, v, n);
      }
      d->value_size = 1;
      d->value_line = line;
      d->value_col = col;
      define_anchor(d, (const char *)e->data.scalar.anchor, 1);
      attach(d, m);
      if (as_merge) top_frame(d)->key_is_merge = 1;
      break;
    }
    case YAML_ALIAS_EVENT: {
      const char *a = (const char *)e->data.alias.anchor;
      int t = lua_getfield(L, d->anchors_idx, a);
      if (t == LUA_TNIL) derror(d, m, "unknown alias *%s (expected an anchor &%s defined before it)", a, a);
      if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
        derror(d, m, "recursive alias *%s inside its own anchor (expected a finite document)", a);
      lua_getfield(L, d->sizes_idx, a);
      uint64_t size = (uint64_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
      sat_add(d->alias_nodes, size, &d->alias_nodes);
      if (d->alias_nodes > d->max_alias_nodes)
        derror(d, m, "aliases expand to more than %d nodes (expected at most %d; see opts.max_alias_nodes)",
               (int)d->max_alias_nodes, (int)d->max_alias_nodes);
      d->value_size = size;
      d->value_line = line;
      d->value_col = col;
      attach(d, m);
      break;
    }
    case YAML_SEQUENCE_START_EVENT:
      check_collection_tag(d, (const char *)e->data.sequence_start.tag, 0);
      open_collection(d, 0, (const char *)e->data.sequence_start.anchor, m);
      break;
    case YAML_MAPPING_START_EVENT:
      check_collection_tag(d, (const char *)e->data.mapping_start.tag, 1);
      open_collection(d, 1, (const char *)e->data.mapping_start.anchor, m);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
      frame *f = top_frame(d);
      int sline = 0, scol = 0;
      /* the collection's own start position, for its entry in the parent */
      if (d->positions) {
        lua_getfield(L, f->base + S_POS, "line");
        lua_getfield(L, f->base + S_POS, "col");
        sline = (int)lua_tointeger(L, -2);
        scol = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
      }
      close_collection(d, m);
      d->value_line = sline;
      d->value_col = scol;
      attach(d, m);
      break;
    }
    default:
      derror(d, m, "unexpected YAML event %d", (int)e->type);
    }
    if (d->nframes == depth0 && lua_gettop(L) >= root) return;
    next_event(d);
  }
}

/* The decoding options at stack index idx (a table or nil). */
static void read_opts(lua_State *L, int idx, decoder *d) {
  d->max_depth = DEFAULT_MAX_DEPTH;
  d->max_alias_nodes = DEFAULT_MAX_ALIAS_NODES;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "positions");
  d->positions = lua_toboolean(L, -1);
  lua_getfield(L, idx, "max_depth");
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    luaL_argcheck(L, v >= 1 && v <= 100000, idx, "max_depth must be 1..100000");
    d->max_depth = (int)v;
  }
  lua_getfield(L, idx, "max_alias_nodes");
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    luaL_argcheck(L, v >= 0 && v <= INT32_MAX, idx, "max_alias_nodes must be 0..2^31-1");
    d->max_alias_nodes = (uint64_t)v;
  }
  lua_pop(L, 3);
}

/* Protected body: upvalue-free; arguments: box, decoder pointer (light),
 * all (boolean). Returns docs (or one doc), pos. */
static int decode_body(lua_State *L) {
  decoder *d = lua_touserdata(L, 1);
  int all = lua_toboolean(L, 2);
  d->L = L;
  lua_settop(L, 2);
  /* frames are freed by this guard even if we raise */
  d->store = lua_newuserdatauv(L, sizeof *d->store, 0);
  d->store->frames = NULL;
  br_class(L, "bench.yaml.Frames", (const luaL_Reg[]){{"__gc", frames_free}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  if (d->positions) {
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  } else {
    lua_pushnil(L);
  }
  d->pos_idx = lua_gettop(L);
  lua_newtable(L);   /* documents */
  int docs = lua_gettop(L);
  lua_Integer ndocs = 0;
  for (;;) {
    next_event(d);
    yaml_event_type_t t = d->box->event.type;
    if (t == YAML_STREAM_START_EVENT) continue;
    if (t == YAML_STREAM_END_EVENT) break;
    if (t != YAML_DOCUMENT_START_EVENT) derror(d, d->box->event.start_mark, "expected a document");
    if (!all && ndocs == 1)
      derror(d, d->box->event.start_mark,
             "a second document in the stream (expected one; use yaml.decode_all or yaml.load_file_all)");
    lua_settop(L, docs);
    lua_newtable(L);
    d->anchors_idx = lua_gettop(L);
    lua_newtable(L);
    d->sizes_idx = lua_gettop(L);
    d->alias_nodes = 0;
    next_event(d);
    decode_node(d);
    lua_rawseti(L, docs, ++ndocs);
    next_event(d);
    if (d->box->event.type != YAML_DOCUMENT_END_EVENT)
      derror(d, d->box->event.start_mark, "expected the end of the document");
  }
  lua_settop(L, docs);
  if (all) {
    lua_pushinteger(L, ndocs);
    lua_setfield(L, docs, "n");
  } else if (ndocs == 0) {
    lua_pushlightuserdata(L, NULL);   /* an empty stream is a null document */
  } else {
    lua_rawgeti(L, docs, 1);
  }
  lua_pushvalue(L, d->pos_idx);
  return 2;
}

/* Shared by every decode entry point: input is in box->parser already.
 * Returns the Lua results (value[, pos] or nil, message). */
static int run_decode(lua_State *L, ybox *box, decoder *d, int all) {
  d->box = box;
  lua_pushcfunction(L, decode_body);
  lua_pushlightuserdata(L, d);
  lua_pushboolean(L, all);
  int st = lua_pcall(L, 2, 2, 0);
  ybox_close(box);
  if (st != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (d->positions) return 2;
  lua_pop(L, 1);
  return 1;
}

static ybox *new_box(lua_State *L, const char *name) {
  ybox *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  br_class(L, "bench.yaml.Parser", (const luaL_Reg[]){{"__gc", ybox_gc}, {NULL, NULL}}, NULL);
  lua_setmetatable(L, -2);
  /* every error of a decode names its input: callers add no prefix */
  if (!yaml_parser_initialize(&b->parser)) luaL_error(L, "%s: cannot create a YAML parser (out of memory)", name);
  b->parser_ok = 1;
  return b;
}

/* yaml.decode(text [, name] [, opts]) -> value[, pos] | nil, message */
static int decode_string(lua_State *L, int all) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int opts = 2;
  const char *name = "(string)";
  if (lua_type(L, 2) == LUA_TSTRING) { name = lua_tostring(L, 2); opts = 3; }
  else if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2)) luaL_argerror(L, 2, "expected a name or an options table");
  decoder d;
  memset(&d, 0, sizeof d);
  read_opts(L, opts, &d);
  d.name = name;
  d.input = s;
  d.input_len = len;
  lua_settop(L, 3);
  ybox *box = new_box(L, name);
  yaml_parser_set_input_string(&box->parser, (const unsigned char *)s, len);
  return run_decode(L, box, &d, all);
}

static int l_decode(lua_State *L) { return decode_string(L, 0); }
static int l_decode_all(lua_State *L) { return decode_string(L, 1); }

/* yaml.load_file(path [, opts]) -> value[, pos] | nil, message */
static int load_file(lua_State *L, int all) {
  const char *path = luaL_checkstring(L, 1);
  decoder d;
  memset(&d, 0, sizeof d);
  read_opts(L, 2, &d);
  d.name = path;
  lua_settop(L, 2);
  ybox *box = new_box(L, path);
  FILE *f = fopen(path, "rb");
  if (!f) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  /* Read it whole: reader errors give a byte offset we turn into line:col. */
  size_t cap = 1 << 16, len = 0;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) cap = (size_t)st.st_size + 1;
  box->file_buf = malloc(cap);
  errno = 0;
  while (box->file_buf) {
    size_t r = fread(box->file_buf + len, 1, cap - len, f);
    len += r;
    if (len < cap) break;
    char *nb = realloc(box->file_buf, cap * 2);
    if (!nb) { free(box->file_buf); box->file_buf = NULL; break; }
    box->file_buf = nb;
    cap *= 2;
  }
  int err = ferror(f) ? (errno ? errno : EIO) : 0;
  fclose(f);
  if (!box->file_buf || err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, box->file_buf ? strerror(err) : "out of memory");
    ybox_close(box);
    return 2;
  }
  box->file_len = len;
  d.input = box->file_buf;
  d.input_len = len;
  yaml_parser_set_input_string(&box->parser, (const unsigned char *)box->file_buf, len);
  return run_decode(L, box, &d, all);
}

static int l_load_file(lua_State *L) { return load_file(L, 0); }
static int l_load_file_all(lua_State *L) { return load_file(L, 1); }

int luaopen_bench_yaml(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"decode", l_decode}, {"decode_all", l_decode_all}, {"load_file", l_load_file},
    {"load_file_all", l_load_file_all}, {"encode", yaml_encode}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  return 1;
}
