"""The bad-input catalogue: every row is a bad input, the exact message it gets and the exit code.

One source for two things: ``tests/reliability/test_catalogue.py`` runs every row (command-line
rows as real ``python -m actstore`` processes), and the docs page ``docs/reference/errors.md`` (the
site's error catalogue) is this table rendered by :func:`render_table` (a test checks that they
match; ``python -m tests.reliability._catalogue`` rewrites the page's section).

Rows run in a work directory holding the files named below (built once per test session by the
``catalogue_env`` fixture), so messages read exactly as a user would see them.
``…`` in a message stands for a part that varies (a temporary path, a timing).

Files in the work directory
---------------------------
``cache.zarr``   a small complete cache: prompt set ``arith`` (9 prompts, layers 1, 4, 6, d_model
                 16, bfloat16, labels ``value``, ``x``, ``template``, spans ``answer``,
                 ``operands``) and the group ``probes/value``
``cache.zip``    the same cache copied to a zip file (read-only by nature)
``tiny.zarr``    prompt set ``good`` extracted from ``model`` (layers 0, 1)
``model``        a random tiny Qwen2 (4 layers, d_model 64); ``model2`` the same with another seed;
                 ``short_model`` one with a 16-token context
``good.jsonl``   6 multiplication prompts; ``other.jsonl`` 6 different ones; ``empty.jsonl``,
                 ``bad.jsonl`` (line 2 has no text), ``long.jsonl`` (a 200-word prompt)
``notacache``    a folder with a text file; ``plain.zarr`` a Zarr group written by other software;
                 ``future.zarr`` a cache of schema version 99; ``hostile.zarr`` a cache whose
                 activations name a pickle codec; ``damaged.zarr`` one whose ``arith/zarr.json``
                 is cut short; ``linked.zarr`` one holding a symbolic link to a file outside it
``nan_probe.zarr`` a cache whose label ``value`` has a NaN; ``probes_other.npz`` probes fitted on
                 ``cache.zarr`` but stamped with another model's fingerprint; ``object.npz`` probe
                 arrays holding a Python object array
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ROWS", "Row", "message_regex", "render_table"]

#: Markers of the catalogue section in :data:`DOCS_PAGE`.
BEGIN = "<!-- BEGIN catalogue -->"
END = "<!-- END catalogue -->"
#: The docs page that holds the rendered catalogue.
DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "errors.md"


@dataclass(frozen=True)
class Row:
    """One bad input.

    ``where`` is ``"cli"`` (``args`` run as ``python -m actstore ARGS``: exit 2, one stderr line
    ``actstore: error: MESSAGE``), ``"api"`` or ``"config"`` (``call(work_dir)`` raises
    ``error``). ``needs`` names what must be importable for the row to run (a module added by
    another area), so the catalogue runs before every area has landed.
    """

    id: str
    where: str
    input: str
    error: str
    message: str
    args: tuple[str, ...] = ()
    call: Callable[[Path], Any] | None = None
    needs: str | None = None
    exit_code: int = 2
    slow: bool = False  # loads a model in a fresh process (seconds): runs with `make test-slow`


def message_regex(message: str) -> re.Pattern[str]:
    """``…`` matches any text; everything else literally; the whole message must match."""
    return re.compile(".*?".join(re.escape(p) for p in message.split("…")), re.DOTALL)


# -- API and config calls (each takes the work directory) ---------------------------------------
def _open_set(name: str) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        import actstore

        return actstore.open(work / "cache.zarr", name)

    return call


def _activations(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.store import open_cache

        return open_cache(work / "cache.zarr").activations("arith", **kw)

    return call


def _open_decode_flag(work: Path) -> Any:  # issue 10 item 1
    import actstore

    return actstore.open(work / "cache.zarr", "arith", decode_bfloat16="no")  # type: ignore[arg-type]


def _decode_numpy(work: Path) -> Any:  # issue 10 item 1
    import numpy as np

    import actstore

    return actstore.decode_bfloat16(np.zeros(2))


def _progress_mode(mode: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        import actstore

        with actstore.show_progress(mode):
            return None

    return call


def _write_read_only(work: Path) -> Any:
    import numpy as np

    from actstore.store import open_cache

    cache = open_cache(work / "cache.zarr")  # mode="r" by default
    return cache.write_derived("arith", "pred", np.zeros(9), dims=("prompt",))


def _write_derived_over_label(work: Path) -> Any:
    import numpy as np

    from actstore.store import open_cache

    cache = open_cache(work / "cache.zarr", mode="r+")
    return cache.write_derived("arith", "value", np.zeros(9), dims=("prompt",))


def _open_broken_zip(work: Path) -> Any:
    import actstore

    (work / "broken.zip").write_text("not a zip")
    return actstore.open(work / "broken.zip")


_DETECT_OTHER = (
    "detect", "cache.zarr", "--probes", "probes_other.npz", "--prompt-set", "arith", "--target",
    "value",
)  # fmt: skip


def _spec(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.store import PromptSetSpec

        args = {"n_prompts": 4, "n_tokens_max": 8, "layers": (0,), "d_model": 16}
        return PromptSetSpec(**{**args, "dtype": "float32", **kw})

    return call


def _create_cache(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.store import create_cache

        return create_cache(work / "new_created.zarr", **kw)

    return call


def _position(spec: str) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        import numpy as np

        from actstore.prompts import parse_position

        return parse_position(spec).select(5, {"answer": np.ones(5, bool)})

    return call


def _fit(cache: str = "cache.zarr", **kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.analysis import fit_probes
        from actstore.store import open_cache

        args = {"prompt_set": "arith", "target": "value", "cv": 3, **kw}
        return fit_probes(open_cache(work / cache), **args)

    return call


def _detect_other_model(work: Path) -> Any:
    from actstore.analysis import detect, load_probes
    from actstore.store import open_cache

    probes = load_probes(work / "probes_other.npz")
    return detect(open_cache(work / "cache.zarr"), probes, prompt_set="arith", write=False)


def _load_npz(work: Path) -> Any:
    from actstore.analysis import load_probes

    return load_probes(work / "object.npz")


def _fit_changed(change: str) -> Callable[[Path], Any]:
    """``fit_probes`` on the ``arith`` set of cache.zarr, loaded, with one thing made degenerate."""

    def call(work: Path) -> Any:
        import numpy as np

        import actstore
        from actstore.analysis import fit_probes

        ds = actstore.open(work / "cache.zarr", "arith").load()
        target = "value"
        if change == "constant":
            ds["c"] = ("prompt", np.full(ds.sizes["prompt"], 0.1))
            target = "c"
        elif change == "inf":
            ds["value"] = ("prompt", np.where(np.arange(ds.sizes["prompt"]) == 4, np.inf, 1.0))
        elif change == "nan-activations":
            acts = ds["resid_post"].values.astype(np.float32)
            acts[2, 0, :, 0] = np.nan
            ds["resid_post"] = (ds["resid_post"].dims, acts)
        return fit_probes(ds, prompt_set="arith", target=target, cv=3)

    return call


def _ridge_constant(work: Path) -> Any:
    import numpy as np

    from actstore.analysis import RidgeProbe

    return RidgeProbe(cv=3).fit(np.eye(6), np.full(6, 2.0))


def _prompt(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.prompts import Prompt

        return Prompt(**{"text": "7 times 8", "labels": {}, "spans": {}, **kw})

    return call


def _extract(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.extractors import extract

        args = {"model": "model", "prompts": "good.jsonl", "out": "new.zarr", "layers": "0,1"}
        args = {**args, **kw}
        for key in ("model", "out"):
            args[key] = work / args[key]
        return extract(**args, device="cpu", dtype="float32")

    return call


def _extract_foreign_tokenizer(work: Path) -> Any:
    """``model`` beside a larger tokenizer that learned the prompts: ids past its embedding."""
    from actstore.tinymodels import build_tokenizer
    from actstore.tinymodels._tokenizer import default_corpus

    m = work / "model_bigtok"
    if not m.exists():
        import shutil

        shutil.copytree(work / "model", m)
        texts = (work / "good.jsonl").read_text().splitlines() * 20
        build_tokenizer(m, vocab_size=1000, corpus=[*default_corpus(), *texts])
    return _extract(model="model_bigtok", out="bigtok.zarr")(work)


def _dry_run_hooks(config: dict[str, Any], hooks: tuple[str, ...]) -> Callable[[Path], Any]:
    """A dry-run ``extract`` of *hooks* on ``model``'s tokenizer beside another config.json."""

    def call(work: Path) -> Any:
        import json
        import shutil

        m = work / f"cfg_{config['model_type']}"
        if not m.exists():
            m.mkdir()
            for f in (work / "model").iterdir():
                if f.is_file() and f.name.startswith(("tokenizer", "special_tokens")):
                    shutil.copy2(f, m / f.name)
            (m / "config.json").write_text(json.dumps(config))
        return _extract(model=m.name, hooks=hooks, dry_run=True)(work)

    return call


_GPTJ = {"model_type": "gptj", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 512}
_ODD = {"model_type": "not_a_family", "n_layers": 2, "d_model": 64}


_SRC = {"generator": "multiplication", "n": 20, "seed": 0}
_PS = {"name": "arith", "sources": [_SRC]}
_PROBE = {"name": "last", "prompt_set": "arith", "target": "value", "position": "last"}


def _config(**changes: Any) -> Callable[[Path], Any]:
    """``parse_config`` of a minimal valid config (one prompt set, one probe) with *changes*."""

    def call(work: Path) -> Any:
        from actstore.experiment import parse_config

        data = {"name": "study", "prompt_sets": [_PS], "probes": [_PROBE], **changes}
        return parse_config(data)

    return call


# -- issue 10 items 2, 8, 9 (runcheck): stored data of another config; locations that fail ------
def _run_on_copy(**extract: Any) -> Callable[[Path], Any]:
    """``actstore run`` (no model) on a copy of ``tiny.zarr`` as OUT/cache.zarr, a config asking
    prompt set ``good`` = 6 multiplication prompts (seed 0) with *extract* settings."""

    def call(work: Path) -> Any:
        import shutil
        import tempfile

        from actstore.experiment import parse_config
        from actstore.experiment._run import ExperimentRun

        out = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
        shutil.copytree(work / "tiny.zarr", out / "cache.zarr")
        src = {"generator": "multiplication", "n": 6, "seed": extract.pop("seed", 0)}
        cfg = parse_config(
            {"name": "study", "prompt_sets": [{"name": "good", "sources": [src]}],
             "extract": {"layers": [0, 1], **extract}}
        )  # fmt: skip
        return ExperimentRun(cfg, out=out, log=lambda s: None).run(["extract"])

    return call


def _loader(**kw: Any) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.torch import ActivationLoader

        return ActivationLoader(work / "cache.zarr", "arith", **kw)

    return call


def _figure(name: str, **kw: Any) -> Callable[[Path], Any]:  # issue 12: figures and reports
    def call(work: Path) -> Any:
        import actstore.analysis as an
        from actstore.store import open_cache

        cache = open_cache(work / "cache.zarr")
        probes = an.fit_probes(cache, prompt_set="arith", target="value", cv=3, alphas=[1.0])
        res = an.detect(cache, probes, prompt_set="arith", target="value", write=False)
        if name == "write_report":
            return an.write_report(probes, res, work / "report_out", **kw)
        return getattr(an, name)(res, **kw)

    return call


def _create_cache_at(path: str) -> Callable[[Path], Any]:
    def call(work: Path) -> Any:
        from actstore.store import create_cache

        return create_cache(path)

    return call


_S3_DEAD = (
    '{"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9", '
    '"region_name": "us-east-1"}, "config_kwargs": {"connect_timeout": 1, "retries": '
    '{"max_attempts": 1}}}'
)


def _create_over_other_objects(work: Path) -> Any:  # contract (issue 15 part D)
    import fsspec

    from actstore.store import create_cache

    fsspec.filesystem("memory").pipe_file("/catalogue-notes/c.zarr/notes.txt", b"mine")
    try:
        return create_cache("memory://catalogue-notes/c.zarr")
    finally:
        fsspec.filesystem("memory").rm("/catalogue-notes", recursive=True)


