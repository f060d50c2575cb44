"""The one preprocessing path: bytes -> validated RGB image -> normalised tensor -> batch.

Every endpoint, the model build and every test go through these functions, so what the network
sees in training, in serving and in tests is the same.

Order matters for safety: the format is checked against an allow-list and the size is read
from the header *before* a single pixel is decoded, so decompression bombs and huge images
cost nothing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import EngineConfig
from .errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from .spec import InputSpec

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

# Magic numbers of image formats we recognise but do not accept: these are a 415, where bytes
# that are no image at all are a 400.
_KNOWN_UNSUPPORTED = (
    (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"%PDF", "PDF"), (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"), (b"P1", "PBM"), (b"P2", "PGM"), (b"P3", "PPM"),
    (b"P4", "PBM"), (b"P5", "PGM"), (b"P6", "PPM"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"), (b"SIMPLE  =", "FITS"), (b"DDS ", "DDS"),
    (b"icns", "ICNS"), (b"qoif", "QOI"), (b"\x76\x2f\x31\x01", "OpenEXR"),
)
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class DecodedImage:
    """An accepted image: RGB, EXIF orientation applied; ``size`` is (width, height)."""

    image: Image.Image
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def _sniff_unsupported(data: bytes) -> str | None:
    for magic, name in _KNOWN_UNSUPPORTED:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "ISO media")
    if data.lstrip()[:5].lower() in (b"<?xml", b"<svg "):
        return "SVG/XML"
    return None


def _open(data: bytes, config: EngineConfig) -> Image.Image:
    """Open lazily (header only) from the allow-list; bombs become 413, not a crash."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"image refused before decoding ({exc}); "
                              f"the limit is {config.max_image_pixels:,} pixels") from exc
    except UnidentifiedImageError as exc:
        other = _sniff_unsupported(data)
        if other:
            raise UnsupportedMediaType(
                f"{other} images are not accepted; send one of {', '.join(ALLOWED_FORMATS)}"
            ) from exc
        raise InvalidImage("the data is not a decodable image "
                           f"(accepted formats: {', '.join(ALLOWED_FORMATS)})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure on client bytes is bad input
        raise InvalidImage(f"the image header is corrupt: {exc}") from exc


def _check_size(image: Image.Image, config: EngineConfig) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if max(width, height) > config.max_image_side:
        raise PayloadTooLarge(
            f"image is {width}x{height}; the largest side accepted is {config.max_image_side} px")
    if width * height > config.max_image_pixels:
        raise PayloadTooLarge(f"image is {width}x{height} = {width * height:,} pixels; "
                              f"the limit is {config.max_image_pixels:,}")


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey (I;16, I, F) scaled to 8 bits by the value range of the mode."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F":
        top = float(array.max()) if array.size and array.max() > 1.0 else 1.0
    else:
        top = max(float(array.max()), 255.0)
    scaled = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited over ``background``."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _high_bit_depth_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def reduced_decode_size(spec: InputSpec) -> tuple[int, int] | None:
    """The smallest image worth decoding for ``spec``'s network input, where a JPEG may be decoded
    at reduced scale (``decode_image(reduce_to=...)``): twice the input's longer side on both
    sides (orientation-proof: EXIF may swap them), so the resize that follows still downsamples
    and the input is near-identical to a full decode (docs/performance.md). None for ``mnist``
    resizing, which crops the ink's bounding box first and needs every pixel of it."""
    if spec.resize == "mnist":
        return None
    side = 2 * max(spec.size)
    return side, side


def decode_image(data: bytes, config: EngineConfig,
                 background: tuple[int, int, int] = (255, 255, 255),
                 reduce_to: tuple[int, int] | None = None) -> DecodedImage:
    """Bytes to an RGB image, or a ``ServiceError`` (400, 413, 415) that says what was wrong.

    ``reduce_to``: a JPEG larger than this (w, h) on both sides is decoded at 1/2, 1/4 or 1/8
    scale by libjpeg's DCT scaling, staying at least this size: 4x faster on a 1080p photo,
    6x on 12 MP. Only for callers that never draw on the client's image (classification,
    features, search); explanations decode in full."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > config.max_image_bytes:
        raise PayloadTooLarge(
            f"image is {len(data):,} bytes; the limit is {config.max_image_bytes:,}")
    image = _open(data, config)
    _check_size(image, config)
    fmt = image.format or "unknown"
    if reduce_to is not None and fmt == "JPEG":
        image.draft("RGB", reduce_to)
    try:
        image.seek(0)  # GIF, TIFF, WebP: the first frame
        image.load()
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image refused as a decompression bomb: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data in any decoder is bad input
        raise InvalidImage(f"the {fmt} image data is truncated or corrupt: {exc}") from exc
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose a good image
        pass
    return DecodedImage(image=to_rgb(image, background), format=fmt)


@dataclass(frozen=True)
class Placement:
    """Where the client's image landed in the network input: the pixels of ``source`` (a box
    x0, y0, x1, y1 of the client image, size ``image_size``) fill the box ``target`` of the
    input. Maps computed on the input are aligned back to the client image through it."""

    image_size: tuple[int, int]
    source: tuple[int, int, int, int]
    target: tuple[int, int, int, int]


def _fit_mnist(grey: Image.Image, size: tuple[int, int], resample: int) -> tuple[Image.Image, Placement]:
    """MNIST's own recipe: crop the ink, fit it in a box of 20/28 of the frame keeping its
    aspect, and centre it by its centre of mass. ``grey`` is white ink on black."""
    height, width = size
    array = np.asarray(grey, dtype=np.float32)
    mask = array > 0.25 * array.max() if array.max() > 0 else np.zeros_like(array, bool)
    if not mask.any():
        whole = (0, 0, grey.width, grey.height)
        return Image.new("L", (width, height), 0), Placement(grey.size, whole, (0, 0, width, height))
    rows, cols = np.nonzero(mask)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    crop = grey.crop(box)
    fit = (round(height * 20 / 28), round(width * 20 / 28))
    scale = min(fit[0] / crop.height, fit[1] / crop.width)
    new_w, new_h = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    crop = crop.resize((new_w, new_h), resample)
    ink = np.asarray(crop, dtype=np.float64)
    total = ink.sum() or 1.0
    cy = (ink.sum(axis=1) * np.arange(new_h)).sum() / total
    cx = (ink.sum(axis=0) * np.arange(new_w)).sum() / total
    canvas = Image.new("L", (width, height), 0)
    left, top = round(width / 2 - cx), round(height / 2 - cy)
    canvas.paste(crop, (left, top))
    return canvas, Placement(grey.size, box, (left, top, left + new_w, top + new_h))


def _maybe_invert(grey: Image.Image, mode: str) -> Image.Image:
    """``auto``: a light border means dark ink on light paper; flip it to MNIST's light on dark."""
    if mode != "auto":
        return grey
    array = np.asarray(grey)
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    return ImageOps.invert(grey) if border.mean() > 127 else grey


