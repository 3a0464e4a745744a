/* mcring_php.c — class Mcring\Memcached: php-memcached 3.2.0's API on
 * libmcring, so that a PHP site switches clients by changing one line.
 *
 * The object keeps what php-memcached keeps on its memcached_st: a server
 * list (or an agent's ring directory) and the options. The mcr_client_t is
 * built from them on first use and rebuilt after a change that affects
 * it, so addServer / setOption never touch the network. A persistent_id
 * names a state that lives in this process until it exits: in an FPM
 * worker it serves every request, and adding the servers it already has
 * is a no-op, so the common "addServer on every request" pattern keeps one
 * connection per node instead of piling them up. Nothing is created at
 * module start-up (it runs in the FPM master, before the fork).
 *
 * Every method sets the result code the way php-memcached does:
 * libmcring's outcomes and errors map through one table (result_of) onto
 * php-memcached's RES_* numbers and libmemcached's messages. Values are
 * coded by mcring_value.c in php-memcached's format. What libmcring cannot
 * do (server keys distinct from keys, delayed fetches, SASL, buckets)
 * returns false with RES_NOT_SUPPORTED.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <ctype.h>
#include <dlfcn.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "php.h"
#include "php_ini.h"
#include "ext/standard/info.h"
#include "zend_exceptions.h"
#include "zend_smart_str.h"
#include "ext/spl/spl_exceptions.h"

#include <mcring.h>

#include "php_mcring.h"

ZEND_DECLARE_MODULE_GLOBALS(mcring)

/* ------------------------------------------------------------------ */
/* php-memcached's numbers                                             */

#define RES_SUCCESS 0
#define RES_FAILURE 1
#define RES_HOST_LOOKUP_FAILURE 2
#define RES_CONNECTION_FAILURE 3
#define RES_PROTOCOL_ERROR 8
#define RES_CLIENT_ERROR 9
#define RES_SERVER_ERROR 10
#define RES_DATA_EXISTS 12
#define RES_NOTSTORED 14
#define RES_NOTFOUND 16
#define RES_MEMORY_ALLOCATION_FAILURE 17
#define RES_SOME_ERRORS 19
#define RES_NO_SERVERS 20
#define RES_ERRNO 26
#define RES_NOT_SUPPORTED 28
#define RES_TIMEOUT 31
#define RES_BAD_KEY_PROVIDED 33
#define RES_E2BIG 37
#define RES_INVALID_ARGUMENTS 38
#define RES_SERVER_TEMPORARILY_DISABLED 47
#define RES_SERVER_MEMORY_ALLOCATION_FAILURE 48
#define RES_PAYLOAD_FAILURE (-1001)

/* Options: libmemcached behaviours (0..39) and php-memcached's own. */
#define OPT_NO_BLOCK 0
#define OPT_TCP_NODELAY 1
#define OPT_HASH 2
#define OPT_POLL_TIMEOUT 8
#define OPT_DISTRIBUTION 9
#define OPT_CONNECT_TIMEOUT 14
#define OPT_RETRY_TIMEOUT 15
#define OPT_LIBKETAMA_COMPATIBLE 16
#define OPT_LIBKETAMA_HASH 17
#define OPT_BINARY_PROTOCOL 18
#define OPT_SEND_TIMEOUT 19
#define OPT_RECV_TIMEOUT 20
#define OPT_SERVER_FAILURE_LIMIT 21
#define OPT_HASH_WITH_PREFIX_KEY 25
#define OPT_NOREPLY 26
#define OPT_USE_UDP 27
#define OPT_AUTO_EJECT_HOSTS 28
#define OPT_NUMBER_OF_REPLICAS 29
#define OPT_TCP_KEEPALIVE 32
#define OPT_REMOVE_FAILED_SERVERS 35
#define OPT_DEAD_TIMEOUT 36
#define NBEHAVIOR 40
#define OPT_COMPRESSION (-1001)
#define OPT_PREFIX_KEY (-1002)
#define OPT_SERIALIZER (-1003)
#define OPT_COMPRESSION_TYPE (-1004)
#define OPT_STORE_RETRY_COUNT (-1005)
#define OPT_USER_FLAGS (-1006)
/* mcring's own, outside both ranges. */
#define OPT_MCRING_RING_DIR (-2001)
#define OPT_MCRING_DISTRIBUTION (-2002)
/* The AWS ElastiCache Cluster Client's dynamic mode. Its numbers collide
 * with php-memcached's, so mcring gives the option a value of its own; the
 * two modes keep the AWS client's values. */
#define OPT_CLIENT_MODE (-2003)
/* TLS to every node (docs/tls.md): on/off, then the files and names of
 * mcr_tls_opts_t. php-memcached has no TLS: these are mcring's. */
#define OPT_MCRING_TLS (-2004)
#define OPT_MCRING_TLS_CA_FILE (-2005)
#define OPT_MCRING_TLS_CERT_FILE (-2006)
#define OPT_MCRING_TLS_KEY_FILE (-2007)
#define OPT_MCRING_TLS_SERVER_NAME (-2008)
#define OPT_MCRING_TLS_INSECURE (-2009)
/* The agent's user, whom the ring's files must belong to (a uid or a user
 * name): mcr_client_opts_t.ring_owner_uid. */
#define OPT_MCRING_RING_OWNER (-2010)
#define STATIC_CLIENT_MODE 0
#define DYNAMIC_CLIENT_MODE 1

#define DISTRIBUTION_MODULA 0
#define DISTRIBUTION_CONSISTENT 1
#define DISTRIBUTION_KETAMA 2
#define DISTRIBUTION_KETAMA_WEIGHTED 5
#define DISTRIBUTION_VIRTUAL_BUCKET 6
#define HASH_MD5 1
#define GET_PRESERVE_ORDER 1
#define GET_EXTENDED 2

#define KEY_MAX 250
#define PREFIX_MAX 128

/* ------------------------------------------------------------------ */
/* State: servers, options and the client built from them              */

typedef struct {
  char* host;
  zend_long port;
  zend_long weight;
} server_t;

typedef struct state {
  server_t* servers;
  size_t nservers;
  char* ring_dir;         /* OPT_MCRING_RING_DIR, or NULL */
  zend_long ring_owner;   /* OPT_MCRING_RING_OWNER's uid; -1: the ini's */
  char* mcr_distribution; /* OPT_MCRING_DISTRIBUTION name, or NULL */
  bool tls, tls_insecure; /* OPT_MCRING_TLS, OPT_MCRING_TLS_INSECURE */
  /* OPT_MCRING_TLS was set, to either value. The other TLS options are
   * passed on only when it is on or was never set: a CA or name without
   * the switch is refused by libmcring (nothing would be encrypted), while
   * switching TLS off explicitly leaves them set but unused. */
  bool tls_chosen;
  /* OPT_MCRING_TLS_CA_FILE, _CERT_FILE, _KEY_FILE, _SERVER_NAME: NULL
   * when unset. */
  char* tls_str[4];
  mcr_client_t* client; /* NULL until needed; freed on a change */
  mcphp_coding_t coding;
  char* prefix;
  size_t prefix_len;
  zend_long store_retry_count;
  zend_long client_mode; /* STATIC_CLIENT_MODE or DYNAMIC_CLIENT_MODE */
  zend_long behavior[NBEHAVIOR];
  char* persistent_id; /* NULL for a per-object state */
  struct state* next;  /* the list of persistent states */
} state_t;

/* Persistent states of this process: few, looked up by id. */
static state_t* persistent_states;

static state_t* state_new(void) {
  state_t* st = pecalloc(1, sizeof(*st), 1);
  st->coding.serializer = mcphp_serializer_parse(MCPHP_G(serializer));
  if (!st->coding.serializer ||
      !mcphp_serializer_available(st->coding.serializer))
    st->coding.serializer = MCPHP_SER_PHP;
  st->coding.compression = 1;
  st->coding.compression_type =
      MCPHP_G(compression_type) &&
              strcmp(MCPHP_G(compression_type), "zlib") == 0
          ? MCPHP_COMP_ZLIB
          : MCPHP_COMP_FASTLZ;
  st->coding.user_flags = -1;
  st->ring_owner = -1;
  st->behavior[OPT_DISTRIBUTION] = DISTRIBUTION_KETAMA_WEIGHTED;
  st->behavior[OPT_LIBKETAMA_COMPATIBLE] = 1;
  st->behavior[OPT_HASH] = HASH_MD5;
  st->behavior[OPT_LIBKETAMA_HASH] = HASH_MD5;
  st->behavior[OPT_CONNECT_TIMEOUT] = 1000;
  st->behavior[OPT_POLL_TIMEOUT] = 1000;
  st->behavior[OPT_RETRY_TIMEOUT] = 2;
  st->behavior[OPT_SERVER_FAILURE_LIMIT] = 2;
  return st;
}

static void state_drop_client(state_t* st) {
  mcr_client_free(st->client);
  st->client = NULL;
}

static void state_clear_servers(state_t* st) {
  for (size_t i = 0; i < st->nservers; i++)
    pefree(st->servers[i].host, 1);
  pefree(st->servers, 1);
  st->servers = NULL;
  st->nservers = 0;
  state_drop_client(st);
}

static void state_free(state_t* st) {
  state_clear_servers(st);
  if (st->ring_dir)
    pefree(st->ring_dir, 1);
  if (st->mcr_distribution)
    pefree(st->mcr_distribution, 1);
  for (size_t i = 0; i < 4; i++)
    if (st->tls_str[i])
      pefree(st->tls_str[i], 1);
  if (st->prefix)
    pefree(st->prefix, 1);
  if (st->persistent_id)
    pefree(st->persistent_id, 1);
  pefree(st, 1);
}

/* ------------------------------------------------------------------ */
/* The object                                                          */

typedef struct {
  state_t* st;
  zend_bool persistent;
  zend_bool pristine;
  zend_long rescode;
  char errmsg[512]; /* libmcring's text of the last error, or "" */
  zval delayed;     /* getDelayed's results not fetched yet, or UNDEF */
  /* While a *ByKey method runs: the server key its keys are placed by, as
   * hashed (with the prefix under OPT_HASH_WITH_PREFIX_KEY), else NULL. */
  zend_string* pin;
  zend_object std;
} mcobj_t;

static zend_class_entry* mcring_ce;
static zend_class_entry* mcring_exception_ce;
static zend_object_handlers mcring_handlers;

static inline mcobj_t* obj_of(zend_object* o) {
  return (mcobj_t*)((char*)o - XtOffsetOf(mcobj_t, std));
}

/* The object of a method. A subclass whose constructor does not call
 * parent::__construct() has no state: an Error, as in php-memcached. */
static mcobj_t* this_obj(zval* this_ptr) {
  mcobj_t* o = obj_of(Z_OBJ_P(this_ptr));
  if (!o->st) {
    zend_throw_error(NULL, "Memcached constructor was not called");
    return NULL;
  }
  return o;
}
#define THIS_OBJ()                      \
  ({                                    \
    mcobj_t* o__ = this_obj(ZEND_THIS); \
    if (!o__)                           \
      RETURN_THROWS();                  \
    o__;                                \
  })

static zend_object* obj_create(zend_class_entry* ce) {
  mcobj_t* o = zend_object_alloc(sizeof(mcobj_t), ce);
  zend_object_std_init(&o->std, ce);
  object_properties_init(&o->std, ce);
  o->std.handlers = &mcring_handlers;
  return &o->std;
}

static void obj_free(zend_object* zo) {
  mcobj_t* o = obj_of(zo);
  if (o->st && !o->persistent)
    state_free(o->st);
  o->st = NULL;
  zval_ptr_dtor(&o->delayed);
  ZVAL_UNDEF(&o->delayed);
  zend_object_std_dtor(zo);
}

/* ------------------------------------------------------------------ */
/* Result codes                                                        */

static const struct {
  zend_long code;
  const char* text;
} messages[] = {
    {RES_SUCCESS, "SUCCESS"},
    {RES_FAILURE, "FAILURE"},
    {RES_HOST_LOOKUP_FAILURE,
     "getaddrinfo() or getnameinfo() HOSTNAME LOOKUP FAILURE"},
    {RES_CONNECTION_FAILURE, "CONNECTION FAILURE"},
    {RES_PROTOCOL_ERROR, "PROTOCOL ERROR"},
    {RES_CLIENT_ERROR, "CLIENT ERROR"},
    {RES_SERVER_ERROR, "SERVER ERROR"},
    {RES_DATA_EXISTS, "CONNECTION DATA EXISTS"},
    {RES_NOTSTORED, "NOT STORED"},
    {RES_NOTFOUND, "NOT FOUND"},
    {RES_MEMORY_ALLOCATION_FAILURE, "MEMORY ALLOCATION FAILURE"},
    {RES_SOME_ERRORS, "SOME ERRORS WERE REPORTED"},
    {RES_NO_SERVERS, "NO SERVERS DEFINED"},
    {RES_ERRNO, "SYSTEM ERROR"},
    {RES_NOT_SUPPORTED, "ACTION NOT SUPPORTED"},
    {RES_TIMEOUT, "A TIMEOUT OCCURRED"},
    {RES_BAD_KEY_PROVIDED, "A BAD KEY WAS PROVIDED/CHARACTERS OUT OF RANGE"},
    {RES_E2BIG, "ITEM TOO BIG"},
    {RES_INVALID_ARGUMENTS, "INVALID ARGUMENTS"},
    {RES_SERVER_TEMPORARILY_DISABLED,
     "SERVER HAS FAILED AND IS DISABLED UNTIL TIMED RETRY"},
    {RES_SERVER_MEMORY_ALLOCATION_FAILURE, "SERVER FAILED TO ALLOCATE OBJECT"},
    {RES_PAYLOAD_FAILURE, "PAYLOAD FAILURE"},
};

