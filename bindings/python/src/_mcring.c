/* _mcring.c — the CPython core of the mcring Python binding.
 *
 * One type, Core, wraps one libmcring client handle (mcr_client_t) and
 * implements pymemcache's methods with pymemcache's arguments, results and
 * exceptions, so that mcring.Client, mcring.PooledClient and
 * mcring.HashClient (thin Python subclasses in mcring/__init__.py) are
 * drop-in replacements. It is written
 * by hand against the C API with METH_FASTCALL because the call overhead is
 * most of what a binding adds to a loopback get (see the issue's numbers:
 * ~90 ns here against ~300 ns for cffi and ~600 ns for ctypes).
 *
 * Each call goes: parse arguments -> check and prefix the key the way
 * pymemcache does (same messages, same exception) -> serialize the value
 * with the Python serde object, if any -> take the client's lock -> release
 * the GIL around the libmcring call (all network I/O happens there) ->
 * copy the reply out of client-owned memory -> drop the lock -> run the
 * serde's deserialize. The lock is per client and is held until the reply
 * has been copied, because libmcring's reply memory stays valid only until
 * the next call on the handle; no Python code runs under it, so a serde
 * may use the client itself. After fork() the lock is replaced in the child
 * (it may have been held by a thread that does not exist there); the
 * connections are the C library's business: it never lets a child use a
 * connection its parent opened, with no Python hook involved (uWSGI skips
 * os.register_at_fork hooks).
 *
 * Errors: validation errors raise MemcacheIllegalInputError (as pymemcache
 * raises them before sending), server replies raise pymemcache's
 * MemcacheUnknownCommandError / MemcacheClientError / MemcacheServerError,
 * and transport failures raise the built-in exceptions pymemcache lets
 * through from its socket (TimeoutError, ConnectionRefusedError, OSError,
 * socket.gaierror, ssl.SSLError) or MemcacheUnexpectedCloseError. The exception
 * classes live in Python (mcring/exceptions.py) and are handed to this module
 * once by _set_exceptions(). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "mcring.h"

#define TEXT_(x) #x
#define TEXT(x) TEXT_(x)
/* The version of the mcring.h this module was built against. */
#define HEADER_VERSION    \
  TEXT(MCR_VERSION_MAJOR) \
  "." TEXT(MCR_VERSION_MINOR) "." TEXT(MCR_VERSION_PATCH)

#define KEY_MAX 250
#define KEY_BUF (KEY_MAX + 1)

/* ------------------------------------------------------------------------ */
/* Fork generation: bumped in every child by pthread_atfork (not by an
 * os.register_at_fork hook, which uWSGI skips). A client whose generation
 * is older replaces its lock before use. */

static volatile unsigned long g_fork_gen = 0;

static void on_fork_child(void) {
  g_fork_gen++;
}

/* ------------------------------------------------------------------------ */
/* Exceptions, set from Python by _set_exceptions(). */

enum {
  X_ERROR,       /* MemcacheError */
  X_CLIENT,      /* MemcacheClientError */
  X_UNKNOWN_CMD, /* MemcacheUnknownCommandError */
  X_ILLEGAL,     /* MemcacheIllegalInputError */
  X_SERVER,      /* MemcacheServerError */
  X_UNKNOWN,     /* MemcacheUnknownError */
  X_CLOSE,       /* MemcacheUnexpectedCloseError */
  X_NODEDOWN,    /* MemcacheNodeDownError */
  X_GAIERROR,    /* socket.gaierror */
  X_SSLERROR,    /* ssl.SSLError */
  X_SSLVERIFY,   /* ssl.SSLCertVerificationError */
  X_COUNT
};

static const char* const x_names[X_COUNT] = {"MemcacheError",
                                             "MemcacheClientError",
                                             "MemcacheUnknownCommandError",
                                             "MemcacheIllegalInputError",
                                             "MemcacheServerError",
                                             "MemcacheUnknownError",
                                             "MemcacheUnexpectedCloseError",
                                             "MemcacheNodeDownError",
                                             "gaierror",
                                             "SSLError",
                                             "SSLCertVerificationError"};

static PyObject* g_exc[X_COUNT];

static PyObject* exc(int which) {
  return g_exc[which] ? g_exc[which] : PyExc_RuntimeError;
}

/* ------------------------------------------------------------------------ */
/* The client object. */

typedef struct {
  PyObject ob_base; /* PyObject_HEAD */
  mcr_client_t* c;  /* NULL until __init__ succeeded */
  PyThread_type_lock lock;
  unsigned long fork_gen;
  PyObject* serde;     /* NULL: values are bytes / str(v).encode() */
  PyObject* prefix;    /* bytes, may be empty */
  PyObject* encoding;  /* str */
  int allow_unicode;   /* allow_unicode_keys */
  int default_noreply; /* default for noreply=None */
  int ignore_reads;    /* ignore_exc: failed reads are misses */
  int ignore_writes;   /* HashClient ignore_exc: failed writes are False */
} Core;

/* True for the codes that mean "the servers failed", as opposed to "the
 * caller passed something invalid": the ones ignore_exc hides. */
static int is_failure(int rc) {
  switch (rc) {
    case MCR_ERESOLVE:
    case MCR_ECONNECT:
    case MCR_ECONNTIMEOUT:
    case MCR_ETIMEOUT:
    case MCR_ECLOSED:
    case MCR_EIO:
    case MCR_EPROTO:
    case MCR_ESERVERCMD:
    case MCR_ECLIENTERR:
    case MCR_ESERVERERR:
    case MCR_ENODEDOWN:
    case MCR_ETLS:
    case MCR_ETLSVERIFY:
      return 1;
    default:
      return 0;
  }
}

/* Sets the Python exception for libmcring error `rc` (negative) with the
 * handle's last error text. Returns NULL for `return raise_rc(...)`. */
static PyObject* raise_rc_text(int rc, const char* text) {
  if (!text || !*text)
    text = mcr_strerror(rc);
  switch (rc) {
    case MCR_ENOMEM:
      return PyErr_NoMemory();
    case MCR_EKEY:
    case MCR_ETOOBIG:
    case MCR_EINVAL:
    case MCR_ERANGE:
      /* memcached itself answers SERVER_ERROR to a value over its limit,
       * which pymemcache raises as MemcacheServerError. */
      PyErr_SetString(exc(rc == MCR_ETOOBIG ? X_SERVER : X_ILLEGAL), text);
      return NULL;
    case MCR_ECONNTIMEOUT:
    case MCR_ETIMEOUT:
      PyErr_SetString(PyExc_TimeoutError, text);
      return NULL;
    case MCR_ECONNECT:
      PyErr_SetString(PyExc_ConnectionRefusedError, text);
      return NULL;
    case MCR_ERESOLVE:
      PyErr_SetString(exc(X_GAIERROR), text);
      return NULL;
    case MCR_EIO:
    case MCR_ESYS:
    case MCR_EPERM:
    case MCR_ESNAPSHOT:
      PyErr_SetString(PyExc_OSError, text);
      return NULL;
    case MCR_ECLOSED:
      PyErr_SetString(exc(X_CLOSE), text);
      return NULL;
    case MCR_EPROTO:
      PyErr_SetString(exc(X_UNKNOWN), text);
      return NULL;
    case MCR_ESERVERCMD:
      PyErr_SetString(exc(X_UNKNOWN_CMD), text);
      return NULL;
    case MCR_ECLIENTERR:
      PyErr_SetString(exc(X_CLIENT), text);
      return NULL;
    case MCR_ESERVERERR:
      PyErr_SetString(exc(X_SERVER), text);
      return NULL;
    case MCR_ENODEDOWN:
      PyErr_SetString(exc(X_NODEDOWN), text);
      return NULL;
    case MCR_ENOSERVERS:
    case MCR_ESERVERS:
      PyErr_SetString(PyExc_ValueError, text);
      return NULL;
    case MCR_ENOTSUP:
      PyErr_SetString(PyExc_NotImplementedError, text);
      return NULL;
    case MCR_ETLS:
    case MCR_ETLSVERIFY:
      /* pymemcache lets the ssl module's errors through. */
      PyErr_SetString(exc(rc == MCR_ETLS ? X_SSLERROR : X_SSLVERIFY), text);
      return NULL;
    default:
      PyErr_SetString(exc(X_ERROR), text);
      return NULL;
  }
}

static PyObject* raise_rc(Core* s, int rc) {
  return raise_rc_text(rc, s->c ? mcr_client_last_error(s->c) : NULL);
}

