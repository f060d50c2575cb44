"""SmoothGrad (Smilkov et al. 2017). https://arxiv.org/abs/1706.03825

A wrapper, not a subclass: ``Smoothed(method)`` averages any saliency method's per-channel
attributions over ``samples`` copies of the input with Gaussian noise of standard deviation
``noise`` x (max - min of the input), drawn from a generator seeded by ``seed``. Noisy copies go
through the model ``chunk_size`` at a time, so memory is bounded whatever ``samples`` is. The
draws are Captum NoiseTunnel's (one ``normal(0, stdev)`` of the expanded shape), and the same
whatever the chunk size, when C x H x W is a multiple of 16 (every built-in model's input).
"""

from __future__ import annotations

import torch

from ..base import Job
from .base import SaliencyMethod
from .gradient import Gradient


class Smoothed(SaliencyMethod):
    options = ("samples", "noise", "seed")

    def __init__(self, inner: SaliencyMethod, name: str) -> None:
        self.inner = inner
        self.name = name
        self.signed = inner.signed
        self.default_polarity = inner.default_polarity

    def reduce(self, raw: torch.Tensor) -> torch.Tensor:
        return self.inner.reduce(raw)

    def _one(self, job: Job, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        samples, chunk = job.options["samples"], job.chunk_size
        stdev = float(job.options["noise"]) * float(x.max() - x.min())
        generator = torch.Generator(device=x.device).manual_seed(job.options["seed"])
        total = torch.zeros_like(x)
        for start in range(0, samples, chunk):
            count = min(chunk, samples - start)
            # The same draw as Captum's NoiseTunnel: normal(0, stdev tensor) of the expanded shape.
            std = torch.full((count, *x.shape), stdev, device=x.device)
            noisy = x[None] + torch.normal(0.0, std, generator=generator)
            total += self.inner.raw(job, noisy, target.expand(count)).sum(dim=0)
        return total / samples

    def explain(self, job: Job) -> torch.Tensor:
        raw = torch.stack([self._one(job, x, t) for x, t in zip(job.inputs, job.targets)])
        return self.reduce(raw)


def smoothgrad() -> Smoothed:
    return Smoothed(Gradient(), "smoothgrad")
