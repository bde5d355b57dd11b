"""The code location loads, and every asset and check spec matches the committed snapshot.

A changed key, group, kind, owner, dependency or blocking flag shows up in review as a snapshot diff.
Run with UPDATE_SNAPSHOTS=1 to accept an intended change.
"""

import json
import os
from pathlib import Path

from dagster import Definitions

from mlops_assets.definitions import PROJECTS, defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def spec_snapshot(definitions: Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "has_description": bool(node.description),
            "pools": sorted(node.pools or ()),
            "checks": {
                check_key.name: {"blocking": graph.get_check_spec(check_key).blocking}
                for check_key in sorted(node.check_keys, key=lambda k: k.name)
            },
        }
    return assets


def test_definitions_load_with_every_asset_job_and_resource():
    # What the webserver and the daemon do when they load the code location: every job, schedule and
    # sensor is built and names are checked for clashes.
    Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("all_projects_refresh") is not None
    for project in PROJECTS:
        for job in ("refresh", "retraining", "approved_deployment", "rollback"):
            assert defs.resolve_job_def(f"{project.name}_{job}") is not None
    resources = defs.resources or {}
    assert {"pyspark", "store", "data_source", "mlflow_resource", "spark_parquet_io_manager", "json_io_manager"} <= set(resources)


def test_asset_specs_match_the_snapshot():
    snapshot = spec_snapshot(defs)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text())


def test_every_asset_links_to_the_function_that_computes_it():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        (reference,) = graph.get(key).metadata["dagster/code_references"].code_references
        # The line is the function's first decorator, in the platform's builder that every project shares:
        # the next definition below it is the asset's.
        below = Path(reference.file_path).read_text().splitlines()[reference.line_number - 1 :]
        definition = next(line.strip() for line in below if line.strip().startswith("def "))
        assert definition.startswith(f"def {key.path[-1]}("), (key, reference)


def test_the_dg_cli_loads_the_same_code_location():
    import subprocess
    import sys

    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "All definitions loaded successfully" in completed.stdout + completed.stderr
