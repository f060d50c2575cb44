"""Guided backpropagation (Springenberg et al. 2015). https://arxiv.org/abs/1412.6806

The input gradient with only positive gradients passed back through each ReLU (and ReLU6);
summed over channels; signed. Other activations (SiLU, Hardswish) pass gradients unchanged,
as in Captum's GuidedBackprop.
"""

from __future__ import annotations

import torch

from ..base import Job, guided_relus, input_gradients
from .base import SaliencyMethod


class GuidedBackprop(SaliencyMethod):
    name = "guided_backprop"
    signed = True
    default_polarity = "absolute"

    def raw(self, job: Job, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with guided_relus(job.model.module):
            return input_gradients(job.model.module, inputs, targets)
