"""Explanation latency per method against the peers' defaults, side by side in one run.

    python benchmarks/explain_speed.py [--device cuda] [--models efficientnet_lite0 resnet50]
                                       [--batches 1 16] [--quick] [--write] [--out FILE]

ConvScope's engine (``METHODS[m].explain``, maps on the device) against:
Grad-CAM / Grad-CAM++ / Layer-CAM / Score-CAM: pytorch-grad-cam with its defaults (Score-CAM
batch_size 16); gradient, guided backprop, input x gradient: Captum; SmoothGrad (50 samples) and
integrated gradients (50 steps): Captum at the same internal batch size as ConvScope's chunk
(NoiseTunnel nt_samples_batch_size, IG internal_batch_size; the chunk is the service's default
on the device unless --chunk says); occlusion (window 28, stride 14):
Captum with perturbations_per_eval=1 (its default). "floor" is 50 batched forward + input-gradient
passes (the compute SmoothGrad and IG cannot avoid); for occlusion, one forward pass of the
serving runtime per window (reported, not a goal). The peers get the module as its user
would hold it (contiguous NCHW), ConvScope's own twin (channels-last on the CPU). Goals (issue 4): Grad-CAM >= 2x
pytorch-grad-cam; SmoothGrad and IG no slower than Captum and within 1.2x of the floor;
occlusion >= 3x Captum; Score-CAM >= 3x pytorch-grad-cam. LIME (issue 16, 1000 samples, 50
SLIC superpixels, batch 1 only: the lime package explains one image a call): the lime package's
LimeImageExplainer with ConvScope's segmentation, hide_color=None, its default batch_size=10 and
classifier_fn the PyTorch module (as its user holds it; goal >= 3x); two more rows report it with
batch_size = ConvScope's chunk, and with classifier_fn on ConvScope's own ONNX Runtime session
(the same forward as ours: what is left is lime's per-sample Python loop). Floor: 1000 forward
passes of the serving runtime.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402
from convscope.config import EngineConfig  # noqa: E402
from convscope.explain import METHODS, Job  # noqa: E402
from convscope.explain.base import input_gradients  # noqa: E402
from convscope.explain.saliency.occlusion import window_count  # noqa: E402
from convscope.models import LoadedModel, build_architecture, discover_layers, load_model  # noqa: E402
from convscope.spec import load_spec  # noqa: E402

CHUNK: int | None = None
"""ConvScope's explain chunk (and the peers' internal batch size); None: the service's default."""
OPTIONS = {"samples": 50, "noise": 0.15, "seed": 0, "steps": 50, "baseline": "black",
           "window": 28, "stride": 14, "fill": None}
FLOOR_GOALS = ("smoothgrad", "integrated_gradients")
FLOORED = (*FLOOR_GOALS, "occlusion", "lime")
GOALS = {"gradcam": ("pytorch-grad-cam", 2.0), "scorecam": ("pytorch-grad-cam", 3.0),
         "occlusion": ("Captum ppe=1", 3.0), "smoothgrad": ("Captum", 1.0),
         "integrated_gradients": ("Captum", 1.0), "lime": ("lime bs=10, PyTorch", 3.0)}
LIME_OPTIONS = {"samples": 1000, "seed": 0, "segments": 50, "num_features": None, "positive_only": False}


def model_for(name: str, device: torch.device) -> LoadedModel:
    if name == "efficientnet_lite0":
        loaded = load_model(load_spec(REPO / "model_store" / "efficientnet_lite0.toml"), device)
        return loaded
    torch.manual_seed(0)
    module = build_architecture(f"torchvision:{name}", 1000).to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    base = load_spec(REPO / "model_store" / "efficientnet_lite0.toml")
    layers = discover_layers(module, (3, 224, 224), 1000)
    from dataclasses import replace
    return LoadedModel(replace(base, name=name, arch=f"torchvision:{name}"), module, device, layers)


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def chunk_for(device: torch.device) -> int:
    return CHUNK or EngineConfig().chunk_for(device.type)


def peer_module(model: LoadedModel):
    """The module as a peer's user holds it: trainable parameters, contiguous NCHW weights."""
    peer = copy.deepcopy(model.module).to(memory_format=torch.contiguous_format)
    for p in peer.parameters():
        p.requires_grad_(True)
    return peer.eval()


