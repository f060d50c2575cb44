"""Explanations mean something on the real model (efficientnet_lite0, scikit-image photos).

* Deletion: replacing the 20% most salient pixels (by a blurred copy) lowers the target logit
  more than replacing a random 20% (mean of 10 draws), for every CAM method, occlusion,
  integrated gradients and SmoothGrad (protocol: tests/explain_helpers.deletion_drops).
* Model randomisation (Adebayo et al. 2018): maps of a copy with every layer re-initialised
  differ from the trained model's (Spearman rank correlation of absolute maps < 0.5) for
  gradient, SmoothGrad and Grad-CAM.

Where a method fails on a photo, the failure is measured, documented (BENCHMARKS.md,
"Explanation quality") and marked here as a strict xfail with its numbers: if it ever passes,
or a passing case fails, the suite says so. Nothing is tuned to pass.
"""

from __future__ import annotations

import pytest
import torch

from convscope.config import EngineConfig
from convscope.explain import METHODS
from convscope.preprocess import decode_image, prepare_input
from convscope.render import apply_polarity
from tests.explain_helpers import deletion_drops, explain, randomized_copy, spearman
from tests.imaging import photo_bytes

PHOTOS = ("chelsea", "coffee", "astronaut")
DELETION = ("cam", "gradcam", "gradcam_pp", "scorecam", "layercam", "occlusion",
            "integrated_gradients", "smoothgrad")
RANDOMISATION = ("gradient", "smoothgrad", "gradcam")
OPTIONS = {"samples": 16, "steps": 32, "window": 28, "stride": 14}

# Measured 2026-11-22 (salient vs random fall of the target logit); see BENCHMARKS.md.
CAM_NOTE = ("the CAM family's top region (the face / the astronaut's head) is not where this "
            "model's target evidence is most concentrated")
MEASURED_DELETION_FAILURES = {
    "chelsea": {"cam": (-1.17, 2.28), "gradcam": (-1.17, 2.28), "gradcam_pp": (-1.56, 2.28),
                "scorecam": (-0.93, 2.28), "layercam": (-1.59, 2.28), "occlusion": (1.58, 2.28),
                "integrated_gradients": (1.85, 2.28)},
    "astronaut": {"cam": (-0.07, 3.71), "gradcam": (-0.07, 3.71), "gradcam_pp": (-0.01, 3.71),
                  "scorecam": (1.55, 3.71), "layercam": (0.05, 3.71), "smoothgrad": (2.93, 3.71)},
}
KNOWN_DELETION_FAILURES = {
    (photo, method): f"{salient} vs {random}" + (f": {CAM_NOTE}" if METHODS[method].family == "cam" else "")
    for photo, methods in MEASURED_DELETION_FAILURES.items()
    for method, (salient, random) in methods.items()}
KNOWN_RANDOMISATION_FAILURES = {
    ("coffee", "gradcam"): "Spearman 0.55: the randomised network's Grad-CAM keeps the cup's layout",
}


def _cases(methods, known):
    return [pytest.param(photo, method, marks=pytest.mark.xfail(strict=True, reason=known[photo, method]))
            if (photo, method) in known else (photo, method)
            for photo in PHOTOS for method in methods]


@pytest.fixture(scope="module")
def photos(lite0):
    out = {}
    for name in PHOTOS:
        x = prepare_input(decode_image(photo_bytes(name), EngineConfig()).image, lite0.spec.input)[0][None]
        with torch.inference_mode():
            out[name] = (x, int(lite0.module(x).argmax()))
    return out


@pytest.fixture(scope="module")
def shuffled(lite0):
    return randomized_copy(lite0)


@pytest.mark.parametrize("photo, method", _cases(DELETION, KNOWN_DELETION_FAILURES))
def test_deleting_salient_pixels_hurts_more_than_random(lite0, photos, photo, method):
    x, target = photos[photo]
    saliency = apply_polarity(explain(lite0, x, [target], method, **OPTIONS)[0],
                              METHODS[method].default_polarity)
    salient, random = deletion_drops(lite0, x, target, saliency)
    assert salient > random, f"{photo}/{method}: salient {salient:.2f} <= random {random:.2f}"


@pytest.mark.parametrize("photo, method", _cases(RANDOMISATION, KNOWN_RANDOMISATION_FAILURES))
def test_maps_depend_on_the_learned_weights(lite0, shuffled, photos, photo, method):
    x, target = photos[photo]
    trained = explain(lite0, x, [target], method, **OPTIONS)[0].abs()
    randomised = explain(shuffled, x, [target], method, **OPTIONS)[0].abs()
    rho = spearman(trained, randomised)
    assert rho < 0.5, f"{photo}/{method}: Spearman {rho:.3f} between trained and randomised maps"
