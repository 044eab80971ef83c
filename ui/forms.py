"""The New run form, built from the config schema: one typed field per setting a local run uses.

Each field shows the value the run would get (the profile's, a previous run's, or the run being cloned) beside the
profile's default. Submitting turns only the fields that differ from the profile into ``--set section.key=value``
overrides, so a new run is the same command a person would type, and the overrides are checked by the same
config loader before anything starts.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any

from pipeline.config import PipelineConfig, load_config
from pipeline.config_schema import section_models

# The sections a local run uses, in the order the form shows them. The rest (metadata store, container image,
# Kubeflow, Vertex, Airflow) describe other places to run, so they are not a run's parameters here.
FORM_SECTIONS = ("data", "training", "candidates", "tuner", "evaluation", "pipeline", "schema", "serving", "beam")
# Settings that name this installation rather than a run: changing them from the form would start a different
# pipeline (another name or root) or push somewhere else.
NOT_RUN_PARAMETERS = {("pipeline", "name"), ("pipeline", "root"), ("pipeline", "runtime_parameters")}
TABLE = "table"


@dataclasses.dataclass(frozen=True)
class FormField:
    name: str  # "training.train_steps": the --set key and the input's name
    kind: str  # "integer", "number", "boolean", "text", "list" (comma-separated) or "table" (JSON)
    value: str  # as the input shows it
    default: str  # the profile's value, as text

    @property
    def changed(self) -> bool:
        return self.value != self.default


def fields(profile: PipelineConfig, values: PipelineConfig | None = None) -> list[FormField]:
    """The form's fields, showing ``values`` (default: the profile's own), in section order."""
    values = values or profile
    result = []
    for section in FORM_SECTIONS:
        model = section_models()[section]
        for key, info in model.model_fields.items():
            if (section, key) in NOT_RUN_PARAMETERS:
                continue
            kind = _kind(info.annotation)
            shown = _text(getattr(getattr(values, section), key), kind)
            default = _text(getattr(getattr(profile, section), key), kind)
            result.append(FormField(f"{section}.{key}", kind, shown, default))
    return result


def overrides(profile: PipelineConfig, form: Mapping[str, str]) -> list[str]:
    """The ``section.key=value`` overrides that make the profile's config into what the form says.

    A boolean field is a checkbox (absent means false); a table field is JSON whose leaves become dotted keys.
    """
    result = []
    for field in fields(profile):
        if field.kind == "boolean":
            text = "true" if form.get(field.name) in ("true", "on") else "false"
        else:
            text = form.get(field.name, field.default).strip()
        if text == field.default:
            continue
        if field.kind == TABLE:
            result += _table_overrides(field.name, text, field.default)
        else:
            result.append(f"{field.name}={text}")
    return result


def check(profile_name: str, home: str, items: list[str]) -> PipelineConfig:
    """The config the overrides give, loaded as ``taxi-pipeline run`` will load it (a ConfigError if wrong)."""
    return load_config(profile_name, items, home=home)


def _kind(annotation: Any) -> str:
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    origin = typing.get_origin(base)
    if origin is tuple:
        return "list"
    if origin is not None and issubclass(origin, Mapping):
        return TABLE
    return {int: "integer", float: "number", bool: "boolean"}.get(base, "text")


def _text(value: Any, kind: str) -> str:
    if kind == "list":
        return ", ".join(str(item) for item in value)
    if kind == TABLE:
        return json.dumps(_plain(value), sort_keys=True)
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _table_overrides(name: str, text: str, default: str) -> list[str]:
    """``{"dnn": {"dropout": 0.2}}`` as ``name.dnn.dropout=0.2``, for each leaf that differs from the default."""
    try:
        table = json.loads(text or "{}")
        old = json.loads(default or "{}")
    except json.JSONDecodeError as error:
        return [f"{name}={text!r} is not valid JSON ({error.msg})"]  # the loader names the key and the problem
    items = []
    for candidate, values in table.items() if isinstance(table, dict) else []:
        for key, value in values.items() if isinstance(values, dict) else []:
            if old.get(candidate, {}).get(key) != value:
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                items.append(f"{name}.{candidate}.{key}={shown}")
    return items
