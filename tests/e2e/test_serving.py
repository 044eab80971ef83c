"""``taxi-pipeline serve`` over real HTTP on 127.0.0.1, against a model the real pipeline trained and pushed.

The model is the one the session's small pipeline run pushed (conftest.py), served from a home of these tests'
own, with gRPC on beside REST as ``taxi-pipeline serve`` runs it (gRPC's own tests: ``test_serving_grpc.py``).
A second version, where a test needs one, is the same real SavedModel copied to a higher version number, written
the way the Pusher writes (``saved_model.pb`` last); the two versions predict alike, so the tests tell them apart
by the version header.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf
from served_model import MODEL, Call, free_port, own_output, push_copy, serving_app, swap_under_load, typed_instance
from taxi_rows import read_rows, serialized_example

from cli import main as cli
from models import features
from pipeline.config import PROJECT_DIR
from pipeline.errors import UserError
from serving.app import LABELS_HEADER, VERSION_HEADER, ServingApp
from serving.repository import ModelRepository, load_version
from serving.server import BackgroundServer, serve_in_background
from serving.settings import ServerSettings
from serving.versions import SAVED_MODEL_FILE


@pytest.fixture(scope="module")
def server(pushed) -> Iterator[BackgroundServer]:
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    running = serve_in_background(serving_app(repository))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_status_has_tf_serving_shape(client, pushed):
    answer = client.get(f"/v1/models/{MODEL}")
    assert answer.status_code == 200
    available = {"version": pushed.name, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert answer.json() == {"model_version_status": [available]}
    assert client.get(f"/v1/models/{MODEL}/versions/{pushed.name}").json() == {"model_version_status": [available]}
    metadata = client.get(f"/v1/models/{MODEL}/metadata").json()
    raw_inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert set(raw_inputs) == set(features.FEATURES)
    assert raw_inputs["fare"]["dtype"] == "DT_FLOAT" and raw_inputs["company"]["dtype"] == "DT_STRING"


def test_every_served_signature_is_called_flat(pushed):
    """The server calls each signature of the pushed model without TensorFlow's argument binding
    (``tfx_compat.flat_signature_call``), so the predictions the tests below compare with the SavedModel's own
    structured call are the flat call's."""
    signatures = load_version(pushed).signatures
    assert set(signatures) >= {"serving_default", "serving_tf_example"}
    assert [name for name, signature in signatures.items() if signature.flat_call is None] == []


def test_instance_predictions_equal_the_saved_modelsown_output(client, saved_model, instances, pushed):
    # Empty cells are filled with the integer 0, so float columns mix JSON ints and floats, as clients write them.
    assert any(
        {type(row[name]) for row in instances} == {int, float}
        for name in features.DENSE_FLOAT_FEATURES + features.BUCKET_FEATURES
    )
    expected = own_output(saved_model, instances)
    assert expected.shape == (len(instances), 1) and expected.std() > 0
    for path in (f"/v1/models/{MODEL}:predict", f"/v1/models/{MODEL}/versions/{pushed.name}:predict"):
        answer = client.post(path, json={"instances": instances})
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"predictions"}
        # JSON carries the float32 values exactly: equality, not closeness.
        np.testing.assert_array_equal(np.array(answer.json()["predictions"], dtype=np.float32), expected)
        assert answer.headers[VERSION_HEADER] == pushed.name
    named = client.post(
        f"/v1/models/{MODEL}:predict", json={"signature_name": "serving_default", "instances": instances}
    )
    assert named.json() == answer.json()


def test_columnar_inputs_answer_outputs(client, saved_model, instances):
    columns = {name: [row[name] for row in instances] for name in features.FEATURES}
    answer = client.post(f"/v1/models/{MODEL}:predict", json={"inputs": columns})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"outputs"}
    np.testing.assert_array_equal(
        np.array(answer.json()["outputs"], dtype=np.float32), own_output(saved_model, instances)
    )


