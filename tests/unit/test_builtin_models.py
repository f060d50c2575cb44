"""The built-in models are what the build says they are."""

from __future__ import annotations

import json

import torch

from convscope.build import digits
from convscope.envelope import Payload
from tests.imaging import rendered_digits


def test_digits_held_out_accuracy_is_at_least_97_percent(digits_model, store):
    images, labels = digits.load_digits()
    train_idx, held_idx = digits.split(labels)
    assert len(held_idx) == 1000 and len(train_idx) == 4000
    assert set(train_idx).isdisjoint(held_idx)
    assert all((labels[held_idx] == d).sum() == 100 for d in range(10))  # stratified
    x = digits.tensors(images[held_idx], digits_model.spec)
    accuracy = digits.accuracy(digits_model.module, x, torch.from_numpy(labels[held_idx]))
    assert accuracy >= 0.97
    report = json.loads((store / "build" / "digits.json").read_text())
    assert abs(report["held_out_accuracy"] - accuracy) < 1e-6, "the build's report is stale"


def test_digits_outside_mnist_are_recognised_far_above_chance(endpoints):
    samples = rendered_digits(count_per_digit=4)
    results = endpoints["digits"].handle([Payload({"body": data}) for _, data in samples])
    correct = sum(r.predictions[0].class_index == d for (d, _), r in zip(samples, results))
    assert correct / len(samples) >= 0.6, f"{correct}/{len(samples)} typeset digits (chance: 10%)"


def test_efficientnet_weights_map_onto_timm(lite0):
    assert lite0.spec.arch == "timm:tf_efficientnet_lite0"
    assert sum(p.numel() for p in lite0.module.parameters()) == 4_652_008
    assert lite0.spec.labels[285] == "Egyptian cat"
