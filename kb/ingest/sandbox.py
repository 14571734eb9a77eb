"""Parsing in a separate process, under a time limit and a memory limit.

Parsers are where hostile or merely huge files hurt: a 23 MB PDF took more than 10 GB in unstructured
(#2129), and a pathological file can keep a parser busy for ever. So every file is parsed by a
long-lived child process (`python -m kb.ingest.sandbox`) that the ingesting process watches: past its
time limit or `DOCENT_PARSE_MEMORY_MB` of resident memory the child is killed, the document fails with
that reason, and the next parse starts a fresh child. The worker that asked survives and the queue keeps
draining.

The time limit grows with the file: `DOCENT_PARSE_TIMEOUT_MIN_S` plus `DOCENT_PARSE_TIMEOUT_S_PER_MB` for
each MB, never more than `DOCENT_PARSE_TIMEOUT_S`, so a small file cannot hold a worker for minutes. It
counts from the moment the child starts on the file: a fresh child's start-up (imports, models) is not
charged to the file, it has its own limit (`STARTUP_TIMEOUT_S`).

The child dies with the process that started it (Linux `PR_SET_PDEATHSIG`): a worker killed, or stopped
while a parse runs, leaves no parser behind, and the terminal's Ctrl-C is left to its parent (the child
ignores SIGINT) so that the parent decides what stops when.

The child stays up between documents (imports and spaCy/unstructured models are paid once), and a
parse can be submitted before the caller needs its result, so the next document parses while the
current one is embedded.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings

from kb import reasons
from kb.ingest.parse import Parsed, ParseError

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
_READY = struct.Struct("!d")
_POLL_S = 0.05
STARTUP_TIMEOUT_S = 180.0  # a fresh child's imports on a busy machine
_PR_SET_PDEATHSIG = 1
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


class ParserProcess:
    """One child parser. Not thread-safe on its own: `parse_file` below serialises callers."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pending: tuple[Path, str] | None = None
        self.peak_rss = 0
        self.ready_at: float | None = None  # when the child said it was ready for work
        self.submitted_at = 0.0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        base_dir = Path(settings.BASE_DIR)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(base_dir), os.environ.get("PYTHONPATH")])),
            "DOCENT_PARSER_PARENT": str(os.getpid()),
        }
        self.ready_at = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kb.ingest.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # unbuffered: a buffered reader could pull the next answer into its buffer with the ready frame,
            # and select() on the pipe would then wait for bytes already read (a parse "timed out" under load)
            bufsize=0,
            cwd=base_dir,
            env=env,
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream:
                    stream.close()
        self.process = None
        self.pending = None

    def submit(self, path: Path, original_name: str) -> None:
        if self.pending is not None:
            raise RuntimeError("a parse is already pending")
        if not self.alive():
            self.start()
        assert self.process is not None and self.process.stdin is not None
        request = json.dumps({"path": str(path), "name": original_name}) + "\n"
        try:
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            self.kill()
            self.start()
            assert self.process is not None and self.process.stdin is not None
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
        self.pending = (path, original_name)
        self.submitted_at = time.monotonic()

    def result(self, *, timeout_s: float, memory_bytes: int) -> Parsed:
        if self.pending is None or self.process is None or self.process.stdout is None:
            raise RuntimeError("no parse pending")
        if self.ready_at is None:
            frame = self._read_frame(
                memory_bytes=memory_bytes, deadline=self.submitted_at + STARTUP_TIMEOUT_S, startup=True
            )
            # CLOCK_MONOTONIC is one clock for every process on the machine
            (self.ready_at,) = _READY.unpack(frame) if len(frame) == _READY.size else (time.monotonic(),)
        # The parse began when the child was ready and had the request, whichever came last.
        deadline = max(self.ready_at, self.submitted_at) + timeout_s
        body = self._read_frame(memory_bytes=memory_bytes, deadline=deadline, timeout_s=timeout_s)
        self.pending = None
        outcome, value = pickle.loads(body)
        if outcome == "error":
            raise ParseError(value)
        return value

    def _read_frame(
        self, *, memory_bytes: int, deadline: float, timeout_s: float = 0.0, startup: bool = False
    ) -> bytes:
        """The child's next length-prefixed answer, watching its memory and the deadline meanwhile."""
        assert self.process is not None and self.process.stdout is not None
        process, stdout = self.process, self.process.stdout
        fd = stdout.fileno()
        self.peak_rss = 0
        while True:
            ready, _, _ = select.select([fd], [], [], _POLL_S)
            if ready:
                break
            rss = _rss_bytes(process.pid)
            self.peak_rss = max(self.peak_rss, rss)
            if rss > memory_bytes:
                self.kill()
                raise ParseError(reasons.PARSE_MEMORY % {"mb": memory_bytes // (1024 * 1024)})
            if time.monotonic() > deadline:
                self.kill()
                if startup:
                    raise ParseError(reasons.PARSER_STARTUP)
                raise ParseError(reasons.PARSE_TIMEOUT % {"seconds": f"{timeout_s:g}"})
            if process.poll() is not None:
                break
        try:
            (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
            body = _read_exactly(fd, size)
        except (EOFError, OSError) as exc:
            code = process.poll()
            self.kill()
            raise ParseError(reasons.PARSER_STOPPED % {"code": code}) from exc
        return body


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes from the pipe, waiting for the rest of a frame the child is still writing; EOFError when the
    child closes it first."""
    chunks, missing = [], size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


_local = threading.local()


def _parser() -> ParserProcess:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = ParserProcess()
    return parser


def time_limit(size_bytes: int) -> float:
    """Seconds a file of this size may take to parse: a floor plus so much a MB, up to the ceiling."""
    scaled = settings.DOCENT_PARSE_TIMEOUT_MIN_S + settings.DOCENT_PARSE_TIMEOUT_S_PER_MB * size_bytes / 1_000_000
    return float(min(settings.DOCENT_PARSE_TIMEOUT_S, scaled))


def limits(path: Path | None = None) -> tuple[float, int]:
    try:
        size = path.stat().st_size if path is not None else 0
    except OSError:
        size = 0
    return time_limit(size), int(settings.DOCENT_PARSE_MEMORY_MB) * 1024 * 1024


def submit(path: Path, original_name: str = "") -> None:
    """Start parsing a file in this thread's parser process; `result()` collects it."""
    _parser().submit(path, original_name)


def result() -> Parsed:
    parser = _parser()
    timeout_s, memory_bytes = limits(parser.pending[0] if parser.pending else None)
    return parser.result(timeout_s=timeout_s, memory_bytes=memory_bytes)


def pending_for() -> tuple[Path, str] | None:
    """The (path, name) submitted and not yet collected, if any."""
    return _parser().pending


def cancel() -> None:
    """Drop a submitted parse whose result is no longer wanted (the child is restarted)."""
    parser = _parser()
    if parser.pending is not None:
        parser.kill()


def parse_file(path: Path, original_name: str = "") -> Parsed:
    """Parse one file under the limits; raises ParseError with the reason when it cannot."""
    cancel()
    submit(path, original_name)
    return result()


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing happens)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)


def _serve() -> None:
    """The child: read one JSON request a line, answer each with a length-prefixed pickle."""
    if parent := os.environ.get("DOCENT_PARSER_PARENT"):
        die_with_parent(int(parent))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker to handle; it ends this child
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints must not corrupt the answers
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from kb.ingest import parse

    # ready, and since when: what follows is charged to the files, not to the start-up
    out.write(_HEADER.pack(_READY.size) + _READY.pack(time.monotonic()))
    out.flush()

    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: tuple[str, object] = ("ok", parse.parse_file(Path(request["path"]), request["name"]))
        except ParseError as exc:
            answer = ("error", str(exc))
        except FileNotFoundError:
            answer = ("error", reasons.FILE_MISSING)
        except MemoryError:
            answer = ("error", reasons.PARSER_OUT_OF_MEMORY)
        except Exception as exc:  # a parser bug must fail the document, not the child
            logger.exception("parser failed on %s", request["path"])
            answer = ("error", reasons.PARSER_FAILED % {"error": f"{type(exc).__name__}: {exc}"})
        body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(body)) + body)
        out.flush()


if __name__ == "__main__":
    _serve()