def _resize(image: Image.Image, spec: InputSpec) -> tuple[Image.Image, Placement]:
    height, width = spec.size
    resample = _RESAMPLE[spec.interpolation]
    full = (0, 0, width, height)
    if spec.resize == "mnist":
        return _fit_mnist(image, spec.size, resample)
    if spec.resize == "center_crop":
        scale = max(width / image.width, height / image.height)
        scaled = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
        source = (round(left / scale), round(top / scale),
                  round((left + width) / scale), round((top + height) / scale))
        resized = image.resize(scaled, resample).crop((left, top, left + width, top + height))
        return resized, Placement(image.size, source, full)
    return image.resize((width, height), resample), Placement(image.size, (0, 0, *image.size), full)


def prepare_input(image: Image.Image, spec: InputSpec) -> tuple[torch.Tensor, Placement]:
    """RGB image -> (float32 [channels, H, W] scaled to [0, 1] then normalised by mean/std,
    where the image landed in it)."""
    image = image.convert("L") if spec.channels == 1 else image.convert("RGB")
    if spec.channels == 1:
        image = _maybe_invert(image, spec.invert)
    image, placement = _resize(image, spec)
    pixels = np.asarray(image)
    # Channels first while still uint8, then the arithmetic in place on contiguous float32: the
    # same operations in the same order (bit-identical), 4x faster than on the transposed view.
    array = (pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))).astype(np.float32)
    array /= 255.0
    array -= np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    array /= np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return torch.from_numpy(array), placement


def image_input(data: bytes, spec: InputSpec, config: EngineConfig, full_image: bool = False
                ) -> tuple[Image.Image, torch.Tensor, Placement]:
    """Client bytes to (decoded RGB image, network input float32 [C, H, W], placement): the path
    of every endpoint and of the gallery tools. ``full_image``: decode every pixel (explanations
    draw on the image); otherwise a large JPEG is decoded at reduced scale
    (``reduced_decode_size``), which the input barely notices."""
    reduce_to = None if full_image else reduced_decode_size(spec)
    image = decode_image(data, config, spec.alpha_background, reduce_to).image
    tensor, placement = prepare_input(image, spec)
    return image, tensor, placement


def to_tensor(image: Image.Image, spec: InputSpec) -> torch.Tensor:
    """``prepare_input`` without the placement."""
    return prepare_input(image, spec)[0]


def pixel_value(value: float, spec: InputSpec) -> torch.Tensor:
    """A grey pixel intensity in [0, 1] as the normalised float32 [channels, 1, 1] input value."""
    mean = torch.tensor(spec.mean, dtype=torch.float32)
    std = torch.tensor(spec.std, dtype=torch.float32)
    return ((value - mean) / std)[:, None, None]


def batch(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Stack item tensors [C,H,W] into one float32 [B,C,H,W] on ``device``."""
    return torch.stack(tensors).to(device, non_blocking=True)
