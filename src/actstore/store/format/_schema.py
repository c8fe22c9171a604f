"""Names, versions and the two dataclasses that describe a prompt set in a cache.

A cache is one Zarr v3 group. Its root attributes hold ``attrs["actstore"]`` with the schema
version; each prompt set is a subgroup whose ``attrs["actstore"]`` holds the :class:`PromptSetSpec`,
the resolved layout and a ``ready`` flag set once its per-prompt metadata is fully written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from actstore._reserved import (
    DONE_ARRAY,
    RESERVED_NAMES,
    RESERVED_PREFIXES,
    reserved_label_problem,
)
from actstore.errors import FingerprintMismatchError, InvalidArgumentError
from actstore.store.format._dtype import is_number_dtype
from actstore.store.format._layers import is_index, layer_indices
from actstore.store.format._layout import Layout, choose_layout

__all__ = [
    "ACT_DIMS",
    "ATTR_KEY",
    "DONE_ARRAY",
    "DTYPES",
    "METADATA_VARS",
    "PROBES_GROUP",
    "RESERVED_NAMES",
    "RESERVED_PREFIXES",
    "SCHEMA_VERSION",
    "PromptSetMetadata",
    "PromptSetSpec",
    "compare_specs",
    "derived_name",
    "reserved_label_problem",
    "spec_from_json",
    "spec_to_json",
]

#: The per-prompt and per-(prompt, token) variables every prompt set has (besides labels, hooks
#: and derived variables).
METADATA_VARS = frozenset(
    {
        "prompt",
        "layer",
        "token",
        "span",
        "text",
        "n_tokens",
        "token_id",
        "token_str",
        "span_mask",
        "source_prompt",
        "is_generated",
    }
)

SCHEMA_VERSION = 1
"""Version of the on-disk layout; bumped when a reader of the old layout would misread the new."""

#: Key of actstore's own entry in Zarr group attributes.
ATTR_KEY = "actstore"
ACT_DIMS = ("prompt", "layer", "token", "d_model")
"""Dimension names of every activation array, in order."""

#: Activation dtypes the store accepts.
DTYPES = ("bfloat16", "float16", "float32")
PROBES_GROUP = "probes"
"""Group name reserved for saved probes (never a prompt set)."""


def derived_name(probe: str) -> str:
    """The derived variable that detection writes for the probe named *probe*.

    Parameters
    ----------
    probe
        The probe's name.

    Returns
    -------
    str
        ``pred_<probe>``, with each run of characters outside ``A-Za-z0-9_.-`` replaced by ``_``
        and leading ``.``/``_`` removed (e.g. ``"my probe"`` -> ``"pred_my_probe"``).
    """
    import re

    return "pred_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", probe).lstrip("._")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name.startswith((".", "_")):
        raise InvalidArgumentError(
            f"expected a {kind} name without '/' that does not start with '.' or '_', "
            f"got {name!r}; rename it"
        )


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"expected JSON-serialisable {what}, got {exc}; pass plain str/int/float/list/dict"
        ) from exc


def _jsonable_mapping(value: Any, what: str) -> dict[str, Any]:
    """*value* (a mapping of JSON values, e.g. a fingerprint or provenance) as a plain dict."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"expected {what} as a mapping of JSON values, got {type(value).__name__} {value!r}; "
            "pass a dict such as {'model': 'sha256:...'}"
        )
    return _jsonable(dict(value), what)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True, kw_only=True)