def test_null_means_missing_as_in_a_tf_example(client, saved_model):
    rows = [typed_instance(row, fill_missing=False) for row in read_rows(16)[1]]
    assert any(value is None for row in rows for value in row.values())  # census tracts are mostly empty
    answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    examples = tf.constant([serialized_example(row) for row in rows])
    expected = saved_model.signatures["serving_tf_example"](examples=examples)["probabilities"].numpy()
    np.testing.assert_array_equal(np.array(answer.json()["predictions"], dtype=np.float32), expected)


def test_tf_serving_client_of_the_tf_example_signature_works_unchanged(client, saved_model, instances):
    """What a client of TF Serving sends to the default signature: serialized tf.Examples, base64-encoded."""
    encoded = [{"b64": base64.b64encode(serialized_example(row)).decode()} for row in instances]
    answer = client.post(
        f"/v1/models/{MODEL}:predict", json={"signature_name": "serving_tf_example", "instances": encoded}
    )
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"], own_output(saved_model, instances), rtol=1e-6)


def _bad_requests(instance: dict[str, Any]) -> list[tuple[str, str, str, bytes, int, str]]:
    """(case, method, path, body, expected status, text the error must contain)."""
    predict = f"/v1/models/{MODEL}:predict"

    def body(document: Any) -> bytes:
        return json.dumps(document).encode()

    def one(**changes: Any) -> bytes:
        return body({"instances": [{**instance, **changes}]})

    without_fare = {key: value for key, value in instance.items() if key != "fare"}
    return [
        ("malformed JSON", "POST", predict, b'{"instances": [', 400, "JSON Parse error"),
        ("not UTF-8", "POST", predict, b"\xff\xfe", 400, "JSON Parse error"),
        ("not an object", "POST", predict, body([instance]), 400, '"instances" or an "inputs"'),
        ("neither form", "POST", predict, body({"rows": []}), 400, "unknown key"),
        ("both forms", "POST", predict, body({"instances": [instance], "inputs": {}}), 400, "exactly one"),
        ("no rows", "POST", predict, body({"instances": []}), 400, "non-empty"),
        ("missing feature", "POST", predict, body({"instances": [without_fare]}), 400, "missing feature(s): fare"),
        ("unknown feature", "POST", predict, one(tip=3.0), 400, "unknown feature(s): tip"),
        ("text for a number", "POST", predict, one(fare="12.5"), 400, 'input "fare" takes numbers'),
        ("number for text", "POST", predict, one(company=7), 400, 'input "company" takes strings'),
        ("bool for an integer", "POST", predict, one(trip_start_hour=True), 400, 'input "trip_start_hour"'),
        ("fraction for an integer", "POST", predict, one(trip_start_hour=3.5), 400, "takes integers"),
        ("integer out of range", "POST", predict, one(trip_start_hour=2**70), 400, "out of range"),
        ("list for a scalar", "POST", predict, one(fare=[1.0]), 400, 'input "fare" takes numbers'),
        ("bad base64", "POST", predict, one(company={"b64": "%%%"}), 400, "base64"),
        (
            "ragged columns",
            "POST",
            predict,
            body({"inputs": {**{k: [v] for k, v in instance.items()}, "fare": [1.0, 2.0]}}),
            400,
            "same number",
        ),
        ("unknown signature", "POST", predict, body({"signature_name": "nope", "instances": [instance]}), 400, "nope"),
        ("unknown model", "POST", "/v1/models/nope:predict", one(), 404, "Servable not found"),
        ("unknown version", "POST", f"/v1/models/{MODEL}/versions/7:predict", one(), 404, "Specific(taxi, 7)"),
        ("version not a number", "POST", f"/v1/models/{MODEL}/versions/x:predict", one(), 400, "non-negative integer"),
        ("status of unknown model", "GET", "/v1/models/nope", b"", 404, "Could not find any versions"),
        ("status of unknown version", "GET", f"/v1/models/{MODEL}/versions/7", b"", 404, "Could not find version 7"),
        ("unknown path", "GET", "/v2/models", b"", 404, "Not Found"),
        ("GET on :predict", "GET", predict, b"", 400, f"Malformed request: GET {predict}"),
        (
            "b64 value that is no tf.Example",
            "POST",
            predict,
            body(
                {
                    "signature_name": "serving_tf_example",
                    "instances": [{"b64": base64.b64encode(b"plain text").decode()}],
                }
            ),
            400,
            'input "examples": a value is not a serialized tf.Example',
        ),
        (
            ":classify on a predict signature",
            "POST",
            f"/v1/models/{MODEL}:classify",
            body({"examples": [instance]}),
            400,
            "Expected classification signature method_name to be tensorflow/serving/classify. "
            "Was: tensorflow/serving/predict",
        ),
        (
            ":regress on a predict signature",
            "POST",
            f"/v1/models/{MODEL}:regress",
            body({"signature_name": "serving_tf_example", "examples": [instance]}),
            400,
            "Expected regression signature method_name to be tensorflow/serving/regress. "
            "Was: tensorflow/serving/predict",
        ),
        (
            ":classify of an unknown signature",
            "POST",
            f"/v1/models/{MODEL}:classify",
            body({"signature_name": "nope", "examples": [instance]}),
            400,
            "No signature was found with the name: nope",
        ),
        (":classify of an unknown version", "POST", f"/v1/models/{MODEL}/versions/7:classify", one(), 404, "Specific"),
        ("body over 1 MiB", "POST", predict, b" " * (1024 * 1024 + 1), 413, "exceeds the limit"),
    ]


