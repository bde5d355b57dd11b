"""The Open Inference Protocol (the "V2" REST protocol of KServe, Triton and MLServer), for a project's model.

A model's inputs are its raw feature columns, one tensor each, named after the column: FP64 for a
number (any integer or float type is accepted and read as float64; NaN means missing, for an optional
column only), BYTES for a category. Each tensor holds one value per row: shape [n] or [n, 1]. The
outputs are `predictions` (FP64 values of a regressor, BYTES labels of a classifier) and, for a
classifier, `probabilities` (FP64, [n, classes], in the order the metadata's `classes` parameter gives).

Tensor data comes as JSON (`data`, flat or nested) or in the binary tensor data extension of Triton
(what `tritonclient` sends by default): a JSON header of `Inference-Header-Content-Length` bytes, then
each input's raw little-endian bytes, a BYTES element as a 4-byte length and its bytes. Outputs are
answered in binary when the request asks for it (`binary_data_output`, or `binary_data` on an output).

Rows then pass the same validation as POST /models/{project}/predict (ranges, categories, required
columns): a refusal is a 400 `{"error": ...}` naming the tensor (the column) and the reason.
"""

import math
import struct
from typing import Any

import msgspec
import numpy as np

from serving.schemas import field_error
from serving.served_project import ServedProject

HEADER_LENGTH = "inference-header-content-length"
NUMBER_TYPES = {
    "FP64": "<f8", "FP32": "<f4", "FP16": "<f2",
    "INT64": "<i8", "INT32": "<i4", "INT16": "<i2", "INT8": "<i1",
    "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "<u1",
}  # fmt: skip
PREDICTIONS = "predictions"
PROBABILITIES = "probabilities"


class InferenceError(Exception):
    """A request the model cannot answer: the message is the client's to read."""


class TensorInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: Any = msgspec.UNSET
    parameters: dict[str, Any] = {}


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] = {}


class InferenceRequest(msgspec.Struct):
    inputs: list[TensorInput]
    id: str | msgspec.UnsetType = msgspec.UNSET
    parameters: dict[str, Any] = {}
    outputs: list[RequestedOutput] | msgspec.UnsetType = msgspec.UNSET


