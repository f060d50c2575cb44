"""Input x gradient (Shrikumar et al. 2016). https://arxiv.org/abs/1605.01713

x * d score_c / d x, summed over channels; signed.
"""

from __future__ import annotations

import torch

from ..base import Job, input_gradients
from .base import SaliencyMethod


class InputXGradient(SaliencyMethod):
    name = "input_x_gradient"
    signed = True
    default_polarity = "absolute"

    def raw(self, job: Job, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return inputs * input_gradients(job.model.module, inputs, targets)
