/* bench.db: a small SQLite binding (libsqlite3), enough for the run history.
 *
 *   local db = require("bench.db")
 *   local h, msg, kind = db.open(path [, {readonly = bool, busy_timeout = ms, wal = bool}])
 *   h:exec(sql)                    -> true | nil, msg, kind    (several statements)
 *   h:rows(sql, ...)               -> {row, ...} | nil, msg, kind (rows as {column = value})
 *   h:run(sql, ...)                -> changes, last_insert_rowid | nil, msg, kind
 *   h:prepare(sql)                 -> stmt | nil, msg, kind
 *     stmt:bind(...) / stmt:step() -> row | false (done) | nil, msg, kind
 *     stmt:reset() / stmt:finalize()
 *   h:close()                      (also __close and __gc)
 *
 * Parameters: positional `?` from the arguments, or one table whose integer
 * keys are positions and whose string keys name `:name`, `@name`, `$name`.
 * nil -> NULL, boolean -> 0/1, integer, float, string (text).
 *
 * Errors are values, never raised (a bad argument type still raises): nil,
 * SQLite's message, and a kind: "busy", "corrupt" (SQLITE_CORRUPT and
 * SQLITE_NOTADB), "readonly", "cantopen", "full", "constraint", "io",
 * "misuse" or "error". bench.errors' typed values may replace the triple. */
#include "class.h"
#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>
#include <string.h>

#include "benchrun/runtime.h"

#define DB_MT "bench.db.Database"
#define STMT_MT "bench.db.Statement"

typedef struct { sqlite3 *db; } Db;
typedef struct { sqlite3_stmt *st; int db_ref; Db *owner; } Stmt;

static const char *kind_of(int rc) {
  switch (rc & 0xff) {
  case SQLITE_BUSY: case SQLITE_LOCKED: return "busy";
  case SQLITE_CORRUPT: case SQLITE_NOTADB: return "corrupt";
  case SQLITE_READONLY: return "readonly";
  case SQLITE_CANTOPEN: return "cantopen";
  case SQLITE_FULL: return "full";
  case SQLITE_CONSTRAINT: return "constraint";
  case SQLITE_IOERR: return "io";
  case SQLITE_MISUSE: return "misuse";
  default: return "error";
  }
}

/* nil, message, kind; the message is the connection's when there is one */
static int fail(lua_State *L, sqlite3 *db, int rc) {
  luaL_pushfail(L);
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  lua_pushstring(L, msg ? msg : sqlite3_errstr(rc));
  lua_pushstring(L, kind_of(rc));
  return 3;
}

static Db *check_db(lua_State *L) {
  Db *d = luaL_checkudata(L, 1, DB_MT);
  if (!d->db) luaL_error(L, "bench.db: the database is closed");
  return d;
}

static int bind_value(lua_State *L, sqlite3_stmt *st, int pos, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return sqlite3_bind_null(st, pos);
  case LUA_TBOOLEAN: return sqlite3_bind_int(st, pos, lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return sqlite3_bind_int64(st, pos, (sqlite3_int64)lua_tointeger(L, idx));
    return sqlite3_bind_double(st, pos, lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return sqlite3_bind_text64(st, pos, s, n, SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  default:
    return luaL_error(L, "bench.db: cannot bind a %s (parameter %d)", luaL_typename(L, idx), pos);
  }
}

/* Raise for a value no parameter can take before anything is prepared, so a
 * bad argument never leaves a statement behind. */
static void check_bindable(lua_State *L, int first) {
  for (int i = first; i <= lua_gettop(L); i++) {
    int t = lua_type(L, i);
    if (t == LUA_TTABLE && i == first && lua_gettop(L) == first) {
      lua_pushnil(L);
      while (lua_next(L, i)) {
        int vt = lua_type(L, -1);
        if (vt != LUA_TBOOLEAN && vt != LUA_TNUMBER && vt != LUA_TSTRING)
          luaL_error(L, "bench.db: cannot bind a %s (parameter %s)", luaL_typename(L, -1),
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
        lua_pop(L, 1);
      }
    } else if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING) {
      luaL_error(L, "bench.db: cannot bind a %s (parameter %d)", luaL_typename(L, i), i - first + 1);
    }
  }
}

/* Bind the arguments from index `first` on; one table binds by position and
 * name. -> an SQLite code, or TOO_MANY (nothing bound: the caller raises,
 * after finalizing a statement it owns). */
#define TOO_MANY (-1)
static int bind_args(lua_State *L, sqlite3_stmt *st, int first) {
  int top = lua_gettop(L);
  int rc = SQLITE_OK;
  sqlite3_clear_bindings(st);
  if (top == first && lua_type(L, first) == LUA_TTABLE) {
    int n = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= n && rc == SQLITE_OK; i++) {
      const char *name = sqlite3_bind_parameter_name(st, i);
      if (name && name[0] != '?') lua_getfield(L, first, name + 1);  /* skip the : @ $ */
      else lua_geti(L, first, i);
      rc = bind_value(L, st, i, -1);
      lua_pop(L, 1);
    }
    return rc;
  }
  int n = top - first + 1;
  if (n > sqlite3_bind_parameter_count(st)) return TOO_MANY;
  for (int i = 0; i < n && rc == SQLITE_OK; i++) rc = bind_value(L, st, i + 1, first + i);
  return rc;
}

static void push_row(lua_State *L, sqlite3_stmt *st) {
  int n = sqlite3_column_count(st);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, i)); break;
    case SQLITE_NULL: continue;   /* an absent field */
    default:
      lua_pushlstring(L, (const char *)sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
    }
    lua_setfield(L, -2, sqlite3_column_name(st, i));
  }
}

