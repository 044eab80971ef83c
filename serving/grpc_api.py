"""The gRPC side of ``taxi-pipeline serve``: TF Serving's ``PredictionService`` and ``ModelService`` (port 8500).

Most production TF Serving clients speak gRPC through TF Serving's own stubs
(``tensorflow_serving.apis.prediction_service_pb2_grpc``). This module answers those services' calls over the
same ``ModelRepository`` as REST (so hot swap, canary and version labels are the same) and the same ``Batcher`` (so
gRPC and REST requests of one signature share TensorFlow calls), on the event loop that serves REST. The transport
is ``taxi-grpc-front`` (grpc-go, ``serving/grpc_front``) where it is built, which hands each call's bytes to this
process (``serving.grpc_bridge``, which chooses); else ``grpc.aio`` in this process, with the servicers below
(``start_in_process``). Both call the same functions (``prepare_predict``, ``model_metadata``, ``refusal``,
``model_status``, ``status_of``).

What each call answers, as TF Serving answers for a TF 2 SavedModel:

- ``Predict``: typed ``TensorProto`` inputs, one per signature input, each of shape ``[batch]``; outputs as proto
  fields (``float_val``...), as TF Serving's default serialization writes them; ``output_filter`` honoured.
- ``GetModelMetadata``: the saved SignatureDefs (a ``SignatureDefMap`` in ``metadata["signature_def"]``).
- ``Classify``/``Regress``: INVALID_ARGUMENT with TF Serving's text (the signatures are predict signatures).
- ``ModelService.GetModelStatus``: the versions and their states, as the REST status.
- ``MultiInference`` and ``HandleReloadConfigRequest`` are not served (UNIMPLEMENTED): the first needs
  classification or regression signatures, the second a model config file, neither of which this server has.

Errors carry TF Serving's status code and, where TF Serving's text is known, that text (``serving.formats``'
``RequestError`` statuses map to codes: 400 INVALID_ARGUMENT, 404 NOT_FOUND, 413 RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from pipeline.errors import UserError
from serving.batching import Batcher
from serving.formats import DEFAULT_SIGNATURE, Prepared, RequestError, refuse_classify_or_regress
from serving.repository import LoadedVersion, ModelRepository

log = logging.getLogger(__name__)

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# The one metadata field TF Serving knows.
SIGNATURE_DEF_FIELD = "signature_def"
# TensorProto's typed value field per dtype: TF Serving writes outputs into these (Tensor::AsProtoField).
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


class GrpcError(Exception):
    """A request refused with a gRPC status code that has no REST twin (e.g. FAILED_PRECONDITION)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class GrpcServer(Protocol):
    """A running gRPC front end: ``stop()`` answers the calls in flight (up to a few seconds), then ends it."""

    async def stop(self) -> None: ...


class _InProcessServer:
    def __init__(self, server: grpc.aio.Server):
        self._server = server

    async def stop(self) -> None:
        await self._server.stop(grace=5)