/* php-memcached's result code for a libmcring return value. `c` (may be
 * NULL) gives the server's message for SERVER_ERROR. */
static zend_long result_of(int rc, const mcr_client_t* c) {
  switch (rc) {
    case MCR_OK:
      return RES_SUCCESS;
    case MCR_MISS:
    case MCR_NOT_FOUND:
      return RES_NOTFOUND;
    case MCR_NOT_STORED:
      return RES_NOTSTORED;
    case MCR_EXISTS:
      return RES_DATA_EXISTS;
    case MCR_EKEY:
      return RES_BAD_KEY_PROVIDED;
    case MCR_ETOOBIG:
      return RES_E2BIG;
    case MCR_ERESOLVE:
      return RES_HOST_LOOKUP_FAILURE;
    case MCR_ECONNECT:
    case MCR_ECLOSED:
    case MCR_EIO:
    case MCR_ETLS:
    case MCR_ETLSVERIFY:
      return RES_CONNECTION_FAILURE;
    case MCR_ECONNTIMEOUT:
    case MCR_ETIMEOUT:
      return RES_TIMEOUT;
    case MCR_EPROTO:
    case MCR_ESERVERCMD:
      return RES_PROTOCOL_ERROR;
    case MCR_ECLIENTERR:
      return RES_CLIENT_ERROR;
    case MCR_ESERVERERR: {
      const char* m = c ? mcr_client_last_error(c) : "";
      if (strstr(m, "too large"))
        return RES_E2BIG;
      if (strstr(m, "out of memory"))
        return RES_SERVER_MEMORY_ALLOCATION_FAILURE;
      return RES_SERVER_ERROR;
    }
    case MCR_ENOSERVERS:
      return RES_NO_SERVERS;
    case MCR_ENODEDOWN:
      return RES_SERVER_TEMPORARILY_DISABLED;
    case MCR_ENOTSUP:
      return RES_NOT_SUPPORTED;
    case MCR_EINVAL:
    case MCR_ERANGE:
      return RES_INVALID_ARGUMENTS;
    case MCR_ENOMEM:
      return RES_MEMORY_ALLOCATION_FAILURE;
    case MCR_ESERDE:
    case MCR_ECOMPRESS:
      return RES_PAYLOAD_FAILURE;
    case MCR_ESYS:
      return RES_ERRNO;
  }
  return RES_FAILURE;
}

static void set_code(mcobj_t* o, zend_long code) {
  o->rescode = code;
  o->errmsg[0] = '\0';
}

/* Sets the result code of libmcring's `rc`; returns 1 when it is a
 * success (MCR_OK). */
static int set_rc(mcobj_t* o, int rc) {
  o->rescode = result_of(rc, o->st->client);
  if (rc < 0 && o->st->client)
    snprintf(o->errmsg, sizeof o->errmsg, "%s",
             mcr_client_last_error(o->st->client));
  else
    o->errmsg[0] = '\0';
  return rc == MCR_OK;
}

static int not_supported(mcobj_t* o) {
  set_code(o, RES_NOT_SUPPORTED);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Building the client                                                 */

static void append_server(smart_str* s, const server_t* sv) {
  if (s->s && ZSTR_LEN(s->s))
    smart_str_appendc(s, ',');
  if (sv->host[0] == '/') {
    smart_str_appends(s, sv->host);
    return;
  }
  int v6 = strchr(sv->host, ':') != NULL;
  if (v6)
    smart_str_appendc(s, '[');
  smart_str_appends(s, sv->host);
  if (v6)
    smart_str_appendc(s, ']');
  smart_str_appendc(s, ':');
  smart_str_append_long(s, sv->port);
  if (sv->weight > 0) {
    smart_str_appendc(s, ':');
    smart_str_append_long(s, sv->weight);
  }
}

int mcphp_ring_owner_parse(const char* s, zend_long* uid) {
  if (!*s)
    return -1;
  struct passwd pw, *res = NULL;
  char buf[16384];
  if (getpwnam_r(s, &pw, buf, sizeof buf, &res) == 0 && res) {
    *uid = (zend_long)res->pw_uid;
    return 0;
  }
  zend_long v = 0;
  for (const char* p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (*p - '0');
    if (v > MCPHP_UID_MAX)
      return -1;
  }
  *uid = v;
  return 0;
}

/* The client, built now if needed; NULL with the result code set when
 * there is nothing to build from or the build failed. */
static mcr_client_t* client_of(mcobj_t* o) {
  state_t* st = o->st;
  if (st->client)
    return st->client;
  const char* ring_dir = st->ring_dir;
  const char* ini_dir =
      MCPHP_G(ring_dir) && *MCPHP_G(ring_dir) ? MCPHP_G(ring_dir) : NULL;
  if (!ring_dir && (!st->nservers || st->client_mode == DYNAMIC_CLIENT_MODE))
    ring_dir = ini_dir;
  if (!ring_dir && st->client_mode == DYNAMIC_CLIENT_MODE) {
    /* The configuration endpoint is the agent's to poll: the workers
     * route by the ring it publishes. */
    set_code(o, RES_NO_SERVERS);
    snprintf(o->errmsg, sizeof o->errmsg,
             "dynamic client mode needs the ring directory of an "
             "mcring-agent following the configuration endpoint "
             "(mcring.ring_dir or OPT_MCRING_RING_DIR)");
    return NULL;
  }
  if (!ring_dir && !st->nservers) {
    set_code(o, RES_NO_SERVERS);
    return NULL;
  }
  mcr_client_opts_t opts;
  mcr_client_opts_init(&opts);
  smart_str list = {0};
  if (ring_dir) {
    opts.ring_dir = ring_dir;
    /* Whose files the ring must be: the object's option, else the ini's
     * (a name is looked up now), else the directory's owner. */
    opts.ring_owner_uid = st->ring_owner;
    const char* ini_owner = MCPHP_G(ring_owner);
    if (opts.ring_owner_uid < 0 && ini_owner && *ini_owner &&
        mcphp_ring_owner_parse(ini_owner, &opts.ring_owner_uid) < 0) {
      set_code(o, RES_INVALID_ARGUMENTS);
      snprintf(o->errmsg, sizeof o->errmsg,
               "mcring.ring_owner: no user named '%s' (a user name or uid)",
               ini_owner);
      return NULL;
    }
  } else {
    for (size_t i = 0; i < st->nservers; i++)
      append_server(&list, &st->servers[i]);
    smart_str_0(&list);
    opts.servers = ZSTR_VAL(list.s);
  }
  opts.distribution = MCR_DIST_KETAMA_LIBMEMCACHED;
  if (st->mcr_distribution)
    mcr_distribution_parse(st->mcr_distribution, &opts.distribution);
  zend_long* b = st->behavior;
  opts.connect_timeout_ms = (int)b[OPT_CONNECT_TIMEOUT];
  zend_long io_us = MAX(b[OPT_SEND_TIMEOUT], b[OPT_RECV_TIMEOUT]);
  opts.io_timeout_ms =
      io_us > 0 ? (int)((io_us + 999) / 1000) : (int)b[OPT_POLL_TIMEOUT];
  if (opts.connect_timeout_ms <= 0)
    opts.connect_timeout_ms = 1000;
  if (opts.io_timeout_ms <= 0)
    opts.io_timeout_ms = 1000;
  opts.tcp_keepalive = b[OPT_TCP_KEEPALIVE] != 0;
  opts.noreply = b[OPT_NOREPLY] != 0;
  opts.failure_limit = (int)b[OPT_SERVER_FAILURE_LIMIT];
  opts.retry_timeout_ms = (int)(b[OPT_RETRY_TIMEOUT] * 1000);
  if (opts.retry_timeout_ms <= 0)
    opts.retry_timeout_ms = 1;
  opts.eject = b[OPT_AUTO_EJECT_HOSTS] || b[OPT_REMOVE_FAILED_SERVERS];
  opts.route_skip = b[OPT_HASH_WITH_PREFIX_KEY] ? 0 : st->prefix_len;
  opts.tls.enable = st->tls;
  if (st->tls || !st->tls_chosen) {
    opts.tls.insecure = st->tls_insecure;
    opts.tls.ca_file = st->tls_str[0];
    opts.tls.cert_file = st->tls_str[1];
    opts.tls.key_file = st->tls_str[2];
    opts.tls.server_name = st->tls_str[3];
  }
  char err[512] = ""; /* as libmcring's: a ring dir's refusal is long */
  int rc = mcr_client_new(&st->client, &opts, err, sizeof err);
  smart_str_free(&list);
  if (rc < 0) {
    st->client = NULL;
    o->rescode = result_of(rc, NULL);
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err);
    return NULL;
  }
  return st->client;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* The key as sent (prefix + key) in buf[KEY_MAX + PREFIX_MAX + 1];
 * returns its length, or 0 with RES_BAD_KEY_PROVIDED set. */
static size_t full_key(mcobj_t* o, const char* key, size_t len, char* buf) {
  state_t* st = o->st;
  if (len == 0 || len > KEY_MAX) {
    set_code(o, RES_BAD_KEY_PROVIDED);
    return 0;
  }
  if (st->prefix_len)
    memcpy(buf, st->prefix, st->prefix_len);
  memcpy(buf + st->prefix_len, key, len);
  size_t n = st->prefix_len + len;
  if (n > KEY_MAX || mcr_key_check(buf, n) < 0) {
    set_code(o, RES_BAD_KEY_PROVIDED);
    return 0;
  }
  /* php-memcached refuses bytes above 0x7f in ASCII mode (and so keys
   * that worked there work here); with OPT_BINARY_PROTOCOL it takes them,
   * and so does memcached's text protocol. */
  if (!st->behavior[OPT_BINARY_PROTOCOL])
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)key[i] > 0x7f) {
        set_code(o, RES_BAD_KEY_PROVIDED);
        return 0;
      }
  return n;
}
#define KEYBUF_SIZE (KEY_MAX + PREFIX_MAX + 1)

/* ------------------------------------------------------------------ */
/* Methods                                                             */

static void invoke_instance_cb(zval* self, zend_fcall_info* fci,
                               zend_fcall_info_cache* fcc, zend_string* id) {
  zval params[2], ret;
  ZVAL_COPY(&params[0], self);
  if (id)
    ZVAL_STR_COPY(&params[1], id);
  else
    ZVAL_NULL(&params[1]);
  fci->retval = &ret;
  fci->params = params;
  fci->param_count = 2;
  if (zend_call_function(fci, fcc) == SUCCESS)
    zval_ptr_dtor(&ret);
  zval_ptr_dtor(&params[0]);
  zval_ptr_dtor(&params[1]);
}

/* "--SERVER=host:port[/?weight]" entries of a libmemcached configuration
 * string; other settings are ignored with a notice. */
static void parse_connection_str(state_t* st, zend_string* s);

static int add_server(state_t* st, const char* host, zend_long port,
                      zend_long weight) {
  if (host[0] == '/')
    port = 0;
  for (size_t i = 0; i < st->nservers; i++)
    if (strcmp(st->servers[i].host, host) == 0 && st->servers[i].port == port &&
        st->servers[i].weight == weight)
      return 1; /* already there: nothing changes */
  st->servers =
      perealloc(st->servers, (st->nservers + 1) * sizeof(server_t), 1);
  st->servers[st->nservers++] =
      (server_t){.host = pestrdup(host, 1), .port = port, .weight = weight};
  state_drop_client(st);
  return 1;
}

static void parse_connection_str(state_t* st, zend_string* s) {
  char* copy = estrndup(ZSTR_VAL(s), ZSTR_LEN(s));
  char* save = NULL;
  for (char* tok = strtok_r(copy, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save)) {
    if (strncasecmp(tok, "--SERVER=", 9) != 0) {
      php_error_docref(NULL, E_NOTICE, "ignored configuration setting %s", tok);
      continue;
    }
    char* h = tok + 9;
    zend_long weight = 0;
    char* q = strstr(h, "/?");
    if (q) {
      weight = ZEND_STRTOL(q + 2, NULL, 10);
      *q = '\0';
    }
    char* colon = strrchr(h, ':');
    zend_long port = 11211;
    if (colon && h[0] != '/') {
      port = ZEND_STRTOL(colon + 1, NULL, 10);
      *colon = '\0';
    }
    add_server(st, h, port, weight);
  }
  efree(copy);
}

