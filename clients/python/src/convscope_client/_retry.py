"""Retries: exponential backoff with jitter, for failures where trying again is safe and may
help (``ConvScopeError.retryable``: HTTP 503, gRPC UNAVAILABLE, a refused connection). Never on
4xx, never on a deadline: the server may still be working on the first attempt."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ConvScopeError

T = TypeVar("T")
log = logging.getLogger("convscope_client")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    """Attempts after the first; 0 turns retries off."""
    backoff: float = 0.2
    """Seconds before the first retry; each later pause doubles (then a random half is taken off)."""

    def pause(self, error: ConvScopeError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after ``error`` ended attempt
        ``attempt`` (0-based); None: give up and raise it."""
        if not error.retryable or attempt >= self.retries:
            return None
        ceiling = self.backoff * 2.0 ** attempt
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter: callers do not retry in step


def _pause_or_raise(policy: RetryPolicy, error: ConvScopeError, attempt: int) -> float:
    pause = policy.pause(error, attempt)
    if pause is None:
        raise error
    log.info("attempt %d failed (%s); retrying in %.2f s", attempt + 1, error, pause)
    return pause


def run(send: Callable[[], T], policy: RetryPolicy) -> T:
    attempt = 0
    while True:
        try:
            return send()
        except ConvScopeError as error:
            pause = _pause_or_raise(policy, error, attempt)
        time.sleep(pause)
        attempt += 1


async def run_async(send: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    attempt = 0
    while True:
        try:
            return await send()
        except ConvScopeError as error:
            pause = _pause_or_raise(policy, error, attempt)
        await asyncio.sleep(pause)
        attempt += 1
