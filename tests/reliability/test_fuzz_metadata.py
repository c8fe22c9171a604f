"""Fuzz the zarr.json documents of a cache: ``actstore.open`` ends in a result or an ActstoreError.

Each example takes the small clean cache, damages one metadata document (a field set to any JSON
value, a field removed, the text cut short or replaced by random bytes) and opens the cache the
ways a user does: the whole tree, one prompt set, one probe group, ``cache_info``. Whatever the
document says, the outcome is a lazy result or an :class:`ActstoreError`, never another
exception (and never a chunk read through a codec outside the allow-list).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actstore
from actstore.errors import ActstoreError
from actstore.store import cache_info

DOCS = [
    "zarr.json",
    "arith/zarr.json",
    "arith/resid_post/zarr.json",
    "arith/text/zarr.json",
    "arith/token_id/zarr.json",
    "arith/_blocks_done/zarr.json",
    "arith/layer/zarr.json",
    "probes/value/coef/zarr.json",
]
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([0, -1, 1, 2**63, 10**15, 2**31]),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(["bfloat16", "object", "string", "bytes", "zstd", "numcodecs.pickle"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
SETTINGS = settings(
    max_examples=int(os.environ.get("ACTSTORE_FUZZ_EXAMPLES", 80)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document (object keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def damage(draw: st.DrawFn, original: dict[str, bytes]) -> tuple[str, bytes]:
    name = draw(st.sampled_from(DOCS))
    raw = original[name]
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "cut", "bytes"]))
    if kind == "cut":
        return name, raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "bytes":
        return name, draw(st.binary(max_size=200))
    doc = json.loads(raw)
    path = draw(st.sampled_from(_paths(doc)))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON)
    return name, json.dumps(doc).encode()


def _open_every_way(path: Path) -> None:
    for call in (
        lambda: actstore.open(path),
        lambda: actstore.open(path, "arith"),
        lambda: actstore.open(path, "probes/value"),
        lambda: cache_info(path),
    ):
        try:
            result = call()
        except ActstoreError:
            continue
        repr(result)  # lazy objects must at least describe themselves


@pytest.fixture(scope="module")
def fuzz_cache(clean_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    dst = tmp_path_factory.mktemp("fuzzmeta") / "cache.zarr"
    shutil.copytree(clean_cache, dst)
    return dst


@SETTINGS
@given(data=st.data())
def test_damaged_metadata_never_escapes_as_another_exception(fuzz_cache: Path, data) -> None:
    original = {name: (fuzz_cache / name).read_bytes() for name in DOCS}
    name, new = data.draw(damage(original))
    target = fuzz_cache / name
    target.write_bytes(new)
    try:
        _open_every_way(fuzz_cache)
    finally:
        target.write_bytes(original[name])
