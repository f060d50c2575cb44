"""Are the maps meaningful on the real model? Deletion and model-randomisation figures for
every method on efficientnet_lite0 and scikit-image photos.

    .venv/bin/python benchmarks/explanation_quality.py [--write]

Deletion (protocol in tests/explain_helpers.deletion_drops): the fall of the target logit when
the 20% most salient pixels are replaced by a blurred copy, against the mean fall for 10
random 20% sets. Randomisation (Adebayo et al. 2018): Spearman rank correlation between the
absolute maps of the trained model and of a copy with every layer re-initialised (low is
good: the map depends on what was learned).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402

from convscope.config import EngineConfig  # noqa: E402
from convscope.explain import METHODS  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.preprocess import decode_image, prepare_input  # noqa: E402
from convscope.render import apply_polarity  # noqa: E402
from convscope.spec import load_spec  # noqa: E402
from tests.explain_helpers import deletion_drops, explain, randomized_copy, spearman  # noqa: E402
from tests.imaging import photo_bytes  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut")
OPTIONS = {"samples": 16, "steps": 32, "window": 28, "stride": 14}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="append the tables to BENCHMARKS.md")
    args = parser.parse_args()
    model = load_model(load_spec(REPO / "model_store" / "efficientnet_lite0.toml"))
    shuffled = randomized_copy(model)
    deletion, randomisation = {}, {}
    for photo in PHOTOS:
        x = prepare_input(decode_image(photo_bytes(photo), EngineConfig()).image, model.spec.input)[0][None]
        with torch.inference_mode():
            target = int(model.module(x).argmax())
        for name, method in METHODS.items():
            trained = explain(model, x, [target], name, **OPTIONS)[0]
            deletion[photo, name] = deletion_drops(model, x, target, apply_polarity(trained, method.default_polarity))
            if name != "cam" or model.layers.cam_feeds_head:
                randomised = explain(shuffled, x, [target], name, **OPTIONS)[0]
                randomisation[photo, name] = spearman(trained.abs(), randomised.abs())
            print(f"{photo:9s} {name:21s} deletion {deletion[photo, name][0]:6.2f} vs random "
                  f"{deletion[photo, name][1]:6.2f}   randomisation rho {randomisation[photo, name]:5.2f}", flush=True)
    header = "| method | " + " | ".join(f"{p}: salient / random drop" for p in PHOTOS) + " | holds on | " \
             + " | ".join(f"{p}: rho" for p in PHOTOS) + " |"
    lines = [header, "|" + "---|" * (2 + 2 * len(PHOTOS))]
    for name in METHODS:
        cells = [f"{deletion[p, name][0]:.2f} / {deletion[p, name][1]:.2f}" for p in PHOTOS]
        held = sum(deletion[p, name][0] > deletion[p, name][1] for p in PHOTOS)
        rhos = [f"{randomisation[p, name]:.2f}" for p in PHOTOS]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {held}/{len(PHOTOS)} | " + " | ".join(rhos) + " |")
    text = (f"\n## Explanation quality on efficientnet_lite0 ({time.strftime('%Y-%m-%d')})\n\n"
            "Command: `.venv/bin/python benchmarks/explanation_quality.py --write`. Targets: each photo's "
            "top-1 class (chelsea 285 Egyptian cat, coffee 967 espresso, astronaut 450). Deletion: fall of "
            "the target logit when the 20% most salient pixels are replaced by a blurred copy of the image, "
            "against the mean fall over 10 random 20% sets (higher salient than random = the map found what "
            "matters). Randomisation: Spearman rank correlation of absolute maps, trained model vs every layer "
            "re-initialised (below 0.5 = the map depends on learned weights). Options: SmoothGrad 16 samples, "
            "IG 32 steps, occlusion window 28 stride 14.\n\n" + "\n".join(lines) + "\n")
    publish(text, args.write)


if __name__ == "__main__":
    main()
