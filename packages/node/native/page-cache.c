/*
 * posix_fadvise(POSIX_FADV_DONTNEED) for Node, which has no binding for it:
 * a storage node drops the pages of a large body once the body is durable
 * (and behind a large read), so streaming big files neither evicts what is
 * hot nor makes the kernel find fresh pages for every byte written.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <node_api.h>

static napi_value drop_cache(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || fd < 0 || offset < 0 || length < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dropCache(fd, offset, length) takes three non-negative integers");
    return NULL;
  }
  napi_value result;
  /* The advice's own error number (0 when taken): advice is best effort, the caller decides. */
  napi_create_int32(env, posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED), &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "dropCache", NAPI_AUTO_LENGTH, drop_cache, NULL, &fn);
  napi_set_named_property(env, exports, "dropCache", fn);
  return exports;
}
