"""Grad-CAM++ (Chattopadhyay et al. 2018). https://arxiv.org/abs/1710.11063

Channel weights sum ReLU(dS/dA) x alpha over the map, with alpha from the second- and
third-order terms of eq. 19 (as pytorch-grad-cam computes them; zero where the gradient is).
"""

from __future__ import annotations

import torch

from ..base import Job
from .base import CamMethod


class GradCamPlusPlus(CamMethod):
    name = "gradcam_pp"
    options = ("layer",)

    def weights(self, job: Job, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads ** 2
        g3 = g2 * grads
        sum_a = activations.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (grads.clamp(min=0) * alpha).sum(dim=(2, 3))