def test_bad_requests_get_a_4xx_with_a_clear_error_and_serving_goes_on(client, instances):
    failures = []
    for case, method, path, body, status, text in _bad_requests(instances[0]):
        answer = client.request(method, path, content=body, headers={"content-type": "application/json"})
        error = answer.json().get("error", "") if answer.headers.get("content-type") == "application/json" else ""
        if answer.status_code != status or text not in error:
            failures.append(f"{case}: {answer.status_code} {answer.text[:200]}")
    assert not failures, "\n".join(failures)
    assert client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances}).status_code == 200


def test_huge_body_without_a_declared_length_is_cut_off(client):
    def chunks() -> Iterator[bytes]:  # chunked transfer encoding: no Content-Length to check up front
        for _ in range(64):
            yield b" " * 65536

    answer = client.post(f"/v1/models/{MODEL}:predict", content=chunks())
    assert answer.status_code == 413 and "exceeds the limit" in answer.json()["error"]


@contextlib.contextmanager
def _batching_server(pushed: Path, *, max_batch_rows: int) -> Iterator[tuple[BackgroundServer, ServingApp]]:
    """A server whose batcher waits up to 10 s for ``max_batch_rows`` rows before calling TensorFlow.

    The long wait makes the concurrent requests of a test share one call whenever they arrive; it costs nothing
    when they all come, because a full batch goes at once. (The production default waits for nothing.)
    """
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    app = serving_app(repository, max_batch_rows=max_batch_rows)
    app.batcher.max_wait_s = 10.0  # beyond --batch-wait-ms's 1 s, which ServerSettings enforces
    running = serve_in_background(app)
    try:
        yield running, app
    finally:
        running.stop()


def _post_concurrently(url: str, documents: list[Any]) -> list[httpx.Response]:
    """Sends every document at once, each from its own thread and connection; the answers in the same order."""
    start = threading.Barrier(len(documents))

    def post(document: Any) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            return client.post(f"/v1/models/{MODEL}:predict", json=document)

    with ThreadPoolExecutor(len(documents)) as pool:
        return list(pool.map(post, documents))


# A row's probability from a shared call can differ from a call on that request alone in the last bits of the
# float32: the SavedModel's own output for a row already does (between 1 row and 2, about half the rows differ by
# 1 ulp), as matrix products are blocked differently for different batch sizes. Rows differ far more than that.
FLOAT32_ROUNDING = 1e-6


