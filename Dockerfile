# One image for every service of the compose deployment: Dagster code server, webserver and daemon,
# the serving app, the MLflow server and the Spark master and worker (pyspark ships all of Spark).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install --yes --no-install-recommends openjdk-17-jre-headless procps curl \
 && rm -rf /var/lib/apt/lists/*

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY mlops_assets ./mlops_assets
COPY serving ./serving
COPY workspace.yaml dagster.yaml ./
RUN uv sync --frozen --no-dev

ENV PATH=/app/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    SPARK_HOME=/app/.venv/lib/python3.11/site-packages/pyspark \
    PYTHONUNBUFFERED=1
RUN mkdir -p "$DAGSTER_HOME" && cp mlops_assets/deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"

RUN useradd --create-home --uid 10001 mlops && mkdir -p /data && chown -R mlops /data "$DAGSTER_HOME"
USER mlops
