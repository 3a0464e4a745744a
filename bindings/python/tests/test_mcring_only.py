"""What mcring adds to pymemcache's interface: gat / gats, per-node stats
and version on HashClient, node failure handling, distributions, docs."""
import pydoc

import pytest

import mcring
from conftest import free_port


def test_gat_and_gats(server):
    c = mcring.Client(server, timeout=5)
    assert c.gat(b"k") is None
    assert c.gat(b"k", 10, "d") == "d"
    assert c.gats(b"k") == (None, None)
    c.set(b"k", b"v", noreply=False)
    assert c.gat(b"k", 100) == b"v"
    value, cas = c.gats(b"k", 100)
    assert value == b"v" and cas.isdigit()
    assert c.cas(b"k", b"w", cas, noreply=False) is True


def test_hashclient_stats_and_version_per_node(servers):
    h = mcring.HashClient(servers, timeout=5)
    names = ["%s:%d" % s for s in servers]
    assert sorted(h.nodes()) == sorted(names)
    st = h.stats()
    assert sorted(st) == sorted(names)
    assert all(isinstance(v[b"pid"], int) for v in st.values())
    assert all(v.startswith(b"1.") for v in h.version().values())


def test_dead_node_is_marked_down_without_eject(servers):
    dead = ("127.0.0.1", free_port())
    h = mcring.HashClient([servers[0], dead], retry_attempts=2,
                          dead_timeout=60, eject=False, timeout=5,
                          connect_timeout=5)
    key = next(k for k in ("k%d" % i for i in range(1000))
               if h.node_for_key(k) == "%s:%d" % dead)
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            h.get(key)
    # Marked down: fails at once, without the network.
    with pytest.raises(mcring.MemcacheNodeDownError):
        h.get(key)
    with pytest.raises(ConnectionError):
        h.set(key, b"v", noreply=False)
    # The live node's keys are untouched.
    live = next(k for k in ("k%d" % i for i in range(1000))
                if h.node_for_key(k) == "%s:%d" % servers[0])
    assert h.set(live, b"v", noreply=False) is True
    assert h.get(live) == b"v"


def test_dead_node_is_ejected_by_default(servers):
    dead = ("127.0.0.1", free_port())
    h = mcring.HashClient([servers[0], dead], retry_attempts=1,
                          dead_timeout=60, timeout=5, connect_timeout=5)
    key = next(k for k in ("k%d" % i for i in range(1000))
               if h.node_for_key(k) == "%s:%d" % dead)
    with pytest.raises(ConnectionRefusedError):
        h.get(key)
    # Now its keys go to the next node up.
    assert h.set(key, b"moved", noreply=False) is True
    assert h.get(key) == b"moved"


def test_dead_node_under_ignore_exc(servers):
    dead = ("127.0.0.1", free_port())
    h = mcring.HashClient([dead], ignore_exc=True, timeout=5)
    assert h.get(b"k", "d") == "d"
    assert h.set(b"k", b"v", noreply=False) is False
    assert h.get_many([b"k"]) == {}
    assert h.incr(b"k", 1) is None


def test_distributions(servers):
    keys = ["key%d" % i for i in range(200)]
    spec = ",".join("%s:%d" % s for s in servers)
    placements = {d: mcring.ring_locate(spec, d, keys)
                  for d in ("ketama", "ketama-libmemcached", "xxh3")}
    assert placements["xxh3"] != placements["ketama"]
    # Equal weights and no port 11211: spymemcached's and libmemcached's
    # Ketama hash the same "host:port-i" strings and agree.
    assert placements["ketama"] == placements["ketama-libmemcached"]
    # On port 11211 libmemcached leaves ":11211" out of the string.
    std = "10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211"
    assert mcring.ring_locate(std, "ketama", keys) != \
        mcring.ring_locate(std, "ketama-libmemcached", keys)
    for d, placed in placements.items():
        h = mcring.HashClient(servers, distribution=d, timeout=5)
        assert [h.node_for_key(k) for k in keys] == placed
        h.set_many({k: b"1" for k in keys}, noreply=False)
        assert len(h.get_many(keys)) == len(keys)
    with pytest.raises(ValueError):
        mcring.HashClient(servers, distribution="modula")


def test_bad_arguments():
    with pytest.raises(ValueError):
        mcring.HashClient()
    with pytest.raises(ValueError):
        mcring.HashClient([])
    with pytest.raises(TypeError):
        mcring.Client(("127.0.0.1", 1), key_prefix=1)
    with pytest.raises(TypeError):
        mcring.Client(("127.0.0.1", 1), tls_context=object())
    with pytest.raises(ValueError):
        mcring.Client(("127.0.0.1", 1), timeout=-1)


def test_pymemcache_only_arguments_are_accepted(server):
    import socket
    c = mcring.Client(server, socket_module=socket, no_delay=True,
                      socket_keepalive=True, timeout=5)
    assert c.set(b"k", b"v", noreply=False)
    h = mcring.HashClient([server], hasher=object, use_pooling=True,
                          max_pool_size=4, pool_idle_timeout=1,
                          lock_generator=None, retry_timeout=3, timeout=5)
    assert h.get(b"k") == b"v"


