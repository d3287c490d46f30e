/* The metatable of a userdata class, built from luaL_Reg lists (as Lua's
 * liolib.c builds the file handle's in createmeta): every C module that
 * makes userdata (bench.proc's Process, bench.clock's stopwatch, ...) uses
 * this one helper. */
#ifndef BENCHRUN_CLASS_H
#define BENCHRUN_CLASS_H

#include <lauxlib.h>

/* Push the metatable registered as `name`, making it the first time (once
 * per state): the metamethods of `meta` (__gc, __close, __tostring, ...)
 * and the functions of `methods` as its __index table. An __index function
 * in `meta` gets that methods table as its upvalue (it can look fields up in
 * it after answering its own keys). Either list may be NULL. */
void br_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

#endif
