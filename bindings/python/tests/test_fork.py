"""Fork safety: a client used before fork() serves its children correctly.

The client is created and used in the parent (its connections open), then
8 children made by fork (multiprocessing's "fork" start method, what
gunicorn --preload and uWSGI do) each run 3,000 gets through the very same
client object. A child that read replies meant for its parent or a sibling
would see wrong values. mcring registers no os.register_at_fork hook: the
C library gives each child connections of its own (pthread_atfork).
"""
import multiprocessing
import os
import random

import pytest
from pymemcache.client.base import Client as PmClient

import mcring

CHILDREN = 8
GETS = 3000
NKEYS = 500


def expected(k):
    return ("value-of-%s-" % k).encode() * 3


def child_run(client, keys, queue):
    rnd = random.Random(os.getpid())
    wrong = errors = 0
    for _ in range(GETS):
        if rnd.random() < 0.2:
            batch = rnd.sample(keys, 5)
            try:
                got = client.get_many(batch)
            except Exception:
                errors += 1
                continue
            wrong += sum(1 for k in batch if got.get(k) != expected(k))
        else:
            k = rnd.choice(keys)
            try:
                v = client.get(k)
            except Exception:
                errors += 1
                continue
            wrong += v != expected(k)
    queue.put((os.getpid(), wrong, errors))


def total_connections(server):
    return PmClient(server, timeout=5).stats()[b"total_connections"]


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_children_never_read_their_parents_replies(kind, servers):
    if kind == "Client":
        client = mcring.Client(servers[0], timeout=10, connect_timeout=10)
    else:
        client = mcring.HashClient(servers, timeout=10, connect_timeout=10)
    keys = ["fork-%d" % i for i in range(NKEYS)]
    assert client.set_many({k: expected(k) for k in keys},
                           noreply=False) == []
    # Used before the fork: every node's connection is open in the parent.
    assert len(client.get_many(keys)) == NKEYS
    before = sum(total_connections(s) for s in servers)

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=child_run, args=(client, keys, queue))
             for _ in range(CHILDREN)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(results) == CHILDREN
    assert sum(r[1] for r in results) == 0, results
    assert sum(r[2] for r in results) == 0, results
    # Each child connected on its own (the parent's connections were not
    # shared): at least one new connection per child.
    after = sum(total_connections(s) for s in servers)
    assert after - before >= CHILDREN
    # The parent's connections still work and are still its own.
    assert client.get(keys[0]) == expected(keys[0])
    assert len(client.get_many(keys)) == NKEYS


def test_os_fork_child_with_the_lock_held_by_another_thread(server):
    """A child forked while another thread of the parent was inside a call
    gets a usable client (the per-client lock is replaced in the child)."""
    import threading
    client = mcring.Client(server, timeout=10, connect_timeout=10)
    client.set(b"k", b"v", noreply=False)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            client.get(b"k")

    t = threading.Thread(target=spin)
    t.start()
    try:
        pids = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:  # child: only this thread exists here
                ok = client.get(b"k") == b"v" and \
                    client.set(b"c%d" % os.getpid(), b"1", noreply=False)
                os._exit(0 if ok else 1)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        t.join()
