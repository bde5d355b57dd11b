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
refuse them for the same reason.

Refusals use MLflow's body, `{"error_code": ..., "message": ...}`, with the `error_code` and the start
of the message `mlflow models serve` gives for the same request, because clients branch on them
(`mlops_assets_tests/serving/test_mlflow_error_codes.py` sends every case to both servers):

* BAD_REQUEST, "Invalid input. ..." : the body is not JSON, not a JSON object, its input field has the
  wrong shape, or a value does not fit its column;
* BAD_REQUEST, "The input must be a JSON dictionary with exactly one of the input fields ..." : none or
  several input fields;
* BAD_REQUEST, "Failed to parse input as a Pandas DataFrame. ..." : CSV or Parquet that cannot be read;
* INVALID_PARAMETER_VALUE, "Failed to predict data. ..." : the model's inputs are missing (a column, or
  every column: a record that is not an object, no records);
* BAD_REQUEST, "Encountered an unexpected error while evaluating the model. ..." : every column and no row;
* 415 with MLflow's message for a content type or charset it does not take. MLflow answers those in
  text/plain, without an error_code; the app keeps the JSON body (BAD_REQUEST), so that a client can read
  every refusal the same way.

Each message then names the field (or the part of the body) and the reason, where MLflow's quotes the
whole input. The app's own refusals, of values MLflow would let through (out of range, an unknown
category, a missing required value), are BAD_REQUEST "Invalid input. ..." too.
"""

import csv
import io
import math
import re
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from serving.schemas import FieldError, feature_rows, field_error
from serving.served_project import ServedProject

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
INPUT_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_MISSING_CELLS = frozenset({"", "nan", "NaN", "NA", "N/A", "null", "None"})
BAD_REQUEST = "BAD_REQUEST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
REQUIRED_INPUT_FORMAT = f"The input must be a JSON dictionary with exactly one of the input fields {set(INPUT_FORMATS)}"
_TYPE_MISMATCH = re.compile(r"^Expected `[^`]+`, got `(?P<got>[^`]+)`$")


class ProtocolError(Exception):
    def __init__(self, status_code: int, error_code: str, message: str, field: FieldError | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.field = field


# How a value that does not fit its column is refused: MLflow's wording depends on how the body was read.
ConversionFailure = Callable[[FieldError], ProtocolError]


class _DataframeSplit(msgspec.Struct):
    columns: list[Any] | None = None  # pandas names them 0, 1, ... when absent: none is an input of the model
    data: list[list[Any]] = []
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
            # Ignored whatever their shape, as MLflow ignores params a model does not declare.
            ("params", Any, None),
        ],
    )


class InvocationParser:
    """Rows of one model from /invocations requests: its records, validated as POST /predict validates them."""

    def __init__(self, project: ServedProject, max_rows: int) -> None:
        self._record = project.invocation_record
        self._columns = project.layout.features
        self._optional = project.layout.optional
        self._required = [name for name in self._columns if name not in self._optional]
        self._max_rows = max_rows
        self._envelope_decoder = msgspec.json.Decoder(_envelope_of(project.invocation_record), strict=False)

    def parse(self, body: bytes, content_type: str | None) -> list[tuple]:
        """Rows (tuples in the model's column order) from an /invocations request, or ProtocolError."""
        mime_type, parameters = _parse_content_type(content_type or CONTENT_TYPE_JSON)
        if parameters.get("charset", "utf-8").lower() != "utf-8":
            raise ProtocolError(415, BAD_REQUEST, "The scoring server only supports UTF-8")
        if unexpected := set(parameters) - {"charset"}:
            raise ProtocolError(415, BAD_REQUEST, f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}.")
        if mime_type == CONTENT_TYPE_JSON:
            records, columns = self._records_from_json(body)
        elif mime_type == CONTENT_TYPE_CSV:
            raw, columns = _records_from_csv(body)
            records = self._validated(raw, "$", _csv_conversion_failure)
        elif mime_type == CONTENT_TYPE_PARQUET:
            raw, columns = _records_from_parquet(body)
            records = self._validated(raw, "$", _signature_mismatch)
        else:
            raise ProtocolError(
                415,
                BAD_REQUEST,
                "This predictor only supports the following content types: "
                f"Types: {[CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]}. Got '{content_type}'.",
            )
        if not records:
            raise self._no_rows(columns)
        if len(records) > self._max_rows:
            raise ProtocolError(400, BAD_REQUEST, f"At most {self._max_rows} records per request, got {len(records)}.")
        return feature_rows(records)

    def _records_from_json(self, body: bytes) -> tuple[list[Any], Collection[str] | None]:
        """The records, and the columns the body names when it names them apart from the records."""
        try:
            envelope = self._envelope_decoder.decode(body)
        except msgspec.ValidationError as error:
            raise self._envelope_refusal(body, field_error(error, self._columns)) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            raise _invalid_input(f"Ensure that input is a valid JSON formatted string. Error: {error}") from None

        given = [name for name in INPUT_FORMATS if getattr(envelope, name) is not msgspec.UNSET]
        if len(given) != 1:
            raise _not_one_input_field(given)
        (input_format,) = given
        payload = getattr(envelope, input_format)
        if input_format == "dataframe_records":
            return payload, None
        if input_format == "dataframe_split":
            records, columns = _records_from_split(payload)
            return self._validated(records, "$.dataframe_split.data", _signature_mismatch), columns
        records, columns = _records_from_tf_serving(payload, input_format)
        return self._validated(records, f"$.{input_format}", _signature_mismatch), columns

    def _envelope_refusal(self, body: bytes, problem: FieldError) -> ProtocolError:
        """Why the body did not decode into an envelope of this model's records."""
        if problem.location == "$":
            return _invalid_input(f"{REQUIRED_INPUT_FORMAT}. Received {_json_type(problem.reason)}.", problem)
        given = _input_fields_of(body)
        if given is None:  # too deep to decode untyped: the field the typed decoder stopped in is there
            given = [problem.location.removeprefix("$.").split(".", 1)[0].split("[", 1)[0]]
        if len(given) != 1:  # before the shape of any of them, as MLflow
            return _not_one_input_field(given)
        (input_format,) = given
        root = f"$.{input_format}"
        got = _json_type(problem.reason)
        if input_format == "dataframe_split":
            if problem.location == root:
                return _invalid_input(f"Dataframe split format must be a dictionary. Got {got}.", problem)
            return _not_a_dataframe(f"{problem.reason} (at {problem.location})", problem)
        if input_format == "dataframe_records" and problem.location == root:
            return _invalid_input(f"Dataframe records format must be a list of records. Got {got}.", problem)
        if problem.location == root:  # instances or inputs neither records nor columns: no input of the model in it
            return _missing_inputs(
                self._required,
                f"'{input_format}' must hold records (objects naming their columns) or columns (an object of lists), got {got}",
                problem,
            )
        return self._record_refusal(problem, _signature_mismatch)

    def _validated(self, records: list[Any], location: str, conversion_failure: ConversionFailure) -> list[Any]:
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
            raise self._record_refusal(problem, conversion_failure) from None

    def _record_refusal(self, problem: FieldError, conversion_failure: ConversionFailure) -> ProtocolError:
        """A record refused: an input of the model missing from it, a value its column cannot take, or an implausible one."""
        if problem.field not in self._columns:  # the record itself is not an object naming columns
            got = _json_type(problem.reason)
            detail = f"a record must be an object naming its columns, got {got} (at {problem.location})"
            return _missing_inputs(self._required, detail, problem)
        if problem.reason.startswith("Object missing required field"):
            return _missing_inputs([problem.field], f"the record has no `{problem.field}` (at {problem.location})", problem)
        # A missing value is no failed conversion: MLflow reads it as NaN; the app requires one, as POST /predict does.
        if (mismatch := _TYPE_MISMATCH.match(problem.reason)) and mismatch["got"] != "null":
            return conversion_failure(problem)
        return _invalid_input(f"Column `{problem.field}`: {problem.reason} (at {problem.location})", problem)

    def _no_rows(self, columns: Collection[str] | None) -> ProtocolError:
        """MLflow's answer to no rows: the inputs are missing, unless the body named every column apart from its rows,
        in which case the model itself fails on an empty frame."""
        missing = self._required if columns is None else [name for name in self._required if name not in columns]
        if missing:
            return _missing_inputs(missing, "the input holds no records")
        return ProtocolError(
            400,
            BAD_REQUEST,
            "Encountered an unexpected error while evaluating the model. Verify that the serialized input Dataframe is "
            "compatible with the model for inference. Error: the input names every column but holds no rows.",
        )


def _parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    mime_type, *pairs = (part.strip() for part in content_type.split(";"))
    parameters = {
        key.strip().lower(): value.strip().strip('"') for key, _, value in (pair.partition("=") for pair in pairs if pair)
    }
    return mime_type.lower(), parameters


def _invalid_input(message: str, problem: FieldError | None = None) -> ProtocolError:
    return ProtocolError(400, BAD_REQUEST, f"Invalid input. {message}", problem)


def _missing_inputs(missing: list[str], detail: str, problem: FieldError | None = None) -> ProtocolError:
    # MLflow's message goes on with the whole input, printed; ours says where the inputs are missing instead.
    return ProtocolError(
        400, INVALID_PARAMETER_VALUE, f"Failed to predict data. Error: Model is missing inputs {missing}: {detail}.", problem
    )


def _not_one_input_field(given: list[str]) -> ProtocolError:
    return ProtocolError(400, BAD_REQUEST, f"{REQUIRED_INPUT_FORMAT}. Received input fields: {given}.")


def _not_a_dataframe(detail: str, problem: FieldError | None = None) -> ProtocolError:
    return _invalid_input(
        f"Provided dataframe_split field is not a valid dataframe representation in 'split' format. Error: {detail}", problem
    )


def _unreadable(file_format: str, writer: str, detail: str, problem: FieldError | None = None) -> ProtocolError:
    return ProtocolError(
        400,
        BAD_REQUEST,
        f"Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid {file_format} Pandas DataFrame "
        f"produced using the `pandas.DataFrame.{writer}()` method. Error: {detail}",
        problem,
    )


def _signature_mismatch(problem: FieldError) -> ProtocolError:
    return _invalid_input(
        "Data is not compatible with model signature. "
        f"Failed to convert column `{problem.field}`: {problem.reason} (at {problem.location})",
        problem,
    )


def _csv_conversion_failure(problem: FieldError) -> ProtocolError:
    # MLflow reads the CSV with the signature's types, so a cell that is not a number fails the reading.
    return _unreadable("CSV-formatted", "to_csv", f"column `{problem.field}`: {problem.reason} (at {problem.location})", problem)


def _json_type(reason: str) -> str:
    """The JSON type msgspec found, from its "Expected `object`, got `array`"."""
    found = _TYPE_MISMATCH.match(reason)
    return f"`{found['got']}`" if found else "something else"


def _input_fields_of(body: bytes) -> list[str] | None:
    """The input fields a JSON object names (decoded again, only when refusing it), or None when the
    values nest deeper than msgspec decodes untyped."""
    try:
        keys = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except RecursionError:
        return None
    except (msgspec.DecodeError, UnicodeDecodeError):
        return []
    return [name for name in INPUT_FORMATS if name in keys]


def _records_from_split(split: _DataframeSplit) -> tuple[list[dict[str, Any]], list[str]]:
    width = max((len(row) for row in split.data), default=0)
    columns = [str(column) for column in split.columns] if split.columns is not None else [str(n) for n in range(width)]
    if split.index is not None and len(split.index) != len(split.data):
        raise _not_a_dataframe(
            f"the index has {len(split.index)} labels for {len(split.data)} rows of data (at $.dataframe_split.index)"
        )
    for position, row in enumerate(split.data):
        if len(row) != len(columns):
            raise _not_a_dataframe(
                f"row {position} has {len(row)} values for {len(columns)} columns (at $.dataframe_split.data[{position}])"
            )
    return [dict(zip(columns, row, strict=True)) for row in split.data], columns


def _records_from_tf_serving(
    payload: list[dict[str, Any]] | dict[str, Any], input_format: str
) -> tuple[list[dict[str, Any]], Collection[str] | None]:
    if isinstance(payload, list):
        return payload, None
    if payload and all(isinstance(value, list) for value in payload.values()):  # columnar: {"column": [values...]}
        lengths = {len(value) for value in payload.values()}
        if len(lengths) > 1:
            raise ProtocolError(
                400,
                INVALID_PARAMETER_VALUE,
                f"Failed to predict data. Error: the columns of '{input_format}' have different lengths: {sorted(lengths)} "
                f"(at $.{input_format}).",
            )
        return [dict(zip(payload, values, strict=True)) for values in zip(*payload.values(), strict=True)], payload.keys()
    return [payload], None  # one record as an object


def _records_from_csv(body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid_input(f"Ensure that input is a valid UTF-8 encoded string. Error: '{error!r}'") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise _unreadable("CSV-formatted", "to_csv", "No columns to parse from file: the body holds no header row.")
    records = []
    for line in reader:
        if None in line:
            raise _unreadable("CSV-formatted", "to_csv", f"line {len(records) + 2} has more cells than the header.")
        records.append(
            {column: None if cell is None or cell.strip() in _MISSING_CELLS else cell for column, cell in line.items()}
        )
    return records, list(reader.fieldnames)


def _records_from_parquet(body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(body))
    except Exception as error:
        raise _unreadable("Parquet", "to_parquet", f"'{error}'") from None
    return table.to_pylist(), table.column_names
