"""LIME on superpixels (Ribeiro et al. 2016). https://arxiv.org/abs/1602.04938

The input image is cut into SLIC superpixels (``segments``: SLIC's n_segments) on the network
input de-normalised to [0, 1]. ``samples`` perturbations switch a random subset of superpixels
off, each replaced by its own mean colour (the ``lime`` package's ``hide_color=None``); the
first is the image itself. Every perturbed copy is one forward pass of ``LoadedModel.forward``
(ONNX Runtime where the model runs on it), ``chunk_size`` copies at a time across the batch.
A weighted ridge (alpha 1, with intercept) of the target's softmax probability on the binary
masks gives one weight per superpixel; the map paints each superpixel with its weight; signed.

Like for like with ``lime.lime_image.LimeImageExplainer``: the masks are its draws (one
``RandomState(seed).randint(0, 2)`` of samples x superpixels, row 0 all on), the sample weights
its kernel ``sqrt(exp(-d^2 / 0.25^2))`` of the cosine distance d to the all-on row, and the ridge
sklearn's ``Ridge(alpha=1)`` with ``sample_weight``, solved here in closed form. ``num_features``
keeps the largest-|w| superpixels and ``positive_only`` the positive ones, as its
``get_image_and_mask`` does (positive first, then the top ``num_features`` of those).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..base import Job, spread
from .base import SaliencyMethod

KERNEL_WIDTH = 0.25
"""lime's default kernel width for images."""
RIDGE_ALPHA = 1.0
"""lime's default surrogate: ``Ridge(alpha=1, fit_intercept=True)``."""


