"""``extract(positions=...)``: materialise positions once the prompt set is complete.

The positions group is derived from the complete activations after the last block is recorded
(see :mod:`actstore.store._positions` for its exactly-once protocol), so a killed or resumed
extraction never leaves it out of step with the activations: it exists, complete, only once every
block is. Positions are checked before the model is loaded (their form, and that each span
exists in some prompt), so a typo never costs an extraction.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from actstore.errors import UnknownNameError

__all__ = ["with_positions"]


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


def with_positions(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap :func:`extract`: take ``positions=``, materialise them once the set is complete."""

    @functools.wraps(fn)
    def wrapper(*args: Any, positions: Any = None, **kw: Any) -> Any:
        from actstore.store._positions import parse_position_list

        names = None if positions is None else parse_position_list(positions)
        if names is not None and not kw.get("dry_run"):
            _check_spans(names, kw)
        report = fn(*args, **kw)
        if names is None or not report.complete or report.status == "dry-run":
            return report
        return _materialise(report, names, kw.get("storage_options"))

    return wrapper


def _materialise(report: Any, names: list[str], storage_options: Any) -> Any:
    from actstore.store import open_cache
    from actstore.store._positions import materialize_positions

    cache = open_cache(report.out, mode="r+", storage_options=storage_options)
    done = materialize_positions(cache, report.set_name, names, add=True)
    if not done["written"]:
        return report  # already there (a re-run, or another --shard worker wrote them)
    msg = (
        f"{report.message}; positions {', '.join(done['positions'])} materialised "
        f"({done['bytes'] / 2**20:.1f} MiB before compression)"
    )
    return dataclasses.replace(report, message=msg)
