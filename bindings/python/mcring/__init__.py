"""mcring: a pymemcache-compatible memcached client on libmcring.

Switch from pymemcache by changing the import::

    from mcring import Client, HashClient        # was: from pymemcache ...
    from mcring.serde import pickle_serde         # or pymemcache's own serde

``Client(server, ...)`` and ``HashClient(servers, ...)`` take pymemcache's
arguments and have its methods, results and exceptions. Differences that
matter:

* Every call is bounded: ``connect_timeout`` / ``timeout`` of ``None`` mean
  1 second each (pymemcache waits forever).
* ``HashClient`` places keys on a Ketama ring (``distribution=``): ``ketama``
  (spymemcached / pyelasticache_client), ``ketama-libmemcached`` (pylibmc
  with ``behaviors={"ketama_weighted": True}``, php-memcached) or ``xxh3``;
  pymemcache's rendezvous hashing is not offered. ``ring_dir=`` follows the
  ring mcring-agent publishes instead of a fixed list.
* A client may be shared by threads: each has a lock, held for the length
  of one call (the GIL is released while it waits on the network). For
  many threads hammering one cache, give each thread its own client
  (``threading.local()``).
* After ``fork()`` (gunicorn ``--preload``, uWSGI, multiprocessing) a child
  never reads its parent's replies: libmcring gives the child new
  connections on first use. No post-fork hook is needed.
"""

import os
import pwd
import ssl
import tempfile

from . import serde
from ._mcring import Core as _Core, ring_locate
from .exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheIllegalInputError,
    MemcacheNodeDownError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError,
    MemcacheUnknownError,
    _ALL as _EXCEPTIONS,
)
from . import _mcring

_mcring._set_exceptions(_EXCEPTIONS)

__all__ = [
    "Client",
    "HashClient",
    "PooledClient",
    "MemcacheClientError",
    "MemcacheError",
    "MemcacheIllegalInputError",
    "MemcacheNodeDownError",
    "MemcacheServerError",
    "MemcacheUnexpectedCloseError",
    "MemcacheUnknownCommandError",
    "MemcacheUnknownError",
    "ring_locate",
    "serde",
]

__version__ = "0.3.0"

_DEFAULT_TIMEOUT = 1.0

# mcr_lease_t.state (mcring.h).
_LEASE_HIT, _LEASE_WON, _LEASE_STALE, _LEASE_BUSY = 0, 1, 2, 3


def _ms(seconds, name):
    if seconds is None:
        seconds = _DEFAULT_TIMEOUT
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        raise ValueError("%s must be a positive number of seconds" % name)
    return max(1, int(round(seconds * 1000)))


def _server_entry(server):
    """One server of pymemcache's forms -> libmcring's "host:port[:weight]".

    Accepts (host, port), (host, port, weight), [host, port], "host:port",
    "host:port:weight", "host" (port 11211), "[v6]:port", "/unix/path" and
    "unix:/path".
    """
    if isinstance(server, (tuple, list)):
        if len(server) not in (2, 3):
            raise ValueError("Unknown server provided: %r" % (server,))
        host, port = server[0], int(server[1])
        weight = int(server[2]) if len(server) == 3 else None
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        entry = "%s:%d" % (host, port)
        return entry if weight is None else "%s:%d" % (entry, weight)
    if not isinstance(server, str):
        raise ValueError("Unknown server provided: %r" % (server,))
    if server.startswith("unix:"):
        return server[5:]
    if server.startswith("/"):
        return server
    if ":" not in server or server.endswith("]"):
        return "%s:11211" % server
    return server


def _ring_owner_uid(ring_owner, ring_dir):
    """ring_owner= -> libmcring's ring_owner_uid (-1: not given).

    A user name is looked up with pwd; a string of digits that names no
    user is a uid, as ``mcring --ring-owner`` takes it.
    """
    if ring_owner is None:
        return -1
    if ring_dir is None:
        raise ValueError("ring_owner is only meaningful with ring_dir "
                         "(the user the agent's ring files belong to)")
    if isinstance(ring_owner, str):
        try:
            return pwd.getpwnam(ring_owner).pw_uid
        except (KeyError, ValueError):
            if not (ring_owner.isascii() and ring_owner.isdigit()):
                raise ValueError("ring_owner: no user named %r"
                                 % ring_owner) from None
            uid = int(ring_owner)
    elif isinstance(ring_owner, int) and not isinstance(ring_owner, bool):
        uid = ring_owner
    else:
        raise TypeError("ring_owner must be a user name (str) or a uid "
                        "(int), not %s" % type(ring_owner).__name__)
    if not 0 <= uid <= 0xFFFFFFFE:
        raise ValueError("ring_owner: %d is not a uid (0..4294967294)" % uid)
    return uid