def test_concurrent_requests_share_one_call_and_each_gets_its_own_rows(pushed, saved_model):
    rows = [typed_instance(row, fill_missing=True) for row in read_rows(16)[1]]
    chunks = [rows[0:1], rows[1:3], rows[3:4], rows[4:8], rows[8:9], rows[9:12], rows[12:13], rows[13:16]]
    documents: list[Any] = []
    for index, chunk in enumerate(chunks):  # both request forms share the call: they differ only in the answer
        if index % 3 == 2:
            documents.append({"inputs": {name: [row[name] for row in chunk] for name in features.FEATURES}})
        else:
            documents.append({"instances": chunk})
    expected = [own_output(saved_model, chunk) for chunk in chunks]
    everything = np.concatenate(expected)
    assert len(np.unique(everything)) == len(everything)  # distinct rows, so that a mix-up would show

    with _batching_server(pushed, max_batch_rows=sum(map(len, chunks))) as (running, app):
        answers = _post_concurrently(running.url, documents)
        stats = app.batcher.stats
    assert (stats.calls, stats.requests, stats.largest_batch) == (1, len(chunks), len(chunks))
    for document, answer, own in zip(documents, answers, expected, strict=True):
        assert answer.status_code == 200, answer.text
        key = "predictions" if "instances" in document else "outputs"
        assert set(answer.json()) == {key}
        np.testing.assert_allclose(np.array(answer.json()[key], dtype=np.float32), own, rtol=0, atol=FLOAT32_ROUNDING)


def test_a_bad_request_among_concurrent_good_ones_fails_alone(pushed, saved_model, instances):
    good = [instances[i : i + 2] for i in range(0, 10, 2)]
    bad = [{**instances[10], "fare": "12.5"}]
    documents = [{"instances": chunk} for chunk in good[:3]] + [{"instances": bad}]
    documents += [{"instances": chunk} for chunk in good[3:]]
    with _batching_server(pushed, max_batch_rows=sum(map(len, good))) as (running, app):
        answers = _post_concurrently(running.url, documents)
        stats = app.batcher.stats
    assert answers[3].status_code == 400 and 'input "fare" takes numbers' in answers[3].json()["error"]
    good_answers = answers[:3] + answers[4:]
    assert [answer.status_code for answer in good_answers] == [200] * len(good)
    for chunk, answer in zip(good, good_answers, strict=True):
        own = own_output(saved_model, chunk)
        np.testing.assert_allclose(np.array(answer.json()["predictions"], np.float32), own, atol=FLOAT32_ROUNDING)
    assert (stats.calls, stats.largest_batch) == (1, len(good))  # the bad one never joined the call


def test_a_request_tensorflow_refuses_in_a_shared_call_fails_alone(pushed, saved_model, instances):
    """A well-formed request TensorFlow still refuses (bytes that are no tf.Example) cannot be caught before the
    call; the shared call fails, each request is called again alone, and only that one gets the 400."""
    encoded = [{"b64": base64.b64encode(serialized_example(row)).decode()} for row in instances[:3]]
    garbage = {"b64": base64.b64encode(b"\xff not a tf.Example").decode()}
    documents = [{"signature_name": "serving_tf_example", "instances": [value]} for value in [*encoded, garbage]]
    with _batching_server(pushed, max_batch_rows=len(documents)) as (running, app):
        answers = _post_concurrently(running.url, documents)
        stats = app.batcher.stats
    assert stats.largest_batch == len(documents)
    assert answers[-1].status_code == 400
    assert (
        answers[-1].json()["error"]
        == 'input "examples": a value is not a serialized tf.Example (TensorFlow could not parse it)'
    )
    examples = saved_model.signatures["serving_tf_example"]
    for value, answer in zip(encoded, answers[:-1], strict=True):
        assert answer.status_code == 200, answer.text
        # Called alone after the shared call failed: exactly the SavedModel's own output for that one example.
        own = examples(examples=tf.constant([base64.b64decode(value["b64"])]))["probabilities"].numpy()
        np.testing.assert_array_equal(np.array(answer.json()["predictions"], dtype=np.float32), own)