/* db.open(path [, opts]) */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int readonly = 0, wal = 1, timeout = 5000;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "readonly"); readonly = lua_toboolean(L, -1); lua_pop(L, 1);
    lua_getfield(L, 2, "wal"); if (!lua_isnil(L, -1)) wal = lua_toboolean(L, -1); lua_pop(L, 1);
    lua_getfield(L, 2, "busy_timeout");
    if (!lua_isnil(L, -1)) timeout = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  Db *d = lua_newuserdatauv(L, sizeof *d, 0);
  d->db = NULL;
  luaL_setmetatable(L, DB_MT);
  int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int n = fail(L, d->db, rc);
    sqlite3_close(d->db);
    d->db = NULL;
    return n;
  }
  sqlite3_extended_result_codes(d->db, 1);
  sqlite3_busy_timeout(d->db, timeout);
  /* Reading the schema is where a file that is not a database shows. WAL
   * lets readers and one writer work at once; it is a property of the file,
   * so a read-only open leaves the mode as it is. */
  const char *first = (wal && !readonly) ? "PRAGMA journal_mode=WAL" : "PRAGMA schema_version";
  rc = sqlite3_exec(d->db, first, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    int n = fail(L, d->db, rc);
    sqlite3_close(d->db);
    d->db = NULL;
    return n;
  }
  return 1;
}

static int l_exec(lua_State *L) {
  Db *d = check_db(L);
  const char *sql = luaL_checkstring(L, 2);
  int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) return fail(L, d->db, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* Prepare sql (argument 2), bind from argument 3 on. */
static int prepare_bound(lua_State *L, Db *d, sqlite3_stmt **st) {
  size_t n;
  const char *sql = luaL_checklstring(L, 2, &n);
  check_bindable(L, 3);
  int rc = sqlite3_prepare_v2(d->db, sql, (int)n, st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = bind_args(L, *st, 3);
  if (rc != SQLITE_OK) {
    int params = sqlite3_bind_parameter_count(*st);
    sqlite3_finalize(*st);
    *st = NULL;
    if (rc == TOO_MANY)
      return luaL_error(L, "bench.db: %d values for %d parameters", lua_gettop(L) - 2, params);
  }
  return rc;
}

static int l_rows(lua_State *L) {
  Db *d = check_db(L);
  sqlite3_stmt *st = NULL;
  int rc = prepare_bound(L, d, &st);
  if (rc != SQLITE_OK) return fail(L, d->db, rc);
  lua_newtable(L);
  lua_Integer i = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    push_row(L, st);
    lua_rawseti(L, -2, ++i);
  }
  if (rc != SQLITE_DONE) {
    int k = fail(L, d->db, rc);
    sqlite3_finalize(st);
    return k;
  }
  sqlite3_finalize(st);
  return 1;
}

static int l_run(lua_State *L) {
  Db *d = check_db(L);
  sqlite3_stmt *st = NULL;
  int rc = prepare_bound(L, d, &st);
  if (rc != SQLITE_OK) return fail(L, d->db, rc);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
  if (rc != SQLITE_DONE) {
    int k = fail(L, d->db, rc);
    sqlite3_finalize(st);
    return k;
  }
  sqlite3_finalize(st);
  lua_pushinteger(L, sqlite3_changes(d->db));
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(d->db));
  return 2;
}

