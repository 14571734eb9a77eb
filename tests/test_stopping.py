"""Stopping cleanly: parser processes die with their worker, the launcher stops in dependency order and leaves
nothing behind, a management command stops the Postgres it started."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from config.embedded_services import free_port, postgres_running
from config.launcher import spawn, stop
from kb.models import Document
from kb.services import document_create, knowledge_base_create
from tests.conftest import BASE_DIR

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone, awaiting its reaper
    except OSError:
        return False


def _session(sid: int) -> list[tuple[int, str]]:
    """Live processes of a session, with their command lines."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getsid(pid) != sid or not _alive(pid):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                found.append((pid, handle.read().replace(b"\0", b" ").decode(errors="replace").strip()))
        except OSError:
            continue
    return found


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _launch(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m config.launcher ARGS` in its own session (like a shell's job), its output on one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "config.launcher", *args],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str, output: list[str]) -> None:
    """Collect `process`'s output lines into `output` until one holds `marker` (or the output ends)."""
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if marker in line:
            return


def test_a_parser_dies_with_the_process_that_started_it(tmp_path):
    script = (
        "import django, sys, time; django.setup()\n"
        "from pathlib import Path\n"
        "from kb.ingest import sandbox\n"
        "sandbox.submit(Path(sys.argv[1]), 'notes.txt')\n"
        "print(sandbox._parser().process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    path = tmp_path / "notes.txt"
    path.write_text("The pump is checked every week.\n")
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], cwd=BASE_DIR, stdout=subprocess.PIPE, text=True
    )
    try:
        parser = int(worker.stdout.readline())  # type: ignore[union-attr]
        assert _alive(parser)
        worker.kill()  # SIGKILL: no cleanup code runs in the worker
        worker.wait()
        _wait(lambda: not _alive(parser), 10, "the orphaned parser to die")
    finally:
        worker.kill()


def test_stop_escalates_to_the_whole_process_group():
    # A leader that ignores SIGTERM, with a child that ignores it too: what a stuck worker and its parser do.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    leader = spawn([sys.executable, "-c", script], dict(os.environ), stdout=subprocess.PIPE, text=True)
    child = int(leader.stdout.readline())  # type: ignore[union-attr]
    assert os.getpgid(child) == leader.pid != os.getpgid(0)  # its own group, not the test's (Ctrl-C)
    started = time.monotonic()
    stop("stuck", leader, grace_s=1, escalate=[signal.SIGINT])
    assert time.monotonic() - started < 10
    assert not _alive(leader.pid) and not _alive(child)


@pytest.mark.django_db(transaction=True)
@needs_tesseract
def test_ctrl_c_during_a_long_parse_leaves_no_process_behind(tmp_path):
    """`make run`, a scanned PDF being OCRed by the worker's parser, then Ctrl-C: everything stops in order."""
    import pypdfium2 as pdfium

    manual = pdfium.PdfDocument(str(BASE_DIR / "kb" / "demo" / "lumen-k3-manual.en.pdf"))
    try:
        images = [manual[n].render(scale=250 / 72, grayscale=True).to_pil().convert("RGB") for n in range(6)]
    finally:
        manual.close()
    scan = io.BytesIO()
    images[0].save(scan, "PDF", resolution=250, save_all=True, append_images=images[1:] * 3)  # 24 pages

    var_dir = tmp_path / "var"
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "DOCENT_DEMO": "0",
        "DOCENT_VAR_DIR": str(var_dir),
        "DOCENT_LLM_MODEL": os.environ.get("DOCENT_TEST_LLM_MODEL", "smollm2-135m"),
        "DOCENT_WORKER_STOP_S": "5",
    }
    # its own session, like a shell's job: the terminal's Ctrl-C is SIGINT to the launcher's process group
    launcher = _launch("run", env=env)
    output: list[str] = []
    try:
        _read_until(launcher, "Docent is running", output)
        assert "Docent is running" in "".join(output), "".join(output)[-3000:]

        # The launcher's worker must take the document, not the test suite's own worker if one is up.
        from config.celery import app

        ours = f"docent-{launcher.pid}@"
        others = [name for reply in app.control.ping(timeout=1.0) for name in reply if not name.startswith(ours)]
        if others:
            app.control.cancel_consumer("ingest", destination=others, reply=True)
        try:
            kb = knowledge_base_create(slug="scans")
            document = document_create(knowledge_base=kb, content=scan, filename="scan.pdf", enqueue=True).document

            def parsing() -> bool:
                document.refresh_from_db()
                commands = [command for _, command in _session(launcher.pid)]
                return document.stage == Document.Stage.PARSE and any("kb.ingest.sandbox" in c for c in commands)

            _wait(parsing, 180, "the worker to start parsing")
        finally:
            if others:
                app.control.add_consumer("ingest", destination=others, reply=True)
        time.sleep(2)  # well inside the OCR
        before = _session(launcher.pid)
        assert any("celery" in command for _, command in before) and any("daphne" in c for _, c in before)

        started = time.monotonic()
        os.killpg(launcher.pid, signal.SIGINT)
        rest, _ = launcher.communicate(timeout=120)
        output.append(rest)
        elapsed = time.monotonic() - started
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    log = "".join(output)
    assert launcher.returncode == 0, log[-3000:]
    assert elapsed < 60, log[-3000:]
    assert _session(launcher.pid) == [], log[-3000:]
    assert "nothing Docent started is left running" in log
    assert "beat: Starting..." in log, log[-3000:]  # periodic tasks (the question log's retention) run beside
    assert log.index("stopping the web server") < log.index("stopping the worker")
    assert "Traceback" not in log[log.index("Ctrl-C") :], log[-3000:]


@pytest.mark.django_db(transaction=True)
def test_the_web_server_closes_websockets_with_going_away_when_it_stops(user):
    import urllib.request

    from django.test import Client
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from config.web import command

    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen(command("127.0.0.1", port), cwd=BASE_DIR, **quiet)  # type: ignore[call-overload]
    try:

        def up() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except urllib.error.HTTPError:
                return True  # 503 is an answer too
            except OSError:
                assert server.poll() is None
                return False
            return True

        _wait(up, 60, "the web server")
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        url, origin = f"ws://127.0.0.1:{port}/ws/chat/", f"http://127.0.0.1:{port}"
        with connect(url, origin=origin, additional_headers={"Cookie": cookie}) as socket:  # type: ignore[arg-type]
            server.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        server.wait(20)
    finally:
        server.kill()


def test_a_management_command_stops_the_postgres_it_started():
    var_dir = Path(tempfile.mkdtemp(prefix="docent-test-pg-"))
    os.chmod(var_dir, 0o755)  # the embedded Postgres runs as its own system user when we are root
    try:
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        env.update(DOCENT_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="config.settings.local")
        result = subprocess.run(
            [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert (var_dir / "pgdata" / "PG_VERSION").exists()
        assert not postgres_running(var_dir / "pgdata")
    finally:
        if postgres_running(var_dir / "pgdata"):
            subprocess.run([sys.executable, "-m", "config.embedded_services", "stop-postgres"], env=env, cwd=BASE_DIR)
        shutil.rmtree(var_dir, ignore_errors=True)


def test_the_production_worker_is_the_launchers_worker_command():
    """The compose file's worker runs `python -m config.launcher worker`, which becomes `worker_command`'s Celery
    worker on the servers the environment names (here the suite's), ready for the product's queues."""
    import yaml

    compose = yaml.safe_load((BASE_DIR / "docker" / "compose.yaml").read_text())
    assert compose["services"]["worker"]["command"] == ["python", "-m", "config.launcher", "worker"]
    worker = _launch("worker", "--name", f"compose-check-{os.getpid()}@%h", env=dict(os.environ))
    output: list[str] = []
    try:
        _read_until(worker, " ready.", output)
    finally:
        stop("worker", worker, grace_s=20, escalate=(signal.SIGKILL,))
    text = "".join(output)
    assert " ready." in text, text[-3000:]
    assert "compose-check-" in text and ".> ingest" in text and ".> default" in text, text[-3000:]
