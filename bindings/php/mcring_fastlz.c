/* mcring_fastlz.c — a FastLZ decoder, so that values php-memcached stored
 * compressed with FastLZ (its default) can be read.
 *
 * Written from the description of the FastLZ block format, not from its
 * code. A block is a series of instructions. The top three bits of the
 * block's very first byte give the level (0: level 1, 1: level 2) and are
 * masked off that byte only. In each instruction byte, the top three bits
 * are a length L: L = 0 means a literal run of (low five bits + 1) bytes
 * that follow; otherwise it is a back-reference whose distance has its
 * high bits in the low five bits of the instruction and its low eight bits
 * in a following byte. A match copies L + 2 bytes; L = 7 means the length
 * continues in following bytes (one byte at level 1; at level 2 bytes are
 * added while they are 255). At level 2 a distance whose first byte is 255
 * and whose high bits are all ones is a far match: two more bytes give the
 * distance above 8191. Matches may overlap their output (a run), so they
 * are copied byte by byte. Every read and write is bounds-checked: a
 * corrupt block returns 0 instead of reading or writing out of range.
 */
#include <stddef.h>
#include <stdint.h>

#include "php_mcring.h"

#define FAR_DISTANCE 8191u

size_t mcphp_fastlz_decode(const unsigned char* in, size_t in_len,
                           unsigned char* out, size_t out_cap) {
  if (in_len == 0)
    return 0;
  int level = (in[0] >> 5) + 1;
  if (level != 1 && level != 2)
    return 0;
  size_t ip = 0, op = 0;
  unsigned ctrl = in[ip++] & 31u;
  for (;;) {
    if (ctrl < 32) { /* literal run */
      size_t run = ctrl + 1;
      if (run > in_len - ip || run > out_cap - op)
        return 0;
      for (size_t k = 0; k < run; k++)
        out[op++] = in[ip++];
    } else {
      size_t len = (ctrl >> 5) - 1;
      size_t dist = (size_t)(ctrl & 31u) << 8;
      if (len == 6) {
        if (level == 1) {
          if (ip >= in_len)
            return 0;
          len += in[ip++];
        } else {
          unsigned code;
          do {
            if (ip >= in_len)
              return 0;
            code = in[ip++];
            len += code;
          } while (code == 255);
        }
      }
      if (ip >= in_len)
        return 0;
      unsigned low = in[ip++];
      dist += low;
      if (level == 2 && low == 255 && (ctrl & 31u) == 31u) {
        if (in_len - ip < 2)
          return 0;
        dist = ((size_t)in[ip] << 8 | in[ip + 1]) + FAR_DISTANCE;
        ip += 2;
      }
      size_t n = len + 3;
      if (dist + 1 > op || n > out_cap - op)
        return 0;
      size_t from = op - dist - 1;
      for (size_t k = 0; k < n; k++)
        out[op++] = out[from + k];
    }
    if (ip >= in_len)
      break;
    ctrl = in[ip++];
  }
  return op;
}
