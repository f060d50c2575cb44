"""From what a transport received to (image bytes, typed parameters).

A request is a ``Payload``: named fields (the raw body arrives as ``body``; multipart parts and
gRPC ``input`` keys by their own names) with a content type each. The image may come as

* the raw body (``Content-Type: image/*``, ``application/octet-stream`` or none),
* a multipart part or gRPC input named ``data``, parameters as further parts/inputs,
* JSON ``{"image": "<base64>", ...parameters}``.

Parameters are checked against the endpoint's declared ``Param`` list: an unknown name, a
wrong type or a value out of range is a 400 that names the parameter and the accepted range.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import BadRequest, UnsupportedMediaType

IMAGE_FIELDS = ("data", "image")
_RAW_TYPES = ("", "application/octet-stream", "image/")
_JSON_TYPES = ("application/json", "text/json")


@dataclass(frozen=True)
class Payload:
    fields: Mapping[str, Any]
    content_types: Mapping[str, str] = field(default_factory=dict)
    """Content type of each field (multipart parts carry their own)."""
    request_content_type: str = ""
    """The request's own Content-Type header, where the transport has one."""

    def content_type(self, name: str) -> str:
        return self.content_types.get(name, "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``kind``: int or float (with an inclusive range ``low``..``high``),
    bool, str (one of ``choices``; without them any string of 1..``high`` characters, 200 by
    default), list (of ``choices``; a
    comma-separated string also works), dict (a JSON object) or tuple (a vector of finite
    floats, at most ``high`` of them; a JSON array string also works).
    ``cap`` names the server-side setting behind ``high``, so the 400 can say which cap it is."""

    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    cap: str = ""

    def parse(self, raw: Any) -> Any:
        if self.kind is bool:
            return _as_bool(self.name, raw)
        if self.kind is str:
            return _as_choice(self.name, _text(raw), self.choices, int(self.high or 200))
        if self.kind is list:
            return _as_choices(self.name, _text(raw), self.choices)
        if self.kind is dict:
            return _as_object(self.name, _text(raw))
        if self.kind is tuple:
            return _as_vector(self.name, _text(raw), int(self.high or 0))
        value = _as_int(self.name, raw) if self.kind is int else _as_float(self.name, raw)
        if not (self.low <= value <= self.high):
            cap = f" (server cap {self.cap})" if self.cap and value > self.high else ""
            raise BadRequest(f"{self.name} must be between {self.low} and {self.high}{cap}, got {value}")
        return value


def _text(raw: Any) -> Any:
    return bytes(raw).decode("utf-8", "replace").strip() if isinstance(raw, (bytes, bytearray)) else raw


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def _finite_or_nan(value: int | float) -> float:
    """``float(value)``, or NaN (refused by the caller) for an integer too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return float("nan")


def _as_int(name: str, raw: Any) -> int:
    raw = _text(raw)
    if isinstance(raw, bool):
        raise BadRequest(f"{name} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and _INTEGER.fullmatch(raw):  # ASCII digits only: never "+-3" or "²"
        return int(raw)
    raise BadRequest(f"{name} must be an integer, got {str(raw)[:40]!r}")


def _as_float(name: str, raw: Any) -> float:
    raw = _text(raw)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = _finite_or_nan(raw)
    else:
        try:
            value = float(raw) if isinstance(raw, str) and len(raw) < 40 else float("nan")
        except ValueError:
            value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(f"{name} must be a number, got {str(raw)[:40]!r}")
    return value


def _as_choice(name: str, raw: Any, choices: tuple[str, ...], most: int = 200) -> str:
    if not choices:  # a free string, such as a layer name or an index id
        if isinstance(raw, str) and 0 < len(raw) <= most:
            return raw
        raise BadRequest(f"{name} must be a string of 1-{most} characters, got {str(raw)[:40]!r}")
    if not isinstance(raw, str) or raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}; got {str(raw)[:40]!r}")
    return raw


def _as_choices(name: str, raw: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items:
        raise BadRequest(f"{name} must be a non-empty list of {', '.join(choices)}")
    values = tuple(_as_choice(name, _text(item).strip() if isinstance(item, str) else item, choices)
                   for item in items)
    return tuple(dict.fromkeys(values))


def _decoded(name: str, raw: Any, kind: type) -> Any:
    """A multipart field arrives as text: JSON-decode it when the structured form was meant."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest(f"{name} must be a JSON {kind.__name__}, got {raw[:40]!r}") from None
    return raw


def _as_object(name: str, raw: Any) -> dict:
    raw = _decoded(name, raw, dict)
    if not isinstance(raw, dict):
        raise BadRequest(f"{name} must be a JSON object, got {type(raw).__name__}")
    return raw


def _as_vector(name: str, raw: Any, most: int) -> tuple[float, ...]:
    raw = _decoded(name, raw, list)
    if not isinstance(raw, list) or not raw or len(raw) > most:
        raise BadRequest(f"{name} must be a non-empty array of at most {most} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise BadRequest(f"{name} must hold numbers only")
    values = tuple(_finite_or_nan(v) for v in raw)
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise BadRequest(f"{name} has NaN or infinite values")
    return values


def _as_bool(name: str, raw: Any) -> bool:
    raw = _text(raw)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "false", "0", "no"):
        return raw.lower() in ("true", "1", "yes")
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    raise BadRequest(f"{name} must be true or false, got {str(raw)[:40]!r}")


def _from_json(body: Any, image_required: bool = True) -> tuple[bytes, dict[str, Any]]:
    try:
        doc = json.loads(bytes(body).decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    except RecursionError:
        raise BadRequest("malformed JSON body: nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadRequest("the JSON body must be an object: {\"image\": \"<base64>\", ...parameters}")
    if "image" not in doc and not image_required:
        return b"", doc
    if not isinstance(doc.get("image"), str):
        raise BadRequest("the JSON body needs \"image\": a base64 string of the image bytes")
    image = doc.pop("image")
    try:
        data = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"\"image\" is not valid base64: {exc}") from exc
    return data, doc


def split_payload(payload: Payload, image_required: bool = True) -> tuple[bytes, dict[str, Any]]:
    """The image bytes and the raw (unparsed) parameters of one request. Without
    ``image_required`` (index deletes, stats), a request with no image gives ``b""``."""
    fields = dict(payload.fields)
    if "body" in fields:
        body = fields.pop("body")
        kind = payload.content_type("body")
        if kind in _JSON_TYPES or (isinstance(body, (dict, list))):
            if isinstance(body, dict):
                body = json.dumps(body)
            data, params = _from_json(body, image_required)
            return data, {**fields, **params}
        if not any(kind.startswith(t) if t else kind == t for t in _RAW_TYPES):
            raise UnsupportedMediaType(
                f"Content-Type {kind!r} is not accepted; send image/*, application/octet-stream, "
                "multipart/form-data with a 'data' part, or application/json")
        return bytes(body) if not isinstance(body, str) else body.encode(), fields
    if payload.request_content_type.lower().startswith("application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(
            "the body was sent as a form (application/x-www-form-urlencoded, curl's default for "
            "--data-binary): send the image with Content-Type image/*, or as multipart -F data=@file")
    for name in IMAGE_FIELDS:
        if name in fields:
            data = fields.pop(name)
            if isinstance(data, str):  # a text part: base64, as the JSON form
                return _from_json(json.dumps({"image": data}))[0], fields
            return bytes(data), fields
    if not image_required:
        return b"", fields
    raise BadRequest("no image: send it as the raw body, a multipart part named 'data', "
                     "or JSON {\"image\": \"<base64>\"}")


def parse_params(raw: Mapping[str, Any], declared: tuple[Param, ...]) -> dict[str, Any]:
    """Declared parameters with defaults filled in; anything undeclared is a 400."""
    known = {p.name: p for p in declared}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {unknown}; this endpoint takes {sorted(known) or 'none'}")
    return {name: (p.parse(raw[name]) if name in raw else p.default) for name, p in known.items()}
