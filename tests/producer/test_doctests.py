"""The producer's docstring examples run as tests (pytest collects only tests/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "services.producer",
    "services.producer.config",
    "services.producer.events",
    "services.producer.pacing",
    "services.producer.profiles",
    "services.producer.replay",
    "services.producer.scenarios",
    "services.producer.simulator",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_main_kernels_have_examples() -> None:
    for name in ("services.producer.simulator", "services.producer.pacing"):
        assert doctest.testmod(importlib.import_module(name)).attempted > 0