/* Takes the client's lock (releasing the GIL while waiting for it). Returns
 * 0, or -1 with an exception set. */
static int enter(Core* s) {
  if (!s->c) {
    PyErr_SetString(exc(X_ERROR), "the client is not initialized");
    return -1;
  }
  if (s->fork_gen != g_fork_gen) {
    /* A child: the old lock may be held by a thread of the parent that
     * does not exist here. It is dropped, not freed (freeing a held lock
     * is undefined). */
    s->lock = PyThread_allocate_lock();
    s->fork_gen = g_fork_gen;
    if (!s->lock) {
      PyErr_NoMemory();
      return -1;
    }
  }
  if (!PyThread_acquire_lock(s->lock, NOWAIT_LOCK)) {
    PyThreadState* ts = PyEval_SaveThread();
    PyThread_acquire_lock(s->lock, WAIT_LOCK);
    PyEval_RestoreThread(ts);
  }
  return 0;
}

static void leave(Core* s) {
  PyThread_release_lock(s->lock);
}

/* Runs `expr` (a libmcring call) with the GIL released. */
#define NOGIL(rc, expr)                             \
  do {                                              \
    PyThreadState* nogil_ts_ = PyEval_SaveThread(); \
    rc = (expr);                                    \
    PyEval_RestoreThread(nogil_ts_);                \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Arguments: a tiny FASTCALL parser over a list of names. */

/* Fills out[0..nnames) from positional args then keywords; out[i] stays NULL
 * for an argument not given. Returns 0, or -1 with TypeError set. */
static int parse_args(const char* fname, PyObject* const* args,
                      Py_ssize_t nargs, PyObject* kwnames,
                      const char* const* names, int nnames, int nreq,
                      PyObject** out) {
  for (int i = 0; i < nnames; i++)
    out[i] = NULL;
  if (nargs > nnames) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)",
                 fname, nnames, nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++)
    out[i] = args[i];
  if (kwnames) {
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nk; k++) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, k);
      int found = -1;
      for (int i = 0; i < nnames; i++)
        if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0) {
          found = i;
          break;
        }
      if (found < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s() got an unexpected keyword argument '%U'", fname,
                     name);
        return -1;
      }
      if (out[found]) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for '%s'",
                     fname, names[found]);
        return -1;
      }
      out[found] = args[nargs + k];
    }
  }
  for (int i = 0; i < nreq; i++)
    if (!out[i]) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'",
                   fname, names[i]);
      return -1;
    }
  return 0;
}

/* noreply argument: None / absent -> the client's default. */
static int noreply_arg(Core* s, PyObject* o, int dflt_is_client) {
  if (!o || o == Py_None)
    return dflt_is_client ? s->default_noreply : 0;
  return PyObject_IsTrue(o);
}

/* An integer argument as pymemcache's _check_integer wants it. */
static int int_arg(PyObject* o, const char* name, long long dflt,
                   long long* out) {
  if (!o) {
    *out = dflt;
    return 0;
  }
  if (!PyLong_Check(o)) {
    PyObject* r = PyObject_Repr(o);
    PyErr_Format(exc(X_ILLEGAL), "%s must be integer, got bad value: %S", name,
                 r ? r : Py_None);
    Py_XDECREF(r);
    return -1;
  }
  int overflow = 0;
  *out = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow) {
    PyErr_Format(exc(X_ILLEGAL), "%s out of range", name);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Keys and values. */

static int is_ws(unsigned char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
         ch == '\f';
}

/* Writes key_prefix + key into buf[KEY_BUF] and its length to *len, with
 * pymemcache's rules and messages: str keys must be ASCII unless
 * allow_unicode_keys (then UTF-8), at most 250 bytes, no whitespace, no
 * NUL. Returns 0 or -1 with an exception set. */
static int key_prep(Core* s, PyObject* key, char* buf, size_t* len) {
  const char* p;
  Py_ssize_t n;
  if (PyUnicode_Check(key)) {
    if (!s->allow_unicode && !PyUnicode_IS_ASCII(key)) {
      PyErr_Format(exc(X_ILLEGAL), "Non-ASCII key: %R", key);
      return -1;
    }
    p = PyUnicode_AsUTF8AndSize(key, &n);
    if (!p)
      return -1;
  } else if (PyBytes_Check(key)) {
    /* Bytes keys are sent as they are, whatever their bytes (pymemcache
     * checks only str keys for ASCII). */
    p = PyBytes_AS_STRING(key);
    n = PyBytes_GET_SIZE(key);
  } else {
    PyErr_Format(PyExc_TypeError, "key must be str or bytes, not %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
  }
  Py_ssize_t pn = PyBytes_GET_SIZE(s->prefix);
  if (pn + n > KEY_MAX) {
    PyErr_Format(exc(X_ILLEGAL), "Key is too long: %R", key);
    return -1;
  }
  memcpy(buf, PyBytes_AS_STRING(s->prefix), (size_t)pn);
  memcpy(buf + pn, p, (size_t)n);
  *len = (size_t)(pn + n);
  for (size_t i = 0; i < *len; i++) {
    if (is_ws((unsigned char)buf[i])) {
      PyErr_Format(exc(X_ILLEGAL), "Key contains whitespace: %R", key);
      return -1;
    }
    if (buf[i] == '\0') {
      PyErr_Format(exc(X_ILLEGAL), "Key contains null: %R", key);
      return -1;
    }
  }
  return 0;
}

/* Serializes `value` for key[0..klen): through serde.serialize(key, value)
 * when there is a serde, then (as pymemcache) anything that is not bytes
 * becomes str(data).encode(encoding). `flags_arg` (not None) overrides the
 * serde's flags. Returns a new bytes reference and sets *flags, or NULL. */
static PyObject* value_prep(Core* s, const char* key, size_t klen,
                            PyObject* value, PyObject* flags_arg,
                            uint32_t* flags) {
  PyObject* data;
  long long fl = 0;
  if (s->serde) {
    PyObject* kb = PyBytes_FromStringAndSize(key, (Py_ssize_t)klen);
    if (!kb)
      return NULL;
    PyObject* r = PyObject_CallMethod(s->serde, "serialize", "OO", kb, value);
    Py_DECREF(kb);
    if (!r)
      return NULL;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
      Py_DECREF(r);
      PyErr_SetString(PyExc_TypeError,
                      "serde.serialize must return (data, flags)");
      return NULL;
    }
    data = PyTuple_GET_ITEM(r, 0);
    Py_INCREF(data);
    fl = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 1));
    Py_DECREF(r);
    if (fl == -1 && PyErr_Occurred()) {
      Py_DECREF(data);
      return NULL;
    }
  } else {
    data = value;
    Py_INCREF(data);
  }
  if (flags_arg && flags_arg != Py_None) {
    fl = PyLong_AsLongLong(flags_arg);
    if (fl == -1 && PyErr_Occurred()) {
      Py_DECREF(data);
      return NULL;
    }
  }
  if (fl < 0 || fl > 0xffffffffLL || ((uint32_t)fl & MCR_FLAG_ZSTD)) {
    Py_DECREF(data);
    PyErr_Format(exc(X_ILLEGAL), "flags out of range or reserved: %lld", fl);
    return NULL;
  }
  *flags = (uint32_t)fl;
  if (PyBytes_Check(data))
    return data;
  PyObject* str = PyObject_Str(data);
  Py_DECREF(data);
  if (!str)
    return NULL;
  PyObject* enc =
      PyUnicode_AsEncodedString(str, PyUnicode_AsUTF8(s->encoding), "strict");
  Py_DECREF(str);
  if (!enc && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_Format(exc(X_ILLEGAL), "Data values must be binary-safe: %S",
                 v ? v : Py_None);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
  }
  return enc;
}

/* The Python value of a fetched item: `raw` (a new reference, stolen), or
 * serde.deserialize(key, raw, flags). Called after the client's lock is
 * dropped, so that a serde may use the client itself. */
static PyObject* value_finish(Core* s, const char* key, size_t klen,
                              PyObject* raw, uint32_t flags) {
  if (!raw || !s->serde)
    return raw;
  PyObject* kb = PyBytes_FromStringAndSize(key, (Py_ssize_t)klen);
  if (!kb) {
    Py_DECREF(raw);
    return NULL;
  }
  PyObject* r = PyObject_CallMethod(s->serde, "deserialize", "OOk", kb, raw,
                                    (unsigned long)flags);
  Py_DECREF(kb);
  Py_DECREF(raw);
  return r;
}

