"""Every method on a hand-weighted tiny CNN, against maps computed by hand.

Model: A1 = relu(x), A2 = relu(-x) (1x1 conv with weights +1/-1), logits = W [mean A1, mean A2]
with W = [[2, 1], [-1, 3]]; x = [[1, -2], [3, 0]], so A1 = [[1, 0], [3, 0]], A2 = [[0, 2], [0, 0]],
logit 0 = 2.5, logit 1 = 0.5. For class 0, dS/dA1 = 2/4 and dS/dA2 = 1/4 everywhere.
"""

from __future__ import annotations

import math

import pytest
import torch

from convscope.errors import BadRequest
from tests.explain_helpers import TINY_INPUT, explain, tiny

# Score-CAM: the min-max scaled maps mask x to [[1/3, 0], [3, 0]] (logit 0 = 2 * (10/3) / 4 = 5/3)
# and [[0, -2], [0, 0]] (logit 0 = 1 * 2 / 4 = 1/2); softmax([5/3, 1/2]) = [S, 1 - S].
S = 1 / (1 + math.exp(-7 / 6))

EXPECTED = {
    # method: (target, map)
    "gradient": (0, [[0.5, 0.25], [0.5, 0.0]]),               # |dS/dx| = |2[x>0] - [x<0]| / 4
    "input_x_gradient": (0, [[0.5, 0.5], [1.5, 0.0]]),        # x * dS/dx
    "integrated_gradients": (0, [[0.5, 0.5], [1.5, 0.0]]),    # piecewise linear from the 0 baseline
    "guided_backprop": (0, [[0.5, -0.25], [0.5, 0.0]]),       # dS/dA > 0 at both ReLUs: passes; -1 conv weight
    "occlusion": (0, [[0.5, 0.5], [1.5, 0.0]]),               # drop of logit 0 when each pixel is set to 0
    "cam": (1, [[-1.0, 6.0], [-3.0, 0.0]]),                   # W[1] . A, signed
    "gradcam": (0, [[0.5, 0.5], [1.5, 0.0]]),                 # relu(0.5 A1 + 0.25 A2)
    "gradcam_pp": (0, [[0.5, 0.8], [1.5, 0.0]]),              # weights 4*0.5/4 = 0.5 and 4*0.25/2.5 = 0.4
    "layercam": (0, [[0.5, 0.5], [1.5, 0.0]]),                # relu(sum relu(dS/dA) * A)
    "scorecam": (0, [[S, 2 * (1 - S)], [3 * S, 0.0]]),        # softmax weights on A1, A2
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_hand_computed_maps(method):
    target, expected = EXPECTED[method]
    maps = explain(tiny(), TINY_INPUT, [target], method, window=1, stride=1, steps=64)
    assert maps.shape == (1, 2, 2)
    assert torch.allclose(maps[0], torch.tensor(expected), atol=1e-5), maps[0]


def test_smoothgrad_without_noise_is_the_gradient():
    model = tiny()
    plain = explain(model, TINY_INPUT, [0], "gradient")
    smooth = explain(model, TINY_INPUT, [0], "smoothgrad", noise=0.0, samples=5)
    assert torch.allclose(plain, smooth)


def test_cam_refuses_a_head_that_is_not_pool_plus_linear(digits_model):
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(BadRequest, match="global-average-pool \\+ linear"):
        explain(digits_model, x, [3], "cam")
