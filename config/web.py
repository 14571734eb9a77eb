"""The web server: daphne serving Docent, with its websocket keep-alive set deliberately.

Daphne pings every websocket after `DOCENT_WS_PING_INTERVAL_S` of silence and drops (TCP abort) one that
has not answered within `DOCENT_WS_PING_TIMEOUT_S`. A stalled client — one that stopped reading, a laptop
that went to sleep, a half-open connection — cannot answer a ping, so whatever the server queued for it is
freed within interval + timeout (50 s by default); in that time it can have been sent at most the answers
its rate limit allows. `make run` (config.launcher) and the production image both start the server here.

On shutdown (SIGTERM, SIGINT) every open websocket is closed with code 1001, "going away", before the
applications are cancelled: a browser sees a server restart, not an abnormal closure (1006), and the page
reconnects.

    python -m config.web [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any


def command(host: str, port: int, env: Mapping[str, str] | None = None) -> list[str]:
    """The daphne command line; keep-alive settings from `env` (default: this process's environment)."""
    env = os.environ if env is None else env
    return [
        sys.executable,
        "-m",
        "config.web",
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


CLOSE_GRACE_S = 1.0


def _daphne(argv: list[str]) -> None:
    """daphne's own command line, with a server that says goodbye to its websockets."""
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred

    class GoodbyeServer(Server):
        def kill_all_applications(self) -> Deferred[Any]:
            open_sockets = [
                protocol
                for protocol in self.connections
                if isinstance(protocol, WebSocketProtocol) and protocol.state == WebSocketProtocol.STATE_OPEN
            ]
            for protocol in open_sockets:
                # 1001 "going away" (autobahn's sendClose allows applications only 1000 and 3000-4999)
                protocol.sendCloseFrame(code=1001, reasonUtf8=b"server stopping", isReply=False)
            if not open_sockets:
                return super().kill_all_applications()
            # a moment for the closing handshakes before the applications are cancelled and the sockets cut
            return task.deferLater(reactor, CLOSE_GRACE_S, Server.kill_all_applications, self)

    interface = CommandLineInterface()
    interface.server_class = GoodbyeServer
    interface.run(argv)


def main() -> None:
    if sys.argv[1:2] == ["daphne"]:
        _daphne(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    options = parser.parse_args()
    argv = command(options.host, options.port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
