"""Dagster: train the churn model on the dataset Airflow cleaned, through HeadwaterIOManager.

`customers_clean` is an external asset (Airflow writes it) named by its location with
`headwater/uri`: the same artifact the Airflow plugin records, not a look-alike. `churn_model`
reads it itself (`deps=`), returns a scikit-learn pipeline that Dagster's FilesystemIOManager
pickles, and is typed `model` with `headwater/type`.

    python train.py      # one materialization, recorded without a daemon (record_run)
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import os
import sys
from pathlib import Path

import dagster as dg
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from headwater.adapters.dagster import record_run, with_headwater

sys.path.insert(0, str(Path(__file__).parent))
from features import features, read_folder

DATA = Path(os.environ["HEADWATER_DEMO_DATA"]).absolute()
CLEAN = DATA / "clean" / "customers"

customers_clean = dg.AssetSpec(
    "customers_clean",
    description="Cleaned by Airflow's ingest_customers DAG",
    metadata={"headwater/uri": CLEAN.as_uri()},
)


@dg.asset(deps=[customers_clean], metadata={"headwater/type": "model"})
def churn_model(context: dg.AssetExecutionContext) -> Pipeline:
    rows = read_folder(CLEAN)
    x, y = [features(r) for r in rows], [int(r["churned"]) for r in rows]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    context.log.info(f"trained on {len(rows)} rows, train accuracy {model.score(x, y):.3f}")
    return model


train_churn_model = dg.define_asset_job("train_churn_model", selection=[churn_model])

defs = with_headwater(
    dg.Definitions(
        assets=[customers_clean, churn_model],
        jobs=[train_churn_model],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(DATA / "dagster-storage"))},
    )
)

if __name__ == "__main__":
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME
    result = defs.resolve_job_def("train_churn_model").execute_in_process(instance=instance)
    # What the `headwater` sensor does under a daemon: the run's and steps' final statuses.
    record_run(instance, result.run_id, asset_graph=defs.resolve_asset_graph())
    print(f"dagster run {result.run_id}: {'succeeded' if result.success else 'failed'}")
