"""Models and jobs for explanation tests: a hand-weighted tiny CNN with hand-computed maps,
and randomly initialised real architectures wrapped as ``LoadedModel``s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from convscope.explain import METHODS, Job
from convscope.models import LoadedModel, build_architecture, discover_layers
from convscope.spec import parse_spec


def wrap(module: nn.Module, num_classes: int, channels: int, size: int,
         mean=None, std=None) -> LoadedModel:
    """A random-weight module as a ``LoadedModel`` (its spec's weights file is never read)."""
    mean = mean or ([0.485, 0.456, 0.406] if channels == 3 else [0.0])
    std = std or ([0.229, 0.224, 0.225] if channels == 3 else [1.0])
    spec = parse_spec({"name": "test", "arch": "convscope:test", "num_classes": num_classes,
                       "weights": "unused.safetensors", "labels": [str(i) for i in range(num_classes)],
                       "input": {"size": [max(8, size)] * 2, "channels": channels, "mean": mean, "std": std}},
                      Path("."))
    module = module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    layers = discover_layers(module, (channels, size, size), num_classes)
    return LoadedModel(spec, module, torch.device("cpu"), layers)


def tiny() -> LoadedModel:
    """x [1,1,2,2] -> conv 1x1 (weights +1, -1) -> ReLU -> global mean -> linear W.

    A1 = relu(x), A2 = relu(-x); logits = W @ [mean A1, mean A2], W = [[2, 1], [-1, 3]].
    """
    conv = nn.Conv2d(1, 2, 1, bias=False)
    conv.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    head = nn.Linear(2, 2, bias=False)
    head.weight.data = torch.tensor([[2.0, 1.0], [-1.0, 3.0]])
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    return wrap(model, 2, 1, 2)


TINY_INPUT = torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]])


def random_model(arch: str, size: int = 128, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    return wrap(build_architecture(arch, 1000), 1000, 3, size)


def job(model: LoadedModel, inputs, targets, method: str, chunk: int = 64, layer=None, **options) -> Job:
    defaults = {"samples": 8, "noise": 0.15, "seed": 0, "steps": 16, "baseline": "black",
                "window": 2, "stride": 1, "fill": None}
    wanted = {k: options.get(k, defaults[k]) for k in METHODS[method].options if k != "layer"}
    return Job(model, inputs, torch.as_tensor(targets), wanted, chunk,
               layer or (model.layers.cam if METHODS[method].family == "cam" else None))


def explain(model, inputs, targets, method, **kwargs) -> torch.Tensor:
    return METHODS[method].explain(job(model, inputs, targets, method, **kwargs))


def _flat(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()


def pearson(a, b) -> float:
    a, b = _flat(a), _flat(b)
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])
