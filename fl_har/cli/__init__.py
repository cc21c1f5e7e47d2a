"""The ``fl-har`` command line: the front door that starts everything, Flower included."""

from fl_har.cli.main import main

__all__ = ["main"]
