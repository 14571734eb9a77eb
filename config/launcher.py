"""`make run` and `make test`: bring up the services Docent needs, run, and stop everything started.

python -m config.launcher run    # services, migrations, demo, admin, web + worker (with beat) in the foreground
python -m config.launcher test   # throwaway Postgres + Redis on free ports, then pytest

Stopping (Ctrl-C, SIGTERM, or a process that exits) goes in dependency order: the web server first, so
that open websockets are closed while Redis still answers; then the Celery worker, whose warm shutdown
(finish the current task) is bounded by `DOCENT_WORKER_STOP_S` before a cold one and then SIGKILL of its
whole process group (pool processes and their parser children); then Redis, then PostgreSQL. Web and
worker run in process groups of their own, so the terminal's Ctrl-C reaches only this launcher, which
decides the order; each dies with the launcher if the launcher itself is killed (`PR_SET_PDEATHSIG`).
A second Ctrl-C skips the remaining grace periods. The last line says whether anything is left running.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from config.embedded_services import BASE_DIR, VAR_DIR, embedded_postgres, free_port, port_open, start_redis
from config.web import command as web_command

PYTHON = sys.executable
BIN = Path(PYTHON).parent
DEMO_DIR = BASE_DIR / "kb" / "demo"
DEMO_KB = "demo"


def worker_command(name: str, *, loglevel: str = "info", beat: bool = False) -> list[str]:
    """The Celery worker's command line, as `make run` starts it (and the test suite and `bench reliability`):
    the product's queues (ingest, default), one pool process, node name `name` (`%h`: the host name); `beat`
    runs Celery beat inside it (`-B`: one worker only, as in `make run`)."""
    return [
        str(BIN / "celery"),
        "-A",
        "config",
        "worker",
        *(["-B"] if beat else []),
        "-Q",
        "ingest,default",
        "-c",
        "1",
        "-l",
        loglevel,
        "-n",
        name,
    ]


def log(message: str) -> None:
    print(f"[docent] {message}", flush=True)


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], check=True, env=env, cwd=BASE_DIR)


_PR_SET_PDEATHSIG = 1
_hurry = False  # a second Ctrl-C while stopping: no more grace periods


def _die_with_launcher() -> None:
    """In a child, before exec: be sent SIGTERM when the launcher dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(argv: Sequence[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A child in its own process group (Ctrl-C in the terminal does not reach it), dying with us."""
    return subprocess.Popen(list(argv), env=env, cwd=BASE_DIR, process_group=0, preexec_fn=_die_with_launcher, **kwargs)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _wait_group(process: subprocess.Popen[bytes], seconds: float, *, hurried: bool = True) -> bool:
    """Wait until the process and everything in its process group is gone; False when time ran out (or,
    when `hurried`, at a second Ctrl-C)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (hurried and _hurry):
        process.poll()
        if process.returncode is not None and not _group_alive(process.pid):
            return True
        time.sleep(0.1)
    process.poll()
    return process.returncode is not None and not _group_alive(process.pid)


def stop(
    name: str, process: subprocess.Popen[bytes], *, grace_s: float, escalate: Sequence[signal.Signals] = ()
) -> None:
    """SIGTERM, then each of `escalate` (Celery's SIGQUIT: cold shutdown), `grace_s` apart, then SIGKILL to
    the whole process group, until nothing of it is left."""
    steps = [signal.SIGTERM, *escalate]
    for index, sig in enumerate(steps):
        if process.poll() is None:
            process.send_signal(sig)  # the leader stops its own children its way
        if _wait_group(process, grace_s):
            return
        following = steps[index + 1].name if index + 1 < len(steps) else "SIGKILL to its process group"
        log(f"{name} has not stopped after {grace_s:g} s; {following}")
    _signal_group(process, signal.SIGKILL)
    if not _wait_group(process, 5, hurried=False):
        log(f"{name}: process group {process.pid} is still running after SIGKILL")


def terminate(processes: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_services(stack: ExitStack, env: dict[str, str], *, var_dir: Path, redis_port: int | None) -> None:
    """Fill DATABASE_URL and REDIS_URL in env, starting the embedded servers where they are unset."""
    if not env.get("DATABASE_URL"):
        started = time.perf_counter()
        server = embedded_postgres(var_dir / "pgdata")
        env["DATABASE_URL"] = server.get_uri()
        stack.callback(server.stop)
        stack.callback(log, "stopping PostgreSQL")  # callbacks run last first: this line, then the stop
        log(f"PostgreSQL (embedded, {var_dir / 'pgdata'}) ready in {time.perf_counter() - started:.1f} s")
    if not env.get("REDIS_URL"):
        port = redis_port or free_port()
        if port_open("127.0.0.1", port):
            raise SystemExit(f"port {port} is taken: set REDIS_URL to use that Redis, or free the port")
        redis = start_redis(port, var_dir / "redis")
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        stack.callback(terminate, [redis])
        stack.callback(log, "stopping Redis")
        log(f"Redis on 127.0.0.1:{port}")


def ensure_admin(env: dict[str, str]) -> None:
    credentials = VAR_DIR / "admin-credentials.txt"
    if credentials.exists():
        log(f"admin account: see {credentials}")
        return
    password = secrets.token_urlsafe(12)
    script = (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        "u = U.objects.filter(username='admin').first() or U(username='admin', email='admin@localhost'); "
        "import os; u.is_staff = u.is_superuser = True; "
        "u.set_password(os.environ['DOCENT_ADMIN_PASSWORD']); u.save()"
    )
    manage("shell", "-c", script, env={**env, "DOCENT_ADMIN_PASSWORD": password})
    credentials.write_text(f"username: admin\npassword: {password}\n")
    credentials.chmod(0o600)
    log("created the admin account — shown once (also saved in var/admin-credentials.txt):")
    log("    username: admin")
    log(f"    password: {password}")


def run(args: argparse.Namespace) -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "PYTHONUNBUFFERED": "1"}
    port = int(env.get("PORT", "8000"))
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it the way Ctrl-C does
    # A shell without job control starts `cmd &` with SIGINT ignored, and Python then installs no handler;
    # Ctrl-C / kill -INT must stop Docent however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    groups: list[int] = []
    try:
        with ExitStack() as stack:
            start_services(stack, env, var_dir=VAR_DIR, redis_port=int(env.get("DOCENT_REDIS_PORT", "6380")))
            manage("migrate", "--noinput", "-v", "0", env=env)
            manage("collectstatic", "--noinput", "-v", "0", env=env)
            ensure_admin(env)
            if env.get("DOCENT_DEMO", "1") != "0":
                log("loading the demo knowledge base (skips documents already ingested)")
                manage("ingest", str(DEMO_DIR), "--kb", DEMO_KB, "--create", "--name", "Demo: Lumen K3 manual", env=env)
                # a demo base from an earlier version moves to the configured embedder (nothing to do when it is there)
                manage("reembed", "--kb", DEMO_KB, env=env)
            # beat=True: Celery beat inside this single worker (the question log's retention, CELERY_BEAT_SCHEDULE),
            # its schedule in var/celerybeat-schedule; production runs one `celery beat` process (docker/compose.yaml)
            worker = spawn(worker_command(f"docent-{os.getpid()}@%h", beat=True), env)
            groups.append(worker.pid)
            worker_grace = float(env.get("DOCENT_WORKER_STOP_S", "10"))
            stack.callback(stop, "worker", worker, grace_s=worker_grace, escalate=[signal.SIGQUIT])
            stack.callback(log, "stopping the worker")
            web = spawn(web_command("127.0.0.1", port, env), {**env, "DOCENT_PRELOAD": "1"})
            groups.append(web.pid)
            stack.callback(stop, "web server", web, grace_s=10)
            stack.callback(log, "stopping the web server")
            log(f"Docent is running at http://127.0.0.1:{port}/ — Ctrl-C stops everything")
            try:
                while web.poll() is None and worker.poll() is None:
                    time.sleep(0.5)
                log("a process exited; shutting down")
                return 1
            except KeyboardInterrupt:
                log("Ctrl-C: shutting down (Ctrl-C again to skip the grace periods)")
                signal.signal(signal.SIGINT, _hurry_up)
                signal.signal(signal.SIGTERM, _hurry_up)
                return 0
    except KeyboardInterrupt:
        log("interrupted while starting")
        return 130
    finally:
        report_left_running(groups)


def _hurry_up(signum: int, frame: object) -> None:
    global _hurry
    _hurry = True
    log("Ctrl-C again: stopping without waiting")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def report_left_running(groups: Sequence[int]) -> None:
    left = [pgid for pgid in groups if _group_alive(pgid)]
    if left:
        log(f"left running: process groups {left} (kill them with: kill -9 -- -PGID)")
    else:
        log("stopped; nothing Docent started is left running")


def test(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="docent-test-") as tmp, ExitStack() as stack:
        var_dir = Path(tmp)
        os.chmod(tmp, 0o755)  # the embedded Postgres runs as its own system user when we are root
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DOCENT_MEDIA_ROOT": str(var_dir / "media"),
            "DOCENT_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        start_services(stack, env, var_dir=var_dir, redis_port=None)
        result = subprocess.run([PYTHON, "-m", "pytest", *args.pytest_args], env=env, cwd=BASE_DIR)
        return result.returncode


def worker(args: argparse.Namespace) -> int:
    """Become the Celery worker of `worker_command` (production: the compose file's `worker` service), on the
    servers the environment names (DATABASE_URL, REDIS_URL); starts nothing else."""
    os.execv(BIN / "celery", worker_command(args.name, loglevel=args.loglevel, beat=args.beat))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m config.launcher")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole product in the foreground")
    sub.add_parser("test", help="run the test suite on throwaway services; other arguments go to pytest")
    worker_parser = sub.add_parser("worker", help="run one Celery worker on the servers the environment names")
    worker_parser.add_argument("--name", default="docent@%h", help="Celery node name (%%h: the host name)")
    worker_parser.add_argument("--loglevel", default="info")
    worker_parser.add_argument("--beat", action="store_true", help="also run Celery beat inside it (one worker only)")
    args, pytest_args = parser.parse_known_args()
    args.pytest_args = pytest_args
    sys.exit({"run": run, "test": test, "worker": worker}[args.command](args))


if __name__ == "__main__":
    main()
