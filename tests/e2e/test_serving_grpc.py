"""``taxi-pipeline serve``'s gRPC API driven by TF Serving's own Python stubs, against the real pushed model.

The client side is what a production TF Serving client runs: ``tensorflow_serving.apis``' request messages,
``PredictionServiceStub`` and ``ModelServiceStub`` over a real channel to 127.0.0.1, tensors made with
``tf.make_tensor_proto`` in the dtypes the model's metadata names. Every answer is checked against the
SavedModel's own output or against the status code and text TF Serving gives for the same request.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from served_model import MODEL, Call, grpc_target, own_output, push_copy, serving_app, swap_under_load
from taxi_rows import serialized_example
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from cli import main as cli
from serving.app import VERSION_HEADER, ServingApp
from serving.repository import ModelRepository
from serving.server import BackgroundServer, serve_in_background
from serving.versions import SAVED_MODEL_FILE

# What a row of the batch shares with the others in the last float32 bit (see test_serving.py's FLOAT32_ROUNDING).
FLOAT32_ROUNDING = 1e-6


@pytest.fixture(scope="module")
def served(pushed) -> Iterator[tuple[BackgroundServer, ServingApp]]:
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    app = serving_app(repository)
    running = serve_in_background(app)
    yield running, app
    running.stop()


@pytest.fixture(scope="module")
def channel(served) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(grpc_target(served[1])) as channel:
        yield channel


@pytest.fixture(scope="module")
def predictions(channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _input_dtypes(saved_model: Any, signature: str = "serving_default") -> dict[str, tf.DType]:
    return {key: spec.dtype for key, spec in saved_model.signatures[signature].structured_input_signature[1].items()}


def _predict_request(
    instances: list[dict[str, Any]], dtypes: dict[str, tf.DType], **model_spec: Any
) -> predict_pb2.PredictRequest:
    """A PredictRequest as TF Serving's clients build one: a ``[batch]`` tensor per input, in the model's dtypes."""
    request = predict_pb2.PredictRequest(model_spec={"name": MODEL, **model_spec})
    for key, dtype in dtypes.items():
        values = [row[key].encode() if dtype == tf.string else row[key] for row in instances]
        request.inputs[key].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    return request


def _refusal(call: Any, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value.code(), raised.value.details()


def test_predict_equals_the_saved_models_own_output_and_rest(served, predictions, saved_model, instances, pushed):
    request = _predict_request(instances, _input_dtypes(saved_model))
    response = predictions.Predict(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, int(pushed.name))
    assert response.model_spec.signature_name == "serving_default"
    (output,) = response.outputs.values()
    # TF Serving writes outputs into the typed value field (Tensor::AsProtoField), not tensor_content.
    assert output.dtype == types_pb2.DT_FLOAT and not output.tensor_content and len(output.float_val) == 16
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["probabilities"]), own_output(saved_model, instances)
    )
    with httpx.Client(base_url=served[0].url, timeout=30) as client:
        rest = client.post(f"/v1/models/{MODEL}:predict", json={"instances": instances}).json()["predictions"]
    np.testing.assert_array_equal(np.array(rest, dtype=np.float32), tf.make_ndarray(output))
    # Naming the version, the signature or the output changes nothing here.
    named = _predict_request(
        instances, _input_dtypes(saved_model), version={"value": int(pushed.name)}, signature_name="serving_default"
    )
    named.output_filter.append("probabilities")
    assert predictions.Predict(named, timeout=30).outputs == response.outputs


def test_tf_example_signature_over_grpc(predictions, saved_model, instances):
    """Clients that send serialized tf.Examples name ``serving_tf_example``; the answer is the model's own."""
    request = predict_pb2.PredictRequest(model_spec={"name": MODEL, "signature_name": "serving_tf_example"})
    examples = [serialized_example(row) for row in instances]
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    response = predictions.Predict(request, timeout=30)
    expected = saved_model.signatures["serving_tf_example"](examples=tf.constant(examples))["probabilities"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected.numpy(), rtol=1e-6)
    assert response.model_spec.signature_name == "serving_tf_example"


