"""Suite sections measured in this process: preprocessing against a forward pass, ONNX Runtime
against eager PyTorch, and the size and encode time of each explanation output format.

Every timing is ``explain_speed.timed``: the median of the repeats after one warm-up call, with
the worker's torch threads (``EngineConfig.intra_op_threads``) unless a row says otherwise.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_types import Goal, Log, Section, fmt, table, unavailable
from benchmarks.explain_speed import OPTIONS, timed
from benchmarks.gateway_latency import encode_costs
from benchmarks.serving_latency import STORE
from convscope.config import EngineConfig
from convscope.explain import METHODS, Job
from convscope.models import LoadedModel, load_model
from convscope.preprocess import decode_image, image_input, prepare_input
from convscope.render import OUTPUTS, RenderOptions, render
from convscope.spec import load_spec
from tests.imaging import encode, photo

CPU = torch.device("cpu")
PHOTOS = ("chelsea", "coffee", "astronaut")
ONNX_GOAL = 1.0


def _model(name: str, runtime: str | None = None) -> LoadedModel:
    """A built-in model on the CPU as its spec says, or with ``runtime`` swapped in (the ONNX
    session with a worker's threads)."""
    spec = load_spec(STORE / f"{name}.toml")
    if runtime is None:
        return load_model(spec, CPU)
    return load_model(replace(spec, runtime=runtime), CPU, EngineConfig().intra_op_threads)


def _photos() -> dict[str, bytes]:
    """JPEG bytes of the photos as they are, and chelsea upscaled to 1920x1080 (a phone photo)."""
    out = {name: encode(Image.fromarray(photo(name)), "JPEG", quality=90) for name in PHOTOS}
    big = Image.fromarray(photo("chelsea")).resize((1920, 1080), Image.Resampling.BICUBIC)
    out["chelsea, 1920x1080"] = encode(big, "JPEG", quality=90)
    return out


def plain_pil(data: bytes, size: tuple[int, int], mean: float, std: float) -> np.ndarray:
    """The baseline a hand-written handler does: open, RGB, resize, scale and normalise."""
    image = Image.open(io.BytesIO(data)).convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return np.ascontiguousarray(((array - mean) / std).transpose(2, 0, 1))


def preprocessing(quick: bool, log: Log) -> Section:
    torch.set_num_threads(EngineConfig().intra_op_threads)
    model, repeats = _model("efficientnet_lite0"), 10 if quick else 50
    spec, config = model.spec.input, EngineConfig()
    x = torch.zeros(1, *model.input_shape)
    forward = timed(lambda: model.forward(x, taps=False), CPU, repeats)
    rows = []
    for name, data in _photos().items():
        full = timed(lambda: prepare_input(decode_image(data, config).image, spec), CPU, repeats)
        served = timed(lambda: image_input(data, spec, config), CPU, repeats)
        base = timed(lambda: plain_pil(data, spec.size, spec.mean[0], spec.std[0]), CPU, repeats)
        width, height = Image.open(io.BytesIO(data)).size
        rows.append([name, f"{width}x{height}", f"{len(data) / 1024:.0f}", fmt(base * 1e3), fmt(full * 1e3),
                     f"{base / full:.2f}x", fmt(served * 1e3), f"{base / served:.2f}x", f"{served / forward:.2f}"])
        log(f"preprocessing: {name} full {full * 1e3:.2f} ms, served {served * 1e3:.2f} ms "
            f"(plain PIL {base * 1e3:.2f} ms)")
    lines = ["`convscope.preprocess` against plain PIL (`Image.open(...).convert(\"RGB\").resize(...)` + numpy "
             f"normalise), per image, median of {repeats}. ConvScope runs the format allow-list, size checks, EXIF "
             "orientation, RGB, bilinear resize to 224x224 and normalisation; explanations decode every pixel "
             "(`decode_image` + `prepare_input`: they draw on the client's image), classification, features and "
             "search decode a large JPEG at reduced scale (`image_input`, docs/performance.md). Speed-up = plain "
             f"PIL / ConvScope. Forward = one efficientnet_lite0 pass at batch 1 (logits only), {forward * 1e3:.2f} "
             "ms; fraction = the classify path / forward.", "",
             *table(["image", "size", "JPEG (KiB)", "plain PIL (ms)", "ConvScope, full decode (ms)", "speed-up",
                     "ConvScope, classify path (ms)", "speed-up", "fraction of a forward pass"], rows),
             "", "No goal in issue 9 for this row: the times and the fraction are reported."]
    return Section("preprocessing", lines)


def onnx_runtime(quick: bool, log: Log) -> Section:
    threads = EngineConfig().intra_op_threads
    torch.set_num_threads(threads)
    rows, goals, repeats = [], [], 10 if quick else 50
    for name in ("efficientnet_lite0", "digits"):
        try:
            eager, onnx = _model(name, "torch"), _model(name, "onnx")
        except Exception as exc:  # noqa: BLE001 - a missing or broken backend is reported, not fatal
            return unavailable("onnx", f"{type(exc).__name__}: {exc}")
        for b in (1, 8):
            x = torch.randn(b, *eager.input_shape, generator=torch.Generator().manual_seed(b))
            t_torch = timed(lambda: eager.forward(x, taps=False), CPU, repeats)
            t_onnx = timed(lambda: onnx.forward(x, taps=False), CPU, repeats)
            diff = (eager.forward(x, taps=False).logits - onnx.forward(x, taps=False).logits).abs().max()
            speedup = t_torch / t_onnx
            rows.append([f"`{name}`", str(b), fmt(t_torch * 1e3), fmt(t_onnx * 1e3), f"{speedup:.2f}x",
                         f"{diff.item():.1e}"])
            goals.append(Goal(f"ONNX Runtime vs PyTorch, {name} batch {b}", f">= {ONNX_GOAL:g}x (at least as fast)",
                              f"{speedup:.2f}x", speedup >= ONNX_GOAL))
            log(f"onnx: {name} b={b} torch {t_torch * 1e3:.2f} ms onnx {t_onnx * 1e3:.2f} ms")
    lines = [f"`LoadedModel.forward` (logits) with `runtime = \"torch\"` against `runtime = \"onnx\"` "
             f"(the model exported in memory and opened by `convscope.models.onnx_runtime`), {threads} "
             f"intra-op thread(s) each as in a worker; random inputs, median of {repeats} calls.", "",
             *table(["model", "batch", "eager PyTorch (ms)", "ONNX Runtime (ms)", "speed-up",
                     "max abs logit difference"], rows)]
    return Section("onnx", lines, goals)


def _gradcam_map(model: LoadedModel, data: bytes):
    """(raw map float32 [224, 224], placement, decoded image) of one Grad-CAM of ``data``."""
    decoded = decode_image(data, EngineConfig()).image
    tensor, placement = prepare_input(decoded, model.spec.input)
    x = tensor[None]
    target = model.forward(x, taps=False).logits.argmax(1)
    method = METHODS["gradcam"]
    job = Job(model, x, target, {k: OPTIONS[k] for k in method.options if k != "layer"},
              EngineConfig().chunk_for(CPU.type), model.layers.cam)
    return method.explain(job)[0], placement, decoded


def output_formats(quick: bool, log: Log) -> Section:
    torch.set_num_threads(EngineConfig().intra_op_threads)
    model, repeats = _model("efficientnet_lite0"), 5 if quick else 20
    image = Image.fromarray(photo("chelsea")).resize((224, 224), Image.Resampling.BICUBIC)
    raw, placement, decoded = _gradcam_map(model, encode(image, "PNG"))
    rows = []
    for output in OUTPUTS:
        options = RenderOptions(outputs=(output,))
        size = len(getattr(render(raw, placement, decoded, options), output))
        took = timed(lambda: render(raw, placement, decoded, options), CPU, repeats)
        rows.append([f"`{output}`", f"{size / 1024:.1f}", fmt(took * 1e3)])
    values = np.frombuffer(render(raw, placement, decoded, RenderOptions(outputs=("array",))).array,
                           dtype="<f2").reshape(224, 224).astype(np.float32)
    whole = encode_costs(values, repeats)
    rows += [[name, f"{size / 1024:.1f}", fmt(ms)] for name, (size, ms) in whole.items()]
    log(f"formats: {len(rows)} rows")
    lines = [f"One Grad-CAM map of chelsea (224x224) on efficientnet_lite0. Each output format alone: "
             "`convscope.render.render` (normalise, align, encode) with that one output; then whole "
             "answers carrying heatmap + array (`gateway_latency.encode_costs`): the typed gRPC message, "
             f"REST's base64 in JSON, and the JSON float list TorchServe's explanations use. Median of {repeats}.",
             "", *table(["format", "size (KiB)", "encode time (ms)"], rows),
             "", "No goal in issue 9 for this row: sizes and times are reported."]
    return Section("formats", lines)
