"""``GenerateConfig``: how the model continues each prompt before its activations are captured.

The settings are part of a prompt set's fingerprint (keys ``generate.<field>``), so resuming or
appending with another setting is refused with a message naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from actstore.errors import InvalidArgumentError

__all__ = ["GenerateConfig", "parse_find_spans", "parse_generate"]


def _bad(name: str, want: str, got: Any, fix: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"expected generate.{name} {want}, got {got!r}; {fix}")


@dataclass(frozen=True, kw_only=True)
class GenerateConfig:
    """Settings of the generation phase of ``extract(generate=...)``.

    Parameters
    ----------
    max_new_tokens
        Most tokens the model adds to each prompt (the ``token`` dim is prompt + this).
    do_sample
        ``False``: greedy decoding (argmax). ``True``: sampling with ``temperature`` and
        ``top_p``, from a random generator seeded per prompt (``seed`` and the prompt index).
    temperature, top_p
        Sampling settings; only allowed with ``do_sample=True``.
    seed
        Base seed of the per-prompt generators.
    stop
        Strings that end a continuation; the continuation keeps the token that completes one.
    chat_template
        Apply the tokenizer's chat template (one user turn, with the generation prompt) first.
    find_spans
        ``name -> finder``: a span marking where a value first appears in the continuation:
        ``"label:COLUMN"`` (the number in label COLUMN, e.g. ``label:v_squared``) or
        ``"regex:PATTERN"`` (the first match of a Python regular expression).
    """

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    chat_template: bool = False
    find_spans: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _bad("max_new_tokens", "an integer >= 1", n, "e.g. --generate 64")
        if not isinstance(self.do_sample, bool):
            raise _bad("do_sample", "true or false", self.do_sample, "false is greedy decoding")
        for name, low, high in (("temperature", 0.0, math.inf), ("top_p", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not low < v <= high:
                rng = "> 0" if name == "temperature" else "in (0, 1]"
                raise _bad(name, f"a number {rng}", v, f"e.g. {name} = {0.7 if low else 0.9}")
            object.__setattr__(self, name, float(v))
            if not self.do_sample and float(v) != 1.0:
                raise _bad(
                    name,
                    "1.0 with greedy decoding",
                    v,
                    "set do_sample = true (--do-sample) to sample, or leave it out",
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise _bad("seed", "an integer >= 0", self.seed, "e.g. seed = 0")
        stop = self.stop
        if isinstance(stop, str):
            stop = (stop,)
        stop = tuple(stop)
        if any(not isinstance(s, str) or not s for s in stop):
            raise _bad("stop", "a list of non-empty strings", list(stop), 'e.g. stop = ["\\n\\n"]')
        object.__setattr__(self, "stop", stop)
        if not isinstance(self.chat_template, bool):
            raise _bad("chat_template", "true or false", self.chat_template, "use true or false")
        object.__setattr__(self, "find_spans", parse_find_spans(self.find_spans))

    def fingerprint(self) -> dict[str, Any]:
        """``{"generate.<field>": value}``: the fingerprint entries of these settings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f"generate.{f.name}"] = (
                list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
            )
        return out


def parse_find_spans(value: Any) -> dict[str, str]:
    """``{"v2": "label:v_squared"}`` or ``["v2=label:v_squared", ...]`` -> checked dict."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items()]
    elif isinstance(value, Sequence):
        items = []
        for entry in value:
            name, sep, finder = str(entry).partition("=")
            if not sep:
                raise _bad(
                    "find_spans",
                    "NAME=label:COLUMN or NAME=regex:PATTERN",
                    entry,
                    "e.g. --find-span v2=label:v_squared",
                )
            items.append((name.strip(), finder))
    else:
        raise _bad("find_spans", "a table of name = finder", value, 'e.g. {v2 = "label:v_squared"}')
    out: dict[str, str] = {}
    for name, finder in items:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
            raise _bad(
                "find_spans",
                "span names of letters, digits, '_', '.', '-'",
                name,
                "rename the span",
            )
        if not isinstance(finder, str) or not finder.startswith(("label:", "regex:")):
            raise _bad(
                f"find_spans.{name}",
                "'label:COLUMN' or 'regex:PATTERN'",
                finder,
                "e.g. label:v_squared or regex:=\\s*\\d+",
            )
        kind, _, arg = finder.partition(":")
        if not arg:
            raise _bad(
                f"find_spans.{name}", f"a non-empty {kind} after '{kind}:'", finder, "add it"
            )
        if kind == "regex":
            try:
                re.compile(arg)
            except re.error as exc:
                raise _bad(
                    f"find_spans.{name}", "a valid regular expression", arg, f"fix it ({exc})"
                ) from exc
        if name in out:
            raise _bad(
                "find_spans",
                "each span name once",
                name,
                f"give the finders {out[name]!r} and {finder!r} different names",
            )
        out[name] = finder
    return out


def parse_generate(value: Any) -> GenerateConfig | None:
    """``None`` / ``N`` / a mapping of settings / a :class:`GenerateConfig` -> config or None."""
    if value is None or value is False:
        return None
    if isinstance(value, GenerateConfig):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return GenerateConfig(max_new_tokens=value)
    if isinstance(value, Mapping):
        known = {f.name for f in fields(GenerateConfig)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidArgumentError(
                f"expected generate settings among {sorted(known)}, got {unknown[0]!r}; "
                "fix the spelling or remove it"
            )
        if "max_new_tokens" not in value:
            raise InvalidArgumentError(
                "expected generate.max_new_tokens, got settings without it; e.g. "
                "generate = {max_new_tokens = 64}"
            )
        return GenerateConfig(**dict(value))
    raise InvalidArgumentError(
        f"expected generate as a token count or a table of settings, got "
        f"{type(value).__name__} {value!r}; e.g. generate = 64 or {{max_new_tokens = 64}}"
    )
