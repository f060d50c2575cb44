"""``convscope-client``: every ConvScope call from the shell, over REST or gRPC.

    convscope-client classify digits seven.png --top-k 3
    convscope-client --transport grpc cam efficientnet_lite0 cat.jpg --method gradcam_pp \\
        --output heatmap,overlay --out-dir maps
    convscope-client --json neighbours digits seven.png -k 5
    convscope-client inspect layers digits
    convscope-client inspect top-examples digits --channel 5 -k 4 --out patches

The token comes from --token, else $CONVSCOPE_TOKEN, else the key file $CONVSCOPE_KEY_FILE,
else ./var/key_file.json (TorchServe's key_file.json). Errors go to stderr as
``error: <type> (<status>): <message>``; the exit status is 2 for bad input (a bad image or
parameter, an unknown model or id), 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import _calls
from ._output import Record, as_json, as_text
from ._proto import convscope_pb2 as pb
from .client import DEFAULT_URLS, Client, resolve_token
from .errors import ConvScopeError, InvalidArgument, NotFound, Unauthenticated

Handler = Callable[[Client, argparse.Namespace], Iterator[Record]]
_RENDERING = ("outputs", "polarity", "clip_low", "clip_high", "alpha")
_SALIENCY_KNOBS = ("samples", "noise", "seed", "steps", "baseline", "window", "stride", "fill", "num_features",
                   "positive_only", "segments")


def _image(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such image file: {text}")
    return path


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among ``names`` that were given on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _per_image(method: Callable[..., Any], names: tuple[str, ...]) -> Handler:
    def handle(client: Client, args: argparse.Namespace) -> Iterator[Record]:
        for path in args.images:
            yield Record(str(path), method(client, args.model, path, **_given(args, names)))
    return handle


def _explain(method: Callable[..., Any], names: tuple[str, ...]) -> Handler:
    """Saliency or CAM per image; the maps go to ``<out-dir>/<stem>.<method>.<output>``."""
    def handle(client: Client, args: argparse.Namespace) -> Iterator[Record]:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for path in args.images:
            result = method(client, args.model, path, **_given(args, names))
            yield Record(str(path), result, result.save(args.out_dir / f"{path.stem}.{result.method}"))
    return handle


def _once(call: Callable[[Client, argparse.Namespace], Any]) -> Handler:
    def handle(client: Client, args: argparse.Namespace) -> Iterator[Record]:
        yield Record(None, call(client, args))
    return handle


def _models(client: Client, args: argparse.Namespace) -> Any:
    return client.model_metadata(args.model) if args.model else client.list_models()


def _index_add(client: Client, args: argparse.Namespace) -> Any:
    return client.index_add(args.model, args.id, image=args.image, label=args.label, metadata=args.metadata)


def _project(client: Client, args: argparse.Namespace) -> Iterator[Record]:
    """One projection; with ``--out FILE.png`` the scatter plot is asked for and written there."""
    labels = args.labels.split(",") if args.labels else None
    result = client.project(args.model, method=args.method, subset=args.subset, labels=labels, image=args.image,
                            k=args.k, seed=args.seed, plot=True if args.out is not None else None)
    yield Record(str(args.image) if args.image else None, result, result.save(args.out) if args.out else [])


def _inspected(method: Callable[..., Any], names: tuple[str, ...], image: bool = False) -> Handler:
    """One inspect call; with ``--out DIR`` its PNGs and arrays are written there."""
    def handle(client: Client, args: argparse.Namespace) -> Iterator[Record]:
        given = _given(args, names)
        if args.out is not None and "patches" in names:
            given.setdefault("patches", True)  # --out: the patches are what is written
        result = method(client, args.model, *([args.image] if image else []), **given)
        files: list[Path] = []
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            files = result.save(args.out)
        yield Record(str(args.image) if image else None, result, files)
    return handle


def _inspect_commands(sub: Any) -> None:
    """``inspect layers | feature-maps | filters | top-examples`` (docs/inspect.md)."""
    inspect = sub.add_parser("inspect", help="what the network learned: layers, feature maps, filters, top examples",
                             description="what each layer and channel responds to (the <m>-inspect endpoint)")
    ops = inspect.add_subparsers(dest="op", required=True, metavar="OP")

    def op(name: str, handler: Handler, help: str, out: str | None = None) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = ops.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler, out=None)
        parser.add_argument("model", help="the backbone, e.g. digits or efficientnet_lite0")
        if out:
            parser.add_argument("--out", type=Path, metavar="DIR", help=out)
        return parser

    op("layers", _once(lambda c, a: c.inspect_layers(a.model)), "every inspectable layer and its receptive field")
    maps = op("feature-maps", _inspected(Client.feature_maps, ("layer", "channels", "top", "outputs"), image=True),
              "one layer's activations for an image", "write grid.png, array.npy, raw.npy there")
    maps.add_argument("image", type=_image, metavar="IMAGE")
    maps.add_argument("--channels", help="'top' (default) or a list such as 3,17,40")
    maps.add_argument("--top", type=int, help="how many channels with --channels top (default 16)")
    maps.add_argument("--output", dest="outputs", help="comma-separated: grid,array,raw (default grid)")
    filters = op("filters", _inspected(Client.filters, ("layer", "outputs")), "a convolution's weights",
                 "write grid.png, array.npy there")
    filters.add_argument("--output", dest="outputs", help="comma-separated: grid,array (default grid)")
    top = op("top-examples", _inspected(Client.top_examples, ("channel", "layer", "k", "patches")),
             "the gallery images that most excite a channel", "write patch-<rank>.png there (implies --patches)")
    top.add_argument("--channel", type=int, required=True)
    top.add_argument("-k", type=int, help="how many (default 9)")
    top.add_argument("--patches", action="store_const", const=True, help="cut each example's box as PNG")
    defaults = ((maps, "the CAM layer"), (filters, "the first convolution"), (top, "the first stored layer"))
    for parser, default in defaults:
        parser.add_argument("--layer", help=f"a layer name (default: {default})")


def _explain_options(parser: argparse.ArgumentParser, enum: Any, default: str) -> None:
    parser.add_argument("--method", default=default, choices=_calls.choices(enum))
    parser.add_argument("--target", type=int, help="class to explain (default: the top-1)")
    parser.add_argument("--output", dest="outputs", help="comma-separated: heatmap,overlay,array (default heatmap)")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where the maps go (default .)")
    parser.add_argument("--polarity", choices=_calls.choices(pb.Polarity))
    for name in ("clip-low", "clip-high", "alpha"):
        parser.add_argument(f"--{name}", type=float)


def _subcommands(sub: Any) -> None:
    def command(name: str, handler: Handler, help: str, images: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler)
        parser.add_argument("model", help="the backbone, e.g. digits or efficientnet_lite0")
        if images:
            parser.add_argument("images", nargs="+", type=_image, metavar="IMAGE")
        return parser

    command("classify", _per_image(Client.classify, ("top_k",)), "top-k classes").add_argument(
        "--top-k", type=int)
    command("features", _per_image(Client.features, ("normalize",)), "feature vector").add_argument(
        "--no-normalize", dest="normalize", action="store_const", const=False, help="raw, not unit L2 norm")
    saliency = command("saliency", _explain(Client.saliency, ("method", "target", *_RENDERING, *_SALIENCY_KNOBS)),
                       "saliency maps, written as PNG / .npy files")
    _explain_options(saliency, pb.SaliencyMethod, "gradient")
    for name, kind in (("samples", int), ("noise", float), ("seed", int), ("steps", int),
                       ("window", int), ("stride", int), ("fill", float), ("num_features", int),
                       ("segments", int)):
        saliency.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    saliency.add_argument("--positive-only", dest="positive_only", action="store_const", const=True,
                          help="lime: zero the negative superpixel weights")
    saliency.add_argument("--baseline", choices=_calls.choices(pb.Baseline))
    cam = command("cam", _explain(Client.cam, ("method", "target", "layer", *_RENDERING)),
                  "class activation maps, written as PNG / .npy files")
    _explain_options(cam, pb.CamMethod, "gradcam")
    cam.add_argument("--layer", help="a module name (default: the last conv block)")
    command("neighbours", _per_image(Client.neighbours, ("k",)), "nearest stored images").add_argument(
        "-k", type=int, help="how many (default 10)")
    add = command("index-add", _once(_index_add), "add (or replace) an index entry", images=False)
    add.add_argument("--id", required=True)
    add.add_argument("image", type=_image, metavar="IMAGE")
    add.add_argument("--label")
    add.add_argument("--metadata", type=_json_object, help="a JSON object")
    command("index-delete", _once(lambda c, a: c.index_delete(a.model, a.id)), "delete an index entry",
            images=False).add_argument("id")
    command("index-stats", _once(lambda c, a: c.index_stats(a.model)), "index size and backend", images=False)
    project = sub.add_parser("project", help="2-D PCA / t-SNE / UMAP of the gallery, written as a scatter PNG",
                             description="2-D coordinates of the stored feature vectors (op=project)")
    project.set_defaults(handler=_project)
    project.add_argument("model", help="the backbone, e.g. digits or efficientnet_lite0")
    project.add_argument("image", nargs="?", type=_image, metavar="IMAGE", help="with --subset neighbours: the query")
    project.add_argument("--method", choices=_calls.choices(pb.ProjectionMethod))
    project.add_argument("--subset", choices=_calls.choices(pb.ProjectionSubset))
    project.add_argument("--labels", help="with --subset labels: comma-separated labels to keep")
    project.add_argument("-k", type=int, help="with --subset neighbours: how many (default 10)")
    project.add_argument("--seed", type=int)
    project.add_argument("--out", type=Path, help="write the scatter plot PNG to this file")
    models = sub.add_parser("models", help="the served models (gRPC only)", description="the served models (gRPC only)")
    models.add_argument("model", nargs="?", help="one model's metadata")
    models.set_defaults(handler=_once(_models))
    _inspect_commands(sub)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="convscope-client", description=__doc__.split("\n\n")[0])
    top.add_argument("--url", help=f"REST base URL (default {DEFAULT_URLS['rest']}) or gRPC "
                     f"host:port (default {DEFAULT_URLS['grpc']})")
    top.add_argument("--transport", choices=("rest", "grpc"), default="rest")
    top.add_argument("--token", help="inference token (default: $CONVSCOPE_TOKEN, $CONVSCOPE_KEY_FILE)")
    top.add_argument("--timeout", type=float, default=60.0, help="seconds per attempt (default 60)")
    top.add_argument("--retries", type=int, default=3, help="retries on 503 / UNAVAILABLE (default 3)")
    top.add_argument("--json", action="store_true", help="one JSON object per answer")
    _subcommands(top.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return top


def _token_found(token: str | None) -> bool:
    try:
        return resolve_token(token) is not None
    except ConvScopeError:  # a key file that cannot be read: its own error was printed
        return True


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    show = as_json if args.json else as_text
    try:
        with Client(args.url, args.transport, args.token, args.timeout, args.retries) as client:
            for record in args.handler(client, args):
                print(show(record), flush=True)
    except ConvScopeError as error:
        print(f"error: {error.type} ({error.status}): {error.message}", file=sys.stderr)
        if isinstance(error, Unauthenticated) and not _token_found(args.token):
            print("hint: no token was sent: pass --token, or set $CONVSCOPE_TOKEN or $CONVSCOPE_KEY_FILE "
                  "(the var/key_file.json that `make serve` writes)", file=sys.stderr)
        return 2 if isinstance(error, (InvalidArgument, NotFound)) else 1
    return 0