PHP_METHOD(Memcached, __construct) {
  zend_string* pid = NULL;
  zend_string* conn = NULL;
  zend_fcall_info fci = empty_fcall_info;
  zend_fcall_info_cache fcc = empty_fcall_info_cache;
  ZEND_PARSE_PARAMETERS_START(0, 3)
  Z_PARAM_OPTIONAL
  Z_PARAM_STR_OR_NULL(pid)
  Z_PARAM_FUNC_OR_NULL(fci, fcc)
  Z_PARAM_STR_OR_NULL(conn)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = obj_of(Z_OBJ_P(ZEND_THIS));
  if (o->st) { /* __construct called twice */
    if (!o->persistent)
      state_free(o->st);
    o->st = NULL;
  }
  int fresh = 1;
  if (pid && ZSTR_LEN(pid)) {
    state_t* st = persistent_states;
    while (st && strcmp(st->persistent_id, ZSTR_VAL(pid)) != 0)
      st = st->next;
    if (st) {
      fresh = 0;
    } else {
      st = state_new();
      st->persistent_id = pestrdup(ZSTR_VAL(pid), 1);
      st->next = persistent_states;
      persistent_states = st;
    }
    o->st = st;
    o->persistent = 1;
  } else {
    o->st = state_new();
  }
  o->pristine = fresh;
  set_code(o, RES_SUCCESS);
  if (fresh && conn && ZSTR_LEN(conn))
    parse_connection_str(o->st, conn);
  if (fresh && ZEND_FCI_INITIALIZED(fci)) {
    invoke_instance_cb(ZEND_THIS, &fci, &fcc, pid);
    if (EG(exception) && o->persistent) {
      /* A failed initialisation is not kept for the next request. */
      state_t** pp = &persistent_states;
      while (*pp != o->st)
        pp = &(*pp)->next;
      *pp = o->st->next;
      state_free(o->st);
      o->st = NULL;
    }
  }
}

PHP_METHOD(Memcached, getResultCode) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_LONG(THIS_OBJ()->rescode);
}

static const char* message_of(zend_long code) {
  for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++)
    if (messages[i].code == code)
      return messages[i].text;
  return "UNKNOWN ERROR";
}

PHP_METHOD(Memcached, getResultMessage) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_STRING(message_of(THIS_OBJ()->rescode));
}

PHP_METHOD(Memcached, getLastErrorMessage) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  RETURN_STRING(o->errmsg[0] ? o->errmsg
                             : (o->rescode ? message_of(o->rescode) : ""));
}

PHP_METHOD(Memcached, getLastErrorCode) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_LONG(THIS_OBJ()->rescode);
}

PHP_METHOD(Memcached, getLastErrorErrno) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_LONG(0);
}

/* Decodes an item into rv; on failure sets RES_PAYLOAD_FAILURE. */
static int decode_item(mcobj_t* o, const mcr_item_t* it, zval* rv) {
  if (!mcphp_value_decode(&o->st->coding, it->value, it->value_len, it->flags,
                          rv)) {
    set_code(o, RES_PAYLOAD_FAILURE);
    return 0;
  }
  return 1;
}

static void cas_zval(uint64_t cas, zval* zv) {
  if (cas <= ZEND_LONG_MAX)
    ZVAL_LONG(zv, (zend_long)cas);
  else
    ZVAL_STR(zv, zend_strpprintf(0, "%" PRIu64, cas));
}

static void extended(zval* rv, zval* value, uint64_t cas, uint32_t flags) {
  zval c;
  array_init(rv);
  add_assoc_zval(rv, "value", value);
  cas_zval(cas, &c);
  add_assoc_zval(rv, "cas", &c);
  add_assoc_long(rv, "flags", (zend_long)(flags >> 16));
}

/* Stores one value (the write methods and the read-through callback). */
static int store(mcobj_t* o, char op, zend_string* key, zval* value,
                 zend_long exp, uint64_t cas);

/* The read-through cache callback of get(): returns 1 with rv set when
 * the callback produced a value (and it was stored). */
static int read_through(mcobj_t* o, zval* self, zend_fcall_info* fci,
                        zend_fcall_info_cache* fcc, zend_string* key, int ext,
                        zval* rv) {
  /* getByKey's callback, and the store of what it returns, place keys by
   * themselves, as php-memcached does (it stores without the server key). */
  zend_string* pin = o->pin;
  if (pin && o->st->client)
    mcr_client_route_by(o->st->client, NULL, 0);
  o->pin = NULL;
  zval params[4], ret;
  ZVAL_COPY(&params[0], self);
  ZVAL_STR_COPY(&params[1], key);
  ZVAL_NEW_EMPTY_REF(&params[2]);
  ZVAL_NULL(Z_REFVAL(params[2]));
  ZVAL_NEW_EMPTY_REF(&params[3]);
  ZVAL_NULL(Z_REFVAL(params[3]));
  fci->retval = &ret;
  fci->params = params;
  fci->param_count = ext ? 3 : 4;
  int ok = 0;
  if (zend_call_function(fci, fcc) == SUCCESS && !EG(exception)) {
    if (zend_is_true(&ret)) {
      zval* val = Z_REFVAL(params[2]);
      if (ext) {
        zval* v = Z_TYPE_P(val) == IS_ARRAY
                      ? zend_hash_str_find(Z_ARRVAL_P(val), ZEND_STRL("value"))
                      : NULL;
        if (v) {
          zval* e = zend_hash_str_find(Z_ARRVAL_P(val), ZEND_STRL("cas"));
          ok = store(o, 's', key, v, e ? zval_get_long(e) : 0, 0);
          ZVAL_COPY(rv, val);
        }
      } else {
        ok = store(o, 's', key, val, zval_get_long(Z_REFVAL(params[3])), 0);
        ZVAL_COPY(rv, val);
      }
    }
    zval_ptr_dtor(&ret);
  }
  for (int i = 0; i < 4; i++)
    if (i < 3 || !ext)
      zval_ptr_dtor(&params[i]);
  if (!ok && !EG(exception) && o->rescode == RES_SUCCESS)
    set_code(o, RES_NOTFOUND);
  o->pin = pin;
  if (pin && o->st->client)
    mcr_client_route_by(o->st->client, ZSTR_VAL(pin), ZSTR_LEN(pin));
  return ok;
}

PHP_METHOD(Memcached, get) {
  zend_string* key;
  zend_long gflags = 0;
  zend_fcall_info fci = empty_fcall_info;
  zend_fcall_info_cache fcc = empty_fcall_info_cache;
  ZEND_PARSE_PARAMETERS_START(1, 3)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_FUNC_OR_NULL(fci, fcc)
  Z_PARAM_LONG(gflags)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  int ext = (gflags & GET_EXTENDED) != 0;
  mcr_item_t it;
  int rc =
      ext ? mcr_client_gets(c, kb, kl, &it) : mcr_client_get(c, kb, kl, &it);
  set_rc(o, rc);
  if (rc == MCR_OK) {
    zval v;
    if (!decode_item(o, &it, &v))
      RETURN_FALSE;
    if (ext)
      extended(return_value, &v, it.cas, it.flags);
    else
      RETVAL_COPY_VALUE(&v);
    return;
  }
  if (rc == MCR_MISS && ZEND_FCI_INITIALIZED(fci)) {
    if (read_through(o, ZEND_THIS, &fci, &fcc, key, ext, return_value))
      return;
  }
  RETURN_FALSE;
}

/* One lease option of getOrCompute's $options: *out unchanged when absent;
 * 0, or -1 (RES_INVALID_ARGUMENTS) outside [min, max]. */
static int lease_opt(mcobj_t* o, HashTable* opts, const char* name,
                     zend_long min, zend_long max, int64_t* out) {
  zval* zv = opts ? zend_hash_str_find(opts, name, strlen(name)) : NULL;
  if (!zv)
    return 0;
  zend_long v = zval_get_long(zv);
  if (Z_TYPE_P(zv) != IS_LONG || v < min || v > max) {
    set_code(o, RES_INVALID_ARGUMENTS);
    php_error_docref(NULL, E_WARNING,
                     "getOrCompute: option '%s' must be an integer in "
                     "%" ZEND_LONG_FMT "..%" ZEND_LONG_FMT,
                     name, min, max);
    return -1;
  }
  *out = v;
  return 0;
}

/* getOrCompute($key, callable $compute, $ttl = 0, $options = []): the
 * value of $key; on a miss one caller of the whole cluster runs
 * $compute($key), stores what it returns for $ttl seconds and returns
 * it, while the others wait for that value (memcached's meta leases,
 * docs/leases.md). Options: lease_ttl (30 s: how long a winner that dies
 * holds the key), recache (0: off; > 0 recomputes early, once, a value
 * with fewer seconds left), wait_ms (1000: how long the others wait; then
 * they run $compute themselves without storing), poll_ms (10). A value
 * marked stale (invalidate) is served to all but the one who recomputes
 * it. Returns false (with the result code) on a bad key or option or a
 * failed read, and the callback's value otherwise; the result code then
 * says what became of its store (SUCCESS, DATA_EXISTS when a newer value
 * won, NOTSTORED, or the error). An exception in $compute propagates and
 * leaves the key to the lease's end. */
PHP_METHOD(Memcached, getOrCompute) {
  zend_string* key;
  zend_fcall_info fci = empty_fcall_info;
  zend_fcall_info_cache fcc = empty_fcall_info_cache;
  zend_long ttl = 0;
  HashTable* opts = NULL;
  ZEND_PARSE_PARAMETERS_START(2, 4)
  Z_PARAM_STR(key)
  Z_PARAM_FUNC(fci, fcc)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(ttl)
  Z_PARAM_ARRAY_HT_OR_NULL(opts)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  int64_t wait = lo.wait_ms, poll = lo.poll_ms;
  if (lease_opt(o, opts, "lease_ttl", 1, INT32_MAX, &lo.lease_ttl) ||
      lease_opt(o, opts, "recache", 0, INT32_MAX, &lo.recache_ttl) ||
      lease_opt(o, opts, "wait_ms", 0, 3600000, &wait) ||
      lease_opt(o, opts, "poll_ms", 1, 60000, &poll))
    RETURN_FALSE;
  lo.wait_ms = (uint32_t)wait;
  lo.poll_ms = (uint32_t)poll;
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  mcr_lease_t l;
  int rc = mcr_client_lease_get(c, kb, kl, &lo, &l);
  set_rc(o, rc);
  if (rc < 0)
    RETURN_FALSE;
  if (l.state == MCR_LEASE_HIT || l.state == MCR_LEASE_STALE) {
    zval v;
    if (!mcphp_value_decode(&o->st->coding, l.value, l.value_len,
                            l.client_flags, &v)) {
      set_code(o, RES_PAYLOAD_FAILURE);
      RETURN_FALSE;
    }
    RETURN_COPY_VALUE(&v);
  }
  /* Won (compute and store) or busy (compute only). The lease's memory
   * is the client's: keep only the token, the callback may use $this. */
  int won = l.state == MCR_LEASE_WON;
  uint64_t token = l.cas;
  zval param, ret;
  ZVAL_UNDEF(&ret);
  ZVAL_STR_COPY(&param, key);
  fci.retval = &ret;
  fci.params = &param;
  fci.param_count = 1;
  int called = zend_call_function(&fci, &fcc) == SUCCESS && !EG(exception);
  zval_ptr_dtor(&param);
  if (!called) {
    if (Z_TYPE(ret) != IS_UNDEF)
      zval_ptr_dtor(&ret);
    RETURN_FALSE;
  }
  /* The callback may have rebuilt the client (setOption, addServer):
   * store through the one there is now. */
  if (won && !(c = client_of(o))) {
    won = 0;
  }
  if (won) {
    zend_string* payload;
    uint32_t flags;
    if (!mcphp_value_encode(&o->st->coding, &ret, &payload, &flags)) {
      set_code(o, RES_PAYLOAD_FAILURE);
    } else {
      /* An empty stored form would read as a key being computed: it is
       * returned, not stored (NOTSTORED). */
      mcr_lease_t fill = {.state = MCR_LEASE_WON, .cas = token};
      set_rc(o,
             ZSTR_LEN(payload) == 0
                 ? MCR_NOT_STORED
                 : mcr_client_lease_fill(c, kb, kl, ZSTR_VAL(payload),
                                         ZSTR_LEN(payload), flags, ttl, &fill));
      zend_string_release(payload);
    }
  } else if (c) {
    set_code(o, RES_SUCCESS);
  }
  RETURN_COPY_VALUE(&ret);
}

/* invalidate($key, $stale_ttl = 30): marks the value stale instead of
 * deleting it: the next getOrCompute recomputes it while every other
 * caller keeps getting the old value for $stale_ttl seconds. False (result
 * code NOTFOUND) when the key is absent. */
PHP_METHOD(Memcached, invalidate) {
  zend_string* key;
  zend_long stale = 30;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(stale)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  RETURN_BOOL(set_rc(o, mcr_client_lease_invalidate(c, kb, kl, stale)));
}

/* Collects the string keys of an array: keys[i] as given, full[i] as sent
 * (prefixed, in one emalloc'd block). Returns the count, or -1 with
 * RES_BAD_KEY_PROVIDED set. */
typedef struct {
  size_t n;
  zend_string** keys;
  char** full;
  size_t* full_len;
  char* block;
} keyset_t;

static void keyset_free(keyset_t* ks) {
  for (size_t i = 0; i < ks->n; i++)
    zend_string_release(ks->keys[i]);
  efree(ks->keys);
  efree(ks->full);
  efree(ks->full_len);
  efree(ks->block);
}

