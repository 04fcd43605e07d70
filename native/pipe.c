/*
 * A pipe with a bigger buffer than Node's child stdio (a socketpair of ~200 KiB that a
 * decompressor writing 1 MiB at a time fills before the reader has taken anything): one function,
 * pipe(capacity, nonBlockingWrite), returning { read, write, capacity } file descriptors, both
 * close-on-exec, the write end non-blocking if asked (a full pipe then fails a write with EAGAIN
 * instead of stopping the thread that writes). The
 * capacity is asked with F_SETPIPE_SZ and is best effort: past /proc/sys/fs/pipe-max-size (or the
 * user's pipe quota) the kernel's default stays, and `capacity` says which one the pipe got.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include "napi-object.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static napi_value make_pipe(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t capacity;
  bool non_blocking_write = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &capacity) != napi_ok || capacity <= 0) {
    napi_throw_type_error(env, NULL, "pipe(capacity): capacity must be a positive number");
    return NULL;
  }
  if (argc >= 2) napi_get_value_bool(env, argv[1], &non_blocking_write);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    char message[256];
    snprintf(message, sizeof message, "pipe2: %s", strerror(errno));
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  if (non_blocking_write) fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  int got = fcntl(fds[0], F_SETPIPE_SZ, capacity);
  if (got < 0) got = fcntl(fds[0], F_GETPIPE_SZ);

  napi_value result;
  napi_create_object(env, &result);
  set_int(env, result, "read", fds[0]);
  set_int(env, result, "write", fds[1]);
  set_int(env, result, "capacity", got);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "pipe", NAPI_AUTO_LENGTH, make_pipe, NULL, &fn);
  napi_set_named_property(env, exports, "pipe", fn);
  return exports;
}
