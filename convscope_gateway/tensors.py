"""Open Inference Protocol v2 tensors as ConvScope's OIP face reads and writes them: pure functions.

Wire layouts (those of Triton and its clients):

* raw contents (gRPC ``raw_input_contents`` / ``raw_output_contents``, and the binary tensors of
  the REST binary extension): FP32 and INT64 row-major little-endian; BYTES one element after
  another, each prefixed with its length as a 4-byte little-endian unsigned integer.
* REST binary tensor extension: the body is the JSON document followed by the binary tensors,
  header ``Inference-Header-Content-Length`` gives the JSON's length in bytes, and every binary
  tensor says its own length in ``parameters.binary_data_size`` (the blobs follow in tensor order).
* REST JSON ``data``: a flat (row-major) or nested list; BYTES elements are UTF-8 strings.

The only input ConvScope's models take is ``image``: BYTES of shape ``[N]`` or ``[N, 1]``, each
element one encoded image file. Every malformed request raises ``errors.invalid`` (400 /
INVALID_ARGUMENT) with a message that says what was wrong.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .errors import invalid

HEADER_LENGTH = "Inference-Header-Content-Length"
IMAGE_INPUT = "image"
MAX_BATCH = 64
"""Images in one OIP request: each becomes one concurrent upstream call."""
_STRUCT = {"FP32": "f", "INT64": "q"}
_PREFIX = struct.Struct("<I")


@dataclass(frozen=True)
class Input:
    """One input tensor as it arrived: its data either ``raw`` (one blob) or ``elements``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    raw: bytes | None = None
    elements: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class Tensor:
    """An output tensor: ``data`` is flat, row-major (floats, ints, or bytes for BYTES)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tuple

    def __post_init__(self) -> None:
        if self.datatype not in (*_STRUCT, "BYTES"):
            raise ValueError(f"unsupported datatype {self.datatype}")
        if math.prod(self.shape) != len(self.data):
            raise ValueError(f"{self.name}: shape {list(self.shape)} holds {math.prod(self.shape)} "
                             f"elements, data has {len(self.data)}")


def encode_bytes(elements: Iterable[bytes]) -> bytes:
    """BYTES elements, each prefixed with its 4-byte little-endian length."""
    return b"".join(_PREFIX.pack(len(e)) + e for e in elements)


def decode_bytes(raw: bytes, what: str = "BYTES tensor") -> list[bytes]:
    """The elements of a length-prefixed BYTES blob."""
    elements, offset = [], 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + _PREFIX.size > len(raw):
            raise invalid(f"{what}: truncated length prefix at byte {offset} (element {len(elements)}): "
                          "each BYTES element needs a 4-byte little-endian length before it")
        (size,) = _PREFIX.unpack_from(raw, offset)
        offset += _PREFIX.size
        if offset + size > len(raw):
            raise invalid(f"{what}: element {len(elements)} declares {size} bytes but only "
                          f"{len(raw) - offset} remain")
        elements.append(bytes(view[offset:offset + size]))
        offset += size
    return elements


def encode_raw(tensor: Tensor) -> bytes:
    """The raw (binary) contents of ``tensor``."""
    if tensor.datatype == "BYTES":
        return encode_bytes(tensor.data)
    return struct.pack(f"<{len(tensor.data)}{_STRUCT[tensor.datatype]}", *tensor.data)


def decode_raw(datatype: str, raw: bytes) -> list:
    """The flat elements of raw contents of ``datatype`` (FP32, INT64 or BYTES)."""
    if datatype == "BYTES":
        return decode_bytes(raw)
    code = _STRUCT[datatype]
    width = struct.calcsize(code)
    if len(raw) % width:
        raise invalid(f"{datatype} contents of {len(raw)} bytes are not a whole number of {width}-byte elements")
    return list(struct.unpack(f"<{len(raw) // width}{code}", raw))


def json_data(tensor: Tensor) -> list:
    """``tensor`` as REST JSON ``data``: flat; BYTES as UTF-8 strings."""
    if tensor.datatype == "BYTES":
        return [e.decode("utf-8", "replace") for e in tensor.data]
    return list(tensor.data)


def shape_of(value: Any, where: str) -> tuple[int, ...]:
    """A tensor shape from the wire: a list of non-negative integers."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise invalid(f"{where}: shape must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def image_batch(inputs: Sequence[Input]) -> list[bytes]:
    """The encoded images of the request's one ``image`` input (BYTES, shape [N] or [N, 1])."""
    names = [i.name for i in inputs]
    extra = [n for n in names if n != IMAGE_INPUT]
    if extra or len(names) != 1:
        raise invalid(f"the model takes exactly one input, {IMAGE_INPUT!r} (BYTES, shape [N]: N encoded "
                      f"image files); the request has {names or 'none'}")
    (image,) = inputs
    if image.datatype != "BYTES":
        raise invalid(f"input {IMAGE_INPUT!r} must be BYTES (encoded image files), not {image.datatype!r}")
    shape = image.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid(f"input {IMAGE_INPUT!r} must have shape [N] or [N, 1], not {list(shape)}")
    if not 1 <= shape[0] <= MAX_BATCH:
        raise invalid(f"input {IMAGE_INPUT!r} must hold 1 to {MAX_BATCH} images, not {shape[0]}")
    if (image.raw is None) == (image.elements is None):
        raise invalid(f"input {IMAGE_INPUT!r} must carry its data once: in raw contents or in its contents/data")
    elements = (decode_bytes(image.raw, f"input {IMAGE_INPUT!r}") if image.raw is not None
                else list(image.elements))
    if len(elements) != shape[0]:
        raise invalid(f"input {IMAGE_INPUT!r} has shape {list(shape)} ({shape[0]} elements) "
                      f"but carries {len(elements)}")
    return elements


