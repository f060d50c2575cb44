"""Layer-CAM (Jiang et al. 2021). https://ieeexplore.ieee.org/document/9462463

Each location weighted by its own positive gradient: ReLU(sum_k ReLU(dS/dA_k) * A_k).
"""

from __future__ import annotations

import torch

from ..base import Job
from .base import CamMethod


class LayerCam(CamMethod):
    name = "layercam"
    options = ("layer",)

    def cam(self, job: Job, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (grads.clamp(min=0) * activations).sum(dim=1)
