/* mcring_value.c — PHP values to memcached items and back, in
 * php-memcached's format, so that a fleet can switch worker by worker
 * while both kinds of workers share one cache.
 *
 * The item's 32-bit flags say how to read the bytes: the low four bits
 * are the type (string, long and double as decimal text, bool as "1" or
 * empty, or one of four serializers), 0x10 marks a compressed payload and
 * 0x20 / 0x40 / 0x80 say which compressor (zlib, FastLZ, zstd), and the
 * high 16 bits carry the application's OPT_USER_FLAGS. A compressed
 * payload is the original length (four bytes, host order) followed by
 * the compressed bytes. Only strings and serialized values are
 * compressed, and only when they reach the threshold and shrink by the
 * factor, as php-memcached does. mcring compresses with zlib only (it has
 * no FastLZ encoder); it reads zlib, FastLZ and, when built with libzstd,
 * zstd. The coding is done here rather than by libmcring's serde hooks
 * because those hooks know nothing of zvals and libmcring's own zstd bit
 * (0x100) means raw bytes to php-memcached.
 *
 * igbinary and msgpack are called through their PHP functions, so the
 * extension builds and loads without them and uses them when loaded.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef HAVE_MCRING_ZSTD
#include <zstd.h>
#endif

#include "php.h"
#include "ext/json/php_json.h"
#include "ext/standard/php_var.h"
#include "zend_smart_str.h"

#include "php_mcring.h"

int mcphp_serializer_parse(const char* name) {
  static const struct {
    const char* name;
    int id;
  } names[] = {{"php", MCPHP_SER_PHP},
               {"igbinary", MCPHP_SER_IGBINARY},
               {"json", MCPHP_SER_JSON},
               {"json_array", MCPHP_SER_JSON_ARRAY},
               {"msgpack", MCPHP_SER_MSGPACK}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (name && strcmp(name, names[i].name) == 0)
      return names[i].id;
  return 0;
}

int mcphp_serializer_available(int serializer) {
  switch (serializer) {
    case MCPHP_SER_PHP:
    case MCPHP_SER_JSON:
    case MCPHP_SER_JSON_ARRAY:
      return 1;
    case MCPHP_SER_IGBINARY:
      return zend_hash_str_exists(&module_registry, ZEND_STRL("igbinary"));
    case MCPHP_SER_MSGPACK:
      return zend_hash_str_exists(&module_registry, ZEND_STRL("msgpack"));
  }
  return 0;
}

/* Calls the PHP function `name` with one argument; 1 when it returned a
 * value other than false (that value is in *ret). */
static int call1(const char* name, zval* arg, zval* ret) {
  zval fn;
  ZVAL_STRING(&fn, name);
  int ok = call_user_function(NULL, NULL, &fn, ret, 1, arg) == SUCCESS &&
           !EG(exception);
  zval_ptr_dtor(&fn);
  if (ok && Z_TYPE_P(ret) == IS_FALSE)
    ok = 0;
  return ok;
}

/* The shortest decimal text that reads back as d (php-memcached writes
 * the shortest form too, and reads any form with strtod). */
static zend_string* double_text(double d) {
  if (isnan(d))
    return zend_string_init("NaN", 3, 0);
  if (isinf(d))
    return d > 0 ? zend_string_init("Infinity", 8, 0)
                 : zend_string_init("-Infinity", 9, 0);
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (zend_strtod(buf, NULL) == d)
      break;
  }
  return zend_string_init(buf, strlen(buf), 0);
}

static int serialize(int serializer, zval* value, zend_string** out,
                     uint32_t* type) {
  switch (serializer) {
    case MCPHP_SER_IGBINARY:
    case MCPHP_SER_MSGPACK: {
      int ig = serializer == MCPHP_SER_IGBINARY;
      zval ret;
      ZVAL_UNDEF(&ret);
      if (!mcphp_serializer_available(serializer) ||
          !call1(ig ? "igbinary_serialize" : "msgpack_serialize", value,
                 &ret) ||
          Z_TYPE(ret) != IS_STRING) {
        zval_ptr_dtor(&ret);
        php_error_docref(NULL, E_WARNING, "could not serialize value with %s",
                         ig ? "igbinary" : "msgpack");
        return 0;
      }
      *out = zend_string_copy(Z_STR(ret));
      zval_ptr_dtor(&ret);
      *type = ig ? MCPHP_TYPE_IGBINARY : MCPHP_TYPE_MSGPACK;
      return 1;
    }
    case MCPHP_SER_JSON:
    case MCPHP_SER_JSON_ARRAY: {
      smart_str buf = {0};
      if (php_json_encode(&buf, value, 0) == FAILURE || EG(exception)) {
        smart_str_free(&buf);
        php_error_docref(NULL, E_WARNING, "could not serialize value");
        return 0;
      }
      smart_str_0(&buf);
      *out = buf.s ? buf.s : ZSTR_EMPTY_ALLOC();
      *type = MCPHP_TYPE_JSON;
      return 1;
    }
    default: {
      smart_str buf = {0};
      php_serialize_data_t vh;
      PHP_VAR_SERIALIZE_INIT(vh);
      php_var_serialize(&buf, value, &vh);
      PHP_VAR_SERIALIZE_DESTROY(vh);
      if (!buf.s || EG(exception)) {
        smart_str_free(&buf);
        php_error_docref(NULL, E_WARNING, "could not serialize value");
        return 0;
      }
      smart_str_0(&buf);
      *out = buf.s;
      *type = MCPHP_TYPE_SERIALIZED;
      return 1;
    }
  }
}

