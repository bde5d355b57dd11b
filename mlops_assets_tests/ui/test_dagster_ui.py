"""The Dagster UI as a user meets it: the real `dagster dev` (webserver and daemon) on a temporary
instance, driven by headless Chromium (Debian's, through Playwright; no browser download), and the
GraphQL Python client the way scripts and CI talk to a running Dagster."""

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from mlops_assets_tests.conftest import PROJECTS, REPOSITORY_ROOT
from mlops_assets_tests.processes import free_port, http_ok, require_debian_command, start, stop, wait_until

ARTIFACTS = REPOSITORY_ROOT / "test-artifacts"
README_SCREENSHOT = REPOSITORY_ROOT / "mlops_assets_tests" / "screenshots" / "asset-graph.png"
# The graph labels each asset by its name within its project (the group).
ASSETS = ["raw", "cleaned", "features", "trained_model", "model_evaluation", "deployed_model"]
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # This machine has no network beyond loopback: Chromium must not reach out on its own.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RUN_TIMEOUT_SECONDS = 420


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory, reference_csv: Path) -> Iterator[str]:
    state_dir = tmp_path_factory.mktemp("dagster_dev")
    home = state_dir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPOSITORY_ROOT / "dagster.yaml")
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLOPS_STATE_DIR": str(state_dir),
        "MLOPS_DATA_DIR": str(reference_csv.parent),
        "MLFLOW_TRACKING_URI": f"sqlite:///{state_dir / 'mlflow.db'}",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    process = start(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "mlops_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        log=state_dir / "dagster_dev.log", env=env, cwd=REPOSITORY_ROOT,
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/server_info"), timeout=180, what="dagster dev", process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, grace=30)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = require_debian_command("chromium", "chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _graphql(url: str) -> DagsterGraphQLClient:
    host, port = url.removeprefix("http://").split(":")
    return DagsterGraphQLClient(host, port_number=int(port))


def _wait_for_run(client: DagsterGraphQLClient, run_id: str) -> str:
    from dagster import DagsterRunStatus

    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return status.value
        time.sleep(2)
    raise TimeoutError(f"run {run_id} did not finish in {RUN_TIMEOUT_SECONDS} s")


CHECKS = [
    "check_contract_raw", "check_contract_cleaned", "check_contract_features",
    "check_contract_trained_model", "check_contract_model_evaluation", "check_consistency_production_alias",
]


def _check_statuses(client: DagsterGraphQLClient) -> dict[str, str]:
    """The status of each check's execution for its asset's latest materialization, as the UI shows it,
    by `<asset>:<check>`."""
    result = client._execute(
        """query { assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks {
             name executionForLatestMaterialization { status } } } } } }"""
    )
    statuses = {}
    for node in result["assetNodes"]:
        for check in (node["assetChecksOrError"] or {}).get("checks", []):
            execution = check["executionForLatestMaterialization"]
            if check["name"] in CHECKS:
                statuses[f"{'/'.join(node['assetKey']['path'])}:{check['name']}"] = execution["status"] if execution else None
    return statuses


def _latest_run_id(client: DagsterGraphQLClient) -> str:
    result = client._execute("query { runsOrError(limit: 1) { ... on Runs { results { runId } } } }")
    return result["runsOrError"]["results"][0]["runId"]


def test_materialize_all_from_the_asset_graph_turns_every_asset_and_check_green(dagster_dev, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{dagster_dev}/asset-groups", wait_until="networkidle")
    page.get_by_role("button", name="Materialize all").click()
    page.get_by_text("Launched run").wait_for(timeout=30_000)

    client = _graphql(dagster_dev)
    assert _wait_for_run(client, _latest_run_id(client)) == "SUCCESS"

    page.goto(f"{dagster_dev}/asset-groups", wait_until="networkidle")
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups"
    for asset in ASSETS:
        page.get_by_text(asset, exact=True).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))
    body = page.locator("body").inner_text()
    assert "Failed" not in body and "Never materialized" not in body

    statuses = _check_statuses(client)
    assert len(statuses) == len(CHECKS) * len(PROJECTS)
    assert set(statuses.values()) == {"SUCCEEDED"}, statuses

    page.goto(f"{dagster_dev}/assets/housing/model_evaluation", wait_until="networkidle")
    page.get_by_text("rmse", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "model-evaluation.png"), full_page=True)
    rmse_row = page.locator("tr", has=page.get_by_text("rmse", exact=True)).first
    rmse = float(rmse_row.locator("td").last.inner_text().replace(",", ""))
    assert 10_000 < rmse < 47_730
    page.close()


def test_a_script_materializes_through_the_graphql_client(dagster_dev):
    client = _graphql(dagster_dev)
    run_id = client.submit_job_execution("housing_refresh")
    assert _wait_for_run(client, run_id) == "SUCCESS"
