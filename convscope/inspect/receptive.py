"""Receptive fields of every spatial layer, derived from the forward pass itself.

One forward pass of a batch-1 input runs under a dispatch mode that carries a field per tensor
through every aten op; module hooks read the field of each module's output. Per axis, for kernel
k, stride s, padding p and dilation d ("A guide to receptive field arithmetic for CNNs", Dang Ha
The Hien): jump' = jump * s, size' = size + (k - 1) * d * jump,
start' = start + ((k - 1) * d / 2 - p) * jump. Element-wise ops take the union of their inputs'
fields; a global pooling makes the field global, and so is anything computed from a global
tensor; an op whose geometry is not known here makes its outputs unknown (None), and so
everything computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from itertools import chain

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .layout import Layout, anon, labelled, nchw, relabel, reshape, spatial_hw


@dataclass(frozen=True)
class ReceptiveField:
    """The input pixels a layer's units see, per axis (y, x), in pixels of the network input."""

    size: tuple[int, int]  # (h, w): input pixels one unit sees (theoretical: padding included)
    jump: tuple[int, int]  # (h, w): input pixels between neighbouring units (product of strides)
    start: tuple[float, float]  # (y, x): centre of unit (0, 0); pixel i has its centre at i
    global_: bool = False  # every unit sees the whole input (global pool, SE); size = input size

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1), x1/y1 exclusive, unclipped, in pixel-edge coordinates (pixel i spans
        [i, i+1)): the pixels unit (y, x) sees. For a global field: the whole input."""
        if self.global_:
            return (0.0, 0.0, float(self.size[1]), float(self.size[0]))
        cy, cx = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        hy, hx = (self.size[0] - 1) / 2, (self.size[1] - 1) / 2
        return (cx - hx, cy - hy, cx + hx + 1, cy + hy + 1)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "jump": list(self.jump), "start": list(self.start),
                "global": self.global_}


@dataclass(frozen=True)
class LayerInfo:
    """One spatial layer: module name and type, output (C, H, W), receptive field."""

    name: str
    type: str
    shape: tuple[int, int, int]
    receptive_field: ReceptiveField | None  # None behind an op of unknown geometry (upsampling)

    def to_dict(self) -> dict:
        field = self.receptive_field
        return {"name": self.name, "type": self.type, "shape": list(self.shape),
                "receptive_field": field.to_dict() if field else None}


_UNTRACKED = object()  # a tensor that does not read the input (a weight, a constant)


@dataclass(frozen=True)
class _State:
    field: ReceptiveField
    layout: Layout | None  # None only for a global field, whose layout no longer matters


def _step(field: ReceptiveField, k, s, p, d) -> ReceptiveField:
    """One sliding-window op: kernel k, stride s, padding p, dilation d, each (h, w)."""
    size, jump, start = field.size, field.jump, field.start
    return replace(field, size=tuple(size[i] + (k[i] - 1) * d[i] * jump[i] for i in (0, 1)),
                   jump=tuple(jump[i] * s[i] for i in (0, 1)),
                   start=tuple(float(start[i] + ((k[i] - 1) * d[i] / 2 - p[i]) * jump[i])
                               for i in (0, 1)))


def _union(fields: list[ReceptiveField]) -> ReceptiveField | None:
    """The smallest field holding all of `fields`, which must sit on one unit grid."""
    if len({f.jump for f in fields}) != 1:
        return None  # the inputs' units sit on different grids: no one field per unit
    lo = [min(f.start[i] - (f.size[i] - 1) / 2 for f in fields) for i in (0, 1)]
    hi = [max(f.start[i] + (f.size[i] - 1) / 2 for f in fields) for i in (0, 1)]
    return ReceptiveField(size=tuple(int(round(hi[i] - lo[i])) + 1 for i in (0, 1)),
                          jump=fields[0].jump, start=tuple((hi[i] + lo[i]) / 2 for i in (0, 1)))


def _pair(value) -> tuple[int, int]:
    value = [value] if isinstance(value, int) else list(value)
    return (value[0], value[-1])


def _arg(args, i: int, default):
    return args[i] if len(args) > i else default


# Handlers: (mode, args, out tensor) -> the output's _State, or None when it cannot be derived.
# They run only when no input is unknown; a global input is dealt with in _FieldMode._derive.

def _window(mode, args, out, k, s, p, d=1, global_=False) -> _State | None:
    state = mode.single(args, 0)
    if state is None or spatial_hw(state.layout) is None or out.dim() < 3:
        return None
    field = _step(state.field, _pair(k), _pair(s or k), _pair(p), _pair(d))
    return _State(replace(field, size=mode.full, global_=True) if global_ else field,
                  nchw(out.shape))


def _conv(mode, args, out):
    # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    if args[6] or out.dim() != 4:
        return None  # a transposed convolution upsamples: its units have no one field
    return _window(mode, args, out, args[1].shape[2:], args[3], args[4], args[5])


def _pool(mode, args, out, dilated: bool):
    # max_pool2d(_with_indices) (input, kernel, stride=[] (= kernel), padding, dilation,
    # ceil_mode), avg_pool2d (input, kernel, stride, padding, ceil_mode, ...): ceil_mode only
    # adds units at the end, and avg_pool2d's 5th argument is not a dilation.
    dilation = _arg(args, 4, 1) if dilated else 1
    return _window(mode, args, out, args[1], _arg(args, 2, ()), _arg(args, 3, 0), dilation)


def _adaptive_pool(mode, args, out):
    state = mode.single(args, 0)
    hw = spatial_hw(state.layout) if state else None
    if hw is None or hw[0] % out.shape[-2] or hw[1] % out.shape[-1]:
        return None  # overlapping bins of unequal width (pooling up, say): no one field per unit
    k = (hw[0] // out.shape[-2], hw[1] // out.shape[-1])
    return _window(mode, args, out, k, k, 0, global_=k == hw)


def _pad(mode, args, out):
    # constant_pad_nd(input, pad), reflection/replication_pad2d(input, padding): (before, after)
    # from the last dim backwards. Padding before moves unit 0 back (TF "same" pads in timm).
    state = mode.single(args, 0)
    if state is None or spatial_hw(state.layout) is None:
        return None
    before = (list(args[1]) + [0] * 4)[2::-2]  # (top, left)
    field = state.field
    start = tuple(field.start[i] - before[i] * field.jump[i] for i in (0, 1))
    return _State(replace(field, start=start), nchw(out.shape))


def _reduce(mode, args, out):
    # mean.dim, sum.dim_IntList, amax, amin (input, dim, keepdim) and the full reductions
    state, ndim = mode.single(args, 0), args[0].dim()
    if state is None or state.layout is None:
        return None
    dims = _arg(args, 1, None) or range(ndim)
    dims = {d % ndim for d in ([dims] if isinstance(dims, int) else dims)}
    spatial = {i for i, axes in enumerate(state.layout) if labelled(axes)}
    if spatial and spatial <= dims:  # a global pooling: each output reads every unit of the map
        hw = spatial_hw(state.layout)
        field = _step(state.field, hw, hw, (0, 0), (1, 1)) if hw else state.field
        return _State(replace(field, size=mode.full, global_=True), None)
    if spatial & dims:
        return None  # pooled along one spatial axis only
    layout = reshape(tuple(a for i, a in enumerate(state.layout) if i not in dims), out.shape)
    return _State(state.field, layout) if layout else None


def _elementwise(mode, args, out):
    """Unit (y, x) of the output reads unit (y, x) of each input: the union of their fields."""
    states = mode.inputs(args)
    spatial = [s for s in states if not s.field.global_] or states[:1]
    layouts = {relabel(s.layout, out.shape) for s in spatial}
    field = _union([s.field for s in spatial])
    ok = len(layouts) == 1 and None not in layouts and field is not None
    return _State(field, layouts.pop()) if ok else None


def _view(mode, args, out):
    state = mode.single(args, 0)
    layout = reshape(state.layout, out.shape) if state else None
    return _State(state.field, layout) if layout else None


def _permute(mode, args, out):
    state, ndim = mode.single(args, 0), args[0].dim()
    if state is None or state.layout is None:
        return None
    order = list(range(ndim))[::-1] if len(args) == 1 else list(range(ndim))  # t
    if len(args) == 3:  # transpose(input, dim0, dim1)
        a, b = args[1] % ndim, args[2] % ndim
        order[a], order[b] = b, a
    elif len(args) == 2:
        order = [d % ndim for d in args[1]]
    return _State(state.field, tuple(state.layout[d] for d in order))


def _matmul(mode, args, out):
    # mm(mat1, mat2), addmm(bias, mat1, mat2): an nn.Linear on [B*H*W, C] keeps the rows
    state = mode.single(args, len(args) - 2)
    if state is None or state.layout is None or labelled(state.layout[1]):
        return None
    return _State(state.field, (state.layout[0], anon(out.shape[1])))


# Unit-wise ops the `pointwise` tag misses. Normalisation statistics count as constants: the
# convention of theoretical fields, and exact for batch norm in eval mode. Slicing, cat and split
# along an unlabelled dim keep positions; along h or w, _relabel turns them unknown.
_ELEMENTWISE = (
    "hardswish", "hardswish_", "mish_", "gelu_", "_prelu_kernel", "native_dropout", "masked_fill",
    "log_sigmoid_forward", "native_batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
    "native_layer_norm", "native_group_norm", "_to_copy", "copy_", "clone", "detach", "alias",
    "lift_fresh_copy", "cat", "split", "split_with_sizes", "expand", "slice")
_MAX_POOL, _AVG_POOL = partial(_pool, dilated=True), partial(_pool, dilated=False)
_HANDLERS = {
    **{name: _elementwise for name in _ELEMENTWISE},
    "convolution": _conv, "_convolution": _conv, "max_pool2d_with_indices": _MAX_POOL,
    "max_pool2d": _MAX_POOL, "avg_pool2d": _AVG_POOL, "_adaptive_avg_pool2d": _adaptive_pool,
    "adaptive_avg_pool2d": _adaptive_pool, "adaptive_max_pool2d": _adaptive_pool,
    "constant_pad_nd": _pad, "reflection_pad2d": _pad, "replication_pad2d": _pad,
    "mean": _reduce, "sum": _reduce, "amax": _reduce, "amin": _reduce,
    "view": _view, "_unsafe_view": _view, "reshape": _view, "squeeze": _view, "unsqueeze": _view,
    "permute": _permute, "transpose": _permute, "t": _permute, "mm": _matmul, "addmm": _matmul,
}
# Outputs that do not depend on the input's values.
_FRESH = ("zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
          "new_empty", "new_full", "fill_", "zero_")


class _FieldMode(TorchDispatchMode):
    """Carries a _State per tensor through every aten op of a forward pass.

    The dispatch level rather than a TorchFunctionMode: each op arrives as one canonical aten
    overload with its schema and tags (``pointwise``), whatever Python spelling called it
    (``x += y``, ``F.relu``, ``Tensor.add_``), composites such as adaptive pooling arrive as the
    primitives they run, and in-place ops are explicit. The price, ``linear`` on 4-D input
    arriving as view/mm/view, is paid by the layout tracking.
    """

    def __init__(self, example: torch.Tensor) -> None:
        super().__init__()
        self.full = tuple(example.shape[-2:])
        # Strong references for the whole trace: a freed tensor's id() could name a new one.
        self._states: dict[int, tuple[torch.Tensor, _State | None]] = {}
        self.put(example, _State(ReceptiveField((1, 1), (1, 1), (0.0, 0.0)), nchw(example.shape)))

    def put(self, tensor: torch.Tensor, state: _State | None) -> None:
        self._states[id(tensor)] = (tensor, state)

    def state(self, tensor):
        """The tensor's _State, None when unknown, _UNTRACKED when it does not read the input."""
        entry = self._states.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else _UNTRACKED

    def inputs(self, args) -> list:
        states = (self.state(t) for t in tree_leaves(args) if isinstance(t, torch.Tensor))
        return [s for s in states if s is not _UNTRACKED]

    def single(self, args, i: int) -> _State | None:
        """The state of args[i], if every other input that reads the image is global."""
        state, others = self.state(args[i]), self.inputs([a for j, a in enumerate(args) if j != i])
        return state if isinstance(state, _State) and all(s.field.global_ for s in others) else None

    def clear(self) -> None:
        self._states.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        states = self.inputs((args, {k: v for k, v in kwargs.items() if k != "out"}))
        for tensor in (t for t in tree_leaves(out) if isinstance(t, torch.Tensor)):
            if name in _FRESH:
                self._states.pop(id(tensor), None)
            elif states:  # in-place ops return their input: its state is replaced
                self.put(tensor, self._derive(func, name, args, states, tensor))
        return out

    def _derive(self, func, name, args, states, out) -> _State | None:
        handler = _HANDLERS.get(name)
        handler = handler or (_elementwise if torch.Tag.pointwise in func.tags else None)
        try:
            derived = handler(self, args, out) if handler and None not in states else None
        except (IndexError, TypeError, ValueError, ZeroDivisionError):
            derived = None  # an overload called in a form not foreseen here: unknown, not a crash
        glob = [s for s in states if s is not None and s.field.global_]
        if not glob:
            return derived
        # Whatever the op, a value computed from a global tensor depends on the whole input.
        base = derived or glob[0]
        return _State(replace(base.field, size=self.full, global_=True), base.layout)


