/* error.c — names and messages for mcring's error and status codes.
 *
 * Both tables come from the one X-macro list in mcring.h, so a code can never
 * exist without its name and its message. The functions return static
 * strings and are safe from any thread.
 */
#include "internal.h"

const char* mcr_strerror(int err) {
  switch (err) {
#define XX(name, code, text) \
  case code:                 \
    return text;
    MCR_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char* mcr_err_name(int err) {
  switch (err) {
#define XX(name, code, text) \
  case code:                 \
    return #name;
    MCR_ERRNO_MAP(XX)
#undef XX
  }
  return "UNKNOWN";
}

const char* mcr_status_name(int status) {
  switch (status) {
    case MCR_OK:
      return "OK";
    case MCR_MISS:
      return "MISS";
    case MCR_NOT_STORED:
      return "NOT_STORED";
    case MCR_EXISTS:
      return "EXISTS";
    case MCR_NOT_FOUND:
      return "NOT_FOUND";
  }
  return status < 0 ? mcr_err_name(status) : "UNKNOWN";
}
