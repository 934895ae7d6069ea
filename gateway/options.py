"""Turning HTTP form fields into RestoreOptions, with messages that name the field."""

from __future__ import annotations

from typing import Mapping

from revive.v1 import common_pb2

from services.common.errors import InvalidInput
from services.common.options import MAX_AGE, MAX_CANDIDATES, UPSCALE_FACTORS, validate_options

GENDERS = {"auto": common_pb2.GENDER_UNSPECIFIED, "female": common_pb2.FEMALE, "male": common_pb2.MALE}
HAIR_COLORS = {
    "auto": common_pb2.HAIR_COLOR_UNSPECIFIED,
    "black": common_pb2.BLACK,
    "brown": common_pb2.BROWN,
    "blond": common_pb2.BLOND,
    "red": common_pb2.RED,
    "grey": common_pb2.GREY,
    "gray": common_pb2.GREY,
}
COLORIZE = {
    "auto": common_pb2.COLORIZE_UNSPECIFIED,
    "on": common_pb2.COLORIZE_ON, "true": common_pb2.COLORIZE_ON, "yes": common_pb2.COLORIZE_ON, "1": common_pb2.COLORIZE_ON,
    "off": common_pb2.COLORIZE_OFF, "false": common_pb2.COLORIZE_OFF, "no": common_pb2.COLORIZE_OFF, "0": common_pb2.COLORIZE_OFF,
}
#: Integer fields and the range each accepts, said in the error when a value is outside it
#: (validate_options re-checks the same rules).
INTEGER_FIELDS = {"age": (1, MAX_AGE), "upscale": (min(UPSCALE_FACTORS), max(UPSCALE_FACTORS)),
                  "candidates": (1, MAX_CANDIDATES), "seed": (0, 2**64 - 1)}
KNOWN_FIELDS = {"gender", "hair_color", "colorize", "strength", *INTEGER_FIELDS}


def _choice(field: str, value: str, choices: Mapping[str, int]) -> int:
    try:
        return choices[value.strip().lower()]
    except KeyError:
        raise InvalidInput(f"{field} must be one of {', '.join(sorted(choices))}; got {value!r}") from None


def _integer(field: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number; got {value!r}") from None
    low, high = INTEGER_FIELDS[field]
    if not low <= number <= high:
        raise InvalidInput(f"{field} must be between {low} and {high}; got {number}")
    return number


def options_from_form(fields: Mapping[str, str]) -> common_pb2.RestoreOptions:
    """Parse and validate form fields; unknown fields are an error, not silently ignored."""
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InvalidInput(f"unknown option(s) {shown}; known: {', '.join(sorted(KNOWN_FIELDS))}")
    options = common_pb2.RestoreOptions()
    if "gender" in fields:
        options.gender = _choice("gender", fields["gender"], GENDERS)
    if "hair_color" in fields:
        options.hair_color = _choice("hair_color", fields["hair_color"], HAIR_COLORS)
    if "colorize" in fields:
        options.colorize = _choice("colorize", fields["colorize"], COLORIZE)
    for field in INTEGER_FIELDS:
        if field in fields and fields[field].strip() != "":
            setattr(options, field, _integer(field, fields[field]))
    if "strength" in fields and fields["strength"].strip() != "":
        try:
            options.strength = float(fields["strength"])
        except ValueError:
            raise InvalidInput(f"strength must be a number between 0 and 1; got {fields['strength']!r}") from None
    validate_options(options)
    return options
