"""Receptive fields from the forward pass (convscope.inspect.receptive): against hand derivations,
against a brute-force gradient probe on real architectures, and for the cases it must refuse."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import (_get_current_dispatch_mode,
                                          _get_current_dispatch_mode_stack)

from convscope.inspect.receptive import LayerInfo, ReceptiveField, trace_layers
from convscope.models import build_architecture


def _fields(layers) -> dict[str, tuple]:
    """name -> (size, jump, start, global) of every layer, None for an unknown field."""
    return {l.name: l.receptive_field and (l.receptive_field.size[0], l.receptive_field.jump[0],
                                           l.receptive_field.start[0], l.receptive_field.global_)
            for l in layers}


# digits_cnn on 1x28x28, per axis (both axes alike), size / jump / start, from the rules
# size' = size + (k-1)*jump, jump' = jump*s, start' = start + ((k-1)/2 - p)*jump. Input: 1, 1, 0.
DIGITS = {
    "features.0.0": (3, 1, 0.0, False),    # conv3 p1: 1 + 2*1 = 3; start 0 + (1 - 1)*1 = 0
    "features.0.3": (5, 1, 0.0, False),    # conv3 p1: 3 + 2*1 = 5
    "features.1": (6, 2, 0.5, False),      # maxpool2 s2: 5 + 1*1 = 6; jump 2; 0 + (0.5 - 0)*1
    "features.2.0": (10, 2, 0.5, False),   # conv3 p1: 6 + 2*2 = 10; start 0.5 + 0*2
    "features.2.3": (14, 2, 0.5, False),   # conv3 p1: 10 + 2*2 = 14
    "features.3": (16, 4, 1.5, False),     # maxpool2 s2: 14 + 1*2 = 16; jump 4; 0.5 + 0.5*2
    "features.4.0": (24, 4, 1.5, False),   # conv3 p1: 16 + 2*4 = 24
    "features.4.3": (32, 4, 1.5, False),   # conv3 p1: 24 + 2*4 = 32
    "features": (32, 4, 1.5, False),       # the CAM layer: the last block's output
    "pool": (28, 28, 13.5, True),          # global average pool: the whole 28x28 input;
}                                          # jump/start of a 7x7 pool: 4*7, 1.5 + 3*4


def test_digits_fields_by_hand():
    layers = trace_layers(build_architecture("convscope:digits_cnn", 10, 1), (1, 28, 28))
    got = _fields(layers)
    assert {name: got[name] for name in DIGITS} == DIGITS
    # BN and ReLU keep the field of the conv before them; blocks finish after their children
    assert got["features.0.1"] == got["features.0.2"] == got["features.0.0"]
    assert got["features.4.5"] == got["features.4"] == got["features.4.3"]
    names = [l.name for l in layers]
    assert names[:7] == [f"features.0.{i}" for i in range(6)] + ["features.0"]
    assert names[-3:] == ["features.4", "features", "pool"]  # embed and fc are not spatial
    by_name = {l.name: l for l in layers}
    assert by_name["features"].shape == (128, 7, 7) and by_name["features.1"].shape == (32, 14, 14)
    field = by_name["features"].receptive_field
    assert field.box(0, 0) == (-14.0, -14.0, 18.0, 18.0)   # 1.5 -+ 15.5, x1 exclusive
    assert field.box(6, 2) == (-6.0, 10.0, 26.0, 42.0)     # x: 1.5 + 8; y: 1.5 + 24
    assert by_name["pool"].receptive_field.box(0, 0) == (0.0, 0.0, 28.0, 28.0)
    assert by_name["features.1"].to_dict() == {
        "name": "features.1", "type": "MaxPool2d", "shape": [32, 14, 14],
        "receptive_field": {"size": [6, 6], "jump": [2, 2], "start": [0.5, 0.5], "global": False}}


def test_served_models_channels_last(digits_model, lite0):
    """The loaded models (channels-last on the CPU) give the fields of a fresh contiguous build."""
    for model in (digits_model, lite0):
        first = next(m for m in model.module.modules() if isinstance(m, nn.Conv2d))
        assert first.weight.is_contiguous(memory_format=torch.channels_last)
        served = trace_layers(model.module, model.input_shape)
        fresh = build_architecture(model.spec.arch, model.spec.num_classes, model.input_shape[0])
        assert served == trace_layers(fresh, model.input_shape)
        cam = next(l for l in served if l.name == model.layers.cam.name)
        assert cam.shape == model.layers.cam_shape and not cam.receptive_field.global_
        assert all(l.receptive_field is not None for l in served)
        assert not any(m._forward_hooks for m in model.module.modules())


# ---- the gradient probe --------------------------------------------------------------------

def _positive(model: nn.Module) -> nn.Module:
    """Float64, eval, every conv filter strictly positive and summing to 1/2, batch norm the
    identity: every activation is positive and small (no ReLU or ReLU6 clips it), so no gradient
    inside the field vanishes by chance; max pooling still passes only its argmax, which the
    probe covers by its union over random inputs and channels."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                w = m.weight.abs() + 1e-3
                m.weight.copy_(w / w.sum(dim=(1, 2, 3), keepdim=True) / 2)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
    return model.double().eval()


