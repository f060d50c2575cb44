"""Properties of the explanation engine: scoped hooks, no per-request state, per-item targets,
bounded chunking that does not change answers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convscope.explain import METHODS
from tests.explain_helpers import explain, wrap

ALL = sorted(METHODS)
SMALL = {"samples": 4, "steps": 8, "window": 7, "stride": 7}


def _no_hooks(module: nn.Module) -> bool:
    return not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks
                   for m in module.modules())


@pytest.fixture(scope="module")
def digits_x():
    return torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("method", [m for m in ALL if m != "cam"])
def test_no_hook_survives_and_no_state_is_kept(digits_model, digits_x, method):
    before = copy.deepcopy(vars(METHODS[method]))
    maps = explain(digits_model, digits_x, [1, 2, 3], method, **SMALL)
    assert maps.shape == (3, 28, 28) and torch.isfinite(maps).all()
    assert _no_hooks(digits_model.module)
    assert vars(METHODS[method]).keys() == before.keys()


class Raises(nn.Module):
    """Fails after the CAM layer has run: hooks must still be removed."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        self.armed = False

    def forward(self, x):
        x = self.features(x)
        if self.armed:
            raise RuntimeError("model failure")
        return self.fc(self.pool(x).flatten(1))


@pytest.mark.parametrize("method", ALL)
def test_hooks_are_removed_when_the_model_raises(method):
    model = wrap(Raises(), 2, 1, 8)
    model.module.armed = True
    with pytest.raises(RuntimeError, match="model failure"):
        explain(model, torch.randn(1, 1, 8, 8), [0], method, **{**SMALL, "window": 2, "stride": 2})
    assert _no_hooks(model.module)


@pytest.mark.parametrize("method", ALL)
def test_each_item_gets_its_own_target(digits_model, digits_x, method):
    if method == "cam":
        pytest.skip("digits' head is not pool + linear (tested in the golden tests)")
    together = explain(digits_model, digits_x, [1, 7, 3], method, **SMALL)
    for i, target in enumerate([1, 7, 3]):
        alone = explain(digits_model, digits_x[i:i + 1], [target], method, **SMALL)
        assert torch.allclose(together[i], alone[0], rtol=1e-4, atol=1e-5), f"item {i}"


@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients", "occlusion", "scorecam"])
def test_chunk_size_bounds_memory_without_changing_answers(digits_model, digits_x, method):
    small = explain(digits_model, digits_x[:2], [4, 5], method, chunk=3, **SMALL)
    large = explain(digits_model, digits_x[:2], [4, 5], method, chunk=256, **SMALL)
    assert torch.allclose(small, large, rtol=1e-4, atol=1e-6)


def test_smoothgrad_is_seeded(digits_model, digits_x):
    a = explain(digits_model, digits_x[:1], [0], "smoothgrad", samples=4, seed=1)
    b = explain(digits_model, digits_x[:1], [0], "smoothgrad", samples=4, seed=1)
    c = explain(digits_model, digits_x[:1], [0], "smoothgrad", samples=4, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
