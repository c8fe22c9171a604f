"""Shared test configuration.

Fixtures used across areas live in ``tests/_fixtures/<area>.py`` and are loaded here as plugins,
so each area adds its own without editing this file.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

_FIXTURES = Path(__file__).parent / "_fixtures"
pytest_plugins = [
    f"tests._fixtures.{m.name}" for m in pkgutil.iter_modules([str(_FIXTURES)]) if m.name[0] != "_"
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests when no CUDA device is present (CI has none)."""
    if not any("gpu" in item.keywords for item in items):
        return  # torch is not imported for a run without gpu tests (analysis/store-only runs)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
