"""What every project's assets share: their keys, group, owners, metadata tables and the Spark pool."""

from dataclasses import dataclass

from dagster import AssetKey, Backoff, MetadataValue, RetryPolicy

# Two Spark-heavy steps on two cores only slow each other down: dagster.yaml limits this pool to one.
SPARK_POOL = "spark"

# A Spark step can fail for reasons of the moment (an executor lost, a worker restarting): it is
# retried in its run. A retry writes a new version folder; the half-written one is never read.
SPARK_RETRY_POLICY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)

FLOW_ASSETS = ("raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model")
MONITORING_ASSETS = ("deployment_ledger", "feature_drift", "batch_predictions", "online_performance")


@dataclass(frozen=True)
class ProjectKeys:
    """The asset keys of one project: `<project>/<asset>`, so each project's lineage stands apart."""

    project: str

    def __getattr__(self, asset: str) -> AssetKey:
        if asset not in (*FLOW_ASSETS, *MONITORING_ASSETS):
            raise AttributeError(asset)
        return AssetKey([self.project, asset])

    def flow(self) -> list[AssetKey]:
        return [AssetKey([self.project, asset]) for asset in FLOW_ASSETS]

    def all(self) -> list[AssetKey]:
        return [AssetKey([self.project, asset]) for asset in (*FLOW_ASSETS, *MONITORING_ASSETS)]


def markdown_table(rows: list[dict[str, object]]) -> MetadataValue:
    if not rows:
        return MetadataValue.md("(no rows)")
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value).replace("|", "\\|")


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    import base64

    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
