"""The data layer's single error type, so callers can catch every bad-input case at once."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data: the message names the file, row, field or value at fault and
    what was expected instead."""
