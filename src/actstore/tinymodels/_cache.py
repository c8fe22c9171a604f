"""Build the demo model once and reuse it: a directory per training recipe, keyed by a hash."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actstore.errors import InvalidArgumentError
from actstore.tinymodels._random import MARKER
from actstore.tinymodels._train import (
    RECIPE_VERSION,
    _texts_hash,
    build_random_twin,
    train_tiny_model,
    training_texts,
)

__all__ = ["default_cache_dir", "demo_model_key", "get_demo_model"]


def default_cache_dir() -> Path:
    """``$ACTSTORE_MODEL_CACHE``, else ``$XDG_CACHE_HOME/actstore/models`` (``~/.cache/...``)."""
    env = os.environ.get("ACTSTORE_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actstore" / "models"


def demo_model_key(**train_kwargs: Any) -> str:
    """Hash of everything that decides the trained weights: recipe version, arguments, text."""
    sig = inspect.signature(train_tiny_model)
    unknown = sorted(set(train_kwargs) - set(sig.parameters) - {"texts"})
    if unknown or "out_dir" in train_kwargs:
        raise InvalidArgumentError(
            f"expected train_tiny_model arguments, got unknown {unknown or ['out_dir']}; "
            "see help(train_tiny_model)"
        )
    bound = sig.bind_partial(None, **train_kwargs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    args.pop("out_dir")
    texts = args.pop("texts")
    if texts is None:
        texts = training_texts(args["data"], seed=args["data_seed"])
    args["data"] = [[name, n, dict(opts)] for name, n, opts in args["data"]]
    payload = {"recipe_version": RECIPE_VERSION, "args": args, "texts": _texts_hash(list(texts))}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def get_demo_model(
    cache_dir: str | Path | None = None, *, random_twin: bool = False, **train_kwargs: Any
) -> Path:
    """Return the demo's trained tiny Qwen2 (or its random twin), training it on first use.

    The checkpoint lives in ``cache_dir/tiny-qwen2-<key>`` where ``key`` hashes the training
    arguments, the recipe version and the training text (:func:`demo_model_key`); the twin in
    ``...-<key>-twin``. A directory counts only once its ``tinymodel.json`` exists: training
    writes into a temporary directory renamed into place at the end, under a file lock, so
    parallel callers (pytest-xdist workers, two demos) train once and a killed build is redone.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Where models are kept; default :func:`default_cache_dir`.
    random_twin : bool
        Return the untrained twin (:func:`build_random_twin`) instead.
    **train_kwargs
        Arguments of :func:`train_tiny_model` (``texts``, ``steps``, ``seed``, ...).

    Returns
    -------
    Path
        The checkpoint directory.

    Raises
    ------
    InvalidArgumentError
        If ``train_kwargs`` names an argument :func:`train_tiny_model` does not take, or
        training refuses its arguments.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = f"tiny-qwen2-{demo_model_key(**train_kwargs)}"
    root.mkdir(parents=True, exist_ok=True)
    trained = root / name
    with _locked(root / f".{name}.lock"):
        if not (trained / MARKER).is_file():
            _build_into(trained, lambda tmp: train_tiny_model(tmp, **train_kwargs))
        if not random_twin:
            return trained
        twin = root / f"{name}-twin"
        if not (twin / MARKER).is_file():
            _build_into(twin, lambda tmp: build_random_twin(tmp, like=trained))
        return twin


def _build_into(final: Path, build: Any) -> None:
    """Build in a temporary sibling, then rename into place (callers hold the lock)."""
    tmp = final.with_name(f".{final.name}.tmp")
    for stale in (tmp, final):  # left by a killed build: never complete (no marker)
        shutil.rmtree(stale, ignore_errors=True)
    build(tmp)
    os.replace(tmp, final)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
