"""The parallel write path: plain Zarr v3 that zarr-python and xarray read back bit for bit.

The reference is the array handed to ``write_block``, compared as raw bits with what an
independent reader (zarr-python's own sharding codec, xarray) decodes from the store.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import xarray as xr
import zarr

import actstore  # noqa: F401  (registers bfloat16)
from actstore.errors import FingerprintMismatchError, InvalidArgumentError
from actstore.store import PromptSetSpec, open_cache
from actstore.store.core._shardio import set_write_threads, shard_plan
from actstore.store.format._codecs import parse_codec
from tests._fixtures.store import make_synthetic, write_synthetic


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def _spec(syn, **changes):
    import dataclasses

    return dataclasses.replace(syn.spec, **changes)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("codec", ["zstd:1", "zstd:3", "none"])
def test_zarr_python_reads_the_new_path_bit_for_bit(tmp_path, dtype, codec) -> None:
    syn = make_synthetic(dtype=dtype, n_prompts=23, block_size=5, hooks=("resid_post", "resid_mid"))
    syn.spec = _spec(syn, codec=codec)
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn)
    for hook, want in syn.activations.items():
        # the new path wrote it (zarr's own writer would be used when no plan applies)
        assert shard_plan(writer._arrays[hook]) is not None
        arr = zarr.open_array(str(path / "arith" / hook), mode="r")
        got = arr[...]
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(_bits(got), _bits(want))
        # one inner chunk of one prompt range, read through zarr's partial shard decode
        np.testing.assert_array_equal(_bits(arr[21:23, 1:2]), _bits(want[21:23, 1:2]))
        meta = json.loads((path / "arith" / hook / "zarr.json").read_text())
        inner = [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]]
        assert inner == (["bytes", "crc32c"] if codec == "none" else ["bytes", "zstd", "crc32c"])
    ds = xr.open_zarr(path, group="arith")
    np.testing.assert_array_equal(
        _bits(ds["resid_post"].values), _bits(syn.activations["resid_post"])
    )


def test_layer_major_file_order_and_one_layer_one_range(tmp_path) -> None:
    """The shard's chunks are stored layer by layer: one layer of a block is one byte range
    (zarr-python itself writes Morton order)."""
    syn = make_synthetic(n_prompts=20, block_size=10, n_tokens=64, d_model=1024, layers=(0, 1, 2))
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn)
    assert writer.layout.chunk_prompts < writer.block_size  # several chunks per layer
    raw = (path / "arith" / "resid_post" / "c" / "0" / "0" / "0" / "0").read_bytes()
    grid = (writer.block_size // writer.layout.chunk_prompts, 3, 1, 1)
    index = np.frombuffer(raw[-(16 * int(np.prod(grid)) + 4) : -4], dtype="<u8").reshape(*grid, 2)
    offsets = index[..., 0].reshape(grid[:2])
    assert np.all(np.diff(offsets.T.ravel().astype(np.int64)) > 0)  # layer-major
    assert int(offsets[0, 0]) == 0


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_count_does_not_change_the_bytes(tmp_path, threads) -> None:
    syn = make_synthetic(n_prompts=12, block_size=6, n_tokens=32, d_model=512)
    write_synthetic(tmp_path / "ref.zarr", syn)
    try:
        set_write_threads(threads)
        write_synthetic(tmp_path / "t.zarr", syn)
    finally:
        set_write_threads(None)
    for b in (0, 1):
        rel = f"arith/resid_post/c/{b}/0/0/0"
        assert (tmp_path / "ref.zarr" / rel).read_bytes() == (
            tmp_path / "t.zarr" / rel
        ).read_bytes()


def test_remote_memory_store_uses_the_new_path_and_reads_back(tmp_path) -> None:
    syn = make_synthetic()
    url = f"memory://write-path-{uuid.uuid4().hex}/c.zarr"
    _, writer = write_synthetic(url, syn)
    assert shard_plan(writer._arrays["resid_post"]) is not None
    got = zarr.open_array(open_cache(url).store, path="arith/resid_post", mode="r")[...]
    np.testing.assert_array_equal(_bits(got), _bits(syn.activations["resid_post"]))


def test_refusing_prepare_leaves_nothing_of_the_block(tmp_path) -> None:
    syn = make_synthetic(hooks=("resid_post", "resid_mid"))
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[])

    def prepare(hook, region, index):
        if hook == "resid_mid" and index[1].start == 2:
            raise ValueError("refused")

    s, e = writer.block_range(1)
    with pytest.raises(ValueError, match="refused"):
        writer.write_block(1, {h: a[s:e] for h, a in syn.activations.items()}, prepare)
    for hook in syn.activations:
        assert not (tmp_path / "c.zarr" / "arith" / hook / "c" / "1").exists()
    assert writer.missing_blocks() == list(range(writer.n_blocks))


def test_prepare_sees_every_element_once_and_its_edits_are_stored(tmp_path) -> None:
    syn = make_synthetic(n_prompts=23, block_size=5)
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[])
    seen = []

    def prepare(hook, region, index):
        seen.append(region.size)
        region[:, :, 0, 0] = 7  # stored as written by prepare

    for b in range(writer.n_blocks):
        s, e = writer.block_range(b)
        writer.write_block(b, {"resid_post": syn.activations["resid_post"][s:e].copy()}, prepare)
    assert sum(seen) == syn.activations["resid_post"].size
    got = zarr.open_array(str(tmp_path / "c.zarr" / "arith" / "resid_post"), mode="r")[...]
    want = syn.activations["resid_post"].copy()
    want[:, :, 0, 0] = 7
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_codec_is_stored_and_a_different_one_is_refused_on_resume(tmp_path) -> None:
    syn = make_synthetic()
    syn.spec = _spec(syn, codec="ZSTD:3")
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[0])
    assert writer.spec.codec == "zstd:3"
    reopened = open_cache(tmp_path / "c.zarr", mode="r+")
    # None: whatever is stored (resuming without --codec)
    again = reopened.prompt_set_writer("arith", _spec(syn, codec=None), syn.metadata)
    assert again.spec.codec == "zstd:3"
    with pytest.raises(FingerprintMismatchError, match="codec"):
        reopened.prompt_set_writer("arith", _spec(syn, codec="zstd:1"), syn.metadata)


def test_default_codec_is_zstd_1_and_old_specs_mean_it(tmp_path) -> None:
    syn = make_synthetic()
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[0])
    assert writer.spec.codec == "zstd:1"
    meta = json.loads((tmp_path / "c.zarr" / "arith" / "resid_post" / "zarr.json").read_text())
    zstd = meta["codecs"][0]["configuration"]["codecs"][1]
    assert zstd == {"name": "zstd", "configuration": {"level": 1, "checksum": False}}


# breaker11: "zstd:1_0" was read as level 10 (Python's int() takes underscores), "zstd:" and
# other scripts' digits ("zstd:\u0663") were accepted too
@pytest.mark.parametrize(
    "bad", ["zstd:0", "zstd:23", "zstd:x", "lz4", "", 3, "zstd:1_0", "zstd:", "zstd:\u0663"]
)
def test_bad_codec_names_are_refused(bad) -> None:
    with pytest.raises(InvalidArgumentError, match="expected --codec"):
        parse_codec(bad)
    with pytest.raises(InvalidArgumentError, match="expected --codec"):
        PromptSetSpec(
            n_prompts=1, n_tokens_max=1, layers=(0,), d_model=1, dtype="float32", codec=bad
        )


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5", "\u0663"])
def test_bad_write_threads_variable_is_refused_not_ignored(monkeypatch, tmp_path, value) -> None:
    """breaker11: a bad ``ACTSTORE_WRITE_THREADS`` was silently replaced by the core count."""
    from actstore.extractors import extract
    from actstore.store.core._shardio import write_threads

    monkeypatch.setenv("ACTSTORE_WRITE_THREADS", value)
    with pytest.raises(InvalidArgumentError, match="expected ACTSTORE_WRITE_THREADS"):
        write_threads()
    # extract refuses it up front, before looking at the model or writing anything
    out = tmp_path / "c.zarr"
    with pytest.raises(InvalidArgumentError, match="expected ACTSTORE_WRITE_THREADS"):
        extract(model=tmp_path / "no-model", prompts="multiplication", out=out, n_prompts=2)
    assert not out.exists()
    monkeypatch.setenv("ACTSTORE_WRITE_THREADS", " 3 ")
    assert write_threads() == 3
    monkeypatch.setenv("ACTSTORE_WRITE_THREADS", "")
    assert write_threads() >= 1


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT"])
def test_full_disk_or_quota_in_write_block_is_disk_full_error_with_its_cause(
    tmp_path, monkeypatch, code
) -> None:
    """breaker11: ``write_block`` turned only ENOSPC into DiskFullError (EDQUOT, a cluster's quota,
    escaped as a bare OSError) and dropped the cause (``from None``) that --debug shows."""
    import errno
    import os

    import zarr.storage._local as local

    from actstore.errors import DiskFullError

    syn = make_synthetic(n_prompts=7, block_size=3, d_model=8)
    _, writer = write_synthetic(tmp_path / "c.zarr", syn, blocks=[0])
    real_put, full = local._put, [True]

    def put(path, value, exclusive=False):
        if full[0] and "/c/" in str(path):
            raise OSError(getattr(errno, code), "No space left", str(path))
        return real_put(path, value, exclusive)

    real_writev = os.writev

    def writev(fd, buffers):  # the shard file itself (.partial + rename, not zarr's _put)
        if full[0]:
            os.write(fd, b"x")  # some bytes landed in the temporary file
            raise OSError(getattr(errno, code), "No space left")
        return real_writev(fd, buffers)

    monkeypatch.setattr(local, "_put", put)
    monkeypatch.setattr(os, "writev", writev)
    with pytest.raises(DiskFullError, match="free space and re-run") as info:
        writer.write_block(1, {h: a[3:6] for h, a in syn.activations.items()})
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == getattr(errno, code)
    assert writer.missing_blocks() == [1, 2]
    shards = tmp_path / "c.zarr" / "arith" / "resid_post" / "c"
    assert not [f for f in shards.rglob("*") if f.is_file() and f.parts[-4] == "1"]
    assert not list((tmp_path / "c.zarr").rglob("*.partial"))
    full[0] = False  # space freed: the same block is written and reads back bit for bit
    writer.write_block(1, {h: a[3:6] for h, a in syn.activations.items()})
    got = zarr.open_array(str(tmp_path / "c.zarr" / "arith" / "resid_post"), mode="r")[3:6]
    np.testing.assert_array_equal(_bits(got), _bits(syn.activations["resid_post"][3:6]))


def _write_in_child(url: str) -> None:
    syn = make_synthetic(n_prompts=7, block_size=3, d_model=8)
    write_synthetic(url, syn)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_writes_after_the_parent_used_the_encode_pool(tmp_path) -> None:
    """breaker11: the encode pool survived ``fork`` without its threads, so a child process
    (multiprocessing's default start method on Linux) hung forever in its first write_block."""
    import multiprocessing

    syn = make_synthetic(n_prompts=7, block_size=3, d_model=8)
    write_synthetic(tmp_path / "parent.zarr", syn)  # the parent's pool now exists
    child = multiprocessing.get_context("fork").Process(
        target=_write_in_child, args=(str(tmp_path / "child.zarr"),)
    )
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in write_block")
    assert child.exitcode == 0
    got = zarr.open_array(str(tmp_path / "child.zarr" / "arith" / "resid_post"), mode="r")[...]
    np.testing.assert_array_equal(_bits(got), _bits(syn.activations["resid_post"]))


# -- s19: layer-major blocks compressed in place, zstd into reused slots, direct shard files --


def _layer_major(a: np.ndarray) -> np.ndarray:
    """The same values stored (layer, prompt, token, d_model), seen as (prompt, layer, ...)."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _shard_files(root) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("c/*/*/*/*"))}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("codec", ["zstd:1", "none"])
def test_layer_major_blocks_read_back_bit_for_bit_and_write_the_same_bytes(
    tmp_path, dtype, codec
) -> None:
    """extract hands write_block layer-major buffers (each inner chunk one contiguous range,
    compressed where it lies): zarr-python reads them back bit for bit, and the shard files are
    byte-identical to those written from prompt-major arrays (ragged last block included)."""
    syn = make_synthetic(
        dtype=dtype, n_prompts=23, block_size=10, n_tokens=64, d_model=1024, layers=(0, 2, 5)
    )
    syn.spec = _spec(syn, codec=codec)
    _, writer = write_synthetic(tmp_path / "pm.zarr", syn)
    assert writer.layout.chunk_prompts < writer.block_size  # several chunks per layer
    lm = {h: _layer_major(a) for h, a in syn.activations.items()}
    assert not lm["resid_post"].flags.c_contiguous
    _, writer = write_synthetic(tmp_path / "lm.zarr", syn, blocks=[])
    for b in range(writer.n_blocks):
        s, e = writer.block_range(b)
        writer.write_block(b, {h: a[s:e] for h, a in lm.items()})
    got = zarr.open_array(str(tmp_path / "lm.zarr" / "arith" / "resid_post"), mode="r")[...]
    np.testing.assert_array_equal(_bits(got), _bits(syn.activations["resid_post"]))
    pm_files = _shard_files(tmp_path / "pm.zarr" / "arith" / "resid_post")
    assert len(pm_files) == writer.n_blocks
    assert _shard_files(tmp_path / "lm.zarr" / "arith" / "resid_post") == pm_files
    ds = xr.open_zarr(tmp_path / "lm.zarr", group="arith")
    np.testing.assert_array_equal(
        _bits(ds["resid_post"].values), _bits(syn.activations["resid_post"])
    )


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("codec", ["zstd:1", "zstd:3", "none"])
def test_every_chunk_is_numcodecs_zstd_output_with_its_crc32c(
    tmp_path, monkeypatch, native, codec
) -> None:
    """Each stored chunk is exactly numcodecs' ``Zstd(level).encode`` of the chunk's bytes (zero
    padded at the ragged edge) followed by google_crc32c of it, whether zstd is called through
    ctypes (native) or through numcodecs (the fallback without a loadable library)."""
    import google_crc32c
    from numcodecs import Zstd

    from actstore.store.core import _chunkcodec

    if native:
        assert _chunkcodec._native() is not None  # this machine has the library
    else:
        monkeypatch.setattr(_chunkcodec, "_NATIVE", None)
    syn = make_synthetic(n_prompts=17, block_size=10, n_tokens=64, d_model=1024, layers=(0, 3))
    syn.spec = _spec(syn, codec=codec)
    path = tmp_path / "c.zarr"
    _, writer = write_synthetic(path, syn)
    cp = writer.layout.chunk_prompts
    want_all = _bits(syn.activations["resid_post"])
    for b in range(writer.n_blocks):
        raw = (path / "arith" / "resid_post" / "c" / str(b) / "0" / "0" / "0").read_bytes()
        grid = (writer.block_size // cp, 2)
        index = np.frombuffer(raw[-(16 * grid[0] * grid[1] + 4) : -4], "<u8").reshape(*grid, 2)
        assert raw[-4:] == int(
            google_crc32c.value(raw[-(16 * grid[0] * grid[1] + 4) : -4])
        ).to_bytes(4, "little")
        s, e = writer.block_range(b)
        for i in range(grid[0]):
            for layer in range(2):
                lo = s + i * cp
                if lo >= e:
                    assert tuple(index[i, layer]) == (2**64 - 1, 2**64 - 1)
                    continue
                chunk = np.zeros((cp, 64, 1024), np.uint16)
                part = want_all[lo : min(lo + cp, e), layer]
                chunk[: len(part)] = part
                off, n = (int(x) for x in index[i, layer])
                body, crc = raw[off : off + n - 4], raw[off + n - 4 : off + n]
                want = chunk.tobytes() if codec == "none" else Zstd(int(codec[5:])).encode(chunk)
                assert body == want
                assert crc == int(google_crc32c.value(body)).to_bytes(4, "little")


def test_local_shard_file_equals_what_a_store_put_gets_and_leaves_no_temporary_file(
    tmp_path,
) -> None:
    """On a local directory the pieces go straight into the shard file; elsewhere (memory://)
    the joined object goes through ``store.set``: the same bytes either way."""
    syn = make_synthetic(n_prompts=23, block_size=10, n_tokens=64, d_model=1024)
    path = tmp_path / "c.zarr"
    write_synthetic(path, syn)
    url = f"memory://write-path-{uuid.uuid4().hex}/c.zarr"
    cache, _ = write_synthetic(url, syn)
    from zarr.buffer import default_buffer_prototype

    from actstore.store.format._zarr import sync

    for b in range(3):
        key = f"arith/resid_post/c/{b}/0/0/0"
        got = sync(cache.store.get(key, prototype=default_buffer_prototype()))
        assert got is not None
        assert (path / key).read_bytes() == got.to_bytes()
    assert not list(path.rglob("*.partial"))


_KILL_AT_RENAME = """
import os, pathlib, signal, sys
sys.path[:0] = {paths!r}
from tests._fixtures.store import make_synthetic, write_synthetic
syn = make_synthetic(n_prompts=23, block_size=10, n_tokens=64, d_model=1024)
_, writer = write_synthetic({out!r}, syn, blocks=[0])
real = pathlib.Path.replace
def replace(self, target):
    if self.name.endswith(".partial") and "/resid_post/c/1/" in str(target):
        os.kill(os.getpid(), signal.SIGKILL)  # the shard file is whole, not yet renamed
    return real(self, target)
pathlib.Path.replace = replace
s, e = writer.block_range(1)
writer.write_block(1, {{"resid_post": syn.activations["resid_post"][s:e]}})
"""


def test_killed_between_the_shard_file_and_its_rename_the_block_is_missing_and_resumes(
    tmp_path,
) -> None:
    """A process killed after the whole ``.partial`` shard file is written but before the rename:
    the block is not recorded, readers see no shard and no stray node, resume rewrites it."""
    import subprocess
    import sys
    import warnings
    from pathlib import Path

    import actstore as act

    out = tmp_path / "c.zarr"
    repo = Path(__file__).resolve().parents[2]
    code = _KILL_AT_RENAME.format(paths=[str(repo / "src"), str(repo)], out=str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    shard_dir = out / "arith" / "resid_post" / "c" / "1" / "0" / "0"
    (partial,) = shard_dir.glob("0.*.partial")  # zarr's own temporary-name pattern
    assert not (shard_dir / "0").exists()
    syn = make_synthetic(n_prompts=23, block_size=10, n_tokens=64, d_model=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the temporary file
        got = zarr.open_array(str(out / "arith" / "resid_post"), mode="r")[...]
        with pytest.warns(act.errors.IncompleteCacheWarning):
            act.open(out)
    want = _bits(syn.activations["resid_post"]).copy()
    want[10:] = 0  # blocks 1 and 2 were never stored: zarr's fill value
    np.testing.assert_array_equal(_bits(got), want)
    cache = open_cache(out, mode="r+")
    writer = cache.prompt_set_writer("arith", syn.spec, syn.metadata)
    assert writer.missing_blocks() == [1, 2]
    for b in writer.missing_blocks():
        s, e = writer.block_range(b)
        writer.write_block(b, {"resid_post": syn.activations["resid_post"][s:e]})
    assert not partial.exists()
    assert not list(out.rglob("*.partial"))
    got = zarr.open_array(str(out / "arith" / "resid_post"), mode="r")[...]
    np.testing.assert_array_equal(_bits(got), _bits(syn.activations["resid_post"]))
