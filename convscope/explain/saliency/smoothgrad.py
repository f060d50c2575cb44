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

from ..base import Job, spread
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

    def explain(self, job: Job) -> torch.Tensor:
        x, samples = job.inputs, job.options["samples"]
        flat = x.flatten(1)
        stdevs = (float(job.options["noise"]) * (flat.amax(dim=1) - flat.amin(dim=1))).tolist()
        generators = [torch.Generator(device=x.device).manual_seed(job.options["seed"]) for _ in x]
        total = torch.zeros_like(x)
        for segments in spread(samples, len(x), job.chunk_size):
            noisy, owners = [], []
            for item, start, stop in segments:
                # Captum NoiseTunnel's draw: normal(0, stdev tensor) of the expanded shape.
                std = torch.full((stop - start, *x.shape[1:]), stdevs[item], device=x.device)
                noisy.append(x[item][None] + torch.normal(0.0, std, generator=generators[item]))
                owners += [item] * (stop - start)
            owners_t = torch.tensor(owners, device=x.device)
            total.index_add_(0, owners_t, self.inner.raw(job, torch.cat(noisy), job.targets[owners_t]))
        return self.reduce(total / samples)


def smoothgrad() -> Smoothed:
    return Smoothed(Gradient(), "smoothgrad")
