"""The report's input error."""

from __future__ import annotations


class ReportError(ValueError):
    """Run directories, options or files given to ``fl-har report`` are unusable.

    The message names the path, key or value and what was expected.
    """
