"""One typed configuration object for the whole pipeline, loaded from a profile file plus ``--set`` overrides.

Every component setting (paths, split, training steps, thresholds, tuner budget, Beam args, MLMD connection,
serving directory) comes from here; runners choose a profile, never branch on where they run. Profiles are TOML
files in ``pipeline/profiles/`` (or any path to one) whose tables mirror the sections below. Strings may use two
placeholders: ``{home}`` (the installation's home folder, ``--home``) and ``{project}`` (this source tree).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from models import features
from pipeline.errors import UserError

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class ConfigError(UserError):
    """A user mistake in a profile or an override; the message names the key and says what is expected."""


@dataclasses.dataclass(frozen=True)
class PipelineSection:
    name: str = "taxi"
    root: str = "{home}/pipeline_root"
    enable_cache: bool = True
    # Compiled pipelines (Vertex, Kubeflow) take the data root, the train/eval args and the evaluation config as
    # runtime parameters, so a run can change them without recompiling; their defaults are the values here.
    runtime_parameters: bool = False


@dataclasses.dataclass(frozen=True)
class DataSection:
    root: str = "{project}/data"
    # Hash-bucket split of CsvExampleGen: 4 train buckets to 1 eval bucket is an 80/20 split.
    train_buckets: int = 4
    eval_buckets: int = 1


@dataclasses.dataclass(frozen=True)
class SchemaSection:
    path: str = "{project}/schema/schema.pbtxt"


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    # Batches of ``batch_size`` (a hyperparameter, 256 by default): 300 are ~6 passes over the bundled data's
    # train split. Measured eval AUC (whole eval split) at 300 / 500 steps: wide_and_deep 0.952 / 0.951, dnn
    # 0.954 / 0.951, linear 0.948 / 0.946; at 1,000 the deep ones fell to ~0.93. They overfit beyond a few hundred
    # steps, and each 100 steps cost ~0.4 s per Trainer.
    train_steps: int = 300
    # 0: one pass over the eval split (TFX's meaning of an unset EvalArgs.num_steps); N: at most N batches,
    # repeating the split when it is shorter. The Trainer's eval metrics are logged and kept with the model.
    eval_steps: int = 0


# Evaluator metrics (overall eval split) a winner can be chosen by; higher is better for each.
SELECTION_METRICS = ("auc", "binary_accuracy")


@dataclasses.dataclass(frozen=True)
class CandidatesSection:
    """The candidate models trained side by side on the same transformed data, and how the winner is chosen.

    Names are entries of ``models/candidates.py``. Each candidate trains with its own defaults from there,
    overridden per candidate by ``[candidates.hyperparameters.<name>]`` tables (or ``--set
    candidates.hyperparameters.<name>.<key>=<value>``), and by the tuner's best trial when the tuner is on.
    """

    names: tuple[str, ...] = ("wide_and_deep", "dnn", "linear")
    selection_metric: str = "auc"
    hyperparameters: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TunerSection:
    enabled: bool = False
    max_trials: int = 4
    train_steps: int = 300
    eval_steps: int = 0  # as training.eval_steps: 0 scores each trial on the whole eval split once
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class EvaluationSection:
    # A model is blessed only if its AUC on the eval split is at least this...
    min_auc: float = 0.7
    # ...and at most this much below the last blessed model's AUC (0 means: must not be worse at all).
    max_auc_regression: float = 0.01
    # Metrics are also computed per value of each of these features. Each one costs every Evaluator about as
    # much again as the overall metrics' per-example work (measured: ~1 s per feature per candidate on the
    # bundled data).
    slice_features: tuple[str, ...] = features.SLICE_FEATURES


@dataclasses.dataclass(frozen=True)
class ServingSection:
    model_name: str = "taxi"
    directory: str = "{home}/serving"


@dataclasses.dataclass(frozen=True)
class BeamSection:
    # Beam's plain "DirectRunner" first tries the Prism runner, which downloads a binary from GitHub on every
    # pipeline; FnApiRunner is the in-process runner it falls back to. --setup_file ships this package to remote
    # workers (Dataflow) and stops TFX from building an sdist of itself for every Beam step; in-process runners
    # ignore it.
    args: tuple[str, ...] = ("--runner=FnApiRunner", "--setup_file={project}/setup.py")


@dataclasses.dataclass(frozen=True)
class MetadataSection:
    # Local SQLite ML Metadata store; empty on orchestrators that bring their own (Vertex, Kubeflow).
    sqlite_path: str = "{home}/metadata.sqlite"
    # A MySQL ML Metadata store instead (Airflow/Composer); used when mysql_host is set. The password is read at
    # run time from the environment variable named here, never stored in a profile.
    mysql_host: str = ""
    mysql_port: int = 3306
    mysql_database: str = "mlmd"
    mysql_user: str = ""
    mysql_password_env: str = "MLMD_MYSQL_PASSWORD"


@dataclasses.dataclass(frozen=True)
class ContainerSection:
    # The image every step of a compiled pipeline (Vertex, Kubeflow) runs in: the official TFX image plus this
    # package (see the Dockerfile). Build and push it, then set this to where you pushed it.
    image: str = "gcr.io/tfx-oss-public/tfx:1.16.0"


@dataclasses.dataclass(frozen=True)
class KubeflowSection:
    # The Kubeflow Pipelines API endpoint `taxi-pipeline submit --runner kubeflow` sends runs to (or --host).
    host: str = ""
    experiment: str = "taxi"


@dataclasses.dataclass(frozen=True)
class VertexSection:
    project: str = ""
    region: str = "us-central1"
    # Service account the pipeline's steps run as; empty means the project's Compute Engine default.
    service_account: str = ""
    # key=value labels put on every pipeline job (cost reports group by them).
    labels: tuple[str, ...] = ()
    # Switch: run Trainer (and Tuner) as Vertex AI Training custom jobs on these machines.
    training: bool = False
    training_machine_type: str = "n1-standard-8"
    training_accelerator_type: str = ""
    training_accelerator_count: int = 0
    # Switch: push blessed models to the Vertex AI Model Registry and deploy them to an endpoint.
    push_to_endpoint: bool = False
    endpoint_name: str = "taxi"
    serving_image: str = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-16:latest"
    serving_machine_type: str = "n1-standard-2"


@dataclasses.dataclass(frozen=True)
class AirflowSection:
    # Cron expression or preset (@daily); empty means runs are only triggered by hand.
    schedule: str = "@daily"
    start_date: str = "2024-01-01"
    retries: int = 2
    retry_delay_minutes: int = 5


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The resolved configuration of one pipeline installation."""

    profile: str = "local"
    home: str = "pipeline_home"
    pipeline: PipelineSection = PipelineSection()
    data: DataSection = DataSection()
    schema: SchemaSection = SchemaSection()
    training: TrainingSection = TrainingSection()
    candidates: CandidatesSection = CandidatesSection()
    tuner: TunerSection = TunerSection()
    evaluation: EvaluationSection = EvaluationSection()
    serving: ServingSection = ServingSection()
    beam: BeamSection = BeamSection()
    metadata: MetadataSection = MetadataSection()
    container: ContainerSection = ContainerSection()
    kubeflow: KubeflowSection = KubeflowSection()
    vertex: VertexSection = VertexSection()
    airflow: AirflowSection = AirflowSection()

    @property
    def log_dir(self) -> str:
        return str(Path(self.home) / "logs")

    @property
    def serving_model_dir(self) -> str:
        """Where the Pusher writes versions: ``<serving dir>/<model name>/<version>/`` (TF Serving's layout)."""
        return f"{self.serving.directory.rstrip('/')}/{self.serving.model_name}"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(PipelineConfig)
    return {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}


