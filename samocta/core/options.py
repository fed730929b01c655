"""Configuration dataclasses as the single source of their command-line flags and of their checks.

A field declared with ``option(default, help, ...)`` carries its help text, its allowed range and
its flag; ``Literal[...]`` annotations give the allowed choices. ``check_fields`` validates an
instance against them (call it from ``__post_init__``), and ``add_arguments`` / ``from_arguments``
generate the ``argparse`` flags and read them back, so a new field is documented, checked and on
the command line in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, Union

from samocta.core.errors import SamOctaError


class ConfigError(SamOctaError, ValueError):
    """A configuration value is outside what the option allows."""


# The largest seed an option takes: what every generator of the package (numpy, torch, albumentations) accepts.
MAX_SEED = 2**32 - 1


def bounded_int(low: int, high: int) -> "typing.Callable[[str], int]":
    """An ``argparse`` type for an integer option in ``low .. high``, checked at parse time (so before any work):
    argparse says ``argument --flag: ...`` with the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {low:,} to {high:,}; got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:,} to {high:,}; got {value:,}")
        return value

    parse.__name__ = "integer"  # what argparse names the type in its messages
    return parse


def option(default: Any, help: str, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, flag: str | None = None) -> Any:
    """A dataclass field with its help text and allowed range.

    Args:
        default: the default value.
        help: one line for ``--help``.
        minimum, maximum: inclusive bounds; ``above``: an exclusive lower bound (e.g. a rate > 0).
        flag: the command-line flag (default: ``--`` + the name with dashes).
    """
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "above": above, "flag": flag}
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _unpack(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else Union[tuple(args)]), len(args) < len(typing.get_args(annotation))
    return annotation, False


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    base, _ = _unpack(annotation)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


@functools.lru_cache(maxsize=None)  # every config built checks its fields: resolve the hints once
def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def check_fields(obj: Any) -> None:
    """Check every field of a dataclass instance against its type, choices and range.

    Raises:
        ConfigError: naming the field, its flag, the value and what is allowed.
    """
    for f, annotation in _fields(type(obj)):
        value = getattr(obj, f.name)
        where = f"{f.name} ({flag_of(f)})"
        base, optional = _unpack(annotation)
        if value is None:
            if not optional:
                raise ConfigError(f"{where} needs a value")
            continue
        choices = choices_of(annotation)
        if choices is not None:
            if value not in choices:
                raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
            continue
        if base is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false; got {value!r}")
            continue
        if base in (int, float):
            if isinstance(value, bool) or not isinstance(value, int if base is int else (int, float)):
                raise ConfigError(f"{where} must be {'an integer' if base is int else 'a number'}; got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be finite; got {value!r}")
            lo, hi, above = f.metadata.get("minimum"), f.metadata.get("maximum"), f.metadata.get("above")
            if (lo is not None and value < lo) or (hi is not None and value > hi) or (above is not None and value <= above):
                raise ConfigError(f"{where} must be {describe_range(f)}; got {value!r}")
            continue
        if base is str and not isinstance(value, str):
            raise ConfigError(f"{where} must be text; got {value!r}")


def describe_range(f: dataclasses.Field) -> str:
    """The allowed range of a numeric field in words ("1 to 256", "above 0, at most 1", ...)."""
    lo, hi, above = f.metadata.get("minimum"), f.metadata.get("maximum"), f.metadata.get("above")
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    low = f"at least {lo:g}" if lo is not None else f"above {above:g}" if above is not None else ""
    high = f"at most {hi:g}" if hi is not None else ""
    return ", ".join(x for x in (low, high) if x) or "any value"


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type, required: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls``, with its help text, its default and its choices.

    Values stay unchecked here (``argparse`` only converts them): the dataclass checks them, so the
    command line and the Python API refuse the same values with the same message. A flag left out
    does not appear in the parsed arguments at all (``argparse.SUPPRESS``), so that a preset or the
    dataclass supplies its value; ``--help`` still shows the dataclass default.
    """
    for f, annotation in _fields(cls):
        base, optional = _unpack(annotation)
        choices = choices_of(annotation)
        default = f.default
        shown = "none" if default is None else default
        rng = describe_range(f)
        help_text = f.metadata.get("help", "") + (f"; {rng}" if rng != "any value" else "")
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text, "default": argparse.SUPPRESS}
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["help"] += f"; default: {shown}"
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = help_text + ("" if f.name in required else f"; default: {'on' if default else 'off'}")
        elif choices is not None:
            kwargs["choices"] = list(choices) + (["none"] if optional else [])
            kwargs["type"] = str if all(isinstance(c, str) for c in choices) else type(choices[0])
        elif base in (int, float):
            kwargs["type"] = base
            kwargs["metavar"] = "N" if base is int else "X"
        parser.add_argument(flag_of(f), **kwargs)


def given_arguments(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that the command line set (the string "none" of an optional choice is None)."""
    values = {}
    for f, annotation in _fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            if value == "none" and _unpack(annotation)[1] and choices_of(annotation) is not None:
                value = None
            values[f.name] = value
    return values