def _prefix(key_prefix):
    if isinstance(key_prefix, str):
        key_prefix = key_prefix.encode("ascii")
    if not isinstance(key_prefix, bytes):
        raise TypeError("key_prefix should be bytes.")
    return key_prefix


def _serde(serde_obj, serializer, deserializer):
    if serde_obj is not None:
        return serde_obj
    if serializer is None and deserializer is None:
        return None  # bytes as given, str(v).encode() else: pymemcache's
    return serde.LegacyWrappingSerde(serializer, deserializer)


class _Tls:
    """libmcring's TLS options from pymemcache's tls_context and mcring's
    explicit tls_* arguments (docs/python.md, "TLS").

    From an ssl.SSLContext: verify_mode CERT_NONE -> no verification; else
    the CA certificates it has loaded (get_ca_certs) are written to a
    temporary PEM file that libmcring reads while the client is made (none
    loaded, as with create_default_context(): the system's store);
    minimum_version TLSv1_3 -> TLS 1.3 only. A client certificate inside a
    context cannot be read back: pass tls_cert_file / tls_key_file.
    """

    def __init__(self, tls_context, tls, tls_ca_file, tls_ca_dir,
                 tls_cert_file, tls_key_file, tls_server_name, tls_insecure):
        self.kw, self.tmp = {}, None
        if tls_context is not None:
            if not isinstance(tls_context, ssl.SSLContext):
                raise TypeError("tls_context must be an ssl.SSLContext")
            self.kw["tls"] = True
            if tls_context.verify_mode == ssl.CERT_NONE:
                self.kw["tls_insecure"] = True
            else:
                ders = tls_context.get_ca_certs(binary_form=True)
                if ders:
                    fd, self.tmp = tempfile.mkstemp(prefix="mcring-ca-",
                                                    suffix=".pem")
                    with os.fdopen(fd, "w") as f:
                        for der in ders:
                            f.write(ssl.DER_cert_to_PEM_cert(der))
                    self.kw["tls_ca_file"] = self.tmp
            if tls_context.minimum_version == ssl.TLSVersion.TLSv1_3:
                self.kw["tls_min_version"] = 13
        explicit = {"tls_ca_file": tls_ca_file, "tls_ca_dir": tls_ca_dir,
                    "tls_cert_file": tls_cert_file,
                    "tls_key_file": tls_key_file,
                    "tls_server_name": tls_server_name}
        for k, v in explicit.items():
            if v is not None:
                self.kw[k] = os.fspath(v)
        if tls_insecure:
            self.kw["tls_insecure"] = True
        if tls or any(v is not None for v in explicit.values()) or \
                tls_insecure:
            self.kw["tls"] = True

    def done(self):
        if self.tmp:
            os.unlink(self.tmp)
            self.tmp = None


def _stat_value(name, raw):
    """A stats value as pymemcache converts it: int where it is one."""
    if name in (b"version", b"inter", b"stat_key_prefix"):
        return raw
    if name in (b"rusage_user", b"rusage_system"):
        return float(raw.replace(b":", b"."))
    if name == b"growth_factor":
        return float(raw)
    if name == b"umask":
        return int(raw, 8)
    if name == b"auth_enabled_sasl":
        return raw == b"yes"
    if name in (b"hash_is_expanding", b"slab_reassign_running",
                b"detail_enabled", b"cas_enabled", b"maxconns_fast",
                b"slab_reassign", b"slab_automove"):
        try:
            return int(raw) != 0
        except ValueError:
            return raw
    try:
        return int(raw)
    except ValueError:
        return raw


