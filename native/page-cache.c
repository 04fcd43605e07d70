/*
 * One function, dropCache(fd, callback): posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) on the thread
 * pool, then callback(errno), 0 when it worked. The kernel drops the file's clean cached pages and
 * starts the writeback of its dirty ones, which it never drops: no data is lost, whatever is
 * still being written.
 *
 * For a big file written once and synced as it goes (a pull's image): its written-back pages are
 * of no further use, and new pages cost more than reused ones where memory the kernel frees goes
 * back to a hypervisor (free page reporting): each first touch is then a fault in the host too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>

struct drop_job {
  int fd;
  int error;
  napi_ref callback;
  napi_async_work work;
};

static void drop_execute(napi_env env, void *data) {
  (void)env;
  struct drop_job *job = data;
  /* posix_fadvise returns the error number instead of setting errno. */
  job->error = posix_fadvise(job->fd, 0, 0, POSIX_FADV_DONTNEED);
}

static void drop_complete(napi_env env, napi_status status, void *data) {
  struct drop_job *job = data;
  napi_value callback, global, argv[1];
  napi_get_reference_value(env, job->callback, &callback);
  napi_get_global(env, &global);
  napi_create_int32(env, status == napi_ok ? job->error : ECANCELED, &argv[0]);
  napi_call_function(env, global, callback, 1, argv, NULL);
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value drop_cache(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  napi_valuetype type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_typeof(env, argv[1], &type) != napi_ok ||
      type != napi_function) {
    napi_throw_type_error(env, NULL, "dropCache(fd, callback): a file descriptor and a function");
    return NULL;
  }
  struct drop_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, NULL, "dropCache: out of memory");
    return NULL;
  }
  job->fd = fd;
  napi_value name;
  napi_create_string_utf8(env, "banger.dropCache", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[1], 1, &job->callback);
  napi_create_async_work(env, NULL, name, drop_execute, drop_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "dropCache", NAPI_AUTO_LENGTH, drop_cache, NULL, &fn);
  napi_set_named_property(env, exports, "dropCache", fn);
  return exports;
}
