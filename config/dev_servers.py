"""Docent's web server started on a free port, as `make run` starts it (config.web: daphne with its websocket
keep-alive and goodbye on shutdown), for the tests and benchmarks that talk to it over real HTTP and websockets.

One implementation for both: tests/servers.py and evaluation/bench_chat.py wrap it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from config.embedded_services import BASE_DIR, free_port, port_open, start_redis
from config.web import command as web_command


@dataclass(frozen=True)
class DocentServer:
    host: str  # "127.0.0.1:PORT"
    pid: int  # the server process (for its memory: psutil.Process(pid).memory_info().rss)
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextmanager
def docent_server(
    env: dict[str, str] | None = None, *, log_path: Path | None = None, start_timeout_s: float = 120
) -> Iterator[DocentServer]:
    """Start the server on a free port of 127.0.0.1, wait until it serves a static file, yield it, stop it.

    It uses this process's database (settings.DATABASE_URL) and Redis (settings.REDIS_URL); when nothing
    listens on that Redis address, a private Redis is started for the server's life (the channel layer and the
    limits need one). `env` adds to this process's environment, which the server's settings are read from
    (e.g. {"DOCENT_PRELOAD": "1"} to load the models before the first question). The log goes to `log_path`
    (default: a file in the temporary directory named after the port). RuntimeError if it does not start.
    """
    port = free_port()
    host = f"127.0.0.1:{port}"
    redis_url, redis = settings.REDIS_URL, None
    parts = urlsplit(redis_url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 6379):
        redis_port = free_port()
        redis = start_redis(redis_port, Path(tempfile.mkdtemp(prefix="docent-server-redis-")))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    server_env = {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": redis_url,
        "DOCENT_PUBLIC_URL": f"http://{host}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env or {}),
    }
    log_path = log_path or Path(tempfile.gettempdir()) / f"docent-daphne-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            web_command("127.0.0.1", port, server_env),
            cwd=BASE_DIR,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                try:
                    with urllib.request.urlopen(f"http://{host}/static/docent-widget.js", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the web server did not start; see {log_path}")
                time.sleep(0.3)
            yield DocentServer(host=host, pid=process.pid, log_path=log_path)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if redis is not None:
                redis.terminate()
                redis.wait(10)
