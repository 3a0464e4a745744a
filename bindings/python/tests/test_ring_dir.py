"""A HashClient that follows mcring-agent's ring (ring_dir=).

The agent reads its node list from a file (--file) and republishes when the
file changes; the client picks up each new generation at the start of a
call. Keys written before and after a switch must land on the node the
current ring names.
"""
import os
import subprocess
import tempfile
import time

import pytest
from pymemcache.client.base import Client as PmClient

import mcring


def wait_for(cond, what, limit=60.0):
    # A bounded wait for an event, not a timing assertion.
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("gave up waiting for " + what)


@pytest.fixture
def agent(build_dir):
    work = tempfile.mkdtemp(prefix="ring-", dir=os.environ.get("MCRING_WORK"))
    nodes = os.path.join(work, "nodes")
    ring = os.path.join(work, "ring")
    procs = []

    def start(first):
        write(first)
        p = subprocess.Popen(
            [os.path.join(build_dir, "mcring-agent"), "--file", nodes,
             "--ring-dir", ring, "--interval", "0.1", "--stats-slots", "0",
             "--log-level", "warning"])
        procs.append(p)
        wait_for(lambda: os.path.exists(os.path.join(ring, "ctl")) and
                 any(n.startswith("ring.") for n in os.listdir(ring)),
                 "the first ring")
        return ring

    def write(servers):
        tmp = nodes + ".new"
        with open(tmp, "w") as f:
            for h, p in servers:
                f.write("%s:%d\n" % (h, p))
        os.rename(tmp, nodes)

    start.write = write
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def holder(servers, key):
    for s in servers:
        if PmClient(s, timeout=5).get(key) is not None:
            return s
    return None


def test_follows_the_agents_ring(agent, servers):
    a, b = servers[0], servers[1]
    ring = agent([a])
    c = mcring.HashClient(ring_dir=ring, timeout=5, connect_timeout=5)
    assert c.nodes() == ["%s:%d" % a]
    gen1 = c.client_stats()["generation"]
    assert gen1 >= 1
    c.set(b"before", b"1", noreply=False)
    assert holder(servers, b"before") == a

    agent.write([b])

    def switched():
        c.get(b"probe")  # a call is what checks for a new generation
        return c.client_stats()["generation"] > gen1
    wait_for(switched, "the client to switch rings")
    assert c.nodes() == ["%s:%d" % b]
    assert c.client_stats()["ring_switches"] >= 1
    c.set(b"after", b"2", noreply=False)
    assert holder(servers, b"after") == b
    assert c.get(b"after") == b"2"
    assert c.get(b"before") is None  # node a is no longer in the ring


def test_ring_of_several_nodes_spreads_keys(agent, servers):
    ring = agent(servers)
    c = mcring.HashClient(ring_dir=ring, timeout=5, connect_timeout=5)
    keys = ["k%d" % i for i in range(400)]
    assert c.set_many({k: b"v" for k in keys}, noreply=False) == []
    used = {holder(servers, k) for k in keys[:100]}
    assert len(used) == len(servers)
    assert all(holder(servers, k) == tuple(
        (c.node_for_key(k).rsplit(":", 1)[0],
         int(c.node_for_key(k).rsplit(":", 1)[1]))) for k in keys[:50])


def test_missing_ring_dir_raises(tmp_path):
    with pytest.raises(OSError):
        mcring.HashClient(ring_dir=str(tmp_path / "none"))
