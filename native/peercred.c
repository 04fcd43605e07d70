/*
 * The credentials of a Unix socket's peer, as the kernel recorded them when it connected
 * (SO_PEERCRED, SO_PEERGROUPS): Node has no API for them. One function, peerCredentials(fd),
 * returning { pid, uid, gid, groups } or throwing with the errno's message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include "napi-object.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

static napi_value fail(napi_env env, const char *what, int error) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "peerCredentials(fd): fd must be a number");
    return NULL;
  }
  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return fail(env, "SO_PEERCRED", errno);

  /* The supplementary groups: ask with a guess, retry with the size the kernel says it needs. */
  socklen_t size = 64 * sizeof(gid_t);
  gid_t *groups = malloc(size);
  if (groups == NULL) return fail(env, "SO_PEERGROUPS", ENOMEM);
  while (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &size) != 0) {
    int error = errno;
    gid_t *bigger = error == ERANGE ? realloc(groups, size) : NULL;
    if (bigger == NULL) {
      free(groups);
      return fail(env, "SO_PEERGROUPS", error == ERANGE ? ENOMEM : error);
    }
    groups = bigger;
  }

  napi_value result, list;
  napi_create_object(env, &result);
  set_int(env, result, "pid", cred.pid);
  set_int(env, result, "uid", cred.uid);
  set_int(env, result, "gid", cred.gid);
  size_t count = size / sizeof(gid_t);
  napi_create_array_with_length(env, count, &list);
  for (size_t i = 0; i < count; i++) {
    napi_value gid;
    napi_create_int64(env, groups[i], &gid);
    napi_set_element(env, list, (uint32_t)i, gid);
  }
  free(groups);
  napi_set_named_property(env, result, "groups", list);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "peerCredentials", NAPI_AUTO_LENGTH, peer_credentials, NULL, &fn);
  napi_set_named_property(env, exports, "peerCredentials", fn);
  return exports;
}