def _coerce(key: str, raw: Any, expected: Any) -> Any:
    """Converts a TOML value or an override string to the field's declared type, or raises a ConfigError."""
    origin = typing.get_origin(expected)
    if origin is Mapping:
        return _coerce_hyperparameter_tables(key, raw)
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(expected)
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("["):
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{key}: {raw!r} is not a valid list ({error.msg})") from None
            else:
                raw = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"{key}: expected a list of {item_type.__name__}, got {raw!r}")
        return tuple(_coerce(f"{key}[{index}]", item, item_type) for index, item in enumerate(raw))
    if expected is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"true", "yes", "on", "1", "false", "no", "off", "0"}:
            return raw.strip().lower() in {"true", "yes", "on", "1"}
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if expected is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {raw!r}")
    if expected is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {raw!r}")
    if expected is str:
        if isinstance(raw, str):
            return raw
        raise ConfigError(f"{key}: expected a string, got {raw!r}")
    raise TypeError(f"unsupported config field type {expected!r} for {key}")  # a bug in this module, not user input


def _coerce_hyperparameter_tables(key: str, raw: Any) -> dict[str, dict[str, Any]]:
    """``{candidate: {hyperparameter: value}}``, checked against ``models/candidates.py`` and the
    ``Hyperparameters`` fields (neither imports TensorFlow), with each value coerced to its field's type."""
    from models.candidates import CANDIDATES
    from models.hyperparameters import field_types

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: expected tables of hyperparameters per candidate, got {raw!r}")
    types = field_types()
    tables: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        if name not in CANDIDATES:
            raise ConfigError(f"{key}: unknown candidate '{name}'; known candidates: {', '.join(sorted(CANDIDATES))}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{key}.{name}: expected a table of hyperparameters, got {values!r}")
        unknown = [field for field in values if field not in types]
        if unknown:
            raise ConfigError(f"{key}.{name}: unknown hyperparameter '{unknown[0]}'; known: {', '.join(sorted(types))}")
        tables[name] = {field: _coerce(f"{key}.{name}.{field}", value, types[field]) for field, value in values.items()}
    return tables


