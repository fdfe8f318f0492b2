/*
 * What Node has no binding for, so that large bodies bypass the page cache:
 * posix_fadvise(POSIX_FADV_DONTNEED), with which a storage node drops the pages
 * of a large body behind a read (and of one written without O_DIRECT), and
 * buffers aligned to a page, which O_DIRECT writes need (Node's own buffers
 * have no alignment one can ask for).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>

#define MAX_ALIGNED_BYTES (64 * 1024 * 1024)

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

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* alignedBuffer(alignment, size): a zeroed Buffer whose first byte sits at a multiple of alignment (a power of two). */
static napi_value aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t alignment, size;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int64(env, argv[0], &alignment) != napi_ok ||
      napi_get_value_int64(env, argv[1], &size) != napi_ok ||
      alignment < (int64_t)sizeof(void *) || (alignment & (alignment - 1)) != 0 || alignment > 65536 ||
      size <= 0 || size > MAX_ALIGNED_BYTES) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "alignedBuffer(alignment, size) takes a power of two up to 64 KiB and a size of 1 byte to 64 MiB");
    return NULL;
  }
  void *data = NULL;
  if (posix_memalign(&data, (size_t)alignment, (size_t)size) != 0) {
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "posix_memalign failed");
    return NULL;
  }
  /* Zeroed, so padding written past a body's end never carries old heap bytes to the disk. */
  memset(data, 0, (size_t)size);
  napi_value buffer;
  if (napi_create_external_buffer(env, (size_t)size, data, free_aligned, NULL, &buffer) != napi_ok) {
    free(data);
    napi_throw_error(env, "ERR_MEMORY_ALLOCATION_FAILED", "could not wrap the aligned memory in a Buffer");
    return NULL;
  }
  return buffer;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "dropCache", NAPI_AUTO_LENGTH, drop_cache, NULL, &fn);
  napi_set_named_property(env, exports, "dropCache", fn);
  napi_create_function(env, "alignedBuffer", NAPI_AUTO_LENGTH, aligned_buffer, NULL, &fn);
  napi_set_named_property(env, exports, "alignedBuffer", fn);
  return exports;
}
