"""Helpers to plant hostile metadata and payloads into a copy of a small cache."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any


class OpenFile:
    """Unpickling this calls ``open(marker, "w")``: a harmless stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(OpenFile(marker))


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def edit_meta(path: Path, **changes: Any) -> None:
    doc = read_meta(path)
    doc.update(changes)
    path.write_text(json.dumps(doc))


def plant_array(group_dir: Path, name: str, doc: dict[str, Any], chunks: dict[str, bytes]) -> Path:
    """Write array *name* (a zarr.json document and raw chunk files) into *group_dir*."""
    adir = group_dir / name
    adir.mkdir(parents=True)
    (adir / "zarr.json").write_text(json.dumps(doc))
    for key, data in chunks.items():
        f = adir / key
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    return adir


def v3_array(
    shape: list[int],
    *,
    data_type: Any = "float64",
    chunks: list[int] | None = None,
    codecs: list[Any] | None = None,
    dims: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks or shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": codecs if codecs is not None else [{"name": "bytes"}],
        "attributes": {},
        "dimension_names": dims or [f"dim_{i}" for i in range(len(shape))],
        **extra,
    }


def v2_pickle_array(adir: Path, marker: Path) -> None:
    """A Zarr v2 object array whose filter unpickles its chunk (what zarr 2 would run)."""
    adir.mkdir(parents=True)
    meta = {
        "zarr_format": 2,
        "shape": [1],
        "chunks": [1],
        "dtype": "|O",
        "compressor": None,
        "fill_value": None,
        "filters": [{"id": "pickle"}],
        "order": "C",
    }
    (adir / ".zarray").write_text(json.dumps(meta))
    (adir / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": ["x"]}))
    (adir / "0").write_bytes(pickle_payload(marker))
