"""Errors for bad model configurations and bad model inputs (both are ``ValueError``s)."""

from __future__ import annotations


class ModelConfigError(ValueError):
    """A model was requested with an unknown name, impossible shapes or an invalid seed."""


class ModelInputError(ValueError):
    """A model was called on a tensor that does not have the shape it was built for."""
