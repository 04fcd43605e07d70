/*
 * Pipes for decompressor and hasher children. Two functions:
 *
 * pipe(capacity, nonBlockingWrite): a pipe with a bigger buffer than Node's child stdio (a
 * socketpair of ~200 KiB that a decompressor writing 1 MiB at a time fills before the reader has
 * taken anything), returning { read, write, capacity } file descriptors, both close-on-exec, the
 * write end non-blocking if asked (a full pipe then fails a write with EAGAIN instead of stopping
 * the thread that writes). The capacity is asked with F_SETPIPE_SZ and is best effort: past
 * /proc/sys/fs/pipe-max-size (or the user's pipe quota) the kernel's default stays, and
 * `capacity` says which one the pipe got.
 *
 * teeSplice(from, copyTo, moveTo): everything that arrives in pipe `from`, copied into pipe
 * `copyTo` and moved into pipe `moveTo`, by a thread of its own with tee(2) and splice(2): the
 * kernel passes references to the pipes' pages, so no byte is copied. For a decompressor's output
 * that a hasher child and the main thread both read: the main thread no longer writes every byte
 * a second time. The thread works on its own duplicates of the three descriptors (the caller
 * closes its own as usual) and closes them when `from` ends, or when a reader of `copyTo` or
 * `moveTo` goes away (EPIPE): that reader then sees the end of its pipe, and a writer into `from`
 * gets EPIPE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include "napi-object.h"
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct tee_job {
  int from, copy_to, move_to;
};

/* Waits until `fd` is ready for `events` (or hung up: the next call then says so). */
static void wait_for(int fd, short events) {
  struct pollfd ready = {.fd = fd, .events = events};
  while (poll(&ready, 1, -1) < 0 && errno == EINTR) {
  }
}

/* Moves `length` bytes, just copied, from `from` to `move_to`; false when it cannot. */
static bool move_all(const struct tee_job *job, ssize_t length) {
  while (length > 0) {
    ssize_t moved = splice(job->from, NULL, job->move_to, NULL, (size_t)length, SPLICE_F_MOVE);
    if (moved > 0) {
      length -= moved;
    } else if (moved < 0 && errno == EAGAIN) {
      wait_for(job->move_to, POLLOUT);
    } else if (!(moved < 0 && errno == EINTR)) {
      return false;
    }
  }
  return true;
}

static void *tee_loop(void *arg) {
  struct tee_job job = *(struct tee_job *)arg;
  free(arg);
  // Named, so that it can be found in /proc/<pid>/task (and the tests check it ends).
  pthread_setname_np(pthread_self(), "banger-tee");
  for (;;) {
    // tee(2) treats the call as non-blocking when either pipe is (a hasher's input is): EAGAIN
    // then means `from` is empty or `copy_to` full, and poll waits for whichever it was.
    ssize_t copied = tee(job.from, job.copy_to, 1 << 20, 0);
    if (copied == 0) break;
    if (copied < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) break;
      wait_for(job.from, POLLIN);
      wait_for(job.copy_to, POLLOUT);
      continue;
    }
    if (!move_all(&job, copied)) break;
  }
  close(job.from);
  close(job.copy_to);
  close(job.move_to);
  return NULL;
}

static bool is_pipe(int fd) {
  struct stat status;
  return fstat(fd, &status) == 0 && S_ISFIFO(status.st_mode);
}

static napi_value tee_splice(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fds[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fds[0]) != napi_ok ||
      napi_get_value_int32(env, argv[1], &fds[1]) != napi_ok ||
      napi_get_value_int32(env, argv[2], &fds[2]) != napi_ok) {
    napi_throw_type_error(env, NULL, "teeSplice(from, copyTo, moveTo): three file descriptors");
    return NULL;
  }
  for (int i = 0; i < 3; i++) {
    if (!is_pipe(fds[i])) {
      napi_throw_error(env, NULL, "teeSplice: every descriptor must be a pipe");
      return NULL;
    }
  }
  struct tee_job *job = malloc(sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, NULL, "teeSplice: out of memory");
    return NULL;
  }
  int *own[3] = {&job->from, &job->copy_to, &job->move_to};
  int made = 0;
  int error = 0;
  for (; error == 0 && made < 3; made++) {
    *own[made] = fcntl(fds[made], F_DUPFD_CLOEXEC, 0);
    if (*own[made] < 0) error = errno;
  }
  pthread_t thread;
  pthread_attr_t attributes;
  if (error == 0) {
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    // Small: the loop keeps nothing on its stack.
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    error = pthread_create(&thread, &attributes, tee_loop, job);
    pthread_attr_destroy(&attributes);
  }
  if (error != 0) {
    for (int i = 0; i < made; i++) {
      if (*own[i] >= 0) close(*own[i]);
    }
    free(job);
    char message[256];
    snprintf(message, sizeof message, "teeSplice: %s", strerror(error));
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "pipe", NAPI_AUTO_LENGTH, make_pipe, NULL, &fn);
  napi_set_named_property(env, exports, "pipe", fn);
  napi_create_function(env, "teeSplice", NAPI_AUTO_LENGTH, tee_splice, NULL, &fn);
  napi_set_named_property(env, exports, "teeSplice", fn);
  return exports;
}
