"""The container's HEALTHCHECK: TorchServe's ``/ping`` on loopback, and the gateway listening.

TorchServe's ``/ping`` needs its inference token, which it writes to ``var/key_file.json`` at
every start: read it there (the check runs inside the container, as the same user). ``/ping``
is ``Healthy`` when every registration has its workers. The gateway's gRPC port must accept a
connection too; ``convscope-serve`` exits when either process exits, so a dead gateway ends the
container anyway. Exit status 0: healthy; 1: not (the reason on stdout, which Docker keeps).
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

RUN_DIR = Path(__file__).resolve().parents[2] / "var"
PING = "http://127.0.0.1:8080/ping"
GATEWAY = ("127.0.0.1", 50051)


def check() -> str | None:
    """None when healthy, else what is wrong."""
    try:
        key = json.loads((RUN_DIR / "key_file.json").read_text())["inference"]["key"]
        request = urllib.request.Request(PING, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            status = json.load(answer).get("status")
        with socket.create_connection(GATEWAY, timeout=5):
            pass
    except (OSError, ValueError, KeyError, TypeError) as error:  # HTTPError (500 Unhealthy) is an OSError
        return f"{type(error).__name__}: {error}"
    return None if status == "Healthy" else f"TorchServe /ping: {status}"


if __name__ == "__main__":
    problem = check()
    print(problem or "healthy")
    sys.exit(1 if problem else 0)