def test_metadata_is_the_saved_signature_defs_over_grpc_and_rest(served, predictions, pushed):
    saved = saved_model_pb2.SavedModel.FromString((pushed / SAVED_MODEL_FILE).read_bytes())
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec={"name": MODEL}, metadata_field=["signature_def"]
    )
    response = predictions.GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, int(pushed.name))
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    assert dict(signature_defs.signature_def) == dict(saved.meta_graphs[0].signature_def)
    assert {"serving_default", "serving_tf_example", "__saved_model_init_op"} <= set(signature_defs.signature_def)
    # REST prints the same message as TF Serving's REST API does: field names as in the proto, defaults included.
    with httpx.Client(base_url=served[0].url, timeout=30) as client:
        rest = client.get(f"/v1/models/{MODEL}/metadata").json()
    assert rest["metadata"]["signature_def"] == json_format.MessageToDict(
        signature_defs, including_default_value_fields=True, preserving_proto_field_name=True
    )
    fare = rest["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["fare"]
    assert fare["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}

    for fields, message in (([], "must specify at least one metadata_field"), (["nope"], "Metadata field nope")):
        bad = get_model_metadata_pb2.GetModelMetadataRequest(model_spec={"name": MODEL}, metadata_field=fields)
        code, details = _refusal(predictions.GetModelMetadata, bad)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details


def test_model_status_over_grpc(channel, pushed):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL}))
    (entry,) = status.model_version_status
    assert entry.version == int(pushed.name)
    assert entry.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE and entry.status.error_code == 0
    unknown = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"})
    assert _refusal(models.GetModelStatus, unknown) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )


def _bad_predictions(saved_model: Any, instances: list[dict[str, Any]]) -> list[tuple[str, Any, grpc.StatusCode, str]]:
    """(what, request, TF Serving's code, its text or the start of ours) for mistakes TF Serving clients make."""
    dtypes = _input_dtypes(saved_model)
    rows = instances[:2]

    def changed(change: Any, **spec: Any) -> predict_pb2.PredictRequest:
        request = _predict_request(rows, dtypes, **spec)
        change(request)
        return request

    def as_int32(request: predict_pb2.PredictRequest) -> None:  # tf.make_tensor_proto([3]) without a dtype
        request.inputs["trip_start_hour"].CopyFrom(tf.make_tensor_proto([3, 4]))

    def as_matrix(request: predict_pb2.PredictRequest) -> None:
        request.inputs["fare"].CopyFrom(tf.make_tensor_proto([[1.0], [2.0]], dtype=tf.float32))

    def garbage_examples(request: predict_pb2.PredictRequest) -> None:
        request.inputs.clear()
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"\xff not a tf.Example"], dtype=tf.string))

    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    unknown_signature = grpc.StatusCode.FAILED_PRECONDITION
    return [
        ("unknown model", _predict_request(rows, dtypes, name="nope"), not_found,
         "Servable not found for request: Latest(nope)"),
        ("unknown version", _predict_request(rows, dtypes, version={"value": 7}), not_found,
         "Servable not found for request: Specific(taxi, 7)"),
        ("unknown label", _predict_request(rows, dtypes, version_label="gold"), invalid,
         "Unrecognized servable version label: gold"),
        ("unknown signature", _predict_request(rows, dtypes, signature_name="nope"), unknown_signature,
         'Serving signature key "nope" not found.'),
        ("missing input", changed(lambda r: r.inputs.pop("fare")), invalid,
         "input size does not match signature: 15!=16"),
        ("renamed input", changed(lambda r: r.inputs["fares"].CopyFrom(r.inputs.pop("fare"))), invalid,
         "input tensor alias not found in signature: fares."),
        ("int32 for int64", changed(as_int32), invalid,
         "Expected input trip_start_hour to be int64 but int32 is provided"),
        ("no dtype", changed(lambda r: r.inputs["fare"].ClearField("dtype")), invalid,
         "Expected input fare to be float32 but DT_INVALID is provided"),
        ("matrix for [batch]", changed(as_matrix), invalid, "input fare must have shape [batch]"),
        ("unknown output", changed(lambda r: r.output_filter.append("logits")), invalid,
         "output tensor alias not found in signature: logits"),
        ("duplicate output", changed(lambda r: r.output_filter.extend(["probabilities"] * 2)), invalid,
         "duplicate output tensor alias: probabilities"),
        ("not a tf.Example", changed(garbage_examples, signature_name="serving_tf_example"), invalid,
         'input "examples": a value is not a serialized tf.Example'),
    ]  # fmt: skip


def test_bad_predict_requests_get_tf_servings_status_codes_and_serving_goes_on(predictions, saved_model, instances):
    for what, request, code, text in _bad_predictions(saved_model, instances):
        got_code, details = _refusal(predictions.Predict, request)
        assert (got_code, details.startswith(text)) == (code, True), (what, got_code, details)
    good = predictions.Predict(_predict_request(instances[:2], _input_dtypes(saved_model)), timeout=30)
    assert len(good.outputs["probabilities"].float_val) == 2


