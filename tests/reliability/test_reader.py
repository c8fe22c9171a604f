"""A reader racing a writer: a prompt set whose creation has only begun is refused, not empty."""

from __future__ import annotations

import pytest
import zarr

import actstore
from actstore.errors import IncompleteCacheError
from actstore.store import create_cache


def test_open_refuses_a_prompt_set_group_that_is_being_created(tmp_path):
    out = tmp_path / "c.zarr"
    create_cache(out)
    # the first write of a prompt-set creation: its group, before attributes or arrays
    zarr.open_group(str(out), mode="r+").require_group("physics")
    with pytest.raises(IncompleteCacheError, match=r"'physics'.*an empty group"):
        actstore.open(out, group="physics")
    # a group with content (e.g. saved probes) still opens as a Dataset
    zarr.open_group(str(out), mode="r+").require_group("probes").create_array(
        "w", shape=(2,), dtype="float64", dimension_names=("x",)
    )
    assert "w" in actstore.open(out, group="probes").variables
