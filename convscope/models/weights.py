"""Weights from safetensors, or from a state dict read with ``weights_only=True``.

Never an arbitrary pickle: a ``.pt`` file that holds code, a whole pickled module, or anything
but tensors is refused before any of it runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..errors import SpecError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by name from ``.safetensors`` or a weights-only ``.pt``/``.pth``/``.bin``."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise SpecError(f"weights file {path} is not valid safetensors: {exc}") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - on junk the weights-only unpickler raises anything
        raise SpecError(f"weights file {path} refused: not a weights-only state dict "
                        f"({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpecError(f"weights file {path} is not a state dict of tensors")
    return state


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(actual: str, expected: str, name: str, what: str = "weights file") -> None:
    """Refuse a file whose SHA-256 ``actual`` is not the ``expected`` one the archive recorded."""
    if expected and actual != expected:
        raise SpecError(f"{what} {name} does not match the SHA-256 recorded in the "
                        "archive: corrupted or replaced, refused")


def load_weights(model: nn.Module, path: str | Path, sha256: str = "") -> nn.Module:
    """Load strictly: every key present and of the right shape, or a ``SpecError`` saying which;
    with ``sha256``, the file must have that digest (checked before any of it is parsed)."""
    if sha256 and Path(path).is_file():  # a missing file is read_state_dict's error to give
        check_digest(sha256_of(path), sha256, Path(path).name)
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SpecError(f"weights {Path(path).name} do not fit the architecture: {exc}") from exc
    return model
