"""Vanilla gradient saliency (Simonyan, Vedaldi, Zisserman 2014).
https://arxiv.org/abs/1312.6034

|d score_c / d x|, the maximum over colour channels.
"""

from __future__ import annotations

import torch

from ..base import Job, input_gradients
from .base import SaliencyMethod


class Gradient(SaliencyMethod):
    name = "gradient"

    def raw(self, job: Job, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return input_gradients(job.model.module, inputs, targets).abs()

    def reduce(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.amax(dim=1)
