"""Values shared with pymemcache in both directions, for every value kind.

A value written by pymemcache must be read back equal by mcring and the
reverse, with the same flags on the server (pymemcache's: BYTES 0, PICKLE 1,
INTEGER 2, LONG 4, COMPRESSED 8, TEXT 16), so that processes switched to
mcring and processes not yet switched share a cache.
"""
import datetime
import decimal
import zlib

import pytest
from pymemcache.client.base import Client as PmClient
from pymemcache import serde as pm_serde

import mcring
from mcring import serde as mc_serde


class PmCompressed:
    """pymemcache 4's CompressedSerde layout, over pymemcache 3.5.2's
    pickle serde (3.5.2 has no compressing serde of its own): zlib without
    a length prefix, flag 8 added to the inner serde's flags."""

    def __init__(self, inner, min_len=400):
        self.inner, self.min_len = inner, min_len

    def serialize(self, key, value):
        data, flags = self.inner.serialize(key, value)
        if len(data) >= self.min_len:
            packed = zlib.compress(data)
            if len(packed) < len(data):
                return packed, flags | 8
        return data, flags

    def deserialize(self, key, value, flags):
        if flags & 8:
            value, flags = zlib.decompress(value), flags & ~8
        return self.inner.deserialize(key, value, flags)


class Raw:
    """Reads what is stored: (bytes, flags)."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags


VALUES = [
    ("bytes", b"raw\x00\xff bytes", 0),
    ("str", "ol\u00e9 \u2603 text", 16),
    ("int", 42, 2),
    ("negative", -7, 2),
    ("long", 123123123123123123123, 2),
    ("dict", {"a": [1, 2, (3, "x")], "b": None}, 1),
    ("list", ["one pickle", "two pickle"], 1),
    ("datetime", datetime.datetime(2026, 12, 5, 9, 35), 1),
    ("decimal", decimal.Decimal("1.25"), 1),
    ("float", 2.5, 1),
    ("bool", True, 1),
]

COMPRESSIBLE = [
    ("zlib-str", "compress me " * 500, 16 | 8),
    ("zlib-bytes", b"\x01\x02" * 2000, 0 | 8),
    ("zlib-pickle", {"k": list(range(2000))}, 1 | 8),
]

WRITERS_READERS = [
    # (writer, reader) of each direction and serde pairing
    ("pymemcache", "mcring"),
    ("mcring", "pymemcache"),
    ("mcring", "mcring"),
]


def client(impl, server, serde):
    if impl == "pymemcache":
        return PmClient(server, serde=serde, timeout=5, connect_timeout=5)
    return mcring.Client(server, serde=serde, timeout=5, connect_timeout=5)


def stored(server, key):
    return PmClient(server, serde=Raw(), timeout=5).get(key)


@pytest.mark.parametrize("writer,reader", WRITERS_READERS)
@pytest.mark.parametrize("name,value,flags", VALUES,
                         ids=[v[0] for v in VALUES])
def test_pickle_serde_values(server, writer, reader, name, value, flags):
    # mcring with mcring's serde against pymemcache with pymemcache's.
    serdes = {"pymemcache": pm_serde.pickle_serde,
              "mcring": mc_serde.pickle_serde}
    w = client(writer, server, serdes[writer])
    r = client(reader, server, serdes[reader])
    assert w.set("k-" + name, value, noreply=False) is True
    got = r.get("k-" + name)
    assert got == value and type(got) is type(value)
    assert stored(server, "k-" + name)[1] == flags
    many = r.get_many(["k-" + name, "absent"])
    assert list(many) == ["k-" + name] and many["k-" + name] == value


@pytest.mark.parametrize("name,value,flags", VALUES,
                         ids=[v[0] for v in VALUES])
def test_pymemcache_serde_object_in_mcring(server, name, value, flags):
    """pymemcache.serde.pickle_serde works unchanged inside mcring."""
    w = client("mcring", server, pm_serde.pickle_serde)
    r = client("pymemcache", server, pm_serde.pickle_serde)
    w.set(b"k", value, noreply=False)
    assert r.get(b"k") == value
    assert w.get(b"k") == value
    assert stored(server, b"k")[1] == flags


@pytest.mark.parametrize("writer,reader", WRITERS_READERS)
@pytest.mark.parametrize("name,value,flags", COMPRESSIBLE,
                         ids=[v[0] for v in COMPRESSIBLE])
def test_zlib_compressed_values(server, writer, reader, name, value, flags):
    serdes = {"pymemcache": PmCompressed(pm_serde.pickle_serde),
              "mcring": mc_serde.CompressedSerde(mc_serde.pickle_serde)}
    w = client(writer, server, serdes[writer])
    r = client(reader, server, serdes[reader])
    w.set("z", value, noreply=False)
    assert r.get("z") == value
    data, got_flags = stored(server, "z")
    assert got_flags == flags
    # Plain zlib, no length prefix, and it really is smaller.
    assert len(data) < len(zlib.decompress(data))


def test_short_values_are_not_compressed(server):
    w = client("mcring", server, mc_serde.CompressedSerde())
    w.set("short", "abc", noreply=False)
    assert stored(server, "short") == (b"abc", 16)


def test_long_flag_from_python2_writers(server):
    """Flag 4 (a Python 2 long) is read as an int."""
    raw = PmClient(server, timeout=5)
    raw.set(b"l", b"12345678901234567890", noreply=False, flags=4)
    assert client("mcring", server, mc_serde.pickle_serde).get(b"l") == \
        12345678901234567890


@pytest.mark.parametrize("writer,reader", WRITERS_READERS)
def test_no_serde(server, writer, reader):
    """Without a serde both store str(value).encode() with flags 0 and read
    bytes."""
    w = client(writer, server, None)
    r = client(reader, server, None)
    for key, value, want in [(b"b", b"\x00\x01", b"\x00\x01"),
                             (b"s", "text", b"text"),
                             (b"i", 42, b"42"),
                             (b"f", 1.5, b"1.5")]:
        w.set(key, value, noreply=False)
        assert r.get(key) == want
        assert stored(server, key) == (want, 0)


def test_flags_argument_overrides_serde(server):
    w = client("mcring", server, mc_serde.pickle_serde)
    w.set(b"k", "text", noreply=False, flags=0)
    assert stored(server, b"k") == (b"text", 0)
    assert w.get(b"k") == b"text"


def test_interop_checks_can_fail(server):
    """A reader with the wrong serde does not read the value back."""
    w = client("pymemcache", server, pm_serde.pickle_serde)
    r = client("mcring", server, None)
    w.set(b"k", {"a": 1}, noreply=False)
    assert r.get(b"k") != {"a": 1}
