"""Images for tests: real photos from scikit-image, digits rendered outside MNIST, and the
bad inputs of the test matrix. Everything is made here, offline and deterministically."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAPER, INK = (250, 248, 240), (20, 20, 30)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(name: str) -> np.ndarray:
    """uint8 [H, W, 3] scikit-image photo (``chelsea``, ``coffee``, ``astronaut`` ...)."""
    from skimage import data

    return getattr(data, name)()


def photo_bytes(name: str, fmt: str = "JPEG") -> bytes:
    return encode(Image.fromarray(photo(name)), fmt)


def rendered_digits(count_per_digit: int = 3, seed: int = 0) -> list[tuple[int, bytes]]:
    """Dark digits on light paper, typeset with Pillow's bundled font at random sizes, positions,
    stroke widths and small rotations, saved as JPEG: digits from outside MNIST."""
    rng = np.random.default_rng(seed)
    samples = []
    for digit in range(10):
        for _ in range(count_per_digit):
            font = ImageFont.load_default(size=int(rng.integers(70, 140)))
            canvas = Image.new("RGB", (200, 200), PAPER)
            ImageDraw.Draw(canvas).text(
                (int(rng.integers(30, 80)), int(rng.integers(0, 40))), str(digit), fill=INK,
                font=font, stroke_width=int(rng.integers(1, 5)), stroke_fill=INK)
            canvas = canvas.rotate(float(rng.uniform(-8, 8)), fillcolor=PAPER)
            samples.append((digit, encode(canvas, "JPEG", quality=85)))
    return samples


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_bomb(side: int = 30000, rows_compressed: int | None = None) -> bytes:
    """A PNG declaring ``side`` x ``side`` grey pixels. With ``rows_compressed`` it carries that
    many real zero rows (a true bomb: tiny file, huge image); otherwise only the header."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = rows_compressed if rows_compressed is not None else 1
    idat = zlib.compress(b"\x00" * ((side + 1) * rows), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


def held_out_digits(per_class: int = 2) -> list[tuple[int, bytes]]:
    """MNIST digits the digits model never trained on (the build's held-out split), as PNG files
    the way a client would send them: white ink on black, 28x28."""
    from convscope.build.digits import load_digits, split

    images, labels = load_digits()
    _, held = split(labels)
    chosen = [row for digit in range(10) for row in held[labels[held] == digit][:per_class]]
    return [(int(labels[row]), encode(Image.fromarray(images[row]), "PNG")) for row in chosen]
