"""The request record of a model, generated from its project's domain declaration.

The record accepts exactly the rows the pipeline's contracts consider plausible and cannot drift from
them: the domain's feature columns in the model's order, a number held to its plausible range (and
always finite), a category to its known values, an optional feature nullable or left out, a required
one neither. Bodies are decoded strictly: a number sent as a string, NaN or infinity, an unknown
category or (for POST /predict) an unknown field is a 422 naming the field, never a guess.
"""

import keyword
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

if TYPE_CHECKING:
    from mlops_assets.platform.project import Domain

_LARGEST_FLOAT = 1.7976931348623157e308


def _number(feature: str, domain: "Domain") -> Any:
    if feature in domain.value_ranges:
        low, high = domain.value_ranges[feature]
        # The bounds also keep out infinities; JSON itself has no NaN.
        return Annotated[float, msgspec.Meta(ge=low, le=high, description=f"{feature}, {low} to {high}")]
    # No declared range: still a finite number (1e999 decodes to infinity).
    return Annotated[float, msgspec.Meta(ge=-_LARGEST_FLOAT, le=_LARGEST_FLOAT, description=feature)]


def _field(position: int, feature: str, domain: "Domain") -> tuple:
    kind = Literal[domain.categories[feature]] if feature in domain.categories else _number(feature, domain)  # type: ignore[valid-type]
    # A column named like "sepal.length" is still a field: under an attribute name, renamed in JSON.
    attribute = feature if feature.isidentifier() and not keyword.iskeyword(feature) else f"column_{position}"
    if feature in domain.optional_features:
        return (attribute, kind | None, None)
    return (attribute, kind)


def record_type(name: str, domain: "Domain", *, forbid_unknown_fields: bool, doc: str = "") -> type[msgspec.Struct]:
    """A Struct with one field per raw feature, in the model's column order (`astuple` gives a row)."""
    fields = [_field(position, feature, domain) for position, feature in enumerate(domain.raw_features)]
    rename = {attribute: feature for (attribute, *_), feature in zip(fields, domain.raw_features, strict=True) if attribute != feature}
    # Optional fields may come anywhere in the column order: keyword-only fields keep it.
    record = msgspec.defstruct(
        name, fields, kw_only=True, forbid_unknown_fields=forbid_unknown_fields, rename=rename or None
    )
    optional = sorted(domain.optional_features)
    record.__doc__ = doc + (f" `{'`, `'.join(optional)}` may be null or left out." if optional else "")
    return record


def batch_type(record: type[msgspec.Struct], max_rows: int) -> Any:
    """One record or a bounded, non-empty list of records."""
    return record | Annotated[list[record], msgspec.Meta(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]
