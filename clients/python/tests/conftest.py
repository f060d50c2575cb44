"""Fixtures: the fake REST and gRPC servers, and one way to make a call through either client
(blocking or asyncio) over either transport."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pathlib import Path

import pytest
from client_fakes import FakeGrpc, FakeRest

from convscope_client import AsyncClient, Client

FAST = {"backoff": 0.01}  # retries in milliseconds, not the default fifth of a second


@dataclass
class Target:
    """A fake server and how to reach it."""

    transport: str
    server: FakeRest | FakeGrpc
    url: str

    def call(self, method: str, /, *args: Any, mode: str = "sync", options: dict[str, Any] | None = None,
             **kwargs: Any) -> Any:
        """``Client(...).method(*args, **kwargs)``, or the same through ``AsyncClient``."""
        options = {**FAST, **(options or {})}
        if mode == "sync":
            with Client(self.url, self.transport, **options) as client:
                return getattr(client, method)(*args, **kwargs)

        async def run() -> Any:
            async with AsyncClient(self.url, self.transport, **options) as client:
                return await getattr(client, method)(*args, **kwargs)
        return asyncio.run(run())


@pytest.fixture
def rest() -> Iterator[Target]:
    server = FakeRest()
    yield Target("rest", server, server.url)
    server.close()


@pytest.fixture
def grpc_target() -> Iterator[Target]:
    server = FakeGrpc()
    yield Target("grpc", server, server.url)
    server.close()


@pytest.fixture(params=["rest", "grpc"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each test once per transport."""
    return request.getfixturevalue("rest" if request.param == "rest" else "grpc_target")


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's own token in the environment, or the repository's var/key_file.json (the
    client reads it from the working directory), must not leak into the tests."""
    monkeypatch.delenv("CONVSCOPE_TOKEN", raising=False)
    monkeypatch.delenv("CONVSCOPE_KEY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
