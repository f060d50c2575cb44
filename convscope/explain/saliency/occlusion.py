"""Occlusion (Zeiler and Fergus 2014). https://arxiv.org/abs/1311.2901

Slide a ``window`` x ``window`` patch of ``fill`` over the input with ``stride`` (positions k x
stride, the last ones clipped at the border, as Captum does); each pixel's value is the mean
drop of the target logit over the windows that cover it; signed. Occluded copies of all the
batch's images are evaluated ``chunk_size`` at a time, never one by one.
"""

from __future__ import annotations

import math

import torch

from ...preprocess import pixel_value
from ..base import Job, spread, target_scores
from .base import SaliencyMethod


def window_positions(size: int, window: int, stride: int) -> list[int]:
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


def window_count(size: tuple[int, int], window: int, stride: int) -> int:
    """How many windows cover an input of ``size`` (H, W): one forward pass each."""
    return len(window_positions(size[0], window, stride)) * len(window_positions(size[1], window, stride))


def window_masks(tops: torch.Tensor, lefts: torch.Tensor, window: int,
                 height: int, width: int) -> torch.Tensor:
    """float [K, 1, H, W]: 1 inside each window (clipped at the border), 0 elsewhere."""
    rows = torch.arange(height, device=tops.device)
    cols = torch.arange(width, device=tops.device)
    in_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + window)
    in_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + window)
    return (in_rows[:, :, None] & in_cols[:, None, :]).float()[:, None]


class Occlusion(SaliencyMethod):
    name = "occlusion"
    signed = True
    options = ("window", "stride", "fill")

    def explain(self, job: Job) -> torch.Tensor:
        x, targets = job.inputs, job.targets
        window, stride, fill = job.options["window"], job.options["stride"], job.options["fill"]
        height, width = x.shape[-2:]
        tops, lefts = torch.meshgrid(
            torch.tensor(window_positions(height, window, stride), device=x.device),
            torch.tensor(window_positions(width, window, stride), device=x.device), indexing="ij")
        tops, lefts = tops.flatten(), lefts.flatten()
        value = (pixel_value(fill, job.model.spec.input).to(x.device) if fill is not None
                 else torch.zeros(x.shape[1], 1, 1, device=x.device))
        total = torch.zeros(len(x), height, width, device=x.device)
        count = window_masks(tops, lefts, window, height, width)[:, 0].sum(dim=0)
        with torch.inference_mode():
            clean = target_scores(job.model.forward(x, taps=False).logits, targets)
            # Occluded copies of all the batch's images, chunk_size per forward pass.
            for segments in spread(len(tops), len(x), job.chunk_size):
                owners = torch.cat([torch.full((b - a,), item, device=x.device) for item, a, b in segments])
                masks = torch.cat([window_masks(tops[a:b], lefts[a:b], window, height, width)
                                   for _, a, b in segments])
                occluded = x[owners] * (1 - masks) + value[None] * masks
                drops = clean[owners] - target_scores(job.model.forward(occluded, taps=False).logits,
                                                     targets[owners])
                total.index_add_(0, owners, drops[:, None, None] * masks[:, 0])
        return total / count.clamp(min=1)
