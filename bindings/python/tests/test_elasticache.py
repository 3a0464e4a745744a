"""HashClient(elasticache=...): discovery without an agent.

The client polls the project's fake ElastiCache configuration endpoint
(the built tests/fakecfg program: the exact Auto Discovery wire format)
itself, from inside its calls. A node added and a node removed are
followed; when the endpoint goes away, or answers a reply the agent would
refuse, the last ring is kept. Placement equals a HashClient given the
same servers, so the discovered ring is the one every peer computes.
"""
import os
import signal
import subprocess
import tempfile
import time

import pytest

import mcring
from pymemcache.client.base import Client as PmClient


@pytest.fixture
def endpoint(build_dir):
    """endpoint(servers, mode="normal", port=0) -> "127.0.0.1:PORT", serving
    `servers`; endpoint.write(servers) changes the list; endpoint.stop()."""
    work = tempfile.mkdtemp(prefix="ec-", dir=os.environ.get("MCRING_WORK"))
    nodes = os.path.join(work, "nodes")
    procs = []

    def write(servers):
        tmp = nodes + ".new"
        with open(tmp, "w") as f:
            for h, p in servers:
                f.write("%s|%s|%d\n" % (h, h, p))
        os.rename(tmp, nodes)

    def start(servers, mode="normal", port=0):
        write(servers)
        p = subprocess.Popen(
            [os.path.join(build_dir, "tests", "fakecfg"), "--nodes", nodes,
             "--mode", mode, "--port", str(port)], stdout=subprocess.PIPE,
            text=True)
        procs.append(p)
        return p.stdout.readline().strip()

    def stop():
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)

    start.write = write
    start.stop = stop
    yield start
    stop()


def test_follows_nodes_added_and_removed(endpoint, servers):
    a, b, c = servers[:3]
    ep = endpoint([a, b])
    cl = mcring.HashClient(elasticache=ep, discovery_interval=0.05)
    assert sorted(cl.nodes()) == sorted("%s:%d" % s for s in (a, b))
    keys = ["ec:%d" % i for i in range(200)]
    for k in keys:
        assert cl.set(k, k, noreply=False)
    # Placement: a client given the same two servers (in another order)
    # reads every key where the discovered ring put it.
    ref = mcring.HashClient([b, a])
    for k in keys:
        assert cl.get(k) == k.encode()
        assert ref.get(k) == k.encode()

    endpoint.write([a, b, c])
    time.sleep(0.15)
    cl.get("ec:poll")  # the call that finds the interval over polls
    assert sorted(cl.nodes()) == sorted("%s:%d" % s for s in (a, b, c))
    stats = cl.client_stats()
    assert stats["ring_switches"] == 1
    assert stats["ring_errors"] == 0
    ref3 = mcring.HashClient([c, b, a])
    for k in keys:
        assert cl.set(k, k + "3", noreply=False)
    for k in keys:
        # Every key is readable by a client given the three servers.
        assert ref3.get(k) == (k + "3").encode()

    endpoint.write([a, c])
    time.sleep(0.15)
    cl.get("ec:poll")
    assert sorted(cl.nodes()) == sorted("%s:%d" % s for s in (a, c))
    assert cl.client_stats()["ring_switches"] == 2


@pytest.mark.parametrize("how", ["gone", "malformed", "bad-count"])
def test_endpoint_failure_keeps_the_last_ring(endpoint, servers, how):
    a, b = servers[:2]
    ep = endpoint([a, b])
    cl = mcring.HashClient(elasticache=ep, discovery_interval=0.05)
    for i in range(50):
        cl.set("keep:%d" % i, "v", noreply=False)
    if how == "gone":
        endpoint.stop()
    else:
        # The same endpoint, now answering a reply the parser refuses
        # (listing one node: were it accepted, the ring would change).
        endpoint.stop()
        assert endpoint([a], mode=how, port=int(ep.rsplit(":", 1)[1])) == ep
    time.sleep(0.15)
    for i in range(50):
        assert cl.get("keep:%d" % i) == b"v"
    stats = cl.client_stats()
    assert stats["ring_errors"] >= 1
    assert stats["ring_switches"] == 0
    assert sorted(cl.nodes()) == sorted("%s:%d" % s for s in (a, b))


def test_a_refused_first_reply_fails_construction(endpoint, servers):
    ep = endpoint(servers[:1], mode="malformed")
    with pytest.raises(mcring.MemcacheUnknownError) as info:
        mcring.HashClient(elasticache=ep)
    assert ep in str(info.value)


def test_polls_at_most_once_per_interval(endpoint, servers):
    ep = endpoint(servers[:2])
    cl = mcring.HashClient(elasticache=ep)  # 60 s
    for i in range(100):
        cl.get("once:%d" % i)
    assert cl.client_stats()["discovery_polls"] == 1


def test_exactly_one_source(servers):
    with pytest.raises(ValueError):
        mcring.HashClient(servers[:1], elasticache="127.0.0.1:1")
    with pytest.raises(ValueError):
        mcring.HashClient(ring_dir="/nonexistent", elasticache="127.0.0.1:1")