def test_classify_regress_and_multi_inference_are_refused_as_tf_serving_refuses_them(predictions):
    """TF 2 SavedModels have predict signatures only: TF Serving checks the signature's method name."""
    classify = classification_pb2.ClassificationRequest(model_spec={"name": MODEL})
    regress = regression_pb2.RegressionRequest(model_spec={"name": MODEL, "signature_name": "nope"})
    unknown = classification_pb2.ClassificationRequest(model_spec={"name": "nope"})
    assert _refusal(predictions.Classify, classify) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict",
    )
    assert _refusal(predictions.Regress, regress) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    )
    assert _refusal(predictions.Classify, unknown)[0] == grpc.StatusCode.NOT_FOUND
    code, _ = _refusal(predictions.MultiInference, inference_pb2.MultiInferenceRequest())
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_and_rest_requests_share_one_tensorflow_call(pushed, saved_model, instances):
    """The two front ends feed one batcher: concurrent gRPC and REST requests go to TensorFlow together, and
    each gets its own rows back in its own format."""
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    chunks = [instances[0:3], instances[3:4], instances[4:9], instances[9:16]]
    app = serving_app(repository, max_batch_rows=16)
    app.batcher.max_wait_s = 10.0  # a full batch goes at once; the wait only makes the four meet
    running = serve_in_background(app)
    start = threading.Barrier(len(chunks))
    dtypes = _input_dtypes(saved_model)

    def over_grpc(chunk: list[dict[str, Any]]) -> np.ndarray:
        with grpc.insecure_channel(grpc_target(app)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _predict_request(chunk, dtypes)
            start.wait()
            return tf.make_ndarray(stub.Predict(request, timeout=60).outputs["probabilities"])

    def over_rest(chunk: list[dict[str, Any]]) -> np.ndarray:
        with httpx.Client(base_url=running.url, timeout=60) as client:
            start.wait()
            answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": chunk})
            return np.array(answer.json()["predictions"], dtype=np.float32)

    try:
        with ThreadPoolExecutor(len(chunks)) as pool:
            futures = [pool.submit(over_grpc if i % 2 else over_rest, chunk) for i, chunk in enumerate(chunks)]
            answers = [future.result() for future in futures]
        stats = app.batcher.stats
    finally:
        running.stop()
    assert (stats.calls, stats.requests) == (1, len(chunks))
    for chunk, answer in zip(chunks, answers, strict=True):
        np.testing.assert_allclose(answer, own_output(saved_model, chunk), rtol=0, atol=FLOAT32_ROUNDING)


@pytest.fixture
def versions_dir(pushed, tmp_path) -> Path:
    directory = tmp_path / MODEL
    shutil.copytree(pushed, directory / pushed.name)
    return directory


def test_hot_swap_under_grpc_load_fails_no_request(versions_dir, saved_model, instances):
    repository = ModelRepository(versions_dir, MODEL, poll_seconds=0.2, canary=0)
    repository.refresh()
    app = serving_app(repository)
    running = serve_in_background(app)
    request = _predict_request(instances[:4], _input_dtypes(saved_model))

    @contextlib.contextmanager
    def open_caller() -> Iterator[Call]:
        with grpc.insecure_channel(grpc_target(app)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def call() -> tuple[str, str]:
                try:
                    return "OK", str(stub.Predict(request, timeout=30).model_spec.version.value)
                except grpc.RpcError as error:
                    return error.code().name, ""

            yield call

    try:
        swap = swap_under_load(repository, open_caller)
    finally:
        running.stop()
    swap.assert_no_request_failed(ok="OK")


def test_labels_pinned_by_hand_keep_their_version_loaded(versions_dir, saved_model, instances):
    """TF Serving's ``version_labels``: a label pinned to an older version names it over gRPC and REST, and that
    version stays loaded beside the newest, which still answers requests that name no version."""
    old = int(next(versions_dir.iterdir()).name)
    push_copy(versions_dir / str(old), old + 1)
    push_copy(versions_dir / str(old), old + 2)
    repository = ModelRepository(versions_dir, MODEL, poll_seconds=0, canary=0, pinned_labels={"stable": old})
    assert repository.refresh().newest_first == [old + 2, old]  # old + 1: neither newest nor labelled
    assert repository.labels() == {"stable": old}
    app = serving_app(repository)
    running = serve_in_background(app)
    dtypes = _input_dtypes(saved_model)
    try:
        with grpc.insecure_channel(grpc_target(app)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            labelled = stub.Predict(_predict_request(instances[:1], dtypes, version_label="stable"), timeout=30)
            unnamed = stub.Predict(_predict_request(instances[:1], dtypes), timeout=30)
            canary = _refusal(stub.Predict, _predict_request(instances[:1], dtypes, version_label="canary"))
        with httpx.Client(base_url=running.url, timeout=30) as client:
            rest = client.post(f"/v1/models/{MODEL}/labels/stable:predict", json={"instances": instances[:1]})
    finally:
        running.stop()
    assert labelled.model_spec.version.value == old and unnamed.model_spec.version.value == old + 2
    assert canary[0] == grpc.StatusCode.INVALID_ARGUMENT and "labels now: stable=" in canary[1]
    assert rest.headers[VERSION_HEADER] == str(old)


@contextlib.contextmanager
def _port_held() -> Iterator[int]:
    """A port another server listens on, for the ``with`` block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_grpc_port_is_a_one_line_user_error(serving_home, capsys):
    with _port_held() as port:
        code = cli.main(["serve", "--home", str(serving_home), "--port", "0", "--grpc-port", str(port)])
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot listen on 127.0.0.1:{port}") and "--grpc-port" in error
    assert error.count("\n") == 1


def _front_end_or_skip() -> Path:
    from serving import grpc_bridge

    binary = grpc_bridge.front_end_binary()
    if binary is None:
        pytest.skip(f"{grpc_bridge.BINARY} is not built (`make grpc-front`: Go and grpc-go from Debian)")
    return binary


def _front_end_processes(app: ServingApp) -> list[Any]:
    """This process's ``taxi-grpc-front`` children started for ``app``'s gRPC port (psutil processes)."""
    import psutil

    return [
        child
        for child in psutil.Process().children()
        if child.name() == "taxi-grpc-front" and f":{app.settings.grpc_port}" in " ".join(child.cmdline())
    ]


def test_the_go_front_end_carries_grpc_where_it_is_built(served):
    """Where ``make`` built ``taxi-grpc-front``, it is the process listening on the gRPC port (the other tests of
    this file then drive it), and it is this server's child, stopped with it."""
    _front_end_or_skip()
    _, app = served
    listening = _front_end_processes(app)
    assert len(listening) == 1
    ports = {connection.laddr.port for connection in listening[0].net_connections("tcp")}
    assert app.settings.grpc_port in ports


def test_grpc_aio_in_process_gives_the_go_front_ends_answers(served, pushed, saved_model, instances, monkeypatch):
    """Without ``taxi-grpc-front`` (no Go toolchain), the server serves gRPC with grpc.aio in its own process:
    every answer of this file's requests, refusals included, is the same status, text or message as the module's
    server gives (the Go front end where it is built; otherwise both are grpc.aio and this checks the fallback's
    start and answers only)."""
    from serving import grpc_bridge

    monkeypatch.setattr(grpc_bridge, "front_end_binary", lambda: None)
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    app = serving_app(repository)
    running = serve_in_background(app)
    dtypes = _input_dtypes(saved_model)
    requests = [request for _, request, _, _ in _bad_predictions(saved_model, instances)]
    requests.append(_predict_request(instances[:3], dtypes))
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec={"name": MODEL}, metadata_field=["signature_def"]
    )
    status = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL})

    def answers(target: str) -> list[Any]:
        with grpc.insecure_channel(target) as channel:
            predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            calls = [(predictions.Predict, request) for request in requests]
            calls += [(predictions.GetModelMetadata, metadata), (models.GetModelStatus, status)]
            calls.append((predictions.Classify, classification_pb2.ClassificationRequest(model_spec={"name": MODEL})))
            found = []
            for call, request in calls:
                try:
                    found.append(call(request, timeout=30).SerializeToString(deterministic=True))
                except grpc.RpcError as error:
                    found.append((error.code(), error.details()))
            return found

    try:
        in_process = answers(grpc_target(app))
    finally:
        running.stop()
    assert in_process == answers(grpc_target(served[1]))
    assert sum(isinstance(answer, bytes) for answer in in_process) == 3  # a prediction, the metadata, the status


