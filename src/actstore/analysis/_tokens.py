"""Token strings made readable for figures and reports, without a tokenizer.

The cache stores each token's decoded text (``token_str``). Some tokenizers' ``decode`` of a
single token returns the byte-level form instead (GPT-2's byte-to-unicode alphabet, where ``Ġ``
is a space and ``Ċ`` a newline). :func:`readable_tokens` recognises that form for a whole array
of tokens at once, turns it back into text, and makes whitespace visible: a space is ``·``,
a newline ``↵``, a tab ``→``; bytes that are not valid UTF-8 on their own (one token holding
half of a multi-byte character) show as ``<0xE4>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

__all__ = [
    "SPACE",
    "byte_level_decode",
    "bytes_to_unicode",
    "is_byte_level",
    "readable_token",
    "readable_tokens",
]

SPACE = "·"
_VISIBLE = {" ": SPACE, "\n": "↵", "\r": "␍", "\t": "→"}


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (used by every byte-level BPE tokenizer).

    Printable Latin-1 bytes map to themselves; the other 68 (control characters, space, DEL,
    NBSP, soft hyphen) map to ``chr(256 + n)`` in byte order, so a space (0x20) is ``Ġ``.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += list(range(ord("®"), ord("ÿ") + 1))
    out = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + n)
            n += 1
    return out


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


@lru_cache(maxsize=1)
def _shifted() -> frozenset[str]:
    """The characters that only occur in byte-level form (``Ġ``, ``Ċ``, ...)."""
    return frozenset(c for b, c in bytes_to_unicode().items() if ord(c) >= 256)


def is_byte_level(tokens: Iterable[str]) -> bool:
    """Whether a set of token strings is in byte-level form rather than decoded text.

    True when every character of every token belongs to the byte-level alphabet and at least
    one token holds a character that only that alphabet uses (e.g. ``Ġ`` for a space). Decoded
    text with a real space, newline or any character outside Latin-1 is never byte-level.
    """
    alphabet = _unicode_to_byte()
    shifted = _shifted()
    seen_shifted = False
    for tok in tokens:
        for ch in tok:
            if ch not in alphabet:
                return False
            if ch in shifted:
                seen_shifted = True
    return seen_shifted


def byte_level_decode(tok: str) -> str:
    """Decode one byte-level token string to text; invalid UTF-8 bytes become ``<0xAB>``.

    Raises
    ------
    ValueError
        If ``tok`` holds a character outside the byte-level alphabet.
    """
    table = _unicode_to_byte()
    try:
        raw = bytes(table[ch] for ch in tok)
    except KeyError as exc:
        raise ValueError(
            f"expected a byte-level token string, got {tok!r} with {exc.args[0]!r}; "
            "pass decoded text through readable_token instead"
        ) from exc
    out: list[str] = []
    i = 0
    while i < len(raw):
        # Decode the longest valid UTF-8 prefix; mark a byte that cannot start one.
        for j in range(min(len(raw), i + 4), i, -1):
            try:
                out.append(raw[i:j].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i = j
            break
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
    return "".join(out)


def readable_token(tok: str, *, byte_level: bool = False, width: int | None = None) -> str:
    """One token as a label: decoded when ``byte_level``, whitespace visible, cut to ``width``.

    A character that is not printable (a control character) shows as ``<0x07>``; an empty token
    (e.g. a special token that decodes to nothing) as ``∅``.
    """
    text = byte_level_decode(tok) if byte_level else tok
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif not ch.isprintable():
            out.append(f"<0x{ord(ch):02X}>")
        else:
            out.append(ch)
    label = "".join(out) or "∅"
    if width is not None and len(label) > width:
        label = label[: max(1, width - 1)] + "…"
    return label


def readable_tokens(tokens: np.ndarray | Iterable[str], *, width: int | None = None) -> np.ndarray:
    """Readable labels for an array of token strings (any shape), decided for the array as a whole.

    Parameters
    ----------
    tokens : array of str, shape (...)
        Token strings as stored (``token_str``); padding entries (``""``) stay ``""``.
    width : int, optional
        Cut labels longer than this, ending them with ``…``.

    Returns
    -------
    numpy.ndarray of str, shape (...)
        The labels; byte-level strings (see :func:`is_byte_level`) are decoded first.
    """
    arr = np.asarray(tokens, dtype=object)
    flat = [str(t) for t in arr.reshape(-1)]
    byte_level = is_byte_level(t for t in flat if t)
    labels = [readable_token(t, byte_level=byte_level, width=width) if t else "" for t in flat]
    return np.asarray(labels, dtype=object).reshape(arr.shape)
