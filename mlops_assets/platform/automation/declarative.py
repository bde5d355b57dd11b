"""Declarative automation, where an asset simply follows its parents: the deployment ledger, feature drift
and batch predictions update when what they read updates, in whichever run that happened."""

from dagster import AssetSelection, AutomationCondition, AutomationConditionSensorDefinition, DefaultSensorStatus

# `eager` alone would start on a parent's new materialization even while the parent's blocking check
# is failing (the version the check refused is never read, so the run would redo the old version's
# work): wait for every blocking check of the parents to pass as well.
AFTER_PARENTS = (AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()).with_label(
    "eager, after the parents' blocking checks passed"
)

automation_condition_sensor = AutomationConditionSensorDefinition(
    "mlops_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the automation conditions of every asset (the ledger, drift and batch predictions follow their parents).",
)
