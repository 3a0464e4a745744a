"""TLS: pymemcache's tls_context and mcring's own tls_* arguments, against
a memcached started with -Z by run-tests.sh (a CA of its own, a
certificate for 127.0.0.1)."""
import os
import ssl

import pytest
from pymemcache.client.base import Client as PmClient

import mcring
from test_compat import outcome


@pytest.fixture(scope="module")
def tls_server():
    host, port = os.environ["MCRING_TEST_TLS"].rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def ca():
    return os.environ["MCRING_TEST_TLS_CA"]


def scenario(c):
    c.flush_all(noreply=False)
    return [outcome(lambda: c.set(b"k", b"v" * 5000, noreply=False)),
            outcome(lambda: c.get(b"k") == b"v" * 5000),
            outcome(lambda: c.get_many([b"k", b"x"]).keys()),
            outcome(lambda: c.get(b"missing"))]


@pytest.mark.parametrize("make", [
    lambda s, ctx: PmClient(s, tls_context=ctx, timeout=5),
    lambda s, ctx: mcring.Client(s, tls_context=ctx, timeout=5),
    lambda s, ctx: mcring.HashClient([s], tls_context=ctx, timeout=5),
], ids=["pymemcache", "mcring.Client", "mcring.HashClient"])
def test_tls_context_with_the_servers_ca(make, tls_server, ca):
    ctx = ssl.create_default_context(cafile=ca)
    c = make(tls_server, ctx)
    assert scenario(c) == [("ok", True), ("ok", True),
                           ("ok", {b"k": None}.keys()), ("ok", None)]


def test_same_failure_with_an_untrusted_certificate(tls_server):
    ctx = ssl.create_default_context()  # the system's CAs only
    got = []
    for cls in (PmClient, mcring.Client):
        c = cls(tls_server, tls_context=ctx, timeout=5)
        got.append(outcome(lambda: c.get(b"k")))
    assert got[0] == got[1] == ("raise", "SSLCertVerificationError")


def test_unverified_context(tls_server):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = mcring.Client(tls_server, tls_context=ctx, timeout=5)
    assert c.set(b"k", b"v", noreply=False) is True
    assert c.get(b"k") == b"v"


def test_explicit_tls_arguments(tls_server, ca):
    c = mcring.Client(tls_server, tls_ca_file=ca, timeout=5)
    assert c.set(b"k", b"v", noreply=False) and c.get(b"k") == b"v"
    # The certificate is for 127.0.0.1, not for this name.
    bad = mcring.Client(tls_server, tls_ca_file=ca,
                        tls_server_name="other.example", timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        bad.get(b"k")
    # Plain TCP to a TLS port gets no memcached reply.
    plain = mcring.Client(tls_server, timeout=1, connect_timeout=1)
    with pytest.raises((TimeoutError, mcring.MemcacheError, OSError)):
        plain.get(b"k")


def test_no_temporary_ca_file_is_left(tls_server, ca, tmp_path,
                                      monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ctx = ssl.create_default_context(cafile=ca)
    c = mcring.Client(tls_server, tls_context=ctx, timeout=5)
    assert c.set(b"k", b"v", noreply=False)
    assert list(tmp_path.iterdir()) == []
