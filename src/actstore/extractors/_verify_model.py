"""``actstore verify CACHE --model DIR``: re-run sampled prompts alone and compare every hook.

The cache's fingerprint is checked first (weights, tokenizer): a cache from another model is
refused before anything runs. Then each sampled prompt's stored token ids go through the model one
prompt at a time, unpadded, with the backend, dtype, layers and hooks the cache records, and every
stored ``(hook, layer)`` is compared with what the model gives now (docs/verify.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actstore._jsonout import dumps
from actstore.errors import FingerprintMismatchError, IncompleteCacheError, InvalidArgumentError
from actstore.extractors._verify_stats import TOLERANCES, LayerResult

__all__ = ["ModelVerifyReport", "format_model_report", "parse_sample", "verify_against_model"]

DEFAULT_SAMPLE = 16


def parse_sample(sample: str | int | None) -> int | None:
    """How many prompts ``verify --model`` re-runs per prompt set.

    Parameters
    ----------
    sample
        ``"all"``, an integer >= 1 (or its text), or None for the default.

    Returns
    -------
    int or None
        The count, or None for every prompt.

    Raises
    ------
    InvalidArgumentError
        Anything else (``0``, ``-3``, ``"some"``).
    """
    if sample is None:
        return DEFAULT_SAMPLE
    if isinstance(sample, str) and sample.strip().lower() == "all":
        return None
    try:
        n = int(sample)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"expected --sample as a positive integer or 'all', got {sample!r}; e.g. --sample 16"
        ) from exc
    if n < 1:
        raise InvalidArgumentError(
            f"expected --sample as a positive integer or 'all', got {n}; e.g. --sample 16"
        )
    return n


@dataclass(kw_only=True)
class ModelVerifyReport:
    """What :func:`verify_against_model` compared: one :class:`LayerResult` per hook and layer."""

    url: str
    model: str
    prompts: dict[str, list[int]] = field(default_factory=dict)
    results: list[LayerResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "ok": self.ok,
            "fingerprint": "ok",
            "prompts": self.prompts,
            "tolerance_rule": "|stored - fresh| <= rtol * |fresh| + rms_tol * rms(fresh token "
            "vector)",
            "tolerances": {k: {"rtol": a, "rms_tol": b} for k, (a, b) in TOLERANCES.items()},
            "layers": [r.to_json() for r in self.results],
        }


def _check_fingerprint(name: str, fp: dict[str, Any], model_dir: str) -> None:
    from actstore.extractors._fingerprint import tokenizer_fingerprint, weights_fingerprint

    for key, fresh in (("model", weights_fingerprint), ("tokenizer", tokenizer_fingerprint)):
        stored = fp.get(key)
        if stored is None:
            raise FingerprintMismatchError(
                f"expected prompt set {name!r} to record fingerprint field {key!r}, got none; "
                "only caches written by `actstore extract` can be verified against a model"
            )
        got = fresh(model_dir)
        if got != stored:
            raise FingerprintMismatchError(
                f"prompt set {name!r}: fingerprint field {key!r} differs: expected {stored} "
                f"(stored), got {got} from {model_dir!r}; pass --model with the checkpoint the "
                "cache was extracted from"
            )


def _sample(done_prompts: np.ndarray, n: int | None, seed: int) -> list[int]:
    if n is None or n >= len(done_prompts):
        return [int(i) for i in done_prompts]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(done_prompts, size=n, replace=False))


def _complete_prompts(cache: Any, name: str) -> np.ndarray:
    info = cache.set_info(name)
    n_prompts = int(info["spec"]["n_prompts"])
    bs = int(info["layout"]["block_size"])
    missing = set(cache.missing_blocks(name))
    idx = np.arange(n_prompts)
    return idx[[i // bs not in missing for i in idx]] if missing else idx


def _backend_hooks(spec: Any, backend: str) -> tuple[str, ...]:
    """The backend's hook names of the stored variables (tlens: from the recorded semantics)."""
    if backend == "hf":
        return tuple(spec.hooks)
    semantics = dict(spec.provenance.get("hook_semantics") or {})
    prefix = "TransformerLens blocks.L."
    out = []
    for var in spec.hooks:
        text = str(semantics.get(var, ""))
        if not text.startswith(prefix):
            raise InvalidArgumentError(
                f"expected the provenance of {var!r} to name its TransformerLens hook, got "
                f"{text!r}; this cache cannot be re-run with --backend tlens"
            )
        out.append(text[len(prefix) :])
    return tuple(out)


