"""Two runs side by side: their resolved configs key by key, with "only the differences" one filter away."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pipeline import names
from runs import contexts


@dataclasses.dataclass(frozen=True)
class ConfigRow:
    key: str  # "training.train_steps"
    left: str
    right: str

    @property
    def differs(self) -> bool:
        return self.left != self.right


def flatten(config_json: str) -> dict[str, str]:
    """A resolved config's JSON as ``{"section.key": value as text}``; tables flatten into dotted keys too."""
    result: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in sorted(value.items()):
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            result[prefix] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    walk("", json.loads(config_json or "{}"))
    return result


def config_rows(left_json: str, right_json: str) -> list[ConfigRow]:
    """Every key of either config, with each side's value ("" where a side has none)."""
    left, right = flatten(left_json), flatten(right_json)
    return [ConfigRow(key, left.get(key, ""), right.get(key, "")) for key in sorted(left.keys() | right.keys())]


def run_config_json(store: Any, run_id: str, pipeline_name: str | None = None) -> str:
    """The resolved config a local run recorded on its context; "" when it recorded none (an Airflow run)."""
    context = contexts.find_run(store, run_id, pipeline_name)
    value = context.custom_properties.get(names.RUN_CONFIG) if context is not None else None
    return value.string_value if value is not None else ""


def previous_run_id(store: Any, pipeline_name: str, run_id: str) -> str:
    """The run of the same pipeline created just before ``run_id`` (a query per layout); "" for the first."""
    context = contexts.find_run(store, run_id, pipeline_name)
    condition = f"create_time_since_epoch < {context.create_time_since_epoch}" if context is not None else ""
    earlier = contexts.list_runs(store, pipeline_name, condition, limit=1)
    return contexts.run_id_of(earlier[0]) if earlier else ""
