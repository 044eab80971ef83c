"""TensorFlow Serving's REST ``:predict`` request and response formats, on top of a loaded SavedModel signature.

A request names its inputs either row by row (``{"instances": [{"fare": 12.5, ...}, ...]}``) or column by column
(``{"inputs": {"fare": [12.5, ...], ...}}``); the answer is ``{"predictions": [...]}`` or ``{"outputs": ...}``
respectively, shaped exactly as TF Serving shapes them, so a client written against TF Serving works unchanged.

Values are checked against the signature's own input specs before TensorFlow sees them: a wrong type or a missing
feature is the caller's mistake and must come back as a 400 that names the feature and the row, not as a
TensorFlow stack trace. ``null`` is the one convenience beyond TF Serving: a row with a missing value is sent
through ``serving_tf_example`` as a ``tf.Example`` without that feature, which is how the pipeline's own data
expresses a missing value (census tracts are mostly empty), so optional features can be left out.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from models.signatures import EXAMPLES_INPUT, EXAMPLES_SIGNATURE, SERVING_SIGNATURE
from tfx_compat import flat_signature_call

# The default when a request names no signature, as in TF Serving: raw feature values in (models/signatures.py).
DEFAULT_SIGNATURE = SERVING_SIGNATURE
# EXAMPLES_SIGNATURE (serialized tf.Example in) is used for rows with missing (null) values, which a dense raw
# tensor cannot express.


class RequestError(Exception):
    """A request the server cannot answer; ``status`` is the HTTP status, ``str(error)`` the JSON ``error``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How to check and convert one input's JSON values, worked out once per signature.

    Per request this is the hot path; asking a ``tf.DType`` for its kind or range costs microseconds each time
    (``dtype.min`` builds a numpy ``iinfo``), which added up to a fifth of a small request's time.
    """

    dtype: tf.DType
    kind: str  # "string", "integer", "float", or "other" (a type this server does not convert from JSON)
    accepted: tuple[type, ...]  # the JSON value types taken (bool excluded, though it is an int)
    low: int = 0
    high: int = 0

    @classmethod
    def of(cls, dtype: tf.DType) -> InputSpec:
        if dtype == tf.string:
            return cls(dtype, "string", (str,))
        if dtype.is_integer:
            return cls(dtype, "integer", (int,), int(dtype.min), int(dtype.max))
        if dtype.is_floating:
            return cls(dtype, "float", (int, float))
        return cls(dtype, "other", ())


@dataclasses.dataclass(frozen=True)
class Signature:
    """One callable signature of a SavedModel and its typed inputs (one value per instance each)."""

    name: str
    function: Any  # a ConcreteFunction called with keyword tensors
    inputs: Mapping[str, tf.DType]
    outputs: tuple[str, ...]
    specs: Mapping[str, InputSpec]
    # ``function`` without TensorFlow's per-call checks of its arguments (``tfx_compat.flat_signature_call``), for a
    # signature whose every input is ``[batch]``: ``call`` hands it only tensors of that shape and the input's dtype.
    flat_call: Callable[[Mapping[str, tf.Tensor]], Mapping[str, tf.Tensor]] | None = None

    @classmethod
    def from_function(cls, name: str, function: Any) -> Signature:
        specs: Mapping[str, tf.TensorSpec] = function.structured_input_signature[1]
        outputs = tuple(sorted(function.structured_outputs))
        batch_only = all(spec.shape.rank == 1 and spec.shape[0] is None for spec in specs.values())
        return cls(
            name=name,
            function=function,
            inputs={key: spec.dtype for key, spec in specs.items()},
            outputs=outputs,
            specs={key: InputSpec.of(spec.dtype) for key, spec in specs.items()},
            flat_call=flat_signature_call(function) if batch_only else None,
        )

    @property
    def scalar_inputs(self) -> bool:
        """Whether every input is one value per instance (``[batch]``), the only form this server converts."""
        specs = self.function.structured_input_signature[1]
        return all(spec.shape.rank == 1 for spec in specs.values())


# TF Serving's method names. A TF 2 SavedModel's signatures are all predict signatures, so TF Serving refuses
# Classify and Regress on them with its check of the signature's method name (a 400 / INVALID_ARGUMENT).
PREDICT_METHOD = "tensorflow/serving/predict"
_CLASSIFY_OR_REGRESS = {
    "classify": ("classification", "tensorflow/serving/classify"),
    "regress": ("regression", "tensorflow/serving/regress"),
}


def refuse_classify_or_regress(signatures: Mapping[str, Signature], verb: str, name: Any) -> RequestError:
    """TF Serving's error for ``:classify``/``:regress`` (REST) and Classify/Regress (gRPC) on this model.

    Args:
        signatures: the chosen version's signatures.
        verb: "classify" or "regress".
        name: the signature the request names (``serving_default`` when it names none).
    """
    if name not in signatures:
        return RequestError(f"No signature was found with the name: {name}")
    kind, method = _CLASSIFY_OR_REGRESS[verb]
    return RequestError(f"Expected {kind} signature method_name to be {method}. Was: {PREDICT_METHOD}")


def parse_json(body: bytes) -> Any:
    """The request's JSON document, or a 400 that says where it is malformed."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise RequestError("JSON Parse error: the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise RequestError(f"JSON Parse error: {error.msg} at offset {error.pos}") from None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A request that passed every check: the signature to call, its typed input columns, and the answer's form.

    Everything that can be the caller's fault is found while preparing, before TensorFlow is called, so requests
    can share one TensorFlow call (``serving.batching``) without one bad row failing the others.
    """

    signature: Signature
    columns: Mapping[str, list[Any]]  # input name -> one value per row, of the input's Python type
    rows: int
    form: str  # REST: "instances" (answer "predictions") or "inputs" (answer "outputs"); gRPC: "tensors"


def prepare(signatures: Mapping[str, Signature], request: Any) -> Prepared:
    """Checks a ``:predict`` request document and converts its values; a 400 ``RequestError`` if it is wrong.

    Args:
        signatures: the loaded version's signatures, by name.
        request: the decoded JSON body (``parse_json``).

    Returns:
        The signature to call (``serving_tf_example`` for rows with null values), its typed columns and the answer's
        form.
    """
    if not isinstance(request, dict):
        raise RequestError('the request must be a JSON object with an "instances" or an "inputs" key')
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    signature = signatures.get(name) if isinstance(name, str) else None
    if signature is None or not signature.scalar_inputs:
        known = ", ".join(sorted(n for n, s in signatures.items() if s.scalar_inputs))
        raise RequestError(f'Serving signature name: "{name}" not found in signature def (this model has: {known})')
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise RequestError(f"unknown key(s) in the request: {', '.join(sorted(unknown))}")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError('the request must have exactly one of "instances" (rows) or "inputs" (columns)')

    if "instances" in request:
        form = "instances"
        columns = _columns_from_instances(request["instances"], signature)
    else:
        form = "inputs"
        columns = _columns_from_inputs(request["inputs"], signature)
    signature, typed = _typed_columns(signatures, signature, columns)
    return Prepared(signature=signature, columns=typed, rows=len(next(iter(typed.values()))), form=form)


def call(signature: Signature, columns: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    """One TensorFlow call of ``signature``; a 400 ``RequestError`` if TensorFlow refuses an input.

    Args:
        signature: the signature to call.
        columns: its inputs, as ``Prepared.columns`` holds them (of one request, or of several concatenated).

    Returns:
        Each output by name as a numpy array with a row per input row (strings as bytes, as TensorFlow gives them).
    """
    tensors = {key: _tensor(values, signature.specs[key]) for key, values in columns.items()}
    try:
        outputs = signature.flat_call(tensors) if signature.flat_call else signature.function(**tensors)
    except tf.errors.InvalidArgumentError as error:
        if _NOT_AN_EXAMPLE in error.message:
            raise RequestError(_not_an_example(signature)) from None
        raise RequestError(_cause(error.message)) from None
    except UnicodeDecodeError:
        # TensorFlow quotes the offending input in its message, and fails to decode that message as UTF-8 when
        # the input is binary: such bytes can only have come from the request (a "b64" value that is no tf.Example).
        raise RequestError(_not_an_example(signature)) from None
    return {key: outputs[key].numpy() for key in signature.outputs}


# TensorFlow's ParseExample error for bytes that are not a serialized tf.Example.
_NOT_AN_EXAMPLE = "Could not parse example input"
# Lines of a TensorFlow error message that say where, not why.
_GRAPH_DETAIL = ("Graph execution error:", "Detected at node", "<stack traces unavailable>", "[[")


def _not_an_example(signature: Signature) -> str:
    strings = [key for key, spec in signature.specs.items() if spec.kind == "string"]
    where = f'input "{strings[0]}"' if len(strings) == 1 else f'signature "{signature.name}"'
    return f"{where}: a value is not a serialized tf.Example (TensorFlow could not parse it)"


def _cause(message: str) -> str:
    """The line of a TensorFlow error that says why: its first line is often only "Graph execution error:"."""
    lines = [line.strip() for line in message.strip().splitlines()]
    for line in lines:
        if line and not line.startswith(_GRAPH_DETAIL):
            return line
    return lines[0] if lines else "TensorFlow refused the input"


def json_answer(prepared: Prepared, results: Mapping[str, np.ndarray]) -> bytes:
    """The response body for ``prepared``, shaped as TF Serving shapes it, as compact JSON (as TF Serving writes it).

    Args:
        prepared: the request.
        results: ``call``'s outputs for this request's rows only.

    Returns:
        ``{"predictions": ...}`` for ``instances``, ``{"outputs": ...}`` for ``inputs``.
    """
    lists = {key: _plain(value).tolist() for key, value in results.items()}
    if prepared.form == "instances":
        if len(lists) == 1:
            document: dict[str, Any] = {"predictions": next(iter(lists.values()))}
        else:
            document = {
                "predictions": [{key: value[row] for key, value in lists.items()} for row in range(prepared.rows)]
            }
    elif len(lists) == 1:
        document = {"outputs": next(iter(lists.values()))}
    else:
        document = {"outputs": lists}
    return json.dumps(document, separators=(",", ":")).encode()


def _columns_from_instances(instances: Any, signature: Signature) -> dict[str, list[Any]]:
    if not isinstance(instances, list) or not instances:
        raise RequestError('"instances" must be a non-empty list of rows')
    expected = signature.inputs
    if len(expected) == 1 and not _is_named_row(instances[0]):
        # TF Serving's shorthand for single-input signatures: the rows are the values themselves.
        return {next(iter(expected)): instances}
    columns: dict[str, list[Any]] = {key: [] for key in expected}
    for row, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"instance {row} must be an object of {{feature: value}}, got {_kind(instance)}")
        _check_names(instance, expected, f"instance {row}")
        for key, column in columns.items():
            column.append(instance[key])
    return columns


def _is_named_row(instance: Any) -> bool:
    """An object of {input: value}, as opposed to a bare value ({"b64": ...} is a value: binary data in JSON)."""
    return isinstance(instance, dict) and set(instance) != {"b64"}


def _columns_from_inputs(inputs: Any, signature: Signature) -> dict[str, list[Any]]:
    expected = signature.inputs
    if len(expected) == 1 and isinstance(inputs, list):
        inputs = {next(iter(expected)): inputs}
    if not isinstance(inputs, dict):
        raise RequestError('"inputs" must be an object of {feature: [values]}')
    _check_names(inputs, expected, '"inputs"')
    lengths = set()
    for key in expected:
        if not isinstance(inputs[key], list) or not inputs[key]:
            raise RequestError(f'input "{key}" must be a non-empty list with one value per instance')
        lengths.add(len(inputs[key]))
    if len(lengths) > 1:
        raise RequestError(f"every input must have the same number of values; got lengths {sorted(lengths)}")
    return {key: inputs[key] for key in expected}


def _check_names(given: Mapping[str, Any], expected: Mapping[str, tf.DType], where: str) -> None:
    missing = [key for key in expected if key not in given]
    if missing:
        raise RequestError(f"{where} is missing feature(s): {', '.join(missing)} (use null for a missing value)")
    extra = [key for key in given if key not in expected]
    if extra:
        raise RequestError(f"{where} has unknown feature(s): {', '.join(extra)}; expected: {', '.join(expected)}")


def _typed_columns(
    signatures: Mapping[str, Signature], signature: Signature, columns: dict[str, list[Any]]
) -> tuple[Signature, dict[str, list[Any]]]:
    """The signature to call and its input columns as values of each input's type (a 400 for any that is not)."""
    missing = [key for key, values in columns.items() if any(value is None for value in values)]
    if not missing:
        return signature, {key: _typed_values(key, values, signature.specs[key]) for key, values in columns.items()}
    if signature.name != DEFAULT_SIGNATURE or EXAMPLES_SIGNATURE not in signatures:
        raise RequestError(f"missing (null) value for input(s): {', '.join(missing)}")
    # The raw signature takes dense tensors; express the missing values as absent tf.Example features instead.
    typed = {key: _typed_values(key, values, signature.specs[key], allow_null=True) for key, values in columns.items()}
    return signatures[EXAMPLES_SIGNATURE], {EXAMPLES_INPUT: _examples(typed, signature.specs)}


