/* bench.sys's sysctl half (sysctl.c), opened by bench.sys (sys.c). */
#ifndef BENCHRUN_SYSCTL_H
#define BENCHRUN_SYSCTL_H

#include <lua.h>

/* Add sysctl_get, sysctl_set, restore_all, restore_pending, journal and
 * state_dir to the table at the top; undo what a killed benchrun left
 * changed; restore this process's changes when the state closes. */
void br_sysctl_open(lua_State *L);

#endif
