/* What the addons share: setting a named integer on a result object. Header-only: each addon is one
 * C file compiled on its own (scripts/build-native.mjs). */
#ifndef BANGER_NAPI_OBJECT_H
#define BANGER_NAPI_OBJECT_H
#include <node_api.h>
#include <stdint.h>

static inline napi_value set_int(napi_env env, napi_value object, const char *key, int64_t value) {
  napi_value number;
  napi_create_int64(env, value, &number);
  napi_set_named_property(env, object, key, number);
  return object;
}

#endif
