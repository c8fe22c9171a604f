"""actstore.prompts: prompt sets with labels and character spans, generators and token positions.

Data flows ``prompts -> extractors -> store -> analysis``: a :class:`PromptSet` gives the texts,
the label columns (over the ``prompt`` dimension) and named character spans; the extractor turns
spans into per-token masks with :func:`char_spans_to_token_masks`; the analysis picks token
positions with :func:`parse_position`. Nothing here imports torch or transformers.

Each name is imported on first use (PEP 562 ``__getattr__``): a probe fit needs only
:func:`parse_position` (~30 ms less in a fresh process than importing every generator). The
built-in generators are registered before any name of the registry is handed out.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and the API reference
    from actstore.prompts import generators  # noqa: F401
    from actstore.prompts._positions import (
        Position,
        char_spans_to_token_masks,
        parse_position,
        span_masks_for_set,
    )
    from actstore.prompts._prompt import Prompt
    from actstore.prompts._promptset import PromptSet, read_prompt_file
    from actstore.prompts._registry import (
        GeneratorInfo,
        generate,
        generator_info,
        list_generators,
        load_prompts,
        register_generator,
    )

#: Public name -> the private module defining it, imported on first access.
_WHERE = {
    "GeneratorInfo": "_registry",
    "Position": "_positions",
    "Prompt": "_prompt",
    "PromptSet": "_promptset",
    "char_spans_to_token_masks": "_positions",
    "generate": "_registry",
    "generator_info": "_registry",
    "list_generators": "_registry",
    "load_prompts": "_registry",
    "parse_position": "_positions",
    "read_prompt_file": "_promptset",
    "register_generator": "_registry",
    "span_masks_for_set": "_positions",
}

__all__ = [
    "GeneratorInfo",
    "Position",
    "Prompt",
    "PromptSet",
    "char_spans_to_token_masks",
    "generate",
    "generator_info",
    "list_generators",
    "load_prompts",
    "parse_position",
    "read_prompt_file",
    "register_generator",
    "span_masks_for_set",
]


def __getattr__(name: str) -> Any:
    if name == "generators":
        return importlib.import_module(f"{__name__}.generators")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module == "_registry":  # the built-in generators are registered first, as on import
        importlib.import_module(f"{__name__}.generators")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"generators"})
