/* mcring_session.c — session.save_handler = mcring: PHP sessions in
 * memcached through libmcring, stored and locked as php-memcached's
 * handler does, so a site that keeps sessions in memcached can switch.
 *
 * session.save_path is a server list ("host:port[:weight],...", the
 * syntax of mcr_client_opts_t.servers) or, when it starts with '/', an
 * agent's ring directory (whose files must be mcring.ring_owner's when
 * that is set, as for Mcring\Memcached). One client per save path (and
 * owner) lives in the worker for its lifetime (sessions are opened on
 * every request; reconnecting each time is what exhausts servers). Keys are
 * mcring.sess_prefix + the session id (php-memcached's default prefix,
 * "memc.sess.key."), placed by the id alone as libmemcached places prefixed
 * keys; the data is stored raw with flags 0, as php-memcached stores it.
 *
 * Locking, as php-memcached's: reading a session first adds the key
 * prefix + "lock." + id (value "1", expiring after mcring.sess_lock_expire
 * seconds, else max_execution_time); while another request holds it, the
 * add is retried mcring.sess_lock_retries times, waiting from
 * mcring.sess_lock_wait_min ms, doubling up to mcring.sess_lock_wait_max.
 * Close, destroy and the end of the request delete the lock.
 *
 * With mcring.alias_memcached (and ext/memcached not loaded) the handler
 * also answers to save_handler = memcached.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "php.h"
#include "ext/session/php_session.h"

#include <mcring.h>

#include "php_mcring.h"

#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

typedef struct sess_client {
  char* save_path;
  zend_long ring_owner; /* ring_owner_uid it was made with (-1: none) */
  mcr_client_t* client;
  struct sess_client* next;
} sess_client_t;

/* The session's handle for one request. */
typedef struct {
  mcr_client_t* client;
  zend_string* lock_key; /* set while this request holds the lock */
} sess_t;

static sess_client_t* sess_clients;

void mcphp_session_shutdown(void) {
  while (sess_clients) {
    sess_client_t* s = sess_clients;
    sess_clients = s->next;
    mcr_client_free(s->client);
    pefree(s->save_path, 1);
    pefree(s, 1);
  }
}

static mcr_client_t* client_for(const char* save_path) {
  zend_long owner = -1;
  const char* ini_owner = MCPHP_G(ring_owner);
  if (save_path[0] == '/' && ini_owner && *ini_owner &&
      mcphp_ring_owner_parse(ini_owner, &owner) < 0) {
    php_error_docref(NULL, E_WARNING,
                     "mcring.ring_owner: no user named '%s' (a user name or "
                     "uid)",
                     ini_owner);
    return NULL;
  }
  for (sess_client_t* s = sess_clients; s; s = s->next)
    if (strcmp(s->save_path, save_path) == 0 && s->ring_owner == owner)
      return s->client;
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  if (save_path[0] == '/')
    o.ring_dir = save_path;
  else
    o.servers = save_path;
  o.ring_owner_uid = owner;
  o.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  o.route_skip = strlen(MCPHP_G(sess_prefix));
  mcr_client_t* c;
  char err[512];
  if (mcr_client_new(&c, &o, err, sizeof err) < 0) {
    php_error_docref(NULL, E_WARNING, "failed to parse session.save_path: %s",
                     err);
    return NULL;
  }
  sess_client_t* s = pecalloc(1, sizeof(*s), 1);
  s->save_path = pestrdup(save_path, 1);
  s->ring_owner = owner;
  s->client = c;
  s->next = sess_clients;
  sess_clients = s;
  return c;
}

static time_t adjust_expiration(zend_long exp) {
  return exp <= REALTIME_MAXDELTA ? exp : time(NULL) + exp;
}

static time_t lock_expiration(void) {
  if (MCPHP_G(sess_lock_expire) > 0)
    return adjust_expiration(MCPHP_G(sess_lock_expire));
  zend_long met = zend_ini_long(ZEND_STRL("max_execution_time"), 0);
  return met > 0 ? adjust_expiration(met) : 0;
}

static zend_string* key_of(zend_string* id, const char* infix) {
  return zend_strpprintf(0, "%s%s%s", MCPHP_G(sess_prefix), infix,
                         ZSTR_VAL(id));
}

static int lock(sess_t* s, zend_string* id) {
  zend_string* k = key_of(id, "lock.");
  zend_long wait = MCPHP_G(sess_lock_wait_min);
  zend_long retries = MCPHP_G(sess_lock_retries);
  time_t exp = lock_expiration();
  for (;;) {
    int rc = mcr_client_add(s->client, ZSTR_VAL(k), ZSTR_LEN(k), "1", 1, 0, exp,
                            MCR_CALL_REPLY);
    if (rc == MCR_OK) {
      s->lock_key = k;
      return 1;
    }
    if (rc != MCR_NOT_STORED) {
      php_error_docref(NULL, E_WARNING, "Failed to write session lock: %s",
                       mcr_client_last_error(s->client));
      break;
    }
    if (retries-- <= 0)
      break;
    usleep((useconds_t)(wait * 1000));
    wait = MIN(MCPHP_G(sess_lock_wait_max), wait * 2);
  }
  zend_string_release(k);
  return 0;
}

