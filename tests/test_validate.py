"""Comma-separated options: an empty item is refused everywhere, never skipped."""

from __future__ import annotations

import pytest

from actstore._validate import split_items
from actstore.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("text", "items"),
    [("7,15,23", ["7", "15", "23"]), (" 7 , 15 ", ["7", "15"]), ("last", ["last"]), ("", [])],
)
def test_split_items_keeps_every_item(text: str, items: list[str]) -> None:
    assert split_items(text, "--layers", "7,15") == items
    assert ",".join(split_items(text, "x", "y")) == ",".join(p.strip() for p in text.split(","))


@pytest.mark.parametrize("text", ["1,,2", "1,2,", ",1", "1, ,2", ","])
def test_split_items_refuses_an_empty_item(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"none empty, got .*remove the extra comma"):
        split_items(text, "--layers", "7,15")


def test_every_list_parser_refuses_an_empty_item() -> None:
    """The Python and TOML entry points, beside the CLI rows of the catalogue."""
    from actstore.extractors import ExtractConfig, parse_layers
    from actstore.extractors._hooks import resolve_hooks
    from actstore.prompts.generators._kinetic import _check_formats
    from actstore.store.core._positions import parse_position_list

    calls = [
        lambda: parse_layers("1,,2"),
        lambda: ExtractConfig(hooks="resid_post,,resid_pre"),
        lambda: ExtractConfig(hooks=["resid_post", " "]),
        lambda: resolve_hooks("resid_post,", "hf"),
        lambda: resolve_hooks(["resid_post", ""], "hf"),
        lambda: parse_position_list("last,,before:answer"),
        lambda: _check_formats("momentum,,ratio"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="empty"):
            call()
    assert parse_layers("1, 2") == (1, 2)
    assert ExtractConfig(hooks="resid_post, resid_pre").hooks == ("resid_post", "resid_pre")
