"""Key placement: mcring's rings against the clients they must agree with.

* `ketama`: the project's spymemcached / pyelasticache_client vectors
  (tests/data/ketama-spy-8nodes.txt).
* `ketama-libmemcached`: the libmemcached vectors, and pylibmc itself on
  10,000 keys over three live servers with weights 1, 2, 1: pylibmc stores
  the keys, each server is asked which it holds, and mcring's HashClient
  must route every key to that server. pylibmc gives libmemcached's
  KETAMA_WEIGHTED placement with behaviors={"ketama_weighted": True}.
"""
import os

import pylibmc
import pytest

import mcring


def vectors(top, name):
    with open(os.path.join(top, "tests", "data", name)) as f:
        return [line.split() for line in f if line.strip()]


def test_ketama_matches_spymemcached_vectors(top):
    pairs = vectors(top, "ketama-spy-8nodes.txt")
    assert len(pairs) >= 300
    nodes = ["10.0.1.%d:11211" % i for i in range(1, 9)]
    keys = [k for k, _ in pairs]
    want = [n for _, n in pairs]
    assert mcring.ring_locate(",".join(nodes), "ketama", keys) == want
    h = mcring.HashClient([("10.0.1.%d" % i, 11211) for i in range(1, 9)],
                          distribution="ketama")
    assert [h.node_for_key(k) for k in keys] == want


def test_ketama_libmemcached_matches_libmemcached_vectors(top):
    pairs = vectors(top, "ketama-libmemcached-3nodes-weighted.txt")
    servers = [("192.168.10.1", 11211, 1), ("192.168.10.2", 11211, 2),
               ("192.168.10.3", 11222, 1)]
    h = mcring.HashClient(servers, distribution="ketama-libmemcached")
    assert [h.node_for_key(k) for k, _ in pairs] == [n for _, n in pairs]


def test_the_vectors_tell_the_modes_apart(top):
    """The comparison can fail: the other mode places keys differently."""
    pairs = vectors(top, "ketama-spy-8nodes.txt")
    nodes = ",".join("10.0.1.%d:11211" % i for i in range(1, 9))
    got = mcring.ring_locate(nodes, "ketama-libmemcached",
                             [k for k, _ in pairs])
    assert got != [n for _, n in pairs]


def owners(servers, keys):
    """{key: "host:port"} of the server that holds each key."""
    found = {}
    for host, port in servers:
        c = mcring.Client((host, port), timeout=5, connect_timeout=5)
        for i in range(0, len(keys), 500):
            for k in c.get_many(keys[i:i + 500]):
                assert k not in found, "key %s on two servers" % k
                found[k] = "%s:%d" % (host, port)
    return found


def pylibmc_placement(servers, weights, keys, behaviors):
    spec = ["%s:%d:%d" % (h, p, w) for (h, p), w in zip(servers, weights)]
    pl = pylibmc.Client(spec, behaviors=behaviors)
    for i in range(0, len(keys), 500):
        failed = pl.set_multi({k: b"1" for k in keys[i:i + 500]})
        assert not failed
    found = owners(servers, keys)
    assert len(found) == len(keys)
    return found


KEYS = ["key%d" % i for i in range(9000)] + \
       ["user:%d:profile" % (i * 7919) for i in range(1000)]


def test_ketama_libmemcached_matches_pylibmc_ketama_weighted(servers):
    three, weights = servers[:3], [1, 2, 1]
    found = pylibmc_placement(three, weights, KEYS,
                              {"ketama_weighted": True})
    h = mcring.HashClient([(h, p, w) for (h, p), w in zip(three, weights)],
                          distribution="ketama-libmemcached")
    wrong = [k for k in KEYS if h.node_for_key(k) != found[k]]
    assert wrong == [], "%d of %d keys placed differently" % (
        len(wrong), len(KEYS))
    # And the data is where mcring looks for it.
    assert len(h.get_many(KEYS[:1000])) == 1000


def test_pylibmc_plain_ketama_is_not_the_weighted_placement(servers):
    """behaviors={"ketama": True} ignores the weights (documented in
    docs/python.md): with weights 1, 2, 1 it differs from mcring's
    ketama-libmemcached, which follows KETAMA_WEIGHTED."""
    three, weights = servers[:3], [1, 2, 1]
    found = pylibmc_placement(three, weights, KEYS[:3000], {"ketama": True})
    h = mcring.HashClient([(h, p, w) for (h, p), w in zip(three, weights)],
                          distribution="ketama-libmemcached")
    wrong = [k for k in KEYS[:3000] if h.node_for_key(k) != found[k]]
    assert len(wrong) > 0