def verify_against_model(
    url: str | os.PathLike[str],
    model: str | os.PathLike[str],
    *,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int = 0,
    device: str = "auto",
    prompt_sets: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ModelVerifyReport:
    """Re-run *sample* prompts per prompt set (``None``: all) alone and compare every hook/layer.

    Parameters
    ----------
    url
        Cache path or URL.
    model
        The checkpoint directory the cache was extracted from.
    sample, seed
        How many prompts of each prompt set to re-run, drawn with this seed from the prompts of
        complete blocks; ``None`` re-runs every one.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    prompt_sets
        Prompt sets to verify (default: every one).

    Returns
    -------
    ModelVerifyReport
        One :class:`LayerResult` per (prompt set, hook, layer), with max abs difference, ulp
        histogram and the worst value beyond the tolerance.

    Raises
    ------
    FingerprintMismatchError
        *model* is not the checkpoint (weights or tokenizer) the cache records.
    IncompleteCacheError
        A prompt set has no complete block to compare.
    """
    import torch

    from actstore.extractors._config import read_model_config
    from actstore.extractors._loop import load_backend
    from actstore.extractors._tokenize import load_tokenizer
    from actstore.extractors._torchutil import TORCH_DTYPES, resolve_device, to_numpy
    from actstore.store import open_cache

    cache = open_cache(url, mode="r", storage_options=storage_options)
    model_dir = str(Path(model).expanduser().absolute())
    names = list(prompt_sets) if prompt_sets else list(cache.prompt_sets)
    if not names:
        raise IncompleteCacheError(f"expected prompt sets in {cache.url!r}, got none")
    cfg = read_model_config(model_dir)  # a missing or broken checkpoint, named as such
    specs = {}
    for name in names:  # every fingerprint before any forward pass
        spec = cache.spec(name)
        _check_fingerprint(name, dict(spec.fingerprint), model_dir)
        specs[name] = spec
    dev = resolve_device(device)
    tokenizer = load_tokenizer(model_dir)
    report = ModelVerifyReport(url=cache.url, model=model_dir)
    for name, spec in specs.items():
        done = _complete_prompts(cache, name)
        if not len(done):
            raise IncompleteCacheError(
                f"expected a complete block of prompt set {name!r} to compare, got none; finish "
                "the extraction first (re-run the same `actstore extract`)"
            )
        chosen = _sample(done, sample, seed)
        report.prompts[name] = chosen
        fp = spec.fingerprint
        backend = fp.get("backend", "hf")
        layers = tuple(spec.layers)
        backend_hooks = _backend_hooks(spec, backend)
        obj = load_backend(
            backend, model_dir, layers, backend_hooks, TORCH_DTYPES[spec.dtype], dev,
            cfg.n_layers, tokenizer,
        )  # fmt: skip
        results = {
            (h, la): LayerResult(set_name=name, hook=h, layer=la, dtype=spec.dtype)
            for h in spec.hooks
            for la in layers
        }
        group = cache.group(name)
        try:
            for i in chosen:
                n = int(group["n_tokens"][i])
                row = group["token_id"][i, :n].tolist()
                ids = torch.tensor([row], dtype=torch.long, device=obj.input_device)
                got = obj.capture(ids, torch.ones_like(ids))
                for h in spec.hooks:
                    stored = np.asarray(group[h][i])  # (layer, token, d_model)
                    for li, la in enumerate(layers):
                        fresh = to_numpy(got[h][li][0].to("cpu"))
                        results[(h, la)].add(i, stored[li, :n], fresh[:n])
        finally:
            obj.close()
        report.results.extend(results[(h, la)] for h in spec.hooks for la in layers)
    return report


def format_model_report(report: ModelVerifyReport, *, as_json: bool = False) -> str:
    """One line per (prompt set, hook, layer) and a summary line, or JSON.

    Parameters
    ----------
    report
        What :func:`verify_against_model` found.
    as_json
        Standard JSON (an undefined number is ``null``) instead of text.

    Returns
    -------
    str
    """
    if as_json:
        return dumps(report.to_json(), indent=2)
    lines = [r.line() for r in report.results]
    n_prompts = sum(len(v) for v in report.prompts.values())
    bad = [r for r in report.results if not r.ok]
    status = "OK" if not bad else f"{len(bad)} of {len(report.results)} layer/hook(s) FAIL"
    lines.append(
        f"{report.url}: {status} against {report.model} (fingerprint ok); re-ran {n_prompts} "
        f"prompt(s) one at a time, unpadded"
    )
    return "\n".join(lines)
