"""The same test bodies against pymemcache and mcring, side by side.

Each scenario runs against pymemcache's Client (or HashClient) and then,
on freshly flushed servers, against mcring's, and records every result or
the name of the exception raised; the two transcripts must be equal. The
scenarios avoid what legitimately differs: cas uniques and key placement
(pymemcache's HashClient uses rendezvous hashing, mcring a Ketama ring).
"""
import pytest
from pymemcache.client import base as pm_base
from pymemcache.client import hash as pm_hash
from pymemcache import serde as pm_serde

import mcring
from conftest import free_port


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as e:  # the type is the result
        return ("raise", type(e).__name__)


def flush(servers):
    for s in servers:
        c = pm_base.Client(s, timeout=5, connect_timeout=5)
        c.flush_all(noreply=False)
        c.close()


def make(impl, kind, servers, **kw):
    kw.setdefault("timeout", 5)
    kw.setdefault("connect_timeout", 5)
    if kind == "Client":
        cls = pm_base.Client if impl == "pymemcache" else mcring.Client
        return cls(servers[0], **kw)
    cls = pm_hash.HashClient if impl == "pymemcache" else mcring.HashClient
    return cls(servers, **kw)


def side_by_side(scenario, kind, servers, live=True, **kw):
    got = {}
    for impl in ("pymemcache", "mcring"):
        if live:
            flush(servers)
        c = make(impl, kind, servers, **kw)
        try:
            got[impl] = scenario(c)
        finally:
            c.close()
    assert got["mcring"] == got["pymemcache"]
    return got["mcring"]


# ---- scenarios -------------------------------------------------------------

def s_get_set(c):
    r = []
    r.append(outcome(lambda: c.set(b"k", b"v", noreply=False)))
    r.append(outcome(lambda: c.get(b"k")))
    r.append(outcome(lambda: c.get(b"missing")))
    r.append(outcome(lambda: c.get(b"missing", "dflt")))
    r.append(outcome(lambda: c.set("s", "text", noreply=False)))
    r.append(outcome(lambda: c.get("s")))
    r.append(outcome(lambda: c.set("i", 42, noreply=False)))
    r.append(outcome(lambda: c.get("i")))
    r.append(outcome(lambda: c.set("f", 1.5, noreply=False)))
    r.append(outcome(lambda: c.get("f")))
    r.append(outcome(lambda: c.set("e", b"", noreply=False)))
    r.append(outcome(lambda: c.get("e")))
    r.append(outcome(lambda: c.set("big", b"x" * 100000, noreply=False)))
    r.append(outcome(lambda: c.get("big") == b"x" * 100000))
    r.append(outcome(lambda: c.set("n", b"1")))  # default noreply
    r.append(outcome(lambda: c.get("n")))
    r.append(outcome(lambda: c.set("ttl", b"1", expire=100, noreply=False)))
    r.append(outcome(lambda: c.set("fl", b"1", noreply=False, flags=7)))
    r.append(outcome(lambda: c.get("fl")))
    if isinstance(c, (pm_base.Client, mcring.Client)):
        # Mapping access: pymemcache's Client has it, its HashClient not.
        c["m"] = b"mapped"
        r.append(outcome(lambda: c["m"]))
        r.append(outcome(lambda: c["nope"]))
        del c["m"]
        r.append(outcome(lambda: c.get("m")))
    return r


def s_add_replace_append(c):
    r = []
    for call in (
        lambda: c.add(b"k", b"v", noreply=False),
        lambda: c.add(b"k", b"v2", noreply=False),
        lambda: c.add(b"k", b"v3"),  # noreply: True whatever happened
        lambda: c.get(b"k"),
        lambda: c.replace(b"nok", b"v", noreply=False),
        lambda: c.replace(b"k", b"r", noreply=False),
        lambda: c.get(b"k"),
        lambda: c.append(b"k", b"-a", noreply=False),
        lambda: c.prepend(b"k", b"p-", noreply=False),
        lambda: c.append(b"nok", b"x", noreply=False),
        lambda: c.prepend(b"nok", b"x", noreply=False),
        lambda: c.get(b"k"),
        lambda: c.get(b"nok"),
    ):
        r.append(outcome(call))
    return r


def s_cas(c):
    r = []
    r.append(outcome(lambda: c.cas(b"k", b"v", b"1", noreply=False)))
    r.append(outcome(lambda: c.gets(b"k")))
    r.append(outcome(lambda: c.gets(b"k", "d", "cd")))
    c.set(b"k", b"v", noreply=False)
    value, cas = c.gets(b"k")
    r.append(("gets", value, type(cas).__name__, cas.isdigit()))
    r.append(outcome(lambda: c.cas(b"k", b"v1", cas, noreply=False)))
    r.append(outcome(lambda: c.cas(b"k", b"v2", cas, noreply=False)))
    r.append(outcome(lambda: c.get(b"k")))
    _, cas2 = c.gets(b"k")
    r.append(outcome(lambda: c.cas(b"k", b"v3", str(cas2), noreply=False)))
    _, cas3 = c.gets(b"k")
    r.append(outcome(lambda: c.cas(b"k", b"v4", str(cas3).encode(),
                                   noreply=False)))
    r.append(outcome(lambda: c.get(b"k")))
    r.append(outcome(lambda: c.cas(b"k", b"v", "abc", noreply=False)))
    r.append(outcome(lambda: c.cas(b"k", b"v", None, noreply=False)))
    return r


