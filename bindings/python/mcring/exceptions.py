"""pymemcache's exception names, for mcring.

Each class has pymemcache's name and place in the hierarchy. When pymemcache
is installed, each also derives from pymemcache's class of the same name, so
code that still says ``except pymemcache.exceptions.MemcacheError`` keeps
catching errors raised by mcring after the switch.

Network failures raise the built-in exceptions pymemcache lets through from
its socket: ``TimeoutError`` (``socket.timeout``), ``ConnectionRefusedError``,
``OSError``, ``socket.gaierror``, and for TLS ``ssl.SSLError`` /
``ssl.SSLCertVerificationError``. A server that closes the connection in
the middle of a reply raises ``MemcacheUnexpectedCloseError``.
``MemcacheNodeDownError`` (mcring only) is raised for a key whose node was
marked down after repeated failures; it is both a ``MemcacheServerError`` and
a ``ConnectionError``.
"""

import socket
import ssl

try:  # pragma: no cover - depends on what is installed
    from pymemcache import exceptions as _pm
except ImportError:  # pragma: no cover
    _pm = None


def _bases(name, *own):
    peer = getattr(_pm, name, None) if _pm is not None else None
    if peer is None:
        return own
    if own == (Exception,):
        return (peer,)  # the root: pymemcache's root is an Exception
    return own + (peer,)


class MemcacheError(*_bases("MemcacheError", Exception)):
    """Base class of every mcring error that is not a built-in one."""


class MemcacheClientError(*_bases("MemcacheClientError", MemcacheError)):
    """The request was refused: bad key, bad value or CLIENT_ERROR."""


class MemcacheUnknownCommandError(
        *_bases("MemcacheUnknownCommandError", MemcacheClientError)):
    """The server answered ERROR (it does not know the command)."""


class MemcacheIllegalInputError(
        *_bases("MemcacheIllegalInputError", MemcacheClientError)):
    """A key or value is not legal for memcached; nothing was sent."""


class MemcacheServerError(*_bases("MemcacheServerError", MemcacheError)):
    """The server answered SERVER_ERROR."""


class MemcacheUnknownError(*_bases("MemcacheUnknownError", MemcacheError)):
    """The server's reply could not be parsed."""


class MemcacheUnexpectedCloseError(
        *_bases("MemcacheUnexpectedCloseError", MemcacheServerError)):
    """The server closed the connection before the reply was complete."""


class MemcacheNodeDownError(MemcacheServerError, ConnectionError):
    """The key's node is marked down after repeated failures (mcring only).

    Raised at once, without touching the network, until the node's retry
    time is up (``dead_timeout``).
    """


_ALL = {
    "MemcacheError": MemcacheError,
    "MemcacheClientError": MemcacheClientError,
    "MemcacheUnknownCommandError": MemcacheUnknownCommandError,
    "MemcacheIllegalInputError": MemcacheIllegalInputError,
    "MemcacheServerError": MemcacheServerError,
    "MemcacheUnknownError": MemcacheUnknownError,
    "MemcacheUnexpectedCloseError": MemcacheUnexpectedCloseError,
    "MemcacheNodeDownError": MemcacheNodeDownError,
    "gaierror": socket.gaierror,
    "SSLError": ssl.SSLError,
    "SSLCertVerificationError": ssl.SSLCertVerificationError,
}
