"""``memdex mcp --http``: streamable HTTP (uvicorn), on loopback unless told
otherwise, with the Host and Origin headers checked against DNS rebinding."""

from __future__ import annotations

import ipaddress
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from indexer.errors import ConfigError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_http(
    server: MCPServer,
    address: tuple[str, int],
    *,
    allowed_origins: tuple[str, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
    on_listening: Any = None,
) -> None:
    """Serve ``server`` at ``address`` until the process is stopped."""
    import uvicorn

    host, port = address
    security = http_security(host, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts)
    app = server.streamable_http_app(transport_security=security, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, log_level="warning")
    if on_listening is not None:
        on_listening(host, port)
    anyio.run(uvicorn.Server(config).serve)


def http_security(
    host: str, *, allowed_origins: tuple[str, ...] = (), allowed_hosts: tuple[str, ...] = ()
) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: loopback names always, plus ``host``
    itself and ``allowed_hosts`` (names clients use to reach a wildcard address)."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    named_hosts = [h for h in (host, *allowed_hosts) if h not in LOOPBACK_HOSTS and h not in ("0.0.0.0", "::")]
    for name in named_hosts:
        named = f"[{name}]" if ":" in name else name
        hosts.append(f"{named}:*")
        origins.append(f"http://{named}:*")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins + list(allowed_origins)
    )


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT`` or ``PORT`` (loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--http {value!r}: expected HOST:PORT with a port from 1 to 65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
