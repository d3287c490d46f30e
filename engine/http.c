/* bench.http — being built (see the issues); this file only registers the name. */
#include "benchrun/runtime.h"
#include <lauxlib.h>

int luaopen_bench_http(lua_State *L) {
  lua_newtable(L);
  return 1;
}
