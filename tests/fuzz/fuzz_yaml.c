/* libFuzzer target for bench.yaml (engine/yaml.c).
 *
 * Each input is decoded (one document, then all, with positions); whatever
 * decodes is encoded, and the encoding must decode again and re-encode to the
 * same text. Any failure must be a clean nil + message: a crash, a sanitizer
 * report, or an encode/decode disagreement (abort) is a bug.
 *
 * Build: see tests/engine.cmake (target fuzz_yaml, clang only). Run:
 *   build/tests/fuzz_yaml -max_total_time=300 CORPUS_DIR tests/yaml-cases
 * Crash inputs worth keeping go to tests/yaml-cases/fuzz-*.yaml. */
#include "benchrun/runtime.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

static const char check_lua[] =
  "local yaml, text = ...\n"
  "local opts = {positions = true, max_depth = 200, max_alias_nodes = 2000}\n"
  "local v, pos = yaml.decode(text, 'fuzz', opts)\n"
  "if v == nil then assert(type(pos) == 'string' and pos:find('^fuzz:%d+:%d+: ') or pos:find('^fuzz: '), pos)\n"
  "else assert(type(pos) == 'table') end\n"
  "local docs, err = yaml.decode_all(text, 'fuzz', opts)\n"
  "if docs == nil then assert(type(err) == 'string', err); return end\n"
  "for i = 1, docs.n do\n"
  "  local ok, out = pcall(yaml.encode, docs[i])\n"
  "  if ok then\n"
  "    local again, e2 = yaml.decode(out, 'encoded', {max_depth = 400, max_alias_nodes = 0})\n"
  "    if again == nil then error('FUZZ BUG: encoded text does not decode: ' .. e2 .. '\\n' .. out) end\n"
  "    local out2 = yaml.encode(again)\n"
  "    if out2 ~= out then error('FUZZ BUG: encode is not stable:\\n' .. out .. '\\n---\\n' .. out2) end\n"
  "  else\n"
  "    assert(out:find('yaml.encode: ', 1, true), out)\n"
  "  end\n"
  "end\n";

static void setup(void) {
  L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "bench.yaml", luaopen_bench_yaml, 0);
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, check_lua, sizeof check_lua - 1, "=fuzz_check") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_check");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_check");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "bench.yaml");
  lua_remove(L, -2);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    /* running out of the (default, unlimited) Lua memory is not a finding */
    fprintf(stderr, "%s\n", msg ? msg : "(no message)");
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
