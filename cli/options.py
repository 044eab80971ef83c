"""The options several commands share: the config profile, ``--set`` overrides and ``--home``.

The config is loaded inside each command, not here, so ``--help`` imports neither pydantic nor the profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


def config_options(*, default_profile: str, example: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds ``--profile`` and the repeatable ``--set SECTION.KEY=VALUE``; ``example`` is shown in the help."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="SECTION.KEY=VALUE",
            help=f"Override one config value, e.g. --set {example} (repeatable).",
        )(command)
        return click.option("--profile", default=None, help=f"Config profile name or .toml path ({default_profile}).")(
            command
        )

    return decorate


def load(
    profile: str | None, default_profile: str, overrides: Sequence[str], **shortcuts: str | None
) -> PipelineConfig:
    """The config the options name; a mistake in it raises a ConfigError (a UserError: one line, exit 2)."""
    from pipeline.config import load_config

    return load_config(profile or default_profile, list(overrides), **shortcuts)
