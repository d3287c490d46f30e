/* bench.yaml's two halves share the scalar rules: yaml.c decodes (and
 * types plain scalars by the YAML 1.2 core schema), yaml_encode.c encodes
 * and quotes what would not read back as the same string. Internal (not
 * named yaml.h: that is libyaml's). */
#ifndef BENCHRUN_YAML_SCALAR_H
#define BENCHRUN_YAML_SCALAR_H

#include <lua.h>
#include <stddef.h>

/* what yaml_resolve may type a plain scalar as */
enum { K_ANY, K_NULL, K_BOOL, K_INT, K_FLOAT };

/* Push the value a plain scalar s[0..n) stands for when it is of kind
 * `want` (K_ANY: any but a string) and return 1; else push nothing, 0. */
int yaml_resolve(lua_State *L, const char *s, size_t n, int want);
/* Whether s[0..n) is one of the NULL-ended words. */
int yaml_is_one_of(const char *s, size_t n, const char *const *words);
/* yaml.encode(value) -> text */
int yaml_encode(lua_State *L);

#endif
