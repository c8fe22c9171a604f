"""Turn parsed TOML (plain dicts) into frozen dataclasses, with errors that name the key.

A small, strict converter: every key must be a field of the target dataclass, every value must have
the field's type. It knows the handful of types the experiment configs use (``int``, ``float``,
``str``, ``bool``, ``tuple[X, ...]``, ``Mapping[str, Any]``, unions with ``None``, and nested
dataclasses), so that a config can never smuggle in anything else.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from actstore.errors import ConfigError

__all__ = ["from_mapping", "to_mapping"]

T = TypeVar("T")

_SCALARS: dict[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true/false",
}


_PLURALS: dict[type, str] = {
    int: "integers",
    float: "numbers",
    str: "strings",
    bool: "true/false values",
}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        item = get_args(tp)[0]
        return f"a list of {_PLURALS.get(item) or _describe(item)}"
    if origin in (Mapping, dict) or tp is Any:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        text = repr(value)
        return f"{text if len(text) <= 60 else text[:57] + '...'} (a list)"
    return f"{value!r} ({type(value).__name__})"


def _fix(value: Any, tp: Any) -> str:
    """The "do Z" of a type error: the likeliest edit, else where the key's type is listed."""
    union = get_origin(tp) in (Union, types.UnionType)
    wanted = [a for a in get_args(tp) if a is not type(None)] if union else [tp]
    if isinstance(value, str) and any(a in (int, float) for a in wanted):
        try:
            float(value)
        except ValueError:
            pass
        else:
            return "write the number without quotes"
    lists = [a for a in wanted if get_origin(a) is tuple]
    if lists and not isinstance(value, list | tuple | dict):
        return f"write a list, e.g. [{_toml(value)}]"
    return "see docs/reference/config.md for the key's type"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _type_error(key: str, value: Any, tp: Any) -> ConfigError:
    return ConfigError(
        f"config key '{key}': expected {_describe(tp)}, got {_got(value)}; {_fix(value, tp)}"
    )


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        item_error = None
        for arg in args:
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                if isinstance(value, list) and get_origin(arg) is tuple:
                    item_error = exc  # a list with a bad item: name the item
                continue
        if item_error is not None:
            raise item_error
        raise _type_error(key, value, tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a table, got {_got(value)}")
        return from_mapping(tp, value, prefix=key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(key, value, tp)
        item = get_args(tp)[0]
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a table, got {_got(value)}")
        return types.MappingProxyType(dict(value))
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:  # pragma: no cover - a field type this converter does not know is a programming error
        raise TypeError(f"unsupported config field type {tp!r} for '{key}'")
    raise _type_error(key, value, tp)


def from_mapping(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and ill-typed values.

    Parameters
    ----------
    cls
        A (frozen, keyword-only) dataclass type.
    data
        The parsed table, e.g. from :func:`tomllib.load`.
    prefix
        Dotted path of ``data`` inside the whole config, used in error messages.

    Raises
    ------
    ConfigError
        Naming the key and the allowed keys or the expected type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    for key in data:
        if key not in fields:
            where = f"'{prefix}.{key}'" if prefix else f"'{key}'"
            allowed = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {where}; expected one of: {allowed}")
    kwargs = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"config key '{key}' is missing; expected {_describe(hints[name])}; add it"
            )
    return cls(**kwargs)


def to_mapping(obj: Any) -> Any:
    """A JSON-serialisable view of a config dataclass (tuples become lists).

    A field declared with ``metadata={"omit_default": True}`` is left out while it holds its
    default, so adding such a field keeps the hashes of configs that do not use it.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_mapping(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            # keys added later stay out while unset, so older configs keep their hashes
            if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)
        }
    if isinstance(obj, Mapping):
        return {str(k): to_mapping(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_mapping(v) for v in obj]
    return obj
