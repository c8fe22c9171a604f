"""The activation codec: what ``--codec`` names, and the zarr codecs each name stands for.

Every choice keeps the crc32c checksum per inner chunk (``actstore verify`` relies on it); only
the compressor before it changes. Names: ``zstd:LEVEL`` (LEVEL an integer, -7..22; negative
levels are zstd's fast modes) and ``none``. The default, ``zstd:1``, was picked from the table in
docs/write-path.md (ratio, write and read MB/s on a trained model's bfloat16 activations).
"""

from __future__ import annotations

import re
from typing import Any

from actstore.errors import InvalidArgumentError

__all__ = ["CODEC_CHOICES", "DEFAULT_CODEC", "codec_compressors", "parse_codec"]

DEFAULT_CODEC = "zstd:1"
CODEC_CHOICES = "zstd:LEVEL (LEVEL -7..22 except 0, e.g. zstd:1, zstd:3, zstd:-1) or none"
#: ``zstd`` or ``zstd:LEVEL`` with LEVEL plain ASCII digits (no ``1_0``, no other scripts' digits)
_ZSTD_RE = re.compile(r"zstd(?::([+-]?[0-9]{1,2}))?", re.ASCII)


def parse_codec(codec: Any) -> str:
    """Normalise a codec name (``"ZSTD"`` -> ``"zstd:1"``, ``" none "`` -> ``"none"``).

    Parameters
    ----------
    codec
        ``None`` (the default, :data:`DEFAULT_CODEC`), ``"zstd"``, ``"zstd:LEVEL"`` or ``"none"``.

    Returns
    -------
    str
        The canonical name stored in the prompt set's spec.

    Raises
    ------
    InvalidArgumentError
        On anything else.
    """
    if codec is None:
        return DEFAULT_CODEC
    if not isinstance(codec, str):
        raise InvalidArgumentError(
            f"expected --codec as a string ({CODEC_CHOICES}), got {type(codec).__name__} "
            f"{codec!r}; pass e.g. 'zstd:1'"
        )
    text = codec.strip().lower()
    if text == "none":
        return "none"
    match = _ZSTD_RE.fullmatch(text)
    if match is not None:
        n = int(match.group(1)) if match.group(1) is not None else 1
        if -7 <= n <= 22 and n != 0:
            return f"zstd:{n}"
    raise InvalidArgumentError(
        f"expected --codec {CODEC_CHOICES}, got {codec!r}; use e.g. zstd:1 (the default)"
    )


def codec_compressors(codec: str | None) -> tuple[Any, ...]:
    """The zarr ``compressors`` of activation arrays stored with *codec* (crc32c last)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    name = parse_codec(codec)
    if name == "none":
        return (Crc32cCodec(),)
    return (ZstdCodec(level=int(name.split(":")[1])), Crc32cCodec())