/* from_keys: the array's keys (setMulti) rather than its values. */
static int keyset_of(mcobj_t* o, HashTable* ht, int from_keys, keyset_t* ks) {
  size_t n = zend_hash_num_elements(ht);
  ks->n = 0;
  ks->keys = ecalloc(n ? n : 1, sizeof(zend_string*));
  ks->full = ecalloc(n ? n : 1, sizeof(char*));
  ks->full_len = ecalloc(n ? n : 1, sizeof(size_t));
  ks->block = emalloc((n ? n : 1) * KEYBUF_SIZE);
  zend_string* skey;
  zend_ulong ikey;
  zval* zv;
  ZEND_HASH_FOREACH_KEY_VAL(ht, ikey, skey, zv) {
    zend_string* k;
    if (from_keys)
      k = skey ? zend_string_copy(skey) : zend_long_to_str((zend_long)ikey);
    else
      k = zval_get_string(zv);
    char* buf = ks->block + ks->n * KEYBUF_SIZE;
    size_t kl = full_key(o, ZSTR_VAL(k), ZSTR_LEN(k), buf);
    ks->keys[ks->n] = k;
    ks->full[ks->n] = buf;
    ks->full_len[ks->n] = kl;
    ks->n++;
    if (!kl)
      return -1;
  }
  ZEND_HASH_FOREACH_END();
  return (int)ks->n;
}

PHP_METHOD(Memcached, getMulti) {
  HashTable* keys;
  zend_long gflags = 0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_ARRAY_HT(keys)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(gflags)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  array_init(return_value);
  if (zend_hash_num_elements(keys) == 0) {
    set_code(o, RES_NOTFOUND);
    return;
  }
  keyset_t ks;
  if (keyset_of(o, keys, 0, &ks) < 0) {
    keyset_free(&ks);
    zval_ptr_dtor(return_value);
    RETURN_FALSE;
  }
  mcr_client_t* c = client_of(o);
  if (!c) {
    keyset_free(&ks);
    zval_ptr_dtor(return_value);
    RETURN_FALSE;
  }
  int ext = (gflags & GET_EXTENDED) != 0;
  if (gflags & GET_PRESERVE_ORDER)
    for (size_t i = 0; i < ks.n; i++) {
      zval nul;
      ZVAL_NULL(&nul);
      zend_symtable_update(Z_ARRVAL_P(return_value), ks.keys[i], &nul);
    }
  mcr_item_t* items = ecalloc(ks.n, sizeof(mcr_item_t));
  size_t hits = 0;
  int rc = ext ? mcr_client_gets_multi(c, ks.n, (const char* const*)ks.full,
                                       ks.full_len, items, &hits)
               : mcr_client_get_multi(c, ks.n, (const char* const*)ks.full,
                                      ks.full_len, items, &hits);
  size_t errors = 0;
  int first_err = 0, payload_failed = 0;
  if (rc < 0) {
    set_rc(o, rc);
  } else {
    for (size_t i = 0; i < ks.n; i++) {
      if (items[i].status < 0) {
        if (!errors++)
          first_err = items[i].status;
        continue;
      }
      if (items[i].status != MCR_OK)
        continue;
      zval v, node;
      if (!mcphp_value_decode(&o->st->coding, items[i].value,
                              items[i].value_len, items[i].flags, &v)) {
        payload_failed = 1;
        continue;
      }
      if (ext) {
        extended(&node, &v, items[i].cas, items[i].flags);
        zend_symtable_update(Z_ARRVAL_P(return_value), ks.keys[i], &node);
      } else {
        zend_symtable_update(Z_ARRVAL_P(return_value), ks.keys[i], &v);
      }
    }
    if (errors == ks.n)
      set_rc(o, first_err);
    else if (errors)
      set_code(o, RES_SOME_ERRORS);
    else if (payload_failed)
      set_code(o, RES_PAYLOAD_FAILURE);
    else
      set_code(o, hits ? RES_SUCCESS : RES_NOTFOUND);
  }
  efree(items);
  keyset_free(&ks);
  if (rc < 0 || (errors && errors == ks.n)) {
    zval_ptr_dtor(return_value);
    RETURN_FALSE;
  }
}

static int store(mcobj_t* o, char op, zend_string* key, zval* value,
                 zend_long exp, uint64_t cas) {
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    return 0;
  mcr_client_t* c = client_of(o);
  if (!c)
    return 0;
  zend_string* payload;
  uint32_t flags;
  if (!mcphp_value_encode(&o->st->coding, value, &payload, &flags)) {
    set_code(o, RES_PAYLOAD_FAILURE);
    return 0;
  }
  const char* p = ZSTR_VAL(payload);
  size_t n = ZSTR_LEN(payload);
  int rc;
  zend_long retries = o->st->store_retry_count;
  for (;;) {
    switch (op) {
      case 'a':
        rc = mcr_client_add(c, kb, kl, p, n, flags, exp, 0);
        break;
      case 'r':
        rc = mcr_client_replace(c, kb, kl, p, n, flags, exp, 0);
        break;
      case 'c':
        rc = mcr_client_cas(c, kb, kl, p, n, flags, exp, cas, 0);
        break;
      default:
        rc = mcr_client_set(c, kb, kl, p, n, flags, exp, 0);
    }
    /* OPT_STORE_RETRY_COUNT: transport failures of set and replace only
     * (libmcring already retried a stale connection once). */
    if (rc >= 0 || retries-- <= 0 || (op != 's' && op != 'r') ||
        rc == MCR_EKEY || rc == MCR_ETOOBIG)
      break;
  }
  zend_string_release(payload);
  return set_rc(o, rc);
}

static void write_method(INTERNAL_FUNCTION_PARAMETERS, char op) {
  zend_string* key;
  zval* value;
  zend_long exp = 0;
  ZEND_PARSE_PARAMETERS_START(2, 3)
  Z_PARAM_STR(key)
  Z_PARAM_ZVAL(value)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(exp)
  ZEND_PARSE_PARAMETERS_END();
  RETURN_BOOL(store(THIS_OBJ(), op, key, value, exp, 0));
}

PHP_METHOD(Memcached, set) {
  write_method(INTERNAL_FUNCTION_PARAM_PASSTHRU, 's');
}
PHP_METHOD(Memcached, add) {
  write_method(INTERNAL_FUNCTION_PARAM_PASSTHRU, 'a');
}
PHP_METHOD(Memcached, replace) {
  write_method(INTERNAL_FUNCTION_PARAM_PASSTHRU, 'r');
}

PHP_METHOD(Memcached, cas) {
  zval* token;
  zend_string* key;
  zval* value;
  zend_long exp = 0;
  ZEND_PARSE_PARAMETERS_START(3, 4)
  Z_PARAM_ZVAL(token)
  Z_PARAM_STR(key)
  Z_PARAM_ZVAL(value)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(exp)
  ZEND_PARSE_PARAMETERS_END();
  uint64_t cas;
  if (Z_TYPE_P(token) == IS_LONG) {
    cas = (uint64_t)Z_LVAL_P(token);
  } else if (Z_TYPE_P(token) == IS_DOUBLE) {
    cas = (uint64_t)Z_DVAL_P(token);
  } else {
    zend_string* s = zval_get_string(token);
    cas = ZEND_STRTOUL(ZSTR_VAL(s), NULL, 10);
    zend_string_release(s);
  }
  RETURN_BOOL(store(THIS_OBJ(), 'c', key, value, exp, cas));
}

static void concat_method(INTERNAL_FUNCTION_PARAMETERS, int append) {
  zend_string* key;
  zend_string* value;
  ZEND_PARSE_PARAMETERS_START(2, 2)
  Z_PARAM_STR(key)
  Z_PARAM_STR(value)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  if (o->st->coding.compression) {
    php_error_docref(NULL, E_WARNING,
                     "cannot append/prepend with compression turned on");
    RETURN_NULL();
  }
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  int rc =
      append
          ? mcr_client_append(c, kb, kl, ZSTR_VAL(value), ZSTR_LEN(value), 0)
          : mcr_client_prepend(c, kb, kl, ZSTR_VAL(value), ZSTR_LEN(value), 0);
  RETURN_BOOL(set_rc(o, rc));
}

PHP_METHOD(Memcached, append) {
  concat_method(INTERNAL_FUNCTION_PARAM_PASSTHRU, 1);
}
PHP_METHOD(Memcached, prepend) {
  concat_method(INTERNAL_FUNCTION_PARAM_PASSTHRU, 0);
}

PHP_METHOD(Memcached, setMulti) {
  HashTable* items;
  zend_long exp = 0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_ARRAY_HT(items)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(exp)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  keyset_t ks;
  if (keyset_of(o, items, 1, &ks) < 0) {
    keyset_free(&ks);
    RETURN_FALSE;
  }
  mcr_client_t* c = client_of(o);
  if (!c || ks.n == 0) {
    keyset_free(&ks);
    RETURN_BOOL(c != NULL);
  }
  size_t n = ks.n;
  zend_string** payloads = ecalloc(n, sizeof(zend_string*));
  uint32_t* flags = ecalloc(n, sizeof(uint32_t));
  size_t i = 0;
  int ok = 1;
  zval* zv;
  ZEND_HASH_FOREACH_VAL(items, zv) {
    if (!mcphp_value_encode(&o->st->coding, zv, &payloads[i], &flags[i])) {
      ok = 0;
      break;
    }
    i++;
  }
  ZEND_HASH_FOREACH_END();
  if (!ok) {
    set_code(o, RES_PAYLOAD_FAILURE);
  } else {
    /* One set_multi per distinct flags value (libmcring stores a batch
     * with one flags word; a batch is usually all one type). */
    const char** bk = emalloc(n * sizeof(char*));
    size_t* bl = emalloc(n * sizeof(size_t));
    const void** bv = emalloc(n * sizeof(void*));
    size_t* bvl = emalloc(n * sizeof(size_t));
    int* st = emalloc(n * sizeof(int));
    char* done = ecalloc(n, 1);
    int last_fail = MCR_OK;
    for (size_t a = 0; a < n; a++) {
      if (done[a])
        continue;
      size_t m = 0;
      for (size_t b = a; b < n; b++) {
        if (done[b] || flags[b] != flags[a])
          continue;
        done[b] = 1;
        bk[m] = ks.full[b];
        bl[m] = ks.full_len[b];
        bv[m] = ZSTR_VAL(payloads[b]);
        bvl[m] = ZSTR_LEN(payloads[b]);
        m++;
      }
      int rc = mcr_client_set_multi(c, m, bk, bl, bv, bvl, flags[a], exp, st, 0,
                                    NULL);
      if (rc < 0) {
        last_fail = rc;
        continue;
      }
      for (size_t k = 0; k < m; k++)
        if (st[k] != MCR_OK)
          last_fail = st[k];
    }
    ok = set_rc(o, last_fail);
    efree(bk);
    efree(bl);
    efree(bv);
    efree(bvl);
    efree(st);
    efree(done);
  }
  for (size_t k = 0; k < n; k++)
    if (payloads[k])
      zend_string_release(payloads[k]);
  efree(payloads);
  efree(flags);
  keyset_free(&ks);
  RETURN_BOOL(ok);
}

PHP_METHOD(Memcached, delete) {
  zend_string* key;
  zend_long time = 0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(time)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  if (time != 0)
    RETURN_BOOL(not_supported(o));
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  RETURN_BOOL(set_rc(o, mcr_client_delete(c, kb, kl, 0)));
}

PHP_METHOD(Memcached, deleteMulti) {
  HashTable* keys;
  zend_long time = 0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_ARRAY_HT(keys)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(time)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  array_init(return_value);
  zval* zv;
  mcr_client_t* c = NULL;
  ZEND_HASH_FOREACH_VAL(keys, zv) {
    zend_string* k = zval_get_string(zv);
    if (ZSTR_LEN(k) == 0) {
      zend_string_release(k);
      continue;
    }
    zval r;
    char kb[KEYBUF_SIZE];
    size_t kl = full_key(o, ZSTR_VAL(k), ZSTR_LEN(k), kb);
    if (kl && time != 0)
      not_supported(o);
    else if (kl && (c || (c = client_of(o))))
      set_rc(o, mcr_client_delete(c, kb, kl, 0));
    if (o->rescode == RES_SUCCESS)
      ZVAL_TRUE(&r);
    else
      ZVAL_LONG(&r, o->rescode);
    zend_symtable_update(Z_ARRVAL_P(return_value), k, &r);
    zend_string_release(k);
  }
  ZEND_HASH_FOREACH_END();
}

PHP_METHOD(Memcached, touch) {
  zend_string* key;
  zend_long exp = 0;
  ZEND_PARSE_PARAMETERS_START(1, 2)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(exp)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  RETURN_BOOL(set_rc(o, mcr_client_touch(c, kb, kl, exp, 0)));
}

/* increment / decrement. With an initial value (a third argument) a
 * missing key is created with it, as php-memcached does over the binary
 * protocol: here one meta arithmetic command with N (vivify, the expiry)
 * and J (the initial value). */