/* A copy of a fetched value (client memory is only valid under the lock). */
static PyObject* value_copy(const mcr_item_t* it) {
  return PyBytes_FromStringAndSize(it->value, (Py_ssize_t)it->value_len);
}

/* ------------------------------------------------------------------------ */
/* Construction. */

/* The garbage collector sees the serde: a serde that refers back to its
 * client (as one that follows links through it does) makes a cycle. */
static int Core_traverse(Core* s, visitproc visit, void* arg) {
  Py_VISIT(s->serde);
  return 0;
}

static int Core_clear(Core* s) {
  Py_CLEAR(s->serde);
  return 0;
}

static void Core_dealloc(Core* s) {
  PyObject_GC_UnTrack(s);
  if (s->c)
    mcr_client_free(s->c);
  /* A lock inherited across fork may be held: only free our own. */
  if (s->lock && s->fork_gen == g_fork_gen)
    PyThread_free_lock(s->lock);
  Py_XDECREF(s->serde);
  Py_XDECREF(s->prefix);
  Py_XDECREF(s->encoding);
  Py_TYPE(s)->tp_free((PyObject*)s);
}

static int Core_init(Core* s, PyObject* args, PyObject* kw) {
  static char* names[] = {"servers",
                          "ring_dir",
                          "distribution",
                          "connect_timeout_ms",
                          "io_timeout_ms",
                          "keepalive",
                          "failure_limit",
                          "retry_timeout_ms",
                          "eject",
                          "serde",
                          "key_prefix",
                          "encoding",
                          "allow_unicode_keys",
                          "default_noreply",
                          "ignore_reads",
                          "ignore_writes",
                          "item_size_max",
                          "tls",
                          "tls_ca_file",
                          "tls_ca_dir",
                          "tls_cert_file",
                          "tls_key_file",
                          "tls_server_name",
                          "tls_insecure",
                          "tls_min_version",
                          "elasticache",
                          "discovery_interval_ms",
                          "ring_owner_uid",
                          NULL};
  const char* servers = NULL;
  const char* ring_dir = NULL;
  const char* elasticache = NULL;
  int interval = 60000;
  long ring_owner = -1; /* mcr_client_opts_t.ring_owner_uid: -1 unset */
  const char* dist = "ketama";
  int cto = 1000, ito = 1000, keepalive = 0, flimit = 2, retry = 1000,
      eject = 0, allow_unicode = 0, dnoreply = 1, ign_r = 0, ign_w = 0;
  Py_ssize_t item_max = 1024 * 1024;
  int tls = 0, tls_insecure = 0, tls_min = 12;
  const char *ca_file = NULL, *ca_dir = NULL, *cert_file = NULL,
             *key_file = NULL, *server_name = NULL;
  PyObject* serde = Py_None;
  PyObject* prefix = NULL;
  PyObject* encoding = NULL;
  if (!PyArg_ParseTupleAndKeywords(
          args, kw, "|$zzsiipiipOSUppppnpzzzzzpizil", names, &servers,
          &ring_dir, &dist, &cto, &ito, &keepalive, &flimit, &retry, &eject,
          &serde, &prefix, &encoding, &allow_unicode, &dnoreply, &ign_r, &ign_w,
          &item_max, &tls, &ca_file, &ca_dir, &cert_file, &key_file,
          &server_name, &tls_insecure, &tls_min, &elasticache, &interval,
          &ring_owner))
    return -1;
  /* The uid the ring's files must belong to: meaningful only with a ring
   * directory, where it also lifts the check on who could have made the
   * directory (mcring.h). uid_t is 32 bits; (uid_t)-1 is no uid. */
  if (ring_owner != -1 && (ring_owner < 0 || ring_owner > 0xFFFFFFFEL)) {
    PyErr_Format(PyExc_ValueError,
                 "ring_owner_uid must be a uid (0..4294967294) or -1, not %ld",
                 ring_owner);
    return -1;
  }
  if (ring_owner != -1 && !ring_dir) {
    PyErr_SetString(PyExc_ValueError,
                    "ring_owner_uid is only meaningful with ring_dir");
    return -1;
  }
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = servers;
  o.ring_dir = ring_dir;
  o.ring_owner_uid = ring_owner;
  o.elasticache = elasticache;
  o.discovery_interval_ms = interval;
  if (mcr_distribution_parse(dist, &o.distribution)) {
    PyErr_Format(PyExc_ValueError,
                 "distribution must be 'ketama', 'ketama-libmemcached' or "
                 "'xxh3', not '%s'",
                 dist);
    return -1;
  }
  o.connect_timeout_ms = cto;
  o.io_timeout_ms = ito;
  o.tcp_keepalive = keepalive;
  o.failure_limit = flimit;
  o.retry_timeout_ms = retry;
  o.eject = eject;
  o.item_size_max = (size_t)item_max;
  /* TLS (docs/tls.md): files are read by mcr_client_new, strings copied. */
  o.tls.enable = tls;
  o.tls.ca_file = ca_file;
  o.tls.ca_dir = ca_dir;
  o.tls.cert_file = cert_file;
  o.tls.key_file = key_file;
  o.tls.server_name = server_name;
  o.tls.insecure = tls_insecure;
  o.tls.min_version = tls_min;
  mcr_client_t* c = NULL;
  /* libmcring's own buffers are 512: a ring directory's refusal says how
   * to fix it near the end, which 256 would cut off. */
  char err[512] = "";
  int rc;
  NOGIL(rc, mcr_client_new(&c, &o, err, sizeof err));
  if (rc) {
    raise_rc_text(rc, err);
    return -1;
  }
  if (s->c)
    mcr_client_free(s->c);
  s->c = c;
  if (!s->lock) {
    s->lock = PyThread_allocate_lock();
    s->fork_gen = g_fork_gen;
    if (!s->lock) {
      PyErr_NoMemory();
      return -1;
    }
  }
  Py_XSETREF(s->serde, serde == Py_None ? NULL : Py_NewRef(serde));
  Py_XSETREF(s->prefix, prefix ? Py_NewRef(prefix) : PyBytes_FromString(""));
  Py_XSETREF(s->encoding,
             encoding ? Py_NewRef(encoding) : PyUnicode_FromString("ascii"));
  if (!s->prefix || !s->encoding)
    return -1;
  s->allow_unicode = allow_unicode;
  s->default_noreply = dnoreply;
  s->ignore_reads = ign_r;
  s->ignore_writes = ign_w;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Storage commands. */

enum { OP_SET, OP_ADD, OP_REPLACE, OP_APPEND, OP_PREPEND };

static PyObject* store(Core* s, int op, const char* fname,
                       PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
  static const char* const names[] = {"key", "value", "expire", "noreply",
                                      "flags"};
  PyObject* a[5];
  if (parse_args(fname, args, nargs, kwnames, names, 5, 2, a))
    return NULL;
  char key[KEY_BUF];
  size_t klen;
  long long ttl;
  uint32_t flags;
  if (key_prep(s, a[0], key, &klen) || int_arg(a[2], "expire", 0, &ttl))
    return NULL;
  int noreply = noreply_arg(s, a[3], 1);
  if (noreply < 0)
    return NULL;
  PyObject* data = value_prep(s, key, klen, a[1], a[4], &flags);
  if (!data)
    return NULL;
  const char* v = PyBytes_AS_STRING(data);
  size_t vlen = (size_t)PyBytes_GET_SIZE(data);
  unsigned cf = noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY;
  int rc;
  if (enter(s)) {
    Py_DECREF(data);
    return NULL;
  }
  mcr_client_t* c = s->c;
  switch (op) {
    case OP_SET:
      NOGIL(rc, mcr_client_set(c, key, klen, v, vlen, flags, ttl, cf));
      break;
    case OP_ADD:
      NOGIL(rc, mcr_client_add(c, key, klen, v, vlen, flags, ttl, cf));
      break;
    case OP_REPLACE:
      NOGIL(rc, mcr_client_replace(c, key, klen, v, vlen, flags, ttl, cf));
      break;
    case OP_APPEND:
      NOGIL(rc, mcr_client_append(c, key, klen, v, vlen, cf));
      break;
    default:
      NOGIL(rc, mcr_client_prepend(c, key, klen, v, vlen, cf));
      break;
  }
  Py_DECREF(data);
  PyObject* res = NULL;
  if (rc == MCR_OK)
    res = Py_NewRef(Py_True);
  else if (rc > 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

#define STORE_FN(name, op)                                            \
  static PyObject* Core_##name(Core* s, PyObject* const* args,        \
                               Py_ssize_t nargs, PyObject* kwnames) { \
    return store(s, op, #name, args, nargs, kwnames);                 \
  }
STORE_FN(set, OP_SET)
STORE_FN(add, OP_ADD)
STORE_FN(replace, OP_REPLACE)
STORE_FN(append, OP_APPEND)
STORE_FN(prepend, OP_PREPEND)

/* cas may be an int or a str / bytes of digits (pymemcache's _check_cas). */
static int cas_arg(PyObject* o, uint64_t* out) {
  if (PyLong_Check(o)) {
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
      PyErr_Clear();
      PyErr_SetString(exc(X_ILLEGAL), "cas must only contain values in 0-9");
      return -1;
    }
    *out = v;
    return 0;
  }
  const char* p;
  Py_ssize_t n;
  if (PyUnicode_Check(o)) {
    if (!(p = PyUnicode_AsUTF8AndSize(o, &n)))
      return -1;
  } else if (PyBytes_Check(o)) {
    p = PyBytes_AS_STRING(o);
    n = PyBytes_GET_SIZE(o);
  } else {
    PyErr_Format(exc(X_ILLEGAL),
                 "cas must be integer, string, or bytes, got bad value: %R", o);
    return -1;
  }
  uint64_t v = 0;
  if (n == 0 || n > 20)
    goto bad;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      goto bad;
    uint64_t d = (uint64_t)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      goto bad;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
bad:
  PyErr_SetString(exc(X_ILLEGAL), "cas must only contain values in 0-9");
  return -1;
}

static PyObject* Core_cas(Core* s, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* kwnames) {
  static const char* const names[] = {"key",    "value",   "cas",
                                      "expire", "noreply", "flags"};
  PyObject* a[6];
  if (parse_args("cas", args, nargs, kwnames, names, 6, 3, a))
    return NULL;
  char key[KEY_BUF];
  size_t klen;
  long long ttl;
  uint64_t cas;
  uint32_t flags;
  if (key_prep(s, a[0], key, &klen) || int_arg(a[3], "expire", 0, &ttl) ||
      cas_arg(a[2], &cas))
    return NULL;
  int noreply = noreply_arg(s, a[4], 0);
  if (noreply < 0)
    return NULL;
  PyObject* data = value_prep(s, key, klen, a[1], a[5], &flags);
  if (!data)
    return NULL;
  if (enter(s)) {
    Py_DECREF(data);
    return NULL;
  }
  int rc;
  NOGIL(rc, mcr_client_cas(s->c, key, klen, PyBytes_AS_STRING(data),
                           (size_t)PyBytes_GET_SIZE(data), flags, ttl, cas,
                           noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY));
  Py_DECREF(data);
  PyObject* res = NULL;
  if (rc == MCR_OK)
    res = Py_NewRef(Py_True);
  else if (rc == MCR_NOT_FOUND)
    res = Py_NewRef(Py_None);
  else if (rc > 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

/* ------------------------------------------------------------------------ */
/* Retrieval. */

enum { R_GET, R_GETS, R_GAT, R_GATS };

/* A cas unique as pymemcache returns it: the decimal digits, as bytes
 * (cas() takes them back, as it takes an int or a str). */
static PyObject* cas_bytes(uint64_t cas) {
  char text[24];
  int n = snprintf(text, sizeof text, "%llu", (unsigned long long)cas);
  return PyBytes_FromStringAndSize(text, n);
}

static PyObject* fetch_one(Core* s, int kind, PyObject* keyobj, long long ttl,
                           PyObject* dflt, PyObject* cas_dflt) {
  char key[KEY_BUF];
  size_t klen;
  if (key_prep(s, keyobj, key, &klen) || enter(s))
    return NULL;
  mcr_item_t it;
  int rc;
  switch (kind) {
    case R_GET:
      NOGIL(rc, mcr_client_get(s->c, key, klen, &it));
      break;
    case R_GETS:
      NOGIL(rc, mcr_client_gets(s->c, key, klen, &it));
      break;
    case R_GAT:
      NOGIL(rc, mcr_client_gat(s->c, key, klen, ttl, &it));
      break;
    default:
      NOGIL(rc, mcr_client_gats(s->c, key, klen, ttl, &it));
      break;
  }
  PyObject* res = NULL;
  int with_cas = kind == R_GETS || kind == R_GATS;
  if (rc == MCR_OK) {
    PyObject* raw = value_copy(&it);
    leave(s);
    PyObject* v = value_finish(s, key, klen, raw, it.flags);
    if (v && with_cas)
      return Py_BuildValue("(NN)", v, cas_bytes(it.cas));
    return v;
  }
  if (rc > 0 || (s->ignore_reads && is_failure(rc))) {
    if (with_cas)
      res = PyTuple_Pack(2, dflt, cas_dflt);
    else
      res = Py_NewRef(dflt);
  } else {
    raise_rc(s, rc);
  }
  leave(s);
  return res;
}

static PyObject* Core_get(Core* s, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* kwnames) {
  static const char* const names[] = {"key", "default"};
  PyObject* a[2];
  if (parse_args("get", args, nargs, kwnames, names, 2, 1, a))
    return NULL;
  return fetch_one(s, R_GET, a[0], 0, a[1] ? a[1] : Py_None, Py_None);
}

static PyObject* Core_gets(Core* s, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) {
  static const char* const names[] = {"key", "default", "cas_default"};
  PyObject* a[3];
  if (parse_args("gets", args, nargs, kwnames, names, 3, 1, a))
    return NULL;
  return fetch_one(s, R_GETS, a[0], 0, a[1] ? a[1] : Py_None,
                   a[2] ? a[2] : Py_None);
}

static PyObject* Core_gat(Core* s, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* kwnames) {
  static const char* const names[] = {"key", "expire", "default"};
  PyObject* a[3];
  long long ttl;
  if (parse_args("gat", args, nargs, kwnames, names, 3, 1, a) ||
      int_arg(a[1], "expire", 0, &ttl))
    return NULL;
  return fetch_one(s, R_GAT, a[0], ttl, a[2] ? a[2] : Py_None, Py_None);
}

static PyObject* Core_gats(Core* s, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) {
  static const char* const names[] = {"key", "expire", "default",
                                      "cas_default"};
  PyObject* a[4];
  long long ttl;
  if (parse_args("gats", args, nargs, kwnames, names, 4, 1, a) ||
      int_arg(a[1], "expire", 0, &ttl))
    return NULL;
  return fetch_one(s, R_GATS, a[0], ttl, a[2] ? a[2] : Py_None,
                   a[3] ? a[3] : Py_None);
}

/* Keys of a multi-key call, prefixed and checked, in one allocation. */
typedef struct {
  PyObject* seq; /* PySequence_Fast of the caller's keys */
  Py_ssize_t n;
  char* buf; /* n * KEY_BUF */
  const char** ptrs;
  size_t* lens;
} keyset_t;

static void keyset_free(keyset_t* k) {
  Py_XDECREF(k->seq);
  PyMem_Free(k->buf);
  PyMem_Free(k->ptrs);
  PyMem_Free(k->lens);
}

static int keyset_init(Core* s, keyset_t* k, PyObject* keys) {
  memset(k, 0, sizeof *k);
  if (!(k->seq = PySequence_Fast(keys, "keys must be iterable")))
    return -1;
  k->n = PySequence_Fast_GET_SIZE(k->seq);
  Py_ssize_t n = k->n ? k->n : 1;
  k->buf = PyMem_Malloc((size_t)n * KEY_BUF);
  k->ptrs = PyMem_Malloc((size_t)n * sizeof *k->ptrs);
  k->lens = PyMem_Malloc((size_t)n * sizeof *k->lens);
  if (!k->buf || !k->ptrs || !k->lens) {
    PyErr_NoMemory();
    return -1;
  }
  PyObject** items = PySequence_Fast_ITEMS(k->seq);
  for (Py_ssize_t i = 0; i < k->n; i++) {
    char* b = k->buf + (size_t)i * KEY_BUF;
    if (key_prep(s, items[i], b, &k->lens[i]))
      return -1;
    k->ptrs[i] = b;
  }
  return 0;
}

static PyObject* fetch_many(Core* s, PyObject* keys, int with_cas) {
  keyset_t k;
  PyObject* res = NULL;
  mcr_item_t* items = NULL;
  PyObject** raw = NULL;
  if (keyset_init(s, &k, keys))
    goto out;
  res = PyDict_New();
  if (!res || k.n == 0)
    goto out;
  items = PyMem_Malloc((size_t)k.n * sizeof *items);
  raw = PyMem_Calloc((size_t)k.n, sizeof *raw);
  if (!items || !raw) {
    PyErr_NoMemory();
    Py_CLEAR(res);
    goto out;
  }
  if (enter(s)) {
    Py_CLEAR(res);
    goto out;
  }
  int rc;
  size_t hits = 0;
  if (with_cas)
    NOGIL(rc, mcr_client_gets_multi(s->c, (size_t)k.n, k.ptrs, k.lens, items,
                                    &hits));
  else
    NOGIL(rc, mcr_client_get_multi(s->c, (size_t)k.n, k.ptrs, k.lens, items,
                                   &hits));
  /* Under the lock: copy the hits out of client memory, or fail. */
  if (rc < 0) {
    raise_rc(s, rc);
    Py_CLEAR(res);
  } else {
    for (Py_ssize_t i = 0; i < k.n; i++) {
      int st = items[i].status;
      if (st == MCR_OK) {
        if (!(raw[i] = value_copy(&items[i]))) {
          Py_CLEAR(res);
          break;
        }
      } else if (st < 0 && !(s->ignore_reads && is_failure(st))) {
        raise_rc(s, st);
        Py_CLEAR(res);
        break;
      }
    }
  }
  leave(s);
  /* Without it: deserialize and fill the dict. */
  if (res) {
    PyObject** orig = PySequence_Fast_ITEMS(k.seq);
    for (Py_ssize_t i = 0; i < k.n; i++) {
      if (!raw[i])
        continue;
      PyObject* v =
          value_finish(s, k.ptrs[i], k.lens[i], raw[i], items[i].flags);
      raw[i] = NULL;
      if (v && with_cas)
        v = Py_BuildValue("(NN)", v, cas_bytes(items[i].cas));
      if (!v || PyDict_SetItem(res, orig[i], v)) {
        Py_XDECREF(v);
        Py_CLEAR(res);
        break;
      }
      Py_DECREF(v);
    }
  }
out:
  if (raw)
    for (Py_ssize_t i = 0; i < k.n; i++)
      Py_XDECREF(raw[i]);
  PyMem_Free(raw);
  PyMem_Free(items);
  keyset_free(&k);
  return res;
}

static PyObject* Core_get_many(Core* s, PyObject* const* args, Py_ssize_t nargs,
                               PyObject* kwnames) {
  static const char* const names[] = {"keys"};
  PyObject* a[1];
  if (parse_args("get_many", args, nargs, kwnames, names, 1, 1, a))
    return NULL;
  return fetch_many(s, a[0], 0);
}

static PyObject* Core_gets_many(Core* s, PyObject* const* args,
                                Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"keys"};
  PyObject* a[1];
  if (parse_args("gets_many", args, nargs, kwnames, names, 1, 1, a))
    return NULL;
  return fetch_many(s, a[0], 1);
}

/* set_many(values, expire=0, noreply=None, flags=None): the keys that were
 * not stored. libmcring stores a batch with one flags value, so values are
 * sent in one batch per distinct flags (usually one or two). */
static PyObject* Core_set_many(Core* s, PyObject* const* args, Py_ssize_t nargs,
                               PyObject* kwnames) {
  static const char* const names[] = {"values", "expire", "noreply", "flags"};
  PyObject* a[4];
  if (parse_args("set_many", args, nargs, kwnames, names, 4, 1, a))
    return NULL;
  long long ttl;
  if (int_arg(a[1], "expire", 0, &ttl))
    return NULL;
  int noreply = noreply_arg(s, a[2], 1);
  if (noreply < 0)
    return NULL;
  PyObject* pairs = PyMapping_Items(a[0]);
  if (!pairs)
    return NULL;
  Py_ssize_t n = PyList_GET_SIZE(pairs);
  PyObject* failed = PyList_New(0);
  char* kbuf = PyMem_Malloc((size_t)(n ? n : 1) * KEY_BUF);
  const char** kp = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *kp);
  size_t* kl = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *kl);
  PyObject** data = PyMem_Calloc((size_t)(n ? n : 1), sizeof *data);
  uint32_t* fl = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *fl);
  const void** vp = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *vp);
  size_t* vl = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *vl);
  int* st = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *st);
  /* Batch scratch: indexes of the entries with the current flags. */
  Py_ssize_t* idx = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *idx);
  const char** bk = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *bk);
  size_t* bkl = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *bkl);
  const void** bv = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *bv);
  size_t* bvl = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *bvl);
  char* done = PyMem_Calloc((size_t)(n ? n : 1), 1);
  if (!failed || !kbuf || !kp || !kl || !data || !fl || !vp || !vl || !st ||
      !idx || !bk || !bkl || !bv || !bvl || !done) {
    PyErr_NoMemory();
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject* pair = PyList_GET_ITEM(pairs, i);
    char* b = kbuf + (size_t)i * KEY_BUF;
    if (key_prep(s, PyTuple_GET_ITEM(pair, 0), b, &kl[i]))
      goto fail;
    kp[i] = b;
    data[i] = value_prep(s, b, kl[i], PyTuple_GET_ITEM(pair, 1), a[3], &fl[i]);
    if (!data[i])
      goto fail;
    vp[i] = PyBytes_AS_STRING(data[i]);
    vl[i] = (size_t)PyBytes_GET_SIZE(data[i]);
  }
  if (n && enter(s))
    goto fail;
  int err = 0;
  unsigned cf = noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY;
  for (Py_ssize_t i = 0; i < n && !err; i++) {
    if (done[i])
      continue;
    Py_ssize_t m = 0;
    for (Py_ssize_t j = i; j < n; j++)
      if (!done[j] && fl[j] == fl[i]) {
        idx[m] = j;
        bk[m] = kp[j];
        bkl[m] = kl[j];
        bv[m] = vp[j];
        bvl[m] = vl[j];
        m++;
        done[j] = 1;
      }
    int rc;
    NOGIL(rc, mcr_client_set_multi(s->c, (size_t)m, bk, bkl, bv, bvl, fl[i],
                                   ttl, st, cf, NULL));
    if (rc < 0) {
      raise_rc(s, rc);
      err = 1;
      break;
    }
    for (Py_ssize_t q = 0; q < m; q++) {
      int r = st[q];
      if (r == MCR_OK)
        continue;
      if (r < 0 && !(s->ignore_writes && is_failure(r))) {
        raise_rc(s, r);
        err = 1;
        break;
      }
      PyObject* pair = PyList_GET_ITEM(pairs, idx[q]);
      if (PyList_Append(failed, PyTuple_GET_ITEM(pair, 0))) {
        err = 1;
        break;
      }
    }
  }
  if (n)
    leave(s);
  if (err)
    goto fail;
  goto out;
