"""Gradient-family saliency: per-channel attributions, then one reduction to a 2-D map.

Keeping the per-channel step separate is what lets smoothing wrap any method (SmoothGrad
averages per-channel attributions over noisy copies, as Captum's NoiseTunnel does) and what
makes the maps comparable with Captum's, which are per channel.
"""

from __future__ import annotations

import torch

from ..base import Job, Method, chunked


class SaliencyMethod(Method):
    family = "saliency"

    def raw(self, job: Job, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-channel attributions float32 [N, C, H, W] for ``inputs`` [N, C, H, W]."""
        raise NotImplementedError

    def reduce(self, raw: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, H, W]: signed methods sum over channels."""
        return raw.sum(dim=1)

    def explain(self, job: Job) -> torch.Tensor:
        return self.reduce(chunked(lambda x, t: self.raw(job, x, t), job.chunk_size,
                                   job.inputs, job.targets))