static void incdec(INTERNAL_FUNCTION_PARAMETERS, int incr) {
  zend_string* key;
  zend_long offset = 1, initial = 0, expiry = 0;
  ZEND_PARSE_PARAMETERS_START(1, 4)
  Z_PARAM_STR(key)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(offset)
  Z_PARAM_LONG(initial)
  Z_PARAM_LONG(expiry)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  char kb[KEYBUF_SIZE];
  size_t kl = full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb);
  if (!kl)
    RETURN_FALSE;
  if (offset < 0) {
    php_error_docref(NULL, E_WARNING, "offset cannot be a negative value");
    RETURN_FALSE;
  }
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  uint64_t value = 0;
  int rc;
  if (ZEND_NUM_ARGS() < 3) {
    rc = incr ? mcr_client_incr(c, kb, kl, (uint64_t)offset, &value, 0)
              : mcr_client_decr(c, kb, kl, (uint64_t)offset, &value, 0);
  } else {
    mcr_meta_opts_t mo = {0};
    mcr_meta_result_t r;
    mo.flags = MCR_META_VALUE | MCR_META_VIVIFY | MCR_META_INITIAL |
               MCR_META_DELTA | MCR_META_MODE;
    mo.vivify_ttl = expiry;
    mo.initial = (uint64_t)initial;
    mo.delta = (uint64_t)offset;
    mo.mode = incr ? MCR_MA_INCR : MCR_MA_DECR;
    rc = mcr_client_ma(c, kb, kl, &mo, &r);
    if (rc == MCR_OK && (r.have & MCR_MR_VALUE))
      value = ZEND_STRTOUL(r.value, NULL, 10);
  }
  if (!set_rc(o, rc))
    RETURN_FALSE;
  RETURN_LONG((zend_long)value);
}

PHP_METHOD(Memcached, increment) {
  incdec(INTERNAL_FUNCTION_PARAM_PASSTHRU, 1);
}
PHP_METHOD(Memcached, decrement) {
  incdec(INTERNAL_FUNCTION_PARAM_PASSTHRU, 0);
}

/* ---- servers ---- */

PHP_METHOD(Memcached, addServer) {
  zend_string* host;
  zend_long port, weight = 0;
  ZEND_PARSE_PARAMETERS_START(2, 3)
  Z_PARAM_STR(host)
  Z_PARAM_LONG(port)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(weight)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  if (ZSTR_LEN(host) == 0 || port < 0 || port > 65535 || weight < 0) {
    set_code(o, RES_INVALID_ARGUMENTS);
    RETURN_FALSE;
  }
  RETURN_BOOL(add_server(o->st, ZSTR_VAL(host), port, weight));
}

PHP_METHOD(Memcached, addServers) {
  HashTable* list;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_ARRAY_HT(list)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  zval* entry;
  zend_ulong i = 0;
  ZEND_HASH_FOREACH_VAL(list, entry) {
    if (Z_TYPE_P(entry) != IS_ARRAY) {
      php_error_docref(NULL, E_WARNING, "server list entry #%d is not an array",
                       (int)i + 1);
      i++;
      continue;
    }
    /* host, port and weight are the entry's first three values, whatever
     * their keys (as php-memcached reads them). */
    zval *h = NULL, *p = NULL, *w = NULL, *v;
    int pos = 0;
    ZEND_HASH_FOREACH_VAL(Z_ARRVAL_P(entry), v) {
      if (pos == 0)
        h = v;
      else if (pos == 1)
        p = v;
      else if (pos == 2)
        w = v;
      pos++;
    }
    ZEND_HASH_FOREACH_END();
    if (!h || !p) {
      php_error_docref(NULL, E_WARNING,
                       "could not get server host or port for entry #%d",
                       (int)i + 1);
      i++;
      continue;
    }
    zend_string* hs = zval_get_string(h);
    add_server(o->st, ZSTR_VAL(hs), zval_get_long(p), w ? zval_get_long(w) : 0);
    zend_string_release(hs);
    i++;
  }
  ZEND_HASH_FOREACH_END();
  RETURN_TRUE;
}

static void server_entry(zval* arr, const char* host, zend_long port,
                         const char* type) {
  zval e;
  array_init(&e);
  add_assoc_string(&e, "host", (char*)host);
  add_assoc_long(&e, "port", port);
  add_assoc_string(&e, "type", (char*)type);
  add_next_index_zval(arr, &e);
}

PHP_METHOD(Memcached, getServerList) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  state_t* st = o->st;
  array_init(return_value);
  if (st->nservers && st->client_mode != DYNAMIC_CLIENT_MODE) {
    for (size_t i = 0; i < st->nservers; i++)
      server_entry(return_value, st->servers[i].host, st->servers[i].port,
                   st->servers[i].host[0] == '/' ? "SOCKET" : "TCP");
    return;
  }
  mcr_client_t* c = (st->ring_dir || st->client_mode == DYNAMIC_CLIENT_MODE ||
                     (MCPHP_G(ring_dir) && *MCPHP_G(ring_dir)))
                        ? client_of(o)
                        : NULL;
  const mcr_ring_t* ring = c ? mcr_client_ring(c) : NULL;
  for (size_t i = 0; ring && i < mcr_ring_node_count(ring); i++) {
    mcr_ring_node_t n;
    if (mcr_ring_node(ring, i, &n) == 0)
      server_entry(return_value, n.host, n.port, n.port ? "TCP" : "SOCKET");
  }
}

/* getDelayed: libmcring has no deferred fetch, so the keys are fetched
 * at once (one request per node, as getMulti) and their results kept on
 * the object for fetch / fetchAll, or handed to the callback. Results come
 * in the order of the keys; each is ['key', 'value'] plus 'cas' and
 * 'flags' when with_cas, as php-memcached builds them. */
PHP_METHOD(Memcached, getDelayed) {
  HashTable* keys;
  zend_bool with_cas = 0;
  zend_fcall_info fci = empty_fcall_info;
  zend_fcall_info_cache fcc = empty_fcall_info_cache;
  ZEND_PARSE_PARAMETERS_START(1, 3)
  Z_PARAM_ARRAY_HT(keys)
  Z_PARAM_OPTIONAL
  Z_PARAM_BOOL(with_cas)
  Z_PARAM_FUNC_OR_NULL(fci, fcc)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  zval_ptr_dtor(&o->delayed);
  ZVAL_UNDEF(&o->delayed);
  keyset_t ks;
  if (keyset_of(o, keys, 0, &ks) < 0) {
    keyset_free(&ks);
    RETURN_FALSE;
  }
  mcr_client_t* c = client_of(o);
  if (!c || ks.n == 0) {
    keyset_free(&ks);
    RETURN_BOOL(c != NULL);
  }
  mcr_item_t* items = ecalloc(ks.n, sizeof(mcr_item_t));
  int rc = with_cas
               ? mcr_client_gets_multi(c, ks.n, (const char* const*)ks.full,
                                       ks.full_len, items, NULL)
               : mcr_client_get_multi(c, ks.n, (const char* const*)ks.full,
                                      ks.full_len, items, NULL);
  if (rc < 0) {
    set_rc(o, rc);
    efree(items);
    keyset_free(&ks);
    RETURN_FALSE;
  }
  array_init(&o->delayed);
  size_t errors = 0;
  int first_err = 0;
  for (size_t i = 0; i < ks.n; i++) {
    if (items[i].status < 0 && !errors++)
      first_err = items[i].status;
    if (items[i].status != MCR_OK)
      continue;
    zval v, r;
    if (!mcphp_value_decode(&o->st->coding, items[i].value, items[i].value_len,
                            items[i].flags, &v))
      continue;
    array_init(&r);
    add_assoc_str(&r, "key", zend_string_copy(ks.keys[i]));
    add_assoc_zval(&r, "value", &v);
    if (with_cas && items[i].cas) {
      zval cz;
      cas_zval(items[i].cas, &cz);
      add_assoc_zval(&r, "cas", &cz);
      add_assoc_long(&r, "flags", (zend_long)(items[i].flags >> 16));
    }
    add_next_index_zval(&o->delayed, &r);
  }
  efree(items);
  keyset_free(&ks);
  if (errors && errors == ks.n)
    set_rc(o, first_err);
  else if (errors)
    set_code(o, RES_SOME_ERRORS);
  if (ZEND_FCI_INITIALIZED(fci)) {
    zval* r;
    ZEND_HASH_FOREACH_VAL(Z_ARRVAL(o->delayed), r) {
      zval params[2], ret;
      ZVAL_COPY(&params[0], ZEND_THIS);
      ZVAL_COPY(&params[1], r);
      fci.retval = &ret;
      fci.params = params;
      fci.param_count = 2;
      int ok = zend_call_function(&fci, &fcc) == SUCCESS;
      if (ok)
        zval_ptr_dtor(&ret);
      zval_ptr_dtor(&params[0]);
      zval_ptr_dtor(&params[1]);
      if (!ok || EG(exception))
        break;
    }
    ZEND_HASH_FOREACH_END();
    zval_ptr_dtor(&o->delayed);
    ZVAL_UNDEF(&o->delayed);
  }
  RETURN_BOOL(!(errors && errors == ks.n));
}

#define RES_END 21

PHP_METHOD(Memcached, fetch) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  if (Z_ISUNDEF(o->delayed) ||
      zend_hash_num_elements(Z_ARRVAL(o->delayed)) == 0) {
    set_code(o, RES_END);
    RETURN_FALSE;
  }
  HashTable* ht = Z_ARRVAL(o->delayed);
  HashPosition pos;
  zend_hash_internal_pointer_reset_ex(ht, &pos);
  zval* first = zend_hash_get_current_data_ex(ht, &pos);
  zend_ulong idx;
  zend_hash_get_current_key_ex(ht, NULL, &idx, &pos);
  RETVAL_COPY(first);
  zend_hash_index_del(ht, idx);
  set_code(o, RES_SUCCESS);
}

PHP_METHOD(Memcached, fetchAll) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  if (Z_ISUNDEF(o->delayed)) {
    array_init(return_value);
    return;
  }
  array_init(return_value);
  zval* r;
  ZEND_HASH_FOREACH_VAL(Z_ARRVAL(o->delayed), r) {
    Z_TRY_ADDREF_P(r);
    add_next_index_zval(return_value, r);
  }
  ZEND_HASH_FOREACH_END();
  zval_ptr_dtor(&o->delayed);
  ZVAL_UNDEF(&o->delayed);
}

PHP_METHOD(Memcached, getServerByKey) {
  zend_string* key;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(key)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  if (ZSTR_LEN(key) == 0 || ZSTR_LEN(key) > KEY_MAX ||
      mcr_key_check(ZSTR_VAL(key), ZSTR_LEN(key)) < 0) {
    set_code(o, RES_BAD_KEY_PROVIDED);
    RETURN_FALSE;
  }
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  /* The node of the key as php-memcached places it: by the key alone,
   * without the prefix (unless OPT_HASH_WITH_PREFIX_KEY). */
  char kb[KEYBUF_SIZE];
  const char* rk = ZSTR_VAL(key);
  size_t rl = ZSTR_LEN(key);
  if (o->st->behavior[OPT_HASH_WITH_PREFIX_KEY] && o->st->prefix_len) {
    memcpy(kb, o->st->prefix, o->st->prefix_len);
    memcpy(kb + o->st->prefix_len, rk, rl);
    rk = kb;
    rl += o->st->prefix_len;
  }
  /* "weight" is always 0, as php-memcached 3.2.0 reports it. */
  const mcr_ring_t* ring = mcr_client_ring(c);
  array_init(return_value);
  if (!ring) { /* one node: its "host:port" (or socket path) */
    const char* name = mcr_client_node_name(c, 0);
    const char* colon = name ? strrchr(name, ':') : NULL;
    if (!name)
      name = "";
    if (colon && name[0] != '/') {
      size_t hl = (size_t)(colon - name);
      if (hl >= 2 && name[0] == '[' && name[hl - 1] == ']') /* [v6] */
        add_assoc_stringl(return_value, "host", (char*)name + 1, hl - 2);
      else
        add_assoc_stringl(return_value, "host", (char*)name, hl);
      add_assoc_long(return_value, "port", ZEND_STRTOL(colon + 1, NULL, 10));
    } else {
      add_assoc_string(return_value, "host", (char*)name);
      add_assoc_long(return_value, "port", 0);
    }
    add_assoc_long(return_value, "weight", 0);
    return;
  }
  mcr_ring_node_t n;
  if (mcr_ring_node(ring, mcr_ring_locate(ring, rk, rl), &n) != 0) {
    /* A damaged entry of the agent's ring file: no name to give. */
    zval_ptr_dtor(return_value);
    set_code(o, RES_FAILURE);
    RETURN_FALSE;
  }
  add_assoc_string(return_value, "host", (char*)n.host);
  add_assoc_long(return_value, "port", n.port);
  add_assoc_long(return_value, "weight", 0);
}

PHP_METHOD(Memcached, resetServerList) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  state_clear_servers(o->st);
  set_code(o, RES_SUCCESS);
  RETURN_TRUE;
}

PHP_METHOD(Memcached, quit) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  if (o->st->client)
    mcr_client_quit(o->st->client);
  set_code(o, RES_SUCCESS);
  RETURN_TRUE;
}

PHP_METHOD(Memcached, flushBuffers) {
  ZEND_PARSE_PARAMETERS_NONE();
  set_code(THIS_OBJ(), RES_SUCCESS);
  RETURN_TRUE; /* noreply writes are sent at once: nothing is buffered */
}

/* ---- per-node commands ---- */

static zend_string* node_label(mcr_client_t* c, size_t i) {
  const char* name = mcr_client_node_name(c, i);
  return zend_string_init(name, strlen(name), 0);
}

