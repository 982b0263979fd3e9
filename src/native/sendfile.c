/*
 * sendfile.node: the body of an HTTP /files/ response sent with sendfile(2), from the
 * page cache to the socket without passing through JavaScript, as nginx does with
 * `sendfile on`. The HTTP side (headers, ranges, logs) stays in TypeScript
 * (src/http/files.ts); this file only moves the bytes.
 *
 * Why it exists: Node's stream path reads every 64 KiB of a file into a new Buffer on
 * the thread pool, then hands it to the socket (a copy into the kernel per write, and
 * the Buffers pile up as external memory the GC frees late). Serving 50 clients x
 * 64 MiB that cost ~3.6 s of CPU per GiB against nginx's ~0.1 and a peak RSS that grew
 * with the number of clients (docs/benchmarks.md).
 *
 * How: the socket fd Node owns is dup()ed and the dup watched by a uv_poll_t for
 * writability on the caller's loop (a dup has its own epoll registration, so libuv's
 * watcher of the original fd is untouched). On each writable event sendfile() runs
 * until the socket buffer is full (EAGAIN) or PUMP_BUDGET bytes went out, so one fast
 * client cannot hold the loop that DHCP and TFTP share. JS is called once at the end
 * (0 or -errno) and at most once a second in between (1: progress, so an idle timeout
 * on the Node socket, which sees none of these writes, can be refreshed).
 * The poll is stopped (which removes the dup from epoll) before the dup is closed: an
 * fd closed while still registered would leave a registration epoll cannot remove.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define PUMP_BUDGET (8u << 20) /* bytes per writable event before yielding to the loop */
#define PROGRESS_MS 1000

typedef struct job {
  napi_env env;
  uv_poll_t poll;
  int sock;  /* our dup of the socket: closed here */
  int file;  /* borrowed: the caller closes it after the final callback */
  int64_t off;
  int64_t end;
  uint64_t last_progress;
  int done;
  /* freed once both the uv handle is closed and JS dropped its handle (finalizer) */
  int closed;
  int finalized;
  napi_ref cb;
  napi_async_context actx;
  napi_async_cleanup_hook_handle cleanup;
} job_t;

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, NULL, "napi call failed"); \
      return NULL;                                    \
    }                                                 \
  } while (0)

static void on_closed(uv_handle_t *h) {
  job_t *j = (job_t *)h->data;
  j->closed = 1;
  if (j->finalized) free(j);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  job_t *j = (job_t *)data;
  j->finalized = 1;
  if (j->closed) free(j);
}

