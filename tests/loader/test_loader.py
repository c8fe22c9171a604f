"""ActivationLoader: every real token once per epoch, reproducible shuffles, resume, workers, S3.

The reference is always the numpy arrays the synthetic cache was written from, masked to real
tokens by hand: never the store's own read path.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from actstore.errors import (  # noqa: E402
    IncompleteCacheError,
    InvalidArgumentError,
    UnknownNameError,
)
from actstore.torch import ActivationLoader  # noqa: E402
from tests._fixtures.store import make_synthetic, write_synthetic  # noqa: E402


def _reference(syn, layers=None, keep=None) -> np.ndarray:
    """Real-token rows ``(row, layer, d_model)`` as float32, straight from the written arrays."""
    acts = syn.activations["resid_post"].astype(np.float32)
    nt = np.asarray(syn.metadata.n_tokens)
    pos = np.arange(acts.shape[2])[None, :]
    mask = pos < nt[:, None] if keep is None else keep
    li = [syn.spec.layers.index(la) for la in layers or syn.spec.layers]
    return acts[:, li].transpose(0, 2, 1, 3)[mask]


def _hashes(rows) -> list[str]:
    arr = rows.numpy() if isinstance(rows, torch.Tensor) else rows
    arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(len(arr), -1)
    return sorted(hashlib.blake2b(r.tobytes(), digest_size=16).hexdigest() for r in arr)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """41 ragged prompts, 3 layers, bfloat16, shards of 6 prompts, inner chunks of 3 prompts."""
    syn = make_synthetic(n_prompts=41, n_tokens=9, d_model=8, block_size=6, seed=3)
    path = tmp_path_factory.mktemp("loader") / "c.zarr"
    write_synthetic(path, syn)
    return path, syn


def _epoch(loader) -> list:
    return list(loader)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_every_real_token_exactly_once(tmp_path, dtype) -> None:
    syn = make_synthetic(n_prompts=29, dtype=dtype, block_size=4, seed=5)
    write_synthetic(tmp_path / "c.zarr", syn)
    loader = ActivationLoader(tmp_path / "c.zarr", batch_size=10, buffer_tokens=25)
    batches = _epoch(loader)
    rows = torch.cat(batches)
    ref = _reference(syn)
    assert rows.shape == ref.shape == (int(np.sum(syn.metadata.n_tokens)), 3, 16)
    assert all(b.shape == (10, 3, 16) for b in batches[:-1])
    assert rows.dtype == torch.float32
    assert _hashes(rows) == _hashes(ref)
    # padding holds zeros in the cache: no all-zero row may appear
    assert not bool((rows == 0).all(dim=(1, 2)).any())


def test_one_layer_gives_2d_batches_in_order_without_shuffle(cache) -> None:
    path, syn = cache
    loader = ActivationLoader(path, layer=4, batch_size=16, shuffle=False)
    rows = torch.cat(_epoch(loader))
    np.testing.assert_array_equal(rows.numpy(), _reference(syn, [4])[:, 0])
    several = torch.cat(_epoch(ActivationLoader(path, layers=[6, 1], batch_size=16, shuffle=False)))
    np.testing.assert_array_equal(several.numpy(), _reference(syn, [6, 1]))


def test_order_is_reproducible_per_seed_and_epoch(cache) -> None:
    path, syn = cache
    kw = {"batch_size": 16, "buffer_tokens": 40}
    a, b = ActivationLoader(path, seed=1, **kw), ActivationLoader(path, seed=1, **kw)
    first = _epoch(a)
    assert all(torch.equal(x, y) for x, y in zip(first, _epoch(b), strict=True))
    a.set_epoch(1)
    second = _epoch(a)
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert _hashes(torch.cat(second)) == _hashes(torch.cat(first)) == _hashes(_reference(syn))
    b.set_epoch(1)
    assert torch.equal(torch.cat(_epoch(b)), torch.cat(second))
    other = ActivationLoader(path, seed=2, **kw)
    assert not torch.equal(torch.cat(_epoch(other)), torch.cat(first))
    # iterating again without set_epoch repeats the same epoch
    assert torch.equal(torch.cat(_epoch(a)), torch.cat(second))


def test_shuffle_mixes_tokens_across_shards(cache) -> None:
    path, syn = cache
    ref = _reference(syn)
    nt = np.asarray(syn.metadata.n_tokens)
    prompt_of = {h: p for p, h in zip(np.repeat(np.arange(len(nt)), nt), _row_keys(ref))}
    loader = ActivationLoader(path, batch_size=32, buffer_tokens=64, seed=0)
    first = next(iter(loader))
    shards = {prompt_of[k] // 6 for k in _row_keys(first.numpy())}
    assert len(shards) >= 2, f"first batch drew from shards {shards} only"
    prompts = [prompt_of[k] for k in _row_keys(first.numpy())]
    assert prompts != sorted(prompts), "rows within a window were not permuted"


def _row_keys(arr: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.ascontiguousarray(arr, dtype=np.float32).reshape(len(arr), -1)]


@pytest.mark.parametrize("stop", [1, 3, 7])
def test_resume_mid_epoch_neither_repeats_nor_skips(cache, stop) -> None:
    path, _ = cache
    kw = {"batch_size": 12, "buffer_tokens": 30, "seed": 4}
    full = ActivationLoader(path, **kw)
    full.set_epoch(2)
    expected = _epoch(full)
    run = ActivationLoader(path, **kw)
    run.set_epoch(2)
    got = []
    for i, batch in enumerate(run):
        got.append(batch)
        if i + 1 == stop:
            break
    state = run.state_dict()
    assert state["batches"] == stop and state["epoch"] == 2
    fresh = ActivationLoader(path, **kw)
    fresh.load_state_dict(state)
    got.extend(_epoch(fresh))
    assert len(got) == len(expected)
    assert all(torch.equal(x, y) for x, y in zip(got, expected, strict=True))


def test_resume_refuses_a_state_of_a_different_loader(cache) -> None:
    path, _ = cache
    state = ActivationLoader(path, batch_size=12).state_dict()
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        ActivationLoader(path, batch_size=13).load_state_dict(state)
    with pytest.raises(InvalidArgumentError, match="state_dict"):
        ActivationLoader(path, batch_size=12).load_state_dict({"seed": 1})


def test_dataloader_workers_yield_each_token_once(cache) -> None:
    path, syn = cache
    loader = ActivationLoader(path, batch_size=8, buffer_tokens=20)
    dl = torch.utils.data.DataLoader(loader, batch_size=None, num_workers=2)
    rows = torch.cat(list(dl))
    assert _hashes(rows) == _hashes(_reference(syn))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("stop", [5, 24])
def test_dataloader_workers_resume(cache, stop) -> None:
    """Three workers with 10, 8 and 8 batches: stop inside the first rounds, and after two
    workers have finished (the DataLoader then takes only from the third)."""
    path, syn = cache
    kw = {"batch_size": 8, "buffer_tokens": 20, "seed": 9}
    assert ActivationLoader(path, **kw).schedule(3).n_batches == [10, 8, 8]
    expected = list(ActivationLoader(path, **kw).dataloader(num_workers=3))
    run = ActivationLoader(path, **kw)
    got = []
    for i, batch in enumerate(run.dataloader(num_workers=3)):
        got.append(batch)
        if i + 1 == stop:
            break
    state = run.state_dict()
    assert state["streams"] == 3 and state["batches"] == stop
    fresh = ActivationLoader(path, **kw)
    fresh.load_state_dict(state)
    with pytest.raises(InvalidArgumentError, match="num_workers"):
        list(fresh.dataloader(num_workers=2))
    got.extend(fresh.dataloader(num_workers=3))
    assert len(got) == len(expected)
    assert all(torch.equal(x, y) for x, y in zip(got, expected, strict=True))
    assert _hashes(torch.cat(got)) == _hashes(_reference(syn))


def test_drop_last_gives_full_batches_only(cache) -> None:
    path, syn = cache
    batches = _epoch(ActivationLoader(path, batch_size=16, drop_last=True))
    total = int(np.sum(syn.metadata.n_tokens))
    assert all(b.shape[0] == 16 for b in batches)
    assert len(batches) == total // 16


def test_filters_prompts_span_and_bos(tmp_path) -> None:
    bos_id = 499
    syn = make_synthetic(
        n_prompts=17,
        block_size=4,
        seed=8,
        fingerprint={"model": "m", "bos": {"bos_token_id": bos_id, "prepended": False}},
    )
    syn.metadata.token_id[::2, 0] = bos_id  # half the prompts start with BOS
    write_synthetic(tmp_path / "c.zarr", syn)
    nt = np.asarray(syn.metadata.n_tokens)
    real = np.arange(7)[None, :] < nt[:, None]
    kw = {"batch_size": 5, "buffer_tokens": 9}

    sub = ActivationLoader(tmp_path / "c.zarr", prompts=[2, 3, 11], **kw)
    keep = real & np.isin(np.arange(17), [2, 3, 11])[:, None]
    assert _hashes(torch.cat(_epoch(sub))) == _hashes(_reference(syn, keep=keep))

    span = ActivationLoader(tmp_path / "c.zarr", span="span:operands", **kw)
    keep = real & syn.metadata.span_masks["operands"]
    assert _hashes(torch.cat(_epoch(span))) == _hashes(_reference(syn, keep=keep))

    nobos = ActivationLoader(tmp_path / "c.zarr", exclude_bos=True, **kw)
    keep = real.copy()
    keep[::2, 0] = False
    rows = torch.cat(_epoch(nobos))
    assert len(rows) == int(real.sum()) - 9
    assert _hashes(rows) == _hashes(_reference(syn, keep=keep))


def test_bad_arguments_fail_with_one_line(cache, tmp_path) -> None:
    path, syn = cache
    with pytest.raises(InvalidArgumentError, match="both"):
        ActivationLoader(path, layer=1, layers=[4])
    with pytest.raises(UnknownNameError, match="layers"):
        ActivationLoader(path, layer=2)
    with pytest.raises(UnknownNameError, match="span"):
        ActivationLoader(path, span="nope")
    with pytest.raises(UnknownNameError, match="hook"):
        ActivationLoader(path, hook="resid_mid")
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        ActivationLoader(path, batch_size=0)
    with pytest.raises(InvalidArgumentError, match="BOS"):
        ActivationLoader(path, exclude_bos=True)
    with pytest.raises(InvalidArgumentError, match="prompt indices"):
        ActivationLoader(path, prompts=[0, 41])
    write_synthetic(tmp_path / "part.zarr", syn, blocks=[0, 2])
    with pytest.raises(IncompleteCacheError, match="missing blocks"):
        ActivationLoader(tmp_path / "part.zarr")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"layers": []}, "non-empty list"),  # was: silently every stored layer
        ({"layers": 4}, "list of integer layer indices"),  # was: TypeError
        ({"layers": "4"}, "list of integer layer indices"),
        ({"layers": [4, 4]}, "distinct layers"),  # was: the same layer twice per row
        ({"layer": True}, "one integer"),  # was: layer 1
        ({"layer": 4.0}, "one integer"),
        ({"seed": -1}, "seed"),  # was: numpy's ValueError
        ({"seed": "a"}, "seed"),
        ({"device": "tpu"}, "torch device"),  # was: torch's RuntimeError
        ({"prompts": slice(0, 10, 0)}, "non-zero step"),  # was: ValueError
        ({"prompts": np.zeros(41, dtype=bool)}, "at least one token"),  # was: an empty epoch
        ({"prompts": slice(5, 5)}, "at least one token"),
    ],
)
def test_more_bad_arguments_fail_with_one_line(cache, kw, match) -> None:
    path, _ = cache
    with pytest.raises(InvalidArgumentError, match=match) as err:
        ActivationLoader(path, **kw)
    assert "\n" not in str(err.value)


def test_cuda_device_without_cuda_is_refused(cache) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(InvalidArgumentError, match="no CUDA GPU"):
        ActivationLoader(cache[0], device="cuda")


def test_progress_is_off_by_default_and_logs_when_asked(cache, capsys) -> None:
    path, syn = cache
    _epoch(ActivationLoader(path, batch_size=64))
    assert capsys.readouterr().err == ""
    _epoch(ActivationLoader(path, batch_size=64, progress=True))
    total = int(np.sum(syn.metadata.n_tokens))
    assert f"actstore loader: epoch 0: {total}/{total} tokens" in capsys.readouterr().err


def test_output_dtype_and_len(cache) -> None:
    path, syn = cache
    loader = ActivationLoader(path, batch_size=16, dtype=torch.float16)
    batches = _epoch(loader)
    assert {b.dtype for b in batches} == {torch.float16}
    assert len(loader) == len(batches) == -(-int(np.sum(syn.metadata.n_tokens)) // 16)
    ref = torch.from_numpy(_reference(syn)).to(torch.float16)
    assert _hashes(torch.cat(batches).float()) == _hashes(ref.float())


@pytest.fixture(scope="module")
def s3_options(s3_server):
    """Storage options of the shared loopback S3 server (bucket ``caches``)."""
    return s3_server.storage_options


def test_s3_through_the_loopback_server(cache, s3_options) -> None:
    from actstore.store import copy_cache

    path, syn = cache
    url = "s3://caches/loader.zarr"
    copy_cache(path, url, dst_storage_options=s3_options)
    kw = {"batch_size": 16, "buffer_tokens": 40, "seed": 3}
    remote = ActivationLoader(url, storage_options=s3_options, **kw)
    got = _epoch(remote)
    local = _epoch(ActivationLoader(path, **kw))
    assert all(torch.equal(x, y) for x, y in zip(got, local, strict=True))
    assert _hashes(torch.cat(got)) == _hashes(_reference(syn))
    dl = torch.utils.data.DataLoader(remote, batch_size=None, num_workers=2)
    assert _hashes(torch.cat(list(dl))) == _hashes(_reference(syn))


def test_docs_sae_loop_runs(cache) -> None:
    """The ten-line SAE loop of docs/sae-training.md, run as written against a small cache."""
    from pathlib import Path

    path, syn = cache
    doc = (Path(__file__).parents[2] / "docs" / "sae-training.md").read_text()
    block = doc.split("<!-- BEGIN sae-loop -->", 1)[1].split("<!-- END sae-loop -->", 1)[0]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    assert (
        len(
            [ln for ln in code.splitlines() if ln.strip() and not ln.startswith(("import", "from"))]
        )
        <= 10
    )
    code = code.replace('"cache.zarr"', repr(str(path))).replace('"physics"', '"arith"')
    code = code.replace("layer=15", "layer=4").replace("batch_size=4096", "batch_size=32")
    ns: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "docs/sae-training.md", "exec"), ns)
    loader = ns["loader"]
    assert loader.epoch == 1 and loader.state_dict()["batches"] == 0  # both epochs ran to the end
    assert loader.n_tokens == int(np.sum(syn.metadata.n_tokens))
    assert torch.isfinite(ns["loss"])
    assert ns["enc"].weight.shape == (8 * 8, 8)