PHP_METHOD(Memcached, getStats) {
  zend_string* type = NULL;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_STR_OR_NULL(type)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  array_init(return_value);
  int failed = 0, ok = 0, last = MCR_OK;
  for (size_t i = 0; i < mcr_client_node_count(c); i++) {
    const mcr_stat_t* stats;
    size_t n;
    int rc =
        mcr_client_stats_node(c, i, type ? ZSTR_VAL(type) : NULL, &stats, &n);
    if (rc < 0) {
      failed++;
      last = rc;
      continue;
    }
    ok++;
    zval node;
    array_init(&node);
    for (size_t k = 0; k < n; k++) {
      const char* v = stats[k].value;
      char* end;
      zend_long l = ZEND_STRTOL(v, &end, 10);
      if (*v && *end == '\0' && !isspace((unsigned char)*v))
        add_assoc_long(&node, stats[k].name, l);
      else
        add_assoc_string(&node, stats[k].name, (char*)v);
    }
    zend_string* label = node_label(c, i);
    zend_symtable_update(Z_ARRVAL_P(return_value), label, &node);
    zend_string_release(label);
  }
  if (failed && !ok) {
    set_rc(o, last);
    zval_ptr_dtor(return_value);
    RETURN_FALSE;
  }
  if (failed)
    set_code(o, RES_SOME_ERRORS);
  else
    set_code(o, RES_SUCCESS);
}

PHP_METHOD(Memcached, getVersion) {
  ZEND_PARSE_PARAMETERS_NONE();
  mcobj_t* o = THIS_OBJ();
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  array_init(return_value);
  int failed = 0, last = MCR_OK;
  size_t nodes = mcr_client_node_count(c);
  for (size_t i = 0; i < nodes; i++) {
    const char* v;
    int rc = mcr_client_version(c, i, &v);
    zend_string* label = node_label(c, i);
    zval zv;
    if (rc < 0) {
      failed++;
      last = rc;
      ZVAL_STRING(&zv, "255.255.255"); /* libmemcached's unknown version */
    } else {
      ZVAL_STRING(&zv, v);
    }
    zend_symtable_update(Z_ARRVAL_P(return_value), label, &zv);
    zend_string_release(label);
  }
  if (failed && (size_t)failed == nodes) {
    set_rc(o, last);
    zval_ptr_dtor(return_value);
    RETURN_FALSE;
  }
  set_code(o, failed ? RES_SOME_ERRORS : RES_SUCCESS);
}

PHP_METHOD(Memcached, flush) {
  zend_long delay = 0;
  ZEND_PARSE_PARAMETERS_START(0, 1)
  Z_PARAM_OPTIONAL
  Z_PARAM_LONG(delay)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  mcr_client_t* c = client_of(o);
  if (!c)
    RETURN_FALSE;
  RETURN_BOOL(set_rc(o, mcr_client_flush_all(c, delay, 0)));
}

/* ---- options ---- */

static int set_option(mcobj_t* o, zend_long opt, zval* value) {
  state_t* st = o->st;
  switch (opt) {
    case OPT_COMPRESSION:
      st->coding.compression = zend_is_true(value);
      return 1;
    case OPT_COMPRESSION_TYPE: {
      zend_long t = zval_get_long(value);
      if (t != MCPHP_COMP_ZLIB && t != MCPHP_COMP_FASTLZ)
        return 0;
      st->coding.compression_type = (int)t;
      return 1;
    }
    case OPT_PREFIX_KEY: {
      zend_string* s = zval_get_string(value);
      if (ZSTR_LEN(s) > PREFIX_MAX ||
          (ZSTR_LEN(s) && mcr_key_check(ZSTR_VAL(s), ZSTR_LEN(s)) < 0)) {
        zend_string_release(s);
        php_error_docref(NULL, E_WARNING, "bad key provided");
        set_code(o, RES_BAD_KEY_PROVIDED);
        return 0;
      }
      if (st->prefix)
        pefree(st->prefix, 1);
      st->prefix = ZSTR_LEN(s) ? pestrndup(ZSTR_VAL(s), ZSTR_LEN(s), 1) : NULL;
      st->prefix_len = ZSTR_LEN(s);
      zend_string_release(s);
      state_drop_client(st); /* routing skips the prefix */
      return 1;
    }
    case OPT_SERIALIZER: {
      zend_long s = zval_get_long(value);
      if (s < MCPHP_SER_PHP || s > MCPHP_SER_MSGPACK ||
          !mcphp_serializer_available((int)s)) {
        php_error_docref(NULL, E_WARNING, "invalid serializer provided");
        return 0;
      }
      st->coding.serializer = (int)s;
      return 1;
    }
    case OPT_USER_FLAGS: {
      zend_long f = zval_get_long(value);
      if (f > 65535) {
        php_error_docref(NULL, E_WARNING,
                         "MEMC_OPT_USER_FLAGS must be < 65535");
        return 0;
      }
      st->coding.user_flags = f < 0 ? -1 : f;
      return 1;
    }
    case OPT_STORE_RETRY_COUNT:
      st->store_retry_count = zval_get_long(value);
      return 1;
    case OPT_CLIENT_MODE: {
      zend_long m = zval_get_long(value);
      if (m != STATIC_CLIENT_MODE && m != DYNAMIC_CLIENT_MODE) {
        set_code(o, RES_INVALID_ARGUMENTS);
        return 0;
      }
      st->client_mode = m;
      state_drop_client(st);
      return 1;
    }
    case OPT_MCRING_RING_DIR: {
      zend_string* s = zval_get_string(value);
      if (st->ring_dir)
        pefree(st->ring_dir, 1);
      st->ring_dir = ZSTR_LEN(s) ? pestrdup(ZSTR_VAL(s), 1) : NULL;
      zend_string_release(s);
      state_drop_client(st);
      return 1;
    }
    case OPT_MCRING_RING_OWNER: {
      /* A uid, a user name or a string of digits; -1, null or "" go back
       * to mcring.ring_owner. */
      zend_long uid = -1;
      if (Z_TYPE_P(value) == IS_LONG) {
        uid = Z_LVAL_P(value);
        if (uid < -1 || uid > MCPHP_UID_MAX) {
          php_error_docref(NULL, E_WARNING,
                           "OPT_MCRING_RING_OWNER: " ZEND_LONG_FMT
                           " is not a uid (0..4294967294, or -1 for none)",
                           uid);
          set_code(o, RES_INVALID_ARGUMENTS);
          return 0;
        }
      } else if (Z_TYPE_P(value) != IS_NULL) {
        zend_string* s = zval_get_string(value);
        int bad =
            ZSTR_LEN(s) && (strlen(ZSTR_VAL(s)) != ZSTR_LEN(s) ||
                            mcphp_ring_owner_parse(ZSTR_VAL(s), &uid) < 0);
        if (bad) {
          php_error_docref(NULL, E_WARNING,
                           "OPT_MCRING_RING_OWNER: no user named '%s' (a "
                           "user name or uid)",
                           ZSTR_VAL(s));
          set_code(o, RES_INVALID_ARGUMENTS);
        }
        zend_string_release(s);
        if (bad)
          return 0;
      }
      st->ring_owner = uid;
      state_drop_client(st);
      return 1;
    }
    case OPT_MCRING_TLS:
    case OPT_MCRING_TLS_INSECURE:
      *(opt == OPT_MCRING_TLS ? &st->tls : &st->tls_insecure) =
          zend_is_true(value);
      if (opt == OPT_MCRING_TLS)
        st->tls_chosen = true;
      state_drop_client(st);
      return 1;
    case OPT_MCRING_TLS_CA_FILE:
    case OPT_MCRING_TLS_CERT_FILE:
    case OPT_MCRING_TLS_KEY_FILE:
    case OPT_MCRING_TLS_SERVER_NAME: {
      char** slot = &st->tls_str[OPT_MCRING_TLS_CA_FILE - opt];
      zend_string* s = zval_get_string(value);
      if (*slot)
        pefree(*slot, 1);
      *slot = ZSTR_LEN(s) ? pestrdup(ZSTR_VAL(s), 1) : NULL;
      zend_string_release(s);
      state_drop_client(st);
      return 1;
    }
    case OPT_MCRING_DISTRIBUTION: {
      zend_string* s = zval_get_string(value);
      mcr_distribution_t d;
      if (ZSTR_LEN(s) && mcr_distribution_parse(ZSTR_VAL(s), &d) < 0) {
        zend_string_release(s);
        set_code(o, RES_INVALID_ARGUMENTS);
        return 0;
      }
      if (st->mcr_distribution)
        pefree(st->mcr_distribution, 1);
      st->mcr_distribution = ZSTR_LEN(s) ? pestrdup(ZSTR_VAL(s), 1) : NULL;
      zend_string_release(s);
      state_drop_client(st);
      return 1;
    }
  }
  if (opt < 0 || opt >= NBEHAVIOR) {
    php_error_docref(NULL, E_WARNING, "error setting memcached option: %s",
                     "INVALID ARGUMENTS");
    set_code(o, RES_INVALID_ARGUMENTS);
    return 0;
  }
  zend_long v = zval_get_long(value);
  switch (opt) {
    case OPT_DISTRIBUTION:
      /* libmemcached's unweighted ketama (2, no constant in
       * php-memcached) places keys differently from its weighted one,
       * which is what mcring does: about a third agree with three
       * servers. Said, like modula, rather than placed wrong in silence. */
      if (v == DISTRIBUTION_MODULA || v == DISTRIBUTION_CONSISTENT ||
          v == DISTRIBUTION_KETAMA) {
        php_error_docref(NULL, E_NOTICE,
                         "mcring places keys with libketama-compatible "
                         "consistent hashing only: keys placed by this "
                         "distribution will move");
      } else if (v != DISTRIBUTION_KETAMA_WEIGHTED) {
        set_code(o, RES_NOT_SUPPORTED);
        return 0;
      }
      break;
    case OPT_LIBKETAMA_COMPATIBLE:
      if (!v)
        php_error_docref(NULL, E_NOTICE,
                         "mcring places keys with libketama-compatible "
                         "consistent hashing only: keys placed by this "
                         "distribution will move");
      break;
    case OPT_USE_UDP:
    case OPT_NUMBER_OF_REPLICAS:
      if (v) {
        set_code(o, RES_NOT_SUPPORTED);
        return 0;
      }
      break;
    case OPT_HASH:
    case OPT_LIBKETAMA_HASH:
      if (v != 0 && v != HASH_MD5) {
        set_code(o, RES_NOT_SUPPORTED);
        return 0;
      }
      break;
  }
  if (st->behavior[opt] == v)
    return 1;
  st->behavior[opt] = v;
  switch (opt) {
    case OPT_CONNECT_TIMEOUT:
    case OPT_POLL_TIMEOUT:
    case OPT_SEND_TIMEOUT:
    case OPT_RECV_TIMEOUT:
    case OPT_TCP_KEEPALIVE:
    case OPT_NOREPLY:
    case OPT_SERVER_FAILURE_LIMIT:
    case OPT_RETRY_TIMEOUT:
    case OPT_AUTO_EJECT_HOSTS:
    case OPT_REMOVE_FAILED_SERVERS:
    case OPT_HASH_WITH_PREFIX_KEY:
      state_drop_client(st);
  }
  return 1;
}

PHP_METHOD(Memcached, setOption) {
  zend_long opt;
  zval* value;
  ZEND_PARSE_PARAMETERS_START(2, 2)
  Z_PARAM_LONG(opt)
  Z_PARAM_ZVAL(value)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  RETURN_BOOL(set_option(o, opt, value));
}

PHP_METHOD(Memcached, setOptions) {
  HashTable* opts;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_ARRAY_HT(opts)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  int ok = 1;
  zend_string* skey;
  zend_ulong ikey;
  zval* v;
  ZEND_HASH_FOREACH_KEY_VAL(opts, ikey, skey, v) {
    if (skey) {
      php_error_docref(NULL, E_WARNING, "invalid configuration option");
      ok = 0;
    } else if (!set_option(o, (zend_long)ikey, v)) {
      ok = 0;
    }
  }
  ZEND_HASH_FOREACH_END();
  RETURN_BOOL(ok);
}

PHP_METHOD(Memcached, getOption) {
  zend_long opt;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_LONG(opt)
  ZEND_PARSE_PARAMETERS_END();
  state_t* st = THIS_OBJ()->st;
  switch (opt) {
    case OPT_COMPRESSION:
      RETURN_BOOL(st->coding.compression);
    case OPT_COMPRESSION_TYPE:
      RETURN_LONG(st->coding.compression_type);
    case OPT_PREFIX_KEY:
      RETURN_STRINGL(st->prefix ? st->prefix : "", st->prefix_len);
    case OPT_SERIALIZER:
      RETURN_LONG(st->coding.serializer);
    case OPT_USER_FLAGS:
      RETURN_LONG(st->coding.user_flags);
    case OPT_STORE_RETRY_COUNT:
      RETURN_LONG(st->store_retry_count);
    case OPT_CLIENT_MODE:
      RETURN_LONG(st->client_mode);
    case OPT_MCRING_RING_DIR:
      RETURN_STRING(st->ring_dir ? st->ring_dir : "");
    case OPT_MCRING_RING_OWNER:
      RETURN_LONG(st->ring_owner);
    case OPT_MCRING_DISTRIBUTION:
      RETURN_STRING(st->mcr_distribution ? st->mcr_distribution
                                         : "ketama-libmemcached");
    case OPT_MCRING_TLS:
      RETURN_BOOL(st->tls);
    case OPT_MCRING_TLS_INSECURE:
      RETURN_BOOL(st->tls_insecure);
    case OPT_MCRING_TLS_CA_FILE:
    case OPT_MCRING_TLS_CERT_FILE:
    case OPT_MCRING_TLS_KEY_FILE:
    case OPT_MCRING_TLS_SERVER_NAME: {
      const char* s = st->tls_str[OPT_MCRING_TLS_CA_FILE - opt];
      RETURN_STRING(s ? s : "");
    }
  }
  if (opt < 0 || opt >= NBEHAVIOR) {
    php_error_docref(NULL, E_WARNING, "no such option");
    RETURN_FALSE;
  }
  RETURN_LONG(st->behavior[opt]);
}