def s_incr_decr(c):
    r = []
    for call in (
        lambda: c.incr(b"k", 1, noreply=False),
        lambda: c.decr(b"k", 1, noreply=False),
        lambda: c.set(b"k", b"10", noreply=False),
        lambda: c.incr(b"k", 5, noreply=False),
        lambda: c.decr(b"k", 20, noreply=False),
        lambda: c.incr(b"k", 7),
        lambda: c.incr(b"k", 1, noreply=True),
        lambda: c.get(b"k"),
        lambda: c.incr(b"k", b"foobar"),
        lambda: c.incr(b"k", -1),
        lambda: c.incr(b"k", 2 ** 64),
        lambda: c.set(b"t", b"text", noreply=False),
        lambda: c.incr(b"t", 1),
        lambda: c.decr(b"t", 1),
        lambda: c.set(b"max", str(2 ** 64 - 1), noreply=False),
        lambda: c.incr(b"max", 1),
    ):
        r.append(outcome(call))
    return r


def s_delete_touch(c):
    r = []
    for call in (
        lambda: c.delete(b"k", noreply=False),
        lambda: c.delete(b"k"),
        lambda: c.touch(b"k", 10, noreply=False),
        lambda: c.touch(b"k", 10),
        lambda: c.set(b"k", b"v", noreply=False),
        lambda: c.touch(b"k", 100, noreply=False),
        lambda: c.touch(b"k", noreply=False),
        lambda: c.delete(b"k", noreply=False),
        lambda: c.get(b"k"),
        lambda: c.touch(b"k", "10"),
    ):
        r.append(outcome(call))
    return r


def s_many(c):
    r = []
    keys = ["a%d" % i for i in range(50)]
    r.append(outcome(lambda: c.set_many({k: k.encode() for k in keys},
                                        noreply=False)))
    r.append(outcome(lambda: c.set_many({"x": 1, "y": "two", "z": b"3"})))
    r.append(outcome(lambda: c.set_many({})))
    r.append(outcome(lambda: c.set_multi({"m": b"1"}, noreply=False)))
    r.append(outcome(lambda: c.get_many(keys + ["missing", "x", "y", "z",
                                                "m"])))
    r.append(outcome(lambda: c.get_multi(["a1", "a2"])))
    r.append(outcome(lambda: c.get_many([])))
    r.append(outcome(lambda: sorted(
        (k, v[0], type(v[1]).__name__)
        for k, v in c.gets_many(keys[:10] + ["missing"]).items())))
    r.append(outcome(lambda: c.gets_many([])))
    r.append(outcome(lambda: c.delete_many(keys[:25], noreply=False)))
    r.append(outcome(lambda: c.delete_multi(keys[25:30])))
    r.append(outcome(lambda: c.delete_many([])))
    r.append(outcome(lambda: c.get_many(keys)))
    r.append(outcome(lambda: c.get_many(["a40", "a40"])))
    r.append(outcome(lambda: c.get_many(["bad key"])))
    r.append(outcome(lambda: c.set_many({"bad key": b"1"})))
    return r


def s_errors(c):
    r = []
    for call in (
        lambda: c.set(b"key with spaces", b"v", noreply=False),
        lambda: c.set(b"\r\nflush_all", b"v", noreply=False),
        lambda: c.set(b"tab\tkey", b"v", noreply=False),
        lambda: c.set(b"nul\x00key", b"v", noreply=False),
        lambda: c.set(b"x" * 251, b"v", noreply=False),
        lambda: c.set(b"x" * 250, b"v", noreply=False),
        lambda: c.get(b"x" * 250),
        lambda: c.get(b"x" * 251),
        lambda: c.set("\u0fff", b"v", noreply=False),
        lambda: c.get("\u0fff"),
        lambda: c.get(b"\xc3\xa9"),
        lambda: c.set(b"k", "\u0fff", noreply=False),
        lambda: c.set(b"k", b"v", expire="1", noreply=False),
        lambda: c.set(b"k", b"v", expire=1.5, noreply=False),
        lambda: c.get(None),
        lambda: c.get(42),
        lambda: c.delete(b"a b"),
        lambda: c.incr(b"a b", 1),
        lambda: c.touch(b"a b"),
        lambda: c.get_many([b"ok", b"not ok"]),
        lambda: c.set(b"huge", b"x" * (2 * 1024 * 1024), noreply=False),
        lambda: c.get(b"huge"),
    ):
        r.append(outcome(call))
    return r


def s_pickle_serde(c):
    r = []
    values = [b"bytes", "text", "ol\u00e9", 1, -7, 123123123123123123123,
              {"a": "pickle"}, [1, 2.5, None], (1, "t"), 1.25, True, None]
    for i, v in enumerate(values):
        k = "v%d" % i
        r.append(outcome(lambda: c.set(k, v, noreply=False)))
        got = c.get(k)
        r.append((repr(got), type(got).__name__))
    r.append(outcome(lambda: sorted(c.get_many(["v0", "v1", "v3"]).items())))
    return r


