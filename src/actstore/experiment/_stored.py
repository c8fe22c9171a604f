"""Is the data stored in a run's cache the data its config asks for?

``actstore run`` reuses what is already in ``OUT/cache.zarr`` (a cache extracted elsewhere needs no
model), so before any stage reads a prompt set, the set's stored fingerprint is compared field by
field with what the config asks: the prompts (generator, seed, n, options: their content hash),
layers, hooks, dtype, backend and, when a model is given, the model's weights and tokenizer. A
difference is refused naming the field, both values and the fix; nothing is fitted, overwritten or
reported from data of another config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actstore.errors import FingerprintMismatchError
from actstore.experiment._io import build_prompt_set
from actstore.experiment._spec import ExperimentConfig
from actstore.extractors._layers import resolve_layers

__all__ = ["check_probes", "check_stored_set", "complete_cache", "model_description"]


def _n_layers(provenance: Mapping[str, Any]) -> int | None:
    """The model's depth, from the model config stored in the provenance."""
    raw = provenance.get("config")
    if not isinstance(raw, Mapping):
        return None
    text = raw.get("text_config") if isinstance(raw.get("text_config"), Mapping) else raw
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = text.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    return repr(value) if isinstance(value, str) else str(value)


def asked_fields(
    config: ExperimentConfig,
    set_name: str,
    *,
    n_layers: int | None,
    model: str | None,
    stored: Mapping[str, Any],
) -> list[tuple[str, Any, Any]]:
    """``(field, stored value, asked value)`` for every field the config pins down."""
    from actstore.extractors._hooks import resolve_hooks

    ex = config.extract
    fp = dict(stored.get("fingerprint", {}))
    out: list[tuple[str, Any, Any]] = []
    prompts = build_prompt_set(config, set_name)
    n_stored = stored.get("n_prompts")
    out.append(
        (
            "prompts",
            f"{n_stored} prompts, hash {_short(fp.get('prompts'))}",
            f"{len(prompts)} prompts, hash {_short(prompts.content_hash())}",
        )
    )
    if fp.get("prompts") == prompts.content_hash():
        out[-1] = ("prompts", None, None)
    if n_layers is not None:
        out.append(
            (
                "layers",
                list(stored.get("layers", [])),
                list(resolve_layers(ex.layers, n_layers, other_depths=ex.other_depths)),
            )
        )
    elif not isinstance(ex.layers, str):
        out.append(("layers", list(stored.get("layers", [])), sorted(ex.layers)))
    out.append(("hooks", list(fp.get("hooks", [])), list(resolve_hooks(ex.hooks, ex.backend)[1])))
    if ex.dtype != "auto":
        out.append(("dtype", fp.get("dtype", stored.get("dtype")), ex.dtype))
    if "backend" in fp:
        out.append(("backend", fp.get("backend"), ex.backend))
    out.extend(_generate_fields(config.prompt_set(set_name).generate, fp))
    if model is not None:
        from actstore.extractors import tokenizer_fingerprint, weights_fingerprint

        out.append(("model", fp.get("model"), weights_fingerprint(model)))
        if "tokenizer" in fp:
            out.append(("tokenizer", fp.get("tokenizer"), tokenizer_fingerprint(model)))
    return out


def check_stored_set(
    config: ExperimentConfig,
    set_name: str,
    cache: Any,
    *,
    model: str | None,
) -> None:
    """Refuse a stored prompt set that is not the one *config* asks for.

    Parameters
    ----------
    config : ExperimentConfig
        The run's config.
    set_name : str
        The prompt set (a cache subgroup) about to be reused.
    cache : Cache
        The run's open cache holding ``set_name``.
    model : str, optional
        The model directory given to the run; its weights and tokenizer fingerprints are compared
        too (without one, the cache's model is taken as it is and named in the report).

    Raises
    ------
    FingerprintMismatchError
        Naming the first differing field (prompts, layers, hooks, dtype, backend, model,
        tokenizer), the stored and the asked value, and the fix.
    """
    spec = cache.spec(set_name)
    stored = {
        "fingerprint": dict(spec.fingerprint),
        "n_prompts": spec.n_prompts,
        "layers": list(spec.layers),
        "dtype": spec.dtype,
    }
    n_layers = _n_layers(spec.provenance)
    if n_layers is None and model is not None:
        from actstore.extractors import read_model_config

        n_layers = read_model_config(model, need_weights=False).n_layers
    for name, old, new in asked_fields(
        config, set_name, n_layers=n_layers, model=model, stored=stored
    ):
        if old != new:
            fix = (
                "pass another --out for this config, or remove it and re-run with --model to "
                "extract again"
            )
            raise FingerprintMismatchError(
                f"expected prompt set {set_name!r} in {cache.url} to hold the config's {name} "
                f"({new}), got {old} (stored, from another config or model); {fix}"
            )