static void unlock(sess_t* s) {
  if (!s->lock_key)
    return;
  mcr_client_delete(s->client, ZSTR_VAL(s->lock_key), ZSTR_LEN(s->lock_key),
                    MCR_CALL_REPLY);
  zend_string_release(s->lock_key);
  s->lock_key = NULL;
}

PS_OPEN_FUNC(mcring) {
  mcr_client_t* c = save_path && *save_path ? client_for(save_path) : NULL;
  if (!c) {
    if (!save_path || !*save_path) /* php-memcached's words */
      php_error_docref(NULL, E_WARNING, "failed to parse session.save_path");
    PS_SET_MOD_DATA(NULL);
    return FAILURE;
  }
  sess_t* s = ecalloc(1, sizeof(*s));
  s->client = c;
  PS_SET_MOD_DATA(s);
  return SUCCESS;
}

PS_CLOSE_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  unlock(s);
  efree(s);
  PS_SET_MOD_DATA(NULL);
  return SUCCESS;
}

PS_READ_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  if (MCPHP_G(sess_locking) && !s->lock_key && !lock(s, key)) {
    php_error_docref(NULL, E_WARNING, "Unable to clear session lock record");
    return FAILURE;
  }
  zend_string* k = key_of(key, "");
  mcr_item_t it;
  int rc = mcr_client_get(s->client, ZSTR_VAL(k), ZSTR_LEN(k), &it);
  zend_string_release(k);
  if (rc == MCR_OK) {
    *val = zend_string_init(it.value, it.value_len, 0);
    return SUCCESS;
  }
  if (rc == MCR_MISS) {
    *val = ZSTR_EMPTY_ALLOC();
    return SUCCESS;
  }
  php_error_docref(NULL, E_WARNING, "error getting session from memcached: %s",
                   mcr_client_last_error(s->client));
  return FAILURE;
}

PS_WRITE_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  zend_string* k = key_of(key, "");
  int rc = mcr_client_set(
      s->client, ZSTR_VAL(k), ZSTR_LEN(k), ZSTR_VAL(val), ZSTR_LEN(val), 0,
      maxlifetime > 0 ? adjust_expiration(maxlifetime) : 0, MCR_CALL_REPLY);
  zend_string_release(k);
  if (rc == MCR_OK)
    return SUCCESS;
  php_error_docref(NULL, E_WARNING, "error saving session to memcached: %s",
                   mcr_client_last_error(s->client));
  return FAILURE;
}

PS_DESTROY_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  zend_string* k = key_of(key, "");
  mcr_client_delete(s->client, ZSTR_VAL(k), ZSTR_LEN(k), MCR_CALL_REPLY);
  zend_string_release(k);
  unlock(s);
  return SUCCESS;
}

PS_GC_FUNC(mcring) {
  *nrdels = 0; /* memcached expires sessions itself */
  return SUCCESS;
}

/* A new id that no session has: reserved with add, as php-memcached
 * does, so two requests cannot be handed the same one. */
PS_CREATE_SID_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  for (int i = 0; i < 3; i++) {
    zend_string* sid = php_session_create_id(mod_data);
    if (!s)
      return sid;
    zend_string* k = key_of(sid, "");
    int rc = mcr_client_add(s->client, ZSTR_VAL(k), ZSTR_LEN(k), "", 0, 0,
                            lock_expiration(), MCR_CALL_REPLY);
    zend_string_release(k);
    if (rc == MCR_OK)
      return sid;
    zend_string_release(sid);
  }
  return NULL;
}

PS_VALIDATE_SID_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  zend_string* k = key_of(key, "");
  mcr_item_t it;
  int rc = mcr_client_get(s->client, ZSTR_VAL(k), ZSTR_LEN(k), &it);
  zend_string_release(k);
  return rc == MCR_OK ? SUCCESS : FAILURE;
}

PS_UPDATE_TIMESTAMP_FUNC(mcring) {
  sess_t* s = PS_GET_MOD_DATA();
  if (!s)
    return FAILURE;
  zend_string* k = key_of(key, "");
  int rc = mcr_client_touch(
      s->client, ZSTR_VAL(k), ZSTR_LEN(k),
      maxlifetime > 0 ? adjust_expiration(maxlifetime) : 0, MCR_CALL_REPLY);
  zend_string_release(k);
  return rc == MCR_OK ? SUCCESS : FAILURE;
}

static const ps_module ps_mod_mcring = {PS_MOD_UPDATE_TIMESTAMP(mcring)};
static ps_module ps_mod_memcached;

void mcphp_session_register(int as_memcached) {
  php_session_register_module(&ps_mod_mcring);
  if (as_memcached) { /* the same handler as save_handler = memcached */
    ps_mod_memcached = ps_mod_mcring;
    ps_mod_memcached.s_name = "memcached";
    php_session_register_module(&ps_mod_memcached);
  }
}
