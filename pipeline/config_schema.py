"""What a valid pipeline configuration is: one frozen pydantic model per profile section, and the rules values meet.

Loading (profile files, ``--set`` overrides, placeholders, the messages users see) is ``pipeline/config.py``'s
job; this module only describes the values. The loader validates TOML values strictly (``strict=True``: a TOML
value of the wrong type is a mistake, ``train_steps = true`` is not 1) and ``--set`` text as string data
(``model_validate_strings``: ``42``, ``0.5``, ``true``/``yes``/``on``/``1`` parse as the field's type). A list
field also takes text: ``a,b`` or a JSON list. A rule a value breaks raises a ``PydanticCustomError`` whose message
is the one users read.
"""

from __future__ import annotations

import json
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from models import features
from models.candidates import CANDIDATES
from models.hyperparameters import field_types

# Evaluator metrics (overall eval split) a winner can be chosen by; higher is better for each.
SELECTION_METRICS = ("auc", "binary_accuracy")


def _list_from_text(value: Any, info: ValidationInfo) -> Any:
    """A list field's value as a tuple, which strict validation requires: a TOML array, or ``--set`` text
    (``linear,dnn``, or JSON such as ``["--runner=FnApiRunner"]``). Text in a TOML file stays a mistake."""
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, str) or info.mode != "string":
        return value
    text = value.strip()
    if not text.startswith("["):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        return tuple(json.loads(text))
    except json.JSONDecodeError as error:
        raise PydanticCustomError(
            "list_text", "{text} is not a valid list ({reason})", {"text": repr(value), "reason": error.msg}
        ) from None


_AS_LIST = BeforeValidator(_list_from_text)


def _with_list_text(hint: Any) -> Any:
    """A hyperparameter's declared type, taking list text too where it is a tuple."""
    return Annotated[hint, _AS_LIST] if typing.get_origin(hint) is tuple else hint


def _unknown_candidate(name: Any) -> PydanticCustomError:
    return PydanticCustomError(
        "unknown_candidate",
        "unknown candidate {name}; known candidates: {known}",
        {"name": repr(name), "known": ", ".join(sorted(CANDIDATES))},
    )


def _known_hyperparameters(values: Any) -> Any:
    """Names the unknown key itself (pydantic's "extra inputs" error would not list the known ones)."""
    known = field_types()
    unknown = [key for key in values if key not in known] if isinstance(values, Mapping) else []
    if unknown:
        raise PydanticCustomError(
            "unknown_hyperparameter",
            "unknown hyperparameter {name}; known: {known}",
            {"name": repr(unknown[0]), "known": ", ".join(sorted(known))},
        )
    return values


def _known_candidates(tables: Any) -> Any:
    """Tables are keyed by entries of ``models/candidates.py``; a typo would otherwise be silently unused."""
    for name in tables if isinstance(tables, Mapping) else ():
        if name not in CANDIDATES:
            raise _unknown_candidate(name)
    return tables


def _hyperparameter_table() -> Any:
    """One candidate's ``{hyperparameter: value}`` table: any of the ``Hyperparameters`` fields, each validated as
    its declared type (``models/hyperparameters.py``, which imports no TensorFlow), kept as a plain dict."""
    fields = {name: _with_list_text(hint) for name, hint in field_types().items()}
    table = with_config(ConfigDict(extra="forbid"))(TypedDict("HyperparameterTable", fields, total=False))
    return Annotated[table, BeforeValidator(_known_hyperparameters)]


HyperparameterTable = _hyperparameter_table()