static int l_prepare(lua_State *L) {
  Db *d = check_db(L);
  size_t n;
  const char *sql = luaL_checklstring(L, 2, &n);
  Stmt *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->st = NULL;
  s->db_ref = LUA_NOREF;
  s->owner = d;
  luaL_setmetatable(L, STMT_MT);
  int rc = sqlite3_prepare_v2(d->db, sql, (int)n, &s->st, NULL);
  if (rc != SQLITE_OK) return fail(L, d->db, rc);
  /* the statement keeps its database alive: finalize before close */
  lua_pushvalue(L, 1);
  s->db_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_close(lua_State *L) {
  Db *d = luaL_checkudata(L, 1, DB_MT);
  if (d->db) {
    /* statements still open are finalized with it (sqlite3_close_v2) */
    sqlite3_close_v2(d->db);
    d->db = NULL;
  }
  return 0;
}

static Stmt *check_stmt(lua_State *L) {
  Stmt *s = luaL_checkudata(L, 1, STMT_MT);
  if (!s->st) luaL_error(L, "bench.db: the statement is finalized");
  if (!s->owner->db) luaL_error(L, "bench.db: the statement's database is closed");
  return s;
}

static int l_stmt_bind(lua_State *L) {
  Stmt *s = check_stmt(L);
  check_bindable(L, 2);
  sqlite3_reset(s->st);
  int rc = bind_args(L, s->st, 2);
  if (rc == TOO_MANY)
    return luaL_error(L, "bench.db: %d values for %d parameters", lua_gettop(L) - 1, sqlite3_bind_parameter_count(s->st));
  if (rc != SQLITE_OK) return fail(L, sqlite3_db_handle(s->st), rc);
  lua_settop(L, 1);
  return 1;
}

static int l_stmt_step(lua_State *L) {
  Stmt *s = check_stmt(L);
  int rc = sqlite3_step(s->st);
  if (rc == SQLITE_ROW) { push_row(L, s->st); return 1; }
  if (rc == SQLITE_DONE) { lua_pushboolean(L, 0); return 1; }
  int k = fail(L, sqlite3_db_handle(s->st), rc);
  sqlite3_reset(s->st);
  return k;
}

static int l_stmt_reset(lua_State *L) {
  Stmt *s = check_stmt(L);
  sqlite3_reset(s->st);
  lua_settop(L, 1);
  return 1;
}

static int l_stmt_finalize(lua_State *L) {
  Stmt *s = luaL_checkudata(L, 1, STMT_MT);
  if (s->st) { sqlite3_finalize(s->st); s->st = NULL; }
  if (s->db_ref != LUA_NOREF) { luaL_unref(L, LUA_REGISTRYINDEX, s->db_ref); s->db_ref = LUA_NOREF; }
  return 0;
}

static int l_version(lua_State *L) {
  lua_pushstring(L, sqlite3_libversion());
  return 1;
}

int luaopen_bench_db(lua_State *L) {
  static const luaL_Reg db_methods[] = {
    {"exec", l_exec}, {"rows", l_rows}, {"run", l_run}, {"prepare", l_prepare}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg stmt_methods[] = {
    {"bind", l_stmt_bind}, {"step", l_stmt_step}, {"reset", l_stmt_reset}, {"finalize", l_stmt_finalize},
    {NULL, NULL}};
  static const luaL_Reg db_meta[] = {{"__gc", l_close}, {"__close", l_close}, {NULL, NULL}};
  static const luaL_Reg stmt_meta[] = {{"__gc", l_stmt_finalize}, {"__close", l_stmt_finalize}, {NULL, NULL}};
  br_class(L, DB_MT, db_meta, db_methods);
  br_class(L, STMT_MT, stmt_meta, stmt_methods);
  lua_pop(L, 2);
  static const luaL_Reg funcs[] = {{"open", l_open}, {"version", l_version}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
