/* fuzz_key.c — libFuzzer target for key validation and the base64 codec.
 *
 * mcr_key_check is what stops a key from smuggling a second command onto
 * the text protocol's wire ("a\r\nflush_all"); base64 carries binary keys
 * of the meta commands and decodes the keys that mg / ms return with the b
 * flag. Properties checked on arbitrary bytes:
 *   - mcr_key_check accepts exactly 1..250 bytes with no byte <= 0x20 and
 *     no 0x7f (an independent reimplementation decides);
 *   - decode(encode(x)) == x, and the encoded length is 4 * ceil(n / 3);
 *   - decode never writes more than 3 * (len / 4) bytes and accepts only
 *     canonical-length input (len % 4 == 0); whatever it accepts, encoding
 *     the result gives back an input of the same length;
 *   - the client refuses an invalid key with MCR_EKEY before any I/O.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool key_ok(const uint8_t* k, size_t n) {
  if (n == 0 || n > 250)
    return false;
  for (size_t i = 0; i < n; i++)
    if (k[i] <= 0x20 || k[i] == 0x7f)
      return false;
  return true;
}

static mcr_client_t* client;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!client) {
    mcr_client_opts_t o;
    mcr_client_opts_init(&o);
    o.servers = "/nonexistent/mcr-fuzz-key.sock";
    if (mcr_client_new(&client, &o, NULL, 0) != 0)
      abort();
  }
  /* A heap copy of exactly `size` bytes: reads past it are caught. */
  char* key = malloc(size ? size : 1);
  if (!key)
    return 0;
  memcpy(key, data, size);
  bool ok = key_ok(data, size);
  if ((mcr_key_check(key, size) == 0) != ok)
    abort();
  if (!ok) {
    mcr_item_t it;
    if (mcr_client_get(client, key, size, &it) != MCR_EKEY)
      abort();
    if (mcr_client_delete(client, key, size, 0) != MCR_EKEY)
      abort();
  }

  /* Encode then decode. */
  size_t enc_cap = 4 * ((size + 2) / 3);
  char* enc = malloc(enc_cap ? enc_cap : 1);
  unsigned char* dec = malloc(size + 3);
  if (!enc || !dec)
    abort();
  size_t el = mcr__base64_encode(key, size, enc);
  if (el != enc_cap)
    abort();
  long dl = mcr__base64_decode(enc, el, dec);
  if (dl != (long)size || memcmp(dec, key, size) != 0)
    abort();
  free(enc);
  free(dec);

  /* Decode arbitrary input into a buffer of exactly the documented size. */
  size_t dec_cap = 3 * (size / 4);
  dec = malloc(dec_cap ? dec_cap : 1);
  if (!dec)
    abort();
  dl = mcr__base64_decode(key, size, dec);
  if (dl >= 0) {
    if (size % 4 != 0 || (size_t)dl > dec_cap)
      abort();
    char* again = malloc(4 * (((size_t)dl + 2) / 3) + 1);
    if (!again)
      abort();
    if (mcr__base64_encode(dec, (size_t)dl, again) != size)
      abort();
    free(again);
  }
  free(dec);
  free(key);
  return 0;
}