def test_max_batch_rows_1_gives_every_request_its_own_call(pushed, saved_model, instances):
    chunks = [instances[i : i + 1] for i in range(4)]
    with _batching_server(pushed, max_batch_rows=1) as (running, app):
        answers = _post_concurrently(running.url, [{"instances": chunk} for chunk in chunks])
        stats = app.batcher.stats
    assert (stats.calls, stats.largest_batch) == (len(chunks), 1)
    for chunk, answer in zip(chunks, answers, strict=True):
        own = own_output(saved_model, chunk)
        np.testing.assert_array_equal(np.array(answer.json()["predictions"], dtype=np.float32), own)


@pytest.fixture(scope="module")
def own_serving_dir(pushed, tmp_path_factory) -> Path:
    """A serving directory of the tests below, which add versions to it; starts with the pushed version."""
    directory = tmp_path_factory.mktemp("serving") / MODEL
    shutil.copytree(pushed, directory / pushed.name)
    return directory


def test_new_version_is_picked_up_without_a_failed_request(own_serving_dir, instances):
    repository = ModelRepository(own_serving_dir, MODEL, poll_seconds=0.2, canary=0)
    repository.refresh()
    running = serve_in_background(serving_app(repository))

    @contextlib.contextmanager
    def open_caller() -> Iterator[Call]:
        with httpx.Client(base_url=running.url, timeout=30) as client:

            def call() -> tuple[str, str]:
                answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances[:4]})
                return str(answer.status_code), answer.headers.get(VERSION_HEADER, "")

            yield call

    try:
        swap = swap_under_load(repository, open_caller)
    finally:
        running.stop()
    swap.assert_no_request_failed(ok="200")


def test_canary_sends_its_share_to_the_newest_version(own_serving_dir, instances):
    if len(list(own_serving_dir.iterdir())) < 2:  # when run without the test above
        only = next(own_serving_dir.iterdir())
        push_copy(only, int(only.name) + 1)
    newest, previous = sorted((int(p.name) for p in own_serving_dir.iterdir()), reverse=True)[:2]
    repository = ModelRepository(own_serving_dir, MODEL, poll_seconds=0, canary=0.3)
    assert repository.refresh().newest_first == [newest, previous]
    running = serve_in_background(serving_app(repository))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            status = client.get(f"/v1/models/{MODEL}").json()["model_version_status"]
            assert [entry["version"] for entry in status] == [str(newest), str(previous)]
            seen = [
                client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances[:1]}).headers[VERSION_HEADER]
                for _ in range(100)
            ]
            pinned = client.post(f"/v1/models/{MODEL}/versions/{previous}:predict", json={"instances": instances[:1]})
    finally:
        running.stop()
    share = seen.count(str(newest)) / len(seen)
    assert 0.1 < share < 0.55, share  # 30% expected; binomial(100, 0.3) lies outside this about once in 10^5
    assert seen.count(str(previous)) + seen.count(str(newest)) == len(seen)
    assert pinned.headers[VERSION_HEADER] == str(previous)


