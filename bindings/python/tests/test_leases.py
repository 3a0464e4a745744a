"""get_or_compute: one computation per missing key for the whole host
(memcached's meta leases, docs/leases.md), with forked workers and real
memcached.

Each worker is a forked child sharing the parent's client (as under gunicorn
--preload). It reports on a pipe whether it computed and what it got, and
how long its call took.
"""
import os
import struct
import time

import pytest

from mcring import HashClient
from mcring.serde import pickle_serde

COMPUTE_S = 0.2


def _client(servers, **kw):
    return HashClient(servers, timeout=2, connect_timeout=2, **kw)


def _run_workers(n, body):
    """Forks n workers released at once; each runs body() -> (computed,
    value bytes). Returns [(computed, value, seconds)]."""
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(go_w)
                os.close(out_r)
                os.read(go_r, 1)
                t0 = time.monotonic()
                computed, value = body()
                took = time.monotonic() - t0
                rec = struct.pack("!?dH", computed, took, len(value)) + value
                os.write(out_w, rec)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(go_r)
    os.close(out_w)
    time.sleep(0.2)  # every child is blocked on the pipe by now
    os.write(go_w, b"x" * n)
    os.close(go_w)
    data = b""
    while True:
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(out_r)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    results, off = [], 0
    head = struct.calcsize("!?dH")
    while off < len(data):
        computed, took, vlen = struct.unpack_from("!?dH", data, off)
        off += head
        results.append((computed, data[off:off + vlen], took))
        off += vlen
    assert len(results) == n
    return results


def _worker(client, key, value=b"computed", **kw):
    computed = []

    def compute():
        computed.append(1)
        time.sleep(COMPUTE_S)
        return value

    def body():
        got = client.get_or_compute(key, compute, expire=60, **kw)
        return bool(computed), got
    return body


def test_64_workers_missing_one_key_compute_it_once(servers):
    c = _client(servers)
    res = _run_workers(64, _worker(c, "hot", wait=2.0))
    assert sum(1 for computed, _, _ in res if computed) == 1
    assert all(v == b"computed" for _, v, _ in res)
    # Nobody waited longer than the bound: wait plus a request's timeouts.
    assert max(t for _, _, t in res) < 2.0 + 2 * 2
    assert c.get("hot") == b"computed"


def test_a_value_about_to_expire_is_recomputed_once_early(servers):
    c = _client(servers)
    c.set("soon", b"old", expire=3)
    res = _run_workers(32, _worker(c, "soon", value=b"new", recache=30))
    assert sum(1 for computed, _, _ in res if computed) == 1
    # The others never missed: the old value, or the new one once stored.
    assert all(v in (b"old", b"new") for _, v, _ in res)
    assert c.get("soon") == b"new"


def test_an_invalidated_value_is_recomputed_once_and_served_stale(servers):
    c = _client(servers)
    c.set("inv", b"old", expire=60)
    assert c.invalidate("inv", stale_ttl=30) is True
    res = _run_workers(32, _worker(c, "inv", value=b"new"))
    assert sum(1 for computed, _, _ in res if computed) == 1
    assert all(v in (b"old", b"new") for _, v, _ in res)
    assert c.get("inv") == b"new"
    assert c.invalidate("never-set") is False


def test_a_killed_winner_holds_the_key_only_for_its_lease(servers):
    # memcached's clock ticks whole seconds, so a lease of N seconds lasts
    # between N-1 and N: 4 keeps it held (>= 3 s) for the first reader even
    # on a loaded machine, and gone after at most 4 s.
    c = _client(servers)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # wins the lease, then dies mid-computation
        def die():
            os._exit(0)
        try:
            c.get_or_compute("orphan", die, lease_ttl=4)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    # Meanwhile a reader waits its bound, then computes without storing.
    assert c.get_or_compute("orphan", lambda: b"mine", wait=0.1) == b"mine"
    if time.monotonic() - t0 < 2.5:  # the lease surely still held
        assert c.get("orphan") in (None, b"")
    # Once the lease lapses, the next reader wins and stores.
    while time.monotonic() - t0 < 8:
        c.get_or_compute("orphan", lambda: b"taken over", wait=0.1,
                         expire=60)
        if c.get("orphan") == b"taken over":
            break
        time.sleep(0.1)
    assert c.get("orphan") == b"taken over"
    assert time.monotonic() - t0 < 7.5


def test_values_go_through_the_serde_and_empty_ones_are_not_stored(servers):
    c = _client(servers, serde=pickle_serde)
    v = {"a": [1, 2, 3]}
    assert c.get_or_compute("obj", lambda: v, expire=60) == v
    assert c.get("obj") == v
    assert c.get_or_compute("obj", lambda: pytest.fail("recomputed")) == v
    plain = _client(servers)
    assert plain.get_or_compute("empty", lambda: b"") == b""
    assert plain.get("empty") in (None, b"")


def test_bad_arguments_are_refused(servers):
    from mcring import MemcacheIllegalInputError
    c = _client(servers)
    with pytest.raises(MemcacheIllegalInputError):
        c.get_or_compute("k", lambda: b"v", wait=-1)
    with pytest.raises(MemcacheIllegalInputError):
        c.get_or_compute("k", lambda: b"v", poll=0)
    with pytest.raises(MemcacheIllegalInputError):
        c.get_or_compute("k", lambda: b"v", wait="1")
    with pytest.raises(MemcacheIllegalInputError):
        c.get_or_compute("bad key", lambda: b"v")
    with pytest.raises(MemcacheIllegalInputError):
        c.get_or_compute("k", lambda: b"v", lease_ttl=0)