/* Replaces *payload by its compressed form when that pays off, and adds
 * the compression bits to *flags. */
static void maybe_compress(zend_string** payload, uint32_t* flags) {
  zend_string* p = *payload;
  size_t len = ZSTR_LEN(p);
  if (len == 0 || (zend_long)len < MCPHP_G(compression_threshold) ||
      len > UINT32_MAX)
    return;
  uLongf clen = compressBound(len);
  zend_string* z = zend_string_alloc(clen + 4, 0);
  if (compress((Bytef*)ZSTR_VAL(z) + 4, &clen, (const Bytef*)ZSTR_VAL(p),
               len) != Z_OK ||
      (double)len <= (double)clen * MCPHP_G(compression_factor)) {
    zend_string_efree(z);
    return;
  }
  uint32_t orig = (uint32_t)len;
  memcpy(ZSTR_VAL(z), &orig, 4);
  ZSTR_LEN(z) = clen + 4;
  ZSTR_VAL(z)[clen + 4] = '\0';
  zend_string_release(p);
  *payload = z;
  *flags |= MCPHP_FLAG_COMPRESSED | MCPHP_FLAG_ZLIB;
}

int mcphp_value_encode(const mcphp_coding_t* c, zval* value, zend_string** out,
                       uint32_t* flags) {
  uint32_t type = MCPHP_TYPE_STRING;
  int compressible = 0;
  zend_string* p;
  ZVAL_DEREF(value);
  switch (Z_TYPE_P(value)) {
    case IS_STRING:
      p = zend_string_copy(Z_STR_P(value));
      compressible = 1;
      break;
    case IS_LONG:
      p = zend_long_to_str(Z_LVAL_P(value));
      type = MCPHP_TYPE_LONG;
      break;
    case IS_DOUBLE:
      p = double_text(Z_DVAL_P(value));
      type = MCPHP_TYPE_DOUBLE;
      break;
    case IS_TRUE:
      p = zend_string_init("1", 1, 0);
      type = MCPHP_TYPE_BOOL;
      break;
    case IS_FALSE:
      p = ZSTR_EMPTY_ALLOC();
      type = MCPHP_TYPE_BOOL;
      break;
    default:
      if (!serialize(c->serializer, value, &p, &type))
        return 0;
      compressible = 1;
  }
  *flags = type;
  if (compressible && c->compression)
    maybe_compress(&p, flags);
  if (c->user_flags >= 0)
    *flags |= (uint32_t)c->user_flags << 16;
  *out = p;
  return 1;
}

/* The original bytes of a compressed payload, or NULL after a warning. */
static zend_string* decompress(const char* payload, size_t len,
                               uint32_t flags) {
  uint32_t orig;
  if (len < 4) {
    php_error_docref(NULL, E_WARNING, "could not decompress value");
    return NULL;
  }
  memcpy(&orig, payload, 4);
  payload += 4;
  len -= 4;
  zend_string* out = zend_string_alloc(orig, 0);
  int ok = 0;
  if (flags & MCPHP_FLAG_FASTLZ) {
    ok = mcphp_fastlz_decode((const unsigned char*)payload, len,
                             (unsigned char*)ZSTR_VAL(out), orig) == orig;
  } else if (flags & MCPHP_FLAG_ZLIB) {
    uLongf n = orig;
    ok = uncompress((Bytef*)ZSTR_VAL(out), &n, (const Bytef*)payload, len) ==
             Z_OK &&
         n == orig;
#ifdef HAVE_MCRING_ZSTD
  } else if (flags & MCPHP_FLAG_ZSTD) {
    size_t n = ZSTD_decompress(ZSTR_VAL(out), orig, payload, len);
    ok = !ZSTD_isError(n) && n == orig;
#endif
  } else {
    zend_string_efree(out);
    php_error_docref(NULL, E_WARNING,
                     "could not decompress value: unrecognised compression "
                     "type");
    return NULL;
  }
  if (!ok) {
    zend_string_efree(out);
    php_error_docref(NULL, E_WARNING, "could not decompress value");
    return NULL;
  }
  ZSTR_VAL(out)[orig] = '\0';
  return out;
}

