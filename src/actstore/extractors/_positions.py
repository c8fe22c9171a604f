"""``extract(positions=...)``: materialise positions once the prompt set is complete.

The positions group is derived from the complete activations after the last block is recorded
(see :mod:`actstore.store.core._positions` for its exactly-once protocol), so a killed or resumed
extraction never leaves it out of step with the activations: it exists, complete, only once every
block is. Positions are checked before the model is loaded (their form, and that each span
exists in some prompt), so a typo never costs an extraction.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from actstore.errors import UnknownNameError

__all__ = ["check_positions_select", "pending_positions", "with_positions"]

#: the positions of the :func:`extract` call running in this context (None: none asked)
_NAMES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "actstore_extract_positions", default=None
)


def pending_positions() -> list[str] | None:
    """The positions the running :func:`extract` will materialise (None when none)."""
    return _NAMES.get()


def _check_spans(names: list[str], kw: dict[str, Any]) -> None:
    """Refuse a ``before:SPAN`` whose span no prompt has (generated spans are found later)."""
    from actstore.extractors._extract import _load_prompt_set
    from actstore.prompts import parse_position

    spans = [parse_position(n).span for n in names]
    if kw.get("generate") is not None or all(s is None for s in spans) or "prompts" not in kw:
        return
    prompt_set = _load_prompt_set(
        kw["prompts"], kw.get("set_name"), kw.get("n_prompts"), kw.get("seed", 0)
    )
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


def with_positions(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap :func:`extract`: take ``positions=``, materialise them once the set is complete."""

    @functools.wraps(fn)
    def wrapper(*args: Any, positions: Any = None, **kw: Any) -> Any:
        from actstore.store.core import parse_position_list

        names = None if positions is None else parse_position_list(positions)
        if names is not None and not kw.get("dry_run"):
            _check_spans(names, kw)
        token = _NAMES.set(names)
        try:
            report = fn(*args, **kw)
        finally:
            _NAMES.reset(token)
        if names is None or not report.complete or report.status == "dry-run":
            return report
        return _materialise(report, names, kw.get("storage_options"))

    return wrapper


def _materialise(report: Any, names: list[str], storage_options: Any) -> Any:
    from actstore.store import materialize_positions, open_cache

    cache = open_cache(report.out, mode="r+", storage_options=storage_options)
    done = materialize_positions(cache, report.set_name, names, add=True)
    if not done["written"]:
        return report  # already there (a re-run, or another --shard worker wrote them)
    msg = (
        f"{report.message}; positions {', '.join(done['positions'])} materialised "
        f"({done['bytes'] / 2**20:.1f} MiB before compression)"
    )
    return dataclasses.replace(report, message=msg)
