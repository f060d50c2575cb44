"""Seeded bad and borderline requests for every ConvScope endpoint (issue 8, item 1).

``cases(seed, per_endpoint)`` gives, for every registration (``<m>``, ``<m>-features``,
``<m>-saliency``, ``<m>-cam``, ``<m>-neighbours``, ``<m>-inspect`` for both built-in backbones),
the same list for the same seed: mutated real images (bit flips, truncations, header splices
between formats, zeroed chunks, header fields rewritten) of JPEG, PNG, GIF, WebP, TIFF and BMP;
wrong and missing content types; bad base64 and bad JSON bodies; JSON values of the wrong type;
every parameter out of range or of the wrong type; unknown parameters; multipart oddities; and
the op-level mistakes of the neighbours and inspect endpoints (a parameter, an output or an image
the op does not take, layers and channels that do not exist).

A ``Case`` carries the keyword arguments of ``requests.post`` and what is acceptable: a 2xx is
fine for a mutation that still decodes (``must_fail`` False); a request that is certainly wrong
(``must_fail``) must get a 4xx. Never acceptable, whatever the input: a 5xx, a dropped
connection, a dead worker, or a 4xx without a ``{"code", "type", "message"}`` body.

Explanation methods stay cheap (gradient and Grad-CAM by default, smoothgrad with few samples,
Score-CAM only on digits; inspect's feature maps of a few channels of small images) so a few
hundred cases run in about a minute on two cores. Writes to the feature index only ever use ids
under ``fuzz/`` (``FUZZ_ID_PREFIX``), so a run can clean up.
"""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

from PIL import Image

from tests.imaging import encode, photo, photo_bytes, rendered_digits

MODELS = ("digits", "efficientnet_lite0")
SUFFIXES = ("", "-features", "-saliency", "-cam", "-neighbours", "-inspect")
ENDPOINTS = tuple(f"{m}{s}" for m in MODELS for s in SUFFIXES)
FEATURE_DIM = {"digits": 128, "efficientnet_lite0": 1280}
CLASSES = {"digits": 10, "efficientnet_lite0": 1000}
FUZZ_ID_PREFIX = "fuzz/"


@dataclass(frozen=True)
class Layers:
    """The built-in models' layers that inspect cases name (their ``op=layers``)."""

    cam: tuple[str, int]
    """The CAM layer (feature_maps' default) and its channels."""
    stored: tuple[tuple[str, int], ...]
    """The top-activation store's layers with their channels, the default first."""
    first_conv: str
    other_conv: str
    """A later convolution (depthwise on efficientnet_lite0)."""
    pool: str
    """A spatial layer of 1 x 1 (the global pooling)."""
    not_conv: str
    """A spatial layer that is no convolution (filters refuses it)."""
    not_stored: str
    """A spatial layer the store does not hold (top_examples refuses it)."""
    not_spatial: str
    """A module whose output is not a map (the classifier)."""


LAYERS = {
    "digits": Layers(("features", 128), (("features", 128), ("features.2", 64)), "features.0.0", "features.2.3",
                     "pool", "features.1", "features.0.0", "fc"),
    "efficientnet_lite0": Layers(("bn2", 1280), (("bn2", 1280), ("blocks.4", 112)), "conv_stem",
                                 "blocks.0.0.conv_dw", "global_pool.pool", "bn1", "blocks.3", "classifier"),
}
MAX_FEATURE_CHANNELS, MAX_TOP_EXAMPLES = 64, 100  # the engine's defaults (EngineConfig)
JSON_TYPE = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    kwargs: dict[str, Any]
    must_fail: bool = False
    """The request is certainly wrong: a 2xx would mean it was silently accepted."""
    image: bytes | None = None
    """The image bytes of a raw-image case (the typed gRPC API can send the same ones)."""
    family: str = ""
    params: dict[str, str] = field(default_factory=dict)
    """The request's parameters, where it has well-formed ones (for gRPC and for cleanup)."""

    @property
    def model(self) -> str:
        return self.endpoint.split("-")[0]

    @property
    def kind(self) -> str:
        return self.endpoint.split("-")[1] if "-" in self.endpoint else "classify"


def verdict(case: Case, status: int | None, body: bytes | str | None) -> str | None:
    """None when the answer is acceptable, else what was wrong with it."""
    if status is None:
        return "no answer (connection dropped or timed out)"
    if status >= 500:
        return f"{status}: {str(body)[:300]}"
    if 200 <= status < 300:
        return "2xx for a request that must fail" if case.must_fail else None
    if 400 <= status < 500:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            return f"{status} without a JSON body: {str(body)[:200]}"
        if not (isinstance(doc, dict) and isinstance(doc.get("code"), int) and doc.get("code") == status
                and isinstance(doc.get("type"), str) and doc["type"]
                and isinstance(doc.get("message"), str) and doc["message"]):
            return f"{status} without code/type/message: {str(body)[:200]}"
        return None
    return f"unexpected status {status}"


# --------------------------------------------------------------------------------------------
# Seed images: real photos (small, so decoding and explanations stay cheap) and rendered digits


def _small_photo(name: str, side: int = 96) -> Image.Image:
    image = Image.fromarray(photo(name))
    image.thumbnail((side, side))
    return image


@lru_cache(maxsize=None)
def seed_images() -> dict[str, tuple[bytes, ...]]:
    """Real encoded images by format, each several ways (modes, compression, frames)."""
    cat, coffee = _small_photo("chelsea"), _small_photo("coffee")
    digits = [Image.open(io.BytesIO(b)).convert("RGB") for _, b in rendered_digits(1)[:4]]
    digit = digits[0].resize((64, 64))
    grey, palette = digit.convert("L"), cat.convert("P")
    rgba = cat.convert("RGBA")
    rgba.putalpha(128)
    frames = [digit, digits[1].resize((64, 64)), digits[2].resize((64, 64))]
    images = {
        "JPEG": (photo_bytes("chelsea"), encode(cat, "JPEG", quality=70), encode(digit, "JPEG"),
                 encode(coffee, "JPEG", progressive=True), encode(cat.convert("CMYK"), "JPEG"),
                 encode(grey, "JPEG")) + tuple(b for _, b in rendered_digits(1)[4:6]),
        "PNG": (encode(cat, "PNG"), encode(grey, "PNG"), encode(palette, "PNG"), encode(rgba, "PNG"),
                encode(digit.convert("I;16"), "PNG"), encode(coffee, "PNG", optimize=True)),
        "GIF": (encode(palette, "GIF"), encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
                encode(grey, "GIF")),
        "WEBP": (encode(cat, "WEBP", quality=60), encode(digit, "WEBP", lossless=True), encode(rgba, "WEBP")),
        "TIFF": (encode(cat, "TIFF"), encode(grey, "TIFF", compression="tiff_deflate"),
                 encode(coffee, "TIFF", compression="tiff_lzw"), encode(cat, "TIFF", compression="jpeg"),
                 encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])),
        "BMP": (encode(cat, "BMP"), encode(grey, "BMP"), encode(palette, "BMP")),
    }
    return images


