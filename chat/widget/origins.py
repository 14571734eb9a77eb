"""Web origins as browsers send them (`scheme://host[:port]`), so a stored origin compares equal to a header."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str, *, allow_path: bool) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) origin such as https://www.example.com")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} holds credentials; an origin is scheme://host[:port]")
    if not allow_path and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError(f"{url!r} has a path; an origin is scheme://host[:port] only")
    if "*" in parts.hostname:
        raise ValueError(f"{url!r}: wildcards are not supported; list each origin")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    # Browsers leave the default port out of the Origin header.
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def origin_normalize(value: str) -> str:
    """The canonical form of an origin typed by a person; ValueError when it is not one."""
    return _origin(value, allow_path=False)


def origin_of(url: str | None) -> str | None:
    """The origin of a full URL (a Referer, say), or None when there is none to be had."""
    if not url:
        return None
    try:
        return _origin(url, allow_path=True)
    except ValueError:
        return None


def netloc_of(origin: str) -> str:
    """`host[:port]` of a normalised origin, to compare with a Host header."""
    return origin.partition("://")[2]
