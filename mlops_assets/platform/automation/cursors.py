"""Sensors that act once on each new record of an asset: the newest materialization, when the
sensor's cursor has not handled it yet."""

from dagster import AssetKey, EventLogRecord, SensorEvaluationContext, SkipReason


def unhandled_latest(context: SensorEvaluationContext, key: AssetKey) -> EventLogRecord | SkipReason:
    """The newest materialization of `key`, or why there is nothing to handle. The caller moves the
    cursor (`context.update_cursor(str(record.storage_id))`) once it has handled the record."""
    records = context.instance.fetch_materializations(key, limit=1).records
    if not records:
        return SkipReason(f"{key.to_user_string()} has no record yet")
    latest = records[0]
    if context.cursor and latest.storage_id <= int(context.cursor):
        return SkipReason(f"no {key.to_user_string()} record since the last one handled")
    return latest
