"""The detect stage of an experiment run: one step per (detection block, probe).

A config's ``[detect]`` table is one block without a name (stage ``detect:<probe>``, results
``results/detect_<probe>.json``, reports ``report/<probe>/``: as they always were); each named
``[[detect]]`` block has stage ``detect:<block>:<probe>``, results
``results/detect_<block>.<probe>.json`` (names hold no '.', so two blocks never share a file) and
reports ``report/<probe>/<block>/``.

The predictions of a probe on a prompt set do not depend on the target or span, so they are
written into the cache (``pred_<probe>``) by the first block that detects that probe on that set;
later blocks on the same set only compute their statistics.

Every :class:`DetectConfig` field but ``name`` and ``probes`` is passed to
:func:`actstore.analysis.detect` as a keyword argument, so a new detection option needs only a new
config field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from actstore.experiment._config import DetectConfig, ExperimentConfig, config_hash
from actstore.experiment._schema import to_mapping

__all__ = [
    "block_probes",
    "detect_fp",
    "detect_options",
    "detected_pairs",
    "detection",
    "report_dir",
    "results_name",
    "run_detect",
    "span_counts",
    "span_coverage",
    "stage_key",
]

_BLOCK_ONLY = ("name", "probes")


def block_probes(config: ExperimentConfig, det: DetectConfig) -> list[str]:
    """The probes block ``det`` runs: its list, else every probe of the config."""
    return list(det.probes) or [p.name for p in config.probes]


def detected_pairs(config: ExperimentConfig) -> list[tuple[DetectConfig, str]]:
    """``(block, probe)`` for every detection the config asks for, in config order."""
    return [(det, p) for det in config.detect_blocks for p in block_probes(config, det)]


def stage_key(det: DetectConfig, probe: str) -> str:
    """``detect:<probe>`` (a ``[detect]`` table) or ``detect:<block>:<probe>``."""
    return f"detect:{probe}" if det.name is None else f"detect:{det.name}:{probe}"


def results_name(det: DetectConfig, probe: str) -> str:
    """The results file: ``detect_<probe>.json`` or ``detect_<block>.<probe>.json``."""
    return f"detect_{probe}.json" if det.name is None else f"detect_{det.name}.{probe}.json"


def report_dir(out: Path, probe: str, det: DetectConfig | None) -> Path:
    """Figures and report of ``probe`` (detected by block ``det``, if any)."""
    base = out / "report" / probe
    return base if det is None or det.name is None else base / det.name


def detect_options(det: DetectConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`actstore.analysis.detect` that block ``det`` sets."""
    return {
        f.name: getattr(det, f.name) for f in dataclasses.fields(det) if f.name not in _BLOCK_ONLY
    }


def _writes(config: ExperimentConfig, det: DetectConfig, probe: str) -> bool:
    """Whether ``det`` is the first block detecting ``probe`` on its prompt set."""
    for other, p in detected_pairs(config):
        if p == probe and other.prompt_set == det.prompt_set:
            return other is det
    return False  # pragma: no cover - only asked for scheduled pairs


def detect_fp(run: Any, det: DetectConfig, probe: str) -> str:
    """What one detection depends on: the probe, the prompt set's data and the block."""
    block = to_mapping(det)
    if det.name is None:  # a [detect] table hashes as it did before blocks had names
        block.pop("name")
    parts: list[Any] = [run._probe_fp(probe), run._data_fp(det.prompt_set), block]
    if det.name is not None:
        parts.append(_writes(run.config, det, probe))
    return config_hash(*parts)


def span_coverage(result: Any) -> dict[str, Any] | None:
    """How many scored prompts have an empty span (no real token in it), from a result.

    Returns ``{"span", "n_prompts", "n_scored", "n_empty", "empty_prompts"}`` (``n_scored``:
    prompts with a finite target; ``n_empty`` of those have no span token and are left out of
    the hit rates), or ``None`` when the detection used no span.
    """
    tokens = result.tokens
    if result.span is None or "span_mask" not in tokens:
        return None
    mask = np.asarray(tokens["span_mask"].values, dtype=bool)
    n_tokens = np.asarray(tokens["n_tokens"].values)
    real = np.arange(mask.shape[1])[None, :] < n_tokens[:, None]
    scored = np.isfinite(np.asarray(tokens["target"].values, dtype=np.float64))
    empty = scored & ~(mask & real).any(axis=1)
    prompts = np.asarray(tokens["prompt"].values)
    return {
        "span": result.span,
        "n_prompts": len(scored),
        "n_scored": int(scored.sum()),
        "n_empty": int(empty.sum()),
        "empty_prompts": [int(p) for p in prompts[empty]],
    }


def span_counts(url: str, prompt_set: str) -> dict[str, Any]:
    """How many prompts of a stored set have each span (at least one real token in it).

    In a generated set this says how often the model wrote each value, e.g. the true v²
    (``label:v_squared``) or its own "v² =" (``regex:``): ``{"n_prompts", "with_span": {name: k}}``.
    """
    import actstore
    from actstore.analysis._data import span_masks

    ds = actstore.open(url, prompt_set)
    n_tokens = np.asarray(ds["n_tokens"].values)
    with_span = {}
    for name, mask in span_masks(ds).items():
        real = np.arange(mask.shape[1])[None, :] < n_tokens[:, None]
        with_span[name] = int((mask & real).any(axis=1).sum())
    return {"n_prompts": len(n_tokens), "with_span": with_span}


def _detect(run: Any, det: DetectConfig, probe: str, *, write: bool) -> Any:
    from actstore.analysis import detect

    kwargs: dict[str, Any] = {"write": write}
    if write:
        kwargs["name"] = f"pred_{probe}"
    return detect(run.cache_url, run._load_probes(probe), **kwargs, **detect_options(det))


def run_detect(run: Any, det: DetectConfig, probe: str) -> str:
    """Run one detection, keep its result and write its results file; returns the stage detail."""
    result = _detect(run, det, probe, write=_writes(run.config, det, probe))
    run._results[stage_key(det, probe)] = result
    payload = result.to_dict()
    coverage = span_coverage(result)
    if coverage is not None:
        payload["span_coverage"] = coverage
    payload["span_counts"] = span_counts(run.cache_url, det.prompt_set)
    run._write_json(results_name(det, probe), payload)
    detail = f"best layer {result.best_layer}"
    if coverage is not None and coverage["n_empty"]:
        detail += (
            f"; span {coverage['span']!r} empty in {coverage['n_empty']} of "
            f"{coverage['n_scored']} prompts (left out of the hit rates)"
        )
    return detail


def detection(run: Any, det: DetectConfig, probe: str) -> Any:
    """The result of one detection: from this run's detect stage, else recomputed (no write)."""
    key = stage_key(det, probe)
    if key not in run._results:
        run._results[key] = _detect(run, det, probe, write=False)
    return run._results[key]
