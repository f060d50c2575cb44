"""Score-CAM (Wang et al. 2020). https://arxiv.org/abs/1910.01279

Each channel, upsampled and min-max scaled to [0, 1], masks the input; the target logits of the
masked inputs, softmaxed over channels, are the weights (pytorch-grad-cam's formulation). The
masked inputs are evaluated ``chunk_size`` at a time, never all channels at once. Masks are
upsampled with corner-aligned bilinear interpolation, as pytorch-grad-cam does. Channels whose
map is constant mask the input to zeros; one forward pass scores all of them.
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
        """Target logit of x masked by each channel: float [K]."""
        size = tuple(x.shape[-2:])
        flat = acts.flatten(1)
        constant = flat.amax(dim=1) == flat.amin(dim=1)
        scores = torch.empty(acts.shape[0], device=x.device)
        with torch.inference_mode():
            if constant.any():
                # A constant map min-max scales to an all-zero mask: every such channel masks the
                # input to zeros, so one forward answers for all of them (exact, and on
                # ReLU networks often half the channels).
                zero = job.model.forward(torch.zeros_like(x)[None], taps=False).logits
                scores[constant] = target_scores(zero, target[None])[0]
            varying = (~constant).nonzero().flatten()
            for start in range(0, len(varying), job.chunk_size):
                chosen = varying[start:start + job.chunk_size]
                # Corner-aligned bilinear upsampling, as the reference implementation masks.
                masks = F.interpolate(acts[chosen][:, None], size=size, mode="bilinear",
                                      align_corners=True)[:, 0]
                low = masks.amin(dim=(1, 2), keepdim=True)
                high = masks.amax(dim=(1, 2), keepdim=True)
                masks = (masks - low) / (high - low + 1e-8)
                logits = job.model.forward(x[None] * masks[:, None], taps=False).logits
                scores[chosen] = target_scores(logits, target.expand(len(masks)))
        return scores

    def weights(self, job: Job, activations: torch.Tensor, grads: None) -> torch.Tensor:
        return torch.stack([
            torch.softmax(self._channel_scores(job, x, t, a), dim=0)
            for x, t, a in zip(job.inputs, job.targets, activations)])