def test_help_is_useful():
    import inspect
    text = pydoc.render_doc(mcring.Client)
    for word in ("get_many", "default_noreply", "serde", "Thread-safe",
                 "Check-and-set"):
        assert word in text
    assert "distribution" in pydoc.render_doc(mcring.HashClient)
    # The C methods carry signatures, as pymemcache's Python ones do.
    assert str(inspect.signature(mcring.Client.cas)) == \
        "(self, /, key, value, cas, expire=0, noreply=False, flags=None)"
    assert str(inspect.signature(mcring.HashClient.get)) == \
        "(self, /, key, default=None)"


def test_a_serde_may_use_the_client_itself(server):
    """deserialize runs after the client's lock is dropped: a serde that
    calls the same client does not deadlock."""
    class Indirect:
        client = None

        def serialize(self, key, value):
            return value, 0

        def deserialize(self, key, value, flags):
            if value.startswith(b"->"):
                return self.client.get(value[2:])
            return value

    serde = Indirect()
    c = mcring.Client(server, serde=serde, timeout=5)
    serde.client = c
    c.set(b"target", b"final", noreply=False)
    c.set(b"link", b"->target", noreply=False)
    assert c.get(b"link") == b"final"
    assert c.get_many([b"link", b"target"]) == {b"link": b"final",
                                                b"target": b"final"}


@pytest.fixture
def own_memcached():
    """A memcached of this test's own, to stop and kill."""
    import os
    import signal
    import socket
    import subprocess
    import time
    port = free_port()
    args = ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port), "-U",
            "0", "-t", "1"]
    if os.getuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args)
    end = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > end or proc.poll() is not None:
                pytest.fail("memcached did not start")
            time.sleep(0.05)
    yield proc, ("127.0.0.1", port)
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    proc.wait()


def stopped(pid):
    """Waits until pid, a child of this process, has stopped: kill()
    returns before every thread has, and a worker thread still running
    could answer the next request (as tests/support/mcd.c's mcd_pause)."""
    import os
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), "memcached did not stop"


def test_a_hung_node_times_out_and_a_killed_node_errors(own_memcached,
                                                        servers):
    import signal
    proc, node = own_memcached
    h = mcring.HashClient([node, servers[0]], timeout=0.5, connect_timeout=0.5,
                          retry_attempts=0, eject=False)
    key = next(k for k in ("k%d" % i for i in range(1000))
               if h.node_for_key(k) == "%s:%d" % node)
    other = next(k for k in ("k%d" % i for i in range(1000))
                 if h.node_for_key(k) == "%s:%d" % servers[0])
    assert h.set(key, b"v", noreply=False) and h.get(key) == b"v"
    proc.send_signal(signal.SIGSTOP)  # hung: connected, never answers
    stopped(proc.pid)
    with pytest.raises(TimeoutError):
        h.get(key)
    assert h.set(other, b"w", noreply=False) and h.get(other) == b"w"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises((ConnectionError, mcring.MemcacheUnexpectedCloseError)):
        h.get(key)
    with pytest.raises((ConnectionError, mcring.MemcacheUnexpectedCloseError)):
        h.get(key)
    assert h.get(other) == b"w"


def test_unix_socket_server(tmp_path):
    """Client("/path") and Client("unix:/path"), as pymemcache."""
    import os
    import subprocess
    import time
    from pymemcache.client.base import Client as PmClient
    path = str(tmp_path / "mc.sock")
    args = ["/usr/bin/memcached", "-s", path, "-t", "1"]
    if os.getuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args)
    try:
        end = time.monotonic() + 30
        while not os.path.exists(path):
            assert proc.poll() is None and time.monotonic() < end
            time.sleep(0.05)
        pm = PmClient(path, timeout=5)
        for spec in (path, "unix:" + path):
            c = mcring.Client(spec, timeout=5)
            assert c.set(b"k", spec.encode(), noreply=False) is True
            assert pm.get(b"k") == spec.encode()
            assert c.get(b"k") == spec.encode()
        h = mcring.HashClient([path], timeout=5)
        assert h.get(b"k") == ("unix:" + path).encode()
        assert h.node_for_key(b"k") == path
    finally:
        proc.kill()
        proc.wait()


def test_a_client_in_a_cycle_with_its_serde_is_collected(server):
    import gc
    import weakref

    class Back:
        def serialize(self, key, value):
            return value, 0

        def deserialize(self, key, value, flags):
            return value

    serde = Back()
    c = mcring.Client(server, serde=serde, timeout=5)
    serde.client = c
    c.set(b"k", b"v", noreply=False)
    ref = weakref.ref(c)
    del c, serde
    gc.collect()
    assert ref() is None


def test_pooled_client_takes_pymemcaches_positional_arguments(server):
    import socket
    from pymemcache.client.base import PooledClient as PmPooled
    from pymemcache.serde import pickle_serde
    # server, serde, serializer, deserializer, connect_timeout, timeout,
    # no_delay, ignore_exc, socket_module, socket_keepalive, key_prefix,
    # max_pool_size
    args = (server, pickle_serde, None, None, 5, 5, False, False, socket,
            None, b"pp:", 4)
    pm, mc = PmPooled(*args), mcring.PooledClient(*args)
    mc.set("k", {"v": 1}, noreply=False)
    assert pm.get("k") == {"v": 1}
    assert repr(mc) == "<mcring.PooledClient %s:%d>" % server
