export const DEFAULT_HTTP_HOST = '127.0.0.1'
// 8700: the manager's HTTP port when none is given
export const DEFAULT_HTTP_PORT = 8700
// 64 GiB: the largest body a PUT may carry unless configured otherwise
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 ** 3
