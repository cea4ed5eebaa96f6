"""Sockets: in ``replay``, a connection the cache did not answer is refused before it opens.

Every client that reaches the network from Python code opens a socket with
``socket.socket.connect`` or ``connect_ex`` (``socket.create_connection``, ``http.client``,
asyncio's ``sock_connect`` and ``create_connection`` all do), so this is where a call that went
past every adapter is stopped: before the connection exists, so nothing is sent.

A marked test in ``replay`` may still connect to loopback (local databases and servers; not
with ``llm_cache_block_loopback``), over Unix sockets, and to the hosts of its allow-list
(``llm_cache_allow_hosts`` and the marker's ``allow_hosts``: names, ``*.`` wildcards, IPs and
CIDR ranges). A name matches the addresses ``socket.getaddrinfo`` gave for it while the test
ran. A connection opened by an httpx transport the cache cannot see into is refused in every
mode, loopback included.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._current import Unseen, current, unseen_transport
from .._engine import TestCache
from .._errors import CacheRefusal
from .._messages import went_around
from .._settings import Mode
from ._swap import is_swapped, swap

__all__ = ["allows", "patch"]

_INET = (socket.AF_INET, socket.AF_INET6)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The names each test resolved, by address: ``allow_hosts`` is written with names, and a
# connection only knows an address. Held by the test, so it ends with it.
_resolved: weakref.WeakKeyDictionary[TestCache, dict[str, set[str]]] = weakref.WeakKeyDictionary()


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Guard ``lib``'s (the ``socket`` module's) connections; return the undo (``None`` if done)."""
    sock_cls: Any = lib.socket
    if is_swapped(sock_cls.connect):
        return None
    original_connect = sock_cls.connect
    original_connect_ex = sock_cls.connect_ex
    original_getaddrinfo = lib.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check(self, address, original_getaddrinfo)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address, original_getaddrinfo)
        result: int = original_connect_ex(self, address)
        return result

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        results = original_getaddrinfo(host, port, *args, **kwargs)
        if isinstance(host, (str, bytes)):
            _remember(host, results)
        return results

    return swap(
        [
            (sock_cls, "connect", connect),
            (sock_cls, "connect_ex", connect_ex),
            (lib, "getaddrinfo", getaddrinfo),  # asyncio looks it up on the module each time
        ]
    )


def _check(sock: socket.socket, address: Any, resolve: Callable[..., Any]) -> None:
    """Refuse the connection if the calling test may not open it; return if it may."""
    unseen = unseen_transport()
    test = current()  # raises for a thread or task whose test has finished
    if unseen is None and (test is None or test.mode is not Mode.REPLAY):
        return  # the common case, and the only one outside marked replayed tests: cheap
    family = sock.family
    if unseen is None and family not in _INET:
        return  # Unix sockets and the like never leave the machine
    host, port, ip = _target(family, address, resolve)
    if unseen is not None:
        if test is not None:
            test.refuse(_unseen_message(unseen, host, ip, port, test))
        return
    assert test is not None
    if ip is None:
        return  # a name that does not resolve: the connection fails by itself
    local = ip.is_loopback or ip.is_unspecified
    if (local and not test.engine.settings.block_loopback) or _allowed(test, ip, host):
        return
    names = sorted(_resolved.get(test, {}).get(str(ip), ()))
    if names and host == str(ip):
        host = names[0]  # the name the caller asked for, as the allow-list wants it
    test.refuse(_offline_message(host, ip, port, test))


def _target(
    family: int, address: Any, resolve: Callable[..., Any]
) -> tuple[str, int, Address | None]:
    """``(host as given, port, address connected to)`` of a connect call."""
    if family not in _INET or not isinstance(address, tuple):
        return str(address), 0, None
    host, port = str(address[0]), int(address[1])
    try:
        return host, port, _ip(host)
    except ValueError:
        pass
    try:  # a name: the socket resolves it itself and takes the first answer
        found = resolve(host, port, family, socket.SOCK_STREAM)
    except OSError:
        return host, port, None
    return host, port, _ip(str(found[0][4][0])) if found else None


def _ip(text: str) -> Address:
    ip = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _remember(host: str | bytes, results: Any) -> None:
    """Note which name each address came from, for a replayed test's allow-list."""
    try:
        test = current()
    except CacheRefusal:
        return  # a finished test's thread: its connection is refused anyway
    if test is None or test.mode is not Mode.REPLAY:
        return
    name = (host.decode() if isinstance(host, bytes) else host).lower().rstrip(".")
    names = _resolved.setdefault(test, {})
    for *_, sockaddr in results:
        names.setdefault(str(sockaddr[0]).partition("%")[0], set()).add(name)


def _allowed(test: TestCache, ip: Address, host: str) -> bool:
    if not test.options.allow_hosts:
        return False
    names = {host.lower().rstrip(".")} | _resolved.get(test, {}).get(str(ip), set())
    return allows(test.options.allow_hosts, ip, names)


def allows(hosts: tuple[str, ...], ip: Address, names: set[str]) -> bool:
    """Whether the allow-list ``hosts`` lets a test connect to ``ip``, known by ``names``."""
    exact, suffixes, networks = _patterns(hosts)
    if any(ip in network for network in networks):
        return True
    return any(name in exact or name.endswith(suffixes) for name in names)


@functools.lru_cache(maxsize=64)
def _patterns(
    hosts: tuple[str, ...],
) -> tuple[frozenset[str], tuple[str, ...], tuple[Network, ...]]:
    """An allow-list as exact names, ``*.`` suffixes and networks (an IP is a /32 or /128)."""
    exact: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    for host in hosts:
        try:
            networks.append(ipaddress.ip_network(host.strip("[]"), strict=False))
        except ValueError:
            if host.startswith("*."):
                suffixes.append(host[1:].rstrip("."))
            else:
                exact.add(host.rstrip("."))
    return frozenset(exact), tuple(suffixes), tuple(networks)


def _where(host: str, ip: Address | None, port: int) -> str:
    shown = host if ip is None or host == str(ip) else f"{host} ({ip})"
    return f"{shown} port {port}" if port else shown


def _unseen_message(
    unseen: Unseen, host: str, ip: Address | None, port: int, test: TestCache
) -> str:
    method, _, url = unseen.call.partition(" ")
    return went_around(method, url, unseen.via, test.nodeid, _where(host, ip, port))


def _offline_message(host: str, ip: Address, port: int, test: TestCache) -> str:
    why = (
        "loopback is refused too because llm_cache_block_loopback is on"
        if ip.is_loopback or ip.is_unspecified
        else "the host is not in the test's allow-list"
    )
    return (
        f"pytest-llmcache: refused a connection to {_where(host, ip, port)}: replay is "
        f"offline, the cache did not answer this call and {why}. Nothing was sent.\n"
        f"  test: {test.nodeid}\n"
        f"  allow it: llm_cache_allow_hosts = {host} (ini), or "
        f"@pytest.mark.llm_cache(allow_hosts=[{host!r}]) on the test"
    )
