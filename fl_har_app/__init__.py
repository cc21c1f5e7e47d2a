"""fl-har's front door: the ``fl-har`` command line and the Flower launcher.

The only package that starts things: it reads configs, validates them against the attack
registry, opens run directories and starts Flower's simulation engine with the ServerApp of
``strategies`` and the ClientApp of ``clients``. The core (``fl_har``) stays a plain library.
"""

from fl_har_app.main import main

__all__ = ["main"]