def _probe(model: nn.Module, units, shape, repeats: int) -> list[tuple[int, int, int, int]]:
    """Per (layer, (y, x)) in units, the box (x0, y0, x1, y1) of input pixels where the gradient
    of that unit (summed over channels) is non-zero, union over `repeats` random inputs. One
    backward: batch item k * repeats + r holds input r, and only layer k's unit reads it."""
    modules, taps = dict(model.named_modules()), {}

    def hook(module, inputs, output, name):
        taps[name] = output
        return output.clone()  # so an in-place op downstream (out += identity) cannot alter it

    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: hook(m, i, o, n))
               for n, _ in units]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(repeats, *shape, generator=generator, dtype=torch.float64) + 0.1
    x = x.repeat(len(units), 1, 1, 1).requires_grad_()
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    sum(taps[n][k * repeats:(k + 1) * repeats, :, y, xx].sum()
        for k, (n, (y, xx)) in enumerate(units)).backward()
    seen = (x.grad != 0).any(1).reshape(len(units), repeats, *shape[1:]).any(1)
    boxes = []
    for k in range(len(units)):
        ys, xs = seen[k].nonzero(as_tuple=True)
        boxes.append((xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1))
    return boxes


def _clipped(field: ReceptiveField, y: int, x: int, height: int, width: int):
    x0, y0, x1, y1 = field.box(y, x)
    return (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))


def _check_probe(model, shape, units, repeats):
    layers = {l.name: l for l in trace_layers(model, shape)}
    probed = _probe(_positive(model), units, shape, repeats)
    for (name, (y, x)), box in zip(units, probed):
        clipped = _clipped(layers[name].receptive_field, y, x, *shape[1:])
        # equal: the field is neither smaller than what the unit reads nor larger inside the image
        assert clipped == box, (name, (y, x), layers[name].receptive_field, box)


def test_resnet18_matches_gradient_probe():
    # 3x112x112: maps 56, 28 (maxpool, layer1), 14 (layer2), 7 (layer3), 4 (layer4). Centre units
    # where the field fits the image; layer3.1's field (211) does not, so its corner unit (0, 0),
    # whose far edges (106) lie inside the image; layer4's (435) covers all of it from any unit:
    # there the probe can only confirm that the unit reads the whole image.
    units = [("maxpool", (14, 14)), ("layer1", (14, 14)),  # early; a residual block's output
             ("layer2.0", (7, 7)),                          # the downsampling residual block
             ("layer3.1", (0, 0)), ("layer4", (3, 3))]      # middle; the last conv block
    # two random inputs: max pooling passes only its argmax, and the union over two inputs and
    # 64 channels reaches the windows' edges
    _check_probe(torchvision.models.resnet18(weights=None), (3, 112, 112), units, repeats=2)