def _nested(path: str, value: Any) -> Any:
    """``a.b.c`` and a value as ``{"a": {"b": {"c": value}}}``: a dotted --set key into a mapping field."""
    for part in reversed(path.split(".")):
        value = {part: value}
    return value


def _merged(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            value = _merged(result[key], value)
        result[key] = value
    return result


def _apply(config: PipelineConfig, section: str, values: Mapping[str, Any], source: str) -> PipelineConfig:
    sections = _section_types()
    if section not in sections:
        raise ConfigError(f"{source}: unknown section [{section}]; known sections: {', '.join(sorted(sections))}")
    section_type = sections[section]
    hints = typing.get_type_hints(section_type)
    current = getattr(config, section)
    changes: dict[str, Any] = {}
    for dotted_key, raw in values.items():
        key, _, rest = dotted_key.partition(".")
        if key not in hints:
            raise ConfigError(
                f"{source}: unknown key '{section}.{key}'; known keys in [{section}]: {', '.join(sorted(hints))}"
            )
        if typing.get_origin(hints[key]) is Mapping:
            # Tables merge into what the profile or an earlier override set, key by key.
            table = _nested(rest, raw) if rest else raw
            base = changes.get(key, getattr(current, key))
            changes[key] = _merged(base, _coerce(f"{source}: {section}.{key}", table, hints[key]))
        elif rest:
            raise ConfigError(f"{source}: '{section}.{key}' is not a table; set it as {section}.{key}=<value>")
        else:
            changes[key] = _coerce(f"{source}: {section}.{key}", raw, hints[key])
    return dataclasses.replace(config, **{section: dataclasses.replace(current, **changes)})


def _check_steps(config: PipelineConfig) -> None:
    """Step counts TFX would only reject (or read as "unset") inside a running Trainer."""
    for section, steps in (("training", config.training), ("tuner", config.tuner)):
        if steps.train_steps < 1:
            raise ConfigError(f"{section}.train_steps: expected at least 1, got {steps.train_steps}")
        if steps.eval_steps < 0:
            raise ConfigError(
                f"{section}.eval_steps: expected 0 (the whole eval split) or more, got {steps.eval_steps}"
            )


def _check_candidates(config: PipelineConfig) -> None:
    """The cross-field rules of ``[candidates]`` that a type alone cannot express."""
    from models.candidates import CANDIDATES

    names = config.candidates.names
    if not names:
        raise ConfigError("candidates.names: list at least one candidate model")
    for name in names:
        if name not in CANDIDATES:
            raise ConfigError(
                f"candidates.names: unknown candidate '{name}'; known candidates: {', '.join(sorted(CANDIDATES))}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"candidates.names: a candidate is listed twice in {list(names)}")
    if config.candidates.selection_metric not in SELECTION_METRICS:
        raise ConfigError(
            f"candidates.selection_metric: expected one of {', '.join(SELECTION_METRICS)}, "
            f"got {config.candidates.selection_metric!r}"
        )


def profile_path(profile: str) -> Path:
    """A profile name (``local``) from ``pipeline/profiles/``, or a path to a TOML file."""
    candidate = Path(profile)
    path = candidate if candidate.suffix == ".toml" else PROFILES_DIR / f"{profile}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ConfigError(f"profile '{profile}' not found (looked for {path}); known profiles: {known}")
    return path


def parse_override(text: str) -> tuple[str, str, str]:
    """Splits ``section.key=value`` into its parts, or raises a ConfigError that shows the expected form."""
    name, separator, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not separator or not dot or not section or not key:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. training.train_steps=200")
    return section, key, value


def _expand(value: Any, placeholders: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in placeholders.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, tuple):
        return tuple(_expand(item, placeholders) for item in value)
    return value


def _expand_placeholders(config: PipelineConfig) -> PipelineConfig:
    placeholders = {"home": config.home.rstrip("/"), "project": str(PROJECT_DIR)}
    replaced = {}
    for section in _section_types():
        current = getattr(config, section)
        changes = {
            field.name: _expand(getattr(current, field.name), placeholders) for field in dataclasses.fields(current)
        }
        replaced[section] = dataclasses.replace(current, **changes)
    return dataclasses.replace(config, **replaced)


def load_config(
    profile: str = "local",
    overrides: Iterable[str] = (),
    home: str | None = None,
    data_root: str | None = None,
) -> PipelineConfig:
    """Builds the config: dataclass defaults, then the profile file, then ``--set`` overrides, then placeholders.

    ``home`` (local folder or ``gs://`` prefix) and ``data_root`` are the command line's shortcuts for the
    settings users change most; they win over the profile.
    """
    path = profile_path(profile)
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"profile {path}: not valid TOML ({error})") from None

    config = PipelineConfig(profile=profile)
    profile_home = document.pop("home", None)
    if profile_home is not None:
        config = dataclasses.replace(config, home=_coerce(f"{path.name}: home", profile_home, str))
    for section, values in document.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path.name}: '{section}' must be a [section] table")
        config = _apply(config, section, values, path.name)
    for text in overrides:
        section, key, value = parse_override(text)
        config = _apply(config, section, {key: value}, "--set")
    if home is not None:
        config = dataclasses.replace(config, home=home)
    if data_root is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=data_root))
    if not config.home.startswith("gs://"):
        config = dataclasses.replace(config, home=str(Path(config.home).expanduser().resolve()))
    _check_steps(config)
    _check_candidates(config)
    return _expand_placeholders(config)


def config_from_dict(values: Mapping[str, Any]) -> PipelineConfig:
    """Rebuilds a resolved config from ``to_dict()`` output (e.g. the copy saved with a run)."""
    config = PipelineConfig(profile=values.get("profile", "local"), home=values.get("home", "pipeline_home"))
    for section in _section_types():
        if section in values:
            config = _apply(config, section, values[section], "saved config")
    return config