def s_prefix(c):
    r = []
    r.append(outcome(lambda: c.set(b"k", b"v", noreply=False)))
    r.append(outcome(lambda: c.get(b"k")))
    r.append(outcome(lambda: c.get_many([b"k", "k2"])))
    r.append(outcome(lambda: c.set(b"x" * 245, b"v", noreply=False)))
    r.append(outcome(lambda: c.set(b"x" * 246, b"v", noreply=False)))
    return r


def s_unicode_keys(c):
    r = []
    r.append(outcome(lambda: c.set("\u3053\u3093", b"v", noreply=False)))
    r.append(outcome(lambda: c.get("\u3053\u3093")))
    r.append(outcome(lambda: c.get_many(["\u3053\u3093", "my\u2603"])))
    r.append(outcome(lambda: c.set("my\u2603", b"w", noreply=False)))
    return r


def s_noreply_defaults(c):
    r = []
    for call in (
        lambda: c.add(b"k", b"v"),
        lambda: c.add(b"k", b"v"),
        lambda: c.replace(b"nok", b"v"),
        lambda: c.delete(b"nok"),
        lambda: c.touch(b"nok"),
        lambda: c.append(b"nok", b"v"),
        lambda: c.flush_all(),
        lambda: c.flush_all(noreply=False),
        lambda: c.get(b"k"),
    ):
        r.append(outcome(call))
    return r


def s_dead(c):
    # Only the first calls: what follows depends on each client's retry
    # policy (documented in docs/python.md).
    return [outcome(lambda: c.get(b"k"))]


def s_dead_ignored(c):
    return [outcome(lambda: c.get(b"k")),
            outcome(lambda: c.get_many([b"k", b"j"])),
            outcome(lambda: c.get(b"k", "dflt"))]


def s_dead_ignored_write(c):
    return [outcome(lambda: c.set(b"k", b"v", noreply=False))]


SCENARIOS = [s_get_set, s_add_replace_append, s_cas, s_incr_decr,
             s_delete_touch, s_many, s_errors, s_noreply_defaults]


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_same_results(scenario, kind, servers):
    side_by_side(scenario, kind, servers)


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
@pytest.mark.parametrize("serde", [pm_serde.pickle_serde,
                                   pm_serde.PickleSerde(pickle_version=0),
                                   mcring.serde.pickle_serde],
                         ids=["pymemcache", "pymemcache-v0", "mcring"])
def test_same_results_with_serde(serde, kind, servers):
    side_by_side(s_pickle_serde, kind, servers, serde=serde)


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_same_results_with_legacy_serializer(kind, servers):
    ser = pm_serde.python_memcache_serializer
    de = pm_serde.python_memcache_deserializer
    side_by_side(s_pickle_serde, kind, servers, serializer=ser,
                 deserializer=de)


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_same_results_with_key_prefix(kind, servers):
    side_by_side(s_prefix, kind, servers, key_prefix=b"pre:")


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_same_results_with_unicode_keys(kind, servers):
    side_by_side(s_unicode_keys, kind, servers, allow_unicode_keys=True)


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_same_results_stats_and_version(kind, server, servers):
    def scenario(c):
        if kind == "HashClient":
            return [outcome(lambda: c.set(b"k", b"v", noreply=False))]
        st = c.stats()
        settings = c.stats("settings")
        return [outcome(lambda: c.version()),
                sorted((k, type(v).__name__) for k, v in st.items()
                       if k in (b"pid", b"version", b"rusage_user",
                                b"curr_items", b"threads", b"uptime")),
                sorted((k, type(v).__name__) for k, v in settings.items()
                       if k in (b"maxbytes", b"growth_factor", b"umask",
                                b"cas_enabled", b"inter"))]
    side_by_side(scenario, kind, servers)


@pytest.mark.parametrize("kind", ["Client", "HashClient"])
def test_same_exceptions_with_a_dead_server(kind):
    dead = [("127.0.0.1", free_port())]
    side_by_side(s_dead, kind, dead, live=False)
    side_by_side(s_dead_ignored, kind, dead, live=False, ignore_exc=True)


def test_dead_server_writes_under_ignore_exc():
    dead = [("127.0.0.1", free_port())]
    # pymemcache's Client raises on writes even with ignore_exc; its
    # HashClient returns False. mcring does the same for each.
    side_by_side(s_dead_ignored_write, "Client", dead, live=False,
                 ignore_exc=True)
    side_by_side(s_dead_ignored_write, "HashClient", dead, live=False,
                 ignore_exc=True)


def test_scenarios_detect_a_difference(servers):
    """The comparison itself can fail: a client that answers differently
    is caught."""
    class Liar(mcring.Client):
        def get(self, key, default=None):
            return b"lie"

    got = {}
    for cls in (pm_base.Client, Liar):
        flush(servers)
        got[cls] = s_get_set(cls(servers[0], timeout=5, connect_timeout=5))
    assert got[pm_base.Client] != got[Liar]
