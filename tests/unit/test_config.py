"""Engine configuration keys and their ranges."""

from __future__ import annotations

import pytest
import torch

from convscope.config import EngineConfig
from convscope.errors import SpecError


@pytest.mark.parametrize("value, ok", [(0, True), (5, True), (19, True), (20, False), (-1, False), (True, False)])
def test_explanation_niceness_is_a_nice_increment(value, ok):
    if ok:
        assert EngineConfig.from_mapping({"explanation_niceness": value}).explanation_niceness == value
    else:
        with pytest.raises(SpecError, match="explanation_niceness"):
            EngineConfig.from_mapping({"explanation_niceness": value})


def test_explain_chunk_follows_the_device_unless_set():
    assert EngineConfig().chunk_for("cpu") == 2
    assert EngineConfig(intra_op_threads=4).chunk_for("cpu") == 8
    assert EngineConfig().chunk_for("cuda") == 32
    assert EngineConfig.from_mapping({"explain_chunk_size": 16}).chunk_for("cpu") == 16
    assert EngineConfig.from_mapping({"explain_chunk_size": None}).chunk_for("cuda") == 32
    for bad in (0, -2, "8", 2.5):
        with pytest.raises(SpecError, match="explain_chunk_size"):
            EngineConfig.from_mapping({"explain_chunk_size": bad})


def test_the_gradient_twin_is_channels_last_on_the_cpu(digits_model):
    weights = [m.weight for m in digits_model.module.modules()
               if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size != (1, 1)]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                           for w in weights)
