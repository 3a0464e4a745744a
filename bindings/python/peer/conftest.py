"""conftest for running pymemcache's own test_integration.py with mcring.

run-tests.sh copies pymemcache 3.5.2's test_integration.py next to this
file (changing only its `Client` import to mcring's) and runs it: the
fixtures below hand it mcring.Client, mcring.PooledClient and a one-server
mcring.HashClient in place of pymemcache's Client, PooledClient and
HashClient. pymemcache-only
arguments (socket_module) are accepted and ignored by mcring.
"""
import socket
import ssl

import pytest

import mcring


def pytest_addoption(parser):
    parser.addoption("--server", action="store", default="localhost")
    parser.addoption("--port", action="store", default="11211")
    parser.addoption("--tls-server", action="store", default="localhost")
    parser.addoption("--tls-port", action="store", default="11212")
    parser.addoption("--tls-ca", action="store", default=None,
                     help="CA of the TLS server's certificate")


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: talks to memcached")


@pytest.fixture(scope="session")
def host(request):
    return request.config.option.server


@pytest.fixture(scope="session")
def port(request):
    return int(request.config.option.port)


@pytest.fixture(scope="session")
def tls_host(request):
    return request.config.option.tls_server


@pytest.fixture(scope="session")
def tls_port(request):
    return int(request.config.option.tls_port)


@pytest.fixture(scope="session")
def tls_context(request):
    # As pymemcache's conftest, with the CA run-tests.sh made (pymemcache's
    # test certificates are not in Debian's package).
    return ssl.create_default_context(cafile=request.config.option.tls_ca)


class HashClientSingle(mcring.HashClient):
    def __init__(self, server, *args, **kwargs):
        super().__init__([server], *args, **kwargs)


def pytest_generate_tests(metafunc):
    if "socket_module" in metafunc.fixturenames:
        metafunc.parametrize("socket_module", [socket])
    if "client_class" in metafunc.fixturenames:
        metafunc.parametrize("client_class", [mcring.Client,
                                              mcring.PooledClient,
                                              HashClientSingle])