def peer_call(method: str, model: LoadedModel, x, targets, chunk: int):
    """A zero-argument callable running the peer's implementation, or None."""
    import captum.attr as ca
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    peer = peer_module(model)
    t = targets.tolist()
    grad_cams = {"gradcam": GradCAM, "gradcam_pp": GradCAMPlusPlus, "layercam": LayerCAM, "scorecam": ScoreCAM}
    if method in grad_cams:
        layer = dict(peer.named_modules())[model.layers.cam.name]

        def run():
            with grad_cams[method](model=peer, target_layers=[layer]) as cam:
                return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in t])
        return run
    if method == "gradient":
        return lambda: ca.Saliency(peer).attribute(x, target=t, abs=True)
    if method == "guided_backprop":
        return lambda: ca.GuidedBackprop(peer).attribute(x, target=t)
    if method == "input_x_gradient":
        return lambda: ca.InputXGradient(peer).attribute(x, target=t)
    if method == "smoothgrad":
        tunnel = ca.NoiseTunnel(ca.Saliency(peer))
        return lambda: tunnel.attribute(x, nt_type="smoothgrad", nt_samples=50, stdevs=0.5, target=t,
                                        nt_samples_batch_size=max(1, chunk // len(t)), abs=True)
    if method == "integrated_gradients":
        return lambda: ca.IntegratedGradients(peer).attribute(
            x, baselines=x * 0, target=t, n_steps=50, internal_batch_size=chunk)
    if method == "occlusion":
        return lambda: ca.Occlusion(peer).attribute(
            x, sliding_window_shapes=(3, 28, 28), strides=(3, 14, 14), baselines=0, target=t,
            perturbations_per_eval=1)
    if method == "lime":
        return lime_peer(model, x, targets, 10, runtime="torch")
    return None


def lime_peer(model: LoadedModel, x, targets, batch_size: int, runtime: str):
    """The lime package on each image of ``x`` with ConvScope's SLIC labels and the same options;
    ``runtime``: "torch" (the PyTorch module, contiguous NCHW) or "onnx" (ConvScope's session).
    Where its time goes: the classifier calls (1000 forwards, as ours), plus per sample a deep
    copy of the image and one boolean mask pass over the image per hidden superpixel."""
    import numpy as np
    from lime.lime_image import LimeImageExplainer

    from convscope.explain.saliency.lime import superpixels

    spec = model.spec.input
    mean, std = np.asarray(spec.mean), np.asarray(spec.std)
    peer = peer_module(model)

    def classifier(batch):
        rows = torch.from_numpy(((batch - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)).to(x.device)
        with torch.inference_mode():
            logits = peer(rows) if runtime == "torch" else model.forward(rows, taps=False).logits
        return logits.float().softmax(dim=1).cpu().numpy()

    def run():
        for image, target in zip(x, targets.tolist()):
            labels = superpixels(image, spec.mean, spec.std, LIME_OPTIONS["segments"])
            pixels = (image.cpu().numpy() * std[:, None, None] + mean[:, None, None]).clip(0, 1).transpose(1, 2, 0)
            LimeImageExplainer(random_state=0).explain_instance(
                pixels.astype(np.float64), classifier, labels=(target,), top_labels=None, hide_color=None,
                num_samples=LIME_OPTIONS["samples"], batch_size=batch_size,
                segmentation_fn=lambda _: labels, random_seed=0)
    return run


def floor_call(model: LoadedModel, x, targets, chunk: int, method: str = "smoothgrad"):
    """The passes a method cannot avoid, ``chunk`` images at a time: for SmoothGrad and IG 50
    forward + input-gradient passes of every image, for occlusion one forward pass (the
    runtime's, ``LoadedModel.forward``) per window position."""
    if method in ("occlusion", "lime"):
        count = (LIME_OPTIONS["samples"] if method == "lime"
                 else window_count(x.shape[-2:], OPTIONS["window"], OPTIONS["stride"]))
        copies = x.repeat_interleave(count, dim=0)

        def forwards():
            for i in range(0, len(copies), chunk):
                model.forward(copies[i:i + chunk], taps=False)
        return forwards
    expanded = x.repeat_interleave(50, dim=0)
    expanded_t = targets.repeat_interleave(50)

    def run():
        for i in range(0, len(expanded), chunk):
            input_gradients(model.module, expanded[i:i + chunk], expanded_t[i:i + chunk])
    return run


def measure(models: list[str], batches: list[int], methods: list[str], device: torch.device,
            repeats: int = 3, log=print) -> list[tuple]:
    """Rows (model, method, batch, ours s/img, peer s/img or None, floor s/img or None)."""
    rows = []
    chunk = chunk_for(device)
    for model_name in models:
        model = model_for(model_name, device)
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch)).to(device)
            targets = torch.arange(batch, device=device) * 37 % 1000
            for method in methods:
                if method == "cam" and not model.layers.cam_feeds_head:
                    continue
                if method == "lime" and batch > 1:
                    continue  # the lime package explains one image a call; 16 would take minutes
                layer = model.layers.cam if METHODS[method].family == "cam" else None
                options = {**OPTIONS, **LIME_OPTIONS} if method == "lime" else OPTIONS
                job = Job(model, x, targets, {k: options[k] for k in METHODS[method].options if k != "layer"},
                          chunk, layer)
                # Score-CAM's and LIME's peers take tens of seconds a call: once. The floor-bound
                # methods take seconds: the median of ``repeats``, the floor too (noise 10-20%).
                n = 1 if method in ("scorecam", "lime") else repeats
                ours = timed(lambda: METHODS[method].explain(job), device, n) / batch
                peer = peer_call(method, model, x, targets, chunk)
                theirs = timed(peer, device, n) / batch if peer else None
                floor = (timed(floor_call(model, x, targets, chunk, method), device, n) / batch
                         if method in FLOORED else None)
                rows.append((model_name, method, batch, ours, theirs, floor))
                if method == "lime":
                    for label, peer_bs, runtime in ((f"lime (peer batch_size={chunk})", chunk, "torch"),
                                                    ("lime (peer on the ONNX session)", 10, "onnx")):
                        other = timed(lime_peer(model, x, targets, peer_bs, runtime), device, n) / batch
                        rows.append((model_name, label, batch, ours, other, floor))
                log(f"{model_name:18s} {method:21s} b={batch:<3d} ours {ours * 1000:9.1f} ms/img  "
                    f"peer {'-' if theirs is None else f'{theirs * 1000:9.1f}'}  "
                    f"floor {'-' if floor is None else f'{floor * 1000:9.1f}'}")
    return rows


def goal_status(method: str, ours: float, theirs: float | None,
                floor: float | None) -> tuple[str, bool] | None:
    """(goal text, met) of ``method``'s goal in issue 4, or None when it has none (or no peer ran).
    The floor is part of the goal for SmoothGrad and IG; for occlusion it is reported only."""
    if method not in GOALS or not theirs:
        return None
    peer, need = GOALS[method]
    bounded = floor is not None and method in FLOOR_GOALS
    ok = theirs / ours >= need and (not bounded or ours / floor <= 1.2)
    return f">= {need:g}x {peer}{', <= 1.2 floor' if bounded else ''}", ok


def main() -> None:
    global CHUNK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, help="ConvScope's explain_chunk_size (and Captum's internal "
                        "batch size for SmoothGrad and IG); default: the service's on the device")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    CHUNK = args.chunk
    device = torch.device(args.device)
    rows = measure(args.models, args.batches, args.methods, device, args.repeats,
                   log=lambda line: print(line, flush=True))
    publish(report(rows, device), args.write, args.out)


def report(rows, device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = ["| model | method | batch | ConvScope (ms/img) | peer (ms/img) | speed-up | floor ratio | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for model, method, batch, ours, theirs, floor in rows:
        speedup = f"{theirs / ours:.2f}x" if theirs else "-"
        ratio = f"{ours / floor:.2f}" if floor else "-"
        status = goal_status(method, ours, theirs, floor)
        goal = f"{'met' if status[1] else 'MISSED'} ({status[0]})" if status else "-"
        lines.append(f"| {model} | `{method}` | {batch} | {ours * 1000:.1f} | "
                     f"{'-' if theirs is None else f'{theirs * 1000:.1f}'} | {speedup} | {ratio} | {goal} |")
    return (f"\n## Explanation speed against the peers ({time.strftime('%Y-%m-%d')}, {name})\n\n"
            f"Command: `python benchmarks/explain_speed.py --device {device.type} --chunk {chunk_for(device)}` (torch {torch.__version__}, "
            f"Python {platform.python_version()}). ConvScope's engine time (maps on the device, before "
            f"encoding), chunk {chunk_for(device)}; peers with their defaults as described in the script. ResNet-50 "
            "has random weights (speed only).\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