def good_digit() -> bytes:
    return rendered_digits(1)[7][1]


@lru_cache(maxsize=None)
def full_photo() -> bytes:
    """A 451 x 300 JPEG, the size of a real photo."""
    return photo_bytes("chelsea")


# --------------------------------------------------------------------------------------------
# Byte mutations


def _bit_flips(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    out = bytearray(data)
    count = rng.choice((1, 2, 4, 8, 32, 128))
    head = rng.random() < 0.5  # half of them in the header, where parsers make decisions
    for _ in range(count):
        at = rng.randrange(min(len(out), 128) if head else len(out))
        out[at] ^= 1 << rng.randrange(8)
    return f"{count} bit flips{' in the header' if head else ''}", bytes(out)


def _truncation(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    at = rng.choice((0, 1, 2, 4, 8, 16, 32, rng.randrange(len(data)), rng.randrange(len(data)),
                     len(data) - 1, len(data) - rng.randrange(1, 32)))
    at = max(0, min(at, len(data)))
    return f"truncated at {at}/{len(data)}", data[:at]


def _zeroed(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = rng.randrange(len(data))
    length = rng.choice((1, 4, 16, 256, 4096, len(data)))
    fill = rng.choice((0, 0xFF))
    out = bytearray(data)
    out[start:start + length] = bytes([fill]) * len(out[start:start + length])
    return f"{length} bytes set to {fill:#x} at {start}", bytes(out)


def _splice(rng: random.Random, data: bytes, other: bytes, other_format: str) -> tuple[str, bytes]:
    cut = rng.choice((2, 4, 8, 12, 16, 26, 32, 64, 128))
    if rng.random() < 0.5:
        return f"{other_format} header ({cut} B) on this body", other[:cut] + data[cut:]
    return f"this header ({cut} B) on a {other_format} body", data[:cut] + other[cut:]


def _garbage(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 16, 1024))))
    where = rng.choice(("append", "prepend", "insert"))
    if where == "append":
        return f"{len(junk)} junk bytes appended", data + junk
    if where == "prepend":
        return f"{len(junk)} junk bytes prepended", junk + data
    at = rng.randrange(len(data))
    return f"{len(junk)} junk bytes inserted at {at}", data[:at] + junk + data[at:]


