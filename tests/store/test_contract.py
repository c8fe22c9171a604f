"""The cache contract: one set of tests, run against every storage backend.

:class:`CacheContract` holds the tests (create, write, resume, fingerprint refusal, open, copy,
verify, repair); each ``Test<Backend>`` subclass supplies a :class:`~tests._fixtures._backends.
Backend` (a directory, ``memory://``, the loopback S3 server, a zip) through the ``backend``
fixture, like zarr-python's ``zarr.testing.store.StoreTests`` and xarray's ``ZarrBase``. Only
public names are used (``actstore.store.__all__``, ``actstore.errors``). The references are
independent of actstore: the numpy arrays written, and the stored objects read back with fsspec or
:mod:`zipfile` (:meth:`Backend.raw`). A zip is read-only: its subclass runs the read tests and
replaces each write test by one asserting that the write is refused. docs/testing.md lists what
each backend runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import actstore
from actstore.errors import (
    CorruptCacheError,
    FingerprintMismatchError,
    IncompleteCacheWarning,
    InvalidArgumentError,
    NotACacheError,
    ReadOnlyError,
    StoreNotFoundError,
)
from actstore.store import (
    BFLOAT16,
    SCHEMA_VERSION,
    copy_cache,
    create_cache,
    open_cache,
    repair_cache,
    verify_cache,
)
from tests._fixtures._backends import (
    Backend,
    DirectoryBackend,
    MemoryBackend,
    S3Backend,
    ZipBackend,
)
from tests._fixtures.store import Synthetic, make_synthetic

HOOKS = ("resid_post", "attn_out")
LAYERS = (3, 7)


@pytest.fixture(scope="module")
def syn() -> Synthetic:
    """5 ragged prompts, layers 3 and 7, 8 tokens, d_model 16, bfloat16, blocks of 2 (2+2+1)."""
    return make_synthetic(
        n_prompts=5, layers=LAYERS, n_tokens=8, d_model=16, hooks=HOOKS, block_size=2, seed=15
    )


def _bits(a: Any) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


def _without_created(raw: dict[str, bytes]) -> dict[str, Any]:
    """*raw* with the root ``zarr.json`` parsed and its creation time (seconds) left out."""
    out: dict[str, Any] = dict(raw)
    root = json.loads(raw["zarr.json"])
    del root["attributes"]["actstore"]["created"]
    out["zarr.json"] = root
    return out


def _write_blocks(writer: Any, syn: Synthetic, blocks: list[int]) -> None:
    for b in blocks:
        start, stop = writer.block_range(b)
        writer.write_block(b, {h: a[start:stop] for h, a in syn.activations.items()})


FINGERPRINT_VARIANTS = {
    "fingerprint.model": {
        "fingerprint": {"model": "sha256:other", "tokenizer": "t1", "prompts": "p1"}
    },
    "fingerprint.tokenizer": {
        "fingerprint": {"model": "sha256:abc", "tokenizer": "t2", "prompts": "p1"}
    },
    "layers": {"layers": (3, 8)},
    "dtype": {"dtype": "float16"},
    "d_model": {"d_model": 32},
}


class CacheContract:
    """What every storage backend must do; subclasses provide the ``backend`` fixture."""

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Iterator[Backend]:
        """Fresh locations of one kind (class-scoped: every test makes its own URLs)."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def complete(cls, backend: Backend, syn: Synthetic) -> str:
        """A complete cache of *syn* on the backend, for the tests that only read it."""
        return backend.build(syn)

    @pytest.fixture(scope="class")
    @classmethod
    def partial(cls, backend: Backend, syn: Synthetic) -> str:
        """A cache of *syn* holding blocks 0 and 2 only, for tests that leave it unchanged."""
        return backend.build(syn, blocks=[0, 2])

    # ---- write path ------------------------------------------------------------------------

    def test_create(self, backend: Backend) -> None:
        url, opts = backend.new_url("c"), backend.storage_options
        with pytest.raises(StoreNotFoundError):
            open_cache(url, storage_options=opts)
        cache = create_cache(url, provenance={"by": "contract"}, storage_options=opts)
        assert cache.prompt_sets == [] and cache.mode == "r+"
        root = json.loads(backend.raw(url)["zarr.json"])  # independent of actstore's reader
        assert (root["zarr_format"], root["node_type"]) == (3, "group")
        assert root["attributes"]["actstore"]["schema_version"] == SCHEMA_VERSION
        assert root["attributes"]["actstore"]["provenance"] == {"by": "contract"}
        before = backend.raw(url)
        again = create_cache(url, storage_options=opts)  # idempotent: the same cache, unchanged
        assert again.attrs["provenance"] == {"by": "contract"}
        assert backend.raw(url) == before
        reopened = open_cache(url, storage_options=opts)
        assert reopened.mode == "r" and reopened.prompt_sets == []

    def test_create_refuses_other_files(self, backend: Backend) -> None:
        url, opts = backend.new_url("notes"), backend.storage_options
        backend.put(url, "notes.txt", b"not a cache")
        with pytest.raises(NotACacheError, match=r"no zarr\.json"):
            open_cache(url, storage_options=opts)
        with pytest.raises(NotACacheError, match=r"for a new cache, got .* with other"):
            create_cache(url, storage_options=opts)  # a cache is never mixed with them
        assert backend.raw(url) == {"notes.txt": b"not a cache"}

    def test_write_blocks(self, backend: Backend, syn: Synthetic) -> None:
        url, opts = backend.new_url("w"), backend.storage_options
        writer = create_cache(url, storage_options=opts).prompt_set_writer(
            "arith", syn.spec, syn.metadata
        )
        assert (writer.n_blocks, writer.block_size) == (3, 2)
        assert writer.missing_blocks() == [0, 1, 2]
        _write_blocks(writer, syn, [2, 0])  # any order
        assert writer.missing_blocks() == [1] and not writer.is_complete()
        _write_blocks(writer, syn, [1])
        assert writer.is_complete()
        cache = open_cache(url, storage_options=opts)
        assert cache.prompt_sets == ["arith"] and cache.is_complete("arith")
        assert cache.spec("arith") == dataclasses.replace(syn.spec, codec=cache.spec("arith").codec)
        raw = backend.raw(url)
        for hook in HOOKS:  # one shard object per block and hook
            shards = sorted(k for k in raw if k.startswith(f"arith/{hook}/c/"))
            assert shards == [f"arith/{hook}/c/{b}/0/0/0" for b in range(3)]
        ds = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False)
        for hook in HOOKS:
            np.testing.assert_array_equal(_bits(ds[hook].values), _bits(syn.activations[hook]))

    def test_resume(self, backend: Backend, syn: Synthetic, complete: str) -> None:
        opts = backend.storage_options
        url = backend.build(syn, blocks=[0, 2])  # a run stopped after blocks 0 and 2
        assert open_cache(url, storage_options=opts).missing_blocks("arith") == [1]
        # ... while writing block 1: a torn shard of one hook is there, its block unrecorded
        backend.put(url, "arith/attn_out/c/1/0/0/0", b"torn shard: not zarr data")
        # a resuming extractor passes its spec and metadata again: they match, nothing is redone
        writer = open_cache(url, mode="r+", storage_options=opts).prompt_set_writer(
            "arith", syn.spec, syn.metadata
        )
        assert writer.missing_blocks() == [1]
        _write_blocks(writer, syn, writer.missing_blocks())
        assert writer.is_complete()
        # bit-identical to one uninterrupted run: every stored object, metadata included
        assert _without_created(backend.raw(url)) == _without_created(backend.raw(complete))
        ds = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False)
        for hook in HOOKS:
            np.testing.assert_array_equal(_bits(ds[hook].values), _bits(syn.activations[hook]))
        # reopened without a spec (the stored one is used): nothing left to write
        again = open_cache(url, mode="r+", storage_options=opts).prompt_set_writer("arith")
        assert again.is_complete()

    def test_fingerprint_refusal(self, backend: Backend, syn: Synthetic, partial: str) -> None:
        opts, url = backend.storage_options, partial
        before = backend.raw(url)
        cache = open_cache(url, mode="r+", storage_options=opts)
        for field, change in FINGERPRINT_VARIANTS.items():  # one build for all: S3 is slow
            other = dataclasses.replace(syn.spec, **change)
            with pytest.raises(FingerprintMismatchError, match=f"{field} differs from the stored"):
                cache.prompt_set_writer("arith", other, syn.metadata)
            assert backend.raw(url) == before, field  # left as it was
        # and the run with the right spec still resumes where it stopped (reopening writes nothing)
        writer = cache.prompt_set_writer("arith", syn.spec, syn.metadata)
        assert writer.missing_blocks() == [1]
        assert backend.raw(url) == before

    def test_repair(self, backend: Backend, syn: Synthetic) -> None:
        opts = backend.storage_options
        url = backend.build(syn)
        backend.damage(url, "arith/attn_out/c/1/0/0/0")
        report = repair_cache(url, storage_options=opts)
        assert report.blocks == {"arith": [1]} and not report.unrepairable
        writer = open_cache(url, mode="r+", storage_options=opts).prompt_set_writer("arith")
        assert writer.missing_blocks() == [1]  # only the damaged block is rewritten
        _write_blocks(writer, syn, [1])
        assert verify_cache(url, storage_options=opts).ok
        ds = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False)
        for hook in HOOKS:
            np.testing.assert_array_equal(_bits(ds[hook].values), _bits(syn.activations[hook]))

    # ---- read path ---------------------------------------------------------------------------

    def test_open_incomplete(self, backend: Backend, syn: Synthetic, partial: str) -> None:
        opts, url = backend.storage_options, partial
        with pytest.warns(IncompleteCacheWarning, match=r"1 of 3 blocks missing \(1;"):
            ds = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False)
        for hook in HOOKS:  # block 1 (prompts 2, 3) reads as zeros, as the warning says
            want = syn.activations[hook].copy()
            want[2:4] = 0
            np.testing.assert_array_equal(_bits(ds[hook].values), _bits(want))
        assert open_cache(url, storage_options=opts).missing_blocks("arith") == [1]
        assert verify_cache(url, storage_options=opts).ok  # unwritten blocks are not damage

    def test_open(self, backend: Backend, syn: Synthetic, complete: str) -> None:
        opts, url = backend.storage_options, complete
        ds = actstore.open(url, group="arith", storage_options=opts).load()
        meta = syn.metadata
        assert dict(ds.sizes) == {"prompt": 5, "layer": 2, "token": 8, "d_model": 16, "span": 2}
        np.testing.assert_array_equal(ds["prompt"].values, np.arange(5))
        np.testing.assert_array_equal(ds["layer"].values, LAYERS)
        np.testing.assert_array_equal(ds["token"].values, np.arange(8))
        assert list(ds["span"].values) == list(meta.span_masks)
        for hook in HOOKS:
            assert ds[hook].dims == ("prompt", "layer", "token", "d_model")
            assert ds[hook].dtype == np.float32  # bfloat16 decoded; every bf16 is a float32
            np.testing.assert_array_equal(ds[hook].values, syn.activations[hook].astype(np.float32))
        assert [str(t) for t in ds["text"].values] == list(meta.text)
        np.testing.assert_array_equal(ds["n_tokens"].values, meta.n_tokens)
        real = np.arange(8)[None, :] < meta.n_tokens[:, None]  # the schema: padding is -1, ""
        np.testing.assert_array_equal(ds["token_id"].values, np.where(real, meta.token_id, -1))
        want_str = np.where(real, meta.token_str, "").tolist()
        assert ds["token_str"].values.tolist() == want_str
        np.testing.assert_array_equal(ds["value"].values, meta.labels["value"])
        np.testing.assert_array_equal(ds["x"].values, meta.labels["x"].astype(np.float64))
        assert ds["template"].values.tolist() == meta.labels["template"].tolist()
        masks = np.stack([meta.span_masks[s] for s in meta.span_masks], axis=1)
        np.testing.assert_array_equal(ds["span_mask"].transpose("prompt", "span", "token"), masks)
        # the stored bits, undecoded
        bits = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False)
        for hook in HOOKS:
            np.testing.assert_array_equal(_bits(bits[hook].values), _bits(syn.activations[hook]))
        tree = actstore.open(url, storage_options=opts)
        assert set(tree.children) == {"arith"}

    def test_copy(self, backend: Backend, syn: Synthetic, complete: str, tmp_path: Path) -> None:
        opts, url = backend.storage_options, complete
        full = backend.new_url("copy")  # another location of the same kind (a new .zip for zip)
        copy_cache(url, full, storage_options=opts, dst_storage_options=opts)
        other = backend.new_url("other")  # a destination that holds something: never mixed
        backend.put(other, "notes.txt", b"mine")
        for dst in (full, other):
            before = backend.raw(dst)
            with pytest.raises(InvalidArgumentError, match="expected a new"):
                copy_cache(url, dst, storage_options=opts, dst_storage_options=opts)
            assert backend.raw(dst) == before
        part = tmp_path / "part.zarr"  # a subset, fetched to a local directory
        copy_cache(url, part, layers=[7], prompts=[4, 0], storage_options=opts)
        a = actstore.open(full, group="arith", storage_options=opts, decode_bfloat16=False).load()
        b = actstore.open(url, group="arith", storage_options=opts, decode_bfloat16=False).load()
        assert sorted(map(str, a.variables)) == sorted(map(str, b.variables))
        for name in b.variables:
            x, y = a[name].values, b[name].values
            if x.dtype == BFLOAT16:
                x, y = _bits(x), _bits(y)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        sub = actstore.open(part, group="arith", decode_bfloat16=False)
        np.testing.assert_array_equal(sub["source_prompt"].values, [4, 0])
        np.testing.assert_array_equal(sub["layer"].values, [7])
        for hook in HOOKS:
            want = syn.activations[hook][[4, 0]][:, [1]]
            np.testing.assert_array_equal(_bits(sub[hook].values), _bits(want))
        assert [str(t) for t in sub["text"].values] == [syn.metadata.text[i] for i in (4, 0)]

    def test_verify(self, backend: Backend, syn: Synthetic) -> None:
        opts = backend.storage_options
        url = backend.build(syn)
        report = verify_cache(url, storage_options=opts)
        assert report.ok, report.problems
        chunks = [k for k in backend.raw(url) if not k.endswith("zarr.json")]
        assert report.n_objects == len(chunks)
        damaged, deleted = "arith/resid_post/c/1/0/0/0", "arith/attn_out/c/0/0/0/0"
        backend.damage(url, damaged)
        report = verify_cache(url, storage_options=opts)
        assert [(p.kind, p.key) for p in report.problems] == [("corrupt", damaged)]
        ds = actstore.open(url, group="arith", storage_options=opts)  # metadata still opens
        with pytest.raises(CorruptCacheError, match="expected intact data"):
            ds["resid_post"].values  # never silently wrong values
        np.testing.assert_array_equal(  # the other hook is untouched
            ds["attn_out"].values, syn.activations["attn_out"].astype(np.float32)
        )
        backend.delete(url, deleted)  # a shard of a block recorded complete
        report = verify_cache(url, storage_options=opts)
        found = sorted((p.kind, p.key) for p in report.problems)
        assert found == [("corrupt", damaged), ("missing", deleted)]
        with pytest.raises(CorruptCacheError, match=f"{deleted} \\(block 0: deleted\\)"):
            actstore.open(url, group="arith", storage_options=opts)  # never its zeros