class _Base(_Core):
    # Mapping access, as pymemcache: c[k] = v, c[k], del c[k].
    def __setitem__(self, key, value):
        self.set(key, value, noreply=True)

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __delitem__(self, key):
        self.delete(key, noreply=True)

    def __enter__(self):
        return self

    def __repr__(self):
        return "<%s.%s %s>" % (type(self).__module__, type(self).__qualname__,
                               ",".join(self._nodes()))

    def __exit__(self, *exc_info):
        self.close()

    def get_or_compute(self, key, compute, expire=0, lease_ttl=30,
                       recache=0, wait=1.0, poll=0.01):
        """The value of key; when it is missing, one caller of the whole
        cluster computes it (``compute()``) and stores it, the others wait
        for that value (stampede protection on memcached's meta leases,
        docs/leases.md).

        * A hit returns the value. A miss elects one caller (a lease held
          for ``lease_ttl`` seconds): it runs ``compute()``, stores the
          result with ``expire`` and returns it.
        * The other callers re-read every ``poll`` seconds for at most
          ``wait`` seconds, then return the winner's value; if none came
          they run ``compute()`` themselves without storing it.
        * A value marked stale with ``invalidate(key)`` keeps being served
          to everyone but one caller, who recomputes it.
        * ``recache`` > 0: a hit with fewer seconds left elects one caller
          to recompute early while the others keep getting the value.
        * A winner that dies or raises holds the key for at most
          ``lease_ttl`` seconds; the exception propagates.
        * An empty stored form (``b""``) is returned but not stored: under
          leases it would read as a key being computed.
        """
        if (not isinstance(wait, (int, float)) or isinstance(wait, bool)
                or not 0 <= wait <= 3600):
            raise MemcacheIllegalInputError("wait must be 0..3600 seconds")
        if (not isinstance(poll, (int, float)) or isinstance(poll, bool)
                or not 0.001 <= poll <= 60):
            raise MemcacheIllegalInputError("poll must be 0.001..60 seconds")
        wait_ms = int(round(wait * 1000))
        poll_ms = max(1, int(round(poll * 1000)))
        state, value, token = self._lease_get(key, lease_ttl, recache,
                                              wait_ms, poll_ms)
        if state in (_LEASE_HIT, _LEASE_STALE):
            return value
        value = compute()
        if state == _LEASE_WON:
            self._lease_fill(key, value, token, expire)
        return value

    def _stats_of(self, node, args):
        arg = " ".join(a.decode() if isinstance(a, bytes) else str(a)
                       for a in args) or None
        raw = self._stats_node(node, arg)
        return {k: _stat_value(k, v) for k, v in raw.items()}


class Client(_Base):
    """A client for one memcached server, with pymemcache's interface.

    Args (pymemcache's, same defaults unless said):
      server: (host, port), "host:port", "/unix/socket" or "unix:/path".
      serde: object with serialize(key, value) -> (bytes, flags) and
        deserialize(key, bytes, flags); e.g. mcring.serde.pickle_serde or
        pymemcache.serde.pickle_serde. None: bytes as given, anything else
        stored as str(value).encode(encoding) with flags 0, read as bytes.
      serializer, deserializer: pymemcache's deprecated functions.
      connect_timeout, timeout: float seconds; None means 1 second (every
        mcring call is bounded).
      ignore_exc: True makes failed reads (get, gets, get_many, gets_many,
        stats) misses, as pymemcache; writes still raise.
      socket_keepalive: None/False off, anything else (pymemcache's
        KeepaliveOpts, True) turns SO_KEEPALIVE on (kernel's intervals).
      key_prefix: bytes prepended to every key.
      default_noreply: True (pymemcache's default): set, add, replace,
        append, prepend, delete, touch and flush_all do not wait for the
        server unless noreply=False is passed.
      allow_unicode_keys: str keys are sent as UTF-8.
      encoding: used to turn non-bytes values into bytes when no serde.
      no_delay, socket_module: accepted and ignored (mcring always sets
        TCP_NODELAY and uses its own sockets).
      tls_context: an ssl.SSLContext turns TLS on; its loaded CA
        certificates and verify_mode are used (a client certificate in it
        is not: see tls_cert_file).
      item_size_max: largest value accepted (memcached's -I), default 1 MiB.
      tls, tls_ca_file, tls_ca_dir, tls_cert_file, tls_key_file,
        tls_server_name, tls_insecure (mcring only): libmcring's TLS
        options (docs/tls.md); any of them turns TLS on.

    Thread-safe (a lock per client); fork-safe without hooks.
    """

    def __init__(self, server, serde=None, serializer=None,
                 deserializer=None, connect_timeout=None, timeout=None,
                 no_delay=False, ignore_exc=False, socket_module=None,
                 socket_keepalive=None, key_prefix=b"", default_noreply=True,
                 allow_unicode_keys=False, encoding="ascii", tls_context=None,
                 item_size_max=1024 * 1024, tls=False, tls_ca_file=None,
                 tls_ca_dir=None, tls_cert_file=None, tls_key_file=None,
                 tls_server_name=None, tls_insecure=False):
        tls_opts = _Tls(tls_context, tls, tls_ca_file, tls_ca_dir,
                        tls_cert_file, tls_key_file, tls_server_name,
                        tls_insecure)
        self.server = server
        self.serde = _serde(serde, serializer, deserializer)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.ignore_exc = ignore_exc
        self.key_prefix = _prefix(key_prefix)
        self.default_noreply = default_noreply
        self.allow_unicode_keys = allow_unicode_keys
        self.encoding = encoding
        try:
            super().__init__(
                servers=_server_entry(server),
                connect_timeout_ms=_ms(connect_timeout, "connect_timeout"),
                io_timeout_ms=_ms(timeout, "timeout"),
                keepalive=bool(socket_keepalive),
                failure_limit=0,  # one server: always try it
                serde=self.serde, key_prefix=self.key_prefix,
                encoding=encoding,
                allow_unicode_keys=bool(allow_unicode_keys),
                default_noreply=bool(default_noreply),
                ignore_reads=bool(ignore_exc), ignore_writes=False,
                item_size_max=item_size_max, **tls_opts.kw)
        finally:
            tls_opts.done()

    def stats(self, *args):
        """stats(*args) -> dict: the server's stats, numbers converted."""
        return self._stats_of(0, args)

    def version(self):
        """version() -> bytes: the server's version."""
        return self._version_node(0)

    def quit(self):
        """Close the connection; the next call reconnects."""
        super().quit()


