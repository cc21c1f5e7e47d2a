"""One rich console for every command; errors go to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> int:
    """Print an input error (no traceback) and return the exit status."""
    error_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return code