def _copy_over_other_objects(work: Path) -> Any:  # contract (issue 15 part D)
    import fsspec

    from actstore.store import copy_cache

    fsspec.filesystem("memory").pipe_file("/catalogue-copy/d.zarr/notes.txt", b"mine")
    try:
        return copy_cache(work / "cache.zarr", "memory://catalogue-copy/d.zarr")
    finally:
        fsspec.filesystem("memory").rm("/catalogue-copy", recursive=True)


def _loader_resume(work: Path) -> Any:
    from actstore.torch import ActivationLoader

    state = ActivationLoader(work / "cache.zarr", "arith", batch_size=64).state_dict()
    return ActivationLoader(work / "cache.zarr", "arith", batch_size=32).load_state_dict(state)


def _bad_param(what: str) -> Callable[[Path], Any]:
    """breaker12: a bad hyper-parameter of an in-memory probe or of fit_probes."""

    def call(work: Path) -> Any:
        import numpy as np

        from actstore.analysis import LogisticProbe, RidgeProbe

        x = np.random.default_rng(0).normal(size=(20, 3))
        if what == "standardize":
            return RidgeProbe(standardize="no").fit(x, x[:, 0])
        if what == "seed":
            from actstore.analysis import detect, fit_probes
            from tests._fixtures.analysis import planted_set

            kw = {"d_model": 4, "n_tokens_max": 10, "layers": (3,), "signal_layer": 3}
            train = planted_set(n_prompts=20, kind="train", **kw)
            probes = fit_probes(train, prompt_set="a", target="value", alphas=[1.0], cv=3)
            test = planted_set(n_prompts=10, kind="test", seed=5, **kw)
            return detect(test, probes, prompt_set="b", target="v_squared", write=False, seed=-1)
        if what == "max_iter":
            return LogisticProbe(max_iter=0).fit(x, (x[:, 0] > 0).astype(int))
        return LogisticProbe(tol=-1.0).fit(x, (x[:, 0] > 0).astype(int))

    return call


def _mean_diff_without_gap(work: Path) -> Any:
    """breaker12: standardised mean_diff probes saved before ``score_gap`` existed (dropped)."""
    import numpy as np
    import xarray as xr

    from actstore.analysis import fit_probes, load_probes, save_probes

    rng = np.random.default_rng(0)
    n = 20
    ds = xr.Dataset(
        {
            "resid_post": (("prompt", "layer", "token", "d_model"), rng.normal(size=(n, 1, 2, 4))),
            "n_tokens": ("prompt", np.full(n, 2)),
            "v": ("prompt", np.arange(n) % 2),
        },
        coords={"prompt": np.arange(n), "layer": [0]},
    )
    probes = fit_probes(ds, prompt_set="s", target="v", kind="mean_diff", standardize=True)
    probes.dataset = probes.dataset.drop_vars(["score_gap", "control_score_gap"])
    return load_probes(save_probes(probes, work / "md_old.npz")).weights()


def _fit_labels(kind: str, label: str, max_memory: int = 2 * 2**30) -> Callable[[Path], Any]:
    """issue 12 (classify): fit_probes on a 60-prompt in-memory set whose label ``v`` is
    fractional (``label="fractional"``) or has 60 distinct integers (``"many"``)."""

    def call(work: Path) -> Any:
        import numpy as np
        import xarray as xr

        from actstore.analysis import fit_probes

        rng = np.random.default_rng(0)
        n = 60
        v = (
            np.arange(n) + 0.5
            if label == "fractional"
            else np.arange(n) % (60 if label == "many" else 2)
        )
        ds = xr.Dataset(
            {
                "resid_post": (
                    ("prompt", "layer", "token", "d_model"),
                    rng.normal(size=(n, 1, 2, 4)),
                ),
                "n_tokens": ("prompt", np.full(n, 2)),
                "v": ("prompt", v),
            },
            coords={"layer": [0]},
        )
        return fit_probes(ds, prompt_set="s", target="v", kind=kind, max_memory=max_memory)

    return call


_FIT = ("probe", "fit", "cache.zarr", "--prompt-set", "arith", "--target", "value")
_EXTRACT = ("extract", "--model", "model", "--prompts", "good.jsonl", "--out")
_TINY_GOOD = ("--layers", "0,1", "--block-size", "2")  # how tiny.zarr's set "good" was extracted


def _write_threads_zero(work: Path) -> Any:  # breaker11
    import os

    from actstore.extractors import extract

    old = os.environ.get("ACTSTORE_WRITE_THREADS")
    os.environ["ACTSTORE_WRITE_THREADS"] = "0"
    try:
        return extract(model=work / "model", prompts=work / "good.jsonl", out=work / "wt.zarr")
    finally:
        if old is None:
            del os.environ["ACTSTORE_WRITE_THREADS"]
        else:
            os.environ["ACTSTORE_WRITE_THREADS"] = old


def _extract_positions_nowhere(work: Path) -> Any:  # breaker11
    from actstore.extractors import extract
    from actstore.prompts import Prompt, PromptSet

    prompts = PromptSet(
        name="x0",
        prompts=[
            Prompt(text=f"{a} times 3 equals {3 * a}", labels={"v": a}, spans={"x": (0, 1)})
            for a in (2, 3, 4)
        ],
    )
    out = work / "x0.zarr"
    return extract(model=work / "model", prompts=prompts, out=out, positions="before:x")


def _positions_nowhere(work: Path) -> Any:  # readpath (issue 11)
    import dataclasses
    import shutil

    import numpy as np

    from actstore.store import materialize_positions
    from tests._fixtures.store import make_synthetic, write_synthetic

    syn = make_synthetic(n_prompts=4, block_size=2)
    first = np.zeros((4, syn.spec.n_tokens_max), bool)
    first[:, 0] = True  # every answer starts at token 0: no token precedes it
    meta = dataclasses.replace(syn.metadata, span_masks={"answer": first})
    shutil.rmtree(work / "positions_nowhere.zarr", ignore_errors=True)
    cache, _ = write_synthetic(
        work / "positions_nowhere.zarr", dataclasses.replace(syn, metadata=meta)
    )
    return materialize_positions(cache, "arith", "before:answer")


def _damaged_positions(general: bool) -> Callable[[Path], Any]:  # probe (issue 11)
    """Fit from a cache whose first positions shard has one byte flipped: from the path (the
    light reader) or from a ``Cache`` object (zarr, the general path)."""

    def call(work: Path) -> Any:
        import shutil
        import warnings

        from actstore.analysis import fit_probes
        from actstore.errors import SampleLossWarning
        from actstore.store import materialize_positions, open_cache
        from tests._fixtures.store import make_synthetic, write_synthetic

        url = work / "damaged_positions.zarr"
        shutil.rmtree(url, ignore_errors=True)
        write_synthetic(url, make_synthetic(n_prompts=12, block_size=6))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SampleLossWarning)
            materialize_positions(open_cache(url, mode="r+"), "arith", "last")
        shard = url / "arith" / "positions" / "resid_post" / "c" / "0" / "0" / "0" / "0"
        data = bytearray(shard.read_bytes())
        data[8] ^= 0xFF
        shard.write_bytes(bytes(data))
        return fit_probes(open_cache(url) if general else url, prompt_set="arith", target="value")

    return call


def _open_store(**kw: Any) -> Callable[[Path], Any]:  # storesplit (issue 15)
    def call(work: Path) -> Any:
        from actstore.store import open_store

        return open_store(work / "cache.zarr", **kw)

    return call


