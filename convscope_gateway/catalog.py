"""What the gateway knows of the models: their cards, read once at start from the model store,
and whether each registration has a ready worker, polled from TorchServe's management API.

Each archive carries ``card.json`` (written by ``convscope-archive``): name, description, class
count, feature dim, endpoints, input size, and (archives built since inspect) the inspectable
layers with their receptive fields, the first convolution and the stored layers. Readiness comes
from ``GET /models/{name}`` on the management port with the management key that TorchServe
writes to ``key_file.json`` (read through ``keys.TorchServeKeys``, so a restart or a renewal
that rewrites it is picked up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp

from .errors import invalid, not_found
from .keys import TorchServeKeys

log = logging.getLogger(__name__)

CARD_FILE = "card.json"
SUFFIXES = {"classify": "", "features": "-features", "saliency": "-saliency", "cam": "-cam",
            "neighbours": "-neighbours", "inspect": "-inspect"}
"""The TorchServe registration of each endpoint of backbone ``<m>`` is ``<m><suffix>``."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    description: str
    num_classes: int
    feature_dim: int
    endpoints: tuple[str, ...]
    input_height: int
    input_width: int
    input_channels: int = 3
    cam_layer: str = ""
    feature_layer: str = ""
    first_conv: str = ""
    stored_layers: tuple[str, ...] = ()
    layers: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    """The ``op=layers`` entries (name, type, shape, receptive_field, stored); empty in an
    archive built before inspect."""

    @classmethod
    def from_document(cls, doc: dict) -> "ModelCard":
        """``card.json``; the keys added since the first archives (layers, first_conv,
        stored_layers, ...) may be absent."""
        return cls(doc["name"], doc.get("description", ""), int(doc["num_classes"]), int(doc["feature_dim"]),
                   tuple(doc["endpoints"]), int(doc["input_height"]), int(doc["input_width"]),
                   int(doc.get("input_channels", 3)), doc.get("cam_layer") or "", doc.get("feature_layer") or "",
                   doc.get("first_conv") or "", tuple(doc.get("stored_layers") or ()),
                   tuple(dict(layer) for layer in doc.get("layers") or ()))

    def registration(self, endpoint: str) -> str:
        return f"{self.name}{SUFFIXES[endpoint]}"

    @property
    def registrations(self) -> tuple[str, ...]:
        return tuple(self.registration(e) for e in self.endpoints)


@dataclass
class Catalog:
    """The models by name, and the readiness of every registration."""

    cards: dict[str, ModelCard]
    ready: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_store(cls, store: Path) -> "Catalog":
        cards = {}
        for mar in sorted(Path(store).glob("*.mar")):
            with zipfile.ZipFile(mar) as archive:
                if CARD_FILE not in archive.namelist():
                    log.warning("%s has no %s (archived before it existed): rebuild it with convscope-archive",
                                mar.name, CARD_FILE)
                    continue
                card = ModelCard.from_document(json.loads(archive.read(CARD_FILE)))
            cards[card.name] = card
        return cls(cards)

    def card(self, model: str) -> ModelCard:
        if not model:
            raise invalid(f"model is required: one of {', '.join(sorted(self.cards))}")
        card = self.cards.get(model)
        if card is None:
            raise not_found(f"unknown model {model!r}; this server has {', '.join(sorted(self.cards)) or 'none'}")
        return card

    def registration(self, model: str, endpoint: str) -> str:
        """The TorchServe name serving ``endpoint`` of backbone ``model`` (NOT_FOUND if none)."""
        card = self.card(model)
        if endpoint not in card.endpoints:
            raise not_found(f"model {model!r} has no {endpoint} endpoint (it serves {', '.join(card.endpoints)})",
                            "EndpointNotFound")
        return card.registration(endpoint)

    def find_registration(self, name: str) -> tuple[ModelCard, str] | None:
        """(card, endpoint) of a TorchServe registration name such as ``digits-cam``."""
        for card in self.cards.values():
            for endpoint in card.endpoints:
                if card.registration(endpoint) == name:
                    return card, endpoint
        return None

    @property
    def registrations(self) -> tuple[str, ...]:
        return tuple(r for card in self.cards.values() for r in card.registrations)

    def model_ready(self, model: str) -> bool:
        card = self.cards.get(model)
        return card is not None and all(self.ready.get(r, False) for r in card.registrations)

    def all_ready(self) -> bool:
        return bool(self.cards) and all(self.model_ready(m) for m in self.cards)


class ReadinessPoller:
    """Polls every registration's workers with TorchServe's management key; calls
    ``on_change(catalog)`` when readiness changes."""

    def __init__(self, catalog: Catalog, keys: TorchServeKeys, interval: float,
                 on_change: Callable[[Catalog], None]) -> None:
        self.catalog, self.keys, self.url = catalog, keys, keys.management_url
        self.interval, self.on_change = interval, on_change

    async def _is_ready(self, session: aiohttp.ClientSession, name: str, retry: bool = True) -> bool:
        key = self.keys.key("management")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            async with session.get(f"{self.url}/models/{name}", headers=headers) as answer:
                if answer.status in (400, 401, 403):  # a new key file (restart, renewal): read it, ask again
                    self.keys.refused()
                    return retry and await self._is_ready(session, name, retry=False)
                if answer.status != 200:
                    return False
                doc = await answer.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return False
        workers = doc[0].get("workers", []) if isinstance(doc, list) and doc else []
        return any(w.get("status") == "READY" for w in workers)

    async def poll_once(self, session: aiohttp.ClientSession) -> None:
        names = self.catalog.registrations
        states = await asyncio.gather(*(self._is_ready(session, n) for n in names))
        fresh = dict(zip(names, states))
        if fresh != self.catalog.ready:
            self.catalog.ready = fresh
            log.info("readiness: %s", ", ".join(f"{n}={'ready' if r else 'not ready'}" for n, r in fresh.items()))
            self.on_change(self.catalog)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.interval * 2))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.poll_once(session)
                await asyncio.sleep(self.interval)
