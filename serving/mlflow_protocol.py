"""The scoring protocol of `mlflow models serve` (POST /invocations), parsed into the app's records.

Accepted, as MLflow 3 accepts them:

* `application/json` with exactly one of
  `{"dataframe_split": {"columns": [...], "data": [[...]], "index": [...]}}`,
  `{"dataframe_records": [{...}, ...]}`,
  `{"instances": [{...}, ...]}` or `{"instances": {"column": [...], ...}}`,
  `{"inputs": ...}` (same shapes as `instances`, or one record as an object),
  plus an optional `params` object, which these models do not use;
* `text/csv` with a header row (pandas `to_csv(index=False)`), empty cells meaning missing;
* `application/vnd.apache.parquet`.

Like MLflow, extra columns are ignored and numbers sent as strings are converted (MLflow's schema
enforcement casts them). Unlike MLflow, the records then pass the same plausibility checks as
POST /predict (ranges, known categories), so both routes give the same answer to the same rows or
refuse them for the same reason. Errors use MLflow's body, `{"error_code": ..., "message": ...}`.
"""

import csv
import io
import math
from typing import Any

import msgspec

from serving.schemas import FieldError, feature_rows, field_error
from serving.served_project import ServedProject

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
INPUT_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_MISSING_CELLS = frozenset({"", "nan", "NaN", "NA", "N/A", "null", "None"})


