"""bfloat16 caches through ordinary xarray: every operation equals numpy on float32-converted data.

``actstore.open`` decodes bfloat16 to float32 lazily (``decode_bfloat16=True``); the opt-out returns
the stored bits. The reference for every operation is numpy on the written bfloat16 arrays
converted to float32 (exact: every bfloat16 value is a float32 value).
"""

from __future__ import annotations

import uuid
import zipfile

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import actstore
from actstore.errors import InvalidArgumentError
from actstore.store import BFLOAT16, copy_cache, open_cache
from tests._fixtures.store import make_synthetic, write_synthetic

HOOKS = ("resid_post", "resid_mid")
LAYERS = (1, 4, 6)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A bf16 cache on disk with two hooks, a bf16 derived variable and a bf16 probes group."""
    syn = make_synthetic(n_prompts=23, layers=LAYERS, hooks=HOOKS, seed=11)
    path = tmp_path_factory.mktemp("bf16") / "c.zarr"
    cache, _ = write_synthetic(path, syn)
    rng = np.random.default_rng(3)
    derived = rng.standard_normal((23, 3, 7)).astype(BFLOAT16)
    cache.write_derived("arith", "score", derived, dims=("prompt", "layer", "token"))
    probe = xr.Dataset(
        {"coef": (("layer", "d_model"), rng.standard_normal((3, 16)).astype(BFLOAT16))}
    )
    cache.write_dataset("probes/value", probe)
    return path, syn, derived, probe["coef"].values


@pytest.fixture(scope="module", params=["dir", "memory", "zip"])
def located(request, source, tmp_path_factory):
    """The same cache as a directory, on ``memory://`` and as a zip copy."""
    path, syn, derived, coef = source
    if request.param == "dir":
        url = str(path)
    elif request.param == "memory":
        url = f"memory://bf16-{uuid.uuid4().hex}.zarr"
        copy_cache(path, url)
    else:
        url = str(tmp_path_factory.mktemp("zip") / "c.zip")
        copy_cache(path, url)
        assert zipfile.is_zipfile(url)
    return url, syn, derived, coef


@pytest.fixture(scope="module")
def opened(source):
    path, syn, *_ = source
    ds = actstore.open(path, group="arith")
    ref = {h: syn.activations[h].astype(np.float32) for h in HOOKS}
    return ds, ref, syn


# --- decoding on open: dtype, encoding, laziness, exact values, every location ------------------


def test_open_decodes_lazily_to_float32_everywhere(located) -> None:
    url, syn, derived, coef = located
    ds = actstore.open(url, group="arith")
    raw = actstore.open(url, group="arith", decode_bfloat16=False)
    for hook in HOOKS:
        var = ds[hook]
        assert var.dtype == np.float32
        assert var.encoding["dtype"] == BFLOAT16  # the stored dtype, as xarray's CF decoding
        assert isinstance(var.data, da.Array)  # nothing read at open
        assert var.chunks == raw[hook].chunks  # same tasks, same bytes read per task
        want = syn.activations[hook].astype(np.float32)
        np.testing.assert_array_equal(var.values, want)
        np.testing.assert_array_equal(
            var.sel(layer=4).mean().values, want[:, 1].mean(dtype=np.float32)
        )
    assert ds["score"].dtype == np.float32 and ds["score"].encoding["dtype"] == BFLOAT16
    np.testing.assert_array_equal(ds["score"].values, derived.astype(np.float32))
    # other dtypes are untouched
    assert ds["value"].dtype == np.float64 and ds["n_tokens"].dtype == np.int32
    probes = actstore.open(url, group="probes/value")
    assert probes["coef"].dtype == np.float32
    np.testing.assert_array_equal(probes["coef"].values, coef.astype(np.float32))