class TestDirectory(CacheContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, tmp_path_factory) -> Backend:
        return DirectoryBackend(tmp_path_factory.mktemp("dir"))


class TestMemory(CacheContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Iterator[Backend]:
        backend = MemoryBackend()
        try:
            yield backend
        finally:
            backend.cleanup()


class TestS3(CacheContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, s3_server) -> Backend:  # skips when moto, s3fs or boto3 is missing
        return S3Backend(s3_server)


READ_ONLY = "zip caches are read-only"


class TestZip(CacheContract):
    """Read-only: the read tests run on a zip; every write test asserts the refusal instead."""

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, tmp_path_factory) -> Backend:
        return ZipBackend(tmp_path_factory.mktemp("zip"))

    def test_create(self, backend: Backend) -> None:
        new = backend.new_url("c")
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            create_cache(new)
        assert not os.path.exists(new)

    def test_create_refuses_other_files(self, backend: Backend) -> None:
        url = backend.new_url("notes")
        backend.put(url, "notes.txt", b"not a cache")
        with pytest.raises(NotACacheError, match=r"no zarr\.json"):
            open_cache(url)
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            create_cache(url)
        assert backend.raw(url) == {"notes.txt": b"not a cache"}

    def test_write_blocks(self, backend: Backend, syn: Synthetic, complete: str) -> None:
        url = complete
        before = backend.raw(url)
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            create_cache(url)
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            open_cache(url, mode="r+")
        with pytest.raises(ReadOnlyError, match="opened read-only"):
            open_cache(url).prompt_set_writer("other", syn.spec, syn.metadata)
        assert backend.raw(url) == before

    def test_resume(self, backend: Backend, syn: Synthetic, partial: str) -> None:
        url = partial
        before = backend.raw(url)
        assert open_cache(url).missing_blocks("arith") == [1]  # what is left can be read
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            open_cache(url, mode="r+")
        with pytest.raises(ReadOnlyError, match="opened read-only"):
            open_cache(url).prompt_set_writer("arith", syn.spec, syn.metadata)
        assert backend.raw(url) == before

    def test_fingerprint_refusal(self, backend: Backend, syn: Synthetic, partial: str) -> None:
        url = partial
        before = backend.raw(url)
        for change in FINGERPRINT_VARIANTS.values():  # refused as a write, before comparing
            other = dataclasses.replace(syn.spec, **change)
            with pytest.raises(ReadOnlyError, match="opened read-only"):
                open_cache(url).prompt_set_writer("arith", other, syn.metadata)
        assert backend.raw(url) == before

    def test_repair(self, backend: Backend, syn: Synthetic) -> None:
        url = backend.build(syn)
        backend.damage(url, "arith/attn_out/c/1/0/0/0")
        before = Path(url).read_bytes()  # (raw() would stop at the damaged entry's CRC)
        with pytest.raises(ReadOnlyError, match=READ_ONLY):
            repair_cache(url)
        assert Path(url).read_bytes() == before
        assert repair_cache(url, dry_run=True).blocks == {"arith": [1]}  # it can be planned
