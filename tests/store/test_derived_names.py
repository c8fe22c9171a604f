"""Derived writes are named by their probe and never replace stored data (issue 10, item 6).

Every derived write (``Cache.write_derived``, ``detect`` through the API and the command line) is
checked against what the cache held before: labels, metadata and activations keep their exact
values, another probe's predictions survive, and re-running one probe replaces only its own
variable. Names the store writes itself are refused as label names wherever prompts come in.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import actstore
from actstore.analysis import detect, fit_probes, load_probes, save_probes
from actstore.errors import InvalidArgumentError, PromptFileError
from actstore.prompts import Prompt, read_prompt_file
from actstore.store import PromptSetMetadata, open_cache
from tests._fixtures.store import make_synthetic, write_synthetic

DIMS = ("prompt", "layer", "token")
# names the store writes (metadata, activations of either backend, derived predictions)
RESERVED = [
    "n_tokens",
    "token_id",
    "token_str",
    "span_mask",
    "span",
    "prompt",
    "layer",
    "token",
    "source_prompt",
    "resid_post",
    "resid_pre",
    "attn_z",
    "mlp_post",
    "pred_value_last",
]


def _snapshot(path: Path, name: str = "arith") -> dict[str, np.ndarray]:
    ds = actstore.open(path, group=name)
    return {str(k): np.asarray(v.values) for k, v in ds.variables.items()}


def _same(before: dict[str, np.ndarray], after: dict[str, np.ndarray], skip=()) -> None:
    for k, v in before.items():
        if k in skip:
            continue
        if v.dtype.kind in "fc":
            np.testing.assert_array_equal(after[k], v, err_msg=k)
        else:
            assert (after[k] == v).all(), k


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    syn = make_synthetic(dtype="float32")
    path = tmp_path / "c.zarr"
    write_synthetic(path, syn)
    return path


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("value", "the name of its label"),
        ("template", "the name of its label"),
        ("resid_post", "the name of its activations"),
        ("n_tokens", "a name of its metadata"),
        ("token_str", "a name of its metadata"),
        ("source_prompt", "a name of its metadata"),
        ("attn_z", "a name reserved for activations"),
    ],
)
def test_write_derived_never_replaces_stored_data(cache: Path, name: str, what: str) -> None:
    before = _snapshot(cache)
    c = open_cache(cache, mode="r+")
    with pytest.raises(InvalidArgumentError, match=f"got {name!r}, {what}; pick another name"):
        c.write_derived("arith", name, np.zeros((23,)), dims=("prompt",))
    with pytest.raises(InvalidArgumentError, match="pick another name"):
        c.write_derived("arith", name, np.zeros((23, 3, 7), np.float32), dims=DIMS)
    _same(before, _snapshot(cache))


def test_rewriting_a_derived_variable_replaces_only_it(cache: Path) -> None:
    c = open_cache(cache, mode="r+")
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((23, 3, 7)).astype(np.float32) for _ in range(2))
    c.write_derived("arith", "pred_a", a, dims=DIMS, attrs={"run": 1})
    c.write_derived("arith", "pred_b", b, dims=DIMS, attrs={"run": 1})
    before = _snapshot(cache)
    c.write_derived("arith", "pred_a", a * 3, dims=DIMS, attrs={"run": 2})
    after = _snapshot(cache)
    _same(before, after, skip=("pred_a",))
    np.testing.assert_array_equal(after["pred_a"], a * 3)
    ds = actstore.open(cache, group="arith")
    assert ds["pred_a"].attrs["actstore"] == {"kind": "derived", "lineage": {"run": 2}}
    assert ds["pred_b"].attrs["actstore"]["lineage"] == {"run": 1}


@pytest.fixture(scope="module")
def planted(planted_cache, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("derived") / "p.zarr"
    shutil.copytree(planted_cache, dst)
    return dst


def _fit(cache: Path, layers=None, position: str = "last"):
    return fit_probes(
        cache,
        prompt_set="arithmetic",
        target="value",
        layers=layers,
        position=position,
        alphas=[0.1],
        control="shuffle",
    )


def _reference(cache: Path, probes) -> np.ndarray:
    """numpy: activations @ coef + intercept at every (prompt, probe layer, token); NaN padding."""
    ds = actstore.open(cache, group="physics")
    acts = ds["resid_post"].sel(layer=probes.layers).values.astype(np.float64)
    coef, icept = probes.weights()
    pred = np.einsum("pltd,ld->plt", acts, coef) + icept[None, :, None]
    n = ds["n_tokens"].values
    pad = np.arange(acts.shape[2])[None, :] >= n[:, None]  # (prompt, token)
    return np.where(pad[:, None, :], np.nan, pred)


def test_detect_names_predictions_by_probe_and_keeps_both(planted: Path, tmp_path: Path) -> None:
    labels_before = _snapshot(planted, "physics")
    p_all = _fit(planted)
    save_probes(p_all, planted, name="all_layers")
    p_two = _fit(planted, layers=[21, 9])  # a layer subset, in another order than stored
    save_probes(p_two, planted, name="two")
    detect(
        planted, load_probes(planted, name="all_layers"), prompt_set="physics", target="v_squared"
    )
    detect(planted, load_probes(planted, name="two"), prompt_set="physics", target="v_squared")
    ds = actstore.open(planted, group="physics")
    _same(labels_before, _snapshot(planted, "physics"), skip=())
    stored = [int(v) for v in ds["layer"].values]
    for name, probes in (("all_layers", p_all), ("two", p_two)):
        pred = ds[f"pred_{name}"].values
        ref = _reference(planted, probes)
        for i, layer in enumerate(probes.layers):  # each layer's predictions under that layer
            np.testing.assert_allclose(
                pred[:, stored.index(layer)], ref[:, i], rtol=1e-4, atol=1e-3
            )
        for layer in set(stored) - set(probes.layers):
            assert np.isnan(pred[:, stored.index(layer)]).all()
        lineage = ds[f"pred_{name}"].attrs["actstore"]["lineage"]
        assert lineage["probe_name"] == name and lineage["layers"] == probes.layers
        assert f"pred_{name}_control" in ds
    # re-running one probe replaces only its own variables
    first = _snapshot(planted, "physics")
    detect(planted, load_probes(planted, name="two"), prompt_set="physics", target="v_squared")
    _same(first, _snapshot(planted, "physics"))


def test_detect_default_names_for_files_and_unsaved_probes(planted: Path, tmp_path: Path) -> None:
    probes = _fit(planted, layers=[15])
    res = detect(planted, probes, prompt_set="physics", target="v_squared")
    assert res.lineage["written_as"] == "pred_value_last"  # never saved: TARGET_POSITION
    npz = tmp_path / "my probes.npz"
    save_probes(probes, npz)
    res = detect(planted, load_probes(npz), prompt_set="physics", target="v_squared")
    assert res.lineage["written_as"] == "pred_my_probes"
    assert "pred_my_probes" in actstore.open(planted, group="physics")


def test_detect_refuses_a_label_or_another_probes_variable(planted: Path) -> None:
    before = _snapshot(planted, "physics")
    probes = _fit(planted, layers=[15])
    with pytest.raises(InvalidArgumentError, match="'v_squared', the name of its label"):
        detect(planted, probes, prompt_set="physics", target="v_squared", name="v_squared")
    with pytest.raises(InvalidArgumentError, match="'n_tokens', a name of its metadata"):
        detect(planted, probes, prompt_set="physics", target="v_squared", name="n_tokens")
    _same(before, _snapshot(planted, "physics"))
    probes.name = "first"
    detect(planted, probes, prompt_set="physics", target="v_squared", name="shared")
    kept = _snapshot(planted, "physics")
    other = _fit(planted, layers=[9])
    other.name = "second"
    with pytest.raises(InvalidArgumentError, match="got those of probe 'first'; pass another"):
        detect(planted, other, prompt_set="physics", target="v_squared", name="shared")
    _same(kept, _snapshot(planted, "physics"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "actstore", *args], capture_output=True, text=True, check=False
    )


def test_cli_detect_writes_pred_probe(planted: Path) -> None:
    save_probes(_fit(planted, layers=[15]), planted, name="cli_probe")
    det = ("detect", str(planted), "--probes", "cli_probe", "--prompt-set", "physics")
    proc = _cli(*det, "--target", "v_squared")
    assert proc.returncode == 0, proc.stderr
    assert f"predictions written to {planted} as physics/pred_cli_probe" in proc.stdout
    assert "probe_pred" not in actstore.open(planted, group="physics")
    proc = _cli(*det, "--target", "v_squared", "--name", "text")
    assert proc.returncode == 2
    assert proc.stderr == (
        "actstore: error: expected a new or derived variable name in prompt set 'physics', got "
        "'text', a name of its metadata; pick another name (predictions are named "
        "pred_<probe>)\n"
    )


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_label_names_are_refused_at_every_entry(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=f"got .*{name!r}.*; rename it"):
        Prompt(text="7 times 8", labels={name: 1.0})
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(f'{{"text": "7 times 8", "{name}": 3}}\n', encoding="utf-8")
    with pytest.raises(PromptFileError, match=f"line 1, field '{name}'"):
        read_prompt_file(jsonl)
    csv = tmp_path / "p.csv"
    csv.write_text(f"text,{name}\n7 times 8,3\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match=f"field '{name}'"):
        read_prompt_file(csv)
    syn = make_synthetic(n_prompts=4, block_size=2)
    meta = syn.metadata
    bad = PromptSetMetadata(
        text=meta.text,
        n_tokens=meta.n_tokens,
        token_id=meta.token_id,
        token_str=meta.token_str,
        labels={**meta.labels, name: np.arange(4.0)},
        span_masks=meta.span_masks,
    )
    with pytest.raises(InvalidArgumentError, match="expected a label name, got"):
        bad.checked(syn.spec)


def test_reserved_label_in_a_file_is_one_line_at_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "7 times 8 equals 56", "pred_value": 56}\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "actstore", "prompts", "show", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"actstore: error: {path} line 1, field 'pred_value': expected a label name the cache "
        "does not use itself, got 'pred_value', which starts with 'pred_' (reserved for derived "
        "predictions); rename it\n"
    )


def test_ordinary_labels_stay_allowed() -> None:
    # prefixes are whole words: these are not the store's names
    p = Prompt(text="x", labels={"predicted": 1, "residual": 2, "attention": 3, "value": 4})
    assert set(p.labels) == {"predicted", "residual", "attention", "value"}


def test_copy_and_verify_carry_derived_variables(cache: Path, tmp_path: Path) -> None:
    c = open_cache(cache, mode="r+")
    pred = np.random.default_rng(1).standard_normal((23, 3, 7)).astype(np.float32)
    c.write_derived("arith", "pred_x", pred, dims=DIMS, attrs={"probe_name": "x"})
    from actstore.store import copy_cache, verify_cache

    report = verify_cache(cache)
    assert report.ok
    copy_cache(cache, tmp_path / "s.zarr", prompts=[-1, 2], layers=[6])
    ds = actstore.open(tmp_path / "s.zarr", group="arith")
    np.testing.assert_array_equal(ds["pred_x"].values, pred[[22, 2]][:, [2]])
    assert ds["pred_x"].attrs["actstore"]["lineage"] == {"probe_name": "x"}
    # a label of the copy is still a label, the derived variable still derived
    info = actstore.store.cache_info(tmp_path / "s.zarr")["prompt_sets"]["arith"]
    assert info["derived"] == ["pred_x"] and "source_prompt" not in info["labels"]
