"""Prefect: evaluate the model Dagster trained on two held-out datasets and write a report.

The flow is handed a REF (`churn_model:latest`) and resolves it with `hw.get`; passing the
resolved `hw.Version` to a task is what links that task run to that exact model version.
`@tracker.flow` is the only headwater line; the tracker records to HEADWATER_URI.

    python evaluate.py [churn_model:latest]
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

from prefect import flow, task, unmapped

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker

sys.path.insert(0, str(Path(__file__).parent))
from features import features, read_csv

DATA = Path(os.environ["HEADWATER_DEMO_DATA"]).absolute()
HOLDOUTS = [DATA / "holdout" / "recent_signups.csv", DATA / "holdout" / "partner_accounts.csv"]
REPORTS = DATA / "reports"

tracker = HeadwaterTracker()  # the backend in HEADWATER_URI; a saved block works the same


@task
def score(model: hw.Version, holdout: Path) -> Path:
    """Accuracy on one held-out set, and the churn probability of each of its rows."""
    with open(model.path, "rb") as f:
        pipeline = pickle.load(f)
    rows = read_csv(holdout)
    x, y = [features(r) for r in rows], [int(r["churned"]) for r in rows]
    probabilities = [float(p[1]) for p in pipeline.predict_proba(x)]
    out = REPORTS / f"scores_{holdout.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "holdout": holdout.name,
                "accuracy": round(pipeline.score(x, y), 4),
                "labels": y,
                "probabilities": [round(p, 4) for p in probabilities],
            }
        )
    )
    return out


@task
def write_report(scores: list[Path]) -> hw.Output:
    """Accuracy per held-out set, and the decision threshold quantization must keep."""
    results = [json.loads(p.read_text()) for p in scores]
    labels = [y for r in results for y in r["labels"]]
    probabilities = [p for r in results for p in r["probabilities"]]
    best = max(
        (sum((p >= t) == bool(y) for p, y in zip(probabilities, labels, strict=True)), t)
        for t in (i / 100 for i in range(5, 96))
    )
    report = {
        "accuracy": {r["holdout"]: r["accuracy"] for r in results},
        "threshold": best[1],
        "accuracy_at_threshold": round(best[0] / len(labels), 4),
    }
    out = REPORTS / "churn_report.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return hw.Output("churn_report", out, type="report", metadata=report["accuracy"])


@tracker.flow
@flow(name="evaluate-churn-model")
def evaluate(model_ref: str = "churn_model:latest") -> None:
    # Returning the report would make the flow run one more producer of it (as it is of any
    # value it returns); the write_report task is the one that made it.
    model = hw.get(model_ref)
    write_report(score.map(unmapped(model), HOLDOUTS))


if __name__ == "__main__":
    evaluate(*sys.argv[1:2])
    print(f"prefect: the report is in {REPORTS / 'churn_report.json'}")
