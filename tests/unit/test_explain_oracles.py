"""Maps agree with the peers' (Pearson >= 0.99 after the same reduction) on randomly
initialised ResNet-18, MobileNetV3, DenseNet-121 and EfficientNet-B0, at batch 1 and at batch 4
with mixed targets. Peers are test-only dependencies: Captum and pytorch-grad-cam."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import (GuidedBackprop, InputXGradient, IntegratedGradients, LayerGradCam,
                         NoiseTunnel, Occlusion, Saliency)
from captum.attr import LayerAttribution
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from convscope.explain.saliency.integrated_gradients import baseline_for
from convscope.models import resolve_tap
from tests.explain_helpers import explain, job, pearson, random_model

ARCHS = ["torchvision:resnet18", "torchvision:mobilenet_v3_small",
         "torchvision:densenet121", "torchvision:efficientnet_b0"]
BATCHES = {1: [7], 4: [1, 500, 7, 999]}
SIZE = 128


@pytest.fixture(scope="module", params=ARCHS, ids=lambda a: a.split(":")[1])
def model(request):
    return random_model(request.param, SIZE)


def _inputs(batch: int) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))


def _peer_module(model):
    peer = copy.deepcopy(model.module)
    for p in peer.parameters():
        p.requires_grad_(True)
    return peer.eval()


def _assert_agree(ours: torch.Tensor, theirs, threshold: float = 0.99) -> None:
    for i in range(ours.shape[0]):
        r = pearson(ours[i].detach(), theirs[i])
        assert r >= threshold, f"item {i}: Pearson {r:.4f}"


@pytest.mark.parametrize("batch", BATCHES)
def test_gradient_vs_captum_saliency(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    theirs = Saliency(_peer_module(model)).attribute(x, target=t, abs=True).amax(dim=1)
    _assert_agree(explain(model, x, t, "gradient"), theirs)


@pytest.mark.parametrize("batch", BATCHES)
def test_input_x_gradient_vs_captum(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    theirs = InputXGradient(_peer_module(model)).attribute(x, target=t).sum(dim=1)
    _assert_agree(explain(model, x, t, "input_x_gradient"), theirs)


@pytest.mark.parametrize("batch", BATCHES)
def test_guided_backprop_vs_captum(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    theirs = GuidedBackprop(_peer_module(model)).attribute(x, target=t).sum(dim=1)
    _assert_agree(explain(model, x, t, "guided_backprop"), theirs)


@pytest.mark.parametrize("batch", BATCHES)
def test_integrated_gradients_vs_captum(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    ours_job = job(model, x, t, "integrated_gradients", steps=16)
    baselines = torch.stack([baseline_for(ours_job, xi) for xi in x])
    theirs = IntegratedGradients(_peer_module(model)).attribute(
        x, baselines=baselines, target=t, n_steps=16, method="gausslegendre").sum(dim=1)
    _assert_agree(explain(model, x, t, "integrated_gradients", steps=16), theirs)


@pytest.mark.parametrize("batch", BATCHES)
def test_smoothgrad_vs_captum_noise_tunnel_same_draws(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    ours = explain(model, x, t, "smoothgrad", samples=6, noise=0.2, seed=11, chunk=4)
    tunnel = NoiseTunnel(Saliency(_peer_module(model)))
    for i in range(batch):
        torch.manual_seed(11)
        stdev = 0.2 * float(x[i].max() - x[i].min())
        theirs = tunnel.attribute(x[i:i + 1], nt_type="smoothgrad", nt_samples=6, stdevs=stdev,
                                  target=t[i], abs=True).amax(dim=1)
        _assert_agree(ours[i:i + 1], theirs, threshold=0.999)


@pytest.mark.parametrize("batch", BATCHES)
def test_occlusion_vs_captum(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    theirs = Occlusion(_peer_module(model)).attribute(
        x, sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16), baselines=0, target=t,
        perturbations_per_eval=16)[:, 0]
    _assert_agree(explain(model, x, t, "occlusion", window=32, stride=16), theirs)


def _peer_comparable_layer(model) -> str | None:
    """DenseNet applies F.relu(features, inplace=True) after its last block; pytorch-grad-cam then
    records the post-ReLU tensor (Captum and ConvScope record the layer's own output; Captum vs
    pytorch-grad-cam on that layer: Pearson 0.985). Compare one block earlier, where no in-place
    op follows. Other models: the auto layer (None)."""
    if model.layers.cam.name == "features" and "features.denseblock4" in dict(model.module.named_modules()):
        return "features.denseblock4"
    return None


def _grad_cam_peer(cls, model, x, t, layer=None, **attrs):
    peer = _peer_module(model)
    cam = cls(model=peer, target_layers=[dict(peer.named_modules())[layer or model.layers.cam.name]])
    for key, value in attrs.items():
        setattr(cam, key, value)
    with cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in t])


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("method, peer", [("gradcam", GradCAM), ("gradcam_pp", GradCAMPlusPlus),
                                          ("layercam", LayerCAM)])
def test_cams_vs_pytorch_grad_cam(model, batch, method, peer):
    x, t = _inputs(batch), BATCHES[batch]
    name = _peer_comparable_layer(model)
    ours = explain(model, x, t, method, layer=resolve_tap(model.module, name) if name else None)
    _assert_agree(ours, _grad_cam_peer(peer, model, x, t, layer=name))


@pytest.mark.parametrize("batch", BATCHES)
def test_gradcam_vs_captum_layer_gradcam(model, batch):
    x, t = _inputs(batch), BATCHES[batch]
    peer = _peer_module(model)
    layer = dict(peer.named_modules())[model.layers.cam.name]
    attr = LayerGradCam(peer, layer).attribute(x, target=t, relu_attributions=True)
    theirs = LayerAttribution.interpolate(attr, (SIZE, SIZE), interpolate_mode="bilinear")[:, 0]
    _assert_agree(explain(model, x, t, "gradcam"), theirs)


# Score-CAM runs one forward per channel: smaller inputs keep the cost down (maps of 2x2 to 4x4).
SCORECAM_SIZES = {"torchvision:resnet18": 64, "torchvision:mobilenet_v3_small": 128,
                  "torchvision:densenet121": 64, "torchvision:efficientnet_b0": 96}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("arch", list(SCORECAM_SIZES), ids=lambda a: a.split(":")[1])
def test_scorecam_vs_pytorch_grad_cam(arch, batch):
    size = SCORECAM_SIZES[arch]
    model = random_model(arch, size)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    t = BATCHES[batch]
    name = _peer_comparable_layer(model)
    ours = explain(model, x, t, "scorecam", chunk=64, layer=resolve_tap(model.module, name) if name else None)
    _assert_agree(ours, _grad_cam_peer(ScoreCAM, model, x, t, layer=name, batch_size=64))


def test_scorecam_constant_channels_shortcut_is_exact():
    """Dead (constant) channels are scored by one shared forward; the map must not change."""
    from torch import nn

    from tests.explain_helpers import wrap

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, padding=1)
    conv.weight.data[2:4] = 0.0  # two channels that are always exactly their (ReLU'd) bias
    conv.bias.data[2:4] = torch.tensor([-1.0, 0.5])
    model = wrap(nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)),
                 4, 3, 16)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = explain(model, x, [1, 3], "scorecam")
    theirs = _grad_cam_peer(ScoreCAM, model, x, [1, 3], batch_size=64)
    for i in range(2):
        scaled = (ours[i] - ours[i].min()) / (ours[i].max() - ours[i].min())
        assert torch.allclose(scaled, torch.from_numpy(theirs[i]), atol=1e-3)