class _Section(BaseModel):
    """A ``[section]`` of a profile: frozen, and a key it does not declare is a mistake, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PipelineSection(_Section):
    name: str = "taxi"
    root: str = "{home}/pipeline_root"
    enable_cache: bool = True
    # Compiled pipelines (Vertex, Kubeflow) take the data root, the train/eval args and the evaluation config as
    # runtime parameters, so a run can change them without recompiling; their defaults are the values here.
    runtime_parameters: bool = False


class DataSection(_Section):
    root: str = "{project}/data"
    # Switch (vertex, kubeflow and composer profiles): read the trips with this BigQuery query instead of the CSV
    # files under ``root``, through TFX's BigQueryExampleGen (its Google Cloud extension); the same splits and
    # everything downstream. Its columns must be the CSV's (models/features.py). Local runs refuse it.
    bigquery_query: str = ""
    # Hash-bucket split of CsvExampleGen: 4 train buckets to 1 eval bucket is an 80/20 split.
    train_buckets: int = 4
    eval_buckets: int = 1


class SchemaSection(_Section):
    path: str = "{project}/schema/schema.pbtxt"


def _at_least(bound: float, error: str, message: str) -> Any:
    """A field validator refusing values below ``bound`` with ``message`` (``{value}`` is the value given).

    One rule for every lower bound of the config, each with its own message: pydantic's ``Field(ge=...)`` would
    say only "Input should be greater than or equal to 1", without what the bound means.
    """

    def check(cls: type, value: Any) -> Any:
        if value < bound:
            raise PydanticCustomError(error, message, {"value": value})
        return value

    return classmethod(check)


class _StepsSection(_Section):
    """Step counts that TFX would only reject (or read as "unset") inside a running Trainer, checked up front."""

    _at_least_one_step = field_validator("train_steps", check_fields=False)(
        _at_least(1, "too_few_steps", "expected at least 1, got {value}")
    )
    _no_negative_eval_steps = field_validator("eval_steps", check_fields=False)(
        _at_least(0, "negative_steps", "expected 0 (the whole eval split) or more, got {value}")
    )


class TrainingSection(_StepsSection):
    # Batches of ``batch_size`` (a hyperparameter, 256 by default): 300 are ~6 passes over the bundled data's
    # train split. Measured eval AUC (whole eval split) at 300 / 500 steps: wide_and_deep 0.952 / 0.951, dnn
    # 0.954 / 0.951, linear 0.948 / 0.946; at 1,000 the deep ones fell to ~0.93. They overfit beyond a few hundred
    # steps, and each 100 steps cost ~0.4 s per Trainer.
    train_steps: int = 300
    # 0: one pass over the eval split (TFX's meaning of an unset EvalArgs.num_steps); N: at most N batches,
    # repeating the split when it is shorter. The Trainer's eval metrics are logged and kept with the model.
    eval_steps: int = 0
    # For big data, whole passes over the train split instead of a step count: 0 (the default) trains
    # ``train_steps`` batches; E > 0 makes each Trainer count its train split's examples and train
    # ceil(E x examples / batch_size) batches (``train_steps`` is then not used). 1.5M trips, batch 256: 1 epoch
    # = 4,688 steps. Counting reads the split once (docs/ARCHITECTURE.md has the cost).
    epochs: float = 0.0

    _no_negative_epochs = field_validator("epochs")(
        _at_least(0, "negative_epochs", "expected 0 (train_steps decides) or more, got {value}")
    )


class CandidatesSection(_Section):
    """The candidate models trained side by side on the same transformed data, and how the winner is chosen.

    Names are entries of ``models/candidates.py``. Each candidate trains with its own defaults from there,
    overridden per candidate by ``[candidates.hyperparameters.<name>]`` tables (or ``--set
    candidates.hyperparameters.<name>.<key>=<value>``), and by the tuner's best trial when the tuner is on.
    """

    names: Annotated[tuple[str, ...], _AS_LIST] = ("wide_and_deep", "dnn", "linear")
    selection_metric: str = "auc"
    hyperparameters: Annotated[Mapping[str, HyperparameterTable], BeforeValidator(_known_candidates)] = Field(
        default_factory=dict
    )

    @field_validator("names")
    @classmethod
    def _known_names_once(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Each name becomes a Trainer of its own: an unknown one fails late, a repeated one twice."""
        if not names:
            raise PydanticCustomError("no_candidates", "list at least one candidate model")
        for name in names:
            if name not in CANDIDATES:
                raise _unknown_candidate(name)
        if len(set(names)) != len(names):
            raise PydanticCustomError(
                "repeated_candidate", "a candidate is listed twice in {names}", {"names": repr(list(names))}
            )
        return names

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in SELECTION_METRICS:
            raise PydanticCustomError(
                "unknown_metric",
                "expected one of {known}, got {metric}",
                {"known": ", ".join(SELECTION_METRICS), "metric": repr(metric)},
            )
        return metric


class TunerSection(_StepsSection):
    enabled: bool = False
    max_trials: int = 4
    train_steps: int = 300
    eval_steps: int = 0  # as training.eval_steps: 0 scores each trial on the whole eval split once
    seed: int = 0


class EvaluationSection(_Section):
    # A model is blessed only if its AUC on the eval split is at least this...
    min_auc: float = 0.7
    # ...and at most this much below the last blessed model's AUC (0 means: must not be worse at all).
    max_auc_regression: float = 0.01
    # Metrics are also computed per value of each of these features. Each one costs every Evaluator its slices'
    # metrics and plots (measured at 150,000 trips: the two default features add ~1.6 s to each Evaluator, 6.2 s
    # against 4.6 s without them).
    slice_features: Annotated[tuple[str, ...], _AS_LIST] = features.SLICE_FEATURES