/* ---- misc ---- */

PHP_METHOD(Memcached, isPersistent) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_BOOL(THIS_OBJ()->persistent);
}

PHP_METHOD(Memcached, isPristine) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_BOOL(THIS_OBJ()->pristine);
}

PHP_METHOD(Memcached, checkKey) {
  zend_string* key;
  ZEND_PARSE_PARAMETERS_START(1, 1)
  Z_PARAM_STR(key)
  ZEND_PARSE_PARAMETERS_END();
  mcobj_t* o = THIS_OBJ();
  set_code(o, RES_SUCCESS);
  char kb[KEYBUF_SIZE];
  RETURN_BOOL(full_key(o, ZSTR_VAL(key), ZSTR_LEN(key), kb) != 0);
}

PHP_METHOD(Memcached, getLastDisconnectedServer) {
  ZEND_PARSE_PARAMETERS_NONE();
  RETURN_FALSE;
}

/* The *ByKey methods: the plain method's handler, run in the same call
 * frame with the server key (argument `at`) taken out of the arguments,
 * every key of the call placed on the server key's node
 * (mcr_client_route_by), as php-memcached places them: the server key
 * hashed as given (after the prefix under OPT_HASH_WITH_PREFIX_KEY), never
 * checked as a key, and an empty one ignored by the multi-gets
 * (libmemcached's mget_by_key). Warnings name the *ByKey method, as
 * php-memcached's do. The placement ends with the call, whatever happens
 * in it, so a persistent client is never left pinned. */
static void by_key(INTERNAL_FUNCTION_PARAMETERS, zif_handler plain, uint32_t at,
                   zend_bool empty_is_none) {
  uint32_t argc = ZEND_NUM_ARGS();
  if (argc < at + 2) { /* the server key and at least one more */
    zend_wrong_parameters_count_error(at + 2, (uint32_t)-1);
    RETURN_THROWS();
  }
  zval* args = ZEND_CALL_ARG(execute_data, 1);
  zend_string* sk = zval_try_get_string(&args[at]);
  if (!sk)
    RETURN_THROWS();
  mcobj_t* o = THIS_OBJ();
  mcr_client_t* c = client_of(o);
  if (!c) {
    zend_string_release(sk);
    RETURN_FALSE;
  }
  zend_string* pin = NULL;
  if (ZSTR_LEN(sk) || !empty_is_none) {
    pin = o->st->behavior[OPT_HASH_WITH_PREFIX_KEY] && o->st->prefix_len
              ? zend_string_concat2(o->st->prefix, o->st->prefix_len,
                                    ZSTR_VAL(sk), ZSTR_LEN(sk))
              : zend_string_copy(sk);
    if (mcr_client_route_by(c, ZSTR_VAL(pin), ZSTR_LEN(pin)) != MCR_OK) {
      zend_string_release(pin);
      zend_string_release(sk);
      set_code(o, RES_BAD_KEY_PROVIDED);
      RETURN_FALSE;
    }
  }
  zend_string_release(sk);
  /* Out of the frame: the VM frees the arguments the frame counts when
   * the call ends, so the server key is freed here and not counted. */
  zval removed;
  ZVAL_COPY_VALUE(&removed, &args[at]);
  memmove(&args[at], &args[at + 1], (argc - at - 1) * sizeof(zval));
  ZEND_CALL_NUM_ARGS(execute_data) = argc - 1;
  zval_ptr_dtor(&removed);
  o->pin = pin;
  zend_bool bailed = 0;
  zend_try {
    plain(INTERNAL_FUNCTION_PARAM_PASSTHRU);
  }
  zend_catch {
    bailed = 1; /* a fatal error: unpin all the same, then go on out */
  }
  zend_end_try();
  if (o->st->client)
    mcr_client_route_by(o->st->client, NULL, 0);
  o->pin = NULL;
  if (pin)
    zend_string_release(pin);
  if (bailed)
    zend_bailout();
}

#define BY_KEY(method, plain, at, empty_is_none)                             \
  PHP_METHOD(Memcached, method) {                                            \
    by_key(INTERNAL_FUNCTION_PARAM_PASSTHRU, ZEND_MN(Memcached_##plain), at, \
           empty_is_none);                                                   \
  }
BY_KEY(getByKey, get, 0, 0)
BY_KEY(getMultiByKey, getMulti, 0, 1)
BY_KEY(getDelayedByKey, getDelayed, 0, 1)
BY_KEY(setByKey, set, 0, 0)
BY_KEY(addByKey, add, 0, 0)
BY_KEY(replaceByKey, replace, 0, 0)
BY_KEY(appendByKey, append, 0, 0)
BY_KEY(prependByKey, prepend, 0, 0)
BY_KEY(casByKey, cas, 1, 0)
BY_KEY(setMultiByKey, setMulti, 0, 0)
BY_KEY(touchByKey, touch, 0, 0)
BY_KEY(deleteByKey, delete, 0, 0)
BY_KEY(deleteMultiByKey, deleteMulti, 0, 0)
BY_KEY(incrementByKey, increment, 0, 0)
BY_KEY(decrementByKey, decrement, 0, 0)

/* What libmcring cannot do: false and RES_NOT_SUPPORTED, whatever the
 * arguments. */
PHP_METHOD(Memcached, notSupported) {
  RETURN_BOOL(not_supported(THIS_OBJ()));
}

/* ------------------------------------------------------------------ */
/* Class and module                                                    */

ZEND_BEGIN_ARG_INFO_EX(ai_construct, 0, 0, 0)
ZEND_ARG_INFO(0, persistent_id)
ZEND_ARG_INFO(0, callback)
ZEND_ARG_INFO(0, connection_str)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_none, 0, 0, 0)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_get, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, cache_cb)
ZEND_ARG_INFO(0, get_flags)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_get_or_compute, 0, 0, 2)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, compute)
ZEND_ARG_INFO(0, ttl)
ZEND_ARG_INFO(0, options)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_invalidate, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, stale_ttl)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_get_multi, 0, 0, 1)
ZEND_ARG_INFO(0, keys)
ZEND_ARG_INFO(0, get_flags)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_set, 0, 0, 2)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, value)
ZEND_ARG_INFO(0, expiration)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_cas, 0, 0, 3)
ZEND_ARG_INFO(0, cas_token)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, value)
ZEND_ARG_INFO(0, expiration)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_concat, 0, 0, 2)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, value)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_set_multi, 0, 0, 1)
ZEND_ARG_INFO(0, items)
ZEND_ARG_INFO(0, expiration)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_delete, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, time)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_delete_multi, 0, 0, 1)
ZEND_ARG_INFO(0, keys)
ZEND_ARG_INFO(0, time)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_touch, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, expiration)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_incdec, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_ARG_INFO(0, offset)
ZEND_ARG_INFO(0, initial_value)
ZEND_ARG_INFO(0, expiry)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_add_server, 0, 0, 2)
ZEND_ARG_INFO(0, host)
ZEND_ARG_INFO(0, port)
ZEND_ARG_INFO(0, weight)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_add_servers, 0, 0, 1)
ZEND_ARG_INFO(0, servers)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_key, 0, 0, 1)
ZEND_ARG_INFO(0, key)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_stats, 0, 0, 0)
ZEND_ARG_INFO(0, type)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_flush, 0, 0, 0)
ZEND_ARG_INFO(0, delay)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_set_option, 0, 0, 2)
ZEND_ARG_INFO(0, option)
ZEND_ARG_INFO(0, value)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_get_option, 0, 0, 1)
ZEND_ARG_INFO(0, option)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_set_options, 0, 0, 1)
ZEND_ARG_INFO(0, options)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_get_delayed, 0, 0, 1)
ZEND_ARG_INFO(0, keys)
ZEND_ARG_INFO(0, with_cas)
ZEND_ARG_INFO(0, value_cb)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_INFO_EX(ai_variadic, 0, 0, 0)
ZEND_ARG_VARIADIC_INFO(0, args)
ZEND_END_ARG_INFO()

#define M(name, ai) PHP_ME(Memcached, name, ai, ZEND_ACC_PUBLIC)
#define UNSUPPORTED(name)                                         \
  ZEND_FENTRY(name, ZEND_MN(Memcached_notSupported), ai_variadic, \
              ZEND_ACC_PUBLIC)

/* One entry per line (clang-format would run them together: the macros
 * carry their own commas). */
// clang-format off
static const zend_function_entry methods[] = {
    M(__construct, ai_construct)
    M(getResultCode, ai_none)
    M(getResultMessage, ai_none)
    M(get, ai_get)
    M(getOrCompute, ai_get_or_compute)
    M(invalidate, ai_invalidate)
    M(getMulti, ai_get_multi)
    M(set, ai_set)
    M(add, ai_set)
    M(replace, ai_set)
    M(cas, ai_cas)
    M(append, ai_concat)
    M(prepend, ai_concat)
    M(setMulti, ai_set_multi)
    M(delete, ai_delete)
    M(deleteMulti, ai_delete_multi)
    M(touch, ai_touch)
    M(increment, ai_incdec)
    M(decrement, ai_incdec)
    M(addServer, ai_add_server)
    M(addServers, ai_add_servers)
    M(getServerList, ai_none)
    M(getServerByKey, ai_key)
    M(resetServerList, ai_none)
    M(quit, ai_none)
    M(flushBuffers, ai_none)
    M(getLastErrorMessage, ai_none)
    M(getLastErrorCode, ai_none)
    M(getLastErrorErrno, ai_none)
    M(getLastDisconnectedServer, ai_none)
    M(getStats, ai_stats)
    M(getVersion, ai_none)
    M(flush, ai_flush)
    M(getOption, ai_get_option)
    M(setOption, ai_set_option)
    M(setOptions, ai_set_options)
    M(isPersistent, ai_none)
    M(isPristine, ai_none)
    M(checkKey, ai_key)
    M(getByKey, ai_variadic)
    M(getMultiByKey, ai_variadic)
    M(getDelayed, ai_get_delayed)
    M(fetch, ai_none)
    M(fetchAll, ai_none)
    M(getDelayedByKey, ai_variadic)
    M(setByKey, ai_variadic)
    M(touchByKey, ai_variadic)
    M(setMultiByKey, ai_variadic)
    M(casByKey, ai_variadic)
    M(addByKey, ai_variadic)
    M(appendByKey, ai_variadic)
    M(prependByKey, ai_variadic)
    M(replaceByKey, ai_variadic)
    M(deleteByKey, ai_variadic)
    M(deleteMultiByKey, ai_variadic)
    M(incrementByKey, ai_variadic)
    M(decrementByKey, ai_variadic)
    UNSUPPORTED(getAllKeys)
    UNSUPPORTED(setBucket)
    UNSUPPORTED(setSaslAuthData)
    UNSUPPORTED(setEncodingKey)
    PHP_FE_END};
// clang-format on

