"""``actstore export``: real tokens of a cache as an HF ``datasets`` folder or flat ``.npy`` files.

* ``hf-datasets``: the layout SAELens's ``CacheActivationsRunner`` writes, one folder per prompt
  set: ``data-0000i-of-0000N.arrow``, ``dataset_info.json`` and ``state.json``, read back by
  ``datasets.load_from_disk``. One column per (hook, layer) named as TransformerLens names the hook
  (``blocks.{layer}.hook_resid_post``) with feature ``Array2D(shape=(context_size, d_model))``,
  and ``token_ids`` as ``Sequence(Value("int32"), length=context_size)``, as SAELens writes them;
  plus ``prompt`` and ``token`` (same feature) mapping each position back to the cache. A row is
  ``context_size`` consecutive *real* tokens, prompts packed one after another (SAELens packs
  its text the same way); tokens left over after the last full row are left out, with a warning.
* ``npy``: per prompt set, ``{hook}.layer{L}.npy`` of shape ``(tokens, d_model)`` (open with
  ``numpy.load(..., mmap_mode="r")``), ``prompt.npy``, ``token.npy`` and ``token_id.npy`` of shape
  ``(tokens,)``, and ``meta.json``. Every real token, in (prompt, token) order.

This module never imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actstore._jsonout import dumps
from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.store.core._tokens import TokenPlan, select_tokens
from actstore.store.format._layers import layer_list

__all__ = ["FORMATS", "ExportReport", "Progress", "export_cache", "hook_column"]

FORMATS = ("hf-datasets", "npy")
#: Rows read per step: about this many bytes of one hook's selected rows (every layer).
_STEP_BYTES = 256 * 2**20


def hook_column(hook: str, layer: int) -> str:
    """The TransformerLens/SAELens name of *hook* at *layer*: ``blocks.7.hook_resid_post``."""
    return f"blocks.{layer}.hook_{hook}"


@dataclass
class ExportReport:
    """What :func:`export_cache` wrote: per prompt set, its folder, tokens and rows."""

    out: str
    format: str
    prompt_sets: dict[str, dict[str, Any]] = field(default_factory=dict)


class Progress:
    """A tqdm bar on a terminal, a log line every *interval* seconds otherwise, or nothing."""

    def __init__(
        self, total: int, desc: str, *, quiet: bool, interval: float = 10.0, what: str = "export"
    ) -> None:
        self.total, self.desc, self.done, self.what = total, desc, 0, what
        self.quiet, self.interval = quiet, interval
        self._t0 = self._last = time.perf_counter()
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="tok", unit_scale=True, desc=desc)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and time.perf_counter() - self._last >= self.interval:
            self._log()

    def _log(self) -> None:
        self._last = time.perf_counter()
        rate = self.done / max(self._last - self._t0, 1e-9)
        print(
            f"actstore {self.what}: {self.desc}: {self.done}/{self.total} tokens "
            f"({rate:,.0f} tok/s)",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif not self.quiet:
            self._log()


def _out_dtype(stored: str, dtype: str | None) -> np.dtype[Any]:
    if dtype is None:
        return np.dtype("float16" if stored == "float16" else "float32")
    if dtype == "float32" or (dtype == "float16" and stored == "float16"):
        return np.dtype(dtype)
    raise InvalidArgumentError(
        f"expected --dtype float32 (or float16 for a float16 cache), got {dtype!r} for a "
        f"{stored} cache; float32 holds every stored value exactly"
    )


def _chunks(plan: TokenPlan) -> Iterator[np.ndarray]:
    """Unit positions in prompt order, cut into steps of about :data:`_STEP_BYTES`."""
    order = plan.unit_order(shuffle=False, seed=0, epoch=0)
    step = max(1, _STEP_BYTES // plan.row_nbytes)
    yield from plan.windows(order, step)


def export_cache(
    url: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    format: str,
    layers: Sequence[int] | None = None,
    hooks: Sequence[str] | None = None,
    prompt_sets: Sequence[str] | None = None,
    dtype: str | None = None,
    context_size: int | None = None,
    storage_options: dict[str, Any] | None = None,
    quiet: bool = True,
) -> ExportReport:
    """Write the real tokens of a cache to *out* as ``hf-datasets`` or ``npy`` (see the module).

    Parameters
    ----------
    url, out
        The cache, and a new (or empty) local directory; one subfolder per prompt set.
    format
        ``"hf-datasets"`` or ``"npy"``.
    layers, hooks, prompt_sets
        What to export (default: everything stored).
    dtype
        ``"float32"`` (default; bfloat16 widens exactly) or ``"float16"`` for a float16 cache.
    context_size
        Tokens per ``hf-datasets`` row (SAELens's ``context_size``); default the set's longest
        prompt.
    quiet
        No progress output.

    Raises
    ------
    InvalidArgumentError
        Unknown format, a non-empty *out*, a lossy dtype, or too few tokens for one row.
    UnknownNameError
        An unknown prompt set, hook or layer.
    """
    from actstore._locations import require_local
    from actstore.store.core._entry import open_cache

    layers = layer_list(layers)  # numpy arrays too; a string is refused, not read per character
    if format not in FORMATS:
        raise InvalidArgumentError(f"expected --format one of {FORMATS}, got {format!r}")
    if context_size is not None and (isinstance(context_size, bool) or int(context_size) < 1):
        raise InvalidArgumentError(f"expected a context size >= 1, got {context_size!r}")
    out_dir = Path(require_local(out, "--out"))
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = "with files in it" if out_dir.is_dir() else "which is a file"
        raise InvalidArgumentError(
            f"expected a new or empty directory for --out, got {str(out_dir)!r} {what}; "
            "pick a new path"
        )
    cache = open_cache(url, storage_options=storage_options)
    names = list(prompt_sets) if prompt_sets is not None else cache.prompt_sets
    for name in names:
        cache.group(name)  # UnknownNameError naming the sets that exist
    jobs = []  # everything is checked before anything is written
    for name in names:
        spec = cache.spec(name)
        set_hooks = list(hooks) if hooks is not None else list(spec.hooks)
        set_layers = list(layers) if layers is not None else list(spec.layers)
        for hook in set_hooks:
            if hook not in spec.hooks:
                raise UnknownNameError(
                    f"expected hooks of prompt set {name!r} (from {list(spec.hooks)}), got {hook!r}"
                )
        mask = select_tokens(cache, name)
        plans = [TokenPlan(cache, name, hook=h, layers=set_layers, mask=mask) for h in set_hooks]
        odt = _out_dtype(spec.dtype, dtype)
        ctx = int(context_size or spec.n_tokens_max)
        if format == "hf-datasets" and plans[0].n_rows < ctx:
            raise InvalidArgumentError(
                f"expected at least context_size={ctx} real tokens in prompt set {name!r}, got "
                f"{plans[0].n_rows}; pass a smaller --context-size"
            )
        jobs.append((name, plans, odt, ctx))
    report = ExportReport(out=str(out_dir), format=format)
    for name, plans, odt, ctx in jobs:
        dest = out_dir / name
        dest.mkdir(parents=True, exist_ok=True)
        progress = Progress(plans[0].n_rows * len(plans), name, quiet=quiet)
        try:
            if format == "npy":
                info = _write_npy(cache, name, plans, odt, dest, progress)
            else:
                info = _write_hf(cache, name, plans, odt, ctx, dest, progress)
        finally:
            progress.close()
        report.prompt_sets[name] = {"path": str(dest), **info}
    return report


def _token_ids(cache: Any, name: str) -> np.ndarray:
    return np.asarray(cache.group(name)["token_id"][:], dtype=np.int32)


def _write_npy(
    cache: Any, name: str, plans: list[TokenPlan], odt: np.dtype[Any], dest: Path, progress: Any
) -> dict[str, Any]:
    n, d = plans[0].n_rows, plans[0].spec.d_model
    files: dict[str, str] = {}
    arrays = {}
    for plan in plans:
        for layer in plan.layers:
            fname = f"{plan.hook}.layer{layer}.npy"
            files[hook_column(plan.hook, layer)] = fname
            arrays[(plan.hook, layer)] = np.lib.format.open_memmap(
                dest / fname, mode="w+", dtype=odt, shape=(n, d)
            )
    prompt = np.lib.format.open_memmap(dest / "prompt.npy", mode="w+", dtype=np.int32, shape=(n,))
    token = np.lib.format.open_memmap(dest / "token.npy", mode="w+", dtype=np.int32, shape=(n,))
    token_id = np.lib.format.open_memmap(
        dest / "token_id.npy", mode="w+", dtype=np.int32, shape=(n,)
    )
    ids = _token_ids(cache, name)
    for plan in plans:
        at = 0
        for positions in _chunks(plan):
            rows, p, t = plan.read(positions)
            for j, layer in enumerate(plan.layers):
                arrays[(plan.hook, layer)][at : at + len(p)] = rows[j].astype(odt)
            prompt[at : at + len(p)] = p
            token[at : at + len(p)] = t
            token_id[at : at + len(p)] = ids[p, t]
            at += len(p)
            progress.update(len(p))
    for arr in (*arrays.values(), prompt, token, token_id):
        arr.flush()
    meta = {
        "format": "actstore-npy",
        "version": 1,
        "source": str(cache.url),
        "prompt_set": name,
        "n_tokens": n,
        "d_model": d,
        "dtype": odt.name,
        "layers": plans[0].layers,
        "hooks": [p.hook for p in plans],
        "files": files,
        "index": {"prompt": "prompt.npy", "token": "token.npy", "token_id": "token_id.npy"},
    }
    (dest / "meta.json").write_text(dumps(meta, indent=2) + "\n")
    return {"tokens": n, "files": sorted(files.values())}


def _write_hf(
    cache: Any,
    name: str,
    plans: list[TokenPlan],
    odt: np.dtype[Any],
    ctx: int,
    dest: Path,
    progress: Any,
) -> dict[str, Any]:
    from datasets import Array2D, Features, Sequence, Value

    n, d = plans[0].n_rows, plans[0].spec.d_model
    n_rows = n // ctx
    left = n - n_rows * ctx
    if left:
        warnings.warn(
            f"prompt set {name!r}: {left} of {n} real tokens are left out of the hf-datasets "
            f"export (fewer than one row of context_size={ctx}); the npy format keeps all",
            UserWarning,
            stacklevel=3,
        )
    columns = {hook_column(p.hook, la): (p, j) for p in plans for j, la in enumerate(p.layers)}
    feats: dict[str, Any] = {c: Array2D(shape=(ctx, d), dtype=odt.name) for c in columns}
    index_feature = Sequence(Value(dtype="int32"), length=ctx)
    for c in ("token_ids", "prompt", "token"):
        feats[c] = index_feature
    features = Features(feats)
    ids = _token_ids(cache, name)
    tmp = dest / ".tmp_shards"
    tmp.mkdir()
    # Every hook's plan has the same units (same mask), so the steps line up row for row.
    steps = [list(_chunks(p)) for p in plans]
    carry: dict[str, np.ndarray] = {}
    shard = 0
    for k in range(len(steps[0])):
        part: dict[str, np.ndarray] = {}
        for plan, plan_steps in zip(plans, steps):
            rows, p, t = plan.read(plan_steps[k])
            for j, layer in enumerate(plan.layers):
                part[hook_column(plan.hook, layer)] = rows[j].astype(odt)
            part["prompt"], part["token"] = p.astype(np.int32), t.astype(np.int32)
            part["token_ids"] = ids[p, t]
            progress.update(len(p))
        merged = {c: np.concatenate([carry[c], v]) if carry else v for c, v in part.items()}
        full = len(merged["prompt"]) // ctx * ctx
        carry = {c: v[full:] for c, v in merged.items()}
        if full:
            _save_shard(merged, full, ctx, d, features, tmp / f"shard_{shard:05d}")
            shard += 1
    _consolidate(tmp, dest)
    return {"tokens": n_rows * ctx, "rows": n_rows, "context_size": ctx, "left_out": left}


def _save_shard(
    data: dict[str, np.ndarray], full: int, ctx: int, d: int, features: Any, path: Path
) -> None:
    import datasets

    cols = {}
    for c, v in data.items():
        cols[c] = v[:full].reshape((full // ctx, ctx, d) if v.ndim == 2 else (full // ctx, ctx))
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # ours counts tokens; one bar per shard would be noise
    try:
        datasets.Dataset.from_dict(cols, features=features).save_to_disk(str(path), num_shards=1)
    finally:
        if shown:
            datasets.enable_progress_bars()


def _consolidate(tmp: Path, dest: Path) -> None:
    """Move every shard's arrow file into *dest* and describe them in one ``state.json``."""
    import datasets
    from datasets.fingerprint import generate_fingerprint

    shards = sorted(p for p in tmp.iterdir() if p.name.startswith("shard_"))
    files = []
    for shard in shards:
        state = json.loads((shard / "state.json").read_text())
        files.extend(shard / f["filename"] for f in state["_data_files"])
    shutil.copyfile(shards[0] / "dataset_info.json", dest / "dataset_info.json")
    names = []
    for i, src in enumerate(files):
        name = f"data-{i:05d}-of-{len(files):05d}.arrow"
        shutil.move(src, dest / name)
        names.append({"filename": name})
    state = {
        "_data_files": names,
        "_fingerprint": None,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (dest / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(tmp)
    state["_fingerprint"] = generate_fingerprint(datasets.load_from_disk(str(dest)))
    (dest / "state.json").write_text(json.dumps(state, indent=2))
