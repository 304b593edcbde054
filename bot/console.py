"""The command line's consoles (rich), made at their first use. `madoguchi serve` prints nothing through them
(its lines go through logging), and rich is some fifty modules: 2 MB of a server's memory and a twentieth of its
start (bench/footprint.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class LazyConsole:
    """A rich Console (soft-wrapped: one problem a line, whatever the width, so it stays grep-able) built when
    something is first printed."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


def escape(text: str) -> str:
    """rich's markup escape (loaded with rich, when something is printed)."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)