def test_opt_out_is_raw_bfloat16_bit_exact(located) -> None:
    url, syn, derived, coef = located
    raw = actstore.open(url, group="arith", decode_bfloat16=False)
    for hook in HOOKS:
        assert raw[hook].dtype == BFLOAT16
        np.testing.assert_array_equal(_bits(raw[hook].values), _bits(syn.activations[hook]))
    np.testing.assert_array_equal(_bits(raw["score"].values), _bits(derived))
    tree = actstore.open(url, decode_bfloat16=False)
    np.testing.assert_array_equal(
        _bits(tree["arith/resid_post"].values), _bits(syn.activations["resid_post"])
    )
    np.testing.assert_array_equal(_bits(tree["probes/value/coef"].values), _bits(coef))


def test_tree_decodes_every_node(located) -> None:
    url, syn, derived, coef = located
    tree = actstore.open(url)
    want = syn.activations["resid_post"].astype(np.float32)
    assert tree["arith/resid_post"].dtype == np.float32
    assert tree["arith/resid_post"].encoding["dtype"] == BFLOAT16
    np.testing.assert_array_equal(tree["arith"]["resid_post"].max().values, want.max())
    np.testing.assert_allclose(
        tree["arith/resid_post"].sel(layer=1).mean(), want[:, 0].mean(), rtol=1e-5
    )
    np.testing.assert_array_equal(tree["probes/value/coef"].values, coef.astype(np.float32))
    # reductions over the whole tree (every node) work too
    maxed = tree.max()
    np.testing.assert_array_equal(
        maxed["arith/resid_mid"].values, syn.activations["resid_mid"].astype(np.float32).max()
    )
    np.testing.assert_array_equal(maxed["arith/score"].values, derived.astype(np.float32).max())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_every_bfloat16_bit_pattern_decodes_exactly(tmp_path) -> None:
    # 65536 patterns (NaNs, infinities, subnormals, -0.0) as one prompt set: decoded float32 bits
    # are the bfloat16 bits shifted left by 16; the opt-out returns the patterns themselves
    syn = make_synthetic(n_prompts=16, layers=(0, 1, 2, 3), n_tokens=16, d_model=64, seed=1)
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16).reshape(16, 4, 16, 64)
    syn.activations["resid_post"] = bits.view(BFLOAT16)
    write_synthetic(tmp_path / "p.zarr", syn)
    dec = actstore.open(tmp_path / "p.zarr", group="arith")["resid_post"].values
    np.testing.assert_array_equal(dec.view(np.uint32), bits.astype(np.uint32) << 16)
    raw = actstore.open(tmp_path / "p.zarr", group="arith", decode_bfloat16=False)
    np.testing.assert_array_equal(_bits(raw["resid_post"].values), bits)


# --- the xarray API on a decoded set, against numpy ---------------------------------------------

REDUCTIONS = ["mean", "max", "min", "sum", "std", "var", "prod"]


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize(
    "dims", [None, "d_model", ("prompt", "token"), "prompt"], ids=["all", "d", "pt", "p"]
)
def test_reductions_equal_numpy(opened, op, dims) -> None:
    ds, ref, _ = opened
    a = ds["resid_post"].sel(layer=4)
    want_src = ref["resid_post"][:, 1]  # (prompt, token, d_model)
    axes = {"prompt": 0, "token": 1, "d_model": 2}
    axis = None if dims is None else tuple(axes[d] for d in np.atleast_1d(dims))
    got = getattr(a, op)(dim=dims)
    if op == "prod":
        want_src = want_src / 4  # keep products finite
        got = (a / 4).prod(dim=dims)
    want = getattr(np, op)(want_src.astype(np.float64), axis=axis)
    assert got.dtype.kind == "f"
    np.testing.assert_allclose(got.values, want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["argmax", "argmin", "cumsum", "cumprod", "median"])
