"""``ExtractConfig.positions``: checked before the model loads, stored once the set is complete.

The positions group is derived from the complete activations after the last block is recorded
(see :mod:`actstore.store.core._positions` for its exactly-once protocol), so a killed or resumed
extraction never leaves it out of step with the activations: it exists, complete, only once every
block is. Positions are checked before the model is loaded (their form when the config is built,
then that each span exists in some prompt), so a typo never costs an extraction.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actstore.errors import UnknownNameError
from actstore.extractors._inputs import load_prompt_set

__all__ = ["check_positions_select", "check_spans", "materialise_positions"]


def check_spans(config: Any) -> None:
    """Refuse a ``before:SPAN`` whose span no prompt has (generated spans are found later).

    Parameters
    ----------
    config
        The :class:`~actstore.extractors.ExtractConfig` (its ``positions``, ``prompts``,
        ``generate``).

    Raises
    ------
    UnknownNameError
        Naming the prompts' spans and the position.
    """
    from actstore.prompts import parse_position

    names = list(config.positions or ())
    spans = [parse_position(n).span for n in names]
    if config.generate is not None or all(s is None for s in spans) or config.prompts is None:
        return
    prompt_set = load_prompt_set(config.prompts, config.set_name, config.n_prompts, config.seed)
    have = {name for p in prompt_set for name in p.spans}
    for name, span in zip(names, spans):
        if span is not None and span not in have:
            raise UnknownNameError(
                f"expected a span of the prompts ({', '.join(sorted(have)) or 'none'}), got "
                f"{span!r} in position {name!r}; use one of those or 'last'"
            )


def check_positions_select(
    positions: list[str] | None,
    n_tokens: Any,
    span_masks: dict[str, Any],
    prompt_set: str,
) -> None:
    """Refuse, once the prompts are tokenized and before the model runs, a position that selects
    no token in any prompt (e.g. ``before:SPAN`` with the span always at token 0).

    Parameters
    ----------
    positions
        Position names (``last``, ``before:SPAN``), or None.
    n_tokens
        ``(prompt,)`` real tokens per prompt.
    span_masks
        ``span -> (prompt, token)`` bool masks.
    prompt_set
        The prompt set's name, for the message.

    Raises
    ------
    InvalidArgumentError
        The refusal :func:`~actstore.store.materialize_positions` would make after extraction.
    """
    import numpy as np

    from actstore.prompts import parse_position
    from actstore.store.core import refuse_if_empty

    n = np.asarray(n_tokens, dtype=np.int64)
    for name in positions or ():
        pos = parse_position(name)
        if pos.span is None or pos.span in span_masks:  # an unknown span is refused by name
            refuse_if_empty(name, pos.token_mask(n, span_masks).any(axis=1), prompt_set)


def materialise_positions(report: Any, names: list[str], storage_options: Any) -> Any:
    """Store *names* of the complete set of *report* (once; a re-run finds them there).

    Returns
    -------
    ExtractionReport
        *report*, its message extended when positions were written now.
    """
    from actstore.store import materialize_positions, open_cache

    options = None if storage_options is None else dict(storage_options)
    cache = open_cache(report.out, mode="r+", storage_options=options)
    done = materialize_positions(cache, report.set_name, names, add=True)
    if not done["written"]:
        return report  # already there (a re-run, or another --shard worker wrote them)
    msg = (
        f"{report.message}; positions {', '.join(done['positions'])} materialised "
        f"({done['bytes'] / 2**20:.1f} MiB before compression)"
    )
    return dataclasses.replace(report, message=msg)
