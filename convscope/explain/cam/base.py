"""The CAM flow: one forward (and backward where needed) records the layer's activations A
[B, K, h, w] and their gradients; a method turns them into per-channel weights or a map; the
base applies ReLU and upsamples to the input's resolution."""

from __future__ import annotations

import torch

from ...errors import BadRequest
from ..base import Job, Method, activations_and_gradients, upsample


class CamMethod(Method):
    family = "cam"
    uses_gradients = True

    def weights(self, job: Job, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """Per-channel weights float [B, K]."""
        raise NotImplementedError

    def cam(self, job: Job, activations: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """float [B, h, w] before ReLU: the weighted sum of the channels by default."""
        return torch.einsum("bk,bkhw->bhw", self.weights(job, activations, grads), activations)

    def explain(self, job: Job) -> torch.Tensor:
        activations, grads, _ = activations_and_gradients(job, need_grads=self.uses_gradients)
        if activations.ndim != 4:
            raise BadRequest(f"layer {job.layer.label!r} gives {tuple(activations.shape)}, not a "
                             "[B,C,H,W] map: choose a convolutional layer")
        maps = self.cam(job, activations.float(), None if grads is None else grads.float())
        if not self.signed:
            maps = maps.clamp(min=0)
        return upsample(maps, tuple(job.inputs.shape[-2:]))
