"""Static checks of the label and span names a config uses, before anything runs.

A probe's ``target`` and a detection block's ``target`` must be numeric label columns of their
prompt set, and a probe position's span (``before:SPAN``) and a block's ``span`` must be spans of
it. A prompt set built from generators is built here without a model (prompts only, no tokenizer)
to learn its labels and spans; a generated set (``generate = {...}``) adds its
``find_spans`` names. A set with a ``file`` source is not read here (the file may be large, or
absent where a cache extracted elsewhere is analysed): its names are checked when the stage that
reads them starts, as before.
"""

from __future__ import annotations

from actstore.errors import ActstoreError, ConfigError
from actstore.experiment._io import build_prompt_set
from actstore.experiment._spec import DetectConfig, ExperimentConfig

__all__ = ["check_label_names"]


def _set_names(cfg: ExperimentConfig, name: str) -> tuple[list[str], list[str], list[str]] | None:
    """``(numeric labels, all labels, spans)`` of prompt set ``name``, or ``None`` if unknown."""
    ps_cfg = cfg.prompt_set(name)
    if any(src.file is not None for src in ps_cfg.sources):
        return None
    try:
        ps = build_prompt_set(cfg, name)
    except ActstoreError:
        return None  # e.g. a bad generator option: extraction refuses it with its own message
    labels = ps.label_names
    numeric = [label for label in labels if ps.label_kind(label) == "numeric"]
    spans = ps.span_names
    if ps_cfg.generate is not None:
        from actstore.extractors._genconfig import parse_generate

        spans += [s for s in parse_generate(dict(ps_cfg.generate)).find_spans if s not in spans]
        labels = [*labels, "completion"]
    return numeric, labels, spans


def _check_target(key: str, target: str, set_name: str, names: tuple) -> None:
    numeric, labels, _ = names
    if target in numeric:
        return
    got = f"{target!r}, a text label" if target in labels else repr(target)
    raise ConfigError(
        f"config key '{key}': expected a numeric label column of prompt set {set_name!r} "
        f"({', '.join(numeric) or 'none'}), got {got}; name one of those"
    )


def _check_span(key: str, span: str, set_name: str, names: tuple, fix: str) -> None:
    spans = names[2]
    if span not in spans:
        raise ConfigError(
            f"config key '{key}': expected a span of prompt set {set_name!r} "
            f"({', '.join(spans) or 'none'}), got {span!r}; {fix}"
        )


def check_label_names(cfg: ExperimentConfig) -> None:
    """Refuse probe and detection targets and spans that the prompt sets do not have.

    Raises
    ------
    ConfigError
        Naming the key (``probes[i].target``, ``probes[i].position``, ``detect[i].target``,
        ``detect[i].span``), the prompt set's names and the wrong one.
    """
    from actstore.prompts import parse_position

    known: dict[str, tuple | None] = {}

    def names(set_name: str) -> tuple | None:
        if set_name not in known:
            known[set_name] = _set_names(cfg, set_name)
        return known[set_name]

    for i, pc in enumerate(cfg.probes):
        got = names(pc.prompt_set)
        if got is None:
            continue
        _check_target(f"probes[{i}].target", pc.target, pc.prompt_set, got)
        span = parse_position(pc.position).span
        if span is not None:
            fix = "name one of those or use position 'last'"
            _check_span(f"probes[{i}].position", span, pc.prompt_set, got, fix)
    single = isinstance(cfg.detect, DetectConfig)
    for i, det in enumerate(cfg.detect_blocks):
        key = "detect" if single else f"detect[{i}]"
        got = names(det.prompt_set)
        if got is None:
            continue
        _check_target(f"{key}.target", det.target, det.prompt_set, got)
        if det.span is not None:
            fix = "name one of those or leave span out"
            _check_span(f"{key}.span", det.span, det.prompt_set, got, fix)
