"""GET /predictions/{request_id}: what a logged prediction was, and the model version behind it."""

import asyncio
from typing import Any

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from serving.schemas import ErrorResponse, LoggedPrediction, PredictionLineage
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings


class LineageController(Controller):
    tags = ["lineage"]

    @get(
        "/predictions/{request_id:str}",
        summary="The lineage of one prediction",
        description="Inputs, outputs, the model version, its MLflow run, the Dagster run and the data version "
        "behind it, from whichever project's log holds it. Predictions reach the log within "
        "MLOPS_PREDICTION_LOG_FLUSH_SECONDS.",
        responses={404: ResponseSpec(ErrorResponse, description="No prediction logged under this id.")},
    )
    async def prediction_lineage(self, request_id: str, models: ServedModels, settings: ServingSettings) -> Response[PredictionLineage]:
        found: tuple[ModelServing, list[dict[str, Any]]] | None = None
        for serving in models.by_project.values():
            if rows := await asyncio.to_thread(serving.prediction_log.find, request_id):
                found = (serving, rows)
                break
        if found is None:
            detail = (
                f"No prediction logged under request id {request_id!r}. Predictions reach the log within "
                f"{settings.prediction_log_flush_seconds:g} s of being made."
            )
            return Response(ErrorResponse(404, detail), status_code=404)  # type: ignore[return-value]
        serving, rows = found
        first = rows[0]
        try:
            lineage = await asyncio.to_thread(serving.holder.lineage_of, first["model_version"])
        except Exception as error:
            return Response(ErrorResponse(502, f"The registry could not be read for the lineage: {error}"), status_code=502)  # type: ignore[return-value]
        body = PredictionLineage(
            request_id=request_id,
            predicted_at=first["predicted_at"].isoformat(),
            route=first["route"],
            worker=first["worker"],
            rows=[
                LoggedPrediction(
                    row_index=row["row_index"],
                    features={name: row[name] for name in serving.project.layout.features},
                    prediction=row["prediction"],
                    shadow_prediction=row.get("shadow_prediction"),
                )
                for row in rows
            ],
            model=lineage,
            # Logs written before champion and challenger have neither column: the champion answered.
            answered_by=first.get("answered_by") or "champion",
            shadow_version=first.get("shadow_version"),
        )
        return Response(body)
