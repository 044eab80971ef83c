"""``taxi-pipeline submit`` against stand-ins for the cloud APIs.

A small HTTP server on 127.0.0.1 (``FakeCloud`` below) stands in for the Vertex AI REST API, the Cloud Storage
JSON API (which the Vertex SDK asks whether the pipeline-root bucket exists) and the Kubeflow Pipelines v2beta1
API; it records every request. The submit code runs unchanged through the real ``google-cloud-aiplatform`` and
``kfp`` clients; only the credentials are a fixed bearer token instead of a Google sign-in. Name lookups of any
other host fail the test, so nothing here can reach the internet.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from cli import main as cli
from runners import kubeflow

JOB = "projects/test-project/locations/europe-west4/pipelineJobs/taxi-1"
SCHEDULE = "projects/test-project/locations/europe-west4/schedules/7"
SERVICE_ACCOUNT = "pipeline-runner@test-project.iam.gserviceaccount.com"


class FakeCloud:
    """Answers the few Vertex AI, Cloud Storage and KFP calls that submitting makes, and records them."""

    def __init__(self):
        self.requests: list[dict] = []
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                request = {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "headers": {key.lower(): value for key, value in self.headers.items()},
                    "body": json.loads(raw) if raw else None,
                }
                cloud.requests.append(request)
                status, answer = cloud.answer(request)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request):
        method, path, body = request["method"], request["path"], request["body"]
        if method == "POST" and path.endswith("/pipelineJobs"):
            return 200, {**body, "name": JOB, "state": "PIPELINE_STATE_PENDING"}
        if method == "GET" and path.endswith(JOB):
            return 200, {"name": JOB, "state": "PIPELINE_STATE_SUCCEEDED"}
        if method == "POST" and path.endswith("/schedules"):
            return 200, {**body, "name": SCHEDULE, "state": "ACTIVE"}
        if path.startswith("/storage/v1/b"):  # the bucket does not exist yet: created, then shared
            if method == "GET" and path.endswith("/iam"):
                return 200, {"bindings": [], "etag": "CAE="}
            if method == "GET":
                return 404, {"error": {"code": 404, "message": "no such bucket"}}
            return 200, {**(body or {}), "name": "test-bucket"}
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == "/apis/v2beta1/experiments":
            return 200, {"experiments": []}
        if method == "POST" and path == "/apis/v2beta1/experiments":
            return 200, {**body, "experiment_id": "exp-1"}
        if method == "POST" and path == "/apis/v2beta1/runs":
            return 200, {**body, "run_id": "run-1", "state": "PENDING"}
        if method == "POST" and path == "/apis/v2beta1/recurringruns":
            return 200, {**body, "recurring_run_id": "recurring-1"}
        return 404, {"error": {"code": 404, "message": f"unexpected {method} {path}"}}

    def find(self, method, suffix):
        return [r for r in self.requests if r["method"] == method and r["path"].endswith(suffix)]


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """No name lookups except localhost; no Google sign-in state from the machine running the tests."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        assert host in ("127.0.0.1", "localhost", "::1"), f"tried to reach {host}"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "KF_PIPELINES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp writes its context file there; no gcloud config
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    # google-auth would otherwise probe the GCE metadata server; it reads the variable once, at import.
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    from google.auth.compute_engine import _metadata

    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)


@pytest.fixture()
def cloud(monkeypatch):
    fake = FakeCloud()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    yield fake
    fake.server.shutdown()


@pytest.fixture()
def signed_in(monkeypatch):
    """Credentials with a fixed token, as ``google.auth.default()`` returns after ``gcloud auth`` sign-in."""
    import google.auth
    from google.oauth2.credentials import Credentials

    monkeypatch.setattr(google.auth, "default", lambda **kwargs: (Credentials(token="test-token"), None))


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    from pipeline.config import load_config

    folder = tmp_path_factory.mktemp("specs")
    overrides = ["container.image=registry.example/taxi:test"]
    home = "gs://test-bucket/taxi"
    return {
        target: kubeflow.compile_spec(load_config(target, overrides, home=home), folder / f"{target}.json", target)
        for target in ("vertex", "kubeflow")
    }


VERTEX = ["submit", "--runner", "vertex", "--project", "test-project", "--region", "europe-west4"]


