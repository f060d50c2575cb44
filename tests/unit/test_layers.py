"""Layer discovery on randomly initialised instances of every supported family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.errors import NotFound
from convscope.models import build_architecture, capture, discover_layers, resolve_tap

# arch, expected feature tap, feature dim, expected CAM layer
CASES = [
    ("torchvision:resnet18", "fc:input", 512, "layer4"),
    ("torchvision:vgg11", "classifier.6:input", 4096, "features"),
    ("torchvision:densenet121", "classifier:input", 1024, "features"),
    ("torchvision:mobilenet_v2", "classifier.1:input", 1280, "features"),
    ("torchvision:mobilenet_v3_small", "classifier.3:input", 1024, "features"),
    ("torchvision:efficientnet_b0", "classifier.1:input", 1280, "features"),
    ("torchvision:convnext_tiny", "classifier.2:input", 768, "features"),
    ("timm:resnet18", "fc:input", 512, "layer4"),
    ("timm:densenet121", "classifier:input", 1024, "features"),
    ("timm:mobilenetv2_100", "classifier:input", 1280, "bn2"),
    ("timm:mobilenetv3_small_100", "classifier:input", 1024, "blocks"),
    ("timm:efficientnet_b0", "classifier:input", 1280, "bn2"),
    ("timm:tf_efficientnet_lite0", "classifier:input", 1280, "bn2"),
    ("timm:convnext_atto", "head.fc:input", 320, "stages"),
]


@pytest.mark.parametrize("arch, feature, dim, cam", CASES, ids=[c[0] for c in CASES])
def test_auto_discovery(arch, feature, dim, cam):
    torch.manual_seed(0)
    model = build_architecture(arch, num_classes=1000)
    layers = discover_layers(model, (3, 64, 64), num_classes=1000)
    assert layers.feature.label == feature
    assert layers.feature_dim == dim
    assert layers.cam.label == cam
    channels, height, width = layers.cam_shape
    assert height * width > 1 and channels >= 32
    assert not any(m._forward_hooks for m in model.modules()), "discovery left a hook behind"


def test_own_digits_architecture():
    layers = discover_layers(build_architecture("convscope:digits_cnn", 10, 1), (1, 28, 28), 10)
    assert (layers.feature.label, layers.feature_dim, layers.cam.label, layers.cam_shape) == \
        ("fc:input", 128, "features", (128, 7, 7))


def test_named_layers_override_auto():
    model = build_architecture("torchvision:resnet18", 10)
    layers = discover_layers(model, (3, 64, 64), 10, feature="avgpool", cam="layer3")
    assert layers.feature.label == "avgpool" and layers.feature_dim == 512
    assert layers.cam.label == "layer3" and layers.cam_shape == (256, 4, 4)


def test_unknown_layer_is_not_found_with_hints():
    model = build_architecture("torchvision:resnet18", 10)
    with pytest.raises(NotFound, match="layer4.9"):
        resolve_tap(model, "layer4.9")


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        self.conv(x)
        raise RuntimeError("boom")


def test_capture_removes_hooks_even_when_the_model_raises():
    model = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        with capture({"c": resolve_tap(model, "conv")}) as seen:
            model(torch.zeros(1, 3, 8, 8))
    assert "c" in seen
    assert not model.conv._forward_hooks
