"""The pieces every typed route is made of: a ``Route`` (an RPC's endpoint and its two
converters), and the rules by which a request's set fields become TorchServe's text inputs
(floats as the caller wrote them, booleans as ``true``/``false``, enums by name) and base64 in
ConvScope's JSON becomes bytes."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any, Callable

from convscope_client._proto import convscope_pb2 as pb
from google.protobuf.message import Message

from .errors import invalid


@dataclass(frozen=True)
class Route:
    """One unary RPC: the endpoint it calls, and its two converters."""

    endpoint: str
    inputs: Callable[[Any], dict[str, bytes]]
    response: Callable[[dict], Message]


def f32_text(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (0.15f -> "0.15"), so the engine
    sees the value the caller wrote, not float32's nearest binary neighbour printed in full."""
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == value:
            return text
    return repr(value)


def enum_text(enum, value: int, prefix: str, field: str) -> str | None:
    """``CAM_METHOD_GRADCAM_PP`` -> ``"gradcam_pp"``; UNSPECIFIED (0) -> None (the default)."""
    if value == 0:
        return None
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        names = [n for n in enum.keys() if not n.endswith("UNSPECIFIED")]
        raise invalid(f"{field} = {value} is not a {enum.DESCRIPTOR.name}: one of {', '.join(names)}") from None


def enum_list_text(enum, values, prefix: str, field: str, default: str) -> bytes | None:
    """A repeated enum as the comma list a form carries (UNSPECIFIED is ``default``, repeats
    dropped); None when the list is empty (the server's default)."""
    names = [enum_text(enum, v, prefix, field) or default for v in values]
    return ",".join(dict.fromkeys(names)).encode() if names else None


def optional_inputs(message: Message, inputs: dict[str, bytes], *names: str) -> None:
    """Copy each set optional scalar field into ``inputs`` as text."""
    for name in names:
        if message.HasField(name):
            value = getattr(message, name)
            text = f32_text(value) if isinstance(value, float) else str(value).lower() if isinstance(value, bool) \
                else str(value)
            inputs[name] = text.encode()


def image_inputs(image: pb.Image) -> dict[str, bytes]:
    return {"data": image.data} if image.data else {}


def b64(doc: dict, key: str) -> bytes:
    """``doc[key]`` base64-decoded; empty when absent or null."""
    return base64.b64decode(doc[key]) if doc.get(key) else b""
