"""Grad-CAM (Selvaraju et al. 2017). https://arxiv.org/abs/1610.02391

Channel weights are the spatial mean of d score_c / dA; ReLU of the weighted sum.
"""

from __future__ import annotations

import torch

from ..base import Job
from .base import CamMethod


class GradCam(CamMethod):
    name = "gradcam"
    options = ("layer",)

    def weights(self, job: Job, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))
