"""The model's features, shared by training (Dagster), evaluation (Prefect) and quantization."""

from __future__ import annotations

import csv
from pathlib import Path

NUMERIC = ("age", "tenure_months", "monthly_spend", "support_calls")


def features(row: dict[str, str]) -> list[float]:
    """The numeric columns as they are, and the plan as 1.0 for premium."""
    return [float(row[c]) for c in NUMERIC] + [float(row["plan"] == "premium")]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as src:
        return list(csv.DictReader(src))


def read_folder(folder: Path) -> list[dict[str, str]]:
    return [row for part in sorted(folder.glob("*.csv")) for row in read_csv(part)]
