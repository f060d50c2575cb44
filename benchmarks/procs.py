"""The processes of a running ConvScope, read from /proc: TorchServe's Java frontend, its Python
workers and the gateway, with their resident memory and open file descriptors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GROUPS = ("frontend", "workers", "gateway")


@dataclass(frozen=True)
class Usage:
    pid: int
    rss_bytes: int
    fds: int


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_processes(server) -> dict[str, list[int]]:
    """pids by group of a ``convscope.serving.RunningServer``: TorchServe runs in a session of its
    own (frontend and workers), and so does the gateway."""
    groups: dict[str, list[int]] = {group: [] for group in GROUPS}
    gateway_session = server.gateway.pid if server.gateway is not None else None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        session, command = _session(pid), _cmdline(pid)
        if session == server.process.pid:
            if "java" in command.split(" ")[0]:
                groups["frontend"].append(pid)
            elif "model_service_worker" in command:
                groups["workers"].append(pid)
        elif session is not None and session == gateway_session and "python" in command:
            groups["gateway"].append(pid)
    return groups


def registration_workers(server, name: str) -> list[dict]:
    """TorchServe's description of registration ``name``'s workers (pid, status ...), from its
    management API with the management key."""
    import requests

    answer = requests.get(f"{server.url('management')}/models/{name}", timeout=10,
                          headers={"Authorization": f"Bearer {server.keys['management']}"})
    return answer.json()[0]["workers"]


def usage(pid: int) -> Usage | None:
    """Resident memory (VmRSS) and open descriptors of ``pid``; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return Usage(pid, rss, fds)


def group_usage(groups: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
    """(RSS bytes, descriptors) summed over each group's live processes."""
    totals = {}
    for group, pids in groups.items():
        seen = [u for u in (usage(pid) for pid in pids) if u is not None]
        totals[group] = (sum(u.rss_bytes for u in seen), sum(u.fds for u in seen))
    return totals


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so a benchmark's ``finally`` stops the server it started:
    the server runs in sessions of its own and would outlive a killed script."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda number, _frame: sys.exit(128 + number))
