"""The prompt set an extraction reads: a PromptSet as given, a generator name or a file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from actstore.errors import InvalidArgumentError

if TYPE_CHECKING:
    from actstore.prompts import PromptSet

__all__ = ["load_prompt_set"]


def load_prompt_set(prompts: Any, set_name: str | None, n: int | None, seed: int) -> PromptSet:
    """The :class:`~actstore.prompts.PromptSet` that ``ExtractConfig.prompts`` names.

    Parameters
    ----------
    prompts
        A PromptSet (cut to its first *n* prompts when *n* is smaller), a generator name or a
        .jsonl/.csv path.
    set_name
        The name a generated or file prompt set gets (default: its own).
    n, seed
        Passed to the generator (a file: its first *n* prompts).

    Raises
    ------
    InvalidArgumentError
        *prompts* is none of these.
    """
    from actstore.prompts import PromptSet, load_prompts

    if isinstance(prompts, PromptSet):
        if n is not None and n < len(prompts):
            prompts = prompts[:n]
        return prompts
    if isinstance(prompts, str | os.PathLike):
        return load_prompts(str(prompts), n=n, seed=seed, set_name=set_name)
    raise InvalidArgumentError(
        f"expected prompts as a PromptSet, generator name or file path, got "
        f"{type(prompts).__name__}; pass e.g. 'multiplication' or prompts.jsonl"
    )
