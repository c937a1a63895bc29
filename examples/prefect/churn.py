"""A churn model pipeline in Prefect 3, its lineage recorded by headwater with one line.

The flow is plain Prefect: `.map` over the export's shards, a features task, a training task
that returns its model as a `headwater.Output`, and a report materialized as a Prefect asset that
also depends on a CRM table. `@tracker.flow` is the only headwater line it needs.

    pip install "headwater[prefect]"
    prefect block register -m headwater.adapters.prefect
    python examples/prefect/churn.py --save-block sqlite:////tmp/hw/headwater.db   # once
    CHURN_WORKDIR=/tmp/hw/work python examples/prefect/churn.py
    HEADWATER_URI=sqlite:////tmp/hw/headwater.db headwater upstream file:///tmp/hw/work/report.md

The tracker is the saved block "churn-lineage" (HEADWATER_BLOCK to use another one), loaded in
the first hook that needs it: importing this module makes no API call. Without a Prefect server
configured, Prefect starts a temporary one (about 10 s).
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from pathlib import Path

from prefect import flow, task
from prefect.assets import add_asset_metadata, materialize

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker

WORKDIR = Path(os.environ.get("CHURN_WORKDIR", "/tmp/headwater-churn")).absolute()
REPORT = (WORKDIR / "report.md").as_uri()
CRM_USERS = "postgres://crm.internal:5432/crm.public.users"  # read by the report, not by headwater

tracker = HeadwaterTracker.lazy(os.environ.get("HEADWATER_BLOCK", "churn-lineage"))


@task
def clean(shard: Path) -> Path:
    """Drop users without a visit count."""
    out = WORKDIR / "clean" / shard.name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(shard) as src, open(out, "w", newline="") as dst:
        rows = [row for row in csv.DictReader(src) if row["visits"]]
        writer = csv.DictWriter(dst, fieldnames=["user_id", "visits", "churned"])
        writer.writeheader()
        writer.writerows(rows)
    return out


@task
def build_features(shards: list[Path]) -> Path:
    counts: dict[str, list[int]] = {}
    for shard in shards:
        with open(shard) as rows:
            for row in csv.DictReader(rows):
                bucket = "low" if int(row["visits"]) < 5 else "high"
                counts.setdefault(bucket, []).append(int(row["churned"]))
    out = WORKDIR / "features.json"
    out.write_text(json.dumps({bucket: counts[bucket] for bucket in sorted(counts)}))
    return out


@task
def train(features: Path) -> hw.Output:
    """A tiny 'model': the churn rate per visit bucket. Returned as a named, typed headwater output."""
    counts = json.loads(features.read_text())
    model = {bucket: round(sum(v) / len(v), 4) for bucket, v in counts.items()}
    out = WORKDIR / "model.json"
    out.write_text(json.dumps(model))
    return hw.Output("churn-model", out, type="model", metadata={"buckets": len(model)})


@materialize(REPORT, asset_deps=[CRM_USERS])
def publish_report(model: hw.Output) -> None:
    rates = json.loads(Path(model.path).read_text())
    lines = ["# Churn by visit bucket", ""] + [f"- {bucket}: {rate:.1%}" for bucket, rate in sorted(rates.items())]
    Path(WORKDIR / "report.md").write_text("\n".join(lines) + "\n")
    add_asset_metadata(REPORT, {"buckets": len(rates)})


@tracker.flow
@flow(name="churn-pipeline")
def churn_pipeline(shards: list[Path]) -> hw.Output:
    cleaned = clean.map(shards)
    model = train(build_features(cleaned))
    publish_report(model)
    return model


def export_users(folder: Path) -> list[Path]:
    """Two CSV shards of made-up users: the export a real pipeline would receive."""
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for region in ("eu", "us"):
        shard = folder / f"users_{region}.csv"
        with open(shard, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["user_id", "visits", "churned"])
            for i in range(200):
                visits = rng.randint(0, 50)
                writer.writerow([f"{region}-{i}", "" if i % 50 == 0 else visits, int(visits < 5)])
        shards.append(shard)
    return shards


def main(argv: list[str]) -> int:
    if argv[:1] == ["--save-block"]:
        HeadwaterTracker(uri=argv[1]).save(os.environ.get("HEADWATER_BLOCK", "churn-lineage"), overwrite=True)
        print(f"saved block headwater-tracker/{os.environ.get('HEADWATER_BLOCK', 'churn-lineage')} -> {argv[1]}")
        return 0
    model = churn_pipeline(export_users(WORKDIR / "export"))
    print(f"model: {model.path}; report: {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