class TensorOutput(msgspec.Struct, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | msgspec.UnsetType = msgspec.UNSET
    parameters: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class InferenceResponse(msgspec.Struct, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[TensorOutput]
    id: str | msgspec.UnsetType = msgspec.UNSET
    parameters: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class TensorMetadata(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ErrorBody(msgspec.Struct):
    error: str


_request_decoder = msgspec.json.Decoder(InferenceRequest)


def metadata(project: ServedProject, version: str | None, classes: tuple[str, ...]) -> ModelMetadata:
    layout = project.layout
    inputs = [TensorMetadata(name, "BYTES" if name in layout.categorical else "FP64", [-1]) for name in layout.features]
    if project.is_classifier:
        outputs = [TensorMetadata(PREDICTIONS, "BYTES", [-1]), TensorMetadata(PROBABILITIES, "FP64", [-1, len(classes)])]
    else:
        outputs = [TensorMetadata(PREDICTIONS, "FP64", [-1])]
    parameters: dict[str, Any] = {"registered_model": project.model_name, "task": project.task, "optional_inputs": sorted(layout.optional)}
    if project.is_classifier:
        parameters["classes"] = list(classes)
    return ModelMetadata(project.name, [version] if version else [], "mlflow_sklearn", inputs, outputs, parameters)


class ParsedInference(msgspec.Struct):
    request: InferenceRequest
    rows: list[tuple]


def parse(body: bytes, header_length: str | None, project: ServedProject, max_rows: int) -> ParsedInference:
    """The rows of an infer request (tuples in the model's column order), validated, or InferenceError."""
    try:
        split = int(header_length) if header_length is not None else len(body)
    except ValueError:
        raise InferenceError(f"Inference-Header-Content-Length is not a number: {header_length!r}") from None
    if not 0 < split <= len(body):
        raise InferenceError(f"Inference-Header-Content-Length {split} does not fit a body of {len(body)} bytes")
    try:
        request = _request_decoder.decode(body[:split])
    except msgspec.ValidationError as error:
        problem = field_error(error)
        raise InferenceError(f"invalid inference request: {problem.reason} (at {problem.location})") from None
    except msgspec.DecodeError as error:
        raise InferenceError(f"the inference request is not valid JSON: {error}") from None
    columns = _columns(request.inputs, memoryview(body)[split:], project)
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        raise InferenceError(f"the input tensors hold different numbers of rows: {sorted(counts)}")
    (count,) = counts
    if count == 0:
        raise InferenceError("the input tensors hold no rows")
    if count > max_rows:
        raise InferenceError(f"at most {max_rows} rows per request, got {count}")
    records = [{name: values[row] for name, values in columns.items()} for row in range(count)]
    try:
        validated = msgspec.convert(records, list[project.invocation_record])  # type: ignore[name-defined]
    except msgspec.ValidationError as error:
        problem = field_error(error, project.layout.features)
        row = problem.location.split("]", 1)[0].removeprefix("$[")
        raise InferenceError(f"input `{problem.field}`, row {row}: {problem.reason}") from None
    return ParsedInference(request, [msgspec.structs.astuple(record) for record in validated])


def _columns(inputs: list[TensorInput], binary: memoryview, project: ServedProject) -> dict[str, list[Any]]:
    layout = project.layout
    known = set(layout.features)
    columns: dict[str, list[Any]] = {}
    offset = 0
    for tensor in inputs:
        if tensor.name not in known:
            raise InferenceError(f"unknown input `{tensor.name}`: the inputs are {', '.join(layout.features)}")
        if tensor.name in columns:
            raise InferenceError(f"input `{tensor.name}` is given twice")
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1) or tensor.shape[0] < 0:
            raise InferenceError(f"input `{tensor.name}` has shape {tensor.shape}: one value per row, [n] or [n, 1]")
        expected = "BYTES" if tensor.name in layout.categorical else "a number type (FP64, FP32, INT64, ...)"
        if (tensor.datatype == "BYTES") != (tensor.name in layout.categorical) or (
            tensor.datatype != "BYTES" and tensor.datatype not in NUMBER_TYPES
        ):
            raise InferenceError(f"input `{tensor.name}` is {tensor.datatype}, expected {expected}")
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            chunk = binary[offset : offset + int(size)]
            if len(chunk) != int(size):
                raise InferenceError(f"input `{tensor.name}` announces {size} binary bytes; the body holds fewer")
            offset += int(size)
            values = _from_binary(tensor, bytes(chunk))
        elif tensor.data is msgspec.UNSET:
            raise InferenceError(f"input `{tensor.name}` has neither data nor binary_data_size")
        else:
            values = _flattened(tensor.data)
        if len(values) != tensor.shape[0]:
            raise InferenceError(f"input `{tensor.name}` has {len(values)} values for shape {tensor.shape}")
        columns[tensor.name] = [_value(tensor, value, tensor.name in layout.optional) for value in values]
    if offset != len(binary):
        raise InferenceError(f"{len(binary) - offset} bytes of binary data belong to no input")
    return columns


def _from_binary(tensor: TensorInput, chunk: bytes) -> list[Any]:
    if tensor.datatype != "BYTES":
        dtype = np.dtype(NUMBER_TYPES[tensor.datatype])
        if len(chunk) % dtype.itemsize:
            raise InferenceError(f"input `{tensor.name}`: {len(chunk)} bytes are not whole {tensor.datatype} values")
        return np.frombuffer(chunk, dtype=dtype).astype(np.float64).tolist()
    values, position = [], 0
    while position < len(chunk):
        if position + 4 > len(chunk):
            raise InferenceError(f"input `{tensor.name}`: truncated BYTES element")
        (length,) = struct.unpack_from("<I", chunk, position)
        element = chunk[position + 4 : position + 4 + length]
        if len(element) != length:
            raise InferenceError(f"input `{tensor.name}`: truncated BYTES element")
        try:
            values.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            raise InferenceError(f"input `{tensor.name}`: an element is not UTF-8") from None
        position += 4 + length
    return values


def _flattened(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flattened(item) if isinstance(item, list) else [item])
    return flat


def _value(tensor: TensorInput, value: Any, optional: bool) -> Any:
    if tensor.datatype == "BYTES":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # left for the record's validation to name
    number = float(value)
    if math.isnan(number):
        return None if optional else number
    return number


def response(
    parsed: ParsedInference, project: ServedProject, version: str, request_id: str, predictions: list, probabilities: list | None
) -> tuple[bytes, int | None]:
    """The infer answer's body, and the length of its JSON header when binary outputs follow it."""
    request = parsed.request
    rows = len(parsed.rows)
    produced: dict[str, tuple[str, list[int], Any]] = {
        PREDICTIONS: ("BYTES" if project.is_classifier else "FP64", [rows], predictions)
    }
    if probabilities is not None:
        produced[PROBABILITIES] = ("FP64", [rows, len(probabilities[0]) if probabilities else 0], probabilities)
    binary_by_default = bool(request.parameters.get("binary_data_output", False))
    wanted = (
        [(output.name, bool(output.parameters.get("binary_data", binary_by_default))) for output in request.outputs]
        if request.outputs is not msgspec.UNSET
        else [(name, binary_by_default) for name in produced]
    )
    outputs, chunks = [], []
    for name, binary in wanted:
        if name not in produced:
            raise InferenceError(f"unknown output `{name}`: the outputs are {', '.join(produced)}")
        datatype, shape, values = produced[name]
        flat = _flattened(values)
        if binary:
            chunk = _to_binary(datatype, flat)
            chunks.append(chunk)
            outputs.append(TensorOutput(name, shape, datatype, parameters={"binary_data_size": len(chunk)}))
        else:
            outputs.append(TensorOutput(name, shape, datatype, data=flat))
    answer = InferenceResponse(
        model_name=project.name,
        model_version=version,
        outputs=outputs,
        id=request.id if request.id is not msgspec.UNSET else request_id,
        parameters={"registered_model": project.model_name, "request_id": request_id},
    )
    header = msgspec.json.encode(answer)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _to_binary(datatype: str, values: list[Any]) -> bytes:
    if datatype == "FP64":
        return np.asarray(values, dtype="<f8").tobytes()
    encoded = [str(value).encode("utf-8") for value in values]
    return b"".join(struct.pack("<I", len(element)) + element for element in encoded)
