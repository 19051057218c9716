"""User-facing errors: what the CLI turns into one line naming what to fix.

``setting`` names the input in the caller's own words: a ``PPOConfig`` key
(``n_envs``), an API keyword (``config_file``) or a command's argument
(``RUN_DIR``). Only the CLI translates a setting into its flag (``--envs``).
This module imports nothing heavy, so the CLI can catch these without
importing torch first.
"""

from __future__ import annotations

from collections.abc import Mapping


class UserError(Exception):
    """A mistake in what the user asked for; ``setting`` names what to change."""

    setting: str = "error"

    def __init__(
        self, message: str, setting: str | None = None, mentions: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.mentions = mentions  # other settings the message names as {setting}
        self.names: Mapping[str, str] = {}
        if setting is not None:
            self.setting = setting

    def in_words(self, names: Mapping[str, str]) -> UserError:
        """Speak the caller's words: ``names`` maps settings to what the user
        typed (flags on the CLI, keywords in Python)."""
        self.names = names
        return self

    def one_line(self) -> str:
        """``setting: message`` on one line, settings renamed by ``in_words``."""
        message = self.message
        for mentioned in self.mentions:
            message = message.replace(f"{{{mentioned}}}", self.names.get(mentioned, mentioned))
        return " ".join(f"{self.names.get(self.setting, self.setting)}: {message}".split())

    def __str__(self) -> str:
        return self.one_line()


class ConfigError(UserError, ValueError):
    """A configuration mistake; ``setting`` names the key (or input) to fix.

    It lives here, not beside ``PPOConfig``, so that every layer (envs,
    extras, the device) can raise it without importing the config."""

    def __init__(self, setting: str, message: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(message, setting=setting, mentions=mentions)
