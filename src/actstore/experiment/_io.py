"""Inputs and outputs of a run: prompt sets built from a config, JSON-ready results."""

from __future__ import annotations

from typing import Any

from actstore.experiment._spec import ExperimentConfig

__all__ = ["build_prompt_set"]


def build_prompt_set(cfg: ExperimentConfig, name: str) -> Any:
    """The :class:`~actstore.prompts.PromptSet` that prompt-set config ``name`` describes."""
    from actstore.prompts import PromptSet, load_prompts

    ps_cfg = cfg.prompt_set(name)
    prompts: list[Any] = []
    for src in ps_cfg.sources:
        part = load_prompts(
            src.file if src.file is not None else src.generator,  # type: ignore[arg-type]
            n=src.n,
            seed=src.seed,
            **dict(src.options),
        )
        prompts.extend(part.prompts)
    return PromptSet(name=name, prompts=tuple(prompts))
