"""Run the example without a Dagster daemon and print the lineage headwater recorded.

    python examples/dagster/run.py   # HEADWATER_HOME and EXAMPLE_DATA default to a fresh folder

The Airflow export is stood in for by a manual `headwater log` of orders.csv. `record_run` does
what the `headwater` sensor does in a deployment: final statuses, and the `report` asset that
bypasses IO managers.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(tempfile.mkdtemp(prefix="headwater-dagster-"))
os.environ.setdefault("HEADWATER_HOME", str(root / "headwater"))
os.environ.setdefault("EXAMPLE_DATA", str(root / "data"))
data = Path(os.environ["EXAMPLE_DATA"])
data.mkdir(parents=True, exist_ok=True)
(data / "orders.csv").write_text("customer,amount\nada,12.50\ngrace,40.00\nada,7.50\n")

import dagster as dg

sys.path.insert(0, str(Path(__file__).parent))
from definitions import RAW, REPORT, defs

from headwater.adapters.dagster import record_run

headwater = [str(Path(sys.executable).parent / "headwater")]
# The export, as Airflow's headwater plugin would record it: a version of file://.../orders.csv.
subprocess.run(
    [*headwater, "log", "--job", "airflow-export", "--reference", f"{RAW.as_uri()}={RAW.as_uri()}"],
    check=True,
    stdout=subprocess.DEVNULL,
)

with dg.instance_for_test(temp_dir=str(root)) as instance:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance)
    record_run(instance, result.run_id, asset_graph=defs.resolve_asset_graph())
    # The revenue asset again, alone: it loads `orders` from the first run's storage.
    again = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("revenue")])
    record_run(instance, again.run_id, asset_graph=defs.resolve_asset_graph())

print(f"HEADWATER_HOME={os.environ['HEADWATER_HOME']}")
subprocess.run([*headwater, "upstream", REPORT.as_uri()], check=True)
subprocess.run([*headwater, "ls"], check=True)
