"""Docent served as `make run` serves it, for tests that talk to it over real HTTP (config.dev_servers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from config.dev_servers import docent_server as _docent_server


@contextlib.contextmanager
def docent_server(log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the server on a free port with the test database and Redis; yield its URL; stop it.

    `env` adds to the test process's environment (settings are read from it at start)."""
    with _docent_server(env, log_path=log_path) as server:
        yield server.url
