"""One factory that turns a Pandera schema into a blocking Dagster asset check.

Spark frames are validated against `pandera.pyspark` schemas, whose `validate` never raises: its
findings sit in `df.pandera.errors`, and any finding here fails the check. Driver-side pandas frames are validated with
`pandera.pandas` (lazily, so every failure is reported at once). Either way a failing check's metadata
names the column, the rule, how many rows break it and a few of them; a passing check certifies the
version it read, which is what lets other runs read it (see `VersionedStore`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pandera.pyspark as pa_spark
from pandera.config import ValidationDepth, config_context
import pyspark.sql.functions as F
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    asset_check,
)
from pandera.errors import SchemaErrors
from pyspark.sql import Column, DataFrame

from mlops_assets.platform.pipeline_metrics import record_check_result
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.resources.versioned_store import VersionedStore

EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Violation:
    column: str | None
    rule: str
    failing_rows: int | None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        where = f"column '{self.column}'" if self.column else "the table"
        rows = f"{self.failing_rows} rows" if self.failing_rows is not None else "the table as a whole"
        return f"{where} breaks {self.rule}: {rows}"


@dataclass(frozen=True)
class RowRule:
    """A column rule as a predicate that is true on the rows breaking it, and the share of rows that
    may break it (0 for every builtin: any failing row fails the rule)."""

    column: str
    name: str
    failing: Column
    tolerated_fraction: float = 0.0


# pandera.pyspark's builtin checks and the schemas' own column checks, as failing-row predicates.
_FAILING_ROWS: dict[str, Callable[..., Column]] = {
    "greater_than_or_equal_to": lambda c, min_value: F.col(c) < min_value,
    "less_than_or_equal_to": lambda c, max_value: F.col(c) > max_value,
    "greater_than": lambda c, min_value: F.col(c) <= min_value,
    "less_than": lambda c, max_value: F.col(c) >= max_value,
    "in_range": lambda c, min_value, max_value, include_min=True, include_max=True: ~(
        (F.col(c) >= min_value if include_min else F.col(c) > min_value)
        & (F.col(c) <= max_value if include_max else F.col(c) < max_value)
    ),
    "isin": lambda c, allowed_values: ~F.col(c).isin(list(allowed_values)),
    "str_matches": lambda c, pattern: ~F.col(c).rlike(pattern if pattern.startswith("^") else f"^{pattern}"),
    "null_fraction_at_most": lambda c, max_fraction: F.col(c).isNull(),
}
_TOLERANCE_STATISTIC = {"null_fraction_at_most": "max_fraction"}


@dataclass(frozen=True)
class TableAggregates:
    """A table-level check answered from the contract's one pass: the aggregates it needs, by name,
    beside the rule counts, and whether the aggregated row (which always holds `rows`) passes."""

    aggregates: Callable[..., dict[str, Column]]
    passes: Callable[..., bool]


# Table-level checks by name, registered where they are defined (see `rules`); a check not here runs
# its own Spark job.
_ONE_PASS_TABLE_CHECKS: dict[str, TableAggregates] = {}


def answered_in_one_pass(name: str, aggregates: Callable[..., dict[str, Column]], passes: Callable[..., bool]) -> None:
    _ONE_PASS_TABLE_CHECKS[name] = TableAggregates(aggregates, passes)


def _row_rules(frame: DataFrame, schema: pa_spark.DataFrameSchema, unusable: set[str]) -> list[RowRule]:
    rules = []
    for name, column in schema.columns.items():
        if name not in frame.columns or name in unusable:
            continue
        if not column.nullable:
            rules.append(RowRule(name, "not_nullable", F.col(name).isNull()))
        for check in column.checks:
            if check.name not in _FAILING_ROWS:
                raise ValueError(f"{schema.name}.{name}: no failing-row form for check '{check.name}'")
            statistics = check.statistics or {}
            rules.append(
                RowRule(
                    name,
                    check.error or check.name,
                    _FAILING_ROWS[check.name](name, **statistics),
                    float(statistics.get(_TOLERANCE_STATISTIC.get(check.name, ""), 0.0)),
                )
            )
    return rules


def spark_violations(frame: DataFrame, schema: pa_spark.DataFrameSchema) -> list[Violation]:
    """Structure by pandera.pyspark (columns, types: no Spark job), then every column rule of the
    schema and every table-level check registered with `answered_in_one_pass` counted in one pass over
    the data; any other table-level check runs on its own.

    pandera.pyspark would run one Spark job per rule (dozens per table) and report no failing rows;
    one aggregation answers them all with counts, and only a failing rule fetches example rows.
    """
    # Nullability is a data rule counted below; left in, pandera would run a Spark job per column for it.
    structure = schema.update_columns({name: {"nullable": True} for name in schema.columns})
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        validated = structure.validate(frame)
    violations, unusable = [], set()
    for by_reason in (validated.pandera.errors or {}).values():
        for reason, errors in by_reason.items():
            for error in errors:
                unusable.add(error.get("column"))
                violations.append(Violation(error.get("column"), error.get("check") or reason.lower(), None))

    rules = _row_rules(frame, schema, unusable)
    one_pass = {index: _ONE_PASS_TABLE_CHECKS.get(check.name) for index, check in enumerate(schema.checks)}
    table_aggregates = {
        f"table_{index}_{name}": aggregate
        for index, form in one_pass.items()
        if form is not None
        for name, aggregate in form.aggregates(frame, **schema.checks[index]._check_kwargs).items()
    }
    counts = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        *[F.count_if(rule.failing).alias(f"rule_{i}") for i, rule in enumerate(rules)],
        *[aggregate.alias(name) for name, aggregate in table_aggregates.items()],
    ).first()
    for index, rule in enumerate(rules):
        failing = counts[f"rule_{index}"]
        if failing > rule.tolerated_fraction * counts["rows"]:
            examples = [row.asDict() for row in frame.filter(rule.failing).limit(EXAMPLE_ROWS).collect()]
            violations.append(Violation(rule.column, rule.name, failing, examples))

    for index, check in enumerate(schema.checks):
        if form := one_pass[index]:
            prefix = f"table_{index}_"
            aggregated = {"rows": counts["rows"]} | {
                name.removeprefix(prefix): counts[name] for name in table_aggregates if name.startswith(prefix)
            }
            passed = form.passes(aggregated, **check._check_kwargs)
        else:
            passed = check._check_fn(frame, **check._check_kwargs)
        if not passed:
            violations.append(Violation(None, check.error or check.name, None))
    return violations


def pandas_violations(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[Violation]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        violations = []
        for (column, rule), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            rows = group["index"].dropna().astype(int).unique().tolist()
            examples = (
                frame.loc[rows[:EXAMPLE_ROWS]].to_dict("records")
                if rows
                else [{"failure_case": case} for case in group["failure_case"].head(EXAMPLE_ROWS)]
            )
            violations.append(
                Violation(None if pd.isna(column) else str(column), str(rule), len(rows) or None, examples)
            )
        return violations
    return []


def _failure_metadata(violations: list[Violation]) -> dict[str, Any]:
    table = "\n".join(
        ["| column | rule | failing rows |", "| --- | --- | --- |"]
        + [f"| {v.column or '(table)'} | `{v.rule}` | {v.failing_rows if v.failing_rows is not None else '-'} |" for v in violations]
    )
    return {
        "violations": MetadataValue.md(table),
        "failing_rules": len(violations),
        "failing_rows": sum(v.failing_rows or 0 for v in violations),
        "first_violation": violations[0].summary(),
        "examples": MetadataValue.json(
            [{"column": v.column, "rule": v.rule, "failing_rows": v.failing_rows, "examples": v.examples} for v in violations]
        ),
    }


def contract_check(
    asset_key: AssetKey,
    schema: pa_spark.DataFrameSchema | pa.DataFrameSchema,
    *,
    as_frame: Callable[[Any, AssetCheckExecutionContext], Any] = lambda value, context: value,
    required_resource_keys: set[str] | None = None,
) -> AssetChecksDefinition:
    """A blocking check that validates the asset's newly written version against `schema`.

    `as_frame` turns the asset's value into the frame to validate (for a record, the table it holds or
    the predictions of the model it names), with the check's context for the resources it asked for.
    """
    name = f"check_contract_{asset_key.path[-1]}"
    describe = schema.description or f"{asset_key.to_user_string()} meets its Pandera contract."

    @asset_check(
        asset=asset_key,
        name=name,
        blocking=True,
        description=describe,
        required_resource_keys={"store", *(required_resource_keys or ())},
    )
    def _contract(context: AssetCheckExecutionContext, candidate: Versioned) -> AssetCheckResult:
        frame = as_frame(candidate.value, context)
        if isinstance(schema, pa_spark.DataFrameSchema):
            violations = spark_violations(frame, schema)
        else:
            violations = pandas_violations(frame, schema)
        checked = {"version": candidate.version, "rules": _rule_count(schema)}
        record_check_result(
            asset_key.path[0], asset=asset_key.to_user_string(), check=name, passed=not violations, blocking=True
        )
        if violations:
            context.log.error(
                f"{asset_key.to_user_string()} version {candidate.version} failed its contract: "
                + "; ".join(v.summary() for v in violations)
            )
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                description=violations[0].summary(),
                metadata={**checked, **_failure_metadata(violations)},
            )
        store: VersionedStore = context.resources.store
        store.certify(Path(candidate.path), check_name=name, run_id=context.run.run_id)
        return AssetCheckResult(passed=True, metadata=checked)

    return _contract


def _rule_count(schema: pa_spark.DataFrameSchema | pa.DataFrameSchema) -> int:
    return len(schema.checks) + sum(1 + len(column.checks) for column in schema.columns.values())