def test_the_go_front_end_refuses_a_busy_port_in_one_line(served):
    """The command line checks the port before loading models (above); the Go program checks it again when it
    starts, and its one line becomes the server's UserError."""
    import asyncio

    from pipeline.errors import UserError
    from serving import grpc_bridge

    binary = _front_end_or_skip()
    _, app = served
    with _port_held() as port, pytest.raises(UserError) as refused:
        asyncio.run(grpc_bridge.start_front_end(binary, "127.0.0.1", port, app.repository, app.batcher, 1 << 20))
    message = str(refused.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port} for gRPC") and "address already in use" in message
    assert message.endswith("(pick another --grpc-port)") and "\n" not in message


def test_the_go_front_end_ends_with_the_server(pushed):
    """Stopping the server stops its ``taxi-grpc-front`` and removes the socket's folder; nothing is left behind."""
    _front_end_or_skip()
    repository = ModelRepository(pushed.parent, MODEL, poll_seconds=0, canary=0)
    repository.refresh()
    app = serving_app(repository)
    running = serve_in_background(app)
    (front_end,) = _front_end_processes(app)
    folder = Path(front_end.cmdline()[front_end.cmdline().index("-bridge") + 1]).parent
    assert folder.is_dir()
    running.stop()
    front_end.wait(timeout=10)  # reaped by the server already: psutil only sees that it is gone
    assert not front_end.is_running() and not folder.exists()