def test_positional_and_cumulative_ops(opened, op) -> None:
    ds, ref, _ = opened
    a = ds["resid_post"].sel(layer=6)
    want_src = ref["resid_post"][:, 2]
    if op == "cumprod":
        a, want_src = a / 4, want_src / 4
    got = getattr(a, op)(dim="d_model").values
    want = getattr(np, op)(want_src, axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_quantile_and_median_over_prompts(opened) -> None:
    ds, ref, _ = opened
    a = ds["resid_post"]
    q = [0.1, 0.5, 0.9]
    got = a.quantile(q, dim="d_model")
    np.testing.assert_allclose(got.values, np.quantile(ref["resid_post"], q, axis=-1), rtol=1e-6)
    # a reduction across the chunked prompt dim: xarray needs it in one chunk (xarray's rule)
    got_p = a.chunk(prompt=-1).quantile(0.25, dim="prompt")
    np.testing.assert_allclose(
        got_p.values, np.quantile(ref["resid_post"], 0.25, axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        a.chunk(prompt=-1).median("prompt").values, np.median(ref["resid_post"], axis=0), rtol=1e-6
    )


def test_groupby_label_equals_numpy(opened) -> None:
    ds, ref, syn = opened
    a = ds["resid_post"].sel(layer=1)
    template = np.asarray(syn.metadata.labels["template"])
    by_template = a.groupby(ds["template"].load()).mean()
    for g in ("plus", "times"):
        want = ref["resid_post"][template == g, 0].mean(axis=0)
        np.testing.assert_allclose(by_template.sel(template=g).values, want, rtol=1e-5, atol=1e-6)
    x = np.asarray(syn.metadata.labels["x"], dtype=float)
    by_x = ds["resid_mid"].groupby(ds["x"].load()).max()
    for v in np.unique(x):
        want = ref["resid_mid"][x == v].max(axis=0)
        np.testing.assert_array_equal(by_x.sel(x=v).values, want)
    # groupby over a coordinate of the activations themselves (layer)
    by_layer = ds["resid_post"].groupby("layer").std(...)
    np.testing.assert_allclose(by_layer.values, ref["resid_post"].std(axis=(0, 2, 3)), rtol=1e-5)


def test_where_masks_padding_equal_numpy(opened) -> None:
    ds, ref, syn = opened
    a = ds["resid_post"]
    real = ds["token"] < ds["n_tokens"]
    got = a.where(real).mean("token")
    nt = syn.metadata.n_tokens
    mask = np.arange(7)[None, :] < nt[:, None]  # (prompt, token)
    want = np.where(mask[:, None, :, None], ref["resid_post"], np.nan)
    np.testing.assert_allclose(got.values, np.nanmean(want, axis=2), rtol=1e-5, atol=1e-6)
    pos = a.where(a > 0)
    np.testing.assert_array_equal(
        pos.values, np.where(ref["resid_post"] > 0, ref["resid_post"], np.nan)
    )
    np.testing.assert_array_equal(
        xr.where(a > 1, a, 0.0).values, np.where(ref["resid_post"] > 1, ref["resid_post"], 0.0)
    )
    in_answer = ds["span_mask"].sel(span="answer")
    last = a.where(in_answer).max("token")  # the answer token's activation
    idx = nt - 1
    np.testing.assert_array_equal(last.values, ref["resid_post"][np.arange(23), :, idx, :])


def test_arithmetic_equals_numpy(opened) -> None:
    ds, ref, _ = opened
    a, m = ds["resid_post"], ds["resid_mid"]
    r, rm = ref["resid_post"], ref["resid_mid"]
    np.testing.assert_array_equal((a * 2 + 1).values, r * 2 + 1)
    np.testing.assert_array_equal((a - m).values, r - rm)
    np.testing.assert_array_equal((abs(a) ** 2).values, np.abs(r) ** 2)
    np.testing.assert_array_equal(np.sqrt(abs(a)).values, np.sqrt(np.abs(r)))
    value = np.asarray(ds["value"].values)
    np.testing.assert_allclose((a * ds["value"]).values, r * value[:, None, None, None], rtol=1e-6)
    arr = np.linspace(-1, 1, 16, dtype=np.float32)
    np.testing.assert_array_equal((a + arr).values, r + arr)
    centred = a - a.mean("prompt")
    np.testing.assert_allclose(centred.values, r - r.mean(axis=0), rtol=1e-5, atol=1e-5)
    norm = np.sqrt((a**2).sum("d_model"))
    np.testing.assert_allclose(norm.values, np.linalg.norm(r, axis=-1), rtol=1e-5)
    dot = xr.dot(a.sel(layer=1), a.sel(layer=4), dim="d_model")
    np.testing.assert_allclose(
        dot.values, np.einsum("ptd,ptd->pt", r[:, 0], r[:, 1]), rtol=1e-5, atol=1e-5
    )
    corr = xr.corr(
        a.sel(layer=1, prompt=0, token=0), a.sel(layer=4, prompt=0, token=0), dim="d_model"
    )
    np.testing.assert_allclose(corr.values, np.corrcoef(r[0, 0, 0], r[0, 1, 0])[0, 1], rtol=1e-5)


def test_reading_and_indexing_equal_numpy(opened) -> None:
    ds, ref, _ = opened
    a = ds["resid_post"]
    r = ref["resid_post"]
    sub = a.sel(layer=4).isel(prompt=slice(2, 9), token=[0, 3])
    want = r[2:9, 1][:, [0, 3]]
    np.testing.assert_array_equal(sub.values, want)
    np.testing.assert_array_equal(sub.to_numpy(), want)
    np.testing.assert_array_equal(np.asarray(sub), want)
    np.testing.assert_array_equal(sub.compute().values, want)
    loaded = sub.load()
    assert isinstance(loaded.data, np.ndarray) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded.values, want)
    (computed,) = da.compute(a.data[5:7, 2])
    np.testing.assert_array_equal(computed, r[5:7, 2])
    np.testing.assert_array_equal(a.sel(layer=[6, 1]).values, r[:, [2, 0]])
    np.testing.assert_array_equal(a.isel(prompt=[20, 0, 3]).values, r[[20, 0, 3]])
    np.testing.assert_array_equal(ds.isel(prompt=1)["resid_mid"].values, ref["resid_mid"][1])


def test_window_ops_equal_numpy(opened) -> None:
    ds, ref, _ = opened
    a = ds["resid_post"].sel(layer=1)
    r = ref["resid_post"][:, 0]
    rolled = a.rolling(token=3).mean().values
    win = np.lib.stride_tricks.sliding_window_view(r, 3, axis=1).mean(axis=-1)  # (p, t-2, d, )
    np.testing.assert_allclose(rolled[:, 2:], win, rtol=1e-5, atol=1e-6)
    assert np.isnan(rolled[:, :2]).all()
    coarse = a.coarsen(d_model=4).mean().values
    np.testing.assert_allclose(coarse, r.reshape(23, 7, 4, 4).mean(axis=-1), rtol=1e-5, atol=1e-6)
    diff = a.diff("token").values
    np.testing.assert_array_equal(diff, np.diff(r, axis=1))


def test_dtype_cast_and_decoding_combine(source) -> None:
    path, syn, *_ = source
    f64 = actstore.open(path, group="arith", dtype="float64")
    assert f64["resid_post"].dtype == np.float64
    np.testing.assert_array_equal(
        f64["resid_post"].values, syn.activations["resid_post"].astype(np.float64)
    )
    assert f64["score"].dtype == np.float32  # not a hook: decoded only
    back = actstore.open(path, group="arith", dtype="bfloat16")
    np.testing.assert_array_equal(
        _bits(back["resid_post"].values), _bits(syn.activations["resid_post"])
    )
    cache = open_cache(path)
    act = cache.activations("arith", layers=[4])
    assert act.dtype == np.float32
    np.testing.assert_array_equal(
        act.values, syn.activations["resid_post"][:, [1]].astype(np.float32)
    )
    raw = cache.activations("arith", layers=[4], decode_bfloat16=False)
    np.testing.assert_array_equal(_bits(raw.values), _bits(syn.activations["resid_post"][:, [1]]))
    assert cache.read_dataset("probes/value")["coef"].dtype == np.float32
    assert cache.read_dataset("probes/value", decode_bfloat16=False)["coef"].dtype == BFLOAT16


def test_decoded_set_writes_back_as_bfloat16(source, tmp_path) -> None:
    # encoding["dtype"] carries the stored dtype: to_zarr writes bfloat16, the same bits
    path, syn, _, _ = source
    ds = actstore.open(path, group="arith")[["resid_post"]]
    ds.to_zarr(tmp_path / "w.zarr", zarr_format=3, consolidated=False, align_chunks=True)
    arr = zarr.open_group(tmp_path / "w.zarr", mode="r")["resid_post"]
    assert arr.dtype == BFLOAT16
    np.testing.assert_array_equal(_bits(arr[:]), _bits(syn.activations["resid_post"]))


# --- plain xarray: actstore.decode_bfloat16 ------------------------------------------------------


@pytest.mark.parametrize("chunks", [{}, None], ids=["dask", "lazy"])
def test_plain_xarray_recipe(source, chunks) -> None:
    path, syn, derived, _ = source
    plain = xr.open_zarr(path, group="arith", consolidated=False, chunks=chunks)
    assert plain["resid_post"].dtype == BFLOAT16
    with pytest.raises(TypeError, match="NumPy dtype"):  # what the decoding is for
        plain["resid_post"].mean().values
    ds = actstore.decode_bfloat16(plain)
    a = ds["resid_post"]
    assert a.dtype == np.float32 and a.encoding["dtype"] == BFLOAT16
    if chunks is not None:
        assert isinstance(a.data, da.Array) and a.chunks == plain["resid_post"].chunks
    else:  # xarray's lazily indexed array: nothing read yet
        assert not isinstance(a.variable._data, np.ndarray)
    r = syn.activations["resid_post"].astype(np.float32)
    np.testing.assert_allclose(a.sel(layer=1).mean().values, r[:, 0].mean(), rtol=1e-5)
    np.testing.assert_array_equal(a.isel(prompt=3, layer=2).values, r[3, 2])
    np.testing.assert_array_equal(ds["score"].values, derived.astype(np.float32))
    assert ds["value"].dtype == np.float64  # others unchanged
    # a DataArray and a Variable alone, and a DataTree
    one = actstore.decode_bfloat16(plain["resid_mid"])
    assert one.name == "resid_mid" and one.attrs == plain["resid_mid"].attrs
    np.testing.assert_array_equal(one.values, syn.activations["resid_mid"].astype(np.float32))
    var = actstore.decode_bfloat16(plain["resid_mid"].variable)
    np.testing.assert_array_equal(var.values, syn.activations["resid_mid"].astype(np.float32))
    tree = actstore.decode_bfloat16(xr.open_datatree(path, engine="zarr", consolidated=False))
    np.testing.assert_array_equal(tree["arith/resid_post"].max().values, r.max())
    assert tree["arith/resid_post"].encoding["dtype"] == BFLOAT16


def test_plain_xarray_recipe_on_a_zip(source, tmp_path) -> None:
    path, syn, _, _ = source
    copy_cache(path, tmp_path / "c.zip")
    store = zarr.storage.ZipStore(tmp_path / "c.zip", mode="r")
    ds = actstore.decode_bfloat16(xr.open_zarr(store, group="arith", consolidated=False))
    np.testing.assert_array_equal(
        ds["resid_post"].values, syn.activations["resid_post"].astype(np.float32)
    )
    store.close()


def test_decode_helper_leaves_other_dtypes_and_refuses_non_xarray() -> None:
    ds = xr.Dataset({"a": ("x", np.arange(3.0)), "b": ("x", np.arange(3, dtype=BFLOAT16))})
    out = actstore.decode_bfloat16(ds)
    assert out["a"].dtype == np.float64 and out["b"].dtype == np.float32
    np.testing.assert_array_equal(out["b"].values, [0, 1, 2])
    assert ds["b"].dtype == BFLOAT16  # the input is not changed
    coord = xr.DataArray(np.arange(2.0), coords={"c": ("c", np.array([1.5, 2.5], dtype=BFLOAT16))})
    assert actstore.decode_bfloat16(coord)["c"].dtype == np.float32
    with pytest.raises(InvalidArgumentError, match="expected an xarray Dataset"):
        actstore.decode_bfloat16(np.arange(3, dtype=BFLOAT16))


def test_open_refuses_a_non_bool_decode_flag(source) -> None:
    path, *_ = source
    with pytest.raises(InvalidArgumentError, match="expected decode_bfloat16 True or False"):
        actstore.open(path, group="arith", decode_bfloat16="no")  # type: ignore[arg-type]


# --- siblings: bf16 labels, analysis on decoded sets ----------------------------------------------


def test_bfloat16_label_is_stored_as_a_number(tmp_path) -> None:
    from actstore.analysis._data import label_vector

    syn = make_synthetic(n_prompts=9, seed=2)
    lab = np.linspace(-3, 5, 9).astype(BFLOAT16)
    syn.metadata.labels["half"] = lab
    write_synthetic(tmp_path / "l.zarr", syn)
    ds = actstore.open(tmp_path / "l.zarr", group="arith")
    assert ds["half"].dtype == np.float64  # not the strings "-3.0", ...
    np.testing.assert_array_equal(ds["half"].values, lab.astype(np.float64))
    mem = xr.Dataset({"t": ("prompt", lab)})
    np.testing.assert_array_equal(label_vector(mem, "t"), lab.astype(np.float64))


def test_analysis_gives_the_same_numbers_on_raw_and_decoded(tmp_path) -> None:
    from actstore.analysis import detect, fit_probes
    from tests._fixtures.analysis import planted_set, write_set

    train = planted_set(n_prompts=48, kind="train", seed=5, d_model=16)
    test = planted_set(n_prompts=12, kind="test", seed=6, d_model=16)
    url = tmp_path / "bf16.zarr"
    write_set(url, "arithmetic", train, dtype="bfloat16")
    write_set(url, "physics", test, dtype="bfloat16")
    from_cache = fit_probes(url, prompt_set="arithmetic", target="value")
    decoded = actstore.open(url, group="arithmetic")
    assert decoded["resid_post"].dtype == np.float32
    from_ds = fit_probes(decoded, prompt_set="arithmetic", target="value")
    from_tree = fit_probes(actstore.open(url), prompt_set="arithmetic", target="value")
    for other in (from_ds, from_tree):
        for key in ("coef", "intercept", "cv_r2"):
            np.testing.assert_allclose(
                other.dataset[key].values, from_cache.dataset[key].values, rtol=1e-9, atol=1e-12
            )
    # and equal to a fit on the float32-converted activations in memory (the independent path)
    rounded = train.assign(resid_post=train["resid_post"].astype(BFLOAT16).astype(np.float32))
    ref = fit_probes(rounded, prompt_set="arithmetic", target="value")
    np.testing.assert_allclose(
        from_cache.dataset["coef"].values, ref.dataset["coef"].values, rtol=1e-9
    )
    a = detect(url, from_cache, prompt_set="physics", target="v_squared", write=False)
    b = detect(
        actstore.open(url, group="physics"),
        from_cache,
        prompt_set="physics",
        target="v_squared",
        write=False,
    )
    np.testing.assert_array_equal(a.predictions.values, b.predictions.values)


def test_info_says_how_bfloat16_opens(source, tmp_path) -> None:
    from actstore.store import format_info

    path, *_ = source
    text = format_info(actstore.store.cache_info(path))
    assert "d_model 16, bfloat16 (actstore.open decodes it to float32)" in text
    f32 = make_synthetic(n_prompts=5, dtype="float32", seed=4)
    write_synthetic(tmp_path / "f.zarr", f32)
    text = format_info(actstore.store.cache_info(tmp_path / "f.zarr"))
    assert "d_model 16, float32\n" in text
