"""One typed configuration object for the whole pipeline, loaded from a profile file plus ``--set`` overrides.

Every component setting (paths, split, training steps, thresholds, tuner budget, Beam args, MLMD connection,
serving directory) comes from here; runners choose a profile, never branch on where they run. Profiles are TOML
files in ``pipeline/profiles/`` (or any path to one) whose tables mirror the sections of
``pipeline/config_schema.py``, which says what a valid value is; this module loads, layers and reports. Strings may
use two placeholders: ``{home}`` (the installation's home folder, ``--home``) and ``{project}`` (this source tree).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pipeline.config_schema import PipelineConfig, holds_tables, section_models
from pipeline.errors import UserError

__all__ = ["PROFILES_DIR", "PROJECT_DIR", "ConfigError", "PipelineConfig", "config_from_dict", "load_config"]

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
# Overrides set where the pipeline runs (an Airflow worker) without editing its DAG file: ``section.key=value``
# items separated by ";" or new lines, applied after the explicit overrides.
OVERRIDES_ENV = "TAXI_PIPELINE_OVERRIDES"

# What each of pydantic's type errors means, in the words of a profile's author.
_EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
}


class ConfigError(UserError):
    """A user mistake in a profile or an override; the message names the key and says what is expected."""


def _dotted(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as the user writes the key: ``candidates.names[1]``."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """The message for a key no model declares, listing the ones that would have been right."""
    sections = section_models()
    if len(loc) == 1:
        return f"unknown section [{loc[0]}]; known sections: {', '.join(sorted(sections))}"
    section, key = str(loc[0]), _dotted(loc[1:])
    known = sections[section].model_fields if section in sections else {}
    return f"unknown key '{section}.{key}'; known keys in [{section}]: {', '.join(sorted(known))}"


def _error_message(error: ErrorDetails) -> str:
    """One line: the key, then what is expected and what was given (a rule's own message says both)."""
    if error["type"] == "extra_forbidden":
        return _unknown_key(error["loc"])
    expected = _EXPECTED.get(error["type"])
    text = f"{expected}, got {error['input']!r}" if expected else error["msg"]
    return f"{_dotted(error['loc'])}: {text}"


def _validated(validate: Callable[[], PipelineConfig], source: str) -> PipelineConfig:
    """Runs one validation; its first error becomes a one-line ConfigError that names the source and the key."""
    try:
        return validate()
    except ValidationError as error:
        raise ConfigError(f"{source}: {_error_message(error.errors(include_url=False)[0])}") from None


def _values_set(validate: Callable[[], PipelineConfig], source: str) -> dict[str, Any]:
    """What one source sets, validated, without the defaults validation filled in: those must not undo what an
    earlier source set."""
    return _validated(validate, source).model_dump(exclude_unset=True)


def _check_section(name: str, source: str) -> None:
    """``profile`` and ``home`` are fields too, but not sections a profile table or ``--set`` may name."""
    if name not in section_models():
        raise ConfigError(f"{source}: {_unknown_key((name,))}")


def _merged(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` laid over ``old``; tables (sections, hyperparameter tables) merge key by key."""
    result = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            value = _merged(result[key], value)
        result[key] = value
    return result


def _nested(path: str, value: Any) -> Any:
    """``a.b.c`` and a value as ``{"a": {"b": {"c": value}}}``: a dotted --set key into a table field."""
    for part in reversed(path.split(".")):
        value = {part: value}
    return value


def profile_path(profile: str) -> Path:
    """A profile name (``local``) from ``pipeline/profiles/``, or a path to a TOML file."""
    candidate = Path(profile)
    path = candidate if candidate.suffix == ".toml" else PROFILES_DIR / f"{profile}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ConfigError(f"profile '{profile}' not found (looked for {path}); known profiles: {known}")
    return path


def _profile_values(path: Path) -> dict[str, Any]:
    """What a profile file sets, validated strictly as TOML values (``train_steps = 'ten'`` is a mistake)."""
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"profile {path}: not valid TOML ({error})") from None
    for name, values in document.items():
        if name == "home":
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{path.name}: '{name}' must be a [section] table")
        _check_section(name, path.name)
    return _values_set(lambda: PipelineConfig.model_validate(document, strict=True), path.name)


def parse_override(text: str, source: str = "--set") -> tuple[str, str, str]:
    """Splits ``section.key=value`` into its parts, or raises a ConfigError that shows the expected form.

    The value is stripped, so ``"tuner.enabled = true"`` reads as it looks (pydantic parses ``" true"`` as no
    boolean).
    """
    name, separator, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not separator or not dot or not section or not key:
        raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. training.train_steps=200")
    return section, key, value.strip()


def _override_values(overrides: Iterable[str], source: str) -> dict[str, Any]:
    """What ``section.key=value`` items set, their text parsed as each field's type (``tuner.enabled=yes``)."""
    text_values: dict[str, Any] = {}
    for text in overrides:
        section, dotted_key, value = parse_override(text, source)
        _check_section(section, source)
        key, _, rest = dotted_key.partition(".")
        if rest and key in section_models()[section].model_fields and not holds_tables(section, key):
            raise ConfigError(f"{source}: '{section}.{key}' is not a table; set it as {section}.{key}=<value>")
        text_values = _merged(text_values, {section: _nested(dotted_key, value)})
    if not text_values:
        return {}
    return _values_set(lambda: PipelineConfig.model_validate_strings(text_values), source)


def environment_overrides(environment: Mapping[str, str]) -> list[str]:
    """The ``section.key=value`` items of ``TAXI_PIPELINE_OVERRIDES``, split at ";" and new lines."""
    items = environment.get(OVERRIDES_ENV, "").replace("\n", ";").split(";")
    return [item.strip() for item in items if item.strip()]


def _shortcut_values(home: str | None, data_root: str | None) -> dict[str, Any]:
    """The command line's ``--home`` and ``--data-root``: the settings users change most, over the profile."""
    values: dict[str, Any] = {}
    if home is not None:
        values["home"] = home
    if data_root is not None:
        values["data"] = {"root": data_root}
    return values


def _resolved_home(home: str) -> str:
    """A local home as an absolute path, so that ``{home}`` means the same folder from any working directory."""
    return home if home.startswith("gs://") else str(Path(home).expanduser().resolve())


def _expand(value: Any, placeholders: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in placeholders.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, tuple):
        return tuple(_expand(item, placeholders) for item in value)
    return value


def _with_placeholders(config: PipelineConfig) -> PipelineConfig:
    """``{home}`` and ``{project}`` replaced in every section's strings and lists (hyperparameters have none)."""
    placeholders = {"home": config.home.rstrip("/"), "project": str(PROJECT_DIR)}
    values = config.model_dump()
    for section in section_models():
        values[section] = {key: _expand(value, placeholders) for key, value in values[section].items()}
    return _validated(lambda: PipelineConfig.model_validate(values, strict=True), "config")


def load_config(
    profile: str = "local",
    overrides: Iterable[str] = (),
    home: str | None = None,
    data_root: str | None = None,
    *,
    environment: Mapping[str, str] | None = None,
) -> PipelineConfig:
    """Builds the config: schema defaults, then the profile file, then ``--set`` overrides, then the overrides in
    ``environment``'s ``TAXI_PIPELINE_OVERRIDES`` when given, then ``home`` and ``data_root``, then placeholders.

    ``home`` (local folder or ``gs://`` prefix) and ``data_root`` are the command line's shortcuts for the
    settings users change most; they win over the profile. Each source is validated on its own, so a mistake
    names the file or ``--set``; tables merge key by key across sources.
    """
    values: dict[str, Any] = {"profile": profile}
    values = _merged(values, _profile_values(profile_path(profile)))
    values = _merged(values, _override_values(overrides, "--set"))
    if environment is not None:
        values = _merged(values, _override_values(environment_overrides(environment), OVERRIDES_ENV))
    values = _merged(values, _shortcut_values(home, data_root))
    values["home"] = _resolved_home(values.get("home", PipelineConfig.model_fields["home"].default))
    return _with_placeholders(_validated(lambda: PipelineConfig.model_validate(values, strict=True), "config"))


def config_from_dict(values: Mapping[str, Any]) -> PipelineConfig:
    """Rebuilds a resolved config from ``to_dict()`` output (e.g. the copy saved with a run)."""
    return _validated(lambda: PipelineConfig.model_validate(values, strict=True), "saved config")
