"""Score-CAM (Wang et al. 2020). https://arxiv.org/abs/1910.01279

Each channel, upsampled and min-max scaled to [0, 1], masks the input; the target logits of the
masked inputs, softmaxed over channels, are the weights (pytorch-grad-cam's formulation). The
masked inputs are evaluated ``chunk_size`` at a time, never all channels at once. Masks are
upsampled with corner-aligned bilinear interpolation, as pytorch-grad-cam does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base import Job, target_scores
from .base import CamMethod


class ScoreCam(CamMethod):
    name = "scorecam"
    uses_gradients = False
    options = ("layer",)

    def _channel_scores(self, job: Job, x: torch.Tensor, target: torch.Tensor,
                        acts: torch.Tensor) -> torch.Tensor:
        scores = []
        size = tuple(x.shape[-2:])
        with torch.inference_mode():
            for start in range(0, acts.shape[0], job.chunk_size):
                # Corner-aligned bilinear upsampling, as the reference implementation masks.
                masks = F.interpolate(acts[start:start + job.chunk_size][:, None], size=size,
                                      mode="bilinear", align_corners=True)[:, 0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                high = masks.amax(dim=(1, 2), keepdim=True)
                masks = (masks - low) / (high - low + 1e-8)
                logits = job.model.module(x[None] * masks[:, None])
                scores.append(target_scores(logits, target.expand(len(masks))))
        return torch.cat(scores)

    def weights(self, job: Job, activations: torch.Tensor, grads: None) -> torch.Tensor:
        return torch.stack([
            torch.softmax(self._channel_scores(job, x, t, a), dim=0)
            for x, t, a in zip(job.inputs, job.targets, activations)])