class ServingSection(_Section):
    model_name: str = "taxi"
    directory: str = "{home}/serving"


class BeamSection(_Section):
    # Beam's plain "DirectRunner" first tries the Prism runner, which downloads a binary from GitHub on every
    # pipeline; FnApiRunner is the in-process runner it falls back to. --setup_file ships this package to remote
    # workers (Dataflow) and stops TFX from building an sdist of itself for every Beam step; in-process runners
    # ignore it.
    args: Annotated[tuple[str, ...], _AS_LIST] = ("--runner=FnApiRunner", "--setup_file={project}/setup.py")
    # Local runs on more CSV than this many MB run StatisticsGen and Transform on one worker process per core (the
    # DirectRunner's multi_processing mode; runners/local.py says why only those). 0 (the default): never. On 2
    # cores it does not pay (bench/README.md): at 179 MB (1.5M trips) 274 s against 260 s in-process, with a peak
    # of 2.7 GB instead of 1.5 GB (each worker process imports TensorFlow first: at 2 MB 1.9x the time). It is
    # for machines with more cores, where StatisticsGen and Transform split their input over more workers.
    parallel_above_mb: int = 0


class MetadataSection(_Section):
    # Local SQLite ML Metadata store; empty on orchestrators that bring their own (Vertex, Kubeflow).
    sqlite_path: str = "{home}/metadata.sqlite"
    # A MySQL ML Metadata store instead (Airflow/Composer); used when mysql_host is set. The password is read at
    # run time from the environment variable named here, never stored in a profile.
    mysql_host: str = ""
    mysql_port: int = 3306
    mysql_database: str = "mlmd"
    mysql_user: str = ""
    mysql_password_env: str = "MLMD_MYSQL_PASSWORD"


class ContainerSection(_Section):
    # The image every step of a compiled pipeline (Vertex, Kubeflow) runs in: the official TFX image plus this
    # package (see the Dockerfile). Build and push it, then set this to where you pushed it.
    image: str = "gcr.io/tfx-oss-public/tfx:1.16.0"


class KubeflowSection(_Section):
    # The Kubeflow Pipelines API endpoint `taxi-pipeline submit --runner kubeflow` sends runs to (or --host).
    host: str = ""
    experiment: str = "taxi"


class VertexSection(_Section):
    project: str = ""
    region: str = "us-central1"
    # Service account the pipeline's steps run as; empty means the project's Compute Engine default.
    service_account: str = ""
    # key=value labels put on every pipeline job (cost reports group by them).
    labels: Annotated[tuple[str, ...], _AS_LIST] = ()
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


class AirflowSection(_Section):
    # Cron expression or preset (@daily); empty means runs are only triggered by hand.
    schedule: str = "@daily"
    start_date: str = "2024-01-01"
    # A task that fails (its worker died, a transient error) is run again this many times, this long apart.
    retries: int = 2
    retry_delay_minutes: int = 5
    # How many of the DAG's tasks run at once (the DAG's max_active_tasks): the candidates' Trainer -> Evaluator
    # branches run side by side up to this. Airflow's core.parallelism and the workers' slots cap it too.
    parallelism: int = 4

    _not_negative = field_validator("retries", "retry_delay_minutes")(
        _at_least(0, "negative", "expected 0 or more, got {value}")
    )
    _at_least_one_task = field_validator("parallelism")(
        _at_least(1, "no_parallelism", "expected at least 1 task at a time, got {value}")
    )


# The profile's [schema] table is ``config.schema``; as a field name it hides BaseModel's deprecated ``schema()``
# classmethod, which nothing here calls, and pydantic warns about that once, when the class is made.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class PipelineConfig(BaseModel):
        """The resolved configuration of one pipeline installation."""

        model_config = ConfigDict(frozen=True, extra="forbid")

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
            """Plain JSON values (tuples as lists), keyed by the profile's section and key names."""
            return json.loads(json.dumps(self.model_dump()))

        def to_json(self) -> str:
            """The form saved with every run (ML Metadata, ``runs/<id>/config.json``) and diffed between runs."""
            return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def section_models() -> dict[str, type[BaseModel]]:
    """``{section name: its model}``, as the profile's ``[tables]`` are named."""
    return {
        name: field.annotation
        for name, field in PipelineConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
    }


def holds_tables(section: str, key: str) -> bool:
    """Whether ``section.key`` is a field of tables, which a dotted ``--set`` key may reach into."""
    field = section_models()[section].model_fields.get(key)
    return field is not None and typing.get_origin(field.annotation) is Mapping