def _tensor(values: list[Any], spec: InputSpec) -> tf.Tensor:
    """Via numpy, because ``tf.constant`` refuses a float column that JSON wrote as a mix of ints and floats."""
    if spec.kind == "string":
        return tf.constant(values, dtype=tf.string)
    return tf.constant(np.asarray(values, dtype=spec.dtype.as_numpy_dtype))


def _typed_values(key: str, values: Sequence[Any], spec: InputSpec, allow_null: bool = False) -> list[Any]:
    """``values`` as Python values of the input's type, or a 400 naming the first one that is not."""
    if spec.kind == "string":
        return [_as_bytes(key, row, value, allow_null) for row, value in enumerate(values)]
    if spec.kind == "other":
        raise RequestError(f'input "{key}" has type {spec.dtype.name}, which this server does not convert from JSON')
    accepted = spec.accepted
    # type(), not isinstance(): JSON gives exactly int or float, and it keeps bool (an int subclass) out.
    for row, value in enumerate(values):
        if type(value) in accepted or (value is None and allow_null):
            continue
        what = "integers" if spec.kind == "integer" else "numbers"
        raise RequestError(f'input "{key}" takes {what} ({spec.dtype.name}); value {row} is {_kind(value)}')
    if spec.kind == "integer":
        low, high = spec.low, spec.high
        for row, value in enumerate(values):
            if value is not None and not low <= value <= high:
                raise RequestError(f'input "{key}": value {row} ({value}) is out of range for {spec.dtype.name}')
    return list(values)


