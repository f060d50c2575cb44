"""Models and jobs for explanation tests: a hand-weighted tiny CNN with hand-computed maps,
and randomly initialised real architectures wrapped as ``LoadedModel``s."""

from __future__ import annotations

import copy
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
                "window": 2, "stride": 1, "fill": None, "segments": 4, "num_features": None,
                "positive_only": False}
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


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(_flat(a), _flat(b)).statistic)


def target_logit(model: LoadedModel, x: torch.Tensor, target: int) -> torch.Tensor:
    """The target's logit for each image of ``x`` [N, C, H, W]: what the methods explain."""
    with torch.inference_mode():
        return model.module(x)[:, target]


def deletion_drops(model: LoadedModel, x: torch.Tensor, target: int, saliency: torch.Tensor,
                   fraction: float = 0.2, draws: int = 10, seed: int = 0) -> tuple[float, float]:
    """The deletion protocol (chosen on method grounds; see BENCHMARKS.md): delete the ``fraction`` most salient pixels of
    ``x`` [1, C, H, W] by replacing them with a Gaussian blur of the image (sigma a tenth of its
    side: imputation instead of a constant, which the ROAD study (Rong et al. 2022) showed to
    create out-of-distribution artefacts), and return the fall of the target logit, with the
    mean fall over ``draws`` random deletions of as many pixels."""
    from convscope.explain.saliency.integrated_gradients import _gaussian_blur

    height, width = x.shape[-2:]
    count = int(fraction * height * width)
    generator = torch.Generator().manual_seed(seed)
    chosen = [saliency.flatten().topk(count).indices]
    chosen += [torch.randperm(height * width, generator=generator)[:count] for _ in range(draws)]
    blurred = _gaussian_blur(x[0], 0.1 * min(height, width))
    deleted = x.repeat(len(chosen), 1, 1, 1)
    for row, indices in enumerate(chosen):
        mask = torch.zeros(height * width, dtype=torch.bool)
        mask[indices] = True
        mask = mask.view(height, width)
        deleted[row][:, mask] = blurred[:, mask]
    base = float(target_logit(model, x, target)[0])
    after = target_logit(model, deleted, target)
    return base - float(after[0]), base - float(after[1:].mean())


def randomized_copy(model: LoadedModel, seed: int = 0) -> LoadedModel:
    """The same architecture with every layer re-initialised (Adebayo et al. 2018's cascading
    randomisation carried to the end): explanations that survive this explain nothing learned."""
    from dataclasses import replace

    from convscope.models import resolve_tap

    torch.manual_seed(seed)
    module = copy.deepcopy(model.module)
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    layers = replace(model.layers, feature=resolve_tap(module, model.layers.feature.label),
                     cam=resolve_tap(module, model.layers.cam.label))
    return LoadedModel(model.spec, module.eval(), model.device, layers)
