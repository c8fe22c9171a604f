"""Token positions: from character spans to token masks, and position specs such as ``before:v``.

Pure numpy: the analysis applies these to span masks read from a cache, with no tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from actstore.errors import InvalidArgumentError, UnknownNameError

__all__ = [
    "POSITION_FORMS",
    "Position",
    "char_spans_to_token_masks",
    "parse_position",
    "span_masks_for_set",
]

POSITION_FORMS = ("last", "all", "before:SPAN", "span:SPAN")
_KINDS = ("last", "all", "before", "span")


def char_spans_to_token_masks(
    spans: Mapping[str, tuple[int, int]],
    offsets: Sequence[tuple[int, int]] | np.ndarray,
    special: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Which tokens belong to each character span.

    Parameters
    ----------
    spans : Mapping[str, tuple[int, int]]
        Span name -> character ``[start, end)`` in the text.
    offsets : sequence of (start, end), shape (token, 2)
        The tokenizer's offset mapping: token i covers characters ``[start, end)``.
    special : sequence of bool, shape (token,), optional
        True for special tokens (BOS, padding); they never belong to a span.

    Returns
    -------
    dict[str, np.ndarray]
        Span name -> bool mask over the ``token`` dimension. A token belongs to a span when it
        covers at least one of the span's characters, so a token " 12" (leading space) belongs
        to the span of "12". Tokens with empty offsets, such as ``(0, 0)`` for a prepended BOS,
        never belong to a span.

    Raises
    ------
    InvalidArgumentError
        If ``offsets`` is not of shape ``(token, 2)`` or ``special`` not of shape ``(token,)``.
    """
    offs = np.asarray(offsets, dtype=np.int64)
    if offs.size == 0:
        offs = offs.reshape(0, 2)
    if offs.ndim != 2 or offs.shape[1] != 2:
        raise InvalidArgumentError(
            f"expected offsets of shape (token, 2), got shape {offs.shape}; pass the tokenizer's "
            "offset_mapping for one prompt"
        )
    starts, ends = offs[:, 0], offs[:, 1]
    usable = ends > starts
    if special is not None:
        special_arr = np.asarray(special, dtype=bool)
        if special_arr.shape != (offs.shape[0],):
            raise InvalidArgumentError(
                f"expected special of shape ({offs.shape[0]},) like offsets, "
                f"got {special_arr.shape}"
            )
        usable &= ~special_arr
    masks = {}
    for name, span in spans.items():
        start, end = (int(v) for v in span)
        if not 0 <= start < end:
            raise InvalidArgumentError(
                f"expected span {name!r} as [start, end) with 0 <= start < end, got {span!r}"
            )
        masks[name] = usable & (starts < end) & (ends > start)
    return masks