/* php-memcached 3.2.0's constants: same names, same numbers. */
static const struct {
  const char* name;
  zend_long value;
} long_constants[] = {
    {"LIBMEMCACHED_VERSION_HEX", 16777240},
    {"OPT_COMPRESSION", OPT_COMPRESSION},
    {"OPT_COMPRESSION_TYPE", OPT_COMPRESSION_TYPE},
    {"OPT_PREFIX_KEY", OPT_PREFIX_KEY},
    {"OPT_SERIALIZER", OPT_SERIALIZER},
    {"OPT_USER_FLAGS", OPT_USER_FLAGS},
    {"OPT_STORE_RETRY_COUNT", OPT_STORE_RETRY_COUNT},
    {"OPT_HASH", OPT_HASH},
    {"HASH_DEFAULT", 0},
    {"HASH_MD5", 1},
    {"HASH_CRC", 2},
    {"HASH_FNV1_64", 3},
    {"HASH_FNV1A_64", 4},
    {"HASH_FNV1_32", 5},
    {"HASH_FNV1A_32", 6},
    {"HASH_HSIEH", 7},
    {"HASH_MURMUR", 8},
    {"OPT_DISTRIBUTION", OPT_DISTRIBUTION},
    {"DISTRIBUTION_MODULA", DISTRIBUTION_MODULA},
    {"DISTRIBUTION_CONSISTENT", DISTRIBUTION_CONSISTENT},
    {"DISTRIBUTION_VIRTUAL_BUCKET", DISTRIBUTION_VIRTUAL_BUCKET},
    {"OPT_LIBKETAMA_COMPATIBLE", OPT_LIBKETAMA_COMPATIBLE},
    {"OPT_LIBKETAMA_HASH", OPT_LIBKETAMA_HASH},
    {"OPT_TCP_KEEPALIVE", OPT_TCP_KEEPALIVE},
    {"OPT_BUFFER_WRITES", 10},
    {"OPT_BINARY_PROTOCOL", OPT_BINARY_PROTOCOL},
    {"OPT_NO_BLOCK", OPT_NO_BLOCK},
    {"OPT_TCP_NODELAY", OPT_TCP_NODELAY},
    {"OPT_SOCKET_SEND_SIZE", 4},
    {"OPT_SOCKET_RECV_SIZE", 5},
    {"OPT_CONNECT_TIMEOUT", OPT_CONNECT_TIMEOUT},
    {"OPT_RETRY_TIMEOUT", OPT_RETRY_TIMEOUT},
    {"OPT_DEAD_TIMEOUT", OPT_DEAD_TIMEOUT},
    {"OPT_SEND_TIMEOUT", OPT_SEND_TIMEOUT},
    {"OPT_RECV_TIMEOUT", OPT_RECV_TIMEOUT},
    {"OPT_POLL_TIMEOUT", OPT_POLL_TIMEOUT},
    {"OPT_CACHE_LOOKUPS", 6},
    {"OPT_SERVER_FAILURE_LIMIT", OPT_SERVER_FAILURE_LIMIT},
    {"OPT_AUTO_EJECT_HOSTS", OPT_AUTO_EJECT_HOSTS},
    {"OPT_HASH_WITH_PREFIX_KEY", OPT_HASH_WITH_PREFIX_KEY},
    {"OPT_NOREPLY", OPT_NOREPLY},
    {"OPT_SORT_HOSTS", 12},
    {"OPT_VERIFY_KEY", 13},
    {"OPT_USE_UDP", OPT_USE_UDP},
    {"OPT_NUMBER_OF_REPLICAS", OPT_NUMBER_OF_REPLICAS},
    {"OPT_RANDOMIZE_REPLICA_READ", 30},
    {"OPT_REMOVE_FAILED_SERVERS", OPT_REMOVE_FAILED_SERVERS},
    {"OPT_SERVER_TIMEOUT_LIMIT", 37},
    {"RES_SUCCESS", 0},
    {"RES_FAILURE", 1},
    {"RES_HOST_LOOKUP_FAILURE", 2},
    {"RES_CONNECTION_FAILURE", 3},
    {"RES_CONNECTION_BIND_FAILURE", 4},
    {"RES_WRITE_FAILURE", 5},
    {"RES_READ_FAILURE", 6},
    {"RES_UNKNOWN_READ_FAILURE", 7},
    {"RES_PROTOCOL_ERROR", 8},
    {"RES_CLIENT_ERROR", 9},
    {"RES_SERVER_ERROR", 10},
    {"RES_DATA_EXISTS", 12},
    {"RES_DATA_DOES_NOT_EXIST", 13},
    {"RES_NOTSTORED", 14},
    {"RES_STORED", 15},
    {"RES_NOTFOUND", 16},
    {"RES_PARTIAL_READ", 18},
    {"RES_SOME_ERRORS", 19},
    {"RES_NO_SERVERS", 20},
    {"RES_END", 21},
    {"RES_DELETED", 22},
    {"RES_VALUE", 23},
    {"RES_STAT", 24},
    {"RES_ITEM", 25},
    {"RES_ERRNO", 26},
    {"RES_FAIL_UNIX_SOCKET", 27},
    {"RES_NOT_SUPPORTED", 28},
    {"RES_NO_KEY_PROVIDED", 29},
    {"RES_FETCH_NOTFINISHED", 30},
    {"RES_TIMEOUT", 31},
    {"RES_BUFFERED", 32},
    {"RES_BAD_KEY_PROVIDED", 33},
    {"RES_INVALID_HOST_PROTOCOL", 34},
    {"RES_SERVER_MARKED_DEAD", 35},
    {"RES_UNKNOWN_STAT_KEY", 36},
    {"RES_INVALID_ARGUMENTS", 38},
    {"RES_PARSE_ERROR", 43},
    {"RES_PARSE_USER_ERROR", 44},
    {"RES_DEPRECATED", 45},
    {"RES_IN_PROGRESS", 46},
    {"RES_MAXIMUM_RETURN", 49},
    {"RES_MEMORY_ALLOCATION_FAILURE", 17},
    {"RES_CONNECTION_SOCKET_CREATE_FAILURE", 11},
    {"RES_E2BIG", 37},
    {"RES_KEY_TOO_BIG", 39},
    {"RES_SERVER_TEMPORARILY_DISABLED", 47},
    {"RES_SERVER_MEMORY_ALLOCATION_FAILURE", 48},
    {"RES_AUTH_PROBLEM", 40},
    {"RES_AUTH_FAILURE", 41},
    {"RES_AUTH_CONTINUE", 42},
    {"RES_PAYLOAD_FAILURE", RES_PAYLOAD_FAILURE},
    {"SERIALIZER_PHP", MCPHP_SER_PHP},
    {"SERIALIZER_IGBINARY", MCPHP_SER_IGBINARY},
    {"SERIALIZER_JSON", MCPHP_SER_JSON},
    {"SERIALIZER_JSON_ARRAY", MCPHP_SER_JSON_ARRAY},
    {"SERIALIZER_MSGPACK", MCPHP_SER_MSGPACK},
    {"COMPRESSION_FASTLZ", MCPHP_COMP_FASTLZ},
    {"COMPRESSION_ZLIB", MCPHP_COMP_ZLIB},
    {"GET_PRESERVE_ORDER", GET_PRESERVE_ORDER},
    {"GET_EXTENDED", GET_EXTENDED},
    /* mcring's own */
    {"OPT_MCRING_RING_DIR", OPT_MCRING_RING_DIR},
    {"OPT_MCRING_RING_OWNER", OPT_MCRING_RING_OWNER},
    {"OPT_MCRING_DISTRIBUTION", OPT_MCRING_DISTRIBUTION},
    {"OPT_MCRING_TLS", OPT_MCRING_TLS},
    {"OPT_MCRING_TLS_CA_FILE", OPT_MCRING_TLS_CA_FILE},
    {"OPT_MCRING_TLS_CERT_FILE", OPT_MCRING_TLS_CERT_FILE},
    {"OPT_MCRING_TLS_KEY_FILE", OPT_MCRING_TLS_KEY_FILE},
    {"OPT_MCRING_TLS_SERVER_NAME", OPT_MCRING_TLS_SERVER_NAME},
    {"OPT_MCRING_TLS_INSECURE", OPT_MCRING_TLS_INSECURE},
    {"OPT_CLIENT_MODE", OPT_CLIENT_MODE},
    {"STATIC_CLIENT_MODE", STATIC_CLIENT_MODE},
    {"DYNAMIC_CLIENT_MODE", DYNAMIC_CLIENT_MODE},
};

PHP_INI_BEGIN()
STD_PHP_INI_BOOLEAN("mcring.alias_memcached", "0", PHP_INI_SYSTEM, OnUpdateBool,
                    alias_memcached, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.ring_dir", "", PHP_INI_ALL, OnUpdateString, ring_dir,
                  zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.ring_owner", "", PHP_INI_ALL, OnUpdateString,
                  ring_owner, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.compression_threshold", "2000", PHP_INI_ALL,
                  OnUpdateLong, compression_threshold, zend_mcring_globals,
                  mcring_globals)
STD_PHP_INI_ENTRY("mcring.compression_factor", "1.3", PHP_INI_ALL, OnUpdateReal,
                  compression_factor, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.serializer", "php", PHP_INI_ALL, OnUpdateString,
                  serializer, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.compression_type", "fastlz", PHP_INI_ALL,
                  OnUpdateString, compression_type, zend_mcring_globals,
                  mcring_globals)
STD_PHP_INI_ENTRY("mcring.sess_prefix", "memc.sess.key.", PHP_INI_ALL,
                  OnUpdateString, sess_prefix, zend_mcring_globals,
                  mcring_globals)
STD_PHP_INI_BOOLEAN("mcring.sess_locking", "1", PHP_INI_ALL, OnUpdateBool,
                    sess_locking, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.sess_lock_wait_min", "150", PHP_INI_ALL, OnUpdateLong,
                  sess_lock_wait_min, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.sess_lock_wait_max", "150", PHP_INI_ALL, OnUpdateLong,
                  sess_lock_wait_max, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.sess_lock_retries", "5", PHP_INI_ALL, OnUpdateLong,
                  sess_lock_retries, zend_mcring_globals, mcring_globals)
STD_PHP_INI_ENTRY("mcring.sess_lock_expire", "0", PHP_INI_ALL, OnUpdateLong,
                  sess_lock_expire, zend_mcring_globals, mcring_globals)
PHP_INI_END()

static PHP_GINIT_FUNCTION(mcring) {
  memset(mcring_globals, 0, sizeof(*mcring_globals));
}

static PHP_MINIT_FUNCTION(mcring) {
  REGISTER_INI_ENTRIES();
  /* Keep libmcring mapped until the process exits. PHP unloads
   * extensions at shutdown, and with them libmcring, while a detached
   * name-resolution thread of libmcring may still be finishing (it
   * outlives a call that timed out or raced it): unmapping its code under
   * it crashes the process on exit. */
  Dl_info info;
  if (dladdr((void*)mcr_client_new, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
  /* As \Memcached (mcring.alias_memcached=1) only when ext/memcached is
   * not loaded (module_registry holds every loaded extension by now). The
   * class is then registered under that name, Mcring\Memcached being the
   * alias, so that warnings, var_dump and get_class read as
   * php-memcached's do. */
  int as_memcached =
      MCPHP_G(alias_memcached) &&
      !zend_hash_str_exists(&module_registry, ZEND_STRL("memcached"));
  zend_class_entry ce;
  if (as_memcached) {
    INIT_CLASS_ENTRY(ce, "Memcached", methods);
  } else {
    INIT_CLASS_ENTRY(ce, "Mcring\\Memcached", methods);
  }
  mcring_ce = zend_register_internal_class(&ce);
  mcring_ce->create_object = obj_create;
  memcpy(&mcring_handlers, zend_get_std_object_handlers(),
         sizeof(mcring_handlers));
  mcring_handlers.offset = XtOffsetOf(mcobj_t, std);
  mcring_handlers.free_obj = obj_free;
  mcring_handlers.clone_obj = NULL;
  for (size_t i = 0; i < sizeof long_constants / sizeof long_constants[0]; i++)
    zend_declare_class_constant_long(mcring_ce, long_constants[i].name,
                                     strlen(long_constants[i].name),
                                     long_constants[i].value);
  zend_declare_class_constant_bool(
      mcring_ce, ZEND_STRL("HAVE_IGBINARY"),
      mcphp_serializer_available(MCPHP_SER_IGBINARY));
  zend_declare_class_constant_bool(mcring_ce, ZEND_STRL("HAVE_JSON"), 1);
  zend_declare_class_constant_bool(
      mcring_ce, ZEND_STRL("HAVE_MSGPACK"),
      mcphp_serializer_available(MCPHP_SER_MSGPACK));
  zend_declare_class_constant_bool(mcring_ce, ZEND_STRL("HAVE_ENCODING"), 0);
  /* php-memcached's constant says save_handler = memcached exists */
  zend_declare_class_constant_bool(mcring_ce, ZEND_STRL("HAVE_SESSION"),
                                   as_memcached);
  zend_declare_class_constant_bool(mcring_ce, ZEND_STRL("HAVE_SASL"), 0);
  zend_declare_class_constant_bool(mcring_ce,
                                   ZEND_STRL("GET_ERROR_RETURN_VALUE"), 0);

  if (as_memcached) {
    INIT_CLASS_ENTRY(ce, "MemcachedException", NULL);
  } else {
    INIT_CLASS_ENTRY(ce, "Mcring\\MemcachedException", NULL);
  }
  mcring_exception_ce =
      zend_register_internal_class_ex(&ce, spl_ce_RuntimeException);
  if (as_memcached) {
    zend_register_class_alias("Mcring\\Memcached", mcring_ce);
    zend_register_class_alias("Mcring\\MemcachedException",
                              mcring_exception_ce);
  }
  mcphp_session_register(as_memcached);
  return SUCCESS;
}

/* Persistent clients live until the process exits: an FPM worker gives
 * back its connections and its host-stats slot here. */
static PHP_MSHUTDOWN_FUNCTION(mcring) {
  while (persistent_states) {
    state_t* st = persistent_states;
    persistent_states = st->next;
    state_free(st);
  }
  mcphp_session_shutdown();
  UNREGISTER_INI_ENTRIES();
  return SUCCESS;
}

static PHP_MINFO_FUNCTION(mcring) {
  php_info_print_table_start();
  php_info_print_table_row(2, "mcring support", "enabled");
  php_info_print_table_row(2, "Version", PHP_MCRING_VERSION);
  php_info_print_table_end();
  DISPLAY_INI_ENTRIES();
}

static const zend_module_dep deps[] = {
    ZEND_MOD_REQUIRED("json") ZEND_MOD_REQUIRED("session")
        ZEND_MOD_OPTIONAL("igbinary") ZEND_MOD_OPTIONAL("msgpack")
            ZEND_MOD_OPTIONAL("memcached") ZEND_MOD_END};

zend_module_entry mcring_module_entry = {STANDARD_MODULE_HEADER_EX,
                                         NULL,
                                         deps,
                                         "mcring",
                                         NULL,
                                         PHP_MINIT(mcring),
                                         PHP_MSHUTDOWN(mcring),
                                         NULL,
                                         NULL,
                                         PHP_MINFO(mcring),
                                         PHP_MCRING_VERSION,
                                         PHP_MODULE_GLOBALS(mcring),
                                         PHP_GINIT(mcring),
                                         NULL,
                                         NULL,
                                         STANDARD_MODULE_PROPERTIES_EX};

#ifdef COMPILE_DL_MCRING
ZEND_GET_MODULE(mcring)
#endif
