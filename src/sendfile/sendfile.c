// Zero-copy warm hits: sendfile(2) from a blob file to a client's TCP socket, paced by the event loop.
//
// start(socketFd, fileFd, offset, length, done) duplicates the socket's descriptor (Node may close its own at any
// time, and a reused number must never receive these bytes; the caller keeps fileFd open until done), then sends from the main thread whenever the socket is writable: at most SLICE bytes per
// loop turn, so one fast client cannot starve the others, and never a blocking call on the socket. done(errno,
// sent) runs once. progress(h) reads the bytes sent so far; cancel(h) stops a transfer (done gets ECANCELED).
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <uv.h>

#define CALL_MAX (1 << 20)  // bytes per sendfile(2) call
#define SLICE (4 << 20)     // bytes per transfer per loop turn

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref done;
  napi_async_context async;
  int sock, file;
  int64_t off, left, sent;
  int finished;
  int refs;  // the JS handle and the running transfer
} xfer_t;

static void unref(xfer_t* x) {
  if (--x->refs == 0) free(x);
}

static void on_closed(uv_handle_t* h) {
  xfer_t* x = (xfer_t*)h->data;
  close(x->sock);
  napi_env env = x->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[2], result;
  napi_get_reference_value(env, x->done, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, x->finished, &argv[0]);
  napi_create_int64(env, x->sent, &argv[1]);
  napi_make_callback(env, x->async, recv, cb, 2, argv, &result);
  napi_delete_reference(env, x->done);
  napi_async_destroy(env, x->async);
  napi_close_handle_scope(env, scope);
  unref(x);
}

// err 0: all sent. Stores the code (negated errno, or 1 for success) and closes the poll handle.
static void finish(xfer_t* x, int err) {
  if (x->finished) return;
  x->finished = err ? -err : 1;
  uv_poll_stop(&x->poll);
  uv_close((uv_handle_t*)&x->poll, on_closed);
}

static void on_writable(uv_poll_t* p, int status, int events) {
  (void)events;
  xfer_t* x = (xfer_t*)p->data;
  if (x->finished) return;
  if (status < 0) return finish(x, EPIPE);
  int64_t budget = SLICE;
  while (x->left > 0 && budget > 0) {
    off_t off = (off_t)x->off;
    size_t n = x->left < CALL_MAX ? (size_t)x->left : CALL_MAX;
    ssize_t r = sendfile(x->sock, x->file, &off, n);
    if (r > 0) {
      x->off += r;
      x->left -= r;
      x->sent += r;
      budget -= r;
    } else if (r == 0) {
      return finish(x, ENODATA);  // the file is shorter than the range asked for
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;  // the poll fires again when the socket has room
    } else if (errno != EINTR) {
      return finish(x, errno);
    }
  }
  if (x->left == 0) finish(x, 0);
}

static void on_handle_gone(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  unref((xfer_t*)data);
}

static napi_value throw_errno(napi_env env, const char* what) {
  napi_throw_error(env, "ESENDFILE", what);
  return NULL;
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_errno(env, "start(socketFd, fileFd, offset, length, done)");
  int32_t sock, file;
  int64_t off, len;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &file) != napi_ok ||
      napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &len) != napi_ok ||
      sock < 0 || file < 0 || off < 0 || len < 0)
    return throw_errno(env, "bad arguments");
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, "no event loop");
  xfer_t* x = calloc(1, sizeof *x);
  if (!x) return throw_errno(env, "out of memory");
  x->sock = fcntl(sock, F_DUPFD_CLOEXEC, 0);
  x->file = file;
  if (x->sock < 0 || uv_poll_init_socket(loop, &x->poll, x->sock) != 0) {
    if (x->sock >= 0) close(x->sock);
    free(x);
    return throw_errno(env, "cannot watch the socket (out of descriptors?)");
  }
  x->env = env;
  x->off = off;
  x->left = len;
  x->refs = 2;
  x->poll.data = x;
  napi_value name, resource, handle;
  napi_create_string_utf8(env, "stevedore.sendfile", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &x->async);
  napi_create_reference(env, argv[4], 1, &x->done);
  napi_create_external(env, x, on_handle_gone, NULL, &handle);
  uv_poll_start(&x->poll, UV_WRITABLE, on_writable);
  return handle;
}

static xfer_t* handle_of(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return NULL;
  return (xfer_t*)data;
}

static napi_value progress(napi_env env, napi_callback_info info) {
  xfer_t* x = handle_of(env, info);
  napi_value out;
  napi_create_int64(env, x ? x->sent : 0, &out);
  return out;
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  xfer_t* x = handle_of(env, info);
  if (x) finish(x, ECANCELED);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"progress", NULL, progress, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, cancel, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
