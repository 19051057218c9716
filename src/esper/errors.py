"""User-facing errors: what the CLI turns into one line naming the flag to fix.

This module imports nothing heavy, so the CLI can catch these without
importing torch first.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; ``flag`` names what to change."""

    flag: str = "error"

    def __init__(self, message: str, flag: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if flag is not None:
            self.flag = flag

    def one_line(self) -> str:
        return " ".join(f"{self.flag}: {self.message}".split())
