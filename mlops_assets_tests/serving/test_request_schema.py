"""A model's request record is generated from its project's `Domain`, whatever the columns are called."""

import msgspec
import pytest

from mlops_assets.platform.project import Domain
from serving.request_schema import batch_type, record_type
from serving.schemas import field_error

DOMAIN = Domain(
    target="label",
    numeric_features=("sepal.length", "class", "weight"),  # not identifiers, a keyword, no declared range
    categories={"kind": ("a", "b")},
    value_ranges={"sepal.length": (0.5, 10.0)},
    optional_features=frozenset({"class"}),
)
DECODE = msgspec.json.Decoder(batch_type(record_type("Odd", DOMAIN, forbid_unknown_fields=True), 3)).decode


def test_a_record_decodes_to_a_row_in_the_model_column_order() -> None:
    (record,) = DECODE(b'[{"kind": "b", "weight": 2, "sepal.length": 1.5}]')

    assert msgspec.structs.astuple(record) == (1.5, None, 2.0, "b")  # the optional column, left out, is None


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (b'{"sepal.length": 11, "weight": 1, "kind": "a"}', "sepal.length", "<= 10.0"),
        (b'{"sepal.length": 1, "weight": 1e999, "kind": "a"}', "weight", "out of range"),
        (b'{"sepal.length": 1, "kind": "a"}', "weight", "missing"),
        (b'{"sepal.length": 1, "weight": 1, "kind": "c"}', "kind", "enum"),
        (b'{"sepal.length": 1, "weight": 1, "kind": "a", "label": "x"}', "label", "unknown field"),
    ],
)
def test_a_refusal_names_the_column_as_the_client_spelled_it(body: bytes, field: str, reason: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        DECODE(body)

    problem = field_error(refused.value, DOMAIN.raw_features)
    assert problem.field == field and reason in problem.reason, problem


def test_a_number_without_a_declared_range_must_still_be_finite() -> None:
    """As /invocations converts CSV cells and Parquet values, not only JSON (which has no infinity)."""
    record = record_type("OddInvocation", DOMAIN, forbid_unknown_fields=False)

    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert([{"sepal.length": 1.0, "weight": "inf", "kind": "a"}], list[record], strict=False)

    assert field_error(refused.value, DOMAIN.raw_features).field == "weight"