fail:
  Py_CLEAR(failed);
out:
  if (data)
    for (Py_ssize_t i = 0; i < n; i++)
      Py_XDECREF(data[i]);
  PyMem_Free(kbuf);
  PyMem_Free(kp);
  PyMem_Free(kl);
  PyMem_Free(data);
  PyMem_Free(fl);
  PyMem_Free(vp);
  PyMem_Free(vl);
  PyMem_Free(st);
  PyMem_Free(idx);
  PyMem_Free(bk);
  PyMem_Free(bkl);
  PyMem_Free(bv);
  PyMem_Free(bvl);
  PyMem_Free(done);
  Py_DECREF(pairs);
  return failed;
}

/* ------------------------------------------------------------------------ */
/* delete, delete_many, incr, decr, touch. */

static PyObject* Core_delete(Core* s, PyObject* const* args, Py_ssize_t nargs,
                             PyObject* kwnames) {
  static const char* const names[] = {"key", "noreply"};
  PyObject* a[2];
  char key[KEY_BUF];
  size_t klen;
  if (parse_args("delete", args, nargs, kwnames, names, 2, 1, a) ||
      key_prep(s, a[0], key, &klen))
    return NULL;
  int noreply = noreply_arg(s, a[1], 1);
  if (noreply < 0 || enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_delete(s->c, key, klen,
                              noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY));
  PyObject* res = NULL;
  if (rc >= 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(rc == MCR_OK ? Py_True : Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

static PyObject* Core_delete_many(Core* s, PyObject* const* args,
                                  Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"keys", "noreply"};
  PyObject* a[2];
  if (parse_args("delete_many", args, nargs, kwnames, names, 2, 1, a))
    return NULL;
  int noreply = noreply_arg(s, a[1], 1);
  if (noreply < 0)
    return NULL;
  keyset_t k;
  int* st = NULL;
  PyObject* res = NULL;
  if (keyset_init(s, &k, a[0]))
    goto out;
  if (k.n == 0) {
    res = Py_NewRef(Py_True);
    goto out;
  }
  if (!(st = PyMem_Malloc((size_t)k.n * sizeof *st))) {
    PyErr_NoMemory();
    goto out;
  }
  if (enter(s))
    goto out;
  int rc;
  NOGIL(rc, mcr_client_delete_multi(s->c, (size_t)k.n, k.ptrs, k.lens, st,
                                    noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY,
                                    NULL));
  if (rc < 0) {
    raise_rc(s, rc);
  } else {
    res = Py_NewRef(Py_True);
    for (Py_ssize_t i = 0; i < k.n; i++)
      if (st[i] < 0 && !(s->ignore_writes && is_failure(st[i]))) {
        raise_rc(s, st[i]);
        Py_CLEAR(res);
        break;
      }
  }
  leave(s);
out:
  PyMem_Free(st);
  keyset_free(&k);
  return res;
}

static PyObject* arith(Core* s, int decr, const char* fname,
                       PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) {
  static const char* const names[] = {"key", "value", "noreply"};
  PyObject* a[3];
  char key[KEY_BUF];
  size_t klen;
  if (parse_args(fname, args, nargs, kwnames, names, 3, 2, a) ||
      key_prep(s, a[0], key, &klen))
    return NULL;
  if (!PyLong_Check(a[1])) {
    PyErr_Format(exc(X_ILLEGAL), "value must be integer, got bad value: %R",
                 a[1]);
    return NULL;
  }
  unsigned long long delta = PyLong_AsUnsignedLongLong(a[1]);
  if (delta == (unsigned long long)-1 && PyErr_Occurred()) {
    /* memcached refuses such a delta with CLIENT_ERROR. */
    PyErr_Clear();
    PyErr_SetString(exc(X_CLIENT), "invalid numeric delta argument");
    return NULL;
  }
  int noreply = noreply_arg(s, a[2], 0);
  if (noreply < 0 || enter(s))
    return NULL;
  uint64_t v = 0;
  int rc;
  unsigned cf = noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY;
  if (decr)
    NOGIL(rc, mcr_client_decr(s->c, key, klen, delta, &v, cf));
  else
    NOGIL(rc, mcr_client_incr(s->c, key, klen, delta, &v, cf));
  PyObject* res = NULL;
  if (rc == MCR_OK && !noreply)
    res = PyLong_FromUnsignedLongLong(v);
  else if (rc >= 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(Py_None);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

static PyObject* Core_incr(Core* s, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) {
  return arith(s, 0, "incr", args, nargs, kwnames);
}

static PyObject* Core_decr(Core* s, PyObject* const* args, Py_ssize_t nargs,
                           PyObject* kwnames) {
  return arith(s, 1, "decr", args, nargs, kwnames);
}

static PyObject* Core_touch(Core* s, PyObject* const* args, Py_ssize_t nargs,
                            PyObject* kwnames) {
  static const char* const names[] = {"key", "expire", "noreply"};
  PyObject* a[3];
  char key[KEY_BUF];
  size_t klen;
  long long ttl;
  if (parse_args("touch", args, nargs, kwnames, names, 3, 1, a) ||
      key_prep(s, a[0], key, &klen) || int_arg(a[1], "expire", 0, &ttl))
    return NULL;
  int noreply = noreply_arg(s, a[2], 1);
  if (noreply < 0 || enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_touch(s->c, key, klen, ttl,
                             noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY));
  PyObject* res = NULL;
  if (rc >= 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(rc == MCR_OK ? Py_True : Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

/* ------------------------------------------------------------------------ */
/* Whole-server commands. */

static PyObject* Core_flush_all(Core* s, PyObject* const* args,
                                Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"delay", "noreply"};
  PyObject* a[2];
  long long delay;
  if (parse_args("flush_all", args, nargs, kwnames, names, 2, 0, a) ||
      int_arg(a[0], "delay", 0, &delay))
    return NULL;
  int noreply = noreply_arg(s, a[1], 1);
  if (noreply < 0 || enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_flush_all(s->c, delay,
                                 noreply ? MCR_CALL_NOREPLY : MCR_CALL_REPLY));
  PyObject* res = NULL;
  if (rc >= 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(rc == MCR_OK ? Py_True : Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

static PyObject* Core_cache_memlimit(Core* s, PyObject* const* args,
                                     Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"memlimit"};
  PyObject* a[1];
  long long mb;
  if (parse_args("cache_memlimit", args, nargs, kwnames, names, 1, 1, a) ||
      int_arg(a[0], "memlimit", 0, &mb))
    return NULL;
  if (mb < 0) {
    PyErr_SetString(exc(X_ILLEGAL), "memlimit must not be negative");
    return NULL;
  }
  if (enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_cache_memlimit(s->c, (uint64_t)mb, MCR_CALL_REPLY));
  PyObject* res = rc >= 0 ? Py_NewRef(Py_True) : raise_rc(s, rc);
  leave(s);
  return res;
}

/* _stats_node(i, arg): {name bytes: value bytes} of node i, raw. */
static PyObject* Core_stats_node(Core* s, PyObject* const* args,
                                 Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_stats_node(node, arg)");
    return NULL;
  }
  Py_ssize_t node = PyLong_AsSsize_t(args[0]);
  if (node < 0 && PyErr_Occurred())
    return NULL;
  const char* arg = NULL;
  if (args[1] != Py_None && !(arg = PyUnicode_AsUTF8(args[1])))
    return NULL;
  if (enter(s))
    return NULL;
  const mcr_stat_t* st;
  size_t n = 0;
  int rc;
  NOGIL(rc, mcr_client_stats_node(s->c, (size_t)node, arg, &st, &n));
  PyObject* res = NULL;
  if (rc < 0 && !(s->ignore_reads && is_failure(rc))) {
    raise_rc(s, rc);
  } else if ((res = PyDict_New()) && rc >= 0) {
    for (size_t i = 0; i < n; i++) {
      PyObject* k = PyBytes_FromString(st[i].name);
      PyObject* v = PyBytes_FromString(st[i].value ? st[i].value : "");
      if (!k || !v || PyDict_SetItem(res, k, v)) {
        Py_XDECREF(k);
        Py_XDECREF(v);
        Py_CLEAR(res);
        break;
      }
      Py_DECREF(k);
      Py_DECREF(v);
    }
  }
  leave(s);
  return res;
}

static PyObject* Core_version_node(Core* s, PyObject* node_obj) {
  Py_ssize_t node = PyLong_AsSsize_t(node_obj);
  if (node < 0 && PyErr_Occurred())
    return NULL;
  if (enter(s))
    return NULL;
  const char* text = NULL;
  int rc;
  NOGIL(rc, mcr_client_version(s->c, (size_t)node, &text));
  PyObject* res =
      rc >= 0 ? PyBytes_FromString(text ? text : "") : raise_rc(s, rc);
  leave(s);
  return res;
}

static PyObject* Core_quit(Core* s, PyObject* unused) {
  if (enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_quit(s->c));
  (void)rc; /* always 0 */
  leave(s);
  Py_RETURN_NONE;
}

/* _nodes(): ["host:port", ...] in node order. */
static PyObject* Core_nodes(Core* s, PyObject* unused) {
  if (enter(s))
    return NULL;
  size_t n = mcr_client_node_count(s->c);
  PyObject* res = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; res && i < n; i++) {
    PyObject* name = PyUnicode_FromString(mcr_client_node_name(s->c, i));
    if (!name) {
      Py_CLEAR(res);
      break;
    }
    PyList_SET_ITEM(res, (Py_ssize_t)i, name);
  }
  leave(s);
  return res;
}

/* node_for_key(key): "host:port" of the node the key (prefixed) goes to,
 * as the ring names it; the routing is libmcring's own. */
static PyObject* Core_node_for_key(Core* s, PyObject* keyobj) {
  char key[KEY_BUF];
  size_t klen;
  if (key_prep(s, keyobj, key, &klen) || enter(s))
    return NULL;
  const mcr_ring_t* r = mcr_client_ring(s->c);
  PyObject* res;
  if (!r) {
    res = PyUnicode_FromString(mcr_client_node_name(s->c, 0));
  } else {
    mcr_ring_node_t nd;
    size_t i = mcr_ring_locate(r, key, klen);
    int e = mcr_ring_node(r, i, &nd);
    if (e) {
      res = raise_rc_text(e, "the ring entry of the key's node is damaged");
    } else if (nd.port == 0) {
      res = PyUnicode_FromString(nd.host);
    } else if (strchr(nd.host, ':')) {
      res = PyUnicode_FromFormat("[%s]:%u", nd.host, (unsigned)nd.port);
    } else {
      res = PyUnicode_FromFormat("%s:%u", nd.host, (unsigned)nd.port);
    }
  }
  leave(s);
  return res;
}

/* ------------------------------------------------------------------------ */
/* Leases (docs/leases.md): the two halves get_or_compute is made of. */

/* _lease_get(key, lease_ttl, recache_ttl, wait_ms, poll_ms) ->
 * (state, value or None, token): state is MCR_LEASE_* (0 hit, 1 won,
 * 2 stale, 3 busy), value the deserialized value when one came (a hit, a
 * stale value, or the current value of an early recache), token what
 * _lease_fill presents. */
static PyObject* Core_lease_get(Core* s, PyObject* const* args,
                                Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"key", "lease_ttl", "recache_ttl",
                                      "wait_ms", "poll_ms"};
  PyObject* a[5];
  if (parse_args("_lease_get", args, nargs, kwnames, names, 5, 5, a))
    return NULL;
  char key[KEY_BUF];
  size_t klen;
  long long lease_ttl, recache_ttl, wait_ms, poll_ms;
  if (key_prep(s, a[0], key, &klen) ||
      int_arg(a[1], "lease_ttl", 30, &lease_ttl) ||
      int_arg(a[2], "recache_ttl", 0, &recache_ttl) ||
      int_arg(a[3], "wait", 1000, &wait_ms) ||
      int_arg(a[4], "poll", 10, &poll_ms))
    return NULL;
  if (wait_ms < 0 || wait_ms > UINT32_MAX || poll_ms < 1 ||
      poll_ms > UINT32_MAX) {
    PyErr_SetString(exc(X_ILLEGAL), "wait must be >= 0 and poll > 0 seconds");
    return NULL;
  }
  mcr_lease_opts_t lo;
  mcr_lease_opts_init(&lo);
  lo.lease_ttl = lease_ttl;
  lo.recache_ttl = recache_ttl;
  lo.wait_ms = (uint32_t)wait_ms;
  lo.poll_ms = (uint32_t)poll_ms;
  if (enter(s))
    return NULL;
  mcr_lease_t l;
  int rc;
  NOGIL(rc, mcr_client_lease_get(s->c, key, klen, &lo, &l));
  if (rc < 0) {
    raise_rc(s, rc);
    leave(s);
    return NULL;
  }
  PyObject* raw = NULL;
  if (l.has_value &&
      !(raw = PyBytes_FromStringAndSize(l.value, (Py_ssize_t)l.value_len))) {
    leave(s);
    return NULL;
  }
  leave(s);
  PyObject* v = raw ? value_finish(s, key, klen, raw, l.client_flags)
                    : Py_NewRef(Py_None);
  if (!v)
    return NULL;
  return Py_BuildValue("(iNK)", l.state, v, (unsigned long long)l.cas);
}

/* _lease_fill(key, value, token, expire) -> True when stored, False when
 * a newer value or invalidation won (or the lease lapsed and another
 * process stored first), None when the value's stored form is empty (not
 * stored: it would read as a key being computed). The value goes through
 * the serde like set's. */
static PyObject* Core_lease_fill(Core* s, PyObject* const* args,
                                 Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"key", "value", "token", "expire"};
  PyObject* a[4];
  if (parse_args("_lease_fill", args, nargs, kwnames, names, 4, 4, a))
    return NULL;
  char key[KEY_BUF];
  size_t klen;
  long long ttl;
  uint64_t token;
  uint32_t flags;
  if (key_prep(s, a[0], key, &klen) || cas_arg(a[2], &token) ||
      int_arg(a[3], "expire", 0, &ttl))
    return NULL;
  PyObject* data = value_prep(s, key, klen, a[1], NULL, &flags);
  if (!data)
    return NULL;
  if (PyBytes_GET_SIZE(data) == 0) {
    Py_DECREF(data);
    Py_RETURN_NONE;
  }
  if (enter(s)) {
    Py_DECREF(data);
    return NULL;
  }
  mcr_lease_t l = {.state = MCR_LEASE_WON, .cas = token};
  int rc;
  NOGIL(rc,
        mcr_client_lease_fill(s->c, key, klen, PyBytes_AS_STRING(data),
                              (size_t)PyBytes_GET_SIZE(data), flags, ttl, &l));
  Py_DECREF(data);
  PyObject* res = NULL;
  if (rc == MCR_OK)
    res = Py_NewRef(Py_True);
  else if (rc > 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

/* invalidate(key, stale_ttl=30): marks the value stale instead of deleting
 * it: the next get_or_compute recomputes it while the others keep the old
 * value. False when the key is absent. */
static PyObject* Core_invalidate(Core* s, PyObject* const* args,
                                 Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"key", "stale_ttl"};
  PyObject* a[2];
  if (parse_args("invalidate", args, nargs, kwnames, names, 2, 1, a))
    return NULL;
  char key[KEY_BUF];
  size_t klen;
  long long stale;
  if (key_prep(s, a[0], key, &klen) || int_arg(a[1], "stale_ttl", 30, &stale))
    return NULL;
  if (enter(s))
    return NULL;
  int rc;
  NOGIL(rc, mcr_client_lease_invalidate(s->c, key, klen, stale));
  PyObject* res = NULL;
  if (rc == MCR_OK)
    res = Py_NewRef(Py_True);
  else if (rc > 0 || (s->ignore_writes && is_failure(rc)))
    res = Py_NewRef(Py_False);
  else
    raise_rc(s, rc);
  leave(s);
  return res;
}

/* _client_stats(): libmcring's per-handle counters, as a dict. */
static PyObject* Core_client_stats(Core* s, PyObject* unused) {
  if (enter(s))
    return NULL;
  mcr_client_stats_t st;
  mcr_client_stats(s->c, &st);
  uint64_t gen = mcr_client_generation(s->c);
  leave(s);
  return Py_BuildValue(
      "{sKsKsKsKsKsKsKsK}", "ignored_errors",
      (unsigned long long)st.ignored_errors, "reconnects",
      (unsigned long long)st.reconnects, "ring_switches",
      (unsigned long long)st.ring_switches, "ring_errors",
      (unsigned long long)st.ring_errors, "compressed",
      (unsigned long long)st.compressed, "generation", (unsigned long long)gen,
      "discovery_polls", (unsigned long long)st.discovery_polls,
      "discovery_peers", (unsigned long long)st.discovery_peers);
}

/* ------------------------------------------------------------------------ */
/* Type and module. */

#define FC(name, fn, doc) \
  { name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, doc }

static PyMethodDef Core_methods[] = {
    FC("set", Core_set,
       "set($self, /, key, value, expire=0, noreply=None, flags=None)\n--\n\n"
       "Store a value. True when stored (always True with noreply)."),
    FC("add", Core_add,
       "add($self, /, key, value, expire=0, noreply=None, flags=None)\n--\n\n"
       "Store only if the key is absent. False when it exists."),
    FC("replace", Core_replace,
       "replace($self, /, key, value, expire=0, noreply=None, "
       "flags=None)\n--\n\n"
       "Store only if the key exists. False when it is absent."),
    FC("append", Core_append,
       "append($self, /, key, value, expire=0, noreply=None, "
       "flags=None)\n--\n\n"
       "Append bytes to an existing value. False when the key is absent."),
    FC("prepend", Core_prepend,
       "prepend($self, /, key, value, expire=0, noreply=None, "
       "flags=None)\n--\n\n"
       "Prepend bytes to an existing value. False when the key is absent."),
    FC("cas", Core_cas,
       "cas($self, /, key, value, cas, expire=0, noreply=False, "
       "flags=None)\n--\n\n"
       "Check-and-set: True (stored), False (changed since), None (absent)."),
    FC("get", Core_get,
       "get($self, /, key, default=None)\n--\n\nThe value of key, or default "
       "on a miss."),
    FC("gets", Core_gets,
       "gets($self, /, key, default=None, cas_default=None)\n--\n\nReturns "
       "(value, cas). "
       "The value and its cas unique, or (default, cas_default)."),
    FC("gat", Core_gat,
       "gat($self, /, key, expire=0, default=None)\n--\n\n"
       "Get and touch: the value, with its TTL reset to expire."),
    FC("gats", Core_gats,
       "gats($self, /, key, expire=0, default=None, cas_default=None)\n--\n\n"
       "Get and touch with the cas unique: (value, cas)."),
    FC("get_many", Core_get_many,
       "get_many($self, /, keys)\n--\n\nReturns dict. The hits only, keyed by "
       "the keys given. "
       "One request per node."),
    FC("get_multi", Core_get_many, "Alias of get_many."),
    FC("gets_many", Core_gets_many,
       "gets_many($self, /, keys)\n--\n\nReturns dict. {key: (value, cas)} for "
       "the hits."),
    FC("gets_multi", Core_gets_many, "Alias of gets_many."),
    FC("set_many", Core_set_many,
       "set_many($self, /, values, expire=0, noreply=None, "
       "flags=None)\n--\n\nReturns list. "
       "Store a dict of values; returns the keys that were not stored."),
    FC("set_multi", Core_set_many, "Alias of set_many."),
    FC("delete", Core_delete,
       "delete($self, /, key, noreply=None)\n--\n\n"
       "False when the key was absent (always True with noreply)."),
    FC("delete_many", Core_delete_many,
       "delete_many($self, /, keys, noreply=None)\n--\n\nReturns True. Delete "
       "several keys."),
    FC("delete_multi", Core_delete_many, "Alias of delete_many."),
    FC("incr", Core_incr,
       "incr($self, /, key, value, noreply=False)\n--\n\n"
       "The new value, or None when the key is absent (or noreply)."),
    FC("decr", Core_decr,
       "decr($self, /, key, value, noreply=False)\n--\n\n"
       "The new value (stops at 0), or None when the key is absent."),
    FC("touch", Core_touch,
       "touch($self, /, key, expire=0, noreply=None)\n--\n\n"
       "Set a new TTL. False when the key is absent."),
    FC("flush_all", Core_flush_all,
       "flush_all($self, /, delay=0, noreply=None)\n--\n\n"
       "Invalidate every item on every node."),
    FC("_lease_get", Core_lease_get,
       "_lease_get($self, /, key, lease_ttl, recache_ttl, wait_ms, "
       "poll_ms)\n--\n\n(state, value, token): use get_or_compute."),
    FC("_lease_fill", Core_lease_fill,
       "_lease_fill($self, /, key, value, token, expire)\n--\n\n"
       "Store the value computed under a lease: use get_or_compute."),
    FC("invalidate", Core_invalidate,
       "invalidate($self, /, key, stale_ttl=30)\n--\n\n"
       "Mark the value stale (not deleted): the next get_or_compute\n"
       "recomputes it while the others keep the old value for stale_ttl\n"
       "seconds. False when the key is absent."),
    FC("cache_memlimit", Core_cache_memlimit,
       "cache_memlimit($self, /, memlimit)\n--\n\nReturns True. "
       "Set the memory limit (MB) of every node."),
    {"_stats_node", (PyCFunction)(void (*)(void))Core_stats_node, METH_FASTCALL,
     "_stats_node(node, arg): raw stats of one node."},
    {"_version_node", (PyCFunction)Core_version_node, METH_O,
     "_version_node(node): version bytes of one node."},
    {"quit", (PyCFunction)Core_quit, METH_NOARGS,
     "quit($self, /)\n--\n\nClose every connection; the next call reconnects."},
    {"close", (PyCFunction)Core_quit, METH_NOARGS,
     "close($self, /)\n--\n\nSame as quit(): the client stays usable."},
    {"_nodes", (PyCFunction)Core_nodes, METH_NOARGS,
     "_nodes(): the node names, in node order."},
    {"node_for_key", (PyCFunction)Core_node_for_key, METH_O,
     "node_for_key($self, /, key)\n--\n\nReturns str. \"host:port\" of the "
     "node that key (with "
     "key_prefix) is routed to."},
    {"client_stats", (PyCFunction)Core_client_stats, METH_NOARGS,
     "client_stats($self, /)\n--\n\nReturns dict. libmcring's counters for "
     "this client: "
     "reconnects, ring switches, ring generation, ..."},
    {NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcring._mcring.Core",
    .tp_basicsize = sizeof(Core),
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_doc = "The C core of mcring.Client and mcring.HashClient.",
    .tp_methods = Core_methods,
    .tp_init = (initproc)Core_init,
    .tp_new = PyType_GenericNew,
};

/* _set_exceptions(dict): the exception classes, by name (x_names). */
static PyObject* set_exceptions(PyObject* mod, PyObject* d) {
  if (!PyDict_Check(d)) {
    PyErr_SetString(PyExc_TypeError, "a dict is required");
    return NULL;
  }
  for (int i = 0; i < X_COUNT; i++) {
    PyObject* e = PyDict_GetItemString(d, x_names[i]);
    if (!e) {
      PyErr_Format(PyExc_KeyError, "%s", x_names[i]);
      return NULL;
    }
    Py_XSETREF(g_exc[i], Py_NewRef(e));
  }
  Py_RETURN_NONE;
}

/* ring_locate(servers, distribution, keys) -> ["host:port", ...]: where a
 * ring built in this process puts each key (no connection is made). */
static PyObject* ring_locate(PyObject* mod, PyObject* args) {
  const char* servers;
  const char* dist;
  PyObject* keys;
  if (!PyArg_ParseTuple(args, "ssO", &servers, &dist, &keys))
    return NULL;
  mcr_distribution_t mode;
  if (mcr_distribution_parse(dist, &mode)) {
    PyErr_Format(PyExc_ValueError, "unknown distribution '%s'", dist);
    return NULL;
  }
  mcr_ring_t* r = NULL;
  char err[256] = "";
  int rc = mcr_ring_build(&r, mode, servers, err, sizeof err);
  if (rc)
    return raise_rc_text(rc, err);
  PyObject* seq = PySequence_Fast(keys, "keys must be iterable");
  PyObject* res = seq ? PyList_New(PySequence_Fast_GET_SIZE(seq)) : NULL;
  for (Py_ssize_t i = 0; res && i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject* k = PySequence_Fast_GET_ITEM(seq, i);
    const char* p;
    Py_ssize_t n;
    if (PyBytes_Check(k)) {
      p = PyBytes_AS_STRING(k);
      n = PyBytes_GET_SIZE(k);
    } else if (!(p = PyUnicode_AsUTF8AndSize(k, &n))) {
      Py_CLEAR(res);
      break;
    }
    mcr_ring_node_t nd;
    mcr_ring_node(r, mcr_ring_locate(r, p, (size_t)n), &nd);
    PyObject* name =
        nd.port ? PyUnicode_FromFormat("%s:%u", nd.host, (unsigned)nd.port)
                : PyUnicode_FromString(nd.host);
    if (!name) {
      Py_CLEAR(res);
      break;
    }
    PyList_SET_ITEM(res, i, name);
  }
  Py_XDECREF(seq);
  mcr_ring_free(r);
  return res;
}

static PyMethodDef module_methods[] = {
    {"_set_exceptions", set_exceptions, METH_O, NULL},
    {"ring_locate", ring_locate, METH_VARARGS,
     "ring_locate(servers, distribution, keys) -> list of \"host:port\"\n\n"
     "Where a ring over `servers` (\"h:p[:weight],...\") in `distribution` "
     "puts each key. No connection is made."},
    {NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "mcring._mcring",
    "The C core of mcring (libmcring). Use the mcring package.", -1,
    module_methods};

PyMODINIT_FUNC PyInit__mcring(void) {
  if (PyType_Ready(&CoreType) < 0)
    return NULL;
  PyObject* m = PyModule_Create(&moduledef);
  if (!m)
    return NULL;
  if (PyModule_AddObjectRef(m, "Core", (PyObject*)&CoreType) < 0 ||
      PyModule_AddStringConstant(m, "LIBMCRING_VERSION", HEADER_VERSION) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  static int atfork_done;
  if (!atfork_done) {
    pthread_atfork(NULL, NULL, on_fork_child);
    atfork_done = 1;
  }
  return m;
}