class PooledClient(Client):
    """pymemcache's PooledClient arguments, for a one-line switch.

    mcring needs no pool: a Client is already safe to share between
    threads (a lock per client). max_pool_size, pool_idle_timeout and
    lock_generator are accepted and ignored; for many busy threads give
    each its own Client instead (docs/python.md, "Threads").
    """

    def __init__(self, server, serde=None, serializer=None,
                 deserializer=None, connect_timeout=None, timeout=None,
                 no_delay=False, ignore_exc=False, socket_module=None,
                 socket_keepalive=None, key_prefix=b"", max_pool_size=None,
                 pool_idle_timeout=0, lock_generator=None,
                 default_noreply=True, allow_unicode_keys=False,
                 encoding="ascii", tls_context=None, **mcring_options):
        super().__init__(
            server, serde=serde, serializer=serializer,
            deserializer=deserializer, connect_timeout=connect_timeout,
            timeout=timeout, ignore_exc=ignore_exc,
            socket_keepalive=socket_keepalive, key_prefix=key_prefix,
            default_noreply=default_noreply,
            allow_unicode_keys=allow_unicode_keys, encoding=encoding,
            tls_context=tls_context, **mcring_options)


class HashClient(_Base):
    """A client for several memcached servers on a Ketama ring.

    Takes pymemcache HashClient's arguments; in addition:
      distribution: "ketama" (default; spymemcached / pyelasticache_client
        placement), "ketama-libmemcached" (pylibmc ketama_weighted,
        php-memcached) or "xxh3" (mcring only).
      ring_dir: follow the ring mcring-agent publishes in this directory
        instead of `servers` (pass servers=None); new rings are picked up at
        the start of any call.
      ring_owner: the agent's user, as a name (looked up with pwd) or a
        uid: the ring's files must belong to it. By default they must
        belong to the owner of ring_dir, and a ring_dir that another user
        could have created first (in a parent writable by group or others,
        or not owned by root or that owner) is refused with OSError;
        naming the owner accepts such a directory. Only with ring_dir:
        given otherwise, ValueError. An unknown name is a ValueError.
      elasticache: "host:port" of an ElastiCache configuration endpoint,
        instead of `servers` (pass servers=None): the client polls it itself
        (at construction, then from inside calls at most once per
        `discovery_interval` seconds, default 60; no thread), as
        pyelasticache_client does, and follows the node list. For one
        process; with more than a few per host, run mcring-agent and use
        ring_dir (docs/python.md, "Discovery without an agent").
      eject: True (pymemcache's behaviour) sends a dead node's keys to the
        next node until it is back; False makes them fail at once with
        MemcacheNodeDownError (or miss under ignore_exc).

    Failure arguments map onto libmcring's: retry_attempts -> consecutive
    failures before a node is marked down; dead_timeout -> seconds it stays
    down. retry_timeout, hasher, use_pooling, max_pool_size,
    pool_idle_timeout, lock_generator, no_delay and socket_module are
    accepted and ignored. ignore_exc makes failed reads misses and failed
    writes return False (as pymemcache's HashClient).
    """

    def __init__(self, servers=None, hasher=None, serde=None,
                 serializer=None, deserializer=None, connect_timeout=None,
                 timeout=None, no_delay=False, socket_module=None,
                 socket_keepalive=None, key_prefix=b"", max_pool_size=None,
                 pool_idle_timeout=0, lock_generator=None, retry_attempts=2,
                 retry_timeout=1, dead_timeout=60, use_pooling=False,
                 ignore_exc=False, allow_unicode_keys=False,
                 default_noreply=True, encoding="ascii", tls_context=None,
                 distribution="ketama", ring_dir=None, eject=True,
                 item_size_max=1024 * 1024, tls=False, tls_ca_file=None,
                 tls_ca_dir=None, tls_cert_file=None, tls_key_file=None,
                 tls_server_name=None, tls_insecure=False, elasticache=None,
                 discovery_interval=60, ring_owner=None):
        if (servers is not None) + (ring_dir is not None) + \
                (elasticache is not None) != 1:
            raise ValueError(
                "give exactly one of servers, ring_dir and elasticache")
        ring_owner_uid = _ring_owner_uid(ring_owner, ring_dir)
        if isinstance(elasticache, tuple):
            elasticache = _server_entry(elasticache)
        entries = None
        if servers is not None:
            entries = ",".join(_server_entry(s) for s in servers)
            if not entries:
                raise ValueError("servers is empty")
        self.servers = servers
        self.ring_dir = ring_dir
        self.ring_owner = ring_owner
        self.elasticache = elasticache
        self.distribution = distribution
        self.serde = _serde(serde, serializer, deserializer)
        self.ignore_exc = ignore_exc
        self.key_prefix = _prefix(key_prefix)
        self.default_noreply = default_noreply
        self.allow_unicode_keys = allow_unicode_keys
        self.encoding = encoding
        self.retry_attempts = retry_attempts
        self.dead_timeout = dead_timeout
        tls_opts = _Tls(tls_context, tls, tls_ca_file, tls_ca_dir,
                        tls_cert_file, tls_key_file, tls_server_name,
                        tls_insecure)
        try:
            super().__init__(
                servers=entries, ring_dir=ring_dir,
                ring_owner_uid=ring_owner_uid, elasticache=elasticache,
                discovery_interval_ms=_ms(
                    60 if discovery_interval is None else discovery_interval,
                    "discovery_interval"),
                distribution=distribution,
                connect_timeout_ms=_ms(connect_timeout, "connect_timeout"),
                io_timeout_ms=_ms(timeout, "timeout"),
                keepalive=bool(socket_keepalive),
                failure_limit=max(0, int(retry_attempts)),
                retry_timeout_ms=max(1, int(dead_timeout * 1000)),
                eject=bool(eject), serde=self.serde,
                key_prefix=self.key_prefix,
                encoding=encoding, allow_unicode_keys=bool(allow_unicode_keys),
                default_noreply=bool(default_noreply),
                ignore_reads=bool(ignore_exc), ignore_writes=bool(ignore_exc),
                item_size_max=item_size_max, **tls_opts.kw)
        finally:
            tls_opts.done()

    def flush_all(self, delay=0, noreply=None):
        """Flush every node. Returns None, as pymemcache's HashClient."""
        super().flush_all(delay, noreply)

    def stats(self, *args):
        """stats(*args) -> {"host:port": stats dict} for every node."""
        return {name: self._stats_of(i, args)
                for i, name in enumerate(self._nodes())}

    def version(self):
        """version() -> {"host:port": version bytes} for every node."""
        return {name: self._version_node(i)
                for i, name in enumerate(self._nodes())}

    def nodes(self):
        """The "host:port" names of the nodes, in node order."""
        return self._nodes()