def test_efficientnet_lite0_matches_gradient_probe():
    # TF "same" padding (explicit F.pad, more after than before): start (1, 1) after the stem,
    # so the centre unit of the stem reads pixels 112..114, not 111..113. No max pooling and
    # positive weights: one input suffices. The last block's field (851) covers the image.
    units = [("conv_stem", (56, 56)), ("blocks.2.1", (14, 14)),  # early; a residual block
             ("blocks.3.2", (7, 7)), ("blocks.6", (3, 3))]       # middle residual; last block
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    layers = {l.name: l for l in trace_layers(model, (3, 224, 224))}
    assert layers["conv_stem"].receptive_field == ReceptiveField((3, 3), (2, 2), (1.0, 1.0))
    assert layers["blocks.3.2"].receptive_field == \
        ReceptiveField((147, 147), (16, 16), (15.0, 15.0))
    _check_probe(model, (3, 224, 224), units, repeats=1)


# ---- global fields, unknown ops, cleanup ---------------------------------------------------

class _Gate(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(conv1x1(mean over H, W of x))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))


def test_squeeze_excitation_makes_the_field_global():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Gate(4), nn.Conv2d(4, 4, 3, padding=1))
    got = {l.name: l.receptive_field for l in trace_layers(model, (3, 20, 30))}
    assert got["0"] == ReceptiveField((3, 3), (1, 1), (0.0, 0.0))
    assert got["1.fc"].global_ and got["1.fc"].size == (20, 30)       # the gate itself
    # the gated map keeps its unit grid (jump 1, start 0) but every unit sees the whole input
    assert got["1"] == ReceptiveField((20, 30), (1, 1), (0.0, 0.0), global_=True)
    assert got["2"].global_ and got["2"].box(3, 4) == (0.0, 0.0, 30.0, 20.0)

    layers = trace_layers(timm.create_model("mobilenetv3_small_050", pretrained=False), (3, 64, 64))
    first = next(i for i, l in enumerate(layers) if ".se." in l.name)  # the SE's own convs
    assert not any(l.receptive_field.global_ for l in layers[:first])
    assert all(l.receptive_field.global_ and l.receptive_field.size == (64, 64)
               for l in layers[first:])
    gated = next(l for l in layers if l.name == "blocks.0.0.se")     # x * gate: still 16x16
    assert gated.shape[1:] == (16, 16) and gated.receptive_field.jump == (4, 4)


class _Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        self.conv(x)
        raise RuntimeError("boom")


def test_nothing_survives_a_call_even_when_the_model_raises():
    model = _Boom()
    with pytest.raises(RuntimeError, match="boom"):
        trace_layers(model, (1, 8, 8))
    digits = build_architecture("convscope:digits_cnn", 10, 1)
    trace_layers(digits, (1, 28, 28))
    for m in (model, digits):
        assert not any(sub._forward_hooks or sub._forward_pre_hooks for sub in m.modules())
    assert _get_current_dispatch_mode() is None and not _get_current_dispatch_mode_stack()
    assert torch.is_grad_enabled() and digits.training is False


class _Apply(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_unknown_geometry_is_none_from_there_on():
    up = _Apply(lambda x: F.interpolate(x, scale_factor=2.0))    # changes H and W
    flip = _Apply(lambda x: x + torch.flip(x, (3,)))  # flip keeps H and W, moves units; x + unknown
    widen = _Apply(lambda x: torch.cat([x, x], 3))   # cat along W: units of two grids
    for op in (up, flip, widen):
        model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), op, nn.Conv2d(2, 2, 3, padding=1),
                              nn.AdaptiveAvgPool2d(1))
        got = [l.receptive_field for l in trace_layers(model, (1, 8, 8))]
        assert got[0] == ReceptiveField((3, 3), (1, 1), (0.0, 0.0)) and got[1:] == [None] * 3