def default_segments(size: tuple[int, int]) -> int:
    """SLIC's n_segments when the request does not say: 50 at 224 x 224 (and above 1,600
    pixels), about one per 32 pixels below (24 at 28 x 28), so small inputs get superpixels of
    a few dozen pixels, not single pixels."""
    return int(max(2, min(50, size[0] * size[1] // 32)))


def superpixels(image: torch.Tensor, mean, std, segments: int) -> np.ndarray:
    """SLIC labels int64 [H, W], 0..n-1 consecutive, of one network input float32 [C, H, W].
    SLIC runs on the de-normalised image in [0, 1] (RGB in CIELAB, compactness 10: skimage's
    defaults; grey on the intensity, where the same compactness would give a plain grid)."""
    from skimage.segmentation import slic  # scikit-image: imported by the one method that needs it

    pixels = image.detach().float().cpu().numpy() * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    pixels = np.clip(pixels, 0.0, 1.0).transpose(1, 2, 0).astype(np.float64)
    if pixels.shape[2] == 1:
        labels = slic(pixels[:, :, 0], n_segments=segments, compactness=0.1, start_label=0, channel_axis=None)
    else:
        labels = slic(pixels, n_segments=segments, compactness=10.0, start_label=0, channel_axis=-1)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape).astype(np.int64)


def lime_masks(samples: int, features: int, seed: int) -> np.ndarray:
    """int64 [samples, features] of 0/1, row 0 all ones: lime's ``data_labels`` draws."""
    data = np.random.RandomState(seed).randint(0, 2, samples * features).reshape(samples, features)
    data[0, :] = 1
    return data


def kernel_weights(masks: np.ndarray) -> np.ndarray:
    """float64 [samples]: lime's kernel of the cosine distance from each mask to the all-on row
    (1 - sqrt(on / n); an all-off row is at distance 1, as sklearn's cosine distance has it)."""
    distances = 1.0 - np.sqrt(masks.sum(axis=1) / masks.shape[1])
    return np.sqrt(np.exp(-(distances ** 2) / KERNEL_WIDTH ** 2))


def weighted_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Coefficients float64 [features] of sklearn's ``Ridge(alpha, fit_intercept=True)`` fitted
    with ``sample_weight``: centre on the weighted means, then (Xc' W Xc + alpha I) b = Xc' W yc."""
    x = x.astype(np.float64)
    total = weights.sum()
    xc = x - (weights @ x) / total
    yc = y - (weights @ y) / total
    gram = xc.T @ (xc * weights[:, None]) + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, xc.T @ (weights * yc))


def select(weights: np.ndarray, num_features: int | None, positive_only: bool) -> np.ndarray:
    """``weights`` with the superpixels lime's ``get_image_and_mask`` would drop set to 0."""
    kept = weights * (weights > 0) if positive_only else weights.copy()
    if num_features is not None and num_features < len(kept):
        order = np.argsort(-np.abs(kept), kind="stable")
        kept[order[num_features:]] = 0.0
    return kept


@dataclass(frozen=True)
class Surrogate:
    """One item's fit: SLIC ``labels`` int64 [H, W] (0..n-1) and ``weights`` float64 [n], the
    ridge coefficient of each superpixel after ``num_features`` / ``positive_only``."""

    labels: np.ndarray
    weights: np.ndarray


class Lime(SaliencyMethod):
    name = "lime"
    signed = True
    options = ("samples", "seed", "segments", "num_features", "positive_only")

    def explain(self, job: Job) -> torch.Tensor:
        return torch.stack([torch.from_numpy(fit.weights).float()[torch.from_numpy(fit.labels)]
                            for fit in self.surrogates(job)]).to(job.inputs.device)

    def surrogates(self, job: Job) -> list[Surrogate]:
        """The per-item fits ``explain`` paints."""
        x, samples, seed = job.inputs, job.options["samples"], job.options["seed"]
        spec = job.model.spec.input
        labels = [superpixels(image, spec.mean, spec.std, job.options["segments"]) for image in x]
        masks = [lime_masks(samples, int(lab.max()) + 1, seed) for lab in labels]
        probs = _target_probabilities(job, labels, masks)
        fits = []
        for lab, mask, p in zip(labels, masks, probs):
            w = weighted_ridge(mask, p, kernel_weights(mask))
            fits.append(Surrogate(lab, select(w, job.options["num_features"], job.options["positive_only"])))
        return fits


def _target_probabilities(job: Job, labels: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """float64 [B, samples]: the target's softmax probability on every perturbed copy, copies of
    all the batch's images ``chunk_size`` per forward pass of the serving runtime."""
    x = job.inputs
    pixel_labels = [torch.from_numpy(lab).to(x.device) for lab in labels]
    hidden = [_superpixel_means(image, lab) for image, lab in zip(x, pixel_labels)]
    probs = np.empty((len(x), masks[0].shape[0]), dtype=np.float64)
    with torch.inference_mode():
        for segments in spread(masks[0].shape[0], len(x), job.chunk_size):
            copies = torch.cat([_perturbed(x[i], hidden[i], pixel_labels[i], torch.from_numpy(masks[i][a:b]).to(x.device))
                                for i, a, b in segments])
            owners = torch.cat([torch.full((b - a,), i, device=x.device) for i, a, b in segments])
            p = job.model.forward(copies, taps=False).logits.float().softmax(dim=1)
            p = p.gather(1, job.targets[owners][:, None])[:, 0].double().cpu().numpy()
            start = 0
            for i, a, b in segments:
                probs[i, a:b] = p[start:start + b - a]
                start += b - a
    return probs


def _superpixel_means(image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """float32 [C, H, W]: every pixel replaced by its superpixel's mean (lime's fudged image)."""
    count = int(labels.max()) + 1
    flat = image.flatten(1)
    sums = torch.zeros(image.shape[0], count, device=image.device).index_add_(1, labels.flatten(), flat)
    sizes = torch.bincount(labels.flatten(), minlength=count).clamp(min=1)
    return (sums / sizes)[:, labels]


def _perturbed(image: torch.Tensor, hidden: torch.Tensor, labels: torch.Tensor,
               masks: torch.Tensor) -> torch.Tensor:
    """float32 [K, C, H, W]: ``image`` where each mask row [K, n] says on, ``hidden`` elsewhere."""
    on = masks.to(image.dtype)[:, labels][:, None]
    return hidden[None] + (image - hidden)[None] * on
