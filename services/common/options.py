"""The rules for RestoreOptions, applied by the gateway and again by the generator.

Both edges check the same rules so that an internal caller talking to the
generator directly gets the same INVALID_ARGUMENT messages as an HTTP user.
"""

from __future__ import annotations

from revive.v1 import common_pb2

from services.common.errors import InvalidInput

UPSCALE_FACTORS = (1, 2, 4)
MAX_CANDIDATES = 8
MAX_AGE = 100


def validate_options(options: common_pb2.RestoreOptions) -> None:
    """Raise InvalidInput naming the first option out of range."""
    if options.gender not in common_pb2.Gender.values():
        raise InvalidInput(f"gender: unknown value {options.gender}")
    if options.hair_color not in common_pb2.HairColor.values():
        raise InvalidInput(f"hair_color: unknown value {options.hair_color}")
    if options.colorize not in common_pb2.Colorize.values():
        raise InvalidInput(f"colorize: unknown value {options.colorize}")
    if options.HasField("age") and not 1 <= options.age <= MAX_AGE:
        raise InvalidInput(f"age must be between 1 and {MAX_AGE}, got {options.age}")
    if options.HasField("upscale") and options.upscale not in UPSCALE_FACTORS:
        raise InvalidInput(f"upscale must be one of {UPSCALE_FACTORS}, got {options.upscale}")
    if options.HasField("candidates") and not 1 <= options.candidates <= MAX_CANDIDATES:
        raise InvalidInput(f"candidates must be between 1 and {MAX_CANDIDATES}, got {options.candidates}")
    if options.HasField("strength") and not 0.0 <= options.strength <= 1.0:
        raise InvalidInput(f"strength must be between 0 and 1, got {options.strength}")
