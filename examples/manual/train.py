"""A manual two-step lineage with the Python API: log a dataset, then a training run that uses it.

Run by examples/manual/demo.sh; it works the same on its own:
    HEADWATER_HOME=/tmp/hw python examples/manual/train.py /tmp/hw/work
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import headwater as hw


def make_dataset(folder: Path) -> Path:
    """Two CSV shards of made-up users, like an export from an application database."""
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    for shard in ("users_eu.csv", "users_us.csv"):
        with open(folder / shard, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["user_id", "age", "visits", "churned"])
            for i in range(200):
                age, visits = rng.randint(18, 80), rng.randint(0, 50)
                writer.writerow([f"{shard[6:8]}-{i}", age, visits, int(visits < 5)])
    return folder


def train(dataset: Path, model_path: Path) -> dict[str, float]:
    """A tiny 'model': the churn rate per visit bucket, written as JSON."""
    counts: dict[str, list[int]] = {}
    for shard in sorted(dataset.glob("*.csv")):
        with open(shard) as rows:
            for row in csv.DictReader(rows):
                bucket = "low" if int(row["visits"]) < 5 else "high"
                counts.setdefault(bucket, []).append(int(row["churned"]))
    model = {bucket: sum(v) / len(v) for bucket, v in sorted(counts.items())}
    model_path.write_text(json.dumps(model, indent=2))
    return model


def main(work: Path) -> None:
    raw = make_dataset(work / "users")
    users = hw.log_artifact("users", raw, type="dataset", description="user export, two shards")
    print(f"logged {users.ref} ({len(users.entries)} files, {users.size} bytes)")

    with hw.run("train-churn", params={"buckets": 2}) as run:
        data = run.use("users:latest")
        model = train(data.download(), work / "churn-model.json")
        version = run.log_artifact(
            "churn-model", work / "churn-model.json", type="model", aliases=["candidate"], metadata=model
        )
    print(f"run {run.id} trained {version.ref} on {data.ref}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
