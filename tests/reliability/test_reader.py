"""A reader racing a writer: a prompt set whose creation has only begun is refused, not empty.

The window tests replay what the concurrency test (four ``--shard`` workers and a reader) once
caught under load: the reader listed the prompt sets just before a worker wrote the new set's
attributes, then read the set's group as a plain group and got an empty Dataset with no warning.
"""

from __future__ import annotations

import json
import warnings

import pytest
import zarr

import actstore
from actstore.errors import IncompleteCacheError, IncompleteCacheWarning
from actstore.store import Cache, create_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def test_open_refuses_a_prompt_set_group_that_is_being_created(tmp_path):
    out = tmp_path / "c.zarr"
    create_cache(out)
    # the first write of a prompt-set creation: its group, before attributes or arrays
    zarr.open_group(str(out), mode="r+").require_group("physics")
    with pytest.raises(IncompleteCacheError, match=r"'physics'.*is creating"):
        actstore.open(out, group="physics")
    # a group with content (e.g. saved probes) still opens as a Dataset
    zarr.open_group(str(out), mode="r+").require_group("probes").create_array(
        "w", shape=(2,), dtype="float64", dimension_names=("x",)
    )
    assert "w" in actstore.open(out, group="probes").variables


def _attrs_written_after_the_listing(monkeypatch, tmp_path, *, attrs: bool = True):
    """A cache with one finished set; a second set's creation writes its group and (*attrs*) its
    first attributes (spec, ``ready: false``, no arrays yet) right after the reader lists the
    prompt sets."""
    out = tmp_path / "c.zarr"
    syn = make_synthetic(seed=1)
    write_synthetic(out, syn)
    done = json.loads((out / "arith" / "zarr.json").read_text())["attributes"]["actstore"]
    listing = Cache.prompt_sets.fget

    def list_then_creation_step(cache):
        names = listing(cache)
        if not (out / "physics").exists():
            group = zarr.open_group(str(out), mode="r+").require_group("physics")
            if attrs:
                group.attrs["actstore"] = {**done, "ready": False}
        return names

    monkeypatch.setattr(Cache, "prompt_sets", property(list_then_creation_step))
    return out


@pytest.mark.parametrize("attrs", [True, False], ids=["attributes", "bare-group"])
def test_open_refuses_a_set_whose_creation_starts_after_the_listing(monkeypatch, tmp_path, attrs):
    out = _attrs_written_after_the_listing(monkeypatch, tmp_path, attrs=attrs)
    with pytest.raises(IncompleteCacheError, match=r"'physics'.*is creating"):
        actstore.open(out, group="physics")


def test_open_tree_leaves_out_a_set_created_after_the_listing(monkeypatch, tmp_path):
    out = _attrs_written_after_the_listing(monkeypatch, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = actstore.open(out)
    assert "physics" not in tree.children and "arith" in tree.children
    assert any(
        issubclass(w.category, IncompleteCacheWarning) and "'physics'" in str(w.message)
        for w in caught
    ), [str(w.message) for w in caught]


def test_open_tree_leaves_out_an_empty_set_group_with_a_warning(tmp_path):
    out = tmp_path / "c.zarr"
    write_synthetic(out, make_synthetic(seed=1))
    zarr.open_group(str(out), mode="r+").require_group("physics")  # a creation's first write
    with pytest.warns(IncompleteCacheWarning, match=r"'physics' .* is being created"):
        tree = actstore.open(out)
    assert set(tree.children) == {"arith"}


def test_another_writers_temporary_files_do_not_make_a_reader_warn(tmp_path):
    """zarr writes a document as ``<key>.<uuid>.partial`` and renames it: a reader listing the
    folder meanwhile must not see that file as a node (zarr would warn in every reader)."""
    out = tmp_path / "c.zarr"
    write_synthetic(out, make_synthetic(seed=1))
    in_flight = "zarr.b925ad44fc084e3a8753daf2706e7b22.partial"
    (out / in_flight).write_bytes(b'{"zarr_format": 3, "node_')  # a document half written
    (out / "arith" / in_flight).write_bytes(b"{")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        actstore.open(out)
        actstore.open(out, group="arith")
    # a ResourceWarning is the garbage collector closing another test's file, at any moment
    got = [w for w in caught if not issubclass(w.category, ResourceWarning)]
    assert [f"{w.category.__name__}: {w.message}" for w in got] == []
