"""The web server: daphne serving Docent, with its websocket keep-alive set deliberately.

Daphne pings every websocket after `DOCENT_WS_PING_INTERVAL_S` of silence and drops (TCP abort) one that
has not answered within `DOCENT_WS_PING_TIMEOUT_S`. A stalled client — one that stopped reading, a laptop
that went to sleep, a half-open connection — cannot answer a ping, so whatever the server queued for it is
freed within interval + timeout (50 s by default); in that time it can have been sent at most the answers
its rate limit allows. `make run` (config.launcher) and the production image both start the server here.

    python -m config.web [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping


def command(host: str, port: int, env: Mapping[str, str] | None = None) -> list[str]:
    """The daphne command line; keep-alive settings from `env` (default: this process's environment)."""
    env = os.environ if env is None else env
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        host,
        "-p",
        str(port),
        "--ping-interval",
        env.get("DOCENT_WS_PING_INTERVAL_S", "20"),
        "--ping-timeout",
        env.get("DOCENT_WS_PING_TIMEOUT_S", "30"),
        "config.asgi:application",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    options = parser.parse_args()
    argv = command(options.host, options.port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
