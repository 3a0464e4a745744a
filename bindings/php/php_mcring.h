/* php_mcring.h — declarations shared by the files of the mcring PHP
 * extension: the module globals (ini settings), the per-client settings
 * that php-memcached keeps on its memcached_st, and the value coder.
 */
#ifndef PHP_MCRING_H
#define PHP_MCRING_H

#include <stddef.h>
#include <stdint.h>

#include "php.h"

#define PHP_MCRING_VERSION "0.2.0"

extern zend_module_entry mcring_module_entry;
#define phpext_mcring_ptr &mcring_module_entry

/* php-memcached's value flags (the low 16 bits of the item's flags); user
 * flags (OPT_USER_FLAGS) take the high 16. */
#define MCPHP_TYPE_MASK 0xFu
#define MCPHP_TYPE_STRING 0u
#define MCPHP_TYPE_LONG 1u
#define MCPHP_TYPE_DOUBLE 2u
#define MCPHP_TYPE_BOOL 3u
#define MCPHP_TYPE_SERIALIZED 4u
#define MCPHP_TYPE_IGBINARY 5u
#define MCPHP_TYPE_JSON 6u
#define MCPHP_TYPE_MSGPACK 7u
#define MCPHP_FLAG_COMPRESSED 0x10u
#define MCPHP_FLAG_ZLIB 0x20u
#define MCPHP_FLAG_FASTLZ 0x40u
#define MCPHP_FLAG_ZSTD 0x80u

/* php-memcached's serializer and compression constants. */
#define MCPHP_SER_PHP 1
#define MCPHP_SER_IGBINARY 2
#define MCPHP_SER_JSON 3
#define MCPHP_SER_JSON_ARRAY 4
#define MCPHP_SER_MSGPACK 5
#define MCPHP_COMP_ZLIB 1
#define MCPHP_COMP_FASTLZ 2

ZEND_BEGIN_MODULE_GLOBALS(mcring)
zend_bool alias_memcached;
char* ring_dir;
char* ring_owner;
zend_long compression_threshold;
double compression_factor;
char* serializer;
char* compression_type;
char* sess_prefix;
zend_bool sess_locking;
zend_long sess_lock_wait_min;
zend_long sess_lock_wait_max;
zend_long sess_lock_retries;
zend_long sess_lock_expire;
ZEND_END_MODULE_GLOBALS(mcring)

ZEND_EXTERN_MODULE_GLOBALS(mcring)
#define MCPHP_G(v) ZEND_MODULE_GLOBALS_ACCESSOR(mcring, v)

/* How values are coded: the part of a client's options the coder reads. */
typedef struct {
  int serializer;       /* MCPHP_SER_* */
  int compression;      /* 0 or 1 */
  int compression_type; /* MCPHP_COMP_*: what getOption reports */
  zend_long user_flags; /* -1: none, else 0..65535 */
} mcphp_coding_t;

/* Encodes `value` as php-memcached would: sets *out (a new string the
 * caller releases) and *flags and returns 1, or returns 0 after a warning
 * when the value cannot be serialized. FastLZ is asked for but zlib is
 * written (php-memcached reads either, by the flags). */
int mcphp_value_encode(const mcphp_coding_t* c, zval* value, zend_string** out,
                       uint32_t* flags);

/* Decodes a stored payload with its flags into `rv`. Returns 1, or 0 after
 * a warning (rv is then false) for a payload it cannot decode: unknown
 * type, corrupt compression, serializer not loaded. */
int mcphp_value_decode(const mcphp_coding_t* c, const char* payload, size_t len,
                       uint32_t flags, zval* rv);

/* FastLZ block decoder (mcring_fastlz.c): returns the number of bytes
 * written to out, or 0 for a corrupt block or one larger than out_cap. */
size_t mcphp_fastlz_decode(const unsigned char* in, size_t in_len,
                           unsigned char* out, size_t out_cap);

/* Parses a serializer name of the ini ("php", "igbinary", "json",
 * "json_array", "msgpack"); 0 when unknown. */
int mcphp_serializer_parse(const char* name);
/* 1 when the serializer's extension is loaded. */
int mcphp_serializer_available(int serializer);

/* The agent's user for a ring directory (mcring.ring_owner,
 * OPT_MCRING_RING_OWNER), as `mcring --ring-owner` takes it: a user name,
 * else a uid in digits. Sets *uid and returns 0, or returns -1 when it is
 * neither. */
#define MCPHP_UID_MAX 4294967294LL
int mcphp_ring_owner_parse(const char* s, zend_long* uid);

/* The session handler (mcring_session.c): registered at module start
 * (also as "memcached" when the class is aliased), its per-save-path
 * clients freed at module shutdown. */
void mcphp_session_register(int as_memcached);
void mcphp_session_shutdown(void);

#endif /* PHP_MCRING_H */
