/* error.c — names and messages for mcring's error and status codes, and
 * the text a client handle keeps of its last error.
 *
 * Both tables come from the one X-macro list in mcring.h, so a code can never
 * exist without its name and its message. The functions return static
 * strings and are safe from any thread. mcr__set_error is the one place a
 * handle's message is written: the layers below the engine return codes,
 * and whoever knows the node and the call writes the line.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

int mcr__set_error(mcr_client_t* c, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return err;
}

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
