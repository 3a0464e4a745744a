"""Serializers that read and write pymemcache's flags.

A serde is any object with ``serialize(key, value) -> (bytes, flags)`` and
``deserialize(key, data, flags) -> value``; pymemcache's own
(``pymemcache.serde.pickle_serde`` and friends) work unchanged. The ones here
need no pymemcache:

* ``pickle_serde`` / ``PickleSerde(pickle_version)``: bytes as is (flags 0),
  str as UTF-8 (16), int as decimal text (2), anything else pickled (1).
  Reads flags 4 (Python 2 long) as int too.
* ``CompressedSerde(serde=pickle_serde, min_compress_len=400, level=-1)``:
  zlib-compresses (no length prefix) what the inner serde produced when it is
  at least ``min_compress_len`` bytes and compression saves space, and adds
  flag 8. Reading undoes it for any value with flag 8 — pymemcache 4's
  ``CompressedSerde`` layout, so both sides share such values.

Flag table (pymemcache): BYTES 0, PICKLE 1, INTEGER 2, LONG 4, COMPRESSED 8,
TEXT 16.
"""

import pickle
import zlib

FLAG_BYTES = 0
FLAG_PICKLE = 1 << 0
FLAG_INTEGER = 1 << 1
FLAG_LONG = 1 << 2
FLAG_COMPRESSED = 1 << 3
FLAG_TEXT = 1 << 4

DEFAULT_PICKLE_VERSION = pickle.HIGHEST_PROTOCOL


class PickleSerde:
    """pymemcache-compatible serde: bytes, str, int natively, else pickle."""

    def __init__(self, pickle_version=DEFAULT_PICKLE_VERSION):
        self.pickle_version = pickle_version

    def serialize(self, key, value):
        kind = type(value)
        if kind is bytes:
            return value, FLAG_BYTES
        if kind is str:
            return value.encode("utf8"), FLAG_TEXT
        if kind is int:
            return b"%d" % value, FLAG_INTEGER
        return pickle.dumps(value, self.pickle_version), FLAG_PICKLE

    def deserialize(self, key, value, flags):
        if flags == 0:
            return value
        if flags & FLAG_TEXT:
            return value.decode("utf8")
        if flags & (FLAG_INTEGER | FLAG_LONG):
            return int(value)
        if flags & FLAG_PICKLE:
            try:
                return pickle.loads(value)
            except Exception:
                # pymemcache logs and returns None for a broken pickle.
                return None
        return value


class CompressedSerde:
    """Wraps a serde with zlib compression marked by flag 8."""

    def __init__(self, serde=None, min_compress_len=400, level=-1):
        self.serde = serde if serde is not None else pickle_serde
        self.min_compress_len = min_compress_len
        self.level = level

    def serialize(self, key, value):
        data, flags = self.serde.serialize(key, value)
        if not isinstance(data, bytes):
            data = str(data).encode()
        if len(data) >= self.min_compress_len:
            packed = zlib.compress(data, self.level)
            if len(packed) < len(data):
                return packed, flags | FLAG_COMPRESSED
        return data, flags

    def deserialize(self, key, value, flags):
        if flags & FLAG_COMPRESSED:
            value = zlib.decompress(value)
            flags &= ~FLAG_COMPRESSED
        return self.serde.deserialize(key, value, flags)


class LegacyWrappingSerde:
    """Wraps pymemcache's deprecated serializer / deserializer functions."""

    def __init__(self, serializer_func, deserializer_func):
        self.serialize = serializer_func or self._same_serialize
        self.deserialize = deserializer_func or self._same_deserialize

    @staticmethod
    def _same_serialize(key, value):
        return value, 0

    @staticmethod
    def _same_deserialize(key, value, flags):
        return value


pickle_serde = PickleSerde()
compressed_serde = CompressedSerde()
