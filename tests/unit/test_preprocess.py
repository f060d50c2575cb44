"""The one preprocessing path: formats, modes, orientation, limits, tensors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.config import EngineConfig
from convscope.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from convscope.preprocess import decode_image, to_rgb, to_tensor
from convscope.spec import InputSpec
from tests.imaging import encode, png_bomb, truncated

CONFIG = EngineConfig()


def _gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (height, 1)), np.tile(x[::-1], (height, 1)),
                    np.full((height, width), 128, np.uint8)], axis=2)
    return Image.fromarray(rgb)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_allowed_format_decodes_to_rgb(fmt):
    decoded = decode_image(encode(_gradient(), fmt), CONFIG)
    assert decoded.image.mode == "RGB"
    assert decoded.size == (64, 48)
    assert decoded.format == fmt


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixel = decode_image(data, CONFIG).image.getpixel((8, 8))
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif), CONFIG)
    assert decoded.size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "1", "P"])
def test_modes_convert_to_rgb(mode):
    image = _gradient().convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    decoded = decode_image(encode(image, fmt), CONFIG)
    assert decoded.image.mode == "RGB" and decoded.size == (64, 48)


def test_transparent_pixels_composite_over_the_background():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    rgb = decode_image(encode(image, "PNG"), CONFIG).image
    assert rgb.getpixel((4, 4)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)


def test_palette_transparency_composites():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    image.info["transparency"] = 1
    rgb = decode_image(encode(image, "PNG", transparency=1), CONFIG).image
    assert rgb.getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    rgb = decode_image(encode(image, "PNG"), CONFIG).image
    values = [rgb.getpixel((i, 0))[0] for i in range(3)]
    assert values[0] == 0 and 120 <= values[1] <= 135 and values[2] == 255


def test_to_rgb_handles_float_images():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert to_rgb(image).getpixel((2, 0)) == (255, 255, 255)


@pytest.mark.parametrize("data, error", [
    (b"", InvalidImage),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), InvalidImage),
    (b"this is plain text, not an image at all", InvalidImage),
    (b"\x00\x00\x01\x00\x01\x00\x10\x10" + b"\x00" * 64, UnsupportedMediaType),   # ICO
    (b"P6\n4 4\n255\n" + b"\x00" * 48, UnsupportedMediaType),                      # PPM
    (b"%PDF-1.7\n", UnsupportedMediaType),
])
def test_bad_bytes_are_client_errors(data, error):
    with pytest.raises(error) as caught:
        decode_image(data, CONFIG)
    assert caught.value.status in (400, 415) and caught.value.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_400(fmt):
    data = encode(_gradient(256, 256), fmt)
    with pytest.raises(InvalidImage, match="truncated or corrupt|corrupt"):
        decode_image(truncated(data, 0.4), CONFIG)


def test_huge_header_is_refused_before_decoding():
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="900000000 pixels"):
        decode_image(png_bomb(30000), CONFIG)
    assert time.perf_counter() - started < 1.0, "the header alone must decide"


def test_real_compressed_bomb_is_413():
    bomb = png_bomb(10000, rows_compressed=10000)  # 100 Mpx of zeros in ~100 kB
    assert len(bomb) < 200_000
    with pytest.raises(PayloadTooLarge):
        decode_image(bomb, CONFIG)


def test_limits_come_from_config():
    small = EngineConfig(max_image_pixels=100, max_image_bytes=10_000)
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(encode(_gradient(), "PNG"), small)
    with pytest.raises(PayloadTooLarge, match="bytes"):
        decode_image(b"\x89PNG" + b"\x00" * 20_000, small)


def test_squash_tensor_is_normalised():
    spec = InputSpec(size=(32, 16), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    tensor = to_tensor(Image.new("RGB", (100, 50), (255, 0, 128)), spec)
    assert tensor.shape == (3, 32, 16) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[0], torch.ones(32, 16))
    assert torch.allclose(tensor[1], -torch.ones(32, 16))


def test_center_crop_keeps_aspect():
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 40, 100))  # a white band at the far left is cropped away
    tensor = to_tensor(image, InputSpec(size=(50, 50), resize="center_crop"))
    assert tensor.shape == (3, 50, 50) and float(tensor.max()) < 0.02


def test_mnist_fit_inverts_and_centres_dark_ink():
    image = Image.new("RGB", (300, 200), (250, 250, 250))
    image.paste((10, 10, 10), (20, 20, 60, 120))  # a dark bar near the top-left corner
    spec = InputSpec(size=(28, 28), channels=1, resize="mnist", invert="auto", mean=(0.0,), std=(1.0,))
    tensor = to_tensor(image, spec)[0]
    assert tensor.shape == (28, 28)
    assert float(tensor[0, 0]) == 0.0 and float(tensor.max()) > 0.9  # light ink on black
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = tensor.sum()
    assert abs(float((rows * tensor).sum() / mass) - 14) < 1.0
    assert abs(float((cols * tensor).sum() / mass) - 14) < 1.0
    assert int((tensor > 0.5).any(dim=1).sum()) <= 21  # fitted into the 20-px box
