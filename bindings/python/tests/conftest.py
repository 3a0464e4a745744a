"""Fixtures of the mcring binding suite.

run-tests.sh starts the memcached servers and passes them in
MCRING_TEST_SERVERS ("127.0.0.1:p1,127.0.0.1:p2,..."); every test starts
with all of them flushed.
"""
import os

import pytest
from pymemcache.client.base import Client as PmClient


def _servers():
    spec = os.environ.get("MCRING_TEST_SERVERS")
    if not spec:
        pytest.exit("MCRING_TEST_SERVERS is not set: run bindings/python/"
                    "run-tests.sh BUILD_DIR", returncode=2)
    out = []
    for entry in spec.split(","):
        host, port = entry.rsplit(":", 1)
        out.append((host, int(port)))
    return out


SERVERS = _servers() if os.environ.get("MCRING_TEST_SERVERS") else []


@pytest.fixture(scope="session")
def servers():
    """All test servers, as (host, port)."""
    return _servers()


@pytest.fixture(scope="session")
def server(servers):
    """One server, for single-server clients."""
    return servers[0]


@pytest.fixture(autouse=True)
def flushed(servers):
    for s in servers:
        c = PmClient(s, timeout=5, connect_timeout=5)
        c.flush_all(noreply=False)
        c.close()
    yield


@pytest.fixture(scope="session")
def top():
    return os.environ["MCRING_TOP"]


@pytest.fixture(scope="session")
def build_dir():
    return os.environ["MCRING_BUILD_DIR"]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
