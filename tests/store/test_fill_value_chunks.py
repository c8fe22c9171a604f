"""Groups written whole (saved probes, ``Cache.write_dataset``) keep every chunk, also one that
equals its fill value: ``verify`` reads an absent metadata chunk as lost data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from actstore.store import open_cache, verify_cache
from tests._fixtures.store import make_synthetic, write_synthetic


def test_all_zero_variables_of_a_written_dataset_are_stored_and_verify(tmp_path: Path) -> None:
    url = tmp_path / "c.zarr"
    write_synthetic(url, make_synthetic(), name="arith")
    cache = open_cache(str(url), mode="r+")
    ds = xr.Dataset(
        {
            "flag": (("layer",), np.zeros(3, dtype=np.int8)),  # e.g. alpha_at_edge: none at an edge
            "coef": (("layer", "d_model"), np.ones((3, 4))),
        }
    )
    cache.write_dataset("probes/p", ds)
    assert (url / "probes" / "p" / "flag" / "c" / "0").exists()
    assert verify_cache(str(url)).problems == []


def test_saved_probes_with_no_alpha_at_an_edge_verify_clean(tmp_path: Path) -> None:
    from actstore import analysis

    url = tmp_path / "c.zarr"
    write_synthetic(url, make_synthetic(), name="arith")
    probes = analysis.fit_probes(
        str(url), prompt_set="arith", target="value", position="last", alphas=[1.0]
    )
    analysis.save_probes(probes, str(url), name="p")
    assert verify_cache(str(url)).problems == []
