"""Engine configuration keys and their ranges."""

from __future__ import annotations

import pytest

from convscope.config import EngineConfig
from convscope.errors import SpecError


@pytest.mark.parametrize("value, ok", [(0, True), (5, True), (19, True), (20, False), (-1, False), (True, False)])
def test_explanation_niceness_is_a_nice_increment(value, ok):
    if ok:
        assert EngineConfig.from_mapping({"explanation_niceness": value}).explanation_niceness == value
    else:
        with pytest.raises(SpecError, match="explanation_niceness"):
            EngineConfig.from_mapping({"explanation_niceness": value})