def _as_bytes(key: str, row: int, value: Any, allow_null: bool) -> bytes | None:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise RequestError(f'input "{key}": value {row} has invalid base64 in "b64"') from None
    if value is None and allow_null:
        return None
    raise RequestError(f'input "{key}" takes strings; value {row} is {_kind(value)}')


def _examples(columns: Mapping[str, list[Any]], specs: Mapping[str, InputSpec]) -> list[bytes]:
    """Serialized tf.Examples, one per row, leaving out the features whose value is None."""
    batch = len(next(iter(columns.values())))
    serialized = []
    for row in range(batch):
        feature = {}
        for key, values in columns.items():
            value = values[row]
            if value is None:
                continue
            kind = specs[key].kind
            if kind == "string":
                feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
            elif kind == "integer":
                feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            else:
                feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return serialized


def _plain(array: np.ndarray) -> np.ndarray:
    """String outputs as text (JSON has no bytes); numbers unchanged."""
    if array.dtype == object:
        return np.vectorize(lambda value: value.decode("utf-8", "replace"), otypes=[object])(array)
    return array


def _kind(value: Any) -> str:
    text = json.dumps(value)
    return f"{text[:40]}{'...' if len(text) > 40 else ''} ({type(value).__name__ if value is not None else 'null'})"