class PromptSetSpec:
    """Shape, dtype and identity of one prompt set's activations.

    Parameters
    ----------
    n_prompts, n_tokens_max, d_model
        Sizes of the ``prompt``, ``token`` (padded to the longest prompt) and ``d_model`` dims.
    layers
        Real layer indices, the ``layer`` coordinate (e.g. ``(7, 15, 23)``).
    dtype
        ``"bfloat16"``, ``"float16"`` or ``"float32"``: the dtype the model produced.
    hooks
        Activation variables stored, each with dims ``(prompt, layer, token, d_model)``.
    block_size
        Prompts per shard (one writer unit); ``None`` chooses it from the sizes.
    fingerprint
        What identifies the data (model, tokenizer, prompt-set hash, ...). Resuming or appending
        with a different fingerprint is refused.
    provenance
        Free-form JSON-serialisable details (command, versions, device); never compared.
    codec
        Compression of the activation chunks: ``"zstd:LEVEL"`` or ``"none"`` (crc32c always);
        ``None`` means the default (``zstd:1``) for a new set, and whatever is stored when
        resuming. See docs/write-path.md.
    """

    n_prompts: int
    n_tokens_max: int
    layers: tuple[int, ...]
    d_model: int
    dtype: str
    hooks: tuple[str, ...] = ("resid_post",)
    block_size: int | None = None
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    codec: str | None = None

    def __post_init__(self) -> None:
        if self.codec is not None:
            from actstore.store.format._codecs import parse_codec

            object.__setattr__(self, "codec", parse_codec(self.codec))
        object.__setattr__(self, "layers", layer_indices(self.layers))
        object.__setattr__(self, "hooks", tuple(self.hooks))
        for name in ("n_prompts", "n_tokens_max", "d_model"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InvalidArgumentError(f"expected {name} to be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise InvalidArgumentError(
                f"expected distinct layer indices, got {self.layers!r}; list each layer once"
            )
        if self.dtype not in DTYPES:
            raise InvalidArgumentError(
                f"expected dtype one of {', '.join(DTYPES)}, got {self.dtype!r}; convert the "
                "activations or pick one of these"
            )
        if not self.hooks or len(set(self.hooks)) != len(self.hooks):
            raise InvalidArgumentError(
                f"expected distinct hook names, got {self.hooks!r}; list each hook once"
            )
        for hook in self.hooks:
            _check_name("hook", hook)
            if hook in RESERVED_NAMES:
                raise InvalidArgumentError(f"expected a hook name, got the reserved name {hook!r}")
        if self.block_size is not None and (
            not is_index(self.block_size) or int(self.block_size) < 1
        ):
            raise InvalidArgumentError(
                f"expected block_size an integer >= 1 or None, got {self.block_size!r}; use None "
                "to choose"
            )
        if self.block_size is not None:
            object.__setattr__(self, "block_size", int(self.block_size))
        for name in ("fingerprint", "provenance"):
            object.__setattr__(self, name, _jsonable_mapping(getattr(self, name), name))

    @property
    def itemsize(self) -> int:
        """Bytes per activation value."""
        return 4 if self.dtype == "float32" else 2

    def layout(self) -> Layout:
        """The shard and chunk layout the store gives this set (:func:`choose_layout`)."""
        return choose_layout(
            n_prompts=self.n_prompts,
            n_layers=len(self.layers),
            n_tokens=self.n_tokens_max,
            d_model=self.d_model,
            itemsize=self.itemsize,
            block_size=self.block_size,
        )

    @property
    def prompt_nbytes(self) -> int:
        """Bytes of one prompt's activations for one hook (all layers and tokens)."""
        return len(self.layers) * self.n_tokens_max * self.d_model * self.itemsize


def spec_to_json(spec: PromptSetSpec) -> dict[str, Any]:
    """The spec as a JSON-ready dict (tuples become lists)."""
    return {f.name: _jsonable(getattr(spec, f.name), f.name) for f in fields(spec)}


def spec_from_json(data: Mapping[str, Any]) -> PromptSetSpec:
    """Inverse of :func:`spec_to_json`."""
    kwargs = {f.name: data[f.name] for f in fields(PromptSetSpec) if f.name in data}
    return PromptSetSpec(**kwargs)


def compare_specs(prompt_set: str, stored: PromptSetSpec, given: PromptSetSpec) -> None:
    """Raise :class:`FingerprintMismatchError` naming the first field where *given* differs."""
    pairs: list[tuple[str, Any, Any]] = [
        (name, getattr(stored, name), getattr(given, name))
        for name in ("n_prompts", "n_tokens_max", "layers", "d_model", "dtype", "hooks")
    ]
    if given.block_size is not None:
        pairs.append(("block_size", stored.block_size, given.block_size))
    if given.codec is not None:  # caches from before --codec were written with the default
        from actstore.store.format._codecs import DEFAULT_CODEC

        pairs.append(("codec", stored.codec or DEFAULT_CODEC, given.codec))
    for key in sorted(set(stored.fingerprint) | set(given.fingerprint)):
        pairs.append(
            (f"fingerprint.{key}", stored.fingerprint.get(key), given.fingerprint.get(key))
        )
    for name, old, new in pairs:
        if old != new:
            raise FingerprintMismatchError(
                f"prompt set {prompt_set!r}: {name} differs from the stored one: expected "
                f"{old!r} (stored), got {new!r}; "
                + ("drop --codec to resume with the stored one, or " if name == "codec" else "")
                + "write to a new cache or a new prompt-set name"
            )


@dataclass(frozen=True, kw_only=True)
class PromptSetMetadata:
    """Everything known about a prompt set before the first forward pass.

    Parameters
    ----------
    text
        ``(prompt,)`` prompt strings.
    n_tokens
        ``(prompt,)`` real token count of each prompt (the rest of ``token`` is padding).
    token_id, token_str
        ``(prompt, token)`` token ids and strings; padding is stored as ``-1`` and ``""``.
    labels
        Label columns, each ``(prompt,)``: numbers (stored float64) or strings.
    span_masks
        Named spans, each a ``(prompt, token)`` bool mask of the tokens inside the span.
    source_prompt
        ``(prompt,)`` index of each prompt in the cache this prompt set was copied from (subset
        copies); stored as the ``source_prompt`` coordinate. ``None``: not a subset.
    is_generated
        Optional ``(prompt, token)`` bool: True at tokens the model generated (stored as the
        variable ``is_generated`` when given).
    """

    text: Sequence[str]
    n_tokens: np.ndarray
    token_id: np.ndarray
    token_str: np.ndarray
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    span_masks: Mapping[str, np.ndarray] = field(default_factory=dict)
    source_prompt: np.ndarray | None = None
    is_generated: np.ndarray | None = None

    def checked(self, spec: PromptSetSpec) -> dict[str, np.ndarray]:
        """Validate against *spec*; return the arrays to store, keyed by variable name."""
        p, t = spec.n_prompts, spec.n_tokens_max
        text = np.asarray(list(self.text), dtype=object)
        _expect_shape("text", text, (p,))
        n_tokens = np.asarray(self.n_tokens)
        _expect_shape("n_tokens", n_tokens, (p,))
        if n_tokens.dtype.kind not in "iu" or n_tokens.min() < 1 or n_tokens.max() > t:
            raise InvalidArgumentError(
                f"expected integer n_tokens in [1, n_tokens_max={t}], got values in "
                f"[{n_tokens.min()}, {n_tokens.max()}]; fix n_tokens or n_tokens_max"
            )
        pad = np.arange(t)[None, :] >= n_tokens[:, None]
        token_id = np.asarray(self.token_id)
        _expect_shape("token_id", token_id, (p, t))
        token_id = np.where(pad, -1, token_id).astype(np.int32)
        token_str = np.asarray(self.token_str, dtype=object)
        _expect_shape("token_str", token_str, (p, t))
        token_str = np.where(pad, "", token_str).astype(object)
        out: dict[str, np.ndarray] = {
            "text": text,
            "n_tokens": n_tokens.astype(np.int32),
            "token_id": token_id,
            "token_str": token_str,
        }
        for name, values in self.labels.items():
            _check_name("label", name)
            problem = reserved_label_problem(name)
            if problem is None and name in spec.hooks:
                problem = f"{name!r}, the name of a stored activation"
            if problem is not None:
                raise InvalidArgumentError(
                    f"expected a label name, got {problem}; rename the label"
                )
            arr = np.asarray(values)
            _expect_shape(f"label {name!r}", arr, (p,))
            if is_number_dtype(arr.dtype):  # bfloat16 too (numpy's kind "V")
                out[name] = arr.astype(np.float64)
            else:  # str, object or numpy StringDType: stored as variable-length UTF-8
                out[name] = np.array([str(v) for v in arr.tolist()], dtype=object)
        spans = sorted(self.span_masks)
        mask = np.zeros((p, len(spans), t), dtype=bool)
        for i, name in enumerate(spans):
            m = np.asarray(self.span_masks[name])
            _expect_shape(f"span mask {name!r}", m, (p, t))
            if m.dtype != bool:
                raise InvalidArgumentError(f"expected a bool span mask {name!r}, got {m.dtype}")
            mask[:, i, :] = m & ~pad
        out["span"] = np.asarray(spans, dtype=object)
        out["span_mask"] = mask
        if self.source_prompt is not None:
            src = np.asarray(self.source_prompt)
            _expect_shape("source_prompt", src, (p,))
            if src.dtype.kind not in "iu" or (src.size and src.min() < 0):
                raise InvalidArgumentError(
                    f"expected non-negative integer source_prompt indices, got dtype {src.dtype}"
                )
            out["source_prompt"] = src.astype(np.int64)
        if self.is_generated is not None:
            gen = np.asarray(self.is_generated)
            _expect_shape("is_generated", gen, (p, t))
            if gen.dtype != bool:
                raise InvalidArgumentError(f"expected a bool is_generated, got {gen.dtype}")
            out["is_generated"] = gen & ~pad
        return out


def _expect_shape(what: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise InvalidArgumentError(
            f"expected {what} of shape {shape} (from the spec), got {arr.shape}; make the metadata "
            "match n_prompts and n_tokens_max"
        )


def human_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'``."""
    if n < 1024:
        return f"{int(n)} B"
    exp = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024**exp:.1f} {['B', 'KiB', 'MiB', 'GiB', 'TiB'][exp]}"
