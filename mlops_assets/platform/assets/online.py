"""A project's model performance on live outcomes, and what it decides.

`online_performance` joins the serving app's prediction log with the outcomes callers sent back
(`POST /models/{project}/feedback`), scores those rows with the production model and with the
challenger beside it, and reports the primary metric per version and per slice with bootstrap
intervals and the number of outcomes behind each figure. With enough outcomes it acts:
- a challenger better than production at the low end of the paired interval, and passing the project's
  gate on the live figures, takes `production` (the ledger records the promotion);
- a challenger worse at the high end gives up its alias;
- a production model worse live than on its holdout beyond the tolerance is marked for rollback, which
  the project's live rollback sensor hands to the rollback job.
"""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, AutomationCondition, Config, Output, asset
from pydantic import Field

from mlops_assets.ml.gate import decide
from mlops_assets.ml.online import Estimate, PairedComparison, estimate, paired_comparison, worse_than
from mlops_assets.platform.assets.common import ProjectKeys, markdown_table
from mlops_assets.platform.assets.deployment import DeploymentGateConfig, gate_rule
from mlops_assets.platform.assets.monitoring import LOG_PARTITION
from mlops_assets.platform.automation.live_evidence import ROLLBACK_RECOMMENDED, LiveEvidencePolicy
from mlops_assets.platform.automation.rollback import DEPLOYED_AT_TAG, REPLACED_VERSION_TAG
from mlops_assets.platform.ledger import DeploymentLedger
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.mlflow_registry import CHALLENGER_ALIAS, MlflowResource, wait_for_model_stack

# The serving app keeps each model's outcomes here, beside its prediction log (serving/feedback.py).
FEEDBACK_FILE = "_feedback.sqlite"
# Slices with fewer outcomes than this are reported without a figure: a handful of rows says nothing.
MIN_SLICE_OUTCOMES = 30
HOURLY = "0 * * * *"
PROMOTE, RETIRE, ROLLBACK, KEEP = "promote challenger", "retire challenger", "roll back production", "keep"


class OnlinePerformanceConfig(Config):
    min_outcomes: int | None = Field(default=None, ge=1, description="Fewest outcomes before a decision; empty: MLOPS_LIVE_MIN_OUTCOMES.")
    min_improvement: float | None = Field(
        default=None, description="How much better a challenger must be to be promoted; empty: MLOPS_LIVE_MIN_IMPROVEMENT."
    )
    rollback_tolerance: float | None = Field(
        default=None, ge=0, description="How much worse than its holdout production may be live; empty: MLOPS_LIVE_ROLLBACK_TOLERANCE."
    )
    act: bool = Field(
        default=True, description="Act on the evidence (move aliases, hand a rollback to the sensor); off: report the decision only."
    )