def _flatten(data: Any) -> list:
    if isinstance(data, list):
        return [x for item in data for x in _flatten(item)]
    return [data]


def rest_inputs(doc: dict, binary: bytes) -> list[Input]:
    """The inputs of a REST infer request: JSON ``data``, or (binary extension) slices of
    ``binary`` in input order, as long as each input's ``parameters.binary_data_size``."""
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise invalid("the request needs 'inputs': a list of tensors {name, datatype, shape, data}")
    parsed, offset = [], 0
    for number, spec in enumerate(inputs):
        name, datatype = spec.get("name"), spec.get("datatype")
        where = f"input {name!r}" if isinstance(name, str) else f"input {number}"
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise invalid(f"{where}: 'name' and 'datatype' must be strings")
        shape = shape_of(spec.get("shape"), where)
        parameters = spec.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise invalid(f"{where}: 'parameters' must be an object")
        unknown = set(parameters) - {"binary_data_size"}
        if unknown:
            raise invalid(f"{where}: unsupported parameters {sorted(unknown)} (only binary_data_size)")
        size = parameters.get("binary_data_size")
        if size is None:
            if "data" not in spec:
                raise invalid(f"{where}: no 'data' and no parameters.binary_data_size")
            data = _flatten(spec["data"])
            if datatype == "BYTES" and not all(isinstance(e, str) for e in data):
                raise invalid(f"{where}: JSON data of a BYTES tensor must be strings (send images with the "
                              "binary tensor extension: parameters.binary_data_size)")
            elements = tuple(e.encode() if isinstance(e, str) else json.dumps(e).encode() for e in data)
            parsed.append(Input(name, datatype, shape, elements=elements))
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise invalid(f"{where}: binary_data_size must be a non-negative integer, got {size!r}")
        if "data" in spec:
            raise invalid(f"{where}: both 'data' and binary_data_size")
        if offset + size > len(binary):
            raise invalid(f"{where}: binary_data_size {size} runs past the end of the body "
                          f"({len(binary) - offset} binary bytes left)")
        parsed.append(Input(name, datatype, shape, raw=binary[offset:offset + size]))
        offset += size
    if offset != len(binary):
        raise invalid(f"the body carries {len(binary) - offset} binary bytes that no input's "
                      "binary_data_size accounts for")
    return parsed


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """(JSON document, binary tensors) of a REST body; ``header_length`` is the value of the
    ``Inference-Header-Content-Length`` header (None: the whole body is JSON)."""
    if header_length is None:
        length = len(body)
    else:
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 <= length <= len(body):
            raise invalid(f"{HEADER_LENGTH} must be the JSON header's length in bytes, 0 to {len(body)}, "
                          f"not {header_length!r}")
    try:
        doc = json.loads(body[:length])
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"the request's JSON header is not valid JSON: {error}") from None
    if not isinstance(doc, dict):
        raise invalid("the request's JSON header must be an object")
    return doc, body[length:]


def build_body(doc: dict, blobs: Sequence[bytes]) -> tuple[bytes, int]:
    """(body, JSON length) of a binary-extension message: the JSON then the blobs."""
    header = json.dumps(doc, separators=(",", ":")).encode()
    return header + b"".join(blobs), len(header)