def complete_cache(url: str, set_name: str) -> Any:
    """The cache at *url* when ``set_name`` is complete in it, else ``None``."""
    from actstore.errors import ActstoreError
    from actstore.store import open_cache

    try:
        cache = open_cache(url)
        if set_name in cache.prompt_sets and cache.is_complete(set_name):
            return cache
    except ActstoreError:
        pass
    return None


def model_description(url: str, model: str | None, set_names: list[str]) -> str:
    """The model a report names: the one given, else the one the cache was extracted with."""
    from actstore.errors import ActstoreError
    from actstore.store import open_cache

    if model:
        return str(model)
    try:
        cache = open_cache(url)
    except ActstoreError:
        return "unknown (no model given and no cache)"
    found = _stored_model(cache, set_names)
    return f"{found}, from the cache" if found else "unknown (not recorded in the cache)"


def _stored_model(cache: Any, set_names: list[str]) -> str | None:
    """``path (weights fingerprint)`` of the model the cache's sets were extracted with."""
    seen: list[str] = []
    for name in set_names:
        if name not in cache.prompt_sets:
            continue
        spec = cache.spec(name)
        path = spec.provenance.get("model_path")
        weights = spec.fingerprint.get("model")
        text = f"{path if path else 'unknown path'} (weights {weights})"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) if seen else None


def check_probes(probes: Any, pc: Any, cache: Any | None, *, name: str) -> None:
    """Refuse saved probes that were not fitted as probe config *pc* asks, on this cache's data.

    Raises
    ------
    FingerprintMismatchError
        Naming the differing field (prompt set, target, position, cv, seed, alphas, or the
        training data's fingerprint) and the fix (re-run the probes stage).
    """
    import numpy as np

    from actstore.analysis._data import fingerprint_digest

    lin = probes.lineage
    grid = [float(a) for a in np.asarray(probes.dataset["alpha_grid"].values).ravel()]
    pairs: list[tuple[str, Any, Any]] = [
        ("prompt_set", lin.get("prompt_set"), pc.prompt_set),
        ("target", lin.get("target"), pc.target),
        ("position", lin.get("position"), pc.position),
        ("cv", lin.get("cv"), pc.cv),
        ("seed", lin.get("seed"), pc.seed),
        (
            "alphas",
            lin["alphas"] if "alphas" in lin else sorted(grid),
            None if pc.alphas is None else sorted(float(a) for a in pc.alphas),
        ),
        ("standardize", bool(lin.get("standardize", False)), bool(pc.standardize)),
    ]
    if cache is not None and pc.prompt_set in cache.prompt_sets:
        digest = fingerprint_digest(dict(cache.spec(pc.prompt_set).fingerprint))
        pairs.append(("training data", lin.get("cache_fingerprint"), digest))
    for fld, old, new in pairs:
        if old != new:
            raise FingerprintMismatchError(
                f"expected the saved probes {name!r} fitted with the config's {fld} ({new}), "
                f"got {old} (saved by another config or cache); re-run the probes stage: "
                "--stage probes --force"
            )


def _generate_fields(generate: Any, fp: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(generate.<field>, stored, asked)`` for the generation settings of a prompt set."""
    from actstore.extractors._genconfig import GenerateConfig, parse_generate

    cfg = parse_generate(dict(generate) if generate is not None else None)
    asked = cfg.fingerprint() if cfg is not None else {}
    names = [f"generate.{f}" for f in GenerateConfig.__dataclass_fields__]
    return [(k, fp.get(k), asked.get(k)) for k in names if k in asked or k in fp]
