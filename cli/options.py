"""The command-line arguments every sub-command shares: the config profile and ``--set`` overrides."""

from __future__ import annotations

import argparse

from pipeline.config import PipelineConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser, *, default_profile: str, example: str) -> None:
    """Adds ``--profile`` and the repeatable ``--set SECTION.KEY=VALUE``; ``example`` is shown in the help."""
    parser.add_argument("--profile", default=None, help=f"config profile name or .toml path ({default_profile})")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"override one config value, e.g. --set {example} (repeatable)",
    )


def config_from_arguments(args: argparse.Namespace, default_profile: str, **shortcuts: str | None) -> PipelineConfig:
    """Loads the config the arguments name; a mistake in it raises a ConfigError, which is a UserError."""
    return load_config(args.profile or default_profile, args.overrides, **shortcuts)
