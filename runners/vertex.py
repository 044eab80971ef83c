"""Vertex AI Pipelines: submit a compiled spec (``runners.kubeflow.compile_spec``) as a ``PipelineJob``, optionally
wait for it, or create a Vertex pipeline schedule that starts one on a cron.

Only ``google-cloud-aiplatform`` and ``google-auth`` are imported here, never TensorFlow: submitting a spec that
was already compiled takes seconds, and the Composer DAG that schedules Vertex runs uses this module too.
Problems the user can fix (no credentials, no project, an unreachable API) raise ``UserError`` with one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

PLACEHOLDER_PROJECTS = {"", "your-project"}


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """``key=value`` labels; Vertex allows lowercase letters, digits, ``-`` and ``_`` (keys start with a letter)."""
    labels = {}
    for item in items:
        key, separator, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if (
            not separator
            or not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key)
            or not re.fullmatch(r"[a-z0-9_-]{0,63}", value)
        ):
            raise UserError(f"label {item!r}: expected key=value with lowercase letters, digits, - or _ (e.g. team=ml)")
        labels[key] = value
    return labels


def check_project(project: str) -> None:
    """A UserError unless ``project`` names a Google Cloud project (not empty, not the profiles' placeholder)."""
    if project in PLACEHOLDER_PROJECTS:
        raise UserError("no Google Cloud project: pass --project PROJECT_ID or set vertex.project in the profile")


def _credentials(credentials: Any | None) -> Any:
    if credentials is not None:
        return credentials
    import google.auth
    from google.auth import exceptions

    try:
        found, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except exceptions.DefaultCredentialsError:
        raise UserError(
            "no Google Cloud credentials found: run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        ) from None
    return found


def submit(
    spec_path: str | Path,
    *,
    project: str,
    region: str,
    parameters: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    service_account: str = "",
    display_name: str | None = None,
    enable_caching: bool | None = None,
    schedule: str | None = None,
    wait: bool = False,
    api_endpoint: str | None = None,
    credentials: Any | None = None,
) -> str:
    """Creates a Vertex AI pipeline job from the compiled spec (or, with ``schedule``, a schedule of them).

    Args:
        spec_path: the compiled spec (``runners.kubeflow.compile_spec`` with target "vertex").
        project, region: where the job runs; the project must not be the profiles' placeholder.
        parameters: runtime parameter values (``runners.kubeflow.parse_parameters``).
        labels: labels put on the job (``parse_labels``).
        service_account: the account the steps run as; the project's default when empty.
        display_name: the job's name in the console; from the spec's file name when None.
        enable_caching: False forces every step to run; None keeps the spec's setting.
        schedule: a cron expression: create a Vertex pipeline schedule instead of one job.
        wait: block until the job ends (a failed job raises RuntimeError).
        api_endpoint: another Vertex API endpoint (a private one, or a local stand-in in tests); the REST
            transport is used so that works over plain HTTP.
        credentials: Google credentials; Application Default Credentials when None.

    Returns:
        The resource name of the job or schedule. Problems the user can fix are one-line UserErrors.
    """
    check_project(project)
    if not region:
        raise UserError("no region: pass --region (e.g. us-central1) or set vertex.region in the profile")
    if not Path(spec_path).is_file():
        raise UserError(f"compiled pipeline {spec_path} not found; create it with `taxi-pipeline compile`")
    credentials = _credentials(credentials)

    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import aiplatform

    aiplatform.init(
        project=project,
        location=region,
        credentials=credentials,
        api_endpoint=api_endpoint,
        api_transport="rest",
    )
    display_name = display_name or Path(spec_path).stem.replace("_", "-")
    try:
        job = aiplatform.PipelineJob(
            display_name=display_name,
            template_path=str(spec_path),
            parameter_values=dict(parameters or {}),
            labels=dict(labels or {}),
            enable_caching=enable_caching,
            project=project,
            location=region,
            credentials=credentials,
        )
        if schedule:
            created = job.create_schedule(
                cron=schedule,
                display_name=f"{display_name}-schedule",
                service_account=service_account or None,
            )
            return created.resource_name
        job.submit(service_account=service_account or None)
        if wait:
            job.wait()
        return job.resource_name
    except auth_exceptions.GoogleAuthError as error:
        raise UserError(
            f"Google Cloud refused the credentials ({_first_line(error)}): run "
            "`gcloud auth application-default login` or check GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    except api_exceptions.GoogleAPICallError as error:
        raise UserError(f"Vertex AI answered {error.code}: {_first_line(error.message)}") from None
    except api_exceptions.RetryError as error:
        raise UserError(f"cannot reach Vertex AI in {region} ({_first_line(error)}); check --region") from None
    except OSError as error:  # requests' ConnectionError is an OSError
        raise UserError(f"cannot reach Vertex AI in {region} ({_first_line(error)}); check the network") from None


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