def _repeat_chunk(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = rng.randrange(len(data))
    chunk = data[start:start + rng.choice((16, 512, 4096))]
    times = rng.choice((2, 10, 100))
    return f"chunk at {start} repeated {times}x", data[:start] + chunk * times + data[start:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _header_dims(rng: random.Random, fmt: str, data: bytes) -> tuple[str, bytes] | None:
    """Rewrite the declared width/height (0, 1, huge, absurd) in the header of PNG, GIF, BMP."""
    width = rng.choice((0, 1, 65535, 20000, 2**31 - 1))
    height = rng.choice((0, 1, 65535, 20000, 2**31 - 1))
    if fmt == "PNG" and data[12:16] == b"IHDR":
        header = struct.pack(">II", width, height) + data[24:29]
        if rng.random() < 0.7:  # a valid CRC, so the decoder believes it
            return f"PNG IHDR {width}x{height}", data[:8] + _png_chunk(b"IHDR", header) + data[33:]
        return f"PNG IHDR {width}x{height}, stale CRC", data[:16] + header + data[29:]
    if fmt == "GIF":
        w, h = width & 0xFFFF, height & 0xFFFF
        return f"GIF screen {w}x{h}", data[:6] + struct.pack("<HH", w, h) + data[10:]
    if fmt == "BMP":
        w, h = rng.choice((0, -5, 70000, 2**31 - 1)), rng.choice((0, -64, 70000, -(2**31)))
        return f"BMP {w}x{h}", data[:18] + struct.pack("<ii", w, h) + data[26:]
    return None


def mutate(rng: random.Random, fmt: str, data: bytes) -> tuple[str, bytes]:
    """One random mutation of ``data`` (a ``fmt`` file): (description, bytes)."""
    kind = rng.choice(("flip", "flip", "truncate", "truncate", "zero", "splice", "garbage", "repeat", "dims"))
    if kind == "flip":
        return _bit_flips(rng, data)
    if kind == "truncate":
        return _truncation(rng, data)
    if kind == "zero":
        return _zeroed(rng, data)
    if kind == "splice":
        other_format = rng.choice([f for f in seed_images() if f != fmt])
        return _splice(rng, data, rng.choice(seed_images()[other_format]), other_format)
    if kind == "garbage":
        return _garbage(rng, data)
    if kind == "repeat":
        return _repeat_chunk(rng, data)
    return _header_dims(rng, fmt, data) or _bit_flips(rng, data)


RAW_CONTENT_TYPES = (None, "image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp",
                     "application/octet-stream", "image/*", "IMAGE/JPEG; charset=binary", "image/x-anything")


# --------------------------------------------------------------------------------------------
# Parameters: valid cheap values, and wrong ones


def base_params(endpoint: str) -> dict[str, Any]:
    """Cheap valid parameters for an endpoint (the method explicit, so it stays cheap)."""
    if endpoint.endswith("-saliency"):
        return {"method": "gradient"}
    if endpoint.endswith("-cam"):
        return {"method": "gradcam"}
    if endpoint.endswith("-neighbours"):
        return {"k": 3}
    if endpoint.endswith("-features"):
        return {}
    if endpoint.endswith("-inspect"):  # the one op that takes an image, with few channels at the layer's size
        return {"op": "feature_maps", "top": 2, "output": "raw"}
    return {"top_k": 3}


def _cheap_valid_variants(endpoint: str, rng: random.Random) -> dict[str, Any]:
    """Borderline but valid settings (range ends): these may answer 200."""
    model = endpoint.split("-")[0]
    if endpoint.endswith("-saliency"):
        return rng.choice([
            {"method": "smoothgrad", "samples": rng.choice((1, 2, 3)), "noise": rng.choice((0, 1, 0.5)),
             "seed": rng.choice((0, 2**31 - 1))},
            {"method": "integrated_gradients", "steps": rng.choice((1, 2, 4)), "baseline": rng.choice(("black", "blur", "uniform"))},
            {"method": "occlusion", "window": {"digits": 28, "efficientnet_lite0": 224}[model], "fill": rng.choice((0, 1))},
            {"method": "guided_backprop", "polarity": rng.choice(("positive", "negative", "absolute"))},
            {"method": "input_x_gradient", "clip_low": 0, "clip_high": 100, "output": "heatmap,overlay,array", "alpha": 1},
            {"method": "gradient", "target": CLASSES[model] - 1, "clip_low": 99.9, "clip_high": 100, "alpha": 0},
        ])
    if endpoint.endswith("-cam"):
        choices = [{"method": "gradcam", "target": 0}, {"method": "gradcam_pp", "output": "array"},
                   {"method": "layercam", "clip_low": 0, "clip_high": 0.001}]
        if model == "digits":
            choices.append({"method": "scorecam"})
        else:
            choices.append({"method": "cam", "polarity": "negative"})
        return rng.choice(choices)
    if endpoint.endswith("-neighbours"):
        return {"k": rng.choice((1, 1000))}
    if endpoint.endswith("-features"):
        return {"normalize": rng.choice(("true", "false", "0", "1", True, False))}
    if endpoint.endswith("-inspect"):
        return _inspect_variant(rng, LAYERS[model])
    return {"top_k": rng.choice((1, min(100, CLASSES[model])))}


def _inspect_variant(rng: random.Random, layers: Layers) -> dict[str, Any]:
    """Valid inspect requests at the ends of the ranges (``op=feature_maps`` takes the image)."""
    (cam, channels), (stored, stored_channels) = layers.cam, layers.stored[-1]
    return rng.choice([
        {"op": "feature_maps", "top": 1, "output": "raw"},
        {"op": "feature_maps", "top": MAX_FEATURE_CHANNELS, "output": "grid"},
        {"op": "feature_maps", "channels": [channels - 1, 0], "output": "grid,array,raw"},
        {"op": "feature_maps", "channels": "[3, 3, 0]", "top": 1, "output": "raw"},
        {"op": "feature_maps", "layer": cam, "channels": "top", "top": 2, "output": "array"},
        {"op": "feature_maps", "layer": layers.first_conv, "top": 2, "output": "array,raw"},
        {"op": "feature_maps", "layer": layers.pool, "channels": "0", "output": "grid,array"},
        {"op": "layers"},
        {"op": "filters", "output": "grid,array"},
        {"op": "filters", "layer": layers.other_conv, "output": "grid"},
        {"op": "top_examples", "channel": channels - 1, "k": MAX_TOP_EXAMPLES},
        {"op": "top_examples", "channel": 0, "k": 3, "patches": True},  # lite0's patches are whole images
        {"op": "top_examples", "layer": stored, "channel": stored_channels - 1, "k": 1, "patches": "false"},
    ])


BIG_INT = 10**400  # only in JSON: Python's json reads it as an int beyond any float


def _bad_values(rng: random.Random, kind: str, low: float | None = None, high: float | None = None) -> list[tuple[str, Any, bool]]:
    """(label, value, json_only) wrong values for a parameter of ``kind``."""
    common = [("null", None, True), ("a list", [1, 2], True), ("an object", {"a": 1}, True),
              ("empty string", "", False), ("text", "banana", False), ("nul bytes", "\x00\x00", False),
              ("a long string", "9" * 5000, False), ("unicode", "\u00b2\u2075\u0663", False)]
    if kind == "int":
        return common + [("below range", int(low) - 1, False), ("above range", int(high) + 1, False),
                         ("way above", 10**12, False), ("negative", -(10**6), False), ("float", 1.5, False),
                         ("bool", True, True), ("huge JSON int", BIG_INT, True), ("NaN", "NaN", False),
                         ("inf", "inf", False), ("hex", "0x10", False), ("exponent", "1e3", False),
                         ("superscript digit", "\u00b2", False), ("double sign", "+-3", False),
                         ("underscored", "1_0", False), ("spaces inside", "1 2", False)]
    if kind == "float":
        return common + [("below range", low - 0.001 - rng.random(), False), ("above range", high + 0.5 + rng.random(), False),
                         ("NaN", "nan", False), ("inf", "inf", False), ("-inf", "-Infinity", False),
                         ("huge JSON int", BIG_INT, True), ("1e999", "1e999", False), ("bool", False, True),
                         ("comma decimal", "0,5", False)]
    if kind == "bool":
        return common + [("maybe", "maybe", False), ("2", 2, True), ("-1", "-1", False), ("float", 0.5, True)]
    if kind == "choice":
        return common + [("wrong case", "GRADIENT", False), ("number", 3, True),
                         ("path", "../../etc/passwd", False)]
    return common


def param_specs(endpoint: str) -> list[tuple[str, str, float | None, float | None]]:
    """(name, kind, low, high) of every parameter the endpoint takes."""
    model = endpoint.split("-")[0]
    if endpoint.endswith("-saliency") or endpoint.endswith("-cam"):
        common = [("method", "choice", None, None), ("target", "int", 0, CLASSES[model] - 1),
                  ("output", "choice", None, None), ("polarity", "choice", None, None),
                  ("clip_low", "float", 0, 100), ("clip_high", "float", 0, 100), ("alpha", "float", 0, 1)]
        if endpoint.endswith("-cam"):
            return common + [("layer", "layer", None, None)]
        return common + [("samples", "int", 1, 256), ("noise", "float", 0, 1), ("seed", "int", 0, 2**31 - 1),
                         ("steps", "int", 1, 512), ("baseline", "choice", None, None),
                         ("window", "int", 1, {"digits": 28, "efficientnet_lite0": 224}[model]),
                         ("stride", "int", 1, {"digits": 28, "efficientnet_lite0": 224}[model]),
                         ("fill", "float", 0, 1),
                         ("segments", "int", 2, {"digits": 784, "efficientnet_lite0": 1000}[model]),
                         ("num_features", "int", 1, 1000), ("positive_only", "bool", None, None)]
    if endpoint.endswith("-neighbours"):
        return [("op", "choice", None, None), ("k", "int", 1, 1000), ("id", "id", None, None),
                ("label", "label", None, None), ("metadata", "metadata", None, None), ("vector", "vector", None, None)]
    if endpoint.endswith("-features"):
        return [("normalize", "bool", None, None)]
    if endpoint.endswith("-inspect"):
        return [("op", "choice", None, None), ("layer", "inspect-layer", None, None),
                ("channels", "channels", None, None), ("top", "int", 1, MAX_FEATURE_CHANNELS),
                ("output", "choice", None, None), ("channel", "int", 0, LAYERS[model].stored[0][1] - 1),
                ("k", "int", 1, MAX_TOP_EXAMPLES), ("patches", "bool", None, None)]
    return [("top_k", "int", 1, min(100, CLASSES[model]))]


# The method a parameter needs in order to apply (so the bad value is what gets refused).
_NEEDS_METHOD = {"samples": "smoothgrad", "noise": "smoothgrad", "seed": "smoothgrad", "steps": "integrated_gradients",
                 "baseline": "integrated_gradients", "window": "occlusion", "stride": "occlusion", "fill": "occlusion",
                 "polarity": "guided_backprop", "segments": "lime", "num_features": "lime", "positive_only": "lime"}


# The inspect ops a parameter applies to (docs/inspect.md; the engine's APPLIES).
_INSPECT_OPS = {"layer": ("feature_maps", "filters", "top_examples"), "channels": ("feature_maps",),
                "top": ("feature_maps",), "output": ("feature_maps", "filters"), "channel": ("top_examples",),
                "k": ("top_examples",), "patches": ("top_examples",)}


def _inspect_params(rng: random.Random, endpoint: str, name: str) -> dict[str, Any]:
    """Cheap valid parameters of an inspect op that takes ``name`` (so its bad value is what
    gets refused); ``op=feature_maps`` is the one that needs the image."""
    op = rng.choice(_INSPECT_OPS.get(name, ("feature_maps",)))
    return {"feature_maps": base_params(endpoint), "filters": {"op": "filters"},
            "top_examples": {"op": "top_examples", "channel": 0}}[op]


def _bad_inspect_layer(rng: random.Random, model: str, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """``params`` (an op that takes ``layer``) with a layer that op refuses: (label, params, json_only)."""
    layers, op = LAYERS[model], params["op"]
    choices = [("unknown", "no_such_layer"), ("empty", ""), ("non-spatial", layers.not_spatial),
               ("a feature tap", f"{layers.not_spatial}:input"), ("dunder", "__class__"), ("dots", ".."),
               ("long", "a." * 300), ("path", "../../x"), ("a number", 7), ("null", None),
               ("a list", [layers.cam[0]]), ("trailing dot", layers.cam[0] + "."), ("wrong case", layers.cam[0].upper())]
    if op == "filters":
        choices.append(("not a convolution", layers.not_conv))
    if op == "top_examples":
        choices.append(("not stored", layers.not_stored))
    label, value = rng.choice(choices)
    return f"{op} layer {label}", {**params, "layer": value}, not isinstance(value, str)


def _bad_channels(rng: random.Random, model: str) -> tuple[str, Any]:
    """``channels`` of feature_maps: malformed, out of range, over max_feature_channels. Some
    are one ``str.strip``/``isdigit`` away from a channel list (``[[3]]``, ``3]``, an
    Arabic-Indic 3): the API's integers are ASCII digits only, and a list is ``3,17`` or ``[3, 17]``."""
    count = LAYERS[model].cam[1]
    return rng.choice([
        ("empty", ""), ("blank", " "), ("text", "banana"), ("empty item", "3,,17"), ("negative", "-1"),
        ("a float", "1.5"), ("semicolons", "3;4"), ("hex", "0x3"), ("top and a number", "top,3"),
        ("wrong case", "TOP"), ("superscript digit", "\u00b2"), ("Arabic-Indic digit", "\u0663"),
        ("an 8-digit number", "12345678"), ("out of range", str(count)), ("one out of range", f"0,{count + 1000}"),
        ("over the cap", ",".join(str(i) for i in range(MAX_FEATURE_CHANNELS + 1))), ("too long", "1," * 3000),
        ("nested brackets", "[[3]]"), ("unbalanced bracket", "3]"), ("empty list", "[]"),
        ("JSON empty list", []), ("JSON nested list", [[3]]), ("JSON floats", [1.5]), ("JSON negative", [-1]),
        ("JSON bools", [True]), ("JSON nulls", [None]), ("JSON object", {"a": 1}), ("JSON null", None),
        ("JSON list over the cap", list(range(MAX_FEATURE_CHANNELS + 1))), ("JSON list out of range", [0, count]),
    ])


def _bad_param(rng: random.Random, endpoint: str) -> tuple[str, dict[str, Any], bool]:
    """(label, parameters, json_only): the endpoint's parameters with exactly one wrong."""
    model = endpoint.split("-")[0]
    name, kind, low, high = rng.choice(param_specs(endpoint))
    params = base_params(endpoint)
    if endpoint.endswith("-inspect"):
        params = _inspect_params(rng, endpoint, name)
    if endpoint.endswith("-saliency") and name in _NEEDS_METHOD:
        params["method"] = _NEEDS_METHOD[name]
        if params["method"] == "lime":
            params["samples"] = 20  # cheap, should a wrong value ever pass
    if endpoint.endswith("-cam") and name == "polarity":
        params["method"] = "gradcam"  # unsigned: any polarity is refused
        return "polarity on an unsigned method", {**params, "polarity": "positive"}, False
    if kind in ("int", "float", "bool", "choice"):
        label, value, json_only = rng.choice(_bad_values(rng, kind, low, high))
        if name == "output" and rng.random() < 0.5:
            label, value = rng.choice([("unknown output", "heatmap,pdf"), ("empty item", "heatmap,,"),
                                       ("list with a number", ["heatmap", 3])])
            json_only = not isinstance(value, str)
        if endpoint.endswith("-inspect") and name == "output" and rng.random() < 0.5:
            label, value = rng.choice([("a CAM output", "overlay"), ("empty item", "grid,,raw"),
                                       ("list with a number", ["grid", 3]), ("empty list", []),
                                       ("raw on filters", "grid,raw") if params["op"] == "filters"
                                       else ("unknown output", "grid,png")])
            json_only = not isinstance(value, str)
        if endpoint.endswith("-saliency") and name == "method" and rng.random() < 0.3:
            label, value = "a CAM method on saliency", "gradcam"
        if endpoint.endswith("-cam") and name == "method" and rng.random() < 0.3:
            label, value = "a saliency method on CAM", "smoothgrad"
        if name == "stride" and rng.random() < 0.3:
            params["window"] = 4
            label, value = "stride above window", 5
        if name == "clip_low" and rng.random() < 0.3:
            label, value = "clip_low >= clip_high", 99.5
            params["clip_high"] = 10
        return f"{name} {label}", {**params, name: value}, json_only
    if kind == "inspect-layer":
        return _bad_inspect_layer(rng, model, params)
    if kind == "channels":
        label, value = _bad_channels(rng, model)
        return f"channels {label}", {**params, "channels": value}, not isinstance(value, str)
    if kind == "layer":
        label, value = rng.choice([("unknown", "no_such_layer"), ("empty", ""), ("non-spatial", "fc"),
                                   ("classifier", "classifier"), ("dunder", "__class__"), ("dots", ".."),
                                   ("long", "a." * 300), ("path", "../../x"), ("a number", 7), ("null", None),
                                   ("on gradient-free cam", "layer3")])
        if label == "on gradient-free cam" and model == "efficientnet_lite0":
            params["method"] = "cam"
        return f"layer {label}", {**params, "layer": value}, not isinstance(value, str)
    # neighbours
    dim = FEATURE_DIM[model]
    if kind == "choice":  # op, handled above
        raise AssertionError
    if kind == "vector":
        label, value = rng.choice([
            ("wrong dim", [0.1] * (dim - 1)), ("too long", [0.1] * (dim + 1)), ("empty", []),
            ("way too long", [0.0] * 5000), ("strings", ["a"] * dim), ("nested", [[0.1]] * dim),
            ("all zero", [0.0] * dim), ("null items", [None] * dim), ("not JSON", "[0.1, 0.2"),
            ("an object", {"values": [0.1] * dim}), ("bools", [True] * dim), ("huge ints", [BIG_INT] * dim)])
        params = {k: v for k, v in params.items() if k != "k"} if label == "all zero" else params
        return f"vector {label}", {**params, "vector": value}, not isinstance(value, str)
    op = "add"
    fuzz_id = f"{FUZZ_ID_PREFIX}{rng.randrange(10**6)}"
    if kind == "id":
        label, value = rng.choice([("empty", ""), ("too long", "x" * 257), ("control characters", "a\nb\x00c"),
                                   ("a number", 42), ("a list", ["a"]), ("null", None), ("tab", "\t")])
        return f"add id {label}", {"op": op, "id": value, "vector": [0.1] * dim}, not isinstance(value, str)
    if kind == "label":
        label, value = rng.choice([("too long", "l" * 257), ("a number", 5), ("an object", {"a": 1}), ("empty", "")])
        # a bad label together with a bad vector: the add is refused whatever the label check says
        return f"add label {label}", {"op": op, "id": fuzz_id, "label": value, "vector": [0.1] * (dim + 1)}, not isinstance(value, str)
    label, value = rng.choice([("too big", {"k": "v" * 5000}), ("a list", [1, 2]), ("a string", "not json"),
                               ("a number", 3), ("deep", json.loads("[" * 50 + "]" * 50)), ("NaN", "NaN")])
    return f"add metadata {label}", {"op": op, "id": fuzz_id, "metadata": value, "vector": [0.1] * (dim + 1)}, True


# --------------------------------------------------------------------------------------------
# Request builders


def _multipart(image: bytes | None, params: dict[str, Any], image_type: str = "application/octet-stream") -> dict:
    files: list[tuple[str, Any]] = []
    if image is not None:
        files.append(("data", ("image", image, image_type)))
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        files.append((key, (None, text)))
    return {"files": files}


def _json_body(image: bytes | None, params: dict[str, Any]) -> dict:
    doc = dict(params)
    if image is not None:
        doc["image"] = base64.b64encode(image).decode()
    return {"data": json.dumps(doc).encode(), "headers": dict(JSON_TYPE)}


def _image_case(rng: random.Random, endpoint: str) -> Case:
    fmt = rng.choice(list(seed_images()))
    source = rng.choice(seed_images()[fmt])
    what, data = mutate(rng, fmt, source)
    if rng.random() < 0.2:  # two mutations stacked
        more, data = mutate(rng, fmt, data) if data else (what, data)
        what = f"{what}, then {more}"
    params = base_params(endpoint)
    transport = rng.choice(("raw", "raw", "multipart", "json"))
    if transport == "raw" and endpoint.endswith("-inspect"):  # a raw body has no op: layers, which takes no image
        transport = rng.choice(("multipart", "json"))
    if transport == "raw":
        kind = rng.choice(RAW_CONTENT_TYPES)
        kwargs = {"data": data, "headers": {"Content-Type": kind} if kind else {}}
        params = {}
    elif transport == "multipart":
        kwargs = _multipart(data, params, rng.choice(("image/jpeg", "application/octet-stream", "text/plain")))
    else:
        kwargs = _json_body(data, params)
    return Case(f"{fmt} {what} ({transport})", endpoint, kwargs, False, data, "image", params if transport != "raw" else {})


def _content_type_case(rng: random.Random, endpoint: str) -> Case:
    image = rng.choice(seed_images()["PNG"] + seed_images()["JPEG"])
    label, kwargs, must = rng.choice([
        ("text/plain", {"data": image, "headers": {"Content-Type": "text/plain"}}, True),
        ("text/html", {"data": b"<html><body>hi</body></html>", "headers": {"Content-Type": "text/html"}}, True),
        ("application/xml", {"data": b"<?xml version='1.0'?><a/>", "headers": {"Content-Type": "application/xml"}}, True),
        ("application/pdf", {"data": b"%PDF-1.4\n%\xe2\xe3\n", "headers": {"Content-Type": "application/pdf"}}, True),
        ("video/mp4", {"data": image, "headers": {"Content-Type": "video/mp4"}}, True),
        ("application/json with an image body", {"data": image, "headers": dict(JSON_TYPE)}, True),
        ("text/json with an image body", {"data": image, "headers": {"Content-Type": "text/json"}}, True),
        ("image/png with a JSON body", {"data": b'{"image": "aGVsbG8="}', "headers": {"Content-Type": "image/png"}}, True),
        ("form fields", {"data": {"top_k": "3", "image": "x"}}, True),
        ("garbage content type", {"data": image, "headers": {"Content-Type": "\x7f;;;=="}}, False),
        ("very long content type", {"data": image, "headers": {"Content-Type": "image/" + "x" * 3000}}, False),
        ("multipart without boundary", {"data": image, "headers": {"Content-Type": "multipart/form-data"}}, False),
        ("multipart with a wrong boundary", {"data": b"--zz\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n" + image + b"\r\n--zz--\r\n",
                                             "headers": {"Content-Type": "multipart/form-data; boundary=yy"}}, False),
        ("empty body, no type", {"data": b""}, True),
        ("SVG", {"data": b"<svg xmlns='http://www.w3.org/2000/svg'/>", "headers": {"Content-Type": "image/svg+xml"}}, True),
        ("HEIC magic", {"data": b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "headers": {"Content-Type": "image/heic"}}, True),
        ("PPM", {"data": b"P6\n2 2\n255\n" + b"\x10" * 12, "headers": {"Content-Type": "image/x-portable-pixmap"}}, True),
        ("ICO", {"data": b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 64, "headers": {"Content-Type": "image/x-icon"}}, True),
    ])
    if endpoint.endswith("-neighbours") and label in ("form fields",):
        must = True
    if endpoint.endswith("-inspect") and label == "empty body, no type":
        must = False  # no image, no op: op=layers, a valid request
    return Case(f"content type: {label}", endpoint, kwargs, must, None, "content-type")


def _json_case(rng: random.Random, endpoint: str) -> Case:
    image = rng.choice(seed_images()["JPEG"])
    b64 = base64.b64encode(image).decode()
    params = base_params(endpoint)
    doc = json.dumps({**params, "image": b64})
    label, body, must = rng.choice([
        ("truncated JSON", doc[: rng.randrange(1, len(doc))].encode(), True),
        ("JSON list", json.dumps([b64]).encode(), True),
        ("JSON string", json.dumps(b64).encode(), True),
        ("JSON number", b"42", True),
        ("JSON null", b"null", True),
        ("empty JSON object", b"{}", not endpoint.endswith(("-neighbours", "-inspect"))),  # inspect: op=layers
        ("image null", json.dumps({"image": None}).encode(), True),
        ("image a number", json.dumps({"image": 12345}).encode(), True),
        ("image a list", json.dumps({"image": [1, 2, 3]}).encode(), True),
        ("image an object", json.dumps({"image": {"data": b64}}).encode(), True),
        ("bad base64 characters", json.dumps({"image": "%%%" + b64[:50]}).encode(), True),
        ("base64 missing padding", json.dumps({"image": b64[:-2] if b64.endswith("=") else b64[:-1]}).encode(), True),
        ("urlsafe base64", json.dumps({"image": base64.urlsafe_b64encode(image).decode()}).encode(), False),
        ("base64 with newlines", json.dumps({"image": base64.encodebytes(image).decode()}).encode(), True),
        ("base64 of text", json.dumps({"image": base64.b64encode(b"not an image at all").decode()}).encode(), True),
        ("non-ASCII base64", json.dumps({"image": "\u00e9\u00e9\u00e9\u00e9"}).encode(), True),
        ("invalid UTF-8", b'{"image": "\xff\xfe\xfd"}', True),
        ("UTF-8 BOM", b"\xef\xbb\xbf" + doc.encode(), False),
        ("UTF-16", doc.encode("utf-16"), False),
        ("NaN literal", b'{"image": NaN}', True),
        ("deeply nested", b'{"image": ' + b"[" * 100000 + b"]" * 100000 + b"}", True),
        ("deeply nested parameter", b'{"top_k": ' + b"[" * 5000 + b"]" * 5000 + b', "image": "' + b64.encode() + b'"}', True),
        ("duplicate keys", ('{"image": "%%", "image": "%s"}' % b64).encode(), False),
        ("trailing garbage", doc.encode() + b" }}}", True),
        ("huge integer parameter", ('{"%s": 1%s, "image": "%s"}' % (next(iter(params), "top_k") if params else "top_k", "0" * 400, b64)).encode(), True),
        ("unknown parameter", json.dumps({**params, "image": b64, "colour": "red"}).encode(), True),
        ("empty key", json.dumps({**params, "image": b64, "": 1}).encode(), True),
    ])
    return Case(f"JSON: {label}", endpoint, {"data": body, "headers": dict(JSON_TYPE)}, must, None, "json")


def _param_case(rng: random.Random, endpoint: str) -> Case:
    label, params, json_only = _bad_param(rng, endpoint)
    model = endpoint.split("-")[0]
    image = good_digit() if model == "digits" else seed_images()["JPEG"][1]
    if "vector" in params or params.get("op") in ("add",) and "vector" in params:
        image = None
    if endpoint.endswith("-inspect") and params.get("op") != "feature_maps":
        image = None  # the other ops take none (a bad op is refused first either way)
    transport = "json" if json_only or rng.random() < 0.5 else "multipart"
    kwargs = _json_body(image, params) if transport == "json" else _multipart(image, params)
    return Case(f"param: {label} ({transport})", endpoint, kwargs, True, None, "param")


def _unknown_param_case(rng: random.Random, endpoint: str) -> Case:
    model = endpoint.split("-")[0]
    image = good_digit() if model == "digits" else seed_images()["JPEG"][1]
    name = rng.choice(("colour", "topk", "TOP_K", "methods", "image2", "__proto__", "data2", "x" * 300))
    other = {"top_k": 3, "normalize": True, "method": "gradient", "k": 2, "samples": 2}
    wrong_endpoint = {n: v for n, v in other.items() if n not in dict((p[0], 1) for p in param_specs(endpoint))}
    if wrong_endpoint and rng.random() < 0.5:
        name = rng.choice(sorted(wrong_endpoint))
    params = {**base_params(endpoint), name: other.get(name, "1")}
    transport = rng.choice(("json", "multipart"))
    kwargs = _json_body(image, params) if transport == "json" else _multipart(image, params)
    return Case(f"unknown parameter {name[:20]!r} ({transport})", endpoint, kwargs, True, None, "unknown")


def _neighbours_case(rng: random.Random, endpoint: str) -> Case:
    """Op-level mistakes of the neighbours endpoint (with no image the search needs one)."""
    model = endpoint.split("-")[0]
    dim = FEATURE_DIM[model]
    image = good_digit() if model == "digits" else seed_images()["JPEG"][1]
    label, params, with_image, must = rng.choice([
        ("search with image and vector", {"vector": [0.1] * dim}, True, True),
        ("search without image", {"op": "search"}, False, True),
        ("delete unknown id", {"op": "delete", "id": f"{FUZZ_ID_PREFIX}missing-{rng.randrange(10**9)}"}, False, True),
        ("delete without id", {"op": "delete"}, False, True),
        ("delete with an image", {"op": "delete", "id": f"{FUZZ_ID_PREFIX}x"}, True, True),
        ("stats with k", {"op": "stats", "k": 3}, False, True),
        ("stats with an image", {"op": "stats"}, True, True),
        ("add without id", {"op": "add", "vector": [0.1] * dim}, False, True),
        ("add without probe", {"op": "add", "id": f"{FUZZ_ID_PREFIX}none"}, False, True),
        ("search with id", {"op": "search", "id": "x"}, True, True),
        ("k on add", {"op": "add", "id": f"{FUZZ_ID_PREFIX}k", "k": 3, "vector": [0.1] * dim}, False, True),
        ("stats", {"op": "stats"}, False, False),
        ("project with an unknown method", {"op": "project", "method": "isomap"}, False, True),
        ("project labels without subset=labels", {"op": "project", "labels": ["1"]}, False, True),
        ("project subset=labels without labels", {"op": "project", "subset": "labels"}, False, True),
        ("project of neighbours without a probe", {"op": "project", "subset": "neighbours"}, False, True),
        ("project of all with an image", {"op": "project"}, True, True),
        ("project k without subset=neighbours", {"op": "project", "k": 5}, False, True),
        ("project with an id", {"op": "project", "id": "x"}, False, True),
        ("project seed out of range", {"op": "project", "seed": -1}, False, True),
        ("project PCA of one label", {"op": "project", "subset": "labels",
                                      "labels": ["3" if model == "digits" else "coffee"]}, False, False),
        ("project PCA of a query's neighbours", {"op": "project", "subset": "neighbours", "k": 20}, True, False),
    ])
    transport = rng.choice(("json", "multipart")) if with_image or rng.random() < 0.5 else "json"
    img = image if with_image else None
    if transport == "multipart" and img is None:
        transport = "json"
    kwargs = _json_body(img, params) if transport == "json" else _multipart(img, params)
    return Case(f"neighbours: {label} ({transport})", endpoint, kwargs, must, None, "neighbours")


def _inspect_case(rng: random.Random, endpoint: str) -> Case:
    """Op-level mistakes of the inspect endpoint: a parameter, an output or an image the op does
    not take, an op without what it needs, layers and channels that do not exist, caps."""
    model = endpoint.split("-")[0]
    layers = LAYERS[model]
    (cam, channels), (stored, stored_channels) = layers.cam, layers.stored[-1]
    small = good_digit() if model == "digits" else seed_images()["JPEG"][1]
    fm = base_params(endpoint)  # op=feature_maps, two channels, raw
    top = {"op": "top_examples", "channel": 0}
    label, params, image, must = rng.choice([
        ("layers with an image", {"op": "layers"}, small, True),
        ("an image and no op", {}, small, True),
        ("filters with an image", {"op": "filters"}, small, True),
        ("top_examples with an image", top, small, True),
        ("feature_maps without an image", fm, None, True),
        ("no op, feature_maps parameters", {"layer": cam, "top": 2}, None, True),
        ("layer on layers", {"op": "layers", "layer": cam}, None, True),
        ("output on layers", {"op": "layers", "output": "grid"}, None, True),
        ("k on feature_maps", {**fm, "k": 3}, small, True),
        ("channel on feature_maps", {**fm, "channel": 1}, small, True),
        ("patches on feature_maps", {**fm, "patches": False}, small, True),
        ("channels on filters", {"op": "filters", "channels": "0"}, None, True),
        ("top on filters", {"op": "filters", "top": 2}, None, True),
        ("channel on filters", {"op": "filters", "channel": 0}, None, True),
        ("raw on filters", {"op": "filters", "output": "raw"}, None, True),
        ("channels on top_examples", {**top, "channels": "0,1"}, None, True),
        ("top on top_examples", {**top, "top": 2}, None, True),
        ("output on top_examples", {**top, "output": "grid"}, None, True),
        ("top_examples without channel", {"op": "top_examples", "k": 2}, None, True),
        ("top_examples k over the cap", {**top, "k": MAX_TOP_EXAMPLES + 1}, None, True),
        ("top_examples channel out of range", {"op": "top_examples", "channel": layers.stored[0][1]}, None, True),
        ("channel out of range of the second stored layer",
         {"op": "top_examples", "layer": stored, "channel": stored_channels}, None, True),
        ("top_examples of a layer not stored", {**top, "layer": layers.not_stored}, None, True),
        ("feature_maps of an unknown layer", {**fm, "layer": f"{cam}.99"}, small, True),
        ("feature_maps of the classifier", {**fm, "layer": layers.not_spatial}, small, True),
        ("feature_maps channels out of range", {**fm, "channels": f"0,{channels}"}, small, True),
        ("feature_maps top over the cap", {**fm, "top": MAX_FEATURE_CHANNELS + 1}, small, True),
        ("filters of a layer that is no convolution", {"op": "filters", "layer": layers.not_conv}, None, True),
        ("filters of the classifier", {"op": "filters", "layer": layers.not_spatial}, None, True),
        ("an op with a typo", {"op": "feature_map"}, None, True),
        ("layers", {"op": "layers"}, None, False),
        ("no op at all", {}, None, False),
        ("filters as an array", {"op": "filters", "output": "array"}, None, False),
        ("top_examples", {**top, "k": 2}, None, False),
        # 64 maps aligned with a 451 x 300 photo: over the engine's MAX_MAP_VALUES (6,000,000)
        ("feature_maps array over the size cap", {**fm, "top": MAX_FEATURE_CHANNELS, "output": "array"},
         full_photo(), True),
    ])
    transport = rng.choice(("json", "multipart"))
    if transport == "multipart" and not params and image is None:
        transport = "json"  # an empty form is no request at all
    kwargs = _json_body(image, params) if transport == "json" else _multipart(image, params)
    return Case(f"inspect: {label} ({transport})", endpoint, kwargs, must, None, "inspect", {} if must else params)


def _multipart_case(rng: random.Random, endpoint: str) -> Case:
    image = rng.choice(seed_images()["PNG"])
    params = base_params(endpoint)
    empty = [("data", ("image", b"", "image/png"))]
    if endpoint.endswith("-inspect"):  # with no op, an empty image part would be a valid op=layers
        empty += _multipart(None, params)["files"]
    label, kwargs, must = rng.choice([
        ("no data part", _multipart(None, params), True),
        ("empty data part", {"files": empty}, True),
        ("data part as base64 text, bad", {"files": [("data", (None, "!!!not base64!!!"))]}, True),
        ("data part as base64 text, good", {"files": [("data", (None, base64.b64encode(image).decode()))]}, False),
        ("two data parts", {"files": [("data", ("a", image, "image/png")), ("data", ("b", image, "image/png"))]}, False),
        ("data and image parts", {"files": [("data", ("a", image, "image/png")), ("image", ("b", image, "image/png"))]}, False),
        ("image part instead of data", {"files": [("image", ("a", image, "image/png"))]}, False),
        ("other part name only", {"files": [("file", ("a", image, "image/png"))]}, True),
        ("binary parameter part", {"files": [("data", ("a", image, "image/png"))] + [(next(iter(params), "top_k") if params else "normalize", (None, b"\xff\xfe\x00\x01"))]}, True),
        ("duplicate parameter parts", {"files": [("data", ("a", image, "image/png"))] + [(k, (None, "1")) for k in params] * 2}, False),
        ("empty parameter part", {"files": [("data", ("a", image, "image/png"))] + [(k, (None, "")) for k in params]}, bool(params)),
        ("many junk parts", {"files": [("data", ("a", image, "image/png"))] + [(f"p{i}", (None, "x")) for i in range(200)]}, True),
        ("parameter part with a file name", {"files": [("data", ("a", image, "image/png"))] + [(k, ("p.txt", str(v).lower(), "text/plain")) for k, v in params.items()]}, False),
        ("unicode part name", {"files": [("data", ("a", image, "image/png")), ("\u00fc\u00f1\u00ee", (None, "1"))]}, True),
    ])
    return Case(f"multipart: {label}", endpoint, kwargs, must, None, "multipart")


def _borderline_case(rng: random.Random, endpoint: str) -> Case:
    """Valid requests at the ends of the ranges, with odd but real images: may answer 200."""
    model = endpoint.split("-")[0]
    fmt = rng.choice(list(seed_images()))
    image = good_digit() if model == "digits" and rng.random() < 0.5 else rng.choice(seed_images()[fmt])
    params = _cheap_valid_variants(endpoint, rng)
    if endpoint.endswith("-inspect") and params["op"] != "feature_maps":
        image, fmt = None, "no image"
    transport = rng.choice(("json", "multipart"))
    kwargs = _json_body(image, params) if transport == "json" else _multipart(image, params)
    return Case(f"borderline {fmt} {sorted(params.items())} ({transport})", endpoint, kwargs, False, image, "borderline", params)


def _tiny_images(rng: random.Random, endpoint: str) -> Case:
    """Valid but odd images: 1x1, 1xN, one colour, all transparent."""
    size = rng.choice(((1, 1), (1, 300), (300, 1), (2, 2), (7, 3)))
    fmt = rng.choice(("PNG", "GIF", "BMP", "TIFF", "WEBP", "JPEG"))
    colour = rng.choice(((0, 0, 0), (255, 255, 255), (128, 0, 255)))
    mode = rng.choice(("RGB", "L", "RGBA")) if fmt in ("PNG", "TIFF", "WEBP") else "RGB"
    image = Image.new(mode, size, colour[: len(mode)] if mode != "L" else colour[0])
    if mode == "RGBA":
        image.putalpha(0)
    data = encode(image, fmt)
    kwargs = {"data": data, "headers": {"Content-Type": "image/png"}}
    if endpoint.endswith("-inspect"):  # only op=feature_maps takes an image
        kwargs = _multipart(data, base_params(endpoint))
    return Case(f"tiny {fmt} {mode} {size[0]}x{size[1]}", endpoint, kwargs, False, data, "tiny")


FAMILIES: tuple[tuple[Callable[[random.Random, str], Case], int], ...] = (
    (_image_case, 40), (_param_case, 22), (_json_case, 10), (_content_type_case, 7), (_multipart_case, 7),
    (_unknown_param_case, 4), (_borderline_case, 5), (_tiny_images, 3), (_neighbours_case, 6), (_inspect_case, 8))
"""Each family with its weight; ``_neighbours_case`` and ``_inspect_case`` only on their endpoints."""
ONLY_ON = {_neighbours_case: "-neighbours", _inspect_case: "-inspect"}


def iter_cases_for(endpoint: str, count: int, seed: int = 0) -> Iterator[Case]:
    """``count`` cases for ``endpoint``, one at a time, the same ones for the same seed."""
    rng = random.Random(f"{seed}/{endpoint}")
    families = [(f, w) for f, w in FAMILIES if endpoint.endswith(ONLY_ON.get(f, ""))]
    makers, weights = zip(*families)
    for _ in range(count):
        yield rng.choices(makers, weights)[0](rng, endpoint)


def cases_for(endpoint: str, count: int, seed: int = 0) -> list[Case]:
    return list(iter_cases_for(endpoint, count, seed))


def iter_cases(seed: int = 0, per_endpoint: int = 30, endpoints: tuple[str, ...] = ENDPOINTS) -> Iterator[Case]:
    """``cases`` lazily (a full run holds tens of thousands)."""
    for group in zip(*(iter_cases_for(e, per_endpoint, seed) for e in endpoints)):
        yield from group


def cases(seed: int = 0, per_endpoint: int = 30, endpoints: tuple[str, ...] = ENDPOINTS) -> list[Case]:
    """``per_endpoint`` cases for each endpoint, interleaved (so a concurrent sender spreads
    the load over every registration)."""
    lists = [cases_for(e, per_endpoint, seed) for e in endpoints]
    return [c for group in zip(*lists) for c in group]


def send(post: Callable[..., Any], case: Case, timeout: float = 120) -> tuple[int | None, bytes]:
    """Post ``case`` with ``post(endpoint, timeout=..., **kwargs)``: (status or None, body)."""
    import requests

    try:
        answer = post(case.endpoint, timeout=timeout, **case.kwargs)
        return answer.status_code, answer.content
    except requests.RequestException as exc:
        return None, repr(exc).encode()


def added_ids(case: Case) -> list[str]:
    """Ids a case may have written to the index (all under ``FUZZ_ID_PREFIX``)."""
    text = json.dumps(case.kwargs, default=lambda v: v.decode("latin-1") if isinstance(v, bytes) else str(v))
    found, at = [], text.find(FUZZ_ID_PREFIX)
    while at >= 0:
        end = at
        while end < len(text) and (text[end].isalnum() or text[end] in "/-_"):
            end += 1
        found.append(text[at:end])
        at = text.find(FUZZ_ID_PREFIX, end)
    return sorted(set(found))
