"""The generator registry: ``@register_generator``, :func:`generate` and :func:`load_prompts`."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actstore.errors import InvalidArgumentError, UnknownNameError
from actstore.prompts._prompt import Prompt
from actstore.prompts._promptset import PromptSet, read_prompt_file

__all__ = [
    "GeneratorInfo",
    "generate",
    "generator_info",
    "list_generators",
    "load_prompts",
    "register_generator",
]

GeneratorFunc = Callable[..., Iterable[Prompt]]


@dataclass(frozen=True, kw_only=True)
class GeneratorInfo:
    """A registered generator: its function, one-line description, options and default size."""

    name: str
    func: GeneratorFunc
    description: str
    options: dict[str, Any]  # option name -> default value
    default_n: int


_REGISTRY: dict[str, GeneratorInfo] = {}


def register_generator(
    name: str, *, default_n: int = 100, replace: bool = False
) -> Callable[[GeneratorFunc], GeneratorFunc]:
    """Register a prompt generator under ``name`` (a decorator).

    The function is called as ``func(n, rng, **options)`` with ``rng`` a
    ``numpy.random.Generator`` seeded by :func:`generate`, and returns ``n`` :class:`Prompt`
    objects. Its keyword-only parameters (with defaults) are its options. Draw every random
    choice from ``rng`` so that the same seed gives the same set on any machine.

    Parameters
    ----------
    name : str
        The generator's name (no ``:`` or ``/``), as given to :func:`generate` and
        ``actstore prompts``.
    default_n : int
        The number of prompts :func:`load_prompts` draws when ``n`` is not given.
    replace : bool
        Replace a generator already registered under ``name`` (else that is refused).

    Returns
    -------
    Callable
        The decorator; it registers the function and returns it unchanged.

    Raises
    ------
    InvalidArgumentError
        If ``name`` is empty or holds ``:`` or ``/``, or (when decorating) another function is
        registered under ``name`` and ``replace`` is false.

    Examples
    --------
    >>> @register_generator("addition")
    ... def addition(n, rng, *, low=2, high=20):
    ...     xs, ys = rng.integers(low, high, size=(2, n))
    ...     return [Prompt(text=f"{x} plus {y} equals", labels={"x": x, "y": y, "value": x + y})
    ...             for x, y in zip(xs, ys)]
    """
    if not isinstance(name, str) or not name or ":" in name or "/" in name:
        raise InvalidArgumentError(
            f"expected a generator name without ':' or '/', got {name!r}; pick another name"
        )

    def decorator(func: GeneratorFunc) -> GeneratorFunc:
        if name in _REGISTRY and not replace and _REGISTRY[name].func is not func:
            raise InvalidArgumentError(
                f"expected a new generator name, got {name!r} which is already registered; "
                "pass replace=True to replace it"
            )
        params = inspect.signature(func).parameters
        options = {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in params.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        doc = inspect.getdoc(func) or ""
        _REGISTRY[name] = GeneratorInfo(
            name=name,
            func=func,
            description=doc.strip().split("\n")[0] if doc else "",
            options=options,
            default_n=default_n,
        )
        return func

    return decorator


def list_generators() -> list[str]:
    """Names of the registered generators, sorted."""
    return sorted(_REGISTRY)


def generator_info(name: str) -> GeneratorInfo:
    """The registration record of generator ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_generators`.

    Returns
    -------
    GeneratorInfo
        Its function, one-line description, options with their defaults and ``default_n``.

    Raises
    ------
    UnknownNameError
        If no generator is registered under ``name`` (the message lists those that are).
    """
    try:
        return _REGISTRY[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"expected a generator name ({', '.join(list_generators())}), got {name!r}; "
            "see `actstore prompts list`"
        ) from exc


#: the most prompts one generator call makes: beyond, a typo (``n = 1e12``) would fill memory
MAX_GENERATED = 1_000_000


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidArgumentError(f"expected {what} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate(
    generator: str, n: int, *, seed: int = 0, name: str | None = None, **options: Any
) -> PromptSet:
    """Generate ``n`` prompts with a registered generator, reproducibly.

    Parameters
    ----------
    generator : str
        A name from :func:`list_generators`.
    n : int
        Number of prompts (the ``prompt`` dimension).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same set (same
        :meth:`PromptSet.content_hash`) on any machine.
    name : str, optional
        The set's name; defaults to the generator's name.
    **options
        Generator options, e.g. ``cot="worked"`` for ``kinetic_energy``.

    Returns
    -------
    PromptSet
        ``n`` prompts; ``source`` records the generator, ``n``, ``seed`` and every option.

    Raises
    ------
    UnknownNameError
        If ``generator`` is not registered.
    InvalidArgumentError
        If ``n`` < 1 or above :data:`MAX_GENERATED`, ``seed`` < 0 (or either is not an
        integer), an option is not one of the
        generator's, or the generator returns another number of prompts than ``n``.
    """
    info = generator_info(generator)
    n = _check_int(n, "n", 1)
    if n > MAX_GENERATED:
        raise InvalidArgumentError(
            f"expected n <= {MAX_GENERATED:,} prompts from generator {generator!r}, got {n:,}; "
            "generate several sets with different seeds, or write the prompts to a file"
        )
    seed = _check_int(seed, "seed", 0)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        allowed = ", ".join(f"{k}={v!r}" for k, v in info.options.items()) or "none"
        raise InvalidArgumentError(
            f"expected options of generator {generator!r} ({allowed}), got {', '.join(unknown)}"
        )
    rng = np.random.default_rng(seed)
    prompts = tuple(info.func(n, rng, **options))
    if len(prompts) != n:
        raise InvalidArgumentError(
            f"expected generator {generator!r} to return {n} prompts, got {len(prompts)}; "
            "fix the generator"
        )
    source = {
        "generator": generator,
        "n": n,
        "seed": seed,
        "options": {**info.options, **options},
    }
    return PromptSet(name=name or generator, prompts=prompts, source=source)


_FILE_SUFFIXES = (".jsonl", ".ndjson", ".csv")


def load_prompts(
    name_or_file: str | os.PathLike[str],
    *,
    n: int | None = None,
    seed: int = 0,
    set_name: str | None = None,
    **options: Any,
) -> PromptSet:
    """A prompt set from a generator name or a ``.jsonl`` / ``.csv`` file.

    Parameters
    ----------
    name_or_file : str or os.PathLike
        A registered generator name, or a path ending in ``.jsonl`` / ``.ndjson`` / ``.csv``
        (any existing file that is not a generator name is read as one too).
    n : int, optional
        For a generator, the number of prompts (default: its ``default_n``). For a file, keep
        the first ``n`` prompts (default: all).
    seed : int
        The generator's seed (see :func:`generate`); unused for a file.
    set_name : str, optional
        The set's name; defaults to the generator's name or the file's stem.
    **options
        Generator options; none may be given for a file.

    Returns
    -------
    PromptSet
        The generated or read prompts.

    Raises
    ------
    UnknownNameError
        If ``name_or_file`` is neither a generator name nor a prompt file.
    InvalidArgumentError
        If options are given for a file, ``n`` exceeds the file's prompts, or :func:`generate`
        refuses the arguments.
    PromptFileError
        If the file cannot be read as prompts (see :func:`read_prompt_file`).
    """
    text = os.fspath(name_or_file)
    is_file = text.lower().endswith(_FILE_SUFFIXES) or (
        text not in _REGISTRY and Path(text).is_file()
    )
    if not is_file:
        if text not in _REGISTRY:
            raise UnknownNameError(
                f"expected a generator name ({', '.join(list_generators())}) or a .jsonl/.csv "
                f"file, got {text!r}; see `actstore prompts list`"
            )
        info = _REGISTRY[text]
        return generate(
            text, info.default_n if n is None else n, seed=seed, name=set_name, **options
        )
    if options:
        raise InvalidArgumentError(
            f"expected no generator options for a prompt file, got {', '.join(sorted(options))}"
        )
    prompt_set = read_prompt_file(text, name=set_name)
    if n is not None:
        n = _check_int(n, "n", 1)
        if n > len(prompt_set):
            raise InvalidArgumentError(
                f"expected n <= {len(prompt_set)} (the prompts in {text}), got {n}"
            )
        prompt_set = prompt_set[:n]
    return prompt_set
