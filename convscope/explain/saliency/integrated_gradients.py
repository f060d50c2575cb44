"""Integrated gradients (Sundararajan, Taly, Yan 2017). https://arxiv.org/abs/1703.01365

(x - x') * integral over a in [0, 1] of d score_c / d x at x' + a (x - x'), by ``steps``-point
Gauss-Legendre quadrature (Captum's default); summed over channels; signed. Baselines x':
``black`` (a black image), ``blur`` (a Gaussian blur of the input, sigma a tenth of its side)
or ``uniform`` (uniform noise in the pixel range, seeded). Path points of all the batch's images
go through the model ``chunk_size`` at a time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...preprocess import pixel_value
from ..base import Job, input_gradients, spread
from .base import SaliencyMethod


def gauss_legendre(steps: int) -> tuple[list[float], list[float]]:
    """(alphas in [0, 1], weights summing to 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (0.5 * (nodes + 1)).tolist(), (0.5 * weights).tolist()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(grid ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = x.shape[0]
    out = x[None]
    for shape in ((1, 1, -1, 1), (1, 1, 1, -1)):
        weight = kernel.view(shape).expand(channels, 1, *kernel.view(shape).shape[2:])
        pad = (0, 0, radius, radius) if shape[2] == -1 else (radius, radius, 0, 0)
        out = F.conv2d(F.pad(out, pad, mode="replicate"), weight, groups=channels)
    return out[0]


def baseline_for(job: Job, x: torch.Tensor) -> torch.Tensor:
    spec = job.model.spec.input
    kind = job.options["baseline"]
    if kind == "black":
        return pixel_value(0.0, spec).to(x.device).expand_as(x).clone()
    if kind == "blur":
        return _gaussian_blur(x, sigma=0.1 * min(x.shape[-2:]))
    generator = torch.Generator(device=x.device).manual_seed(job.options["seed"])
    pixels = torch.rand(x.shape, generator=generator, device=x.device)
    mean = torch.tensor(spec.mean, device=x.device)[:, None, None]
    std = torch.tensor(spec.std, device=x.device)[:, None, None]
    return (pixels - mean) / std


class IntegratedGradients(SaliencyMethod):
    name = "integrated_gradients"
    signed = True
    default_polarity = "absolute"
    options = ("steps", "baseline", "seed")

    def explain(self, job: Job) -> torch.Tensor:
        x = job.inputs
        alphas, weights = (torch.tensor(v, device=x.device) for v in gauss_legendre(job.options["steps"]))
        bases = torch.stack([baseline_for(job, item) for item in x])
        deltas = x - bases
        total = torch.zeros_like(x)
        for segments in spread(len(alphas), len(x), job.chunk_size):
            owners = torch.cat([torch.full((stop - start,), item, device=x.device)
                                for item, start, stop in segments])
            steps = torch.cat([torch.arange(start, stop, device=x.device) for _, start, stop in segments])
            path = bases[owners] + alphas[steps][:, None, None, None] * deltas[owners]
            grads = input_gradients(job.model.module, path, job.targets[owners])
            total.index_add_(0, owners, grads * weights[steps][:, None, None, None])
        return self.reduce(deltas * total)