/* Stops watching and closes the dup; calls JS with `status` unless `quiet`. */
static void finish(job_t *j, int status, int quiet) {
  if (j->done) return;
  j->done = 1;
  uv_poll_stop(&j->poll);
  close(j->sock);
  j->sock = -1;
  napi_env env = j->env;
  if (!quiet && j->cb) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb, argv[2], global, result;
    if (napi_get_reference_value(env, j->cb, &cb) == napi_ok && cb) {
      napi_create_int32(env, status, &argv[0]);
      napi_create_double(env, (double)j->off, &argv[1]);
      napi_get_global(env, &global);
      if (napi_make_callback(env, j->actx, global, cb, 2, argv, &result) == napi_pending_exception) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
        napi_fatal_exception(env, exc);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  if (j->cleanup) {
    napi_remove_async_cleanup_hook(j->cleanup);
    j->cleanup = NULL;
    /* references cannot be deleted while the env is torn down (cleanup hook path) */
    if (j->cb) napi_delete_reference(env, j->cb);
    if (j->actx) napi_async_destroy(env, j->actx);
  }
  j->cb = NULL;
  j->actx = NULL;
  uv_close((uv_handle_t *)&j->poll, on_closed);
}

static void progress(job_t *j) {
  uint64_t now = uv_now(uv_handle_get_loop((uv_handle_t *)&j->poll));
  if (now - j->last_progress < PROGRESS_MS) return;
  j->last_progress = now;
  napi_env env = j->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, argv[2], global, result;
  if (napi_get_reference_value(env, j->cb, &cb) == napi_ok && cb) {
    napi_create_int32(env, 1, &argv[0]);
    napi_create_double(env, (double)j->off, &argv[1]);
    napi_get_global(env, &global);
    if (napi_make_callback(env, j->actx, global, cb, 2, argv, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_writable(uv_poll_t *p, int status, int events) {
  (void)events;
  job_t *j = (job_t *)p->data;
  if (j->done) return;
  if (status < 0) {
    /* libuv reports EPOLLERR as UV_EBADF: name the socket's own error (a reset, mostly) */
    int err = 0;
    socklen_t len = sizeof err;
    if (status == UV_EBADF && getsockopt(j->sock, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) status = -err;
    return finish(j, status, 0);
  }
  uint64_t budget = PUMP_BUDGET;
  while (j->off < j->end && budget > 0) {
    uint64_t want = (uint64_t)(j->end - j->off);
    if (want > budget) want = budget;
    off_t o = (off_t)j->off;
    ssize_t n = sendfile(j->sock, j->file, &o, (size_t)want);
    if (n > 0) {
      j->off += n;
      budget = (uint64_t)n >= budget ? 0 : budget - (uint64_t)n;
      continue;
    }
    if (n == 0) return finish(j, -ENODATA, 0); /* the file is shorter than announced */
    if (errno == EINTR) continue;
    if (errno == EAGAIN) break;
    return finish(j, -errno, 0);
  }
  if (j->off >= j->end) return finish(j, 0, 0);
  progress(j);
  /* JS may have cancelled from the progress callback */
}

static void cleanup_hook(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  job_t *j = (job_t *)arg;
  j->cleanup = NULL;
  finish(j, -ECANCELED, 1);
}

/* start(socketFd, fileFd, offset, length, cb(status, endOffset)) -> handle */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "start(socketFd, fileFd, offset, length, cb)");
    return NULL;
  }
  int32_t sock, file;
  int64_t off, len;
  CHECK(napi_get_value_int32(env, argv[0], &sock));
  CHECK(napi_get_value_int32(env, argv[1], &file));
  CHECK(napi_get_value_int64(env, argv[2], &off));
  CHECK(napi_get_value_int64(env, argv[3], &len));
  if (sock < 0 || file < 0 || off < 0 || len < 0) {
    napi_throw_range_error(env, NULL, "bad fd, offset or length");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "calloc");
    return NULL;
  }
  j->sock = fcntl(sock, F_DUPFD_CLOEXEC, 0);
  if (j->sock < 0) {
    free(j);
    napi_throw_error(env, "EBADF", "dup of the socket failed");
    return NULL;
  }
  j->env = env;
  j->file = file;
  j->off = off;
  j->end = off + len;
  j->last_progress = uv_now(loop);
  j->poll.data = j;
  if (uv_poll_init(loop, &j->poll, j->sock) != 0) {
    close(j->sock);
    free(j);
    napi_throw_error(env, "EBADF", "uv_poll_init");
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "pxe:sendfile", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &j->actx);
  napi_create_reference(env, argv[4], 1, &j->cb);
  napi_add_async_cleanup_hook(env, cleanup_hook, j, &j->cleanup);
  napi_value ext;
  if (napi_create_external(env, j, on_finalize, NULL, &ext) != napi_ok) {
    j->finalized = 1; /* nobody can hold it: on_closed frees */
    finish(j, -ENOMEM, 1);
    napi_throw_error(env, "ENOMEM", "napi_create_external");
    return NULL;
  }
  /* all sending happens in on_writable: the callback never runs inside start() */
  uv_poll_start(&j->poll, UV_WRITABLE, on_writable);
  return ext;
}

/* cancel(handle): stops a job that has not finished; its callback is not called. */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return NULL;
  job_t *j = (job_t *)p;
  if (!j->done) finish(j, -ECANCELED, 1);
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
