/*
 * glibc's malloc_trim(0): gives every whole free page of malloc's heaps back to the kernel, also
 * those in the middle of a heap, which free() alone never returns (it trims only the top). One
 * function, trim(), returning whether anything was given back; false where the C library is not
 * glibc (nothing to call).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#if defined(__GLIBC__)
  released = malloc_trim(0) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, released, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  return exports;
}