async def start_in_process(
    host: str, port: int, repository: ModelRepository, batcher: Batcher, max_message_bytes: int
) -> GrpcServer:
    """Both services on ``host:port`` with grpc.aio on the running event loop (where ``taxi-grpc-front`` is not
    built); a UserError if the port cannot be used. The arguments are ``grpc_bridge.start_grpc_server``'s."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),  # a port another server holds must be refused, not shared
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repository, batcher), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    address = grpc_address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise UserError(
            f"cannot listen on {address} for gRPC: the port is in use or not allowed (pick another --grpc-port)"
        )
    await server.start()
    log.info(
        "gRPC (TF Serving's PredictionService and ModelService) on %s, by grpc.aio in this process: "
        "`make grpc-front` builds the faster taxi-grpc-front (docs/SERVING.md)",
        address,
    )
    return _InProcessServer(server)


def grpc_address(host: str, port: int) -> str:
    """``host:port`` as gRPC and Go write it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, GetModelMetadata, Classify and Regress over the shared repository and batcher (grpc.aio)."""

    def __init__(self, repository: ModelRepository, batcher: Batcher):
        self._repository = repository
        self._batcher = batcher

    async def Predict(self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802 - TF Serving's method name
        try:
            prepared, encode = prepare_predict(self._repository, request, serialized=False)
            return await self._batcher.predict(prepared, encode)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status, as TF Serving's
            await context.abort(*status_of(error))

    async def GetModelMetadata(  # noqa: N802 - TF Serving's method name
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        try:
            return model_metadata(self._repository, request)
        except Exception as error:  # noqa: BLE001 - as Predict
            await context.abort(*status_of(error))

    async def Classify(  # noqa: N802 - TF Serving's method name
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await context.abort(*status_of(refusal(self._repository, request, "classify")))

    async def Regress(  # noqa: N802 - TF Serving's method name
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await context.abort(*status_of(refusal(self._repository, request, "regress")))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: the same versions and states as REST's ``GET /v1/models/<name>`` (grpc.aio)."""

    def __init__(self, repository: ModelRepository):
        self._repository = repository

    async def GetModelStatus(  # noqa: N802 - TF Serving's method name
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        try:
            return model_status(self._repository, request)
        except Exception as error:  # noqa: BLE001 - as Predict
            await context.abort(*status_of(error))


# What each call answers: the same functions for both transports (grpc.aio here, taxi-grpc-front through
# serving.grpc_bridge). They raise RequestError or GrpcError for the caller's mistakes; ``status_of`` gives the code.


def prepare_predict(
    repository: ModelRepository, request: predict_pb2.PredictRequest, *, serialized: bool
) -> tuple[Prepared, Callable[[Mapping[str, np.ndarray]], Any]]:
    """A Predict call checked and ready for the batcher: the prepared request and its answer's encoding (the
    ``PredictResponse``, or its bytes where ``serialized``), which runs in the batcher's worker thread."""
    model = _choose(repository, request.model_spec)
    prepared, outputs = prepare_tensors(model, request)
    spec = _response_spec(request.model_spec.name, model.version, prepared.signature.name)
    if serialized:
        return prepared, lambda results: predict_response(spec, outputs, results).SerializeToString()
    return prepared, lambda results: predict_response(spec, outputs, results)


def model_metadata(
    repository: ModelRepository, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata: the saved SignatureDefs of the version named, or of the newest."""
    if not request.HasField("model_spec"):
        raise RequestError("Missing ModelSpec")
    if not request.metadata_field:
        raise RequestError("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise RequestError(f"Metadata field {field} is not supported")
    model = _choose(repository, request.model_spec, newest=True)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.CopyFrom(_response_spec(request.model_spec.name, model.version, ""))
    response.metadata[SIGNATURE_DEF_FIELD].Pack(model.signature_defs)
    return response


def refusal(repository: ModelRepository, request: Any, verb: str) -> RequestError:
    """Classify/Regress, as REST's ``:classify``/``:regress``: the version is resolved, then its signature refused."""
    try:
        model = _choose(repository, request.model_spec)
        return refuse_classify_or_regress(
            model.signatures, verb, request.model_spec.signature_name or DEFAULT_SIGNATURE
        )
    except RequestError as refused:
        return refused


def model_status(
    repository: ModelRepository, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus: the versions and their states, as REST's status answer."""
    spec = request.model_spec
    status = repository.status(spec.name, _named_version(repository, spec))
    return json_format.ParseDict(status, get_model_status_pb2.GetModelStatusResponse())


def status_of(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status a failed call answers with: TF Serving's code for the caller's mistakes (RequestError's HTTP
    status mapped, or GrpcError's own code); INTERNAL, logged, for anything else (a bug; the server goes on)."""
    if isinstance(error, GrpcError):
        return error.code, str(error)
    if isinstance(error, RequestError):
        return _CODES.get(error.status, grpc.StatusCode.INVALID_ARGUMENT), str(error)
    log.error("gRPC call failed", exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}"


def prepare_tensors(model: LoadedVersion, request: predict_pb2.PredictRequest) -> tuple[Prepared, list[str]]:
    """Checks a PredictRequest against the signature it names, as TF Serving does, before it joins a batch.

    Args:
        model: the chosen version.
        request: the request.

    Returns:
        The prepared request (each input as a list of values, as REST's) and the output aliases to answer with.
    """
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = model.signatures.get(name)
    if signature is None:
        raise GrpcError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
    given, expected = sorted(request.inputs), sorted(signature.inputs)
    if len(given) != len(expected):
        extra = sorted(set(given) - set(expected))
        missing = sorted(set(expected) - set(given))
        raise RequestError(
            f"input size does not match signature: {len(given)}!={len(expected)} len({{{','.join(given)}}}) != "
            f"len({{{','.join(expected)}}}). Sent extra: {{{','.join(extra)}}}. "
            f"Missing but required: {{{','.join(missing)}}}."
        )
    for key in given:
        if key not in signature.inputs:
            raise RequestError(
                f"input tensor alias not found in signature: {key}. Inputs expected to be in the set "
                f"{{{','.join(expected)}}}."
            )
    columns: dict[str, list[Any]] = {}
    lengths = set()
    for key in expected:
        columns[key] = _input_values(key, request.inputs[key], signature.inputs[key])
        lengths.add(len(columns[key]))
    if len(lengths) > 1:
        raise RequestError(f"every input must have the same batch size; got sizes {sorted(lengths)}")
    outputs = _output_aliases(list(request.output_filter), signature.outputs)
    prepared = Prepared(signature=signature, columns=columns, rows=lengths.pop(), form="tensors")
    return prepared, outputs


def _input_values(key: str, proto: tensor_pb2.TensorProto, dtype: tf.DType) -> list[Any]:
    """One input's values as a list (bytes for strings); INVALID_ARGUMENT for a wrong type or shape."""
    if proto.dtype != dtype.as_datatype_enum:
        raise RequestError(f"Expected input {key} to be {dtype.name} but {_dtype_name(proto.dtype)} is provided")
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if len(shape) != 1 or shape[0] < 1:
        raise RequestError(f"input {key} must have shape [batch] with batch >= 1; got shape {shape}")
    field = _VALUE_FIELDS.get(proto.dtype)
    if not proto.tensor_content and field is not None:
        # The values as the client wrote them (what tf.make_tensor_proto does for strings and short lists):
        # read directly, about 10x faster than tf.make_ndarray, which costs more than the rest of a 1-row request.
        values = list(getattr(proto, field))
        if not 0 < len(values) <= shape[0]:
            raise RequestError(f"tensor parsing error: {key}")
        # TensorFlow's shorthand, kept: fewer values than the shape says repeat the last one.
        return values + values[-1:] * (shape[0] - len(values))
    try:
        return tf.make_ndarray(proto).tolist()
    except Exception:  # noqa: BLE001 - whatever numpy or TensorFlow make of a malformed tensor
        raise RequestError(f"tensor parsing error: {key}") from None


def _dtype_name(datatype: int) -> str:
    """``float64`` for DT_DOUBLE, as TensorFlow names dtypes; the enum's own name for one without a TF dtype
    (DT_INVALID: a tensor whose dtype the client never set)."""
    try:
        return tf.dtypes.as_dtype(datatype).name
    except TypeError:
        return types_pb2.DataType.Name(datatype) if datatype in types_pb2.DataType.values() else str(datatype)


def _output_aliases(requested: list[str], outputs: tuple[str, ...]) -> list[str]:
    """The outputs to answer with: ``output_filter``'s, in its order, or all of the signature's."""
    seen: set[str] = set()
    for alias in requested:
        if alias not in outputs:
            raise RequestError(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(outputs)}}}."
            )
        if alias in seen:
            raise RequestError(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return requested or list(outputs)


def predict_response(
    spec: model_pb2.ModelSpec, aliases: list[str], results: Mapping[str, np.ndarray]
) -> predict_pb2.PredictResponse:
    """The PredictResponse for one request's rows (in a worker thread, as REST's JSON encoding)."""
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(spec)
    for alias in aliases:
        _fill(response.outputs[alias], results[alias])
    return response


def _fill(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """``array`` as TF Serving writes an output: dtype, shape, and the values in the dtype's ``*_val`` field."""
    dtype = tf.dtypes.as_dtype(array.dtype).as_datatype_enum if array.dtype != object else types_pb2.DT_STRING
    field = _VALUE_FIELDS.get(dtype)
    if field is None:  # a type without a plain value field (e.g. half): tensor_content, as make_tensor_proto writes
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    proto.dtype = dtype
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(array.ravel().tolist())


def _response_spec(name: str, version: int, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    spec.version.value = version
    return spec


def _named_version(repository: ModelRepository, spec: model_pb2.ModelSpec) -> int | None:
    """The version a ModelSpec names by number or label (``version_choice``), if any."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value
    if choice == "version_label":
        return repository.labelled(spec.name, spec.version_label)
    return None


def _choose(repository: ModelRepository, spec: model_pb2.ModelSpec, *, newest: bool = False) -> LoadedVersion:
    """The version a request gets, as REST chooses it; ``newest``: an unnamed version means the newest (metadata)."""
    version = _named_version(repository, spec)
    if version is None and newest:
        version = repository.newest()
    return repository.choose(spec.name, version)
