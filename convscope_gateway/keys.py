"""TorchServe's own keys, as the gateway holds them: its ``key_file.json`` re-read when it
changes (a restart or a renewal rewrites it), and the inference and management keys renewed
through TorchServe's token API (with the API key, which never expires) before they expire after
``token_expiration_min``. Edge mode uses all of it; without edge mode the gateway renews only
the management key, which its readiness poller uses (renewing the inference key would
invalidate the key clients hold).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Awaitable, Callable, Generic, TypeVar

import aiohttp
import grpc

from .errors import GatewayError

log = logging.getLogger("convscope.gateway.keys")
T = TypeVar("T")

RENEW_MARGIN = timedelta(minutes=15)
"""TorchServe's keys are renewed when they expire within this margin (checked every minute)."""
RENEW_CHECK_S = 60.0
KINDS = ("inference", "management")


class WatchedFile(Generic[T]):
    """A small file, parsed; re-read when its inode, size or mtime change (a Secret's update
    swaps a symlink) or after ``invalidate``. A file that does not parse (TorchServe truncates
    its key file before writing it) keeps the last good value."""

    def __init__(self, path: Path, parse: Callable[[str], T]) -> None:
        self.path, self.parse = Path(path), parse
        self._signature: tuple[int, int, int] | None = None
        self._value: T | None = None

    def value(self) -> T | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return self._value
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if signature != self._signature:
            self._signature = signature  # a bad version is reported once, not at every call
            try:
                self._value = self.parse(self.path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("%s: not read (%s); keeping the last good value", self.path, error)
        return self._value

    def invalidate(self) -> None:
        self._signature = None


@dataclass(frozen=True)
class TorchServeKey:
    key: str
    expires: datetime | None


def parse_key_file(text: str) -> dict[str, TorchServeKey]:
    """TorchServe's ``key_file.json``: ``inference``, ``management`` and ``API`` (no expiry)."""
    doc = json.loads(text)

    def expiry(kind: str) -> datetime | None:
        value = doc[kind].get("expiration time")
        return datetime.fromisoformat(value) if value else None

    return {kind: TorchServeKey(str(doc[kind]["key"]), expiry(kind)) for kind in ("inference", "management", "API")}


def key_refused(path: Path) -> GatewayError:
    return GatewayError(grpc.StatusCode.UNAVAILABLE, "Unavailable",
                        f"TorchServe refused the gateway's key from {path}; retry", 503)


class TorchServeKeys:
    """TorchServe's own keys, as the gateway uses them behind the shared key."""

    def __init__(self, key_file: Path, management_url: str) -> None:
        self.file = WatchedFile(key_file, parse_key_file)
        self.management_url = management_url.rstrip("/")

    def _keys(self) -> dict[str, TorchServeKey]:
        keys = self.file.value()
        if keys is None:
            raise GatewayError(grpc.StatusCode.UNAVAILABLE, "Unavailable",
                               f"TorchServe has not written {self.file.path} yet", 503)
        return keys

    def key(self, kind: str) -> str | None:
        """TorchServe's current ``kind`` key (``management``, ``inference``, ``API``), or None
        before TorchServe has written its key file."""
        keys = self.file.value()
        return keys[kind].key if keys else None

    def bearer(self) -> str:
        """``Bearer <TorchServe's inference key>``."""
        return f"Bearer {self._keys()['inference'].key}"

    def refused(self) -> None:
        """TorchServe refused the key: read the file again before the next call."""
        self.file.invalidate()

    async def call(self, attempt: Callable[[str], Awaitable[T]], is_refusal: Callable[[BaseException], bool]) -> T:
        """``attempt(bearer)``; when TorchServe refuses the key, re-read it and try once more.
        A second refusal is UNAVAILABLE (503): the caller's key was fine, the server's was not."""
        try:
            return await attempt(self.bearer())
        except Exception as error:
            if not is_refusal(error):
                raise
        log.info("TorchServe refused its inference key: re-reading %s", self.file.path)
        self.refused()
        try:
            return await attempt(self.bearer())
        except Exception as error:
            if is_refusal(error):
                raise key_refused(self.file.path) from None
            raise

    def expiring(self, now: datetime, margin: timedelta = RENEW_MARGIN, kinds: tuple[str, ...] = KINDS) -> list[str]:
        """The ``kinds`` (``inference``, ``management``) whose key expires before ``now + margin``."""
        keys = self.file.value()
        if keys is None:
            return []
        return [kind for kind in kinds if keys[kind].expires is not None and keys[kind].expires - now < margin]

    async def renew(self, session: aiohttp.ClientSession, kind: str) -> None:
        """A new ``kind`` key through TorchServe's token API (with the API key, which never expires)."""
        api = self._keys()["API"].key
        async with session.post(f"{self.management_url}/token", params={"type": kind},
                                headers={"Authorization": f"Bearer {api}"}) as answer:
            if answer.status != 200:
                raise aiohttp.ClientResponseError(answer.request_info, (), status=answer.status,
                                                  message=f"token API refused to renew the {kind} key")
        self.refused()

    async def renew_forever(self, session: aiohttp.ClientSession, interval: float = RENEW_CHECK_S,
                            kinds: tuple[str, ...] = KINDS) -> None:
        while True:
            for kind in self.expiring(datetime.now(UTC), kinds=kinds):
                try:
                    await self.renew(session, kind)
                    log.info("renewed TorchServe's %s key before it expired", kind)
                except (TimeoutError, aiohttp.ClientError, GatewayError) as error:
                    log.warning("could not renew TorchServe's %s key: %s", kind, error)
            await asyncio.sleep(interval)
