"""Architectures by name: ``timm:<name>``, ``torchvision:<name>`` or ``convscope:<name>``.

Models are always built with random weights (no hub download); weights come from the spec's
file through ``convscope.models.weights``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import SpecError
from .digits import DigitsCNN

_OWN: dict[str, Callable[..., nn.Module]] = {"digits_cnn": DigitsCNN}


def build_architecture(arch: str, num_classes: int, in_chans: int = 3) -> nn.Module:
    """Instantiate ``arch`` with ``num_classes`` outputs and random weights, in eval mode."""
    source, _, name = arch.partition(":")
    try:
        if source == "convscope":
            model = _OWN[name](num_classes=num_classes, in_chans=in_chans)
        elif source == "timm":
            import timm

            if not timm.is_model(name):  # "hf-hub:org/x" or "local-dir:/path" would fetch or read a config
                raise SpecError(f"unknown timm architecture {name!r}: only timm's own names, "
                                "never hub or path ones")
            model = timm.create_model(name, pretrained=False, num_classes=num_classes,
                                      in_chans=in_chans)
        elif source == "torchvision":
            import torchvision

            if in_chans != 3:
                raise SpecError("torchvision architectures take 3 input channels")
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        else:
            raise SpecError(f"unknown architecture source {source!r} in {arch!r}")
    except (KeyError, RuntimeError, ValueError) as exc:
        raise SpecError(f"unknown architecture {arch!r}: {exc}") from exc
    return model.eval()