class ProtocolError(Exception):
    def __init__(self, status_code: int, error_code: str, message: str, field: FieldError | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.field = field


class _DataframeSplit(msgspec.Struct):
    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


class InvocationsEnvelope(msgspec.Struct):
    """The JSON body: exactly one of the four input fields, and optional params (for the OpenAPI document;
    each model decodes `dataframe_records` straight into its own records, see `_envelope_of`)."""

    dataframe_split: _DataframeSplit | msgspec.UnsetType = msgspec.UNSET
    dataframe_records: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    instances: list[dict[str, Any]] | dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    inputs: list[dict[str, Any]] | dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    params: dict[str, Any] | None = None


def _envelope_of(record: type[msgspec.Struct]) -> type[msgspec.Struct]:
    return msgspec.defstruct(
        f"{record.__name__}Envelope",
        [
            ("dataframe_split", _DataframeSplit | msgspec.UnsetType, msgspec.UNSET),
            ("dataframe_records", list[record] | msgspec.UnsetType, msgspec.UNSET),  # type: ignore[valid-type]
            ("instances", list[dict[str, Any]] | dict[str, Any] | msgspec.UnsetType, msgspec.UNSET),
            ("inputs", list[dict[str, Any]] | dict[str, Any] | msgspec.UnsetType, msgspec.UNSET),
            ("params", dict[str, Any] | None, None),
        ],
    )


class InvocationParser:
    """Rows of one model from /invocations requests: its records, validated as POST /predict validates them."""

    def __init__(self, project: ServedProject, max_rows: int) -> None:
        self._record = project.invocation_record
        self._columns = project.layout.features
        self._optional = project.layout.optional
        self._max_rows = max_rows
        self._envelope_decoder = msgspec.json.Decoder(_envelope_of(project.invocation_record), strict=False)

    def parse(self, body: bytes, content_type: str | None) -> list[tuple]:
        """Rows (tuples in the model's column order) from an /invocations request, or ProtocolError."""
        mime_type, parameters = _parse_content_type(content_type or CONTENT_TYPE_JSON)
        if parameters.get("charset", "utf-8").lower() != "utf-8":
            raise ProtocolError(415, "BAD_REQUEST", "The scoring server only supports UTF-8")
        if unexpected := set(parameters) - {"charset"}:
            raise ProtocolError(415, "BAD_REQUEST", f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}.")
        if mime_type == CONTENT_TYPE_JSON:
            records = self._records_from_json(body)
        elif mime_type == CONTENT_TYPE_CSV:
            records = self._validated(_records_from_csv(body), "$")
        elif mime_type == CONTENT_TYPE_PARQUET:
            records = self._validated(_records_from_parquet(body), "$")
        else:
            raise ProtocolError(
                415,
                "BAD_REQUEST",
                f"This predictor only supports the following content types: {[CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]}. Got '{content_type}'.",
            )
        if not records:
            raise ProtocolError(400, "BAD_REQUEST", "The input holds no records.")
        if len(records) > self._max_rows:
            raise ProtocolError(400, "BAD_REQUEST", f"At most {self._max_rows} records per request, got {len(records)}.")
        return feature_rows(records)

    def _records_from_json(self, body: bytes) -> list[Any]:
        try:
            envelope = self._envelope_decoder.decode(body)
        except msgspec.ValidationError as error:
            problem = field_error(error, self._columns)
            if problem.location == "$":
                raise ProtocolError(400, "BAD_REQUEST", _format_message(), problem) from None
            raise ProtocolError(400, "BAD_REQUEST", f"Invalid input: {problem.reason} (at {problem.location})", problem) from None
        except msgspec.DecodeError as error:
            raise ProtocolError(400, "BAD_REQUEST", f"Ensure that input is a valid JSON formatted string. Error: {error}") from None

        given = [name for name in INPUT_FORMATS if getattr(envelope, name) is not msgspec.UNSET]
        if len(given) != 1:
            raise ProtocolError(400, "BAD_REQUEST", f"{_format_message()} Received input fields: {given}.")
        (input_format,) = given
        payload = getattr(envelope, input_format)
        if input_format == "dataframe_records":
            return payload
        if input_format == "dataframe_split":
            return self._validated(_records_from_split(payload), "$.dataframe_split.data")
        return self._validated(_records_from_tf_serving(payload, input_format), f"$.{input_format}")

    def _validated(self, records: list[Any], location: str) -> list[Any]:
        for record in records:
            if isinstance(record, dict):
                for name in self._optional & record.keys():  # NaN means missing in DataFrame-shaped inputs
                    value = record[name]
                    if isinstance(value, float) and math.isnan(value):
                        record[name] = None
        try:
            # Not strict: like MLflow's schema enforcement, accept "880" for a double column.
            return msgspec.convert(records, list[self._record], strict=False)  # type: ignore[name-defined]
        except msgspec.ValidationError as error:
            problem = field_error(error, self._columns)
            problem = FieldError(reason=problem.reason, location=location + problem.location[1:], field=problem.field)
            raise ProtocolError(400, "BAD_REQUEST", f"Invalid input: {problem.reason} (at {problem.location})", problem) from None


def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    mime_type, *pairs = (part.strip() for part in content_type.split(";"))
    parameters = {
        key.strip().lower(): value.strip().strip('"') for key, _, value in (pair.partition("=") for pair in pairs if pair)
    }
    return mime_type.lower(), parameters


def _format_message() -> str:
    return f"The input must be a JSON dictionary with exactly one of the input fields {set(INPUT_FORMATS)}."


def _records_from_split(split: _DataframeSplit) -> list[dict[str, Any]]:
    width = len(split.columns)
    for position, row in enumerate(split.data):
        if len(row) != width:
            raise ProtocolError(400, "BAD_REQUEST", f"dataframe_split row {position} has {len(row)} values for {width} columns.")
    return [dict(zip(split.columns, row, strict=True)) for row in split.data]


def _records_from_tf_serving(payload: list[dict[str, Any]] | dict[str, Any], input_format: str) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return payload
    if all(isinstance(value, list) for value in payload.values()):  # columnar: {"column": [values...]}
        lengths = {len(value) for value in payload.values()}
        if len(lengths) > 1:
            raise ProtocolError(400, "BAD_REQUEST", f"The columns of '{input_format}' have different lengths: {sorted(lengths)}.")
        return [dict(zip(payload, values, strict=True)) for values in zip(*payload.values(), strict=True)]
    return [payload]  # one record as an object


def _records_from_csv(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(
            400, "BAD_REQUEST", f"Ensure that input is a valid UTF-8 encoded string. Error: '{error!r}'"
        ) from None
    records = []
    for line in csv.DictReader(io.StringIO(text)):
        if None in line:
            raise ProtocolError(400, "BAD_REQUEST", f"CSV line {len(records) + 2} has more cells than the header.")
        records.append(
            {column: None if cell is None or cell.strip() in _MISSING_CELLS else cell for column, cell in line.items()}
        )
    return records


def _records_from_parquet(body: bytes) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(io.BytesIO(body)).to_pylist()
    except Exception as error:
        raise ProtocolError(400, "BAD_REQUEST", f"Failed to parse input as Parquet. Error: '{error}'") from None
    return rows