def logged_outcomes(folder: Path, raw_features: tuple[str, ...], days: int, now: datetime) -> pd.DataFrame:
    """Every logged prediction of the last `days` days that has an outcome: its raw features, the
    version that answered it, and the outcome. Empty without a log or without outcomes."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    columns = ["request_id", "row_index", "answered_by_version", *raw_features, "outcome"]
    feedback_file = folder / FEEDBACK_FILE
    if not folder.is_dir() or not feedback_file.is_file():
        return pd.DataFrame(columns=columns)
    with sqlite3.connect(f"file:{feedback_file}?mode=ro", uri=True) as connection:
        outcomes = pd.read_sql_query("SELECT request_id, row_index, outcome FROM feedback", connection)
    dated = any(child.is_dir() and child.name.startswith(f"{LOG_PARTITION}=") for child in folder.iterdir())
    partitioning = ds.partitioning(pa.schema([(LOG_PARTITION, pa.string())]), flavor="hive") if dated else None
    dataset = ds.dataset(folder, format="parquet", partitioning=partitioning, ignore_prefixes=[".", "_"])
    # Files written before the champion/challenger columns exist name only the version that answered.
    version_column = "answered_by_version" if "answered_by_version" in dataset.schema.names else "model_version"
    wanted = ["request_id", "row_index", version_column, *[name for name in raw_features if name in dataset.schema.names]]
    first_day = (now - timedelta(days=days - 1)).date().isoformat()
    row_filter = ds.field(LOG_PARTITION) >= first_day if dated else None
    predictions = dataset.to_table(columns=wanted, filter=row_filter).to_pandas()
    predictions = predictions.rename(columns={version_column: "answered_by_version"})
    # A version missing from older files is the one the whole row was answered by.
    predictions["answered_by_version"] = predictions["answered_by_version"].astype(str)
    joined = predictions.merge(outcomes, on=["request_id", "row_index"], how="inner")
    return joined.reindex(columns=columns)


def _load_estimator(model_uri: str):
    wait_for_model_stack()
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri)


def build_online_performance_asset(project: ModelProject) -> AssetsDefinition:
    keys = ProjectKeys(project.name)
    task, domain = project.task, project.domain
    primary = task.primary_metric

    @asset(
        key=keys.online_performance,
        group_name=project.name,
        kinds={"mlflow"},
        owners=list(project.owners),
        io_manager_key="json_io_manager",
        deps=[keys.deployed_model],
        output_required=False,
        automation_condition=AutomationCondition.cron_tick_passed(HOURLY) & ~AutomationCondition.in_progress(),
        description=(
            f"{project.model_name} on live outcomes, hourly: the serving app's logged predictions joined with the outcomes "
            f"sent to POST /models/{project.name}/feedback, {primary} per version and per slice with bootstrap intervals. "
            "With enough outcomes it promotes a better challenger through the gate, retires a worse one, and marks a "
            "production model worse than its holdout for rollback; every move is in the deployment ledger."
        ),
    )
    def online_performance(
        context: AssetExecutionContext,
        config: OnlinePerformanceConfig,
        live_evidence: LiveEvidencePolicy,
        mlflow_resource: MlflowResource,
        ledger: DeploymentLedger,
    ) -> Iterator[Output[dict]]:
        registry = mlflow_resource.model(project.model_name)
        production = registry.aliased_version()
        if production is None:
            context.log.info(f"no version holds '{registry.alias}': nothing to judge")
            return
        folder = Path(live_evidence.prediction_log_dir) / project.model_name
        rows = logged_outcomes(folder, domain.raw_features, live_evidence.window_days, datetime.now(UTC))
        if rows.empty:
            context.log.info(f"no logged prediction with an outcome in {folder} over the last {live_evidence.window_days} days")
            return

        min_outcomes = config.min_outcomes or live_evidence.min_outcomes
        min_improvement = live_evidence.min_improvement if config.min_improvement is None else config.min_improvement
        tolerance = live_evidence.rollback_tolerance if config.rollback_tolerance is None else config.rollback_tolerance
        target = rows["outcome"].to_numpy(dtype=np.float64 if task.name == "regression" else object)
        features = rows[list(domain.raw_features)]
        intervals = dict(rounds=live_evidence.bootstrap_rounds, confidence=live_evidence.confidence)

        champion_version = str(production.version)
        challenger = registry.with_alias(CHALLENGER_ALIAS)
        challenger_version = challenger.aliased_version_number()
        scored = {}
        for role, version in (("champion", champion_version), ("challenger", challenger_version)):
            if version is not None:
                model = _load_estimator(registry.model_uri(version))
                scored[role] = (version, model, task.outputs(model, features))

        estimates: dict[str, Estimate] = {
            role: estimate(task, model, outputs, target, **intervals) for role, (_, model, outputs) in scored.items()
        }
        comparison: PairedComparison | None = None
        if "challenger" in scored:
            comparison = paired_comparison(task, scored["champion"][1:], scored["challenger"][1:], target, **intervals)
        holdout_tag = production.tags.get(f"holdout_{primary}")
        holdout = float(holdout_tag) if holdout_tag else None

        decision, reason = KEEP, f"{len(rows)} outcomes, fewer than the {min_outcomes} a decision needs"
        if len(rows) >= min_outcomes:
            decision, reason = KEEP, "no evidence either way"
            if comparison is not None and comparison.low > min_improvement:
                gate = decide(
                    gate_rule(project, DeploymentGateConfig()),
                    candidate={primary: comparison.challenger},
                    production={primary: comparison.champion},
                )
                evidence = (
                    f"challenger version {challenger_version} {primary} {comparison.challenger:.4g} against production's "
                    f"{comparison.champion:.4g} on the same {comparison.rows} outcomes, better by {comparison.improvement:.4g} "
                    f"({comparison.confidence:.0%} interval {comparison.low:.4g} to {comparison.high:.4g})"
                )
                decision, reason = (PROMOTE, f"{evidence}; the gate, on the live figures: {gate.reason}") if gate.passed else (KEEP, f"{evidence}, but the gate refuses the live figures: {gate.reason}")
            elif comparison is not None and comparison.high < 0:
                decision, reason = RETIRE, (
                    f"challenger version {challenger_version} is worse than production on {comparison.rows} outcomes "
                    f"({comparison.confidence:.0%} interval of its improvement {comparison.low:.4g} to {comparison.high:.4g})"
                )
            if decision != PROMOTE and holdout is not None and worse_than(task, estimates["champion"], holdout, tolerance):
                champion = estimates["champion"]
                decision, reason = ROLLBACK, (
                    f"production version {champion_version} {primary} {champion.value:.4g} on {champion.rows} outcomes "
                    f"({champion.confidence:.0%} interval {champion.low:.4g} to {champion.high:.4g}) is worse than its holdout "
                    f"{holdout:.4g} beyond the {tolerance:.0%} tolerance"
                )

        moved_at = datetime.now(UTC)
        if config.act and decision == PROMOTE:
            registry.move_alias(challenger_version)
            registry.tag_version(challenger_version, {DEPLOYED_AT_TAG: moved_at.isoformat(), REPLACED_VERSION_TAG: champion_version})
            challenger.remove_alias()
            for alias, version, previous in ((registry.alias, challenger_version, champion_version), (CHALLENGER_ALIAS, None, challenger_version)):
                ledger.append_from_step(
                    context, model_name=registry.name, alias=alias, version=version, previous_version=previous,
                    action="promote", reason=reason, moved_at=moved_at,
                )  # fmt: skip
        elif config.act and decision == RETIRE:
            challenger.remove_alias()
            ledger.append_from_step(
                context, model_name=registry.name, alias=CHALLENGER_ALIAS, version=None, previous_version=challenger_version,
                action="retire", reason=reason, moved_at=moved_at,
            )  # fmt: skip
        log = context.log.warning if decision != KEEP else context.log.info
        log(f"{project.name} on live outcomes: {decision}: {reason}")

        by_version = _by_version(task, rows, target, scored)
        by_slice = _by_slice(task, rows, target, scored, project.slice_column)
        record = {
            "project": project.name,
            "model_name": registry.name,
            "production_version": champion_version,
            "challenger_version": challenger_version,
            "outcomes": len(rows),
            "primary_metric": primary,
            "holdout": holdout,
            "live": {role: estimates[role].as_record() for role in estimates},
            "comparison": None if comparison is None else comparison.as_record(),
            "by_version": by_version,
            "by_slice": by_slice,
            "decision": decision,
            "decision_reason": reason,
            "acted": config.act and decision != KEEP,
            "thresholds": {"min_outcomes": min_outcomes, "min_improvement": min_improvement, "rollback_tolerance": tolerance},
            "measured_at": moved_at.isoformat(),
        }
        metadata = {
            "outcomes": len(rows),
            "decision": decision,
            "decision_reason": reason,
            ROLLBACK_RECOMMENDED: config.act and decision == ROLLBACK,
            "production_version": int(champion_version),
            f"live_{primary}/champion": estimates["champion"].value,
            "by_version": markdown_table(by_version),
        }
        if comparison is not None:
            metadata["challenger_version"] = int(challenger_version)
            metadata[f"live_{primary}/challenger"] = comparison.challenger
            metadata["improvement_low"], metadata["improvement_high"] = comparison.low, comparison.high
        if by_slice:
            metadata["by_slice"] = markdown_table(by_slice)
        yield Output(record, metadata=metadata)

    return online_performance


def _by_version(task, rows: pd.DataFrame, target: np.ndarray, scored: dict) -> list[dict]:
    """Per version: the rows it answered and the outcomes behind them, its figure on those rows, and on
    every row with an outcome (scored again)."""
    table = []
    for role, (version, model, outputs) in scored.items():
        answered = (rows["answered_by_version"] == version).to_numpy()
        figure_answered = task.score_outputs(model, outputs[answered], target[answered])[task.primary_metric] if answered.sum() >= 2 else None
        table.append(
            {
                "version": version,
                "role": role,
                "answered_outcomes": int(answered.sum()),
                f"{task.primary_metric} on rows it answered": figure_answered,
                "all_outcomes": len(rows),
                f"{task.primary_metric} on all": task.score_outputs(model, outputs, target)[task.primary_metric],
            }
        )
    return table


def _by_slice(task, rows: pd.DataFrame, target: np.ndarray, scored: dict, slice_column: str | None) -> list[dict]:
    if slice_column is None:
        return []
    table = []
    for value, positions in rows.groupby(slice_column, dropna=False).indices.items():
        entry = {"slice": str(value), "outcomes": len(positions)}
        for role, (version, model, outputs) in scored.items():
            enough = len(positions) >= MIN_SLICE_OUTCOMES
            entry[f"{role} v{version}"] = task.score_outputs(model, outputs[positions], target[positions])[task.primary_metric] if enough else None
        table.append(entry)
    return table
