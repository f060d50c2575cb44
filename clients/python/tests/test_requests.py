"""Building calls: only what the caller set is sent, names map to the proto enums, REST carries
the same values as the proto (float32 as its shortest decimal), bad values fail before sending."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from convscope_client import InvalidArgument, Unimplemented
from convscope_client import _calls as calls
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._rest import f32_text, render

IMAGE = b"\x89PNG\r\n\x1a\nnot really"


def test_only_given_parameters_are_sent():
    path, image, params = render(calls.saliency("digits", IMAGE))
    assert (path, image, params) == ("/predictions/digits-saliency", IMAGE,
                                     {"method": "gradient", "output": "heatmap"})
    assert render(calls.classify("digits", IMAGE))[2] == {}
    assert render(calls.cam("digits", IMAGE, outputs=()))[2] == {"method": "gradcam"}


def test_every_saliency_knob_reaches_rest_as_text():
    call = calls.saliency("digits", IMAGE, method="integrated_gradients", target=3, outputs="heatmap,array",
                          polarity="negative", clip_low=0.5, clip_high=99.0, alpha=0.3, samples=8,
                          noise=0.1, seed=7, steps=16, baseline="blur", window=4, stride=2, fill=0.25)
    assert render(call)[2] == {
        "method": "integrated_gradients", "target": "3", "output": "heatmap,array",
        "polarity": "negative", "clip_low": "0.5", "clip_high": "99", "alpha": "0.3", "samples": "8",
        "noise": "0.1", "seed": "7", "steps": "16", "baseline": "blur", "window": "4", "stride": "2",
        "fill": "0.25"}


@pytest.mark.parametrize("enum, build", [
    (pb.SaliencyMethod, lambda m: calls.saliency("d", IMAGE, method=m)),
    (pb.CamMethod, lambda m: calls.cam("d", IMAGE, method=m)),
    (pb.Baseline, lambda m: calls.saliency("d", IMAGE, baseline=m)),
    (pb.Polarity, lambda m: calls.cam("d", IMAGE, polarity=m)),
    (pb.Output, lambda m: calls.cam("d", IMAGE, outputs=[m])),
    (pb.InspectOutput, lambda m: calls.feature_maps("d", IMAGE, outputs=[m])),
])
def test_every_enum_name_round_trips(enum, build):
    prefix = calls.enum_prefix(enum.DESCRIPTOR.name)
    for name in calls.choices(enum):
        assert prefix + name.upper() in enum.keys()  # noqa: SIM118 - not a dict
        assert name in render(build(name))[2].values()


def test_names_map_to_proto_enums():
    message = calls.cam("digits", IMAGE, method="gradcam_pp", outputs=["heatmap", "overlay"],
                        polarity="absolute", layer="layer3").message
    assert message.method == pb.CAM_METHOD_GRADCAM_PP
    assert list(message.rendering.outputs) == [pb.OUTPUT_HEATMAP, pb.OUTPUT_OVERLAY]
    assert message.rendering.polarity == pb.POLARITY_ABSOLUTE and message.layer == "layer3"
    assert not message.rendering.HasField("alpha") and not message.HasField("target")


def test_neighbour_ops_and_bodies_without_an_image():
    assert render(calls.index_stats("digits")) == ("/predictions/digits-neighbours", None, {"op": "stats"})
    assert render(calls.index_delete("digits", "mine/7"))[2] == {"op": "delete", "id": "mine/7"}
    add = render(calls.index_add("digits", "mine/7", vector=np.float32([0.1, 1 / 3]), label="7",
                                 metadata={"who": "me", "n": 1}))
    assert add[1] is None
    assert add[2] == {"op": "add", "vector": "[0.1,0.33333334]", "id": "mine/7", "label": "7",
                      "metadata": '{"who": "me", "n": 1}'}
    search = render(calls.neighbours("digits", IMAGE, k=5))
    assert search[1] == IMAGE and search[2] == {"k": "5"}
    assert json.loads(add[2]["vector"]) == pytest.approx([0.1, 1 / 3], rel=1e-7)


def test_inspect_calls_send_their_op_and_only_what_was_given():
    assert render(calls.inspect_layers("digits")) == ("/predictions/digits-inspect", None, {"op": "layers"})
    assert render(calls.feature_maps("digits", IMAGE)) == ("/predictions/digits-inspect", IMAGE,
                                                           {"op": "feature_maps"})
    assert render(calls.filters("digits", layer="conv2"))[2] == {"op": "filters", "layer": "conv2"}
    top = calls.top_examples("digits", 0, patches=False)
    assert top.message.HasField("channel") and render(top)[2] == {"op": "top_examples", "channel": "0",
                                                                  "patches": "false"}


@pytest.mark.parametrize("channels, sent", [
    ("3,17,40", [3, 17, 40]), ("[3, 17, 40]", [3, 17, 40]), ([40, 3], [40, 3]), ((np.int64(7),), [7]),
    ("top", []), (" top ", []), (None, []), ([], []),
])
def test_channels_are_a_list_or_top(channels, sent):
    call = calls.feature_maps("digits", IMAGE, channels=channels)
    assert list(call.message.channels) == sent
    assert render(call)[2].get("channels") == (",".join(map(str, sent)) if sent else None)


def test_features_normalize_is_a_boolean_word():
    assert render(calls.features("digits", IMAGE, normalize=False))[2] == {"normalize": "false"}
    assert render(calls.features("digits", IMAGE, normalize=True))[2] == {"normalize": "true"}


@pytest.mark.parametrize("value, text", [
    (0.3, "0.3"), (1 / 3, "0.33333334"), (99.5, "99.5"), (5.0, "5"), (0.0, "0"), (-0.1, "-0.1"),
    (1e-30, "1e-30"), (3.4e38, "3.4e+38"), (123456789.0, "123456790"), (0.1 + 0.2, "0.3"),
])
def test_float32_text_examples(value, text):
    assert f32_text(value) == text


def _shortest_digits(value: np.float32) -> int:
    """Brute force: the fewest significant digits that read back as ``value``."""
    return next(p for p in range(1, 10) if np.float32(float(f"{value:.{p}g}")) == value)


def test_float32_text_round_trips_and_is_shortest():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(2000), rng.uniform(0, 1, 2000),
                             10.0 ** rng.uniform(-20, 20, 2000)]).astype(np.float32)
    for value in values:
        text = f32_text(float(value))
        assert np.float32(float(text)) == value, text
        digits = len(text.split("e")[0].replace("-", "").replace(".", "").strip("0"))
        assert digits == _shortest_digits(value), (value, text)
        assert len(text) < 40  # the server's limit on a number's text


def test_rest_and_grpc_carry_the_same_float32():
    call = calls.saliency("digits", IMAGE, alpha=0.7, noise=0.15)
    sent = render(call)[2]
    assert np.float32(float(sent["alpha"])) == np.float32(call.message.rendering.alpha)
    assert np.float32(float(sent["noise"])) == np.float32(call.message.noise)


@pytest.mark.parametrize("build, words", [
    (lambda: calls.classify("digits", IMAGE, top_k=-1), "out of range"),
    (lambda: calls.cam("digits", IMAGE, method="gradcam++"), "not one of cam, gradcam, gradcam_pp"),
    (lambda: calls.saliency("digits", IMAGE, outputs="heatmap,picture"), "'picture' is not one of"),
    (lambda: calls.saliency("digits", IMAGE, alpha="half"), "Rendering"),
    (lambda: calls.neighbours("digits"), "exactly one"),
    (lambda: calls.neighbours("digits", IMAGE, vector=[1.0]), "exactly one"),
    (lambda: calls.neighbours("digits", vector=["a"]), "FeatureVector"),
    (lambda: calls.classify("digits", 42), "image must be bytes"),
    (lambda: calls.feature_maps("digits", IMAGE, outputs="grid,heatmap"), "'heatmap' is not one of grid, array, raw"),
    (lambda: calls.feature_maps("digits", IMAGE, channels="3,x"), "'top' or a list of integers"),
    (lambda: calls.feature_maps("digits", IMAGE, channels=[1.5]), "channels must be integers"),
    (lambda: calls.feature_maps("digits", IMAGE, channels=[-1]), "FeatureMapsRequest"),
    (lambda: calls.top_examples("digits", -1), "TopExamplesRequest"),
])
def test_bad_values_fail_before_sending(build, words):
    with pytest.raises(InvalidArgument) as error:
        build()
    assert words in error.value.message and error.value.status == 400


def test_images_from_bytes_paths_and_files(tmp_path):
    path = tmp_path / "seven.png"
    path.write_bytes(IMAGE)
    for image in (IMAGE, bytearray(IMAGE), memoryview(IMAGE), str(path), path, io.BytesIO(IMAGE)):
        assert calls.classify("digits", image).message.image.data == IMAGE
    with pytest.raises(FileNotFoundError):
        calls.classify("digits", tmp_path / "missing.png")


def test_grpc_only_calls_are_refused_over_rest():
    with pytest.raises(Unimplemented, match="gRPC") as error:
        render(calls.list_models())
    assert isinstance(error.value, NotImplementedError) and error.value.status == 501


def test_model_names_are_quoted_into_the_path():
    assert render(calls.classify("a b/c", IMAGE))[0] == "/predictions/a%20b%2Fc"
