"""POST /models/{project}/feedback: the outcome observed for a logged prediction, stored for the
comparison of champion and challenger on ground truth (see `serving.feedback` for where and why)."""

import asyncio
import math
import time
from collections import Counter
from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from litestar.openapi.datastructures import ResponseSpec

from serving.feedback import AlreadyReceived, Outcome
from serving.metrics import FEEDBACK, Metrics
from serving.prediction_log import Answer, request_id_millis
from serving.routes.responses import JSONBytes, declares_json, json_bytes, json_schema, read_body, with_json_body
from serving.schemas import ErrorResponse, FieldError, field_error
from serving.served_models import ModelServing, ServedModels
from serving.settings import ServingSettings

# A prediction reaches its log within the flush interval, plus the shadow scorer's delay and the write
# itself: feedback for a younger request waits that long for it before calling its id unknown.
LOG_ARRIVAL_GRACE_SECONDS = 1.0
_LISTED = 10  # ids named in an error, at most


class FeedbackItem(msgspec.Struct, forbid_unknown_fields=True):
    """The outcome observed for one logged prediction."""

    request_id: str
    outcome: float | str  # a number for regression, a class label for a classifier
    row_index: Annotated[int, msgspec.Meta(ge=0)] = 0  # the record's position in its request


class FeedbackReceived(msgspec.Struct):
    stored: int


def _body_schema() -> dict:
    return json_schema(FeedbackItem | list[FeedbackItem])


class FeedbackController(Controller):
    tags = ["feedback"]

    @post(
        "/models/{project:str}/feedback",
        summary="Store the observed outcome of logged predictions",
        description='{"request_id": "...", "outcome": 3.2} or a list of them; `row_index` names a record of a '
        "request of several (default 0). All or nothing: an unknown id or one already given stores none.",
        operation_class=with_json_body(_body_schema),
        status_code=201,
        responses={
            201: ResponseSpec(FeedbackReceived, description="Stored, durably."),
            404: ResponseSpec(ErrorResponse, description="No such project, or no logged prediction under an id (named)."),
            409: ResponseSpec(ErrorResponse, description="An outcome was already given for an id (named)."),
            422: ResponseSpec(ErrorResponse, description="Not an outcome of the project's domain."),
        },
    )
    async def feedback(
        self, request: Request, project: str, models: ServedModels, metrics: Metrics, settings: ServingSettings
    ) -> JSONBytes:
        serving = models[project]
        if serving is None:
            if not models.loaded:
                return json_bytes(ErrorResponse(503, "The projects are still being read."), 503)
            detail = f"No project {project!r} is served here; the projects are {', '.join(sorted(models.by_project))}."
            return json_bytes(ErrorResponse(404, detail), 404)
        if not declares_json(request.headers.get("content-type")):
            return json_bytes(ErrorResponse(415, "`content-type` must be application/json"), 415)
        try:
            parsed = msgspec.json.decode(await read_body(request, settings.max_body_bytes), type=FeedbackItem | list[FeedbackItem])
        except msgspec.ValidationError as error:
            problem = field_error(error)
            return json_bytes(ErrorResponse(422, f"Invalid feedback: {problem.reason}", [problem]), 422)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            return json_bytes(ErrorResponse(400, f"The body is not valid JSON: {error}"), 400)
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items or len(items) > settings.max_batch_rows:
            detail = f"Give between 1 and {settings.max_batch_rows} outcomes, not {len(items)}."
            return json_bytes(ErrorResponse(422, detail), 422)

        outcomes: list[float | str] = []
        problems: list[FieldError] = []
        for position, item in enumerate(items):
            outcome, problem = _outcome_of(serving, item.outcome)
            outcomes.append(outcome)
            if problem is not None:
                location = f"$[{position}].outcome" if isinstance(parsed, list) else "$.outcome"
                problems.append(FieldError(reason=problem, location=location, field="outcome"))
        if problems:
            return json_bytes(ErrorResponse(422, f"Invalid `outcome`: {problems[0].reason}", problems), 422)

        keys = [(item.request_id, item.row_index) for item in items]
        repeated = sorted(key for key, count in Counter(keys).items() if count > 1)
        if repeated:
            return json_bytes(ErrorResponse(409, f"Outcomes given twice in this body for {_named(repeated)}."), 409)

        answers = await _logged_answers(serving, keys, settings.prediction_log_flush_seconds)
        unknown = [key for key in keys if key not in answers]
        if unknown:
            detail = (
                f"No prediction of {serving.project.name} is logged under {_named(unknown)}: "
                "only ids this server answered with (the `request_id` of a prediction) take feedback."
            )
            return json_bytes(ErrorResponse(404, detail), 404)

        records = [
            Outcome(request_id, row_index, outcome, answers[(request_id, row_index)].version, answers[(request_id, row_index)].role)
            for (request_id, row_index), outcome in zip(keys, outcomes, strict=True)
        ]
        try:
            await asyncio.to_thread(serving.feedback.add, records)
        except AlreadyReceived as duplicate:
            return json_bytes(ErrorResponse(409, f"An outcome was already received for {_named(duplicate.keys)}; none stored."), 409)
        for record in records:
            metrics.inc(FEEDBACK, (serving.project.name, serving.project.model_name, record.model_version, record.answered_by))
        return json_bytes(FeedbackReceived(stored=len(records)), 201)


def _outcome_of(serving: ModelServing, outcome: float | str) -> tuple[float | str, str | None]:
    """The outcome as stored, or why the project's domain does not admit it."""
    project = serving.project
    if not project.is_classifier:
        if isinstance(outcome, str):
            return outcome, f"{project.name} predicts a number; {outcome!r} is not one"
        if not math.isfinite(outcome):
            return outcome, f"{project.name} predicts a finite number, not {outcome}"
        return float(outcome), None
    # A label sent as a JSON number ("1" as 1) is read as that label.
    label = outcome if isinstance(outcome, str) else str(int(outcome)) if float(outcome).is_integer() else str(outcome)
    if label not in project.classes:
        return outcome, f"{label!r} is not a class of {project.name}: {', '.join(project.classes)}"
    return label, None


async def _logged_answers(serving: ModelServing, keys: list[tuple[str, int]], flush_seconds: float) -> dict[tuple[str, int], Answer]:
    """Who answered each (request id, row): from the log, waiting for predictions too young to be in it yet."""
    request_ids = {request_id for request_id, _ in keys}
    answers = await asyncio.to_thread(serving.prediction_log.answers_of, request_ids)
    missing = {request_id for request_id, row_index in keys if (request_id, row_index) not in answers}
    arrival_deadlines = [millis / 1000 + flush_seconds + LOG_ARRIVAL_GRACE_SECONDS for rid in missing if (millis := request_id_millis(rid))]
    deadline = max(arrival_deadlines, default=0.0)
    while missing and time.time() < deadline:
        await asyncio.sleep(0.1)
        answers |= await asyncio.to_thread(serving.prediction_log.answers_of, missing)
        missing = {request_id for request_id, row_index in keys if (request_id, row_index) not in answers}
    return answers


def _named(keys: list[tuple[str, int]]) -> str:
    named = ", ".join(f"request {request_id!r}" + (f" row {row_index}" if row_index else "") for request_id, row_index in keys[:_LISTED])
    return named + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")
