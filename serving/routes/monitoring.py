"""GET /metrics: every worker's Prometheus metrics, whichever worker the scrape reaches."""

from litestar import Response, get

from serving.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from serving.metrics import Metrics


@get("/metrics", summary="Prometheus metrics", media_type=PROMETHEUS_CONTENT_TYPE, tags=["monitoring"])
async def prometheus_metrics(metrics: Metrics) -> Response[bytes]:
    return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)