ROWS: tuple[Row, ...] = (
    # -- paths and caches ----------------------------------------------------------------------
    Row(
        id="missing-cache",
        where="cli",
        input="`actstore info missing.zarr` (no such path)",
        args=("info", "missing.zarr"),
        error="StoreNotFoundError",
        message="expected a cache at 'missing.zarr', got no such file or directory; check the "
        "path or create it with `actstore extract`",
    ),
    Row(
        id="not-a-cache",
        where="cli",
        input="`actstore info notacache` (a folder of other files)",
        args=("info", "notacache"),
        error="NotACacheError",
        message="expected an actstore cache (a Zarr v3 group) at 'notacache', got no zarr.json "
        "there; pass the cache's top-level path",
    ),
    Row(
        id="foreign-zarr",
        where="cli",
        input="`actstore verify plain.zarr` (a Zarr group not written by actstore)",
        args=("verify", "plain.zarr"),
        error="NotACacheError",
        message="expected an actstore cache at 'plain.zarr', got a Zarr group without "
        "attrs['actstore']; it was not written by actstore",
    ),
    Row(
        id="schema-version",
        where="cli",
        input="`actstore info future.zarr` (written with schema version 99)",
        args=("info", "future.zarr"),
        error="SchemaVersionError",
        message="expected schema version 1, got 99 in 'future.zarr'; use the actstore version "
        "that wrote it (see attrs library_versions) or re-extract",
    ),
    Row(
        id="pickle-codec",
        where="cli",
        input="`actstore info hostile.zarr` (activations name the codec `numcodecs.pickle`)",
        args=("info", "hostile.zarr"),
        error="UnsafeCacheError",
        message="expected array 'arith/resid_post' with codecs among ['bytes', 'crc32c', "
        "'gzip', 'sharding_indexed', 'transpose', 'vlen-utf8', 'zstd'], got codec "
        "\"numcodecs.pickle\" in arith/resid_post/zarr.json of 'hostile.zarr'; refusing to "
        "open it (a cache is data, never code); actstore never runs other codecs on a shared "
        "cache: ask its author to re-export it with `actstore copy`",
    ),
    Row(
        id="damaged-metadata",
        where="cli",
        input="`actstore info damaged.zarr` (`arith/zarr.json` cut short)",
        args=("info", "damaged.zarr"),
        error="CorruptCacheError",
        message="expected readable metadata in arith/zarr.json of 'damaged.zarr', got not valid "
        "JSON (…); the cache is damaged: run `actstore verify damaged.zarr` to list every damaged "
        "part and `actstore repair damaged.zarr` to fix it (or restore the copy)",
    ),
    Row(
        id="copy-symlink",
        where="cli",
        input="`actstore copy linked.zarr out.zarr` (the source holds a symbolic link)",
        args=("copy", "linked.zarr", "out.zarr"),
        error="UnsafeCacheError",
        message="expected a cache directory without symbolic links, got "
        "probes/value/coef/c/0/0 -> ../secret.txt in 'linked.zarr'; copy never follows links "
        "(they can point outside the cache): replace them with the files they point to (e.g. "
        "`cp -rL`) if you trust them",
    ),
    Row(
        id="copy-existing-destination",
        where="cli",
        input="`actstore copy cache.zarr tiny.zarr` (destination exists)",
        args=("copy", "cache.zarr", "tiny.zarr"),
        error="InvalidArgumentError",
        message="expected a new destination, got existing 'tiny.zarr'; remove it or pick a new "
        "path",
    ),
    Row(
        id="storage-options",
        where="cli",
        input="`actstore info cache.zarr --storage-options anon` (not JSON)",
        args=("info", "cache.zarr", "--storage-options", "anon"),
        error="InvalidArgumentError",
        message="expected --storage-options as a JSON object, got 'anon' (Expecting value); "
        "e.g. '{\"anon\": true}'",
    ),
    # -- names: prompt set, layer, variable, target, position, span ---------------------------
    Row(
        id="unknown-prompt-set",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompt-sets physics`",
        args=("copy", "cache.zarr", "out.zarr", "--prompt-sets", "physics"),
        error="UnknownNameError",
        message="expected a prompt set of 'cache.zarr' (one of ['arith']), got 'physics'; list "
        "them with `actstore info`",
    ),
    Row(
        id="unknown-layer-copy",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --layers 1,99`",
        args=("copy", "cache.zarr", "out.zarr", "--layers", "1,99"),
        error="UnknownNameError",
        message="expected distinct layers of prompt set 'arith' (from [1, 4, 6]), got [1, 99]; "
        "pick stored layers",
    ),
    Row(
        id="bad-prompt-selection",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompts 0:x`",
        args=("copy", "cache.zarr", "out.zarr", "--prompts", "0:x"),
        error="InvalidArgumentError",
        message="expected prompts as START:STOP[:STEP] or a comma list like 0,5,9, got '0:x'",
    ),
    Row(
        id="prompt-index-out-of-range",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompts 0,99`",
        args=("copy", "cache.zarr", "out.zarr", "--prompts", "0,99"),
        error="UnknownNameError",
        message="expected prompt indices in [-9, 9), got [99]; check --prompts",
    ),
    Row(
        id="unknown-group",
        where="api",
        input="`actstore.open('cache.zarr', 'physics')`",
        call=_open_set("physics"),
        error="UnknownNameError",
        message="expected a prompt set (['arith']) or group of 'cache.zarr', got 'physics'; "
        "list them with `actstore info`",
    ),
    Row(
        id="unknown-layer-api",
        where="api",
        input="`open_cache('cache.zarr').activations('arith', layers=[2])`",
        call=_activations(layers=[2]),
        error="UnknownNameError",
        message="expected layers of prompt set 'arith' (from [1, 4, 6]), got [2]; pick stored "
        "layers",
    ),
    Row(
        id="unknown-variable",
        where="api",
        input="`open_cache('cache.zarr').activations('arith', 'resid_mid')`",
        call=_activations(hook="resid_mid"),
        error="UnknownNameError",
        message="expected a stored variable of prompt set 'arith' (one of ['resid_post']), got "
        "'resid_mid'",
    ),
    Row(
        id="unknown-position",
        where="api",
        input="`parse_position('middle')`",
        call=_position("middle"),
        error="InvalidArgumentError",
        message="expected a position spec of the form last, all, before:SPAN, span:SPAN, got "
        "'middle'",
    ),
    Row(
        id="unknown-span",
        where="api",
        input="`parse_position('before:result').select(...)` (spans: `answer`)",
        call=_position("before:result"),
        error="UnknownNameError",
        message="expected a span name (answer), got 'result' in position 'before:result'",
    ),
    # -- writing -------------------------------------------------------------------------------
    Row(
        id="read-only-api",
        where="api",
        input="`open_cache('cache.zarr').write_derived(...)` (opened read-only)",
        call=_write_read_only,
        error="ReadOnlyError",
        message="expected a cache opened for writing, got 'cache.zarr' opened read-only; use "
        "open_cache(url, mode='r+') (or create_cache) to write",
    ),
    Row(
        id="read-only-zip",
        slow=True,
        where="cli",
        input="`actstore extract ... --out cache.zip` (zip caches are read-only)",
        args=(*_EXTRACT, "cache.zip"),
        error="ReadOnlyError",
        message="expected a writable cache location for --out, got the zip file 'cache.zip'; zip "
        "caches are read-only: extract into a directory and `actstore copy` it to a .zip",
    ),
    Row(
        id="bad-dtype-spec",
        where="api",
        input="`PromptSetSpec(..., dtype='int8')`",
        call=_spec(dtype="int8"),
        error="InvalidArgumentError",
        message="expected dtype one of bfloat16, float16, float32, got 'int8'; convert the "
        "activations or pick one of these",
    ),
    Row(
        id="zero-prompts-spec",
        where="api",
        input="`PromptSetSpec(n_prompts=0, ...)`",
        call=_spec(n_prompts=0),
        error="InvalidArgumentError",
        message="expected n_prompts to be an integer >= 1, got 0",
    ),
    # -- extraction ----------------------------------------------------------------------------
    Row(
        id="shard-spec",
        where="cli",
        input="`actstore extract ... --shard 5/4`",
        args=(*_EXTRACT, "new.zarr", "--shard", "5/4"),
        error="InvalidArgumentError",
        message="expected --shard I/N with 0 <= I < N, got 5/4; workers are numbered from 0",
    ),
    Row(
        id="shard-malformed",
        where="cli",
        input="`actstore extract ... --shard 2of4`",
        args=(*_EXTRACT, "new.zarr", "--shard", "2of4"),
        error="InvalidArgumentError",
        message="expected --shard I/N with integers (e.g. 0/4), got '2of4'; use e.g. --shard "
        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT",
    ),
    Row(
        id="batch-tokens-zero",
        where="cli",
        input="`actstore extract ... --max-batch-tokens 0`",
        args=(*_EXTRACT, "new.zarr", "--max-batch-tokens", "0"),
        error="InvalidArgumentError",
        message="expected --max-batch-tokens >= 1, got 0; e.g. 8192",
    ),
    Row(
        id="batch-tokens-negative",
        where="cli",
        input="`actstore extract ... --max-batch-tokens -5`",
        args=(*_EXTRACT, "new.zarr", "--max-batch-tokens=-5"),
        error="InvalidArgumentError",
        message="expected --max-batch-tokens >= 1, got -5; e.g. 8192",
    ),
    Row(
        id="missing-model",
        where="cli",
        input="`actstore extract --model /no/such/model ...`",
        args=("extract", "--model", "/no/such/model", "--prompts", "good.jsonl", "--out", "n.zarr"),
        error="ModelLoadError",
        message="expected a local model directory, got '/no/such/model' which does not exist; "
        "pass the directory holding config.json and the weights",
    ),
    Row(
        id="unknown-generator",
        where="cli",
        input="`actstore extract ... --prompts multiplcation` (typo)",
        args=("extract", "--model", "model", "--prompts", "multiplcation", "--out", "n.zarr"),
        error="UnknownNameError",
        message="expected a generator name (arithmetic, kinetic_energy, multiplication, squaring) "
        "or a .jsonl/.csv file, got 'multiplcation'; see `actstore prompts list`",
    ),
    Row(
        id="empty-prompt-set",
        where="cli",
        input="`actstore extract ... --prompts empty.jsonl`",
        args=("extract", "--model", "model", "--prompts", "empty.jsonl", "--out", "n.zarr"),
        error="PromptFileError",
        message="empty.jsonl: expected at least one prompt, got none; is the file empty?",
    ),
    Row(
        id="prompt-file-line",
        where="cli",
        input="`actstore prompts show bad.jsonl` (line 2 has no `text`)",
        args=("prompts", "show", "bad.jsonl"),
        error="PromptFileError",
        message="bad.jsonl line 2, field 'text': expected a 'text' field, got none; add it",
    ),
    Row(
        id="layer-out-of-range",
        slow=True,
        where="cli",
        input="`actstore extract --model model ... --layers 1,4` (4 decoder layers)",
        args=(*_EXTRACT, "new.zarr", "--layers", "1,4"),
        error="InvalidArgumentError",
        message="expected layers in [-4, 3] (the model has 4 decoder layers), got 4; pick layers "
        "inside the model's depth",
    ),
    Row(
        id="prompt-longer-than-context",
        slow=True,
        where="cli",
        input="`actstore extract --model short_model --prompts long.jsonl ...` (16-token context)",
        args=("extract", "--model", "short_model", "--prompts", "long.jsonl", "--out", "n.zarr"),
        error="ExtractionError",
        message="expected prompts of at most 16 tokens (the model's context), got 800 tokens for "
        "prompt 0 ('word word word word word word word word '...); shorten or split that prompt",
    ),
    Row(
        id="fingerprint-on-resume",
        slow=True,
        where="cli",
        input="`actstore extract --model model2 --prompts good.jsonl --out tiny.zarr` (the set "
        "was extracted with `model`)",
        args=(
            "extract",
            "--model",
            "model2",
            "--prompts",
            "good.jsonl",
            "--out",
            "tiny.zarr",
            "--layers",
            "0,1",
        ),
        error="FingerprintMismatchError",
        message="prompt set 'good': fingerprint.model differs from the stored one: expected "
        "…(stored), got …; write to a new cache or a new prompt-set name",
    ),
    Row(
        id="duplicate-set-name",
        slow=True,
        where="cli",
        input="`actstore extract --prompts other.jsonl --set-name good --out tiny.zarr` (the "
        "name is taken by other prompts)",
        args=(
            "extract",
            "--model",
            "model",
            "--prompts",
            "other.jsonl",
            "--set-name",
            "good",
            "--out",
            "tiny.zarr",
            "--layers",
            "0,1",
        ),
        error="FingerprintMismatchError",
        message="prompt set 'good': n_tokens_max differs from the stored one: expected 20 "
        "(stored), got 21; write to a new cache or a new prompt-set name",
    ),
    Row(
        id="layer-out-of-range-api",
        where="api",
        input="`extract(model='model', prompts='good.jsonl', out='new.zarr', layers='1,4')`",
        call=_extract(layers="1,4"),
        error="InvalidArgumentError",
        message="expected layers in [-4, 3] (the model has 4 decoder layers), got 4; pick layers "
        "inside the model's depth",
    ),
    Row(
        id="prompt-longer-than-context-api",
        where="api",
        input="`extract(model='short_model', prompts='long.jsonl', ...)` (16-token context)",
        call=_extract(model="short_model", prompts="long.jsonl"),
        error="ExtractionError",
        message="expected prompts of at most 16 tokens (the model's context), got 800 tokens for "
        "prompt 0 ('word word word word word word word word '...); shorten or split that prompt",
    ),
    Row(
        id="fingerprint-on-resume-api",
        where="api",
        input="`extract(model='model2', prompts='good.jsonl', out='tiny.zarr', layers='0,1')`",
        call=_extract(model="model2", out="tiny.zarr"),
        error="FingerprintMismatchError",
        message="prompt set 'good': fingerprint.model differs from the stored one: expected "
        "…(stored), got …; write to a new cache or a new prompt-set name",
    ),
    Row(
        id="duplicate-set-name-api",
        where="api",
        input="`extract(prompts='other.jsonl', set_name='good', out='tiny.zarr', ...)`",
        call=_extract(prompts="other.jsonl", set_name="good", out="tiny.zarr"),
        error="FingerprintMismatchError",
        message="prompt set 'good': n_tokens_max differs from the stored one: expected 20 "
        "(stored), got 21; write to a new cache or a new prompt-set name",
    ),
    # -- probes and detection --------------------------------------------------------------------
    Row(
        id="unknown-target",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target v`",
        args=("probe", "fit", "cache.zarr", "--prompt-set", "arith", "--target", "v"),
        error="UnknownNameError",
        message="expected a label column of the prompt set (value, x), got 'v'; pass --target "
        "with one of those",
    ),
    Row(
        id="string-target",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target template` (strings)",
        args=("probe", "fit", "cache.zarr", "--prompt-set", "arith", "--target", "template"),
        error="InvalidArgumentError",
        message="expected a numeric target column, got 'template' of dtype object; probes "
        "regress numbers: pass a numeric label",
    ),
    Row(
        id="unknown-position-cli",
        where="cli",
        input="`actstore probe fit ... --position middle`",
        args=(*_FIT, "--position", "middle"),
        error="InvalidArgumentError",
        message="expected a position spec of the form last, all, before:SPAN, span:SPAN, got "
        "'middle'",
    ),
    Row(
        id="unknown-span-cli",
        where="cli",
        input="`actstore probe fit ... --position before:result` (spans: answer, operands)",
        args=(*_FIT, "--position", "before:result"),
        error="UnknownNameError",
        message="expected a span of the prompt set (answer, operands), got 'result' in "
        "position 'before:result'; use one of those or 'last'/'all'",
    ),
    Row(
        id="unknown-layer-fit",
        where="cli",
        input="`actstore probe fit ... --layers 2` (stored: 1, 4, 6)",
        args=(*_FIT, "--layers", "2"),
        error="UnknownNameError",
        message="expected layers among the stored [1, 4, 6], got [2]; pass layers that were "
        "extracted",
    ),
    Row(
        id="bad-cv",
        where="cli",
        input="`actstore probe fit ... --cv 1`",
        args=(*_FIT, "--cv", "1"),
        error="InvalidArgumentError",
        message="expected cv >= 2 folds, got 1; pass cv=5 (or more)",
    ),
    Row(
        id="nan-labels",
        where="cli",
        input="`actstore probe fit nan_probe.zarr --prompt-set arith --target value` (all NaN)",
        args=("probe", "fit", "nan_probe.zarr", "--prompt-set", "arith", "--target", "value"),
        error="InvalidArgumentError",
        message="expected at least cv=5 labelled prompts, got 0; use fewer folds or more prompts",
    ),
    Row(
        id="read-only-cli",
        where="cli",
        input="`actstore probe fit cache.zip --prompt-set arith --target value` (saves into the "
        "read-only zip)",
        args=("probe", "fit", "cache.zip", "--prompt-set", "arith", "--target", "value"),
        error="ReadOnlyError",
        message="expected a writable cache location, got the zip file 'cache.zip'; zip caches "
        "are read-only: write to a directory and `actstore copy` it to a .zip",
    ),
    Row(
        id="probe-other-model",
        where="cli",
        input="`actstore detect cache.zarr --probes probes_other.npz --prompt-set arith --target "
        "value` (probes of another model)",
        args=(
            "detect",
            "cache.zarr",
            "--probes",
            "probes_other.npz",
            "--prompt-set",
            "arith",
            "--target",
            "value",
            "--no-write",
        ),
        error="ProbeMismatchError",
        message="expected activations of the model the probes were fitted on "
        "(sha256:another-model), got model sha256:abc; use a cache of that model (or "
        "allow_model_mismatch=True if intended)",
    ),
    Row(
        id="probe-object-array",
        where="cli",
        input="`actstore probe show object.npz` (holds a Python object array)",
        args=("probe", "show", "object.npz"),
        error="UnsafeCacheError",
        message="expected numeric probe arrays in object.npz, got a Python object array, which "
        "only unpickling (running code) could load; refusing it: save the probes again "
        "with actstore",
    ),
    Row(
        id="probe-object-array-api",
        where="api",
        input="`load_probes('object.npz')`",
        call=_load_npz,
        error="UnsafeCacheError",
        message="expected numeric probe arrays in object.npz, got a Python object array, which "
        "only unpickling (running code) could load; refusing it: save the probes again "
        "with actstore",
    ),
    # -- issue 10 items 3 and 10 (numerics): degenerate targets and inputs of a probe fit -------
    Row(
        id="constant-target",
        where="api",
        input="`fit_probes(ds, target='c')` with label `c` = 0.1 for every prompt",
        call=_fit_changed("constant"),
        error="DegenerateTargetError",
        message="expected a target that varies, got label 'c' constant at 0.1 for all 9 prompts; "
        "R² and every probe metric are undefined there: pick a label that varies across these "
        "prompts",
    ),
    Row(
        id="constant-target-ridge",
        where="api",
        input="`RidgeProbe().fit(x, y)` with `y` all 2.0",
        call=_ridge_constant,
        error="DegenerateTargetError",
        message="expected a target that varies, got y constant at 2 for all 6 samples; R² and "
        "every probe metric are undefined there: pick a label that varies across these prompts",
    ),
    Row(
        id="infinite-target",
        where="api",
        input="`fit_probes(ds, target='value')` with `value` = inf for prompt 4",
        call=_fit_changed("inf"),
        error="DegenerateTargetError",
        message="expected finite values of label 'value', got inf for 1 of 9 prompts (e.g. 4); "
        "fix them, or set them to NaN to leave those prompts out",
    ),
    Row(
        id="nan-activations",
        where="api",
        input="`fit_probes(ds, ...)` with NaN in a selected activation row of layer 1",
        call=_fit_changed("nan-activations"),
        error="InvalidArgumentError",
        message="expected finite activations, got NaN or inf in the selected rows of layer 1; "
        "check the cache with `actstore verify`, or fit other layers or positions",
    ),
    # -- experiment configs ----------------------------------------------------------------------
    Row(
        id="config-missing",
        where="cli",
        input="`actstore run missing.toml`",
        args=("run", "missing.toml"),
        error="ConfigError",
        message="config file 'missing.toml' does not exist; check the path",
    ),
    Row(
        id="config-unknown-key",
        where="cli",
        input="`actstore run typo.toml --check` (`[extract] layer = ...`)",
        args=("run", "typo.toml", "--check"),
        error="ConfigError",
        message="unknown config key 'extract.layer'; expected one of: backend, batch_window, "
        "block_size, bos, codec, device, dtype, hooks, layers, max_batch_tokens, other_depths, "
        "positions",
    ),
    Row(
        id="config-duplicate-set",
        where="config",
        input="two `[[prompt_sets]]` named `arith`",
        call=_config(prompt_sets=[_PS, _PS]),
        error="ConfigError",
        message="config key 'prompt_sets[1].name': duplicated name 'arith'",
    ),
    Row(
        id="config-empty-layers",
        where="config",
        input="`[extract] layers = []`",
        call=_config(extract={"layers": []}),
        error="ConfigError",
        message="config key 'extract.layers' is empty; give layers, 'all' or 'spaced:K'",
    ),
    Row(
        id="config-unknown-set",
        where="config",
        input='a `[[probes]]` with `prompt_set = "physics"` (not declared)',
        call=_config(probes=[{**_PROBE, "prompt_set": "physics"}]),
        error="ConfigError",
        message="config key 'probes[0].prompt_set': expected one of arith, got 'physics'",
    ),
    Row(
        id="config-position",
        where="config",
        input='a `[[probes]]` with `position = "middle"`',
        call=_config(probes=[{**_PROBE, "position": "middle"}]),
        error="ConfigError",
        message="config key 'probes[0].position': expected a position spec of the form last, "
        "all, before:SPAN, span:SPAN, got 'middle'",
    ),
    Row(
        id="config-zero-n",
        where="config",
        input="a source with `n = 0`",
        call=_config(prompt_sets=[{"name": "arith", "sources": [{**_SRC, "n": 0}]}]),
        error="ConfigError",
        message="config key 'prompt_sets[0].sources[0].n': expected a positive integer, got 0",
    ),
    # -- issue 13: ActivationLoader and `actstore export` ------------------------------------
    Row(
        id="export-out-not-empty",
        where="cli",
        input="`actstore export cache.zarr --format npy --out notacache` (a folder with files)",
        args=("export", "cache.zarr", "--format", "npy", "--out", "notacache"),
        error="InvalidArgumentError",
        message="expected a new or empty directory for --out, got 'notacache' with files in it; "
        "pick a new path",
    ),
    Row(
        id="export-lossy-dtype",
        where="cli",
        input="`actstore export cache.zarr --format npy --out o --dtype float16` (bf16 cache)",
        args=("export", "cache.zarr", "--format", "npy", "--out", "o", "--dtype", "float16"),
        error="InvalidArgumentError",
        message="expected --dtype float32 (or float16 for a float16 cache), got 'float16' for a "
        "bfloat16 cache; float32 holds every stored value exactly",
    ),
    Row(
        id="export-context-too-long",
        where="cli",
        input="`actstore export cache.zarr --format hf-datasets --out o --context-size 100000`",
        args=(
            "export",
            "cache.zarr",
            "--format",
            "hf-datasets",
            "--out",
            "o",
            "--context-size",
            "100000",
        ),
        error="InvalidArgumentError",
        message="expected at least context_size=100000 real tokens in prompt set 'arith', got …; "
        "pass a smaller --context-size",
    ),
    Row(
        id="loader-layer-and-layers",
        where="api",
        input="`ActivationLoader('cache.zarr', 'arith', layer=1, layers=[4])`",
        call=_loader(layer=1, layers=[4]),
        error="InvalidArgumentError",
        message="expected layers= or layer=, got both ([4], 1); pass one",
        needs="torch",
    ),
    Row(
        id="loader-bos-unrecorded",
        where="api",
        input="`ActivationLoader('cache.zarr', 'arith', exclude_bos=True)` (no BOS record)",
        call=_loader(exclude_bos=True),
        error="InvalidArgumentError",
        message="expected prompt set 'arith' to record its BOS handling (fingerprint 'bos'), got "
        "none; select tokens with prompts=/span= instead of exclude_bos",
        needs="torch",
    ),
    Row(
        id="loader-resume-other-batch",
        where="api",
        input="`load_state_dict` of a loader with `batch_size=64` into one with 32",
        call=_loader_resume,
        error="InvalidArgumentError",
        message="expected a state of a loader with batch_size=32, got 64; build the loader with "
        "the same arguments to resume",
        needs="torch",
    ),
    # -- breaker13: more ActivationLoader arguments ---------------------------------------------
    Row(
        id="loader-layers-empty",
        where="api",
        input="`ActivationLoader('cache.zarr', 'arith', layers=[])`",
        call=_loader(layers=[]),
        error="InvalidArgumentError",
        message="expected layers= as a non-empty list of integer layer indices such as [7, 15], "
        "got []; leave it out for every stored layer",
        needs="torch",
    ),
    Row(
        id="loader-nothing-selected",
        where="api",
        input="`ActivationLoader('cache.zarr', 'arith', prompts=slice(5, 5))`",
        call=_loader(prompts=slice(5, 5)),
        error="InvalidArgumentError",
        message="expected the filters to select at least one token of prompt set 'arith', got 0 "
        "after prompts=, span= and exclude_bos=; widen the selection",
        needs="torch",
    ),
    Row(
        id="loader-device-unknown",
        where="api",
        input="`ActivationLoader('cache.zarr', 'arith', device='tpu')`",
        call=_loader(device="tpu"),
        error="InvalidArgumentError",
        message="expected a torch device such as 'cpu' or 'cuda:0', got 'tpu'",
        needs="torch",
    ),
    # -- prompts -------------------------------------------------------------------------------
    Row(
        id="span-out-of-text",
        where="api",
        input="`Prompt(text='7 times 8', spans={'answer': (5, 40)})`",
        call=_prompt(spans={"answer": (5, 40)}),
        error="InvalidArgumentError",
        message="prompt field 'spans.answer': expected 0 <= start < end <= 9 (the text length), "
        "got [5, 40]; spans are character offsets [start, end) into the text",
    ),
    Row(
        id="nan-label",
        where="api",
        input="`Prompt(text=..., labels={'value': float('nan')})`",
        call=_prompt(labels={"value": float("nan")}),
        error="InvalidArgumentError",
        message="prompt field 'value': expected a finite number, got nan; leave the label out "
        "instead",
    ),
    # -- issue 10 item 1: bfloat16 decoding (actstore.open / actstore.decode_bfloat16) ----------
    Row(
        id="decode-bfloat16-not-bool",
        where="api",
        input="`actstore.open('cache.zarr', 'arith', decode_bfloat16='no')`",
        call=_open_decode_flag,
        error="InvalidArgumentError",
        message="expected decode_bfloat16 True or False, got 'no'; pass a bool",
    ),
    Row(
        id="decode-bfloat16-not-xarray",
        where="api",
        input="`actstore.decode_bfloat16(numpy_array)`",
        call=_decode_numpy,
        error="InvalidArgumentError",
        message="expected an xarray Dataset, DataArray, DataTree or Variable, got ndarray; pass "
        "what xr.open_zarr or actstore.open returned",
    ),
    # -- issue 10 item 5: the model must be what config.json and the tokenizer say ------------
    Row(
        id="tokenizer-beyond-embedding",
        where="api",
        input="`extract()` with a tokenizer whose ids do not fit the model's embedding",
        call=_extract_foreign_tokenizer,
        error="ModelLoadError",
        message="expected token ids below the model's … embedding rows, got id … from the "
        "tokenizer in '…'; nothing was written: use the tokenizer that belongs to these weights",
    ),
    # -- issue 10 items 2, 8, 9 (runcheck): stored data of another config, failing locations
    Row(
        id="run-stored-layers",
        where="api",
        input="`actstore run` without --model, OUT/cache.zarr holding layers 0, 1 of set `good`, "
        "the config asking `layers = [0]`",
        call=_run_on_copy(layers=[0]),
        error="FingerprintMismatchError",
        message="expected prompt set 'good' in …cache.zarr to hold the config's layers ([0]), "
        "got [0, 1] (stored, from another config or model); pass another --out for this config, "
        "or remove it and re-run with --model to extract again",
    ),
    Row(
        id="run-stored-prompts",
        where="api",
        input="the same, the config asking the prompts of seed 1 instead of seed 0",
        call=_run_on_copy(seed=1),
        error="FingerprintMismatchError",
        message="expected prompt set 'good' in …cache.zarr to hold the config's prompts (6 "
        "prompts, hash …), got 6 prompts, hash … (stored, from another config or model); pass "
        "another --out for this config, or remove it and re-run with --model to extract again",
    ),
    Row(
        id="run-stored-dtype",
        where="api",
        input='the same, the config asking `dtype = "bfloat16"` (stored float32)',
        call=_run_on_copy(dtype="bfloat16"),
        error="FingerprintMismatchError",
        message="expected prompt set 'good' in …cache.zarr to hold the config's dtype "
        "(bfloat16), got float32 (stored, from another config or model); pass another --out for "
        "this config, or remove it and re-run with --model to extract again",
    ),
    Row(
        id="out-no-parent",
        where="cli",
        input="`actstore copy cache.zarr /proc/actstore/c.zarr` (a folder that cannot be created)",
        args=("copy", "cache.zarr", "/proc/actstore/c.zarr"),
        error="StorageError",
        message="expected a location to write, got '/proc/actstore' (a folder on the way does not "
        "exist and cannot be created there) for '/proc/actstore/c.zarr'; pick another path or "
        "remove what is in the way",
    ),
    Row(
        id="out-file-in-the-way",
        where="cli",
        input="`actstore probe fit cache.zarr ... --out good.jsonl/p.npz` (a file in the way)",
        args=(*_FIT, "--out", "good.jsonl/p.npz"),
        error="StorageError",
        message="expected a location to write, got 'good.jsonl' (a file is in the way) for "
        "'good.jsonl/p.npz'; pick another path or remove what is in the way",
    ),
    Row(
        id="out-special-file",
        where="cli",
        input="`actstore copy cache.zarr /dev/null/c.zarr` (a special file as a folder)",
        args=("copy", "cache.zarr", "/dev/null/c.zarr"),
        error="StorageError",
        message="expected a location to write, got '/dev/null/c.zarr': a file is in the way "
        "(part of the path is a file, not a folder); pick another path or remove what is in the "
        "way",
    ),
    Row(
        id="create-file-in-the-way",
        where="api",
        input="`create_cache('good.jsonl/c.zarr')`",
        call=_create_cache_at("good.jsonl/c.zarr"),
        error="StorageError",
        message="expected a location to write, got 'good.jsonl/c.zarr': a file is in the way "
        "(part of the path is a file, not a folder); pick another path or remove what is in the "
        "way",
    ),
    Row(
        id="s3-no-endpoint",
        where="cli",
        input='`actstore info s3://caches/c.zarr --storage-options \'{... "endpoint_url": '
        '"http://127.0.0.1:9" ...}\'` (nothing answers there)',
        args=("info", "s3://caches/c.zarr", "--storage-options", _S3_DEAD),
        error="StorageError",
        message="expected a storage location to read, got 's3://caches/c.zarr': the endpoint "
        "does not answer; check endpoint_url in --storage-options and the network, then retry",
        needs="s3fs",
    ),
    # -- issue 10 items 6-7: derived variable names, reserved label names, subsets and zips --
    Row(
        id="derived-over-label-cli",
        where="cli",
        input="`actstore detect cache.zarr --probes probes_other.npz ... --name x` (x is a label)",
        args=(*_DETECT_OTHER, "--allow-model-mismatch", "--name", "x"),
        error="InvalidArgumentError",
        message="expected a new or derived variable name in prompt set 'arith', got 'x', the "
        "name of its label; pick another name (predictions are named pred_<probe>)",
    ),
    Row(
        id="derived-over-label-api",
        where="api",
        input="`open_cache('cache.zarr', mode='r+').write_derived('arith', 'value', ...)`",
        call=_write_derived_over_label,
        error="InvalidArgumentError",
        message="expected a new or derived variable name in prompt set 'arith', got 'value', the "
        "name of its label; pick another name (predictions are named pred_<probe>)",
    ),
    Row(
        id="reserved-label-prefix",
        where="api",
        input="`Prompt(text='7 times 8', labels={'pred_value': 56})`",
        call=_prompt(labels={"pred_value": 56}),
        error="InvalidArgumentError",
        message="prompt field 'pred_value': expected a label name the cache does not use itself, "
        "got 'pred_value', which starts with 'pred_' (reserved for derived predictions); rename "
        "it",
    ),
    Row(
        id="reserved-label-name",
        where="api",
        input="`Prompt(text='7 times 8', labels={'n_tokens': 3})`",
        call=_prompt(labels={"n_tokens": 3}),
        error="InvalidArgumentError",
        message="prompt field 'n_tokens': expected a label name the cache does not use itself, "
        "got the reserved name 'n_tokens' (the store's own 'n_tokens' variable); rename it",
    ),
    Row(
        id="detect-read-only",
        where="cli",
        input="`actstore detect cache.zip --probes probes_other.npz --prompt-set arith --target "
        "value` (writes into a zip)",
        args=("detect", "cache.zip", *_DETECT_OTHER[2:]),
        error="ReadOnlyError",
        message="expected a writable cache to store the predictions in, got 'cache.zip', which "
        "is read-only; pass --no-write (write=False) to detect without storing the predictions",
    ),
    Row(
        id="detect-layers",
        where="cli",
        input="`actstore detect cache.zarr ... --layers 2 --no-write` (probed and stored: 1, 4, 6)",
        args=(*_DETECT_OTHER, "--layers", "2", "--no-write"),
        error="UnknownNameError",
        message="expected distinct layers both the probes [1, 4, 6] and prompt set 'arith' "
        "[1, 4, 6] have, got [2]; pick among [1, 4, 6]",
    ),
    Row(
        id="copy-duplicate-prompts",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompts -1,8` (9 prompts: -1 is 8)",
        args=("copy", "cache.zarr", "out.zarr", "--prompts", "-1,8"),
        error="InvalidArgumentError",
        message="expected distinct prompts, got [8] more than once (negative indices count from "
        "the end); list each prompt once",
    ),
    Row(
        id="zip-unreadable",
        where="api",
        input="`actstore.open('broken.zip')` (a text file named .zip)",
        call=_open_broken_zip,
        error="NotACacheError",
        message="expected a zip file at '…broken.zip', got one zipfile cannot read (File is not "
        "a zip file); copy the cache again (`actstore copy CACHE NEW.zip`)",
    ),
    # -- issue 12: figures and the HTML report --------------------------------------------------
    Row(
        id="figure-per-row",
        where="api",
        input="`plot_heatmaps(result, per_row=0)`",
        call=_figure("plot_heatmaps", per_row=0),
        error="InvalidArgumentError",
        message="expected per_row to be a positive integer, got 0; pass e.g. per_row=40",
    ),
    Row(
        id="figure-unknown-prompt",
        where="api",
        input="`plot_traces(result, prompts=[99])` (prompts 0-8)",
        call=_figure("plot_traces", prompts=[99]),
        error="UnknownNameError",
        message="expected prompt labels of the detection result (0..8, 9 prompts, or -1 for the "
        "last), got 99; pass labels from result.tokens['prompt']",
    ),
    Row(
        id="report-max-prompts",
        where="api",
        input="`write_report(probes, result, out, max_prompts=0)`",
        call=_figure("write_report", max_prompts=0),
        error="InvalidArgumentError",
        message="expected max_prompts to be a positive integer, got 0; pass e.g. 40",
    ),
    # -- issue 13: progress on every long command ----------------------------------------------
    Row(
        id="progress-mode",
        where="api",
        input="`actstore.show_progress('fancy')`",
        call=_progress_mode("fancy"),
        error="InvalidArgumentError",
        message="expected progress mode True, False, None, 'bar' or 'log', got 'fancy'",
    ),
    # -- issue 14: hook points of the hf backend and `actstore verify --model` ----------------
    Row(
        id="hook-resid-mid-parallel",
        where="api",
        input="`extract(hooks=('resid_mid',))` on GPT-J (attention and MLP in parallel)",
        call=_dry_run_hooks(_GPTJ, ("resid_mid",)),
        error="InvalidArgumentError",
        message="expected blocks that run attention then MLP for hook resid_mid, got gptj whose "
        "blocks run attention and MLP in parallel on one input (no residual stream between "
        "them); drop resid_mid: resid_post = resid_pre + attn_out + mlp_out",
    ),
    Row(
        id="hook-sublayer-unknown-family",
        where="api",
        input="`extract(hooks=('attn_out',))` on a model_type without a hook table",
        call=_dry_run_hooks(_ODD, ("attn_out",)),
        error="InvalidArgumentError",
        message="expected a family whose attn_out --backend hf knows, got no sub-layer hook "
        "table for model_type 'not_a_family' (known: …); use resid_pre/resid_post, or "
        "--backend tlens (hook_attn_out, hook_mlp_out, ...)",
    ),
    Row(
        id="verify-model-other-fingerprint",
        slow=True,
        where="cli",
        input="`actstore verify tiny.zarr --model model2` (extracted with `model`)",
        args=("verify", "tiny.zarr", "--model", "model2"),
        error="FingerprintMismatchError",
        message="prompt set 'good': fingerprint field 'model' differs: expected sha256:… "
        "(stored), got sha256:… from '…'; pass --model with the checkpoint the cache was "
        "extracted from",
    ),
    Row(
        id="verify-sample-without-model",
        where="cli",
        input="`actstore verify tiny.zarr --sample 4`",
        args=("verify", "tiny.zarr", "--sample", "4"),
        error="InvalidArgumentError",
        message="expected --sample only with --model, got --sample alone; add --model DIR to "
        "re-run the model, or drop it",
    ),
    Row(
        id="verify-bad-sample",
        where="cli",
        input="`actstore verify tiny.zarr --model model --sample 0`",
        args=("verify", "tiny.zarr", "--model", "model", "--sample", "0"),
        error="InvalidArgumentError",
        message="expected --sample as a positive integer or 'all', got 0; e.g. --sample 16",
    ),
    # -- issue 12 (classify): classification probes (--kind) and grouped folds (--group-by) ------
    Row(
        id="logistic-fractional-label",
        where="api",
        input="`fit_probes(ds, target='v', kind='logistic')` (v = 0.5, 1.5, ...)",
        call=_fit_labels("logistic", "fractional"),
        error="InvalidArgumentError",
        message="expected a categorical label (integers or strings) for kind='logistic', got "
        "non-integer values in 'v' (e.g. …); use kind='ridge' for a continuous target",
    ),
    Row(
        id="logistic-too-many-classes",
        where="api",
        input="`fit_probes(ds, target='v', kind='logistic')` (60 distinct integers)",
        call=_fit_labels("logistic", "many"),
        error="InvalidArgumentError",
        message="expected at most 50 classes for kind='logistic', got 60 distinct values of 'v'; "
        "use kind='ridge' for a continuous target or a coarser label",
    ),
    Row(
        id="class-with-one-prompt",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target x --kind logistic`",
        args=(*_FIT[:-1], "x", "--kind", "logistic"),
        error="InvalidArgumentError",
        message="expected at least 2 prompts per class of 'x', got one prompt in class(es) …; "
        "drop the class or add prompts",
    ),
    Row(
        id="mean-diff-multiclass",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target x --kind mean_diff`",
        args=(*_FIT[:-1], "x", "--kind", "mean_diff"),
        error="InvalidArgumentError",
        message="expected 2 classes for kind='mean_diff', got … in 'x'; use kind='logistic' for "
        "multiclass labels",
    ),
    Row(
        id="class-probe-memory",
        where="api",
        input="`fit_probes(ds, target='v', kind='logistic', max_memory=100)`",
        call=_fit_labels("logistic", "binary", max_memory=100),
        error="InvalidArgumentError",
        message="expected the selected rows of one layer (60 samples x d_model 4: 0.0 MiB with "
        "the float64 copy) within max_memory 0.0 MiB, got more; raise max_memory or select "
        "fewer positions",
    ),
    Row(
        id="group-by-unknown",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target value --group-by "
        "phrasing`",
        args=(*_FIT, "--group-by", "phrasing"),
        error="UnknownNameError",
        message="expected a label column of the prompt set (template, text, value, x) to group "
        "folds by, got 'phrasing'; pass one of those",
    ),
    Row(
        id="group-by-too-few-groups",
        where="cli",
        input="`actstore probe fit cache.zarr --prompt-set arith --target value --group-by "
        "template` (2 templates, 5 folds)",
        args=(*_FIT, "--group-by", "template"),
        error="InvalidArgumentError",
        message="expected at least cv=5 distinct groups, got 2 (plus, times); use fewer folds "
        "or another --group-by label",
    ),
    # -- breaker10: local-only outputs given a URL (issue 10, item 9) -----------------------------
    Row(
        id="plot-out-url",
        where="cli",
        input="`actstore plot cache.zarr ... --out s3://bucket/figs`",
        args=(
            *("plot", "cache.zarr", "--probes", "value", "--prompt-set", "arith"),
            *("--target", "value", "--out", "s3://bucket/figs"),
        ),
        error="InvalidArgumentError",
        message="expected a local path for --out, got the URL 's3://bucket/figs', which would "
        "be written as a local folder; pick a local path (copy the files up afterwards)",
    ),
    Row(
        id="export-out-url",
        where="cli",
        input="`actstore export cache.zarr --format npy --out s3://bucket/ex`",
        args=("export", "cache.zarr", "--format", "npy", "--out", "s3://bucket/ex"),
        error="InvalidArgumentError",
        message="expected a local path for --out, got the URL 's3://bucket/ex', which would be "
        "written as a local folder; pick a local path (copy the files up afterwards)",
    ),
    # -- issue 14: generated continuations (extract --generate) ---------------------------------
    Row(
        id="generate-zero",
        where="cli",
        input="`actstore extract ... --generate 0`",
        args=(*_EXTRACT, "new.zarr", "--generate", "0"),
        error="InvalidArgumentError",
        message="expected generate.max_new_tokens an integer >= 1, got 0; e.g. --generate 64",
    ),
    Row(
        id="generate-flag-alone",
        where="cli",
        input="`actstore extract ... --stop .` (a generation setting without --generate)",
        args=(*_EXTRACT, "new.zarr", "--stop", "."),
        error="InvalidArgumentError",
        message="expected --generate N with --stop, got no --generate; add e.g. --generate 64",
    ),
    Row(
        id="generate-greedy-temperature",
        where="cli",
        input="`actstore extract ... --generate 8 --temperature 0.7` (no --do-sample)",
        args=(*_EXTRACT, "new.zarr", "--generate", "8", "--temperature", "0.7"),
        error="InvalidArgumentError",
        message="expected generate.temperature 1.0 with greedy decoding, got 0.7; set do_sample "
        "= true (--do-sample) to sample, or leave it out",
    ),
    Row(
        id="generate-find-span",
        where="cli",
        input="`actstore extract ... --generate 8 --find-span v2=v_squared`",
        args=(*_EXTRACT, "new.zarr", "--generate", "8", "--find-span", "v2=v_squared"),
        error="InvalidArgumentError",
        message="expected generate.find_spans.v2 'label:COLUMN' or 'regex:PATTERN', got "
        "'v_squared'; e.g. label:v_squared or regex:=\\s*\\d+",
    ),
    Row(
        id="generate-no-chat-template",
        where="cli",
        input="`actstore extract ... --generate 8 --chat-template` (the tokenizer has none)",
        args=(*_EXTRACT, "new.zarr", "--generate", "8", "--chat-template"),
        error="InvalidArgumentError",
        message="expected a tokenizer with a chat template for --chat-template, got "
        "Qwen2Tokenizer without one (no chat_template in tokenizer_config.json); drop "
        "--chat-template or use an instruction-tuned checkpoint's tokenizer",
    ),
    Row(
        id="generate-setting-changed",
        where="cli",
        input="`actstore extract ... --out tiny.zarr --set-name good --layers 0,1 --generate 2` "
        "(the set holds given text, no continuation)",
        args=(*_EXTRACT, "tiny.zarr", "--set-name", "good", "--layers", "0,1", "--generate", "2"),
        error="FingerprintMismatchError",
        message="prompt set 'good': generate.max_new_tokens differs from the stored one: "
        "expected no generation (stored), got 2; re-run with the stored setting, or write to a "
        "new cache or a new --set-name",
    ),
    # -- issue 12 (signif): permutation p-values in detection ------------------------------------
    Row(
        id="detect-permutations-negative",
        where="cli",
        input="`actstore detect cache.zarr ... --permutations -1 --no-write`",
        args=(*_DETECT_OTHER, "--permutations", "-1", "--no-write"),
        error="InvalidArgumentError",
        message="expected permutations a whole number >= 0, got -1; pass e.g. permutations=100 "
        "(0 skips the p-values)",
    ),
    Row(
        id="config-detect-permutations",
        where="config",
        input="`[detect] permutations = -1`",
        call=_config(detect={"prompt_set": "arith", "target": "value", "permutations": -1}),
        error="ConfigError",
        message="config key 'detect.permutations': expected an integer >= 0, got -1; use 0 for no "
        "p-values",
    ),
    # -- issue 14 (gendemo): several detection blocks, [[detect]] ------------------------------
    Row(
        id="config-detect-block-no-name",
        where="config",
        input="a `[[detect]]` block without `name`",
        call=_config(detect=[{"prompt_set": "arith", "target": "value"}]),
        error="ConfigError",
        message="config key 'detect[0].name' is missing; expected a name for each [[detect]] "
        'block (it names the block\'s results); add name = "..."',
    ),
    Row(
        id="config-detect-block-twice",
        where="config",
        input="two `[[detect]]` blocks named `a`",
        call=_config(detect=[{"name": "a", "prompt_set": "arith", "target": "value"}] * 2),
        error="ConfigError",
        message="config key 'detect[1].name': expected a name used by one [[detect]] block, got "
        "'a' twice; rename one block",
    ),
    Row(
        id="config-detect-block-set",
        where="config",
        input='a `[[detect]]` block with `prompt_set = "physics"` (not declared)',
        call=_config(detect=[{"name": "a", "prompt_set": "physics", "target": "value"}]),
        error="ConfigError",
        message="config key 'detect[0].prompt_set': expected one of arith, got 'physics'; name a "
        "[[prompt_sets]] entry",
    ),
    Row(
        id="config-detect-block-probe",
        where="config",
        input='a `[[detect]]` block with `probes = ["first"]` (not declared)',
        call=_config(
            detect=[{"name": "a", "prompt_set": "arith", "target": "value", "probes": ["first"]}]
        ),
        error="ConfigError",
        message="config key 'detect[0].probes': expected names among last, got 'first'; name a "
        "[[probes]] entry",
    ),
    Row(
        id="config-detect-empty",
        where="config",
        input="`detect = []`",
        call=_config(detect=[]),
        error="ConfigError",
        message="config key 'detect': expected at least one [[detect]] block, got none; add a "
        "block or remove the key",
    ),
    # -- breaker14: generation finders and config seeds (issue 14, second look) ----------------
    Row(
        id="generate-find-span-twice",
        where="cli",
        input="`actstore extract ... --generate 8 --find-span x=regex:a --find-span x=regex:b`",
        args=(
            *_EXTRACT,
            "new.zarr",
            "--generate",
            "8",
            "--find-span",
            "x=regex:a",
            "--find-span",
            "x=regex:b",
        ),
        error="InvalidArgumentError",
        message="expected generate.find_spans each span name once, got 'x'; give the finders "
        "'regex:a' and 'regex:b' different names",
    ),
    Row(
        id="generate-find-span-label-missing",
        where="cli",
        input="`actstore extract ... --generate 8 --find-span nv=label:nope --dry-run` (no such "
        "label: refused before generating)",
        args=(
            *_EXTRACT,
            "new.zarr",
            "--generate",
            "8",
            "--find-span",
            "nv=label:nope",
            "--dry-run",
        ),
        error="InvalidArgumentError",
        message="expected a label column 'nope' for the span finder nv=label:nope, got labels "
        "['interaction', 'operation', 'template', 'value', 'x', 'y']; name an existing label "
        "column",
    ),
    Row(
        id="config-detect-block-seed",
        where="config",
        input="a `[[detect]]` block with `seed = -1`",
        call=_config(detect=[{"name": "a", "prompt_set": "arith", "target": "value", "seed": -1}]),
        error="ConfigError",
        message="config key 'detect[0].seed': expected an integer seed in [0, 2**32), got -1; "
        "use e.g. seed = 0",
    ),
    Row(
        id="config-probe-seed",
        where="config",
        input="`[[probes]] seed = -5`",
        call=_config(probes=[{**_PROBE, "seed": -5}]),
        error="ConfigError",
        message="config key 'probes[0].seed': expected an integer seed in [0, 2**32), got -5; "
        "use e.g. seed = 0",
    ),
    Row(
        id="config-source-seed",
        where="config",
        input="`[[prompt_sets.sources]] seed = -1`",
        call=_config(prompt_sets=[{"name": "arith", "sources": [{**_SRC, "seed": -1}]}]),
        error="ConfigError",
        message="config key 'prompt_sets[0].sources[0].seed': expected an integer seed in "
        "[0, 2**32), got -1; use e.g. seed = 0",
    ),
    Row(
        id="verify-model-missing",
        where="cli",
        input="`actstore verify tiny.zarr --model no_such_dir`",
        args=("verify", "tiny.zarr", "--model", "no_such_dir"),
        error="ModelLoadError",
        message="expected a local model directory, got '…no_such_dir' which does not exist; pass "
        "the directory holding config.json and the weights",
    ),
    # -- readpath (issue 11): materialised positions (derive positions, extract --positions) -------
    Row(
        id="derive-positions-unknown-span",
        where="cli",
        input="`actstore derive positions cache.zarr --positions before:result`",
        args=("derive", "positions", "cache.zarr", "--positions", "before:result"),
        error="UnknownNameError",
        message="expected a span of prompt set 'arith' (answer, operands), got 'result' in "
        "position 'before:result'; use one of those or 'last'",
    ),
    Row(
        id="derive-positions-several-tokens",
        where="cli",
        input="`actstore derive positions cache.zarr --positions last,span:answer`",
        args=("derive", "positions", "cache.zarr", "--positions", "last,span:answer"),
        error="InvalidArgumentError",
        message="expected positions that select one token per prompt (last, before:SPAN), got "
        "'span:answer'; read 'span:answer' from the full activations instead",
    ),
    Row(
        id="derive-positions-malformed",
        where="cli",
        input="`actstore derive positions cache.zarr --positions middle`",
        args=("derive", "positions", "cache.zarr", "--positions", "middle"),
        error="InvalidArgumentError",
        message="expected a position spec of the form last, all, before:SPAN, span:SPAN, got "
        "'middle'",
    ),
    Row(
        id="derive-positions-zip",
        where="cli",
        input="`actstore derive positions cache.zip --positions last`",
        args=("derive", "positions", "cache.zip", "--positions", "last"),
        error="ReadOnlyError",
        message="expected a writable cache location, got the zip file 'cache.zip'; zip caches are "
        "read-only: write to a directory and `actstore copy` it to a .zip",
    ),
    Row(
        id="derive-positions-unknown-hook",
        where="cli",
        input="`actstore derive positions cache.zarr --positions last --hook attn_out`",
        args=("derive", "positions", "cache.zarr", "--positions", "last", "--hook", "attn_out"),
        error="UnknownNameError",
        message="expected hooks among the stored ['resid_post'], got ['attn_out']; pass stored "
        "hooks",
    ),
    Row(
        id="derive-positions-no-token-anywhere",
        where="api",
        input="`materialize_positions(cache, 'arith', 'before:answer')`, every answer at token 0",
        call=_positions_nowhere,
        error="InvalidArgumentError",
        message="expected position 'before:answer' to select a token in some prompt of 'arith', "
        "got none in all 4 prompts; check where span 'answer' lies",
    ),
    Row(
        id="extract-positions-unknown-span",
        where="cli",
        input="`actstore extract ... --positions before:result` (spans: answer, x, y)",
        args=(*_EXTRACT, "n.zarr", "--positions", "before:result"),
        error="UnknownNameError",
        message="expected a span of the prompts (answer, x, y), got 'result' in position "
        "'before:result'; use one of those or 'last'",
    ),
    Row(
        id="config-extract-positions",
        where="config",
        input='`[extract] positions = ["last", "all"]`',
        call=_config(extract={"positions": ["last", "all"]}),
        error="ConfigError",
        message="config key 'extract.positions': expected positions that select one token per "
        "prompt (last, before:SPAN), got 'all'; read 'all' from the full activations instead",
    ),
    # -- probe (issue 11): a damaged materialised-positions chunk, on both read paths ------------
    Row(
        id="probe-fit-damaged-positions",
        where="api",
        input="`fit_probes('damaged_positions.zarr', ...)`, one byte of a positions chunk flipped",
        call=_damaged_positions(general=False),
        error="CorruptCacheError",
        message="expected an intact chunk …/arith/positions/resid_post/c/0/0/0/0 of "
        "'…damaged_positions.zarr', got a crc32c checksum that does not match its bytes; the "
        "cache is damaged: run `actstore verify …damaged_positions.zarr` to list every damaged "
        "part and `actstore repair …damaged_positions.zarr` to fix it (or restore the copy)",
    ),
    Row(
        id="probe-fit-damaged-positions-cache",
        where="api",
        input="`fit_probes(open_cache('damaged_positions.zarr'), ...)`, the same damage",
        call=_damaged_positions(general=True),
        error="CorruptCacheError",
        message="expected intact data in array 'arith/positions/resid_post' of "
        "'…damaged_positions.zarr', got ValueError: … reading chunk(s) "
        "arith/positions/resid_post/c/0/0/0/0; run `actstore verify …damaged_positions.zarr` "
        "to list the damage and `actstore repair …damaged_positions.zarr` to fix it",
    ),
    # -- issue 11 (write path): extract --codec -------------------------------------------------
    Row(
        id="codec-unknown",
        where="cli",
        input="`actstore extract ... --codec lz4`",
        args=(*_EXTRACT, "new.zarr", "--codec", "lz4"),
        error="InvalidArgumentError",
        message="expected --codec zstd:LEVEL (LEVEL -7..22 except 0, e.g. zstd:1, zstd:3, "
        "zstd:-1) or none, got 'lz4'; use e.g. zstd:1 (the default)",
    ),
    Row(
        id="codec-changed",
        where="cli",
        input="`actstore extract ... --out tiny.zarr --set-name good --layers 0,1 --codec zstd:3` "
        "(the set was written with zstd:1)",
        args=(*_EXTRACT, "tiny.zarr", "--set-name", "good", "--layers", "0,1", "--codec", "zstd:3"),
        error="FingerprintMismatchError",
        message="prompt set 'good': codec differs from the stored one: expected 'zstd:1' "
        "(stored), got 'zstd:3'; drop --codec to resume with the stored one, or write to a new "
        "cache or a new prompt-set name",
    ),
    Row(
        id="config-bad-codec",
        where="config",
        input='`[extract] codec = "zstd:99"`',
        call=_config(extract={"codec": "zstd:99"}),
        error="ConfigError",
        message="config key 'extract.codec': expected --codec zstd:LEVEL (LEVEL -7..22 except 0, "
        "e.g. zstd:1, zstd:3, zstd:-1) or none, got 'zstd:99'; use e.g. zstd:1 (the default)",
    ),
    # -- breaker11: the write path, --codec and positions tried by a new user (issue 11) --------
    Row(
        id="codec-level-not-plain-digits",
        where="cli",
        input="`actstore extract ... --codec zstd:1_0` (was read as level 10)",
        args=(*_EXTRACT, "new.zarr", "--codec", "zstd:1_0"),
        error="InvalidArgumentError",
        message="expected --codec zstd:LEVEL (LEVEL -7..22 except 0, e.g. zstd:1, zstd:3, "
        "zstd:-1) or none, got 'zstd:1_0'; use e.g. zstd:1 (the default)",
    ),
    Row(
        id="write-threads-env-bad",
        where="api",
        input="`ACTSTORE_WRITE_THREADS=0`, then `extract(...)` (was silently ignored)",
        call=_write_threads_zero,
        error="InvalidArgumentError",
        message="expected ACTSTORE_WRITE_THREADS to be a whole number >= 1, got '0'; set it to "
        "e.g. 4, or unset it to use every core this process may use",
    ),
    Row(
        id="extract-positions-no-token-anywhere",
        where="api",
        input="`extract(..., positions='before:x')`, span x at token 0 of every prompt (was "
        "refused only after the whole extraction)",
        call=_extract_positions_nowhere,
        error="InvalidArgumentError",
        message="expected position 'before:x' to select a token in some prompt of 'x0', got "
        "none in all 3 prompts; check where span 'x' lies",
    ),
    # -- breaker12: probes and detection tried by a new user (issue 12) -------------------------
    Row(
        id="mean-diff-standardized-without-score-gap",
        where="api",
        input="`ProbeSet.weights()` of standardised mean_diff probes saved without `score_gap`",
        call=_mean_diff_without_gap,
        error="InvalidArgumentError",
        message="expected standardised mean_diff probes with their class-mean score gap "
        "(score_gap), got probes saved without it; refit them with this version",
    ),
    Row(
        id="ridge-probe-standardize-string",
        where="api",
        input="`RidgeProbe(standardize='no').fit(x, y)`",
        call=_bad_param("standardize"),
        error="InvalidArgumentError",
        message="expected standardize True or False, got 'no'; pass standardize=True or "
        "standardize=False",
    ),
    Row(
        id="logistic-probe-max-iter-zero",
        where="api",
        input="`LogisticProbe(max_iter=0).fit(x, y)`",
        call=_bad_param("max_iter"),
        error="InvalidArgumentError",
        message="expected max_iter a whole number >= 1, got 0; pass e.g. max_iter=5",
    ),
    Row(
        id="logistic-probe-negative-tol",
        where="api",
        input="`LogisticProbe(tol=-1.0).fit(x, y)`",
        call=_bad_param("tol"),
        error="InvalidArgumentError",
        message="expected tol a finite number > 0, got -1.0; pass e.g. tol=1.0",
    ),
    Row(
        id="detect-seed-negative",
        where="api",
        input="`detect(cache, probes, ..., seed=-1)`",
        call=_bad_param("seed"),
        error="InvalidArgumentError",
        message="expected seed a whole number >= 0, got -1; pass e.g. seed=5",
    ),
    # -- reportcfg: targets and spans checked when the config is read, not after extraction ----
    Row(
        id="config-detect-unknown-target",
        where="config",
        input='a `[[detect]]` block with `target = "v_squared"` on a multiplication prompt set',
        call=_config(detect=[{"name": "d", "prompt_set": "arith", "target": "v_squared"}]),
        error="ConfigError",
        message="config key 'detect[0].target': expected a numeric label column of prompt set "
        "'arith' (x, y, value, interaction), got 'v_squared'; name one of those",
    ),
    Row(
        id="config-detect-text-target",
        where="config",
        input='a `[detect]` table with `target = "template"` (a text label)',
        call=_config(detect={"prompt_set": "arith", "target": "template"}),
        error="ConfigError",
        message="config key 'detect.target': expected a numeric label column of prompt set "
        "'arith' (x, y, value, interaction), got 'template', a text label; name one of those",
    ),
    Row(
        id="config-detect-unknown-span",
        where="config",
        input='a `[[detect]]` block with `span = "result"` (the set has spans x, y, answer)',
        call=_config(
            detect=[{"name": "d", "prompt_set": "arith", "target": "value", "span": "result"}]
        ),
        error="ConfigError",
        message="config key 'detect[0].span': expected a span of prompt set 'arith' (x, y, "
        "answer), got 'result'; name one of those or leave span out",
    ),
    Row(
        id="config-probe-unknown-target",
        where="config",
        input='a `[[probes]]` with `target = "v"` on a multiplication prompt set',
        call=_config(probes=[{**_PROBE, "target": "v"}]),
        error="ConfigError",
        message="config key 'probes[0].target': expected a numeric label column of prompt set "
        "'arith' (x, y, value, interaction), got 'v'; name one of those",
    ),
    Row(
        id="config-probe-position-unknown-span",
        where="config",
        input='a `[[probes]]` with `position = "before:result"` (no span `result`)',
        call=_config(probes=[{**_PROBE, "position": "before:result"}]),
        error="ConfigError",
        message="config key 'probes[0].position': expected a span of prompt set 'arith' (x, y, "
        "answer), got 'result'; name one of those or use position 'last'",
    ),
    # -- storesplit (issue 15): the public checked open, actstore.store.open_store -------------
    Row(
        id="open-store-mode",
        where="api",
        input="`actstore.store.open_store('cache.zarr', mode='w')`",
        call=_open_store(mode="w"),
        error="InvalidArgumentError",
        message="expected mode 'r' or 'r+', got 'w'",
    ),
    # -- contract (issue 15 part D): what a directory refuses, every storage location refuses --
    Row(
        id="create-over-other-objects",
        where="api",
        input="`create_cache('memory://catalogue-notes/c.zarr')` (the location holds `notes.txt`)",
        call=_create_over_other_objects,
        error="NotACacheError",
        message="expected an empty or new location for a new cache, got "
        "'memory://catalogue-notes/c.zarr' with other objects in it (e.g. 'notes.txt'); pick a "
        "new URL",
    ),
    Row(
        id="copy-over-other-objects",
        where="api",
        input="`copy_cache('cache.zarr', 'memory://catalogue-copy/d.zarr')` (it holds `notes.txt`)",
        call=_copy_over_other_objects,
        error="InvalidArgumentError",
        message="expected a new destination, got objects ('notes.txt') at "
        "'memory://catalogue-copy/d.zarr'; pick a new URL",
    ),
    # -- lead, session 19: an empty item in a comma-separated option is refused, not skipped ------
    Row(
        id="list-empty-extract-layers",
        where="cli",
        input="`actstore extract ... --layers 1,,2`",
        args=(
            "extract",
            "--model",
            "model",
            "--prompts",
            "good.jsonl",
            "--out",
            "n.zarr",
            "--layers",
            "1,,2",
        ),
        error="InvalidArgumentError",
        message="expected layers as comma-separated items with none empty, got '1,,2'; "
        "remove the extra comma (e.g. 7,15,23)",
    ),
    Row(
        id="list-empty-extract-hooks",
        where="cli",
        input="`actstore extract ... --hook resid_post,`",
        args=(
            "extract",
            "--model",
            "model",
            "--prompts",
            "good.jsonl",
            "--out",
            "n.zarr",
            "--hook",
            "resid_post,",
        ),
        error="InvalidArgumentError",
        message="expected hooks as comma-separated items with none empty, got 'resid_post,'; "
        "remove the extra comma (e.g. resid_post,resid_pre)",
    ),
    Row(
        id="list-empty-extract-positions",
        where="cli",
        input="`actstore extract ... --positions last,,before:answer`",
        args=(
            "extract",
            "--model",
            "model",
            "--prompts",
            "good.jsonl",
            "--out",
            "n.zarr",
            "--positions",
            "last,,before:answer",
        ),
        error="InvalidArgumentError",
        message="expected positions as comma-separated items with none empty, got "
        "'last,,before:answer'; remove the extra comma (e.g. last,before:answer)",
    ),
    Row(
        id="list-empty-copy-layers",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --layers 1,,4`",
        args=("copy", "cache.zarr", "out.zarr", "--layers", "1,,4"),
        error="InvalidArgumentError",
        message="expected layers as comma-separated items with none empty, got '1,,4'; "
        "remove the extra comma (e.g. 7,15,23)",
    ),
    Row(
        id="list-empty-copy-prompts",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompts 0,,2`",
        args=("copy", "cache.zarr", "out.zarr", "--prompts", "0,,2"),
        error="InvalidArgumentError",
        message="expected --prompts as comma-separated items with none empty, got '0,,2'; "
        "remove the extra comma (e.g. 0,5,9)",
    ),
    Row(
        id="list-empty-copy-prompt-sets",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --prompt-sets arith,`",
        args=("copy", "cache.zarr", "out.zarr", "--prompt-sets", "arith,"),
        error="InvalidArgumentError",
        message="expected --prompt-sets as comma-separated items with none empty, got 'arith,'; "
        "remove the extra comma (e.g. arith,physics)",
    ),
    Row(
        id="list-empty-fit-alphas",
        where="cli",
        input="`actstore probe fit ... --alphas 1,,10`",
        args=(
            "probe",
            "fit",
            "cache.zarr",
            "--prompt-set",
            "arith",
            "--target",
            "value",
            "--alphas",
            "1,,10",
        ),
        error="InvalidArgumentError",
        message="expected --alphas as comma-separated items with none empty, got '1,,10'; "
        "remove the extra comma (e.g. 0.1,1,10)",
    ),
    Row(
        id="list-empty-export-hooks",
        where="cli",
        input="`actstore export cache.zarr --format npy --out o --hooks ,resid_post`",
        args=("export", "cache.zarr", "--format", "npy", "--out", "o", "--hooks", ",resid_post"),
        error="InvalidArgumentError",
        message="expected --hooks as comma-separated items with none empty, got ',resid_post'; "
        "remove the extra comma (e.g. resid_post)",
    ),
    Row(
        id="list-empty-derive-hook",
        where="cli",
        input="`actstore derive positions cache.zarr --positions last --hook resid_post,,`",
        args=("derive", "positions", "cache.zarr", "--positions", "last", "--hook", "resid_post,,"),
        error="InvalidArgumentError",
        message="expected --hook as comma-separated items with none empty, got 'resid_post,,'; "
        "remove the extra comma (e.g. resid_post)",
    ),
    # -- issue 15 (lead): stored-layer lists read by the one layer grammar -------------------------
    Row(
        id="copy-layers-spaced",
        where="cli",
        input="`actstore copy cache.zarr out.zarr --layers spaced:2`",
        args=("copy", "cache.zarr", "out.zarr", "--layers", "spaced:2"),
        error="InvalidArgumentError",
        message="expected --layers as stored layer numbers like 7,15,23 (or all), got 'spaced:2'; "
        "spaced:K and negative indices need the model's depth and apply to extract only (list the "
        "stored layers with `actstore info`)",
    ),
    Row(
        id="fit-layers-negative",
        where="cli",
        input="`actstore probe fit ... --layers -1`",
        args=(*_FIT, "--layers=-1"),
        error="InvalidArgumentError",
        message="expected --layers as stored layer numbers like 7,15,23 (or all), got '-1'; "
        "spaced:K and negative indices need the model's depth and apply to extract only (list the "
        "stored layers with `actstore info`)",
    ),
    Row(
        id="export-layers-grammar",
        where="cli",
        input="`actstore export cache.zarr --format npy --out o --layers 1;2`",
        args=("export", "cache.zarr", "--format", "npy", "--out", "o", "--layers", "1;2"),
        error="InvalidArgumentError",
        message="expected layers as 'all', 'spaced:K' or comma-separated integers, got '1;2'; use "
        "e.g. --layers all, --layers spaced:7 or --layers 7,15,-1",
    ),
    # -- issue 15 part B (extractcfg): one ExtractConfig, one layer grammar -----------------------
    Row(
        id="extract-layers-grammar",
        where="cli",
        input="`actstore extract ... --layers 1;2`",
        args=(*_EXTRACT, "new.zarr", "--layers", "1;2"),
        error="InvalidArgumentError",
        message="expected layers as 'all', 'spaced:K' or comma-separated integers, got '1;2'; use "
        "e.g. --layers all, --layers spaced:7 or --layers 7,15,-1",
    ),
    Row(
        id="extract-layer-rule",
        where="cli",
        input="`actstore extract ... --layers spaced:0`",
        args=(*_EXTRACT, "new.zarr", "--layers", "spaced:0"),
        error="InvalidArgumentError",
        message="expected a layer rule 'all' or 'spaced:K' (K >= 1), got 'spaced:0'; e.g. spaced:7",
    ),
    Row(
        id="extract-device",
        where="cli",
        input="`actstore extract ... --device gpu`",
        args=(*_EXTRACT, "new.zarr", "--device", "gpu"),
        error="InvalidArgumentError",
        message="expected --device auto, cpu, cuda or cuda:N, got 'gpu'; pick one of these",
    ),
    Row(
        id="extract-block-size",
        where="cli",
        input="`actstore extract ... --block-size 0`",
        args=(*_EXTRACT, "new.zarr", "--block-size", "0"),
        error="InvalidArgumentError",
        message="expected --block-size >= 1 (prompts per shard), got 0; leave it out for the "
        "store's choice",
    ),
    Row(
        id="extract-backend-api",
        where="api",
        input="`extract(..., backend='jax')`",
        call=_extract(backend="jax"),
        error="InvalidArgumentError",
        message="expected --backend one of hf, tlens, got 'jax'; pick one of these",
    ),
    Row(
        id="extract-unknown-setting-api",
        where="api",
        input="`extract(..., layer='0')` (a typo of `layers`)",
        call=_extract(layer="0"),
        error="InvalidArgumentError",
        message="expected extraction settings among backend, batch_window, block_size, bos, "
        "codec, command, device, dry_run, dtype, generate, hooks, layers, max_batch_tokens, "
        "model, n_prompts, other_depths, out, positions, progress, prompts, seed, set_name, "
        "shard, storage_options, got 'layer'; see ExtractConfig",
    ),
    Row(
        id="config-extract-backend",
        where="config",
        input='`[extract] backend = "jax"`',
        call=_config(extract={"backend": "jax"}),
        error="ConfigError",
        message="config key 'extract.backend': expected --backend one of hf, tlens, got 'jax'; "
        "pick one of these",
    ),
    Row(
        id="config-extract-layer-rule",
        where="config",
        input='`[extract] other_depths = "every:3"`',
        call=_config(extract={"other_depths": "every:3"}),
        error="ConfigError",
        message="config key 'extract.other_depths': expected a layer rule 'all' or 'spaced:K' "
        "(K >= 1), got 'every:3'; e.g. spaced:7",
    ),
    # -- newcomer (issue 15): the writer API's spec and the TOML [extract] table -----------------
    Row(
        id="spec-layers-string",
        where="api",
        input="`PromptSetSpec(..., layers='0,1')` (the grammar of `--layers`, unresolved)",
        call=_spec(layers="0,1"),
        error="InvalidArgumentError",
        message="expected layers as a sequence of integer layer indices, got '0,1'; pass e.g. "
        "(7, 15, 23) (resolve 'all', 'spaced:K' or negative indices first: "
        "actstore.extractors.resolve_layers)",
    ),
    Row(
        id="spec-layers-float",
        where="api",
        input="`PromptSetSpec(..., layers=(1.5,))`",
        call=_spec(layers=(1.5,)),
        error="InvalidArgumentError",
        message="expected layers as a sequence of integer layer indices, got (1.5,); pass e.g. "
        "(7, 15, 23) (resolve 'all', 'spaced:K' or negative indices first: "
        "actstore.extractors.resolve_layers)",
    ),
    Row(
        id="spec-layers-negative",
        where="api",
        input="`PromptSetSpec(..., layers=(0, -1))`",
        call=_spec(layers=(0, -1)),
        error="InvalidArgumentError",
        message="expected layer indices >= 0 (the layer coordinate is the real block index), got "
        "(0, -1); resolve negative indices against the model's depth",
    ),
    Row(
        id="spec-block-size-float",
        where="api",
        input="`PromptSetSpec(..., block_size=2.5)`",
        call=_spec(block_size=2.5),
        error="InvalidArgumentError",
        message="expected block_size an integer >= 1 or None, got 2.5; use None to choose",
    ),
    Row(
        id="spec-duplicate-hooks",
        where="api",
        input="`PromptSetSpec(..., hooks=('resid_post', 'resid_post'))`",
        call=_spec(hooks=("resid_post", "resid_post")),
        error="InvalidArgumentError",
        message="expected distinct hook names, got ('resid_post', 'resid_post'); list each hook "
        "once",
    ),
    Row(
        id="spec-fingerprint-not-mapping",
        where="api",
        input="`PromptSetSpec(..., fingerprint={...})` (a set, as a cheat sheet writes `{...}`)",
        call=_spec(fingerprint={...}),
        error="InvalidArgumentError",
        message="expected fingerprint as a mapping of JSON values, got set {Ellipsis}; pass a dict "
        "such as {'model': 'sha256:...'}",
    ),
    Row(
        id="create-cache-provenance-not-mapping",
        where="api",
        input="`create_cache('new.zarr', provenance=['me'])`",
        call=_create_cache(provenance=["me"]),
        error="InvalidArgumentError",
        message="expected provenance as a mapping of JSON values, got list ['me']; pass a dict "
        "such as {'model': 'sha256:...'}",
    ),
    Row(
        id="activations-layers-string",
        where="api",
        input="`open_cache('cache.zarr').activations('arith', layers='1,4')`",
        call=_activations(layers="1,4"),
        error="InvalidArgumentError",
        message="expected layers as a list of stored layer indices, got '1,4'; pass e.g. [7, 15] "
        "(the layer coordinate's values)",
    ),
    Row(
        id="config-extract-positions-int",
        where="config",
        input="`[extract] positions = 7`",
        call=_config(extract={"positions": 7}),
        error="ConfigError",
        message="config key 'extract.positions': expected positions as 'last,before:answer' or a "
        "list of names, got 7; e.g. --positions last",
    ),
    Row(
        id="config-list-item-quoted-number",
        where="config",
        input='`[[probes]] alphas = [1.0, "10"]`',
        call=_config(probes=[{**_PROBE, "alphas": [1.0, "10"]}]),
        error="ConfigError",
        message="config key 'probes[0].alphas[1]': expected a number, got '10' (str); write the "
        "number without quotes",
    ),
    Row(
        id="config-scalar-for-list",
        where="config",
        input='`[report] plots = "heatmap"`',
        call=_config(report={"plots": "heatmap"}),
        error="ConfigError",
        message="config key 'report.plots': expected a list of strings, got 'heatmap' (str); "
        'write a list, e.g. ["heatmap"]',
    ),
    Row(
        id="config-extract-layers-float",
        where="config",
        input="`[extract] layers = [1.5]`",
        call=_config(extract={"layers": [1.5]}),
        error="ConfigError",
        message="config key 'extract.layers': expected layers as 'all', 'spaced:K', "
        "comma-separated integers or a list of integers, got [1.5]; use e.g. --layers all, "
        "--layers spaced:7 or --layers 7,15,-1",
    ),
    # -- issue 11 (s19 win): batching windows, --batch-window -----------------------------------
    Row(
        id="batch-window-zero",
        where="cli",
        input="`actstore extract ... --batch-window 0`",
        args=(*_EXTRACT, "new.zarr", "--batch-window", "0"),
        error="InvalidArgumentError",
        message="expected --batch-window >= 1 (blocks per batching window), got 0; leave it out "
        "for the automatic choice",
    ),
    Row(
        id="batch-window-changed",
        where="cli",
        input="`actstore extract ... --out tiny.zarr --set-name good --layers 0,1 "
        "--batch-window 2` (the set was written with one window of its 3 blocks)",
        args=(*_EXTRACT, "tiny.zarr", "--set-name", "good", *_TINY_GOOD, "--batch-window", "2"),
        error="FingerprintMismatchError",
        message="prompt set 'good': batch_window differs from the stored one: expected 3 "
        "(stored), got 2; drop --batch-window to resume with the stored one, or write to a new "
        "cache or a new prompt-set name",
    ),
    Row(
        id="config-bad-batch-window",
        where="config",
        input="`[extract] batch_window = 0`",
        call=_config(extract={"batch_window": 0}),
        error="ConfigError",
        message="config key 'extract.batch_window': expected --batch-window >= 1 (blocks per "
        "batching window), got 0; leave it out for the automatic choice",
    ),
)


