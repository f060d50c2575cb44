"""Occlusion (Zeiler and Fergus 2014). https://arxiv.org/abs/1311.2901

Slide a ``window`` x ``window`` patch of ``fill`` over the input with ``stride`` (positions k x
stride, the last ones clipped at the border, as Captum does); each pixel's value is the mean
drop of the target logit over the windows that cover it; signed. Occluded copies are evaluated
``chunk_size`` at a time, never one by one.
"""

from __future__ import annotations

import math

import torch

from ...preprocess import pixel_value
from ..base import Job, target_scores
from .base import SaliencyMethod


def window_positions(size: int, window: int, stride: int) -> list[int]:
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


class Occlusion(SaliencyMethod):
    name = "occlusion"
    signed = True
    options = ("window", "stride", "fill")

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

    def _one(self, job: Job, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        window, stride, fill = job.options["window"], job.options["stride"], job.options["fill"]
        _, height, width = x.shape
        tops, lefts = torch.meshgrid(
            torch.tensor(window_positions(height, window, stride), device=x.device),
            torch.tensor(window_positions(width, window, stride), device=x.device), indexing="ij")
        tops, lefts = tops.flatten(), lefts.flatten()
        value = (pixel_value(fill, job.model.spec.input).to(x.device) if fill is not None
                 else torch.zeros(x.shape[0], 1, 1, device=x.device))
        total = torch.zeros(height, width, device=x.device)
        count = torch.zeros(height, width, device=x.device)
        with torch.inference_mode():
            clean = target_scores(job.model.module(x[None]), target[None])[0]
            for start in range(0, len(tops), job.chunk_size):
                masks = window_masks(tops[start:start + job.chunk_size],
                                     lefts[start:start + job.chunk_size], window, height, width)
                occluded = x[None] * (1 - masks) + value[None] * masks
                drops = clean - target_scores(job.model.module(occluded), target.expand(len(masks)))
                total += (drops[:, None, None] * masks[:, 0]).sum(dim=0)
                count += masks[:, 0].sum(dim=0)
        return total / count.clamp(min=1)

    def explain(self, job: Job) -> torch.Tensor:
        return torch.stack([self._one(job, x, t) for x, t in zip(job.inputs, job.targets)])