static int unserialize(const mcphp_coding_t* c, uint32_t type,
                       zend_string* data, zval* rv) {
  switch (type) {
    case MCPHP_TYPE_SERIALIZED: {
      const unsigned char* p = (const unsigned char*)ZSTR_VAL(data);
      php_unserialize_data_t vh;
      PHP_VAR_UNSERIALIZE_INIT(vh);
      int ok = php_var_unserialize(rv, &p, p + ZSTR_LEN(data), &vh);
      PHP_VAR_UNSERIALIZE_DESTROY(vh);
      if (!ok) {
        zval_ptr_dtor(rv);
        ZVAL_FALSE(rv);
        php_error_docref(NULL, E_WARNING, "could not unserialize value");
        return 0;
      }
      return 1;
    }
    case MCPHP_TYPE_JSON:
      php_json_decode_ex(
          rv, ZSTR_VAL(data), ZSTR_LEN(data),
          c->serializer == MCPHP_SER_JSON_ARRAY ? PHP_JSON_OBJECT_AS_ARRAY : 0,
          PHP_JSON_PARSER_DEFAULT_DEPTH);
      return 1;
    case MCPHP_TYPE_IGBINARY:
    case MCPHP_TYPE_MSGPACK: {
      int ig = type == MCPHP_TYPE_IGBINARY;
      if (!mcphp_serializer_available(ig ? MCPHP_SER_IGBINARY
                                         : MCPHP_SER_MSGPACK)) {
        ZVAL_FALSE(rv);
        php_error_docref(NULL, E_WARNING,
                         "could not unserialize value, no %s support",
                         ig ? "igbinary" : "msgpack");
        return 0;
      }
      zval arg;
      ZVAL_STR_COPY(&arg, data);
      ZVAL_UNDEF(rv);
      int ok =
          call1(ig ? "igbinary_unserialize" : "msgpack_unserialize", &arg, rv);
      zval_ptr_dtor(&arg);
      if (!ok && ig) {
        zval_ptr_dtor(rv);
        ZVAL_FALSE(rv);
        php_error_docref(NULL, E_WARNING,
                         "could not unserialize value with igbinary");
        return 0;
      }
      if (Z_ISUNDEF_P(rv))
        ZVAL_FALSE(rv);
      return 1;
    }
  }
  return 0;
}

int mcphp_value_decode(const mcphp_coding_t* c, const char* payload, size_t len,
                       uint32_t flags, zval* rv) {
  zend_string* data;
  if (flags & MCPHP_FLAG_COMPRESSED) {
    if (!(data = decompress(payload, len, flags))) {
      ZVAL_FALSE(rv);
      return 0;
    }
  } else {
    data = zend_string_init(payload, len, 0);
  }
  int ok = 1;
  uint32_t type = flags & MCPHP_TYPE_MASK;
  switch (type) {
    case MCPHP_TYPE_STRING:
      ZVAL_STR_COPY(rv, data);
      break;
    case MCPHP_TYPE_LONG:
      ZVAL_LONG(rv, ZEND_STRTOL(ZSTR_VAL(data), NULL, 10));
      break;
    case MCPHP_TYPE_DOUBLE:
      if (zend_string_equals_literal(data, "Infinity"))
        ZVAL_DOUBLE(rv, INFINITY);
      else if (zend_string_equals_literal(data, "-Infinity"))
        ZVAL_DOUBLE(rv, -INFINITY);
      else if (zend_string_equals_literal(data, "NaN"))
        ZVAL_DOUBLE(rv, NAN);
      else
        ZVAL_DOUBLE(rv, zend_strtod(ZSTR_VAL(data), NULL));
      break;
    case MCPHP_TYPE_BOOL:
      ZVAL_BOOL(rv, ZSTR_LEN(data) > 0 && ZSTR_VAL(data)[0] == '1');
      break;
    case MCPHP_TYPE_SERIALIZED:
    case MCPHP_TYPE_IGBINARY:
    case MCPHP_TYPE_JSON:
    case MCPHP_TYPE_MSGPACK:
      ok = unserialize(c, type, data, rv);
      break;
    default:
      php_error_docref(NULL, E_WARNING, "unknown payload type");
      ZVAL_FALSE(rv);
      ok = 0;
  }
  zend_string_release(data);
  return ok;
}