def test_vertex_job_carries_spec_parameters_and_labels(cloud, signed_in, specs, capsys):
    arguments = [*VERTEX, "--spec", str(specs["vertex"]), "--api-endpoint", cloud.url, "--wait"]
    arguments += ["--param", "train_steps=50", "--param", "data_root=gs://test-bucket/other", "--label", "team=ml"]
    arguments += ["--set", f"vertex.service_account={SERVICE_ACCOUNT}"]
    assert cli.main(arguments) == 0
    assert f"created {JOB}" in capsys.readouterr().out

    (create,) = cloud.find("POST", "/v1/projects/test-project/locations/europe-west4/pipelineJobs")
    assert create["headers"]["authorization"] == "Bearer test-token"
    job = create["body"]
    compiled = json.loads(specs["vertex"].read_text())
    assert job["pipelineSpec"]["root"] == compiled["pipelineSpec"]["root"]
    assert job["pipelineSpec"]["deploymentSpec"] == compiled["pipelineSpec"]["deploymentSpec"]
    values = job["runtimeConfig"]["parameterValues"]
    assert json.loads(values["train_args"]) == {"num_steps": 50}
    assert values["data_root"] == "gs://test-bucket/other"
    assert values["eval_args"] == compiled["runtimeConfig"]["parameterValues"]["eval_args"]
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/taxi/pipeline_root"
    assert job["labels"]["team"] == "ml" and job["labels"]["app"] == "taxi-pipeline"
    assert job["serviceAccount"] == SERVICE_ACCOUNT
    assert cloud.find("GET", JOB), "--wait polls the job"


def test_vertex_schedule_creates_a_schedule_not_a_job(cloud, signed_in, specs):
    arguments = [*VERTEX, "--spec", str(specs["vertex"]), "--api-endpoint", cloud.url, "--schedule", "0 3 * * *"]
    arguments += ["--set", f"vertex.service_account={SERVICE_ACCOUNT}", "--param", "min_auc=0.75"]
    assert cli.main(arguments) == 0
    assert not cloud.find("POST", "/pipelineJobs")
    (create,) = cloud.find("POST", "/v1/projects/test-project/locations/europe-west4/schedules")
    schedule = create["body"]
    assert schedule["cron"] == "0 3 * * *"
    job = schedule["createPipelineJobRequest"]["pipelineJob"]
    eval_config = json.loads(job["runtimeConfig"]["parameterValues"]["eval_config"])
    assert '"lower_bound": 0.75' in json.dumps(eval_config)


def test_kubeflow_run_carries_spec_and_parameters(cloud, specs, capsys):
    arguments = ["submit", "--runner", "kubeflow", "--host", cloud.url, "--spec", str(specs["kubeflow"])]
    assert cli.main([*arguments, "--param", "eval_steps=7", "--experiment", "nightly"]) == 0
    assert "created run run-1" in capsys.readouterr().out
    (experiment,) = cloud.find("POST", "/apis/v2beta1/experiments")
    assert experiment["body"]["display_name"] == "nightly"
    (run,) = cloud.find("POST", "/apis/v2beta1/runs")
    assert run["body"]["experiment_id"] == "exp-1"
    assert run["body"]["pipeline_spec"]["root"] == json.loads(specs["kubeflow"].read_text())["root"]
    assert json.loads(run["body"]["runtime_config"]["parameters"]["eval_args"]) == {"num_steps": 7}


def test_kubeflow_schedule_creates_a_recurring_run(cloud, specs):
    arguments = ["submit", "--runner", "kubeflow", "--host", cloud.url, "--spec", str(specs["kubeflow"])]
    assert cli.main([*arguments, "--schedule", "30 2 * * 1"]) == 0
    (recurring,) = cloud.find("POST", "/apis/v2beta1/recurringruns")
    assert recurring["body"]["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * 1"


def test_missing_credentials_is_one_line(specs, capsys):
    assert cli.main([*VERTEX, "--spec", str(specs["vertex"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Google Cloud credentials found: run `gcloud auth application-default login`")
    assert len(err.strip().splitlines()) == 1


def test_missing_project_is_one_line(specs, capsys):
    arguments = ["submit", "--runner", "vertex", "--spec", str(specs["vertex"])]
    assert cli.main(arguments) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no Google Cloud project: pass --project PROJECT_ID or set vertex.project in the profile"
    )


def test_unreachable_kubeflow_host_is_one_line(specs, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    arguments = [
        "submit",
        "--runner",
        "kubeflow",
        "--host",
        f"http://127.0.0.1:{port}",
        "--spec",
        str(specs["kubeflow"]),
    ]
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1
