"""Fixtures of the extractor tests."""

from __future__ import annotations

import pytest

from tests.extractors._helpers import mixed_prompt_set


@pytest.fixture
def mixed_prompts():
    """24 multiplication prompts with 0-11 filler words in front: lengths differ a lot."""
    return mixed_prompt_set()
