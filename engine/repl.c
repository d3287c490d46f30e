/* The REPL — minimal until the libedit version lands. */
#include "benchrun/runtime.h"
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

int br_repl(lua_State *L) {
  char line[4096];
  while (fputs("> ", stdout), fflush(stdout), fgets(line, sizeof line, stdin)) {
    if (luaL_loadstring(L, line) != LUA_OK) { br_runtime_report(L); continue; }
    if (br_runtime_pcall(L, 0, 0) != LUA_OK) br_runtime_report(L);
  }
  return 0;
}