@pytest.mark.parametrize("canary", [0.3, 0.0])
def test_version_labels_name_the_stable_and_the_canary_version(own_serving_dir, instances, canary):
    """TF Serving's ``/labels/<label>`` paths: ``stable`` answers most unnamed requests, ``canary`` is the newest
    while a canary share is set; the status answer lists them in a header (its body has no field for them)."""
    if len(list(own_serving_dir.iterdir())) < 2:
        only = next(own_serving_dir.iterdir())
        push_copy(only, int(only.name) + 1)
    newest, previous = sorted((int(p.name) for p in own_serving_dir.iterdir()), reverse=True)[:2]
    repository = ModelRepository(own_serving_dir, MODEL, poll_seconds=0, canary=canary)
    repository.refresh()
    running = serve_in_background(serving_app(repository))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            labels = client.get(f"/v1/models/{MODEL}").headers[LABELS_HEADER]
            answers = {
                label: client.post(f"/v1/models/{MODEL}/labels/{label}:predict", json={"instances": instances[:1]})
                for label in ("stable", "canary", "nope")
            }
            canary_status = client.get(f"/v1/models/{MODEL}/labels/canary")
            stable_metadata = client.get(f"/v1/models/{MODEL}/labels/stable/metadata")
    finally:
        running.stop()
    stable = previous if canary else newest
    assert answers["stable"].status_code == 200 and answers["stable"].headers[VERSION_HEADER] == str(stable)
    assert stable_metadata.json()["model_spec"]["version"] == str(stable)
    assert answers["nope"].status_code == 400
    assert answers["nope"].json()["error"].startswith("Unrecognized servable version label: nope")
    if canary:
        assert labels == f"stable={previous},canary={newest}"
        assert answers["canary"].headers[VERSION_HEADER] == str(newest)
        assert [entry["version"] for entry in canary_status.json()["model_version_status"]] == [str(newest)]
    else:
        assert labels == f"stable={newest}"
        assert answers["canary"].status_code == 400 and canary_status.status_code == 400


def _status_and_prediction(repository: ModelRepository, rows: list[dict[str, Any]]) -> tuple[list, httpx.Response]:
    """The status entries and a prediction's answer from a server of ``repository``, started and stopped here."""
    running = serve_in_background(serving_app(repository))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            status = client.get(f"/v1/models/{MODEL}").json()["model_version_status"]
            return status, client.post(f"/v1/models/{MODEL}:predict", json={"instances": rows})
    finally:
        running.stop()


def test_a_broken_new_version_is_reported_and_the_last_good_one_keeps_serving(own_serving_dir, instances):
    good = max(int(p.name) for p in own_serving_dir.iterdir())
    broken = own_serving_dir / str(good + 1)
    broken.mkdir()
    (broken / SAVED_MODEL_FILE).write_bytes(b"not a SavedModel")
    repository = ModelRepository(own_serving_dir, MODEL, poll_seconds=0, canary=0)
    try:
        repository.refresh()
        status, answer = _status_and_prediction(repository, instances[:2])
    finally:
        shutil.rmtree(broken)
    assert [(entry["version"], entry["state"]) for entry in status] == [
        (str(good), "AVAILABLE"),
        (str(good + 1), "END"),
    ]
    assert status[1]["status"]["error_message"]
    assert answer.status_code == 200 and answer.headers[VERSION_HEADER] == str(good)


def test_a_version_copied_in_an_unlucky_order_loads_once_the_copy_completes(own_serving_dir, instances):
    """``saved_model.pb`` first, ``variables/`` later (a hand copy, ``gsutil cp`` in two steps): the first load
    fails and the version is reported END; when the rest arrives it is loaded, as TF Serving retries a load."""
    good = max(int(p.name) for p in own_serving_dir.iterdir())
    late = own_serving_dir / str(good + 1)
    late.mkdir()
    shutil.copy2(own_serving_dir / str(good) / SAVED_MODEL_FILE, late / SAVED_MODEL_FILE)
    repository = ModelRepository(own_serving_dir, MODEL, poll_seconds=0, canary=0)
    try:
        repository.refresh()
        first = _states(repository)
        repository.refresh()  # the same files: still END, the good version still serving
        again = _states(repository)
        for item in (own_serving_dir / str(good)).iterdir():
            if item.name != SAVED_MODEL_FILE:
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, late / item.name)
        repository.refresh()
        status, answer = _status_and_prediction(repository, instances[:2])
    finally:
        shutil.rmtree(late)
    assert first == {str(good): "AVAILABLE", str(good + 1): "END"}
    assert again == first
    assert [(entry["version"], entry["state"]) for entry in status] == [(str(good + 1), "AVAILABLE")]
    assert answer.status_code == 200 and answer.headers[VERSION_HEADER] == str(good + 1)


def _states(repository: ModelRepository) -> dict[str, str]:
    return {entry["version"]: entry["state"] for entry in repository.status(MODEL)["model_version_status"]}