def render_table(rows: tuple[Row, ...] = ROWS) -> str:
    """The catalogue table: input, where, error and exit code, exact message."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| # | Where | Bad input | Exit / error | Message (`…` varies) |",
        "|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows, 1):
        where = {"cli": "command line", "api": "Python API", "config": "config"}[row.where]
        outcome = (
            f"exit {row.exit_code}, `{row.error}`"
            if row.where == "cli"
            else f"raises `{row.error}`"
        )
        prefix = "actstore: error: " if row.where == "cli" else ""
        lines.append(
            f"| {i} | {where} | {cell(row.input)} | {outcome} | {cell(prefix + row.message)} |"
        )
    return "\n".join(lines)


def docs_section(rows: tuple[Row, ...] = ROWS) -> str:
    """The whole text between the markers of the docs page, markers included."""
    return f"{BEGIN}\n{_INTRO}\n{render_table(rows)}\n\n{_OUTRO}\n{END}"


_INTRO = """# Bad-input catalogue

Every bad input below gets one clear line naming the problem and the fix. On the command line that
is one line on stderr, `actstore: error: MESSAGE`, exit status 2 and no traceback (add `--debug`
anywhere on the line to see one); from Python, an exception of the named class, a subclass of both
`actstore.errors.ActstoreError` and the fitting builtin (`ValueError`, `LookupError`, `OSError`,
...). Each row is a test (`tests/reliability/test_catalogue.py`, the rows live in
`tests/reliability/_catalogue.py`, and a test checks that this table matches them); file names
refer to a work directory described there (`cache.zarr` is a small complete cache with prompt set
`arith`, layers 1, 4, 6). Options the parser itself rejects (a missing required option, `abc` where
a number is expected) get the same one line, ending `see 'actstore COMMAND --help' for usage`, exit
status 2 and no traceback.
"""

_OUTRO = """Hostile caches (a pickle codec, oversized metadata, symbolic links, paths that leave the
destination) are refused before zarr reads anything: [the safety model](../explanation/safety.md).
"""


def update_docs_page(path: Path = DOCS_PAGE) -> bool:
    """Rewrite the catalogue section of the docs page at *path*; True when it changed."""
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + docs_section() + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    print(f"{DOCS_PAGE} updated" if update_docs_page() else f"{DOCS_PAGE} already up to date")
