"""The ``convscope-client`` command against the fake servers: arguments, tables, JSON, files
and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from client_fakes import Answer
from client_golden import GRID, HEATMAP, MAP, MAPS, OVERLAY, PATCH

from convscope_client.cli import main, parser

IMAGE = b"\x89PNG\r\n\x1a\nseven"


@pytest.fixture
def seven(tmp_path):
    path = tmp_path / "seven.png"
    path.write_bytes(IMAGE)
    return path


def run(target, *argv, capsys):
    code = main(["--url", target.url, "--transport", target.transport, *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_defaults_and_global_options():
    args = parser().parse_args(["classify", "digits", __file__])
    assert (args.transport, args.timeout, args.retries, args.json, args.url, args.top_k) == \
        ("rest", 60.0, 3, False, None, None)
    args = parser().parse_args(["--transport", "grpc", "--timeout", "5", "--token", "t", "--json",
                                "cam", "digits", __file__, "--method", "layercam", "--layer", "conv2"])
    assert (args.transport, args.timeout, args.token, args.json, args.method, args.layer) == \
        ("grpc", 5.0, "t", True, "layercam", "conv2")


@pytest.mark.parametrize("argv, words", [
    (["classify", "digits", "missing.png"], "no such image file"),
    (["cam", "digits", __file__, "--method", "gradcam++"], "invalid choice"),
    (["index-add", "digits", "--id", "x", __file__, "--metadata", "[1]"], "must be a JSON object"),
    (["index-add", "digits", __file__], "--id"),
    (["--transport", "soap", "index-stats", "digits"], "invalid choice"),
    (["inspect", "top-examples", "digits"], "--channel"),
    (["inspect", "feature-maps", "digits", "missing.png"], "no such image file"),
    (["inspect", "weights", "digits"], "invalid choice"),
])
def test_bad_arguments_exit_2(argv, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_classify_prints_a_table_per_image(target, seven, capsys):
    code, out, _ = run(target, "classify", "digits", seven, seven, "--top-k", "2", capsys=capsys)
    assert code == 0
    assert out.count(f"{seven}:") == 2
    assert "rank  class  label  score" in out and "1     7      7      0.9871" in out
    if target.transport == "rest":
        assert target.server.seen[0].fields == {"top_k": "2"}


def test_json_is_one_object_per_image(target, seven, capsys):
    code, out, _ = run(target, "--json", "features", "digits", seven, "--no-normalize", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["image"] == str(seven) and doc["layer"] == "fc1"
    assert doc["vector"] == pytest.approx([0.1, -0.2, 0.3, 0.4], rel=1e-6)


def test_saliency_writes_the_maps(target, seven, tmp_path, capsys):
    out_dir = tmp_path / "maps"
    code, out, _ = run(target, "saliency", "digits", seven, "--method", "smoothgrad", "--samples", "4",
                       "--alpha", "0.3", "--output", "heatmap,overlay,array", "--out-dir", out_dir,
                       capsys=capsys)
    assert code == 0
    heatmap, overlay, array = (out_dir / f"seven.smoothgrad.{s}" for s in ("heatmap.png", "overlay.png", "npy"))
    assert heatmap.read_bytes() == HEATMAP and overlay.read_bytes() == OVERLAY
    assert np.array_equal(np.load(array), MAP)
    assert f"wrote {heatmap}" in out and f"wrote {array}" in out
    if target.transport == "rest":
        assert target.server.seen[0].fields == {"method": "smoothgrad", "output": "heatmap,overlay,array",
                                                "alpha": "0.3", "samples": "4"}
    else:
        assert target.server.requests[0].samples == 4


def test_cam_json_lists_the_files(target, seven, tmp_path, capsys):
    code, out, _ = run(target, "--json", "cam", "digits", seven, "--layer", "conv2", "--out-dir", tmp_path,
                       capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and "heatmap_png" not in doc and doc["target"] == 7
    assert doc["files"][0] == str(tmp_path / "seven.smoothgrad.heatmap.png")


def test_index_commands(target, seven, capsys):
    code, out, _ = run(target, "index-add", "digits", "--id", "mine/7", seven, "--label", "7",
                       "--metadata", '{"who": "me"}', capsys=capsys)
    assert code == 0 and out.strip() == "added mine/7 in digits: 4001 entries"
    assert run(target, "index-delete", "digits", "mine/7", capsys=capsys)[1].strip() == \
        "deleted mine/7 in digits: 4000 entries"
    stats = run(target, "index-stats", "digits", capsys=capsys)[1]
    rows = dict(line.split(maxsplit=1) for line in stats.splitlines())
    assert rows["backend"] == "faiss" and rows["seq"] == "4001" and rows["index"] == "digits"
    neighbours = run(target, "neighbours", "digits", seven, "-k", "2", capsys=capsys)[1]
    assert "digits/train/1" in neighbours and '{"row": 1}' in neighbours
    if target.transport == "rest":
        assert target.server.seen[0].fields == {"op": "add", "id": "mine/7", "label": "7",
                                                "metadata": '{"who": "me"}'}


def test_models_need_grpc(rest, grpc_target, capsys):
    code, _, err = run(rest, "models", capsys=capsys)
    assert code == 1 and err.startswith("error: Unimplemented (501): ListModels is offered by the gRPC API only")
    code, out, _ = run(grpc_target, "models", capsys=capsys)
    assert code == 0 and "digits  10       128          28x28  classify,features" in out


@pytest.mark.parametrize("answer, code, line", [
    (Answer(400, {"code": 400, "type": "InvalidImage", "message": "not an image"}, "INVALID_ARGUMENT",
            (("convscope-error-type", "InvalidImage"), ("convscope-error-code", "400"))),
     2, "error: InvalidImage (400): "),
    (Answer(503, {"code": 503, "type": "IndexUnavailable", "message": "disk full"}, "UNAVAILABLE",
            (("convscope-error-type", "IndexUnavailable"), ("convscope-error-code", "503"))),
     1, "error: IndexUnavailable (503): "),
])
def test_errors_go_to_stderr_with_an_exit_code(target, seven, capsys, answer, code, line):
    target.server.answers.append(answer)
    result = main(["--url", target.url, "--transport", target.transport, "--retries", "0",
                   "classify", "digits", str(seven)])
    out, err = capsys.readouterr()
    assert result == code and err.startswith(line) and out == ""


def test_the_key_file_of_make_serve_is_found_from_the_repository_root(tmp_path, monkeypatch):
    from convscope_client.client import resolve_token

    monkeypatch.delenv("CONVSCOPE_TOKEN", raising=False)
    monkeypatch.delenv("CONVSCOPE_KEY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_token() is None
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "key_file.json").write_text('{"inference": {"key": "k-from-var"}}')
    assert resolve_token() == "k-from-var"
    assert resolve_token("given") == "given"


def test_inspect_layers_prints_the_receptive_fields(target, capsys):
    code, out, _ = run(target, "inspect", "layers", "digits", capsys=capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == ("digits: input 1x28x28, cam layer features, first conv features.0, "
                                      "stored features")
    assert lines[1].split() == ["layer", "type", "shape", "field", "jump", "start", "y,x", "stored"]
    assert lines[2].split() == ["features.0", "Conv2d", "32x28x28", "3x3", "1x1", "0,0"]
    assert lines[4].split() == ["features", "Sequential", "64x7x7", "10x12", "4x4", "1.5,-0.5", "yes"]
    assert lines[5].split() == ["up", "Upsample", "64x14x14", "-", "-", "-"]
    assert "28x28 (global)" in lines[6] and lines[-1].startswith("note: up:")
    if target.transport == "rest":
        assert target.server.seen[0].fields == {"op": "layers"}


def test_inspect_feature_maps_writes_the_grid_and_arrays(target, seven, tmp_path, capsys):
    out_dir = tmp_path / "maps"
    code, out, _ = run(target, "inspect", "feature-maps", "digits", seven, "--channels", "40,3",
                       "--output", "grid,array,raw", "--out", out_dir, capsys=capsys)
    assert code == 0 and (out_dir / "grid.png").read_bytes() == GRID
    assert np.array_equal(np.load(out_dir / "array.npy"), MAPS)
    assert f"wrote {out_dir / 'raw.npy'}" in out and "layer features [64x1x2], maps 3x2" in out
    assert out.splitlines()[3].split() == ["1", "40", "2.4100", "7.9300", "0,1"]
    if target.transport == "rest":
        assert target.server.seen[0].fields == {"op": "feature_maps", "channels": "40,3",
                                                "output": "grid,array,raw"}
    else:
        assert list(target.server.requests[0].channels) == [40, 3]


def test_inspect_top_examples_table_and_patches(target, tmp_path, capsys):
    code, out, _ = run(target, "inspect", "top-examples", "digits", "--channel", "5", "-k", "2",
                       "--out", tmp_path / "patches", capsys=capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "layer features, channel 5: 4000 stored images"
    assert lines[2].split() == ["1", "digits/train/0123", "7", "6.8400", "2,4", "3,0,28,24", "28x28"]
    assert lines[3].split() == ["2", "mine/2", "5.1016", "0,0", "0,0,10,12", "300x451"]
    assert (tmp_path / "patches" / "patch-1.png").read_bytes() == PATCH
    assert not (tmp_path / "patches" / "patch-2.png").exists()
    if target.transport == "rest":  # --out asks for the patches it writes
        assert target.server.seen[0].fields == {"op": "top_examples", "channel": "5", "k": "2", "patches": "true"}
    else:
        assert target.server.requests[0].patches is True


def test_inspect_json_leaves_pictures_out(target, capsys):
    code, out, _ = run(target, "--json", "inspect", "filters", "digits", "--layer", "features.0", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["mode"] == "grey" and doc["shape"] == [2, 1, 3, 3]
    assert "grid_png" not in doc and "array" not in doc
    code, out, _ = run(target, "--json", "inspect", "top-examples", "digits", "--channel", "5", capsys=capsys)
    example = json.loads(out)["examples"][0]
    assert "patch_png" not in example and example["box"] == [3, 0, 28, 24] and example["label"] == "7"
    if target.transport == "rest":
        assert target.server.seen[1].fields == {"op": "top_examples", "channel": "5"}