def span_masks_for_set(
    spans: Sequence[Mapping[str, tuple[int, int]]],
    offsets: Sequence[Sequence[tuple[int, int]] | np.ndarray],
    special: Sequence[Sequence[bool] | np.ndarray] | None = None,
    *,
    span_names: Sequence[str] | None = None,
    n_token: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`char_spans_to_token_masks` for every prompt, stacked to (prompt, token) arrays.

    Parameters
    ----------
    spans : sequence over prompts of Mapping[str, tuple[int, int]]
        Each prompt's spans (``[p.spans for p in prompt_set]``).
    offsets : sequence over prompts of (token, 2) offsets
        Each prompt's offset mapping; prompts may have different lengths.
    special : sequence over prompts of (token,) bool, optional
        Each prompt's special-token flags.
    span_names : sequence of str, optional
        The spans to return, in order (default: the union in first-seen order). A prompt without
        a span gets an all-False row.
    n_token : int, optional
        Width of the token dimension (default: the longest prompt); padding is False.

    Returns
    -------
    dict[str, np.ndarray]
        Span name -> bool array of shape (prompt, token).

    Raises
    ------
    InvalidArgumentError
        If ``offsets`` (or ``special``) has not one entry per prompt, ``n_token`` is shorter than
        the longest prompt, or one prompt's offsets are malformed
        (see :func:`char_spans_to_token_masks`).
    """
    if len(offsets) != len(spans) or (special is not None and len(special) != len(spans)):
        raise InvalidArgumentError(
            f"expected one offsets (and special) entry per prompt ({len(spans)}), got "
            f"{len(offsets)} offsets" + ("" if special is None else f", {len(special)} special")
        )
    if span_names is None:
        span_names = list(dict.fromkeys(name for s in spans for name in s))
    lengths = [len(o) for o in offsets]
    width = max(lengths, default=0) if n_token is None else int(n_token)
    if lengths and max(lengths) > width:
        raise InvalidArgumentError(
            f"expected n_token >= the longest prompt ({max(lengths)} tokens), got {width}"
        )
    out = {name: np.zeros((len(spans), width), dtype=bool) for name in span_names}
    for i, (prompt_spans, offs) in enumerate(zip(spans, offsets)):
        wanted = {k: v for k, v in prompt_spans.items() if k in out}
        masks = char_spans_to_token_masks(wanted, offs, None if special is None else special[i])
        for name, mask in masks.items():
            out[name][i, : mask.shape[0]] = mask
    return out


@dataclass(frozen=True, kw_only=True)
class Position:
    """Which token positions of a prompt to read.

    ``kind`` is ``"last"`` (the last real token: in the reference study, where the written answer
    is already visible), ``"all"``, ``"before"`` (the last token before span ``span`` starts:
    where the model must compute the value it is about to write) or ``"span"`` (the tokens of
    span ``span``). Build one with :func:`parse_position`.
    """

    kind: str
    span: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidArgumentError(
                f"expected a position kind in {', '.join(_KINDS)}, got {self.kind!r}"
            )
        needs_span = self.kind in ("before", "span")
        if needs_span != (self.span is not None) or (needs_span and not self.span):
            raise InvalidArgumentError(
                f"expected a span name with 'before' and 'span' only, got kind={self.kind!r}, "
                f"span={self.span!r}; use one of {', '.join(POSITION_FORMS)}"
            )

    def __str__(self) -> str:
        return self.kind if self.span is None else f"{self.kind}:{self.span}"

    def _mask(self, span_masks: Mapping[str, np.ndarray]) -> np.ndarray:
        try:
            return np.asarray(span_masks[self.span], dtype=bool)  # type: ignore[index]
        except KeyError as exc:
            raise UnknownNameError(
                f"expected a span name ({', '.join(span_masks) or 'none available'}), got "
                f"{self.span!r} in position {str(self)!r}"
            ) from exc

    def select(self, n_tokens: int, span_masks: Mapping[str, np.ndarray]) -> np.ndarray:
        """Token indices of one prompt that this position selects.

        Parameters
        ----------
        n_tokens : int
            Number of real tokens of the prompt (padding excluded).
        span_masks : Mapping[str, np.ndarray]
            Span name -> bool mask over the ``token`` dimension (may be longer than
            ``n_tokens``: padding is ignored).

        Returns
        -------
        np.ndarray
            int64 token indices, ascending. Empty when the span is absent from this prompt
            (all-False mask) or, for ``before``, when the span starts at the first token.
        """
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, int | np.integer):
            raise InvalidArgumentError(f"expected n_tokens as an integer, got {n_tokens!r}")
        n = int(n_tokens)
        if n < 1:
            raise InvalidArgumentError(f"expected n_tokens >= 1, got {n}")
        if self.kind == "last":
            return np.array([n - 1], dtype=np.int64)
        if self.kind == "all":
            return np.arange(n, dtype=np.int64)
        mask = self._mask(span_masks)
        if mask.ndim != 1 or mask.shape[0] < n:
            raise InvalidArgumentError(
                f"expected the mask of span {self.span!r} to cover n_tokens={n} tokens, got shape "
                f"{mask.shape}"
            )
        idx = np.flatnonzero(mask[:n]).astype(np.int64)
        if self.kind == "span" or idx.size == 0:
            return idx
        first = int(idx[0])
        return np.array([first - 1], dtype=np.int64) if first > 0 else idx[:0]

    def token_mask(
        self, n_tokens: np.ndarray | Sequence[int], span_masks: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Vectorised :meth:`select` over prompts, as a bool mask of shape (prompt, token).

        ``n_tokens`` has shape (prompt,); each span mask has shape (prompt, token). For
        ``last`` and ``all`` without span masks, the token dimension is ``max(n_tokens)``.
        """
        n = np.asarray(n_tokens, dtype=np.int64)
        if n.ndim != 1 or (n.size and n.min() < 1):
            raise InvalidArgumentError(
                f"expected n_tokens of shape (prompt,) with values >= 1, got {n_tokens!r}"
            )
        if self.kind in ("before", "span"):
            mask = self._mask(span_masks)
            if mask.ndim != 2 or mask.shape[0] != n.shape[0]:
                raise InvalidArgumentError(
                    f"expected the mask of span {self.span!r} with shape (prompt={n.shape[0]}, "
                    f"token), got {mask.shape}"
                )
            n_tok = mask.shape[1]
        else:
            shapes = {np.shape(m)[1] for m in span_masks.values() if np.ndim(m) == 2}
            n_tok = max(shapes) if shapes else int(n.max(initial=0))
        pos = np.arange(n_tok)[None, :]
        real = pos < n[:, None]
        if self.kind == "all":
            return real
        if self.kind == "last":
            return pos == (n - 1)[:, None]
        inside = mask & real
        if self.kind == "span":
            return inside
        has = inside.any(axis=1)
        first = np.where(has, inside.argmax(axis=1), 0)
        return (pos == (first - 1)[:, None]) & has[:, None]


def parse_position(spec: str | Position) -> Position:
    """Parse a position spec: ``last``, ``all``, ``before:SPAN`` or ``span:SPAN``.

    Parameters
    ----------
    spec : str or Position
        The spec (surrounding spaces ignored); a :class:`Position` is returned as it is.

    Returns
    -------
    Position
        Which tokens of each prompt the spec selects (see :meth:`Position.token_mask`).

    Raises
    ------
    InvalidArgumentError
        If ``spec`` is not a string of one of the four forms.

    Examples
    --------
    >>> parse_position("before:v_squared")
    Position(kind='before', span='v_squared')
    """
    if isinstance(spec, Position):
        return spec
    if not isinstance(spec, str):
        raise InvalidArgumentError(
            f"expected a position spec string ({', '.join(POSITION_FORMS)}), got {spec!r}"
        )
    text = spec.strip()
    kind, sep, span = text.partition(":")
    kind, span = kind.strip(), span.strip()
    if not sep and kind in ("last", "all"):
        return Position(kind=kind)
    if sep and kind in ("before", "span") and span:
        return Position(kind=kind, span=span)
    raise InvalidArgumentError(
        f"expected a position spec of the form {', '.join(POSITION_FORMS)}, got {spec!r}"
    )
