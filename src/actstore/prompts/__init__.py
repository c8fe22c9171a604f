"""actstore.prompts: prompt sets with labels and character spans, generators and token positions.

Data flows ``prompts -> extractors -> store -> analysis``: a :class:`PromptSet` gives the texts,
the label columns (over the ``prompt`` dimension) and named character spans; the extractor turns
spans into per-token masks with :func:`char_spans_to_token_masks`; the analysis picks token
positions with :func:`parse_position`. Nothing here imports torch or transformers.
"""

from actstore.prompts import generators  # noqa: F401  (registers the built-in generators)
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
