"""A project's deployment decision: the evaluated version takes the alias `production` when it passes the
gate on the project's primary metric, overall and per slice; otherwise production stays and the record
says why."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, Config, Failure, Output, asset
from pydantic import Field

from mlops_assets.ml.gate import GateRule, decide
from mlops_assets.platform.assets.common import ProjectKeys
from mlops_assets.platform.automation.approval import APPROVED_BY_TAG, APPROVED_TAG, ApprovalPolicy, is_approved
from mlops_assets.platform.automation.rollback import GATE_PASSED_TAG, ROLLED_BACK_AT_TAG
from mlops_assets.platform.ledger import DeploymentLedger
from mlops_assets.platform.pipeline_metrics import record_production_model, record_refresh_succeeded
from mlops_assets.platform.project import ModelProject
from mlops_assets.platform.resources.io_managers import Versioned
from mlops_assets.platform.resources.mlflow_registry import CHALLENGER_ALIAS, MlflowResource, RegisteredModel


class DeploymentGateConfig(Config):
    bound: float | None = Field(
        default=None, description="The absolute bound on the holdout's primary metric; empty: the project's own."
    )
    max_regression: float | None = Field(
        default=None, ge=0, description="How much worse than production a candidate may be on the same holdout, as a fraction; empty: the project's own."
    )
    slice_tolerance: float | None = Field(
        default=None, ge=0, description="How much worse than production any slice may be, as a fraction; empty: the project's own."
    )
    force: bool = Field(
        default=False,
        description=(
            "Deploy the candidate even when the gate (bound, regression, slices, an earlier rollback) refuses it. "
            "Its blocking checks still apply: a broken model never gets this far. The ledger records the override."
        ),
    )
    live_evidence: bool | None = Field(
        default=None,
        description=(
            "A candidate that passes the gate while a production version serves takes the alias `challenger` instead "
            "of `production`, to be compared in live traffic; empty: the project's own."
        ),
    )
    approved_version: str | None = Field(
        default=None,
        description=(
            "With approval on (MLOPS_APPROVAL_REQUIRED): approve this version, the waiting candidate, in this run; "
            "the person launching the run is the approver."
        ),
    )


def gate_rule(project: ModelProject, config: DeploymentGateConfig) -> GateRule:
    gate = project.gate
    return GateRule(
        metric=project.task.primary_metric,
        higher_is_better=project.task.higher_is_better,
        bound=gate.bound if config.bound is None else config.bound,
        max_regression=gate.max_regression if config.max_regression is None else config.max_regression,
        slice_tolerance=gate.slice_tolerance if config.slice_tolerance is None else config.slice_tolerance,
        min_slice_rows=gate.min_slice_rows,
    )


def build_deployment_asset(project: ModelProject) -> AssetsDefinition:
    keys = ProjectKeys(project.name)
    primary = project.task.primary_metric
    better = "above" if project.task.higher_is_better else "below"

    @asset(
        key=keys.deployed_model,
        ins={"model_evaluation": AssetIn(keys.model_evaluation)},
        group_name=project.name,
        kinds={"mlflow"},
        owners=list(project.owners),
        io_manager_key="json_io_manager",
        description=(
            f"Moves the registry alias `production` of {project.model_name} to the evaluated version when it passes the "
            f"gate: holdout {primary} {better} {project.gate.bound:,.6g} ({project.gate.bound_source or 'the project bound'}), "
            f"no worse than production beyond {project.gate.max_regression:.1%} on the same holdout, and no "
            f"{project.slice_column or 'slice'} worse beyond {project.gate.slice_tolerance:.1%}. Otherwise production stays "
            "and this record says why. A version once rolled back is never deployed again; with approval on, a candidate "
            "that passed waits for a person; with live evidence asked, it takes the alias `challenger` instead and production "
            "moves only on its live outcomes. Every move is appended to the deployment ledger."
        ),
    )
    def deployed_model(
        context: AssetExecutionContext,
        config: DeploymentGateConfig,
        mlflow_resource: MlflowResource,
        ledger: DeploymentLedger,
        approval: ApprovalPolicy,
        model_evaluation: Versioned,
    ) -> Output[dict]:
        registry = mlflow_resource.model(project.model_name)
        evaluation = model_evaluation.value
        candidate_version = evaluation["version"]
        current_version = registry.aliased_version_number()
        production = evaluation.get("production") or {}
        evaluated_against = production.get("version")
        candidate_tags = registry.version_tags(candidate_version) or {}
        if config.approved_version is not None and config.approved_version.strip() != candidate_version:
            raise Failure(f"approved_version {config.approved_version} is not the candidate, version {candidate_version}")
        awaiting_approval = challenged = False
        live_evidence = project.gate.live_evidence if config.live_evidence is None else config.live_evidence
        decision = decide(
            gate_rule(project, config),
            candidate=evaluation["metrics"],
            production=production.get("metrics"),
            candidate_slices=evaluation["slices"],
            production_slices=production.get("slices", []),
        )

        if current_version == candidate_version:
            deployed, reason = False, f"version {candidate_version} already holds '{registry.alias}'"
        elif current_version is not None and current_version != evaluated_against:
            deployed, reason = False, (
                f"'{registry.alias}' moved to version {current_version} after this evaluation "
                f"(which compared against {evaluated_against}): evaluate again before deploying"
            )
        elif config.force:
            deployed, reason = True, f"forced by run {context.run_id} over the gate ({decision.reason})"
        elif ROLLED_BACK_AT_TAG in candidate_tags:
            deployed, reason = False, (
                f"version {candidate_version} was rolled back from '{registry.alias}' at "
                f"{candidate_tags[ROLLED_BACK_AT_TAG]}: train a new version"
            )
        else:
            deployed, reason = decision.passed, decision.reason
            if decision.passed:
                # The marker a rollback looks for: this version was good enough to serve.
                registry.tag_version(candidate_version, {GATE_PASSED_TAG: "true"})
            if decision.passed and live_evidence and current_version is not None:
                deployed, challenged = False, True
                reason = f"{reason}; live evidence asked: it challenges version {current_version} in live traffic"
            elif decision.passed and approval.required:
                deployed, reason, awaiting_approval = _approval(context, config, registry, candidate_version, candidate_tags, reason)

        if deployed:
            moved_at = datetime.now(UTC)
            registry.move_alias(candidate_version)
            registry.tag_version(candidate_version, {"deployed_at": moved_at.isoformat(), "replaced_version": current_version or ""})
            ledger.append_from_step(
                context,
                model_name=registry.name,
                alias=registry.alias,
                version=candidate_version,
                previous_version=current_version,
                action="deploy",
                reason=reason,
                moved_at=moved_at,
            )
            context.log.info(f"'{registry.alias}' -> version {candidate_version} (was {current_version}): {reason}")
        else:
            context.log.warning(f"'{registry.alias}' stays at version {current_version}: {reason}")
        if challenged:
            challenger = registry.with_alias(CHALLENGER_ALIAS)
            previous_challenger = challenger.aliased_version_number()
            challenger.move_alias(candidate_version)
            ledger.append_from_step(
                context,
                model_name=registry.name,
                alias=CHALLENGER_ALIAS,
                version=candidate_version,
                previous_version=previous_challenger,
                action="challenge",
                reason=reason,
                moved_at=datetime.now(UTC),
            )
            context.log.info(f"'{CHALLENGER_ALIAS}' -> version {candidate_version} (was {previous_challenger}): {reason}")

        candidate_metric = evaluation["metrics"][primary]
        production_metric = (production.get("metrics") or {}).get(primary)
        record = {
            "project": project.name,
            "model_name": evaluation["model_name"],
            "alias": registry.alias,
            "candidate_version": candidate_version,
            "deployed": deployed,
            "reason": reason,
            "awaiting_approval": awaiting_approval,
            "challenger_version": candidate_version if challenged else None,
            "production_version": candidate_version if deployed else current_version,
            "replaced_version": current_version if deployed else None,
            "primary_metric": primary,
            "candidate_metric": candidate_metric,
            "production_metric_before": production_metric,
            "gate": config.model_dump(),
            "dagster_run_id": context.run_id,
            "decided_at": datetime.now(UTC).isoformat(),
        }
        metadata = {
            "deployed": deployed,
            "reason": reason,
            "awaiting_approval": awaiting_approval,
            "challenger": challenged,
            "candidate_version": int(candidate_version),
            f"candidate_{primary}": candidate_metric,
        }
        if record["production_version"] is not None:
            metadata["production_version"] = int(record["production_version"])
            serving_candidate = deployed or current_version == candidate_version
            record_production_model(
                project.name,
                version=record["production_version"],
                metric=primary,
                holdout_value=candidate_metric if serving_candidate else production_metric,
                higher_is_better=project.task.higher_is_better,
            )
        # The flow reached its last step: every blocking check upstream passed, whatever the gate decided.
        record_refresh_succeeded(project.name)
        if record["replaced_version"] is not None:
            metadata["replaced_version"] = int(record["replaced_version"])
        return Output(record, metadata=metadata)

    return deployed_model


def _approval(
    context: AssetExecutionContext,
    config: DeploymentGateConfig,
    registry: RegisteredModel,
    version: str,
    version_tags: dict[str, str],
    gate_reason: str,
) -> tuple[bool, str, bool]:
    """(deployed, reason, awaiting approval) for a candidate that passed the gate, with approval on."""
    if (config.approved_version or "").strip() == version:
        approver = f"launchpad run {context.run_id}"
        registry.tag_version(version, {APPROVED_TAG: "true", APPROVED_BY_TAG: approver})
        return True, f"{gate_reason}; approved by {approver}", False
    if is_approved(version_tags):
        approver = version_tags.get(APPROVED_BY_TAG) or "a registry user (MLflow tag)"
        return True, f"{gate_reason}; approved by {approver}", False
    registry.tag_version(version, {"approval_requested_at": datetime.now(UTC).isoformat()})
    return False, (
        f"{gate_reason}; waiting for approval: set the tag {APPROVED_TAG}=true on version {version} "
        f"(MLflow UI) or launch deployed_model with approved_version={version}"
    ), True
