"""Errors of the privacy layer (both are ``ValueError``s, like the rest of fl-har's bad input)."""

from __future__ import annotations


class PrivacyConfigError(ValueError):
    """A privacy parameter is missing, out of range or not finite; the message names it."""


class UnsupportedModelError(PrivacyConfigError):
    """The model has a module whose per-example gradients Opacus cannot compute; the message names
    the module (its path in ``model.named_modules()``) and why."""
