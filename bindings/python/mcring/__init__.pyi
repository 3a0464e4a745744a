# Type stubs for mcring (the C core's methods are declared on the classes).
import ssl
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple, TypeVar, Union

from . import serde as serde
from .exceptions import (
    MemcacheClientError as MemcacheClientError,
    MemcacheError as MemcacheError,
    MemcacheIllegalInputError as MemcacheIllegalInputError,
    MemcacheNodeDownError as MemcacheNodeDownError,
    MemcacheServerError as MemcacheServerError,
    MemcacheUnexpectedCloseError as MemcacheUnexpectedCloseError,
    MemcacheUnknownCommandError as MemcacheUnknownCommandError,
    MemcacheUnknownError as MemcacheUnknownError,
)

__version__: str

Key = Union[str, bytes]
Server = Union[str, Tuple[str, int], Tuple[str, int, int], List[Any]]
_T = TypeVar("_T")

class Serde(Protocol):
    def serialize(self, key: bytes, value: Any) -> Tuple[bytes, int]: ...
    def deserialize(self, key: bytes, value: bytes, flags: int) -> Any: ...

def ring_locate(servers: str, distribution: str, keys: Iterable[Key]) -> List[str]: ...

class _Base:
    serde: Optional[Serde]
    key_prefix: bytes
    default_noreply: bool
    allow_unicode_keys: bool
    encoding: str
    ignore_exc: bool
    def set(self, key: Key, value: Any, expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> bool: ...
    def add(self, key: Key, value: Any, expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> bool: ...
    def replace(self, key: Key, value: Any, expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> bool: ...
    def append(self, key: Key, value: Any, expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> bool: ...
    def prepend(self, key: Key, value: Any, expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> bool: ...
    def cas(self, key: Key, value: Any, cas: Union[int, str, bytes], expire: int = ..., noreply: bool = ..., flags: Optional[int] = ...) -> Optional[bool]: ...
    def get(self, key: Key, default: Any = ...) -> Any: ...
    def gets(self, key: Key, default: Any = ..., cas_default: Any = ...) -> Tuple[Any, Any]: ...
    def gat(self, key: Key, expire: int = ..., default: Any = ...) -> Any: ...
    def gats(self, key: Key, expire: int = ..., default: Any = ..., cas_default: Any = ...) -> Tuple[Any, Any]: ...
    def get_many(self, keys: Iterable[Key]) -> Dict[Key, Any]: ...
    def get_multi(self, keys: Iterable[Key]) -> Dict[Key, Any]: ...
    def gets_many(self, keys: Iterable[Key]) -> Dict[Key, Tuple[Any, bytes]]: ...
    def gets_multi(self, keys: Iterable[Key]) -> Dict[Key, Tuple[Any, bytes]]: ...
    def set_many(self, values: Mapping[Key, Any], expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> List[Key]: ...
    def set_multi(self, values: Mapping[Key, Any], expire: int = ..., noreply: Optional[bool] = ..., flags: Optional[int] = ...) -> List[Key]: ...
    def delete(self, key: Key, noreply: Optional[bool] = ...) -> bool: ...
    def get_or_compute(self, key: Key, compute: Callable[[], Any],
                       expire: int = ..., lease_ttl: int = ...,
                       recache: int = ..., wait: float = ...,
                       poll: float = ...) -> Any: ...
    def invalidate(self, key: Key, stale_ttl: int = ...) -> bool: ...
    def delete_many(self, keys: Iterable[Key], noreply: Optional[bool] = ...) -> bool: ...
    def delete_multi(self, keys: Iterable[Key], noreply: Optional[bool] = ...) -> bool: ...
    def incr(self, key: Key, value: int, noreply: bool = ...) -> Optional[int]: ...
    def decr(self, key: Key, value: int, noreply: bool = ...) -> Optional[int]: ...
    def touch(self, key: Key, expire: int = ..., noreply: Optional[bool] = ...) -> bool: ...
    def cache_memlimit(self, memlimit: int) -> bool: ...
    def node_for_key(self, key: Key) -> str: ...
    def client_stats(self) -> Dict[str, int]: ...
    def quit(self) -> None: ...
    def close(self) -> None: ...
    def __setitem__(self, key: Key, value: Any) -> None: ...
    def __getitem__(self, key: Key) -> Any: ...
    def __delitem__(self, key: Key) -> None: ...
    def __enter__(self: _T) -> _T: ...
    def __exit__(self, *exc_info: Any) -> None: ...

class Client(_Base):
    server: Server
    def __init__(
        self,
        server: Server,
        serde: Optional[Serde] = ...,
        serializer: Any = ...,
        deserializer: Any = ...,
        connect_timeout: Optional[float] = ...,
        timeout: Optional[float] = ...,
        no_delay: bool = ...,
        ignore_exc: bool = ...,
        socket_module: Any = ...,
        socket_keepalive: Any = ...,
        key_prefix: Union[bytes, str] = ...,
        default_noreply: bool = ...,
        allow_unicode_keys: bool = ...,
        encoding: str = ...,
        tls_context: Optional[ssl.SSLContext] = ...,
        item_size_max: int = ...,
        tls: bool = ...,
        tls_ca_file: Optional[str] = ...,
        tls_ca_dir: Optional[str] = ...,
        tls_cert_file: Optional[str] = ...,
        tls_key_file: Optional[str] = ...,
        tls_server_name: Optional[str] = ...,
        tls_insecure: bool = ...,
    ) -> None: ...
    def flush_all(self, delay: int = ..., noreply: Optional[bool] = ...) -> bool: ...
    def stats(self, *args: Union[str, bytes]) -> Dict[bytes, Any]: ...
    def version(self) -> bytes: ...

class PooledClient(Client):
    def __init__(
        self,
        server: Server,
        serde: Optional[Serde] = ...,
        serializer: Any = ...,
        deserializer: Any = ...,
        connect_timeout: Optional[float] = ...,
        timeout: Optional[float] = ...,
        no_delay: bool = ...,
        ignore_exc: bool = ...,
        socket_module: Any = ...,
        socket_keepalive: Any = ...,
        key_prefix: Union[bytes, str] = ...,
        max_pool_size: Any = ...,
        pool_idle_timeout: Any = ...,
        lock_generator: Any = ...,
        default_noreply: bool = ...,
        allow_unicode_keys: bool = ...,
        encoding: str = ...,
        tls_context: Optional[ssl.SSLContext] = ...,
        **mcring_options: Any,
    ) -> None: ...

class HashClient(_Base):
    servers: Optional[Sequence[Server]]
    ring_dir: Optional[str]
    ring_owner: Optional[Union[str, int]]
    elasticache: Optional[str]
    distribution: str
    def __init__(
        self,
        servers: Optional[Sequence[Server]] = ...,
        hasher: Any = ...,
        serde: Optional[Serde] = ...,
        serializer: Any = ...,
        deserializer: Any = ...,
        connect_timeout: Optional[float] = ...,
        timeout: Optional[float] = ...,
        no_delay: bool = ...,
        socket_module: Any = ...,
        socket_keepalive: Any = ...,
        key_prefix: Union[bytes, str] = ...,
        max_pool_size: Any = ...,
        pool_idle_timeout: Any = ...,
        lock_generator: Any = ...,
        retry_attempts: int = ...,
        retry_timeout: float = ...,
        dead_timeout: float = ...,
        use_pooling: bool = ...,
        ignore_exc: bool = ...,
        allow_unicode_keys: bool = ...,
        default_noreply: bool = ...,
        encoding: str = ...,
        tls_context: Optional[ssl.SSLContext] = ...,
        distribution: str = ...,
        ring_dir: Optional[str] = ...,
        eject: bool = ...,
        item_size_max: int = ...,
        tls: bool = ...,
        tls_ca_file: Optional[str] = ...,
        tls_ca_dir: Optional[str] = ...,
        tls_cert_file: Optional[str] = ...,
        tls_key_file: Optional[str] = ...,
        tls_server_name: Optional[str] = ...,
        tls_insecure: bool = ...,
        elasticache: Optional[Union[str, Tuple[str, int]]] = ...,
        discovery_interval: Optional[float] = ...,
        ring_owner: Optional[Union[str, int]] = ...,
    ) -> None: ...
    def flush_all(self, delay: int = ..., noreply: Optional[bool] = ...) -> None: ...
    def stats(self, *args: Union[str, bytes]) -> Dict[str, Dict[bytes, Any]]: ...
    def version(self) -> Dict[str, bytes]: ...
    def nodes(self) -> List[str]: ...