def test_with_no_version_that_loads_predict_is_a_404_until_one_is_pushed(pushed, tmp_path, instances):
    """Versions on disk that all fail to load: the status lists them as END, ``:predict`` answers TF Serving's
    404, and a version pushed afterwards serves from the next refresh (docs/SERVING.md)."""
    model_dir = tmp_path / MODEL
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / SAVED_MODEL_FILE).write_bytes(b"not a SavedModel")
    repository = ModelRepository(model_dir, MODEL, poll_seconds=0, canary=0)
    assert repository.refresh().newest_first == []
    running = serve_in_background(serving_app(repository))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            status = client.get(f"/v1/models/{MODEL}").json()["model_version_status"]
            refused = client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances[:1]})
            shutil.copytree(pushed, model_dir / "2", ignore=shutil.ignore_patterns(SAVED_MODEL_FILE))
            shutil.copy2(pushed / SAVED_MODEL_FILE, model_dir / "2" / SAVED_MODEL_FILE)  # the Pusher's order
            repository.refresh()
            answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances[:1]})
    finally:
        running.stop()
    assert [(entry["version"], entry["state"]) for entry in status] == [("1", "END")]
    assert refused.status_code == 404
    assert refused.json() == {"error": f"Servable not found for request: Latest({MODEL}) (no version loaded)"}
    assert answer.status_code == 200 and answer.headers[VERSION_HEADER] == "2"


def test_serve_without_pushed_models_is_a_one_line_user_error(tmp_path, capsys):
    assert cli.main(["serve", "--home", str(tmp_path), "--port", "0"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("error: no pushed models in ") and error.count("\n") == 1


@pytest.mark.parametrize(
    ("option", "value"), [("--canary", "1.5"), ("--max-batch-rows", "0"), ("--batch-wait-ms", "-1")]
)
def test_serve_rejects_options_out_of_range(serving_home, capsys, option, value):
    assert cli.main(["serve", "--home", str(serving_home), option, value]) == cli.EXIT_USAGE
    assert option in capsys.readouterr().err
    with pytest.raises(UserError, match=f"'{option}': .* is not in the range"):  # the same rule, made in code
        ServerSettings(**{option.removeprefix("--").replace("-", "_"): float(value)})


@pytest.mark.parametrize("value", ["stable", "stable=", "=3", "stable=v3"])
def test_serve_refuses_a_label_that_is_not_label_equals_version(serving_home, capsys, value):
    assert cli.main(["serve", "--home", str(serving_home), "--label", value]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "Invalid value for '--label'" in error and "is not LABEL=VERSION" in error


def test_serve_help_loads_neither_tensorflow_nor_the_web_stack():
    code = (
        "import sys, contextlib, io\n"
        "from cli import main as cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['serve', '--help'])\n"
        "print(sorted(m for m in ('tensorflow', 'fastapi', 'starlette', 'uvicorn') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR, check=True)
    assert result.stdout.strip() == "[]"


def test_serve_command_serves_the_home_on_loopback(serving_home, pushed, instances):
    """The command as users start it: REST and gRPC (a TF Serving stub asks ModelService for the status)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    port, grpc_port = free_port(), free_port()
    command = [str(Path(sys.executable).parent / "taxi-pipeline"), "serve", "--home", str(serving_home)]
    command += ["--port", str(port), "--grpc-port", str(grpc_port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the server did not come up"
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v1/models/{MODEL}", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}:predict", json={"instances": instances[:2]})
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL})
            grpc_status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert status.json()["model_version_status"][0]["version"] == pushed.name
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert [entry.version for entry in grpc_status.model_version_status] == [int(pushed.name)]
    assert f"serving {MODEL} versions [{pushed.name}]" in output and f"http://127.0.0.1:{port}" in output
    assert f"gRPC on 127.0.0.1:{grpc_port}" in output
    # uvicorn shuts down gracefully on SIGTERM, then lets the signal end the process as usual.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output