def _record(mode: _FieldMode, layers: list, seen: set, name: str, module, inputs, output) -> None:
    if name in seen:
        return
    seen.add(name)
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        return
    state, field = mode.state(output), None
    if isinstance(state, _State):
        if not state.field.global_ and spatial_hw(state.layout) is None:
            return  # h and w are not dims 2 and 3 (NHWC inside a ConvNeXt block): no [C, H, W] map
        field = state.field
    layers.append(LayerInfo(name, type(module).__name__, tuple(output.shape[1:]), field))


def trace_layers(module: nn.Module, input_shape: tuple[int, int, int]) -> tuple[LayerInfo, ...]:
    """Every named module (not the root) whose output is one 4-D tensor [B, C, H, W], in the
    order the forward pass finishes them (each name once: its first call), with its receptive
    field in pixels of an input of ``input_shape`` (C, H, W).

    One forward pass of a zero batch [1, C, H, W] in the module's own device and dtype, under
    ``torch.no_grad()``; every hook and the dispatch mode are removed in ``finally``, even when
    the model raises (the exception propagates).
    """
    reference = next(chain(module.parameters(), module.buffers()), None)
    floating = reference is not None and reference.is_floating_point()
    example = torch.zeros((1, *input_shape), dtype=reference.dtype if floating else torch.float32,
                          device=reference.device if reference is not None else "cpu")
    mode, layers, seen, handles = _FieldMode(example), [], set(), []
    try:
        for name, sub in module.named_modules():
            if name:
                hook = partial(_record, mode, layers, seen, name)
                handles.append(sub.register_forward_hook(hook))
        with torch.no_grad(), mode:
            module(example)
    finally:
        for handle in handles:
            handle.remove()
        mode.clear()
    return tuple(layers)
