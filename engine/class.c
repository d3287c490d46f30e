/* Userdata classes from luaL_Reg lists (class.h). */
#include "class.h"

#include <string.h>

void br_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  if (!luaL_newmetatable(L, name)) return;   /* made before: it is on the stack */
  int mt = lua_gettop(L);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
  } else {
    lua_pushnil(L);
  }
  int tab = lua_gettop(L);
  for (const luaL_Reg *m = meta; m && m->name; m++) {
    if (methods && !strcmp(m->name, "__index")) {
      lua_pushvalue(L, tab);
      lua_pushcclosure(L, m->func, 1);
    } else {
      lua_pushcfunction(L, m->func);
    }
    lua_setfield(L, mt, m->name);
  }
  if (methods && lua_getfield(L, mt, "__index") == LUA_TNIL) {
    lua_pushvalue(L, tab);
    lua_setfield(L, mt, "__index");
  }
  lua_settop(L, mt);
}