def test_dilation_asymmetric_padding_and_default_strides_by_hand():
    # 1x20x30, per axis (y, x); the rules of the DIGITS table with dilation d: (k - 1) * d
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),       # size 1 + 2*2 = 5; start 0 + (2 - 2)
        _Apply(lambda x: F.pad(x, (1, 0, 2, 0))),        # left 1, top 2: start (0 - 2, 0 - 1)
        _Apply(lambda x: F.max_pool2d(x, 3)),            # stride = kernel: 5 + 2 = 7, jump 3,
        nn.AvgPool2d(3, 1, 1, count_include_pad=False),  # start (-2 + 1, -1 + 1); 7 + 2*3 = 13
        nn.MaxPool2d(2, stride=2, dilation=2))           # 13 + 1*2*3 = 19, jump 6, start + 1*3
    got = [(l.shape, l.receptive_field) for l in trace_layers(model, (1, 20, 30))]
    assert got == [((1, 20, 30), ReceptiveField((5, 5), (1, 1), (0.0, 0.0))),
                   ((1, 22, 31), ReceptiveField((5, 5), (1, 1), (-2.0, -1.0))),
                   ((1, 7, 10), ReceptiveField((7, 7), (3, 3), (-1.0, 0.0))),
                   ((1, 7, 10), ReceptiveField((13, 13), (3, 3), (-1.0, 0.0))),
                   ((1, 3, 4), ReceptiveField((19, 19), (6, 6), (2.0, 3.0)))]


def test_residual_union_adaptive_pools_and_unusual_outputs():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 5, padding=2), nn.Conv2d(1, 2, 1, stride=1)
            self.down = nn.AdaptiveAvgPool2d(4)      # 8 -> 4: an average pool 2, stride 2
            self.up = nn.AdaptiveAvgPool2d(3)        # 4 -> 3: overlapping bins, no one field
            self.head = nn.Linear(2 * 9, 3)

        def forward(self, x):
            y = self.b(x[:, :, :, :]) + self.a(x)  # the union, not the first input's field
            z = torch.zeros_like(y)                # reads no value of y: no field of its own
            z += y
            z = self.down(z)
            return self.head(self.up(z).flatten(1)), z

    layers = trace_layers(Net(), (1, 8, 8))
    got = {l.name: l.receptive_field for l in layers}
    assert got["b"] == ReceptiveField((1, 1), (1, 1), (0.0, 0.0))
    assert got["down"] == ReceptiveField((6, 6), (2, 2), (0.5, 0.5))   # (5 u 1) + 1 * 1; 0 + 0.5
    assert got["up"] is None and "head" not in got                    # head's output is 2-D
    assert [type(l) for l in layers] == [LayerInfo] * 4


def test_convnext_keeps_fields_through_nhwc_linear_layers():
    # conv_mlp=False: each block permutes to NHWC, runs LayerNorm and two nn.Linear (aten: view to
    # [B*H*W, C], addmm, view back) and permutes back, as torchvision's ConvNeXt does
    model = timm.create_model("convnext_atto", pretrained=False, conv_mlp=False)
    got = {l.name: l.receptive_field for l in trace_layers(model, (3, 64, 64))}
    assert got["stem"] == ReceptiveField((4, 4), (4, 4), (1.5, 1.5))  # conv 4 s4: 1 + 3; 0 + 1.5
    assert got["stages.0.blocks.0"] == ReceptiveField((28, 28), (4, 4), (1.5, 1.5))  # dw 7: 4 + 6*4
    assert got["stages.0.blocks.1"] == ReceptiveField((52, 52), (4, 4), (1.5, 1.5))  # 28 + 6*4
    assert "stages.0.blocks.0.mlp" not in got and "stages.0.blocks.0.norm" not in got  # NHWC maps
    assert all(f is not None for f in got.values())
